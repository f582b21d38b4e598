"""One video split into segments, upscaled one after another (or on several ranks) and joined by remuxing."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import streamvsr.pipeline.segments as segments_mod
from streamvsr.cli.main import cli
from streamvsr.errors import InputError
from streamvsr.media.synth import make_clip, pattern_frame
from streamvsr.pipeline.protocol import ModelSpec
from streamvsr.pipeline.registry import load_model
from streamvsr.pipeline.run import EncodeOptions, upscale_file
from streamvsr.pipeline.segments import (
    balanced_bounds,
    default_overlap,
    plan_segments,
    split_frames,
    upscale_segmented,
)


def decoded(path: Path) -> tuple[list[int], list[np.ndarray], list[bytes], list[tuple]]:
    """(frame pts, RGB frames, audio packets, video packet (pts, dts)) of a file."""
    with av.open(str(path)) as c:
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
    with av.open(str(path)) as c:
        packets = [(p.pts, p.dts) for p in c.demux(video=0) if p.size]
    return [p for p, _ in frames], [f for _, f in frames], audio, packets


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("seg") / "in.mp4"
    return make_clip(p, frames=30, width=32, height=24, fps=Fraction(30000, 1001), audio=True)


class ToyStateful:
    """Output t = 0.5 x_t + 0.25 x_{t+2} (look-ahead 2) + 0.25 mean(x_{t-3} .. x_{t-1}) (memory 3 frames;
    a cold start has no past: zeros). At the end of the stream the last frame stands in for the future."""

    memory = 3

    def __init__(self) -> None:
        self.spec = ModelSpec("toy", scale=1, latency=2)
        self.reset()

    def reset(self) -> None:
        self.past: list[torch.Tensor] = []
        self.pending: list[torch.Tensor] = []

    def _out(self, x: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        prev = torch.stack(self.past).mean(0) if self.past else torch.zeros_like(x)
        self.past = [*self.past, x][-self.memory :]
        return (0.5 * x + 0.25 * future + 0.25 * prev).clamp(0, 1)

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        outs = []
        for f in frames:
            self.pending.append(f)
            if len(self.pending) > self.spec.latency:
                outs.append(self._out(self.pending.pop(0), f))
        return torch.stack(outs) if outs else frames[:0]

    def flush(self) -> torch.Tensor:
        last = self.pending[-1] if self.pending else None
        outs = [self._out(self.pending.pop(0), last) for _ in range(len(self.pending))]
        return torch.stack(outs) if outs else torch.empty(0, 3, 0, 0)


def test_balanced_bounds_equalise_pushed_frames() -> None:
    for total, n, overlap, la in [(3200, 2, 49, 24), (3200, 4, 49, 24), (1000, 3, 16, 0), (10, 4, 49, 24)]:
        segs = split_frames(total, n, overlap, la)
        pushed = [s.hi - s.lo for s in segs]
        assert [s.begin for s in segs][1:] == balanced_bounds(total, n, overlap, la)
        if total > n * (overlap + la):
            assert max(pushed) - min(pushed) <= 1, pushed
    assert balanced_bounds(3200, 2, 49, 24) == [1612]  # 1612 + 24 = 1588 + 49 + 1 pushed frames
    assert balanced_bounds(10, 4, 49, 24) == [2, 5, 8] and balanced_bounds(5, 1, 9, 9) == []


def test_split_covers_every_frame_once() -> None:
    segs = split_frames(100, 3, overlap=10, lookahead=2)
    kept = [i for s in segs for i in range(s.begin, s.end)]
    assert kept == list(range(100))
    assert [(s.lo, s.hi) for s in segs] == [
        (0, segs[0].end + 2),
        (segs[1].begin - 10, segs[1].end + 2),
        (segs[2].begin - 10, 100),
    ]
    cut = split_frames(100, 2, overlap=10, lookahead=0, bounds=[40], cuts=frozenset({40}))
    assert (cut[1].begin, cut[1].lo) == (40, 40)  # at a scene cut: no warm-up
    assert default_overlap(24) == 49 and default_overlap(0) == 16
    for n in (0, 101):
        with pytest.raises(InputError):
            split_frames(100, n, overlap=0, lookahead=0)


def test_lossless_segments_equal_single_pass(clip: Path, tmp_path: Path) -> None:
    model = load_model("bicubic", scale=2)
    enc = EncodeOptions(codec="ffv1")
    upscale_file(clip, tmp_path / "one.mkv", model, encode=enc)
    res = upscale_segmented(clip, tmp_path / "seg.mkv", model, segments=3, encode=enc)
    assert res.frames == 30
    assert list(res.phases) == ["start", "plan", "segments", "join_ready", "wait", "join"]
    assert sum(res.phases.values()) == pytest.approx(res.seconds) and min(res.phases.values()) >= 0
    a, b = decoded(tmp_path / "one.mkv"), decoded(tmp_path / "seg.mkv")
    assert a[0] == b[0] and len(b[0]) == 30  # pts
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
    assert b[2] == decoded(clip)[2] and len(b[2]) > 0  # audio packets copied once, byte-identical
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.mkv", "seg.mkv"]  # parts removed


def test_lossy_mp4_segments_keep_timestamps_and_audio(clip: Path, tmp_path: Path) -> None:
    model = load_model("bicubic", scale=2)
    upscale_file(clip, tmp_path / "one.mp4", model)
    upscale_segmented(clip, tmp_path / "seg.mp4", model, segments=4)
    a, b = decoded(tmp_path / "one.mp4"), decoded(tmp_path / "seg.mp4")
    assert a[0] == b[0] and len(b[0]) == 30
    assert b[2] == a[2] and len(a[2]) > 0
    dts = [d for _, d in b[3]]
    assert all(x < y for x, y in zip(dts, dts[1:]))  # decodable: strictly increasing across the seams
    assert dts[:2] == [d for _, d in a[3]][:2]  # B-frame delay at the start as a single encode has it
    upscale_file(clip, tmp_path / "ref.mkv", model, encode=EncodeOptions(codec="ffv1"))
    ref = decoded(tmp_path / "ref.mkv")[1]

    def err(frames: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(x.astype(int) - r.astype(int)).mean() for x, r in zip(frames, ref)]))

    assert err(b[1]) < 1.25 * err(a[1])  # x264 at crf 18: coding noise like a single encode's, no seam damage
    with av.open(str(tmp_path / "seg.mp4")) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)


def test_warm_up_makes_a_stateful_model_seamless(clip: Path, tmp_path: Path) -> None:
    enc = EncodeOptions(codec="ffv1", copy_audio=False)
    model = ToyStateful()
    upscale_file(clip, tmp_path / "one.mkv", model, encode=enc)
    ref = decoded(tmp_path / "one.mkv")[1]
    upscale_segmented(clip, tmp_path / "warm.mkv", model, segments=3, overlap=model.memory, encode=enc)
    warm = decoded(tmp_path / "warm.mkv")[1]
    assert len(warm) == 30 and all(np.array_equal(x, y) for x, y in zip(ref, warm))
    upscale_segmented(clip, tmp_path / "cold.mkv", model, segments=3, overlap=0, encode=enc)
    cold = decoded(tmp_path / "cold.mkv")[1]
    differ = [i for i, (x, y) in enumerate(zip(ref, cold)) if not np.array_equal(x, y)]
    assert 10 in differ and 20 in differ and 0 not in differ  # the cold segment starts show


def test_look_ahead_tail_matters(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the look-ahead frames after each segment, its last frames are made at a fake stream end."""
    import streamvsr.pipeline.segments as segments

    split = segments.split_frames
    monkeypatch.setattr(segments, "split_frames", lambda t, n, o, la, *a, **k: split(t, n, o, 0, *a, **k))
    enc = EncodeOptions(codec="ffv1", copy_audio=False)
    model = ToyStateful()
    upscale_file(clip, tmp_path / "one.mkv", model, encode=enc)
    upscale_segmented(clip, tmp_path / "short.mkv", model, segments=3, overlap=model.memory, encode=enc)
    a, b = decoded(tmp_path / "one.mkv")[1], decoded(tmp_path / "short.mkv")[1]
    b0, b1 = segments.balanced_bounds(30, 3, model.memory, 0)  # (12, 21)
    assert [i for i, (x, y) in enumerate(zip(a, b)) if not np.array_equal(x, y)] == [b0 - 2, b0 - 1, b1 - 2, b1 - 1]


def test_scene_cut_boundary(tmp_path: Path) -> None:
    src = tmp_path / "cut.mkv"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("ffv1", rate=24)
        vs.width, vs.height, vs.pix_fmt = 32, 24, "yuv420p"
        for i in range(40):
            rgb = pattern_frame(i, 32, 24)
            if i >= 23:  # a hard cut to a dark shot
                rgb = (rgb // 5).astype(np.uint8)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format="yuv420p")))
        out.mux(vs.encode(None))
    plan = plan_segments(src, "auto", overlap=8, lookahead=1, world=2)
    s0, s1 = plan.segments
    assert (s0.end, s1.begin, s1.lo) == (23, 23, 23)  # moved from the even point 20 to the cut
    # the CLI's scan made while the model loads: the plan then decodes nothing more, and equals the plan without
    import streamvsr.media.scenes as scenes

    scan = segments_mod.prescan_scenes(src, 2)
    calls = []
    real = scenes.cut_scores
    scenes.cut_scores = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        assert plan_segments(src, "auto", overlap=8, lookahead=1, world=2, scan=scan) == plan and not calls
        narrow = segments_mod.SceneScan(scan.frames, ((0, 3),), scan.scores)  # covers too little: scanned again
        assert plan_segments(src, "auto", overlap=8, lookahead=1, world=2, scan=narrow) == plan and calls
    finally:
        scenes.cut_scores = real
    even = plan_segments(src, 2, overlap=8, lookahead=1)
    # balanced: segment 0 pushes 24 + 1 look-ahead frames, segment 1 pushes 8 warm-up + 16 (40 + 9 = 49 in all)
    assert (even.segments[1].begin, even.segments[1].lo) == (24, 16)


def test_cut_scores_of_windows_equal_the_full_decode(tmp_path: Path) -> None:
    """Windowed scene scoring (what --segments auto decodes) seeks and gives the full decode's scores there."""
    from streamvsr.media.scenes import cut_scores

    src = tmp_path / "gop.mp4"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.options = {"g": "10", "bf": "2"}  # keyframes every 10 frames, B-frames: seeks land before windows
        for i in range(60):
            rgb = pattern_frame(i, 64, 48)
            if i >= 37:
                rgb = (rgb // 4).astype(np.uint8)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format="yuv420p")))
        out.mux(vs.encode(None))
    full = cut_scores(src)
    pts = sorted(full)
    assert len(pts) == 60 and max(full, key=full.get) == pts[37]
    part = cut_scores(src, windows=[(pts[14], pts[22]), (pts[33], pts[41])])
    assert sorted(part) == pts[14:23] + pts[33:42]
    assert all(part[p] == pytest.approx(full[p]) for p in pts[15:23] + pts[34:42])


def test_scene_luma_reads_the_y_plane_or_scales() -> None:
    from streamvsr.media.scenes import _luma

    rgb = pattern_frame(5, 320, 180)
    yuv = av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format="yuv420p")
    gray = yuv.reformat(width=64, height=36, format="gray").to_ndarray()
    fast = _luma(yuv, 64, 36)  # every 5th row and column of the Y plane
    # the same picture; the Y plane keeps limited range (16-235), the gray copy is full range
    assert fast.shape == (36, 64) and np.corrcoef(fast.ravel(), gray.ravel())[0, 1] > 0.9
    assert _luma(av.VideoFrame.from_ndarray(rgb, "rgb24"), 64, 36).shape == (36, 64)  # other formats: scaled


def test_failure_leaves_nothing(clip: Path, tmp_path: Path) -> None:
    class Broken(ToyStateful):
        calls = 0

        def push(self, frames: torch.Tensor) -> torch.Tensor:
            Broken.calls += 1
            if Broken.calls > 6:
                raise RuntimeError("device lost")
            return super().push(frames)

    with pytest.raises(RuntimeError):
        upscale_segmented(clip, tmp_path / "o.mkv", Broken(), segments=3, encode=EncodeOptions(codec="ffv1"))
    assert list(tmp_path.iterdir()) == []


def test_cli_segments(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mkv"
    args = ["upscale", str(clip), "-o", str(out), "--model", "bicubic", "--codec", "ffv1", "--progress", "none"]
    r = subprocess.run([sys.executable, "-m", "streamvsr.cli.main", *args, "--segments", "2"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    one = tmp_path / "one.mkv"
    upscale_file(clip, one, load_model("bicubic"), encode=EncodeOptions(codec="ffv1"))
    a, b = decoded(one), decoded(out)
    assert a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))


@pytest.mark.parametrize(
    ("extra", "out", "needle"),
    [
        (["--segments", "0"], "o.mp4", "at least 1"),
        (["--segments", "31"], "o.mp4", "30 frames"),
        (["--segments", "two"], "o.mp4", "number or auto"),
        (["--segments", "2", "--overlap", "-1"], "o.mp4", "--overlap"),
        (["--overlap", "4"], "o.mp4", "needs --segments"),
        (["--segments", "2", "--start", "0.1"], "o.mp4", "--start"),
        (["--segments", "2"], "frames/", "PNG"),
        (["--segments", "2"], "-", "stdout"),
        (["--segments", "2", "--input-stdin"], "o.mp4", "stdin"),
    ],
)
def test_cli_bad_segment_arguments(clip: Path, tmp_path: Path, extra: list[str], out: str, needle: str) -> None:
    src = str(clip)
    if "--input-stdin" in extra:
        extra, src = [e for e in extra if e != "--input-stdin"], "-"
    dst = out if out == "-" else str(tmp_path / out)
    r = CliRunner().invoke(cli, ["upscale", src, "-o", dst, "--model", "bicubic", "--progress", "none", *extra])
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_join_refuses_parts_encoded_differently(tmp_path: Path) -> None:
    from streamvsr.errors import OutputError
    from streamvsr.media.reader import open_reader
    from streamvsr.media.remux import concat_video

    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    make_clip(a, frames=6, width=64, height=48)
    make_clip(b, frames=6, width=96, height=48)  # another size: its packets cannot follow a's
    with open_reader(a) as r:
        info = r.info
        pts = [f.pts for f in r]
    pts += [pts[-1] + (pts[1] - pts[0]) * (i + 1) for i in range(6)]
    out = tmp_path / "joined.mp4"
    with pytest.raises(OutputError, match=r"b\.mp4: encoded differently from .*a\.mp4"):
        concat_video([a, b], out, info, pts, [0, 6])
    assert not out.exists() and not list(tmp_path.glob(".joined.mp4.partial-*"))  # nothing left behind
