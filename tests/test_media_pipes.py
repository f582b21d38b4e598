"""stdin/stdout pipes, run in subprocesses as the CLI would be."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamvsr.media import open_reader
from streamvsr.media.synth import make_clip

SRC_DIR = str(Path(__file__).resolve().parents[1] / "src")

READ_STDIN = """
import json, sys
from streamvsr.media import open_reader
with open_reader("-") as r:
    frames = [[f.pts, int(f.rgb.astype("int64").sum())] for f in r]
    info = {"w": r.info.width, "h": r.info.height, "fps": str(r.info.fps), "kind": r.info.kind}
print(json.dumps({"info": info, "frames": frames}))
"""

WRITE_STDOUT = """
import sys
from streamvsr.errors import OutputError
from streamvsr.media import open_reader, open_writer
try:
    with open_reader(sys.argv[1]) as r, open_writer("-", r.info, r.info.width, r.info.height,
                                                   format=sys.argv[2], copy_from=sys.argv[1]) as w:
        for f in r:
            w.write(f.rgb, pts=f.pts)
except OutputError as e:
    print(f"OutputError: {e}", file=sys.stderr)
    sys.exit(3)
"""


def run_py(code: str, *args: str, stdin=None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": SRC_DIR, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "codec", "fmt"),
    [("a.y4m", "rawvideo", "yuv4mpegpipe"), ("a.nut", "ffv1", "nut"), ("a.mkv", "libx264", "matroska")],
)
def test_reader_on_stdin(tmp_path, name, codec, fmt):
    src = make_clip(tmp_path / name, frames=9, width=32, height=24, codec=codec, format=fmt)
    with open_reader(src) as r:
        direct = [[f.pts, int(f.rgb.astype("int64").sum())] for f in r]
    with open(src, "rb") as fh:
        res = run_py(READ_STDIN, stdin=fh)
    assert res.returncode == 0, res.stderr.decode()
    out = json.loads(res.stdout)
    assert out["info"] == {"w": 32, "h": 24, "fps": "24", "kind": "pipe"}
    assert out["frames"] == direct


@pytest.mark.parametrize("fmt", ["auto", "nut"])
def test_writer_to_stdout(tmp_path, fmt):
    src = make_clip(tmp_path / "in.mkv", frames=10, width=32, height=24, audio=True)
    res = run_py(WRITE_STDOUT, str(src), fmt)
    assert res.returncode == 0, res.stderr.decode()
    out = tmp_path / ("piped.mkv" if fmt == "auto" else "piped.nut")
    out.write_bytes(res.stdout)
    with open_reader(out) as r:
        assert r.info.has_audio
        assert (r.info.width, r.info.height) == (32, 24)
        assert len(list(r)) == 10


def test_stdout_disk_full_is_an_output_error(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=10, width=32, height=24)
    with open("/dev/full", "wb") as full:
        res = run_py(WRITE_STDOUT, str(src), "auto", stdout=full)
    assert res.returncode == 3
    assert "disk full" in res.stderr.decode()
