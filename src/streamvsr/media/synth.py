"""Small synthetic clips for tests, benchmarks and examples (deterministic, made with PyAV)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange

from .color import matrix_tag, pix_fmt_bit_depth, pix_fmt_is_rgb, sws_colorspace, sws_range


def pattern_frame(i: int, width: int, height: int, sixteen: bool = False) -> np.ndarray:
    """A smooth colour gradient with a moving square; frame ``i``. Returns ``(H, W, 3)`` uint8/uint16."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = x / max(width - 1, 1)
    g = y / max(height - 1, 1)
    b = 0.5 + 0.5 * np.sin((x + y) / 7.0 + i * 0.3)
    img = np.stack([r, g, b], axis=-1)  # (H, W, 3)
    s = max(2, min(width, height) // 4)
    x0 = (3 * i) % max(width - s, 1)
    y0 = (2 * i) % max(height - s, 1)
    img[y0 : y0 + s, x0 : x0 + s] = (0.9, 0.2, 0.1)
    scale = 65535.0 if sixteen else 255.0
    return np.clip(np.round(img * scale), 0, scale).astype(np.uint16 if sixteen else np.uint8)


def make_clip(
    path: str | Path,
    *,
    frames: int = 12,
    width: int = 64,
    height: int = 48,
    fps: int | Fraction = 24,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    format: str | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    audio: bool = False,
    audio_codec: str | None = None,
    subtitles: Sequence[tuple[float, float, str]] = (),
    rotation: int = 0,
    matrix: str | None = None,
    full_range: bool = False,
    primaries: int | None = None,
    trc: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode a test clip of ``pattern_frame`` frames; optional tone audio and subtitles.

    pts: per-frame timestamps in ``time_base`` (default ``1/fps`` and 0, 1, 2, ...): give an
    irregular list for a variable-frame-rate clip. matrix: "bt601"/"bt709"/"bt2020" tags the
    stream and is used for RGB->YUV (None: untagged, swscale default). subtitles: (start s,
    end s, text) cues as a SubRip stream (matroska/mkv only).
    """
    path = Path(path)
    fps = Fraction(fps)
    tb = time_base or 1 / fps
    pts = list(pts) if pts is not None else [round(i / (fps * tb)) for i in range(frames)]
    sixteen = pix_fmt_bit_depth(pix_fmt) > 8
    with av.open(str(path), "w", format=format) as out:
        vs = out.add_stream(codec, rate=fps, options=dict(options or {}))
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.codec_context.time_base = tb
        vs.time_base = tb
        if rotation:
            vs.set_display_rotation(rotation)
        sws_args = {}
        if matrix is not None and not pix_fmt_is_rgb(pix_fmt):
            vs.codec_context.colorspace = matrix_tag(matrix)
            vs.codec_context.color_range = 2 if full_range else 1
            sws_args = {
                "src_colorspace": sws_colorspace(matrix),
                "dst_colorspace": sws_colorspace(matrix),
                "src_color_range": ColorRange.JPEG,
                "dst_color_range": sws_range(full_range),
            }
        if primaries is not None:
            vs.codec_context.color_primaries = primaries
        if trc is not None:
            vs.codec_context.color_trc = trc
        a_stream = None
        if audio:
            a_codec = audio_codec or ("libopus" if (format or path.suffix) in ("webm", ".webm") else "aac")
            a_stream = out.add_stream(a_codec, rate=48000)
            a_stream.layout = "mono"
        s_stream = out.add_mux_stream("subrip") if subtitles else None
        if s_stream is not None:
            s_stream.time_base = Fraction(1, 1000)
        for i, p in enumerate(pts):
            rgb = pattern_frame(i, width, height, sixteen)
            frame = av.VideoFrame.from_ndarray(rgb, "rgb48le" if sixteen else "rgb24")
            frame = frame.reformat(format=pix_fmt, **sws_args)
            frame.pts = p
            frame.time_base = tb
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if a_stream is not None:
            _write_tone(out, a_stream, float(pts[-1] * tb + 1 / fps) if pts else 0.5)
        if s_stream is not None:
            for start, end, text in subtitles:
                pk = av.Packet(text.encode())
                pk.pts = pk.dts = round(start * 1000)
                pk.duration = round((end - start) * 1000)
                pk.time_base = Fraction(1, 1000)
                pk.stream = s_stream
                out.mux(pk)
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    """A 440 Hz tone, ``seconds`` long, encoded into ``stream``."""
    rate, chunk = 48000, 960
    total = int(seconds * rate)
    for t0 in range(0, total, chunk):
        n = min(chunk, total - t0)
        t = (np.arange(n) + t0) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]  # (1, n)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = t0
        frame.time_base = Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
