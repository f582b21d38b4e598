#!/bin/bash
# twelfth session, call 14 (2 GPUs, a fresh machine): part 1 of the CuTe DSL libraries (kept in /tmp/fa4); random
# official-size weights for the multi-GPU runs
mkdir -p /tmp/fa4 && cp .fa4a/* /tmp/fa4/ && nvidia-smi -L
PYTHONPATH=$PWD/src timeout 200 python3 scripts/make_random_model.py /tmp/w13 --size official-1.3b --device cuda 2>&1 | tail -2
ls /tmp/w13
