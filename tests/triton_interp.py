"""Run a check script under Triton's interpreter (imported by name: pytest puts tests/ on sys.path).

The interpreter is chosen when Triton is imported, so each check runs in a process of its own with
``TRITON_INTERPRET=1``; the script prints "ok" when every assertion held.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_interpreted(code: str, timeout: int = 300) -> None:
    """Run ``code`` with Triton's interpreter; skip without Triton; fail with the script's stderr."""
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
