"""The decode -> model -> encode runner: bounded memory, interruption, progress."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from streamvsr.media.synth import make_clip
from streamvsr.pipeline.registry import load_model
from streamvsr.pipeline.run import Progress, upscale_file


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("run") / "long.mp4", frames=1500, width=32, height=32, audio=True)


def test_memory_does_not_grow_with_length(long_clip: Path, tmp_path: Path) -> None:
    proc = psutil.Process()
    rss: list[int] = []

    def progress(p: Progress) -> None:
        if p.frames % 100 == 0:
            rss.append(proc.memory_info().rss)

    res = upscale_file(long_clip, tmp_path / "o.mp4", load_model("bicubic", scale=2), progress=progress)
    assert res.frames == 1500
    # after the first few hundred frames (allocator warm-up), RSS stays flat: no per-frame accumulation
    assert max(rss[3:]) - rss[3] < 30 * 2**20, [r // 2**20 for r in rss]


def test_ctrl_c_leaves_no_output(long_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    args = ["upscale", str(long_clip), "-o", str(out), "--model", "bicubic", "--scale", "8"]
    p = subprocess.Popen(
        [sys.executable, "-m", "streamvsr.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # a run started in the background of a non-interactive shell inherits SIGINT ignored: a terminal's Ctrl-C
        # reaches a CLI with the default disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(4)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0
    assert not out.exists()
    assert not [f for f in tmp_path.iterdir() if f.name != "o.mp4"], list(tmp_path.iterdir())  # no temp files
    assert b"Traceback" not in err
