"""Helpers of the CLI end-to-end runs on the GPU (the shell scripts in docs/runs/*/ that time `streamvsr upscale`).

python3 bench/cli_run.py prepare --frames 3200    # /tmp/w13: random official-size weights (CUDA);
                                                   # /tmp/in.mp4 (FRAMES frames) and /tmp/warm.mp4 (49), 352x192
python3 bench/cli_run.py rate /tmp/p.jsonl LABEL  # from the CLI's `--progress json` lines: the time to the
                                                   # first output frame and the rate from frame 400 on
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multigpu import write_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def prepare(frames: int, weights: Path, video: Path, warm: Path) -> None:
    """Random official-size weights and two synthetic 352x192 H.264 clips: the timed one and a warm-up one."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/make_random_model.py"), str(weights), "--size", "official-1.3b"]
        + ["--device", "cuda"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    write_video(video, frames, 192, 352, 0)
    write_video(warm, 49, 192, 352, 1)


def progress_rate(lines: list[str], after: int) -> dict:
    """First-output time and the output rate from frame ``after`` on, from `--progress json` lines."""
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "frames" in row:
            rows.append(row)
    if not rows:
        raise ValueError("no progress lines with frames")
    first = next(r for r in rows if r["frames"] >= 1)
    a = next(r for r in rows if r["frames"] >= after)
    z = rows[-1]
    rate = (z["frames"] - a["frames"]) / (z["elapsed"] - a["elapsed"])
    return {"frames": z["frames"], "fps": z["fps"], "first_s": first["elapsed"], "after": after, "rate": rate}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--frames", type=int, default=3200)
    p.add_argument("--weights", type=Path, default=Path("/tmp/w13"))
    p.add_argument("--video", type=Path, default=Path("/tmp/in.mp4"))
    p.add_argument("--warm", type=Path, default=Path("/tmp/warm.mp4"))
    r = sub.add_parser("rate")
    r.add_argument("jsonl", type=Path)
    r.add_argument("label")
    r.add_argument("--after", type=int, default=400)
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        prepare(a.frames, a.weights, a.video, a.warm)
        return
    try:
        s = progress_rate(a.jsonl.read_text().splitlines(), a.after)
    except (OSError, ValueError, StopIteration) as e:
        raise SystemExit(f"error: {a.jsonl}: {e or 'too few frames'}") from None
    print(
        f"{a.label}: {s['frames']} frames, fps {s['fps']}, first output at {s['first_s']:.2f} s, "
        f"frames {a.after}..{s['frames']}: {s['rate']:.2f} fps"
    )


if __name__ == "__main__":
    main()
