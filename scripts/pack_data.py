"""Pack the training corpus into a small folder that can travel to the GPU machine (<= ~50 MiB).

DAVIS frame folders become H.264 files (crf 18, 4:2:0; the sources are JPEG q75 already) and
photos are re-encoded as JPEG q90 with the long side capped. Only ../shared/data/train is read:
validation data never enters the pack.

    .venv/bin/python scripts/pack_data.py --out .data/pack

On the GPU machine, ``--unpack PACK --out DIR`` decodes the packed videos into folders of raw frames
(``DIR/video/<clip>/00000.npy ...``, (H, W, 3) uint8 RGB, memory-mapped by the loader so a crop reads only its
rows; a random clip of an H.264 file would decode from the last keyframe) and copies the photos to
``DIR/images/``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(os.environ.get("STREAMVSR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pack_video(frames: list[Path], out: Path, crf: int) -> None:
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=24)
        first = Image.open(frames[0])
        s.width, s.height = first.width // 2 * 2, first.height // 2 * 2
        s.pix_fmt = "yuv420p"
        s.options = {"crf": str(crf), "preset": "medium"}
        for f in frames:
            im = np.asarray(Image.open(f).convert("RGB"))[: s.height, : s.width]
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(im), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def unpack_video(src: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(src)) as c:
        for n, frame in enumerate(c.decode(video=0)):
            np.save(out / f"{n:05d}.npy", frame.to_ndarray(format="rgb24"))
    return n + 1


def unpack(pack: Path, out: Path) -> None:
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    videos = sorted((pack / "video").glob("*.mp4"))
    with ThreadPoolExecutor(max(1, min(16, os.cpu_count() or 1))) as ex:
        counts = list(ex.map(lambda v: unpack_video(v, out / "video" / v.stem), videos))
    photos = 0
    if (pack / "images").is_dir():
        shutil.copytree(pack / "images", out / "images", dirs_exist_ok=True)
        photos = sum(1 for p in (pack / "images").rglob("*") if p.is_file())
    print(f"unpacked {len(videos)} clips ({sum(counts)} frames) and {photos} photos into {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(".data/pack"))
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--image-sets", default="cbsd68,csun_hays80,curban100,debian_photos")
    ap.add_argument("--unpack", type=Path, default=None, help="decode this pack into --out instead")
    args = ap.parse_args()
    if args.unpack is not None:
        unpack(args.unpack, args.out)
        return
    train = ROOT / "train"
    (args.out / "video").mkdir(parents=True, exist_ok=True)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    for clip in sorted((train / "video" / "davis2016").iterdir()):
        pack_video(sorted(clip.glob("*.jpg")), args.out / "video" / f"{clip.name}.mp4", args.crf)
    for name in args.image_sets.split(","):
        for f in sorted((train / "images" / name).iterdir()):
            im = Image.open(f).convert("RGB")
            im.thumbnail((args.max_side, args.max_side), Image.Resampling.LANCZOS)
            im.save(args.out / "images" / f"{name}_{f.stem}.jpg", quality=85)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"packed into {args.out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
