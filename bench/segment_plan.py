"""What planning ``--segments auto`` costs on this machine: frame index, scene scores, the whole plan.

    python bench/segment_plan.py [--frames 3200] [--workers 2] [--json plan.json]

Writes a textured 352x192 H.264 clip (x264 ultrafast, keyframe every 250 frames), then times, twice each:
the packet index, the scene scores of the frames within reach of the split points (what the plan decodes),
the scene scores of every frame (what it decoded before), and ``plan_segments`` itself.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamvsr.media.remux import video_index
from streamvsr.media.scenes import cut_scores
from streamvsr.pipeline.segments import plan_segments


def write_clip(path: Path, frames: int) -> None:
    tex = np.random.default_rng(0).integers(0, 256, (384, 704, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=Fraction(24))
        st.width, st.height, st.pix_fmt = 352, 192, "yuv420p"
        st.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(frames):
            y, x = i % 192, (2 * i) % 352
            rgb = np.ascontiguousarray(tex[y : y + 192, x : x + 352])
            for pk in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(pk)
        for pk in st.encode(None):
            out.mux(pk)


def best_of(fn, repeat: int = 2) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=3200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, a.frames)
        pts = video_index(clip).pts
        plan = plan_segments(clip, "auto", 49, 24, a.workers)
        reach = len(pts) // (a.workers * 4)
        windows = [
            (pts[max(0, s.begin - reach - 1)], pts[min(len(pts) - 1, s.begin + reach)]) for s in plan.segments[1:]
        ]
        rows = {
            "index_s": best_of(lambda: video_index(clip)),
            "scores_within_reach_s": best_of(lambda: cut_scores(clip, windows=windows)),
            "scores_all_frames_s": best_of(lambda: cut_scores(clip)),
            "plan_s": best_of(lambda: plan_segments(clip, "auto", 49, 24, a.workers)),
        }
    print(f"{'step':<24}{'seconds':>10}   ({a.frames} frames, {a.workers} workers)")
    for k, v in rows.items():
        print(f"{k:<24}{v:>10.3f}")
    result = {"frames": a.frames, "workers": a.workers, **rows}
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
