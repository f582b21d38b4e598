"""What a reader knows about its input (``StreamInfo``) and what it yields (``DecodedFrame``)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .color import PRIMARIES_NAMES, RANGE_NAMES, SPACE_NAMES, TRC_NAMES, tag_name


@dataclass(frozen=True)
class StreamInfo:
    """Facts about the video stream a :class:`VideoReader` decodes.

    width, height:     stored (coded) frame size, i.e. the size of ``DecodedFrame.rgb``. A player
                       shows the video turned by ``rotation``; frames are *not* rotated here, the
                       writer copies the rotation tag instead.
    fps:               frame rate (average rate for VFR streams), exact ``Fraction``.
    time_base:         unit of ``DecodedFrame.pts``.
    frame_count:       frames the reader is expected to yield, ``None`` when unknown;
                       ``frame_count_exact`` is False when it is an estimate (container without a
                       frame count, or a ``start``/``duration`` trim).
    duration:          seconds of the selected range, ``None`` when unknown.
    bit_depth:         8, or 10/12/16 for high bit depth sources (then ``rgb`` is uint16).
    pix_fmt, codec:    FFmpeg names of the source pixel format and codec.
    color_space, color_range, color_primaries, color_trc:
                       raw FFmpeg tag values of the source (2/0 = unspecified); see ``*_name``.
    matrix, full_range: the YUV matrix ("bt601", "bt709", "bt2020", "smpte240m", "fcc", or
                       "rgb") and range the reader uses for YUV->RGB, and the writer for RGB->YUV
                       (untagged: BT.709 for HD, BT.601 below, limited range).
    rotation:          display rotation in degrees counter-clockwise (0, 90, 180, 270), from the
                       display matrix side data.
    has_audio, has_subtitles: whether the source has such streams (copied by the writer).
    is_vfr:            True/False when the container lets us tell, else None.
    start_time:        seconds where the video stream starts; ``start`` is measured from here.
    source:            path of the input, ``None`` for stdin.
    kind:              "video" (a file), "pipe" (stdin) or "images" (a folder of images).

    For an image folder the colour fields hold what the writer should use for a video output
    (BT.709, limited range), since every image carries its own tags.
    """

    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frame_count: int | None
    frame_count_exact: bool
    duration: float | None
    bit_depth: int
    pix_fmt: str
    codec: str
    color_space: int
    color_range: int
    color_primaries: int
    color_trc: int
    matrix: str
    full_range: bool
    rotation: int
    has_audio: bool
    has_subtitles: bool
    is_vfr: bool | None
    start_time: float
    source: str | None
    kind: str

    @property
    def color_space_name(self) -> str:
        return tag_name(SPACE_NAMES, self.color_space)

    @property
    def color_range_name(self) -> str:
        return tag_name(RANGE_NAMES, self.color_range)

    @property
    def color_primaries_name(self) -> str:
        return tag_name(PRIMARIES_NAMES, self.color_primaries)

    @property
    def color_trc_name(self) -> str:
        return tag_name(TRC_NAMES, self.color_trc)

    @property
    def dtype(self) -> type:
        """numpy dtype of the RGB frames: uint8 for 8-bit sources, uint16 above."""
        return np.uint16 if self.bit_depth > 8 else np.uint8


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded frame.

    index:      0-based position among the frames the reader yields.
    pts:        presentation timestamp in units of ``time_base`` (the source's).
    rgb:        ``(H, W, 3)`` RGB, uint8 for 8-bit sources, uint16 using the full 0..65535 scale
                for high bit depth sources.
    """

    index: int
    pts: int
    time_base: Fraction
    rgb: np.ndarray  # (H, W, 3)

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)
