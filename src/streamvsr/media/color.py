"""Colour tags: FFmpeg enum values, their names, and the YUV<->RGB matrix/range actually used.

FFmpeg stores colour information as four integer tags per stream/frame (matrix coefficients,
range, primaries, transfer). We keep the raw integers (so they can be copied to the output
unchanged) and resolve the two that matter for YUV<->RGB conversion — matrix and range — to an
*effective* value, guessing like common players do when a stream is untagged.
"""

from __future__ import annotations

from av.video.format import VideoFormat
from av.video.reformatter import ColorRange, Colorspace

# FFmpeg's AVColorSpace (matrix coefficients).
SPC_RGB, SPC_BT709, SPC_UNSPECIFIED, SPC_FCC, SPC_BT470BG, SPC_SMPTE170M = 0, 1, 2, 4, 5, 6
SPC_SMPTE240M, SPC_BT2020_NCL, SPC_BT2020_CL = 7, 9, 10
# FFmpeg's AVColorRange.
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
# FFmpeg's "unspecified" for AVColorPrimaries and AVColorTransferCharacteristic.
PRI_UNSPECIFIED = 2
TRC_UNSPECIFIED = 2

SPACE_NAMES = {
    0: "rgb",
    1: "bt709",
    2: "unspecified",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
    11: "smpte2085",
    12: "chroma-derived-nc",
    13: "chroma-derived-c",
    14: "ictcp",
}
RANGE_NAMES = {0: "unspecified", 1: "tv", 2: "pc"}
PRIMARIES_NAMES = {
    1: "bt709",
    2: "unspecified",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
TRC_NAMES = {
    1: "bt709",
    2: "unspecified",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}

# Effective matrix name -> (swscale colorspace, AVColorSpace tag written to outputs).
_MATRICES = {
    "bt601": (Colorspace.ITU601, SPC_SMPTE170M),
    "bt709": (Colorspace.ITU709, SPC_BT709),
    "bt2020": (Colorspace.BT2020, SPC_BT2020_NCL),
    "smpte240m": (Colorspace.SMPTE240M, SPC_SMPTE240M),
    "fcc": (Colorspace.FCC, SPC_FCC),
}
MATRICES = tuple(_MATRICES)


def tag_name(table: dict[int, str], value: int) -> str:
    """Readable name of an FFmpeg colour tag value (e.g. ``tag_name(SPACE_NAMES, 1) == "bt709"``)."""
    return table.get(int(value), f"unknown({int(value)})")


def pix_fmt_is_rgb(pix_fmt: str) -> bool:
    """True for RGB/GBR/palette pixel formats (no YUV matrix involved)."""
    fmt = VideoFormat(pix_fmt)
    return bool(fmt.is_rgb or fmt.has_palette)


def pix_fmt_bit_depth(pix_fmt: str) -> int:
    """Largest component depth of a pixel format, e.g. 8 for yuv420p, 10 for yuv420p10le."""
    comps = VideoFormat(pix_fmt).components
    return max((c.bits for c in comps), default=8)


def pix_fmt_chroma(pix_fmt: str) -> str:
    """Chroma subsampling of a YUV format as "420", "422" or "444" (RGB and gray give "420")."""
    fmt = VideoFormat(pix_fmt)
    if fmt.is_rgb or fmt.has_palette or len(fmt.components) < 3:
        return "420"
    cw, ch = fmt.chroma_width(64), fmt.chroma_height(64)
    if cw == 64 and ch == 64:
        return "444"
    if cw == 32 and ch == 64:
        return "422"
    return "420"


def effective_matrix(color_space: int, pix_fmt: str, width: int, height: int) -> str:
    """The YUV matrix to use: the tag when it is one we can convert, else a size-based guess.

    Untagged streams follow the convention of common players: BT.709 for HD (width >= 1280 or
    height >= 720), BT.601 below. RGB pixel formats give ``"rgb"`` (no matrix).
    """
    if pix_fmt_is_rgb(pix_fmt):
        return "rgb"
    space = int(color_space)
    if space == SPC_BT709:
        return "bt709"
    if space in (SPC_BT470BG, SPC_SMPTE170M):
        return "bt601"
    if space in (SPC_BT2020_NCL, SPC_BT2020_CL):
        return "bt2020"
    if space == SPC_SMPTE240M:
        return "smpte240m"
    if space == SPC_FCC:
        return "fcc"
    return "bt709" if (width >= 1280 or height >= 720) else "bt601"


def effective_full_range(color_range: int, pix_fmt: str) -> bool:
    """True when samples use the full range: tagged "pc", a yuvj* format, or an RGB format."""
    if int(color_range) == RANGE_FULL:
        return True
    if int(color_range) == RANGE_LIMITED:
        return False
    return pix_fmt.startswith("yuvj") or pix_fmt_is_rgb(pix_fmt)


def sws_colorspace(matrix: str) -> Colorspace:
    """swscale colorspace for an effective matrix name ("rgb" maps to BT.709, unused)."""
    return _MATRICES.get(matrix, _MATRICES["bt709"])[0]


def sws_range(full_range: bool) -> ColorRange:
    """swscale range for YUV data."""
    return ColorRange.JPEG if full_range else ColorRange.MPEG


def matrix_tag(matrix: str) -> int:
    """AVColorSpace tag to write for an effective matrix name."""
    return _MATRICES.get(matrix, _MATRICES["bt709"])[1]
