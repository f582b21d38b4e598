#!/bin/bash
# twelfth session, call 4 (a fresh machine): part 1 of the CuTe DSL libraries again (kept in /tmp/fa4)
mkdir -p /tmp/fa4 && cp .fa4a/* /tmp/fa4/ && ls /tmp/fa4 && nvidia-smi --query-gpu=name --format=csv,noheader
