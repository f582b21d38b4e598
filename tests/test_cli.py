"""End-to-end CLI tests: the whole path (decode -> engine -> encode) and every bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest

from streamvsr.media.synth import make_clip

CLI = [sys.executable, "-m", "streamvsr.cli.main"]


def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, input=input, timeout=300)


def streams(path: Path) -> dict:
    with av.open(str(path)) as c:  # read every stream property while the container is open
        v = c.streams.video[0]
        info = {"w": v.width, "h": v.height, "rate": v.average_rate}
        info["audio"] = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size] if c.streams.audio else []
    with av.open(str(path)) as c:
        info["pts"] = [f.pts for f in c.decode(video=0)]
    return info


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cli") / "in.mp4"
    return make_clip(p, frames=13, width=40, height=30, fps=Fraction(30000, 1001), audio=True)


def test_upscale_keeps_frames_timestamps_audio(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    r = run("upscale", str(clip), "-o", str(out), "--model", "bicubic", "--progress", "none")
    assert r.returncode == 0, r.stderr.decode()
    a, b = streams(clip), streams(out)
    assert (b["w"], b["h"]) == (160, 120)
    assert len(b["pts"]) == len(a["pts"]) == 13
    assert b["pts"] == a["pts"]
    assert b["audio"] == a["audio"] and len(a["audio"]) > 0  # packet copy, byte-identical
    assert b["rate"] == Fraction(30000, 1001)


def test_progress_json_lines(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mkv"
    r = run("upscale", str(clip), "-o", str(out), "--model", "lanczos", "--scale", "2", "--progress", "json")
    assert r.returncode == 0, r.stderr.decode()
    lines = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert lines[-1]["done"] and lines[-1]["frames"] == 13
    assert lines[0]["frames"] == 0 and not lines[0]["done"]  # reported before the first output, at the start
    assert [x["frames"] for x in lines[1:-1]] == list(range(1, 14))
    assert all({"frames", "total", "fps", "eta"} <= set(x) for x in lines)


def test_png_output_and_no_audio(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    r = run(
        "upscale",
        str(clip),
        "-o",
        str(out),
        "--format",
        "png",
        "--model",
        "bicubic",
        "--scale",
        "2",
        "--progress",
        "none",
    )
    assert r.returncode == 0, r.stderr.decode()
    assert len(list(out.glob("*.png"))) == 13


def test_stdin_to_stdout(tmp_path: Path) -> None:
    y4m = make_clip(tmp_path / "a.y4m", frames=5, width=16, height=16, codec="rawvideo", format="yuv4mpegpipe")
    r = run(
        "upscale", "-", "-o", "-", "--model", "bicubic", "--scale", "2", "--progress", "none", input=y4m.read_bytes()
    )
    assert r.returncode == 0, r.stderr.decode()
    piped = tmp_path / "piped.mkv"
    piped.write_bytes(r.stdout)
    s = streams(piped)
    assert (s["w"], s["h"], len(s["pts"])) == (32, 32, 5)


def _err(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines  # one clear line, no traceback
    assert "Traceback" not in r.stderr.decode()
    return lines[0]


def test_bad_inputs(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    assert "not found" in _err(run("upscale", str(tmp_path / "missing.mp4"), "-o", str(out)))
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    _err(run("upscale", str(text), "-o", str(out), "--progress", "none"))
    assert not out.exists()
    assert "scale" in _err(run("upscale", str(clip), "-o", str(out), "--model", "bicubic", "--scale", "5"))
    assert "unknown model" in _err(run("upscale", str(clip), "-o", str(out), "--model", "nope"))
    bic = ("upscale", str(clip), "-o", str(out), "--model", "bicubic")
    assert "--compile applies to --model flashvsr and" in _err(run(*bic, "--compile"))
    assert "--detail applies to --model flashvsr" in _err(run(*bic, "--detail", "0.5"))
    assert "--no-streams applies to --model flashvsr" in _err(run(*bic, "--no-streams"))
    assert "--fp8 applies to --model flashvsr" in _err(run(*bic, "--fp8"))
    assert "--pad-to applies to --model flashvsr" in _err(run(*bic, "--pad-to", "windows"))
    assert "compute capability 9.0" in _err(run("upscale", str(clip), "-o", str(out), "--device", "cpu", "--fp8"))
    assert "0.0<=x<=2.0" in _err(run("upscale", str(clip), "-o", str(out), "--model", "flashvsr", "--detail", "3"))
    assert "--color-fix" in _err(run("upscale", str(clip), "-o", str(out), "--color-fix", "bad"))  # click: one line too
    _err(run("upscale", str(clip), "-o", str(tmp_path / "no" / "dir" / "o.mp4"), "--progress", "none"))
    _err(run("upscale", str(clip), "-o", str(clip), "--overwrite", "--progress", "none"))
    assert clip.exists() and clip.stat().st_size > 0  # the input is never overwritten
    out.write_bytes(b"old")
    _err(run("upscale", str(clip), "-o", str(out), "--progress", "none"))
    assert out.read_bytes() == b"old"  # existing output kept without --overwrite
    r = run(
        "upscale", str(clip), "-o", str(out), "--progress", "none", "--overwrite", "--model", "bicubic", "--scale", "2"
    )
    assert r.returncode == 0 and out.stat().st_size > 3


def test_zero_frames(tmp_path: Path) -> None:
    p = tmp_path / "audio_only.mka"
    with av.open(str(p), "w") as c:
        s = c.add_stream("aac", rate=48000)
        import numpy as np

        for i in range(10):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate = 48000
            fr.pts = i * 1024
            for pk in s.encode(fr):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    _err(run("upscale", str(p), "-o", str(tmp_path / "o.mp4"), "--progress", "none"))
    assert not (tmp_path / "o.mp4").exists()


def test_info_json() -> None:
    r = run("info", "--json")
    assert r.returncode == 0
    data = json.loads(r.stdout)
    assert "bicubic" in data["models"] and "flashvsr" in data["models"]
    assert any(b.startswith("dense") for b in data["attention_backends"])


def test_flashvsr_tiny_official_folder_through_cli(tmp_path: Path) -> None:
    weights = tmp_path / "w"
    subprocess.run([sys.executable, "scripts/make_tiny_official.py", str(weights)], check=True, capture_output=True)
    src = make_clip(tmp_path / "in.mp4", frames=9, width=24, height=16, audio=True)
    out = tmp_path / "o.mp4"
    r = run("upscale", str(src), "-o", str(out), "--model", "flashvsr", "--weights", str(weights), "--progress", "none")
    assert r.returncode == 0, r.stderr.decode()
    s = streams(out)
    assert (s["w"], s["h"], len(s["pts"])) == (96, 64, 9)
    assert s["audio"] == streams(src)["audio"]


def test_batch_skips_finished_and_splits_by_rank(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        make_clip(src / f"v{i}.mp4", frames=4, width=16, height=16)
    (src / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    r = run(
        "batch",
        str(src),
        str(out),
        "--model",
        "bicubic",
        "--scale",
        "2",
        "--pix-fmt",
        "yuv444p",
        "--encoder-opt",
        "preset=ultrafast",
    )
    assert r.returncode == 0, r.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == ["v0.mp4", "v1.mp4", "v2.mp4"]
    # one line a video, with the time to its first frame (at most its whole time)
    lines = re.findall(rb"v\d\.mp4 -> v\d\.mp4: 4 frames in ([\d.]+)s \(first frame after ([\d.]+)s\)", r.stderr)
    assert len(lines) == 3 and all(float(f) <= float(t) + 0.05 for t, f in lines), r.stderr.decode()
    assert streams(out / "v1.mp4")["w"] == 32
    with av.open(str(out / "v1.mp4")) as c:  # the encoder options reach every job
        assert c.streams.video[0].codec_context.pix_fmt == "yuv444p"
    r = run("batch", str(src), str(out), "--model", "bicubic", "--scale", "2")
    assert b"nothing to do" in r.stderr

    from streamvsr.pipeline.jobs import plan_jobs

    (out / "v1.mp4").unlink()
    assert [j.src.name for j in plan_jobs(src, out)] == ["v1.mp4"]
    ranks = [[j.src.name for j in plan_jobs(src, tmp_path / "none", rank=k, world=2)] for k in range(2)]
    assert ranks == [["v0.mp4", "v2.mp4"], ["v1.mp4"]]


def test_cuda_rank_device_becomes_the_current_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cuda:N` is made the current device (a torchrun rank's kernels stay on its GPU); bad indices are refused."""
    import torch

    from streamvsr.cli.main import _resolve_device
    from streamvsr.errors import StreamVSRError

    current: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    assert _resolve_device("cuda:1") == "cuda:1"
    assert _resolve_device("cuda") == "cuda"  # no index: the current device stays as it is
    assert current == [1]
    with pytest.raises(StreamVSRError, match="only 2 GPU"):
        _resolve_device("cuda:2")
    with pytest.raises(StreamVSRError, match="invalid device"):
        _resolve_device("cuda:x")
    assert current == [1]


def test_workers_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun with N local workers each takes cores // N // 2 threads for torch and as many for its encoder."""
    import torch

    from streamvsr.cli.main import _encode_options
    from streamvsr.pipeline.jobs import worker_threads

    assert worker_threads(None, cpus=32, local_world=2) == 8
    assert worker_threads(None, cpus=3, local_world=4) == 1
    assert worker_threads(None, cpus=16, local_world=8) == 1
    assert worker_threads(None, cpus=32, local_world=1) is None  # one process keeps the library defaults
    assert worker_threads(5, cpus=32, local_world=2) == 5
    kw = {"codec": None, "crf": None, "bitrate": None, "pix_fmt": None, "no_audio": False, "threads": None}
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        assert "threads" not in _encode_options({**kw, "encoder_opt": ()}).options
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        share = worker_threads()
        enc = _encode_options({**kw, "encoder_opt": ("preset=veryfast",)})
        assert enc.options == {"preset": "veryfast", "threads": str(share)}
        assert torch.get_num_threads() == share
        enc = _encode_options({**kw, "encoder_opt": ("threads=3",)})  # the user's encoder setting wins
        assert enc.options["threads"] == "3"
        assert _encode_options({**kw, "threads": 1, "encoder_opt": ()}).options["threads"] == "1"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_10bit_vfr_rotation_and_colour_tags_survive_the_pipeline(tmp_path: Path) -> None:
    src = make_clip(
        tmp_path / "in.mkv",
        frames=8,
        width=32,
        height=24,
        pix_fmt="yuv420p10le",
        pts=[0, 1, 3, 4, 8, 9, 15, 16],
        time_base=Fraction(1, 30),
        rotation=90,
        matrix="bt709",
    )
    out = tmp_path / "out.mkv"
    r = run("upscale", str(src), "-o", str(out), "--model", "bicubic", "--scale", "2", "--progress", "none")
    assert r.returncode == 0, r.stderr.decode()
    from streamvsr.media import open_reader

    with open_reader(src) as a, open_reader(out) as b:
        assert b.info.bit_depth == 10 and a.info.bit_depth == 10
        assert b.info.rotation == a.info.rotation == 90
        assert (b.info.color_space, b.info.color_range) == (a.info.color_space, a.info.color_range)
        ta = [f.pts * a.info.time_base for f in a]
        tb = [f.pts * b.info.time_base for f in b]
    assert ta == tb and len(tb) == 8  # variable frame rate kept, frame for frame
