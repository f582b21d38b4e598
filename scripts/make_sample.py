"""Make assets/sample.mp4: a short camera pan + zoom over a real photo, with an AAC tone track.

The photo is scikit-image's ``coffee`` (CC0, Rachel Michetti). Each frame is a sub-pixel crop
along a smooth path, rendered at 4x the target size with a cubic warp and then downscaled with
an area filter (so the motion is smooth and alias-free), encoded as H.264 (BT.709, limited range).

    .venv/bin/python scripts/make_sample.py --out assets/sample.mp4
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace
from skimage import data


def crop_path(t: float, photo_w: int, photo_h: int, aspect: float) -> tuple[float, float, float]:
    """Crop window (centre x, centre y, width) at progress ``t`` in [0, 1]: pan right, zoom in."""
    ease = 0.5 - 0.5 * np.cos(np.pi * t)  # smooth start and stop
    width = photo_w * (0.88 - 0.30 * ease)
    height = width / aspect
    cx = photo_w * (0.45 + 0.15 * ease)
    cy = photo_h * (0.52 - 0.06 * ease)
    # keep the window inside the photo (no invented border pixels)
    cx = float(np.clip(cx, width / 2, photo_w - width / 2))
    cy = float(np.clip(cy, height / 2, photo_h - height / 2))
    return cx, cy, width


def render_frame(photo: np.ndarray, t: float, out_w: int, out_h: int, oversample: int = 4) -> np.ndarray:
    """One ``(out_h, out_w, 3)`` uint8 frame: cubic warp at ``oversample`` x size, then area downscale."""
    ph, pw = photo.shape[:2]
    cx, cy, width = crop_path(t, pw, ph, out_w / out_h)
    big_w, big_h = out_w * oversample, out_h * oversample
    s = width / big_w  # source pixels per rendered pixel
    # maps rendered pixel centres to photo coordinates (sub-pixel)
    m = np.array([[s, 0.0, cx - s * (big_w - 1) / 2], [0.0, s, cy - s * (big_h - 1) / 2]], np.float64)
    big = cv2.warpAffine(
        photo, m, (big_w, big_h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
    )
    return cv2.resize(big, (out_w, out_h), interpolation=cv2.INTER_AREA)


def tone(seconds: float, rate: int) -> np.ndarray:
    """A soft A-major chord with fades, ``(1, n)`` float32."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(a * np.sin(2 * np.pi * f * t) for f, a in ((220.0, 0.5), (277.18, 0.3), (329.63, 0.3)))
    fade = np.clip(np.minimum(t / 0.3, (seconds - t) / 0.5), 0, 1)
    return (0.25 * wave * fade).astype(np.float32)[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("assets/sample.mp4"))
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--frames", type=int, default=72)
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--crf", type=int, default=18)
    args = ap.parse_args()

    photo = data.coffee()  # (400, 600, 3) uint8 RGB
    fps = Fraction(args.fps)
    with av.open(str(args.out), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": str(args.crf), "preset": "slow"})
        vs.width, vs.height, vs.pix_fmt = args.width, args.height, "yuv420p"
        vs.codec_context.time_base = 1 / fps
        cc = vs.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # BT.709, limited
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for i in range(args.frames):
            rgb = render_frame(photo, i / max(args.frames - 1, 1), args.width, args.height)
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(
                format="yuv420p",
                src_colorspace=Colorspace.ITU709,
                dst_colorspace=Colorspace.ITU709,
                src_color_range=ColorRange.JPEG,
                dst_color_range=ColorRange.MPEG,
            )
            frame.pts = i
            frame.time_base = 1 / fps
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        samples = tone(args.frames / args.fps, 48000)
        for t0 in range(0, samples.shape[1], 1024):
            chunk = np.ascontiguousarray(samples[:, t0 : t0 + 1024])
            af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = 48000, t0, Fraction(1, 48000)
            out.mux(audio.encode(af))
        out.mux(audio.encode(None))
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KiB, {args.frames} frames {args.width}x{args.height} @ {fps} fps)")


if __name__ == "__main__":
    main()
