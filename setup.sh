#!/usr/bin/env bash
# One-step set-up: creates .venv/ in this checkout with streamvsr installed (editable, with dev extras).
# Idempotent: a second run only re-checks the install.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# CPU machines take the local CPU wheel of torch; a machine that already has torch keeps it.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  { .venv/bin/pip install -q "torch==2.13.0" || .venv/bin/pip install -q "torch>=2.6"; } 2>&1 \
    | grep -v "is ignored: it is neither" || true
fi
.venv/bin/pip install -q -e ".[dev,eval,sdvsr]" 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import streamvsr" 
