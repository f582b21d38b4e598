#!/usr/bin/env bash
# Set up (idempotent), lint, and run the CPU test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q "$@"
