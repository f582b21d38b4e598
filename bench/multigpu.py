"""Multi-GPU throughput of `streamvsr batch` and `streamvsr upscale --segments` against one GPU.

Writes synthetic test videos (a moving, textured pattern, H.264), fills the compile caches of all NPROC GPUs
with one short untimed batch run, then times, each under torchrun:

- batch:    `streamvsr batch IN OUT` over VIDEOS videos of FRAMES frames, on 1 and on NPROC GPUs;
- segments: one video of LONG_FRAMES frames, a plain `streamvsr upscale` on 1 GPU against
            `upscale --segments auto` on NPROC GPUs.

With `--reuse` a second run in the same WORK folder keeps the first one's test videos and skips the warm-up.
With `--repeats R` the pair (1 GPU, then NPROC GPUs) runs R times in turn, each compared with its own one-GPU run.

Two figures per run: wall-clock throughput of the whole command (model loading included) and processing
throughput (frames over the slowest rank's processing seconds, as the CLI reports them, model loading
excluded). Batch runs add the steady throughput: each rank's videos after its first, summed over the ranks (what
a long batch approaches), and each process's fixed cost: its first video's seconds minus the mean of its later
ones (the slowest rank's). The warm-up videos are as long as the timed ones, so that every shape of a timed run
(the KV ring's wrap, the flush) is compiled before the clock starts. Prints a table and writes JSON.

    python scripts/make_random_model.py /tmp/w --size official-1.3b --device cuda
    python bench/multigpu.py --weights /tmp/w --nproc 2 --json multigpu.json
    python bench/multigpu.py --weights /tmp/w --cli-args "--compile --encoder-opt preset=veryfast"
    python bench/multigpu.py --model bicubic --nproc 2 --in-size 90x160 --frames 48 --long-frames 96  # CPU check
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames: int, h: int, w: int, seed: int, fps: int = 24) -> None:
    """A textured pattern that pans and changes brightness over time (not trivially compressible)."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 256, (h * 2, w * 2, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=Fraction(fps))
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(frames):
            dy, dx = (i * 1) % h, (i * 2) % w
            img = tex[dy : dy + h, dx : dx + w].astype(np.float32)
            img = img * 0.5 + 64 * (1 + np.sin(xx / 7.0 + i / 5.0))[..., None] + 32 * np.cos(yy / 11.0)[..., None]
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode():
            out.mux(p)


def torchrun(nproc: int, args: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Run ``streamvsr ARGS`` under torchrun with NPROC ranks, ``env`` added to this process's environment; returns
    wall seconds (raises on failure)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += ["-m", "streamvsr.cli.main", *args]
    t0 = time.perf_counter()
    with open(log, "w") as f:
        full_env = {**os.environ, **env} if env else None
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=full_env).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"command failed ({rc}): {' '.join(cmd)}\n" + "\n".join(tail))
    return wall


def parse_env(items: list[str]) -> dict[str, str]:
    """["NAME=VALUE", ...] -> {NAME: VALUE} (a clear error for an item without "=")."""
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--timed-env takes NAME=VALUE, got {item!r}")
        env[name] = value
    return env


_VIDEO = re.compile(r"\[rank (\d+)\] .*: (\d+) frames in ([\d.]+)s")
_WROTE = re.compile(r"wrote .*: (\d+) frames .* in ([\d.]+)s")


def batch_videos(log: Path) -> dict[int, list[tuple[int, float]]]:
    """Per rank, its videos' (frames, seconds) in the order it ran them."""
    per_rank: dict[int, list[tuple[int, float]]] = {}
    for m in _VIDEO.finditer(log.read_text(errors="replace")):
        per_rank.setdefault(int(m[1]), []).append((int(m[2]), float(m[3])))
    return per_rank


def batch_processing_s(log: Path) -> float:
    """The slowest rank's summed per-video seconds (model loading excluded)."""
    return max(sum(s for _, s in v) for v in batch_videos(log).values())


def batch_steady(log: Path) -> dict:
    """Steady throughput (every rank's videos after its first: frames over seconds, summed over the ranks) and the
    fixed cost of a process (its first video's seconds minus the mean of its later ones; the largest of the ranks).
    None where a rank ran a single video."""
    per_rank = batch_videos(log)
    if any(len(v) < 2 for v in per_rank.values()):
        return {"steady_fps": None, "first_extra_s": None}
    fps = sum(sum(f for f, _ in v[1:]) / sum(s for _, s in v[1:]) for v in per_rank.values())
    extra = max(v[0][1] - sum(s for _, s in v[1:]) / len(v[1:]) for v in per_rank.values())
    return {"steady_fps": fps, "first_extra_s": extra}


def wrote_s(log: Path) -> float:
    """Seconds of the final `wrote ...` line (rank 0: its segments, waiting for the others, joining)."""
    found = _WROTE.findall(log.read_text(errors="replace").replace("\r", "\n"))
    return float(found[-1][1])


def _row(mode: str, gpus: int, frames: int, wall_s: float, proc_s: float) -> dict:
    return {"mode": mode, "gpus": gpus, "frames": frames, "wall_s": wall_s, "proc_s": proc_s}


def _print_table(rows: list[dict]) -> None:
    print(f"\n{'mode':<9} {'rep':>3} {'GPUs':>4} {'frames':>6} {'wall s':>7} {'wall fps':>8} {'x':>5} {'proc s':>7} "
          f"{'proc fps':>8} {'x':>5} {'steady fps':>10} {'x':>5} {'1st extra s':>11}")  # fmt: skip
    for r in rows:
        wall = f"{r['wall_s']:>7.1f} {r['wall_fps']:>8.2f} {r['wall_speedup']:>5.2f}"
        proc = f"{r['proc_s']:>7.1f} {r['proc_fps']:>8.2f} {r['proc_speedup']:>5.2f}"
        if r.get("steady_fps") is not None:
            steady = f"{r['steady_fps']:>10.2f} {r['steady_speedup']:>5.2f} {r['first_extra_s']:>11.1f}"
        else:
            steady = f"{'-':>10} {'-':>5} {'-':>11}"
        print(f"{r['mode']:<9} {r.get('rep', 0):>3} {r['gpus']:>4} {r['frames']:>6} {wall} {proc} {steady}")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="flashvsr")
    p.add_argument("--weights", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--in-size", default="192x352", help="input HxW (x4 output: 768x1408)")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--frames", type=int, default=300, help="frames per batch video")
    p.add_argument("--long-frames", type=int, default=1200, help="frames of the segments video")
    p.add_argument("--warm-frames", type=int, default=None, help="frames of each warm-up video (default: --frames)")
    p.add_argument("--repeats", type=int, default=1, help="run the 1-GPU and NPROC-GPU pair this many times")
    p.add_argument("--modes", default="batch,segments")
    p.add_argument("--work", default="/tmp/multigpu")
    p.add_argument("--json", default=None)
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep WORK's test videos from an earlier run of the same sizes and skip the warm-up (that run filled "
        "the caches); earlier outputs are removed",
    )
    p.add_argument(
        "--cli-args",
        default="",
        help="extra options for every streamvsr command, e.g. '--compile --encoder-opt preset=veryfast'",
    )
    p.add_argument(
        "--timed-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the timed runs only, not the warm-up (repeatable), e.g. TORCHINDUCTOR_COMPILE_THREADS=1",
    )
    a = p.parse_args(argv)
    timed_env = parse_env(a.timed_env)
    h, w = (int(v) for v in a.in_size.lower().split("x"))
    work = Path(a.work)
    model = ["--model", a.model, "--dtype", a.dtype] + (["--weights", a.weights] if a.weights else [])
    model += shlex.split(a.cli_args)
    warm = None
    if a.reuse:
        videos = [work / "in" / f"v{i}.mp4" for i in range(a.videos)] + [work / "long.mp4"]
        missing = [str(v) for v in videos if not v.is_file()]
        if missing:
            raise SystemExit(f"--reuse: no earlier test videos in {work} ({', '.join(missing[:3])})")
        for old in [*work.glob("out*"), *work.glob("long[0-9]*.mp4")]:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        print(f"reusing the test videos in {work}; no warm-up", flush=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
        (work / "in").mkdir(parents=True)
        t0 = time.perf_counter()
        for i in range(a.videos):
            write_video(work / "in" / f"v{i}.mp4", a.frames, h, w, seed=i)
        write_video(work / "long.mp4", a.long_frames, h, w, seed=99)
        (work / "warm").mkdir()
        for r in range(a.nproc):  # one per rank: every GPU fills its own compile cache
            write_video(work / "warm" / f"w{r}.mp4", a.warm_frames or a.frames, h, w, seed=7 + r)
        print(f"wrote test videos in {time.perf_counter() - t0:.1f}s", flush=True)
        # Compiled graphs name their device (cuda:0, cuda:1, ...), so a warm-up on one GPU leaves rank 1's cache
        # cold: on a fresh machine rank 1 then compiled while rank 0 worked (nvidia-smi dmon: the GPUs took turns).
        warm = torchrun(a.nproc, ["batch", str(work / "warm"), str(work / "warm_x"), *model], work / "warm.log")
        print(f"untimed warm-up run on {a.nproc} ranks (fills every GPU's compile cache): {warm:.1f}s", flush=True)
    rows = []
    modes = a.modes.split(",")
    for rep in range(a.repeats):  # 1 GPU, NPROC GPUs, 1 GPU, ...: the order's effect shows across repeats
        sfx = f"_{rep}" if rep else ""  # the first repeat's logs and outputs keep their names
        if "batch" in modes:
            total = a.videos * a.frames
            for n in dict.fromkeys((1, a.nproc)):  # once where NPROC is 1: a second run would skip finished outputs
                log = work / f"batch{n}{sfx}.log"
                wall = torchrun(n, ["batch", str(work / "in"), str(work / f"out{n}{sfx}"), *model], log, timed_env)
                rows.append(_row("batch", n, total, wall, batch_processing_s(log)) | batch_steady(log) | {"rep": rep})
                print(rows[-1], flush=True)
        if "segments" in modes:
            for n in dict.fromkeys((1, a.nproc)):
                log = work / f"seg{n}{sfx}.log"
                extra = [] if n == 1 else ["--segments", "auto"]
                dst = work / f"long{n}{sfx}.mp4"
                wall = torchrun(n, ["upscale", str(work / "long.mp4"), "-o", str(dst), *model, *extra], log, timed_env)
                rows.append(_row("segments", n, a.long_frames, wall, wrote_s(log)) | {"rep": rep})
                with av.open(str(dst)) as c:  # every frame arrived
                    rows[-1]["output_frames"] = sum(1 for _ in c.demux(video=0) if _.size)
                print(rows[-1], flush=True)
    base = {(r["mode"], r["rep"]): r for r in rows if r["gpus"] == 1}  # each run against its repeat's one GPU
    for r in rows:
        r["wall_fps"] = r["frames"] / r["wall_s"]
        r["proc_fps"] = r["frames"] / r["proc_s"]
        b = base[(r["mode"], r["rep"])]
        r["wall_speedup"] = b["wall_s"] / r["wall_s"]
        r["proc_speedup"] = b["proc_s"] / r["proc_s"]
        if r.get("steady_fps") is not None and b.get("steady_fps"):
            r["steady_speedup"] = r["steady_fps"] / b["steady_fps"]
    _print_table(rows)
    if a.json:
        meta = {"argv": argv if argv is not None else sys.argv[1:], "warmup_s": warm, "timed_env": timed_env}
        try:
            import torch

            meta["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        except Exception:  # noqa: BLE001
            pass
        Path(a.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
