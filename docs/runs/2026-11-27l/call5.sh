#!/bin/bash
# twelfth session, call 5: part 2 (kept in /tmp/fa4)
mkdir -p /tmp/fa4 && cp .fa4b/* /tmp/fa4/ && ls /tmp/fa4
