"""Cheap scene-cut scores: luma histograms of a downscaled decode, compared frame to frame."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import av
import av.error
import numpy as np

from ..errors import InputError
from .reader import error_reason

# 8-bit formats whose first plane is the luma: read in place, every k-th pixel (no scaler)
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"})


def _luma(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """About ``width x height`` luma samples of ``frame``: its Y plane decimated, or a scaled gray copy for
    other pixel formats. (Decimating needs no scaler, which would otherwise run on every frame.)"""
    if frame.format.name not in _LUMA_FIRST:
        return frame.reformat(width=width, height=height, format="gray").to_ndarray()
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    return y[:: max(1, plane.height // height), :: max(1, plane.width // width)]


def cut_scores(
    src: str | Path,
    *,
    windows: Sequence[tuple[int, int]] | None = None,
    width: int = 64,
    height: int = 36,
    bins: int = 32,
) -> dict[int, float]:
    """{pts: score} for the decoded video frames of ``src``; score in [0, 1] is how much the frame's luma
    histogram differs from the previous frame's (half the L1 distance of the normalised histograms;
    0 for the first frame). A hard cut scores high (typically > 0.3), motion within a shot low.

    ``windows``: only the frames with ``first <= pts <= last`` for each ``(first, last)`` (stream pts, in
    ascending order): the decoder seeks to the keyframe at or before ``first`` and stops after ``last``, so a
    few windows of a long video cost a few windows of decoding. ``first`` itself is scored against the frame
    decoded before it (0 when the window starts at that keyframe), so start a window one frame early."""
    try:
        c = av.open(str(src), "r")
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"{src}: not a readable video ({error_reason(e)})") from None
    scores: dict[int, float] = {}
    with c:
        streams = [s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        if not streams:
            raise InputError(f"{src}: has no video stream")
        vs = streams[0]
        vs.thread_type = "AUTO"
        try:
            for first, last in windows if windows is not None else [(None, None)]:
                if first is not None:
                    with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):  # a pipe: read on
                        c.seek(int(first), stream=vs, backward=True)
                prev: np.ndarray | None = None
                for frame in c.decode(vs):
                    if frame.pts is None:
                        continue
                    pts = int(frame.pts)
                    if last is not None and pts > last:
                        break
                    y = _luma(frame, width, height)
                    hist = np.bincount((y.ravel().astype(np.int32) * bins) >> 8, minlength=bins) / y.size
                    if first is None or pts >= first:
                        scores[pts] = 0.0 if prev is None else float(np.abs(hist - prev).sum() / 2)
                    prev = hist
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(f"{src}: unreadable data while looking for scene cuts ({error_reason(e)})") from None
    return scores
