"""Writers: video containers (mp4/mkv/mov/webm/nut), stdout pipes, and PNG sequences.

Frames are encoded as they arrive; audio and subtitle packets of ``copy_from`` are copied
(never re-encoded) and interleaved with the video as it is produced, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import errno
import re
import sys
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.video.reformatter import ColorRange, Interpolation, VideoReformatter

from ..errors import OutputError
from .atomic import AtomicTarget, same_file
from .color import (
    RANGE_FULL,
    RANGE_LIMITED,
    SPC_RGB,
    SPC_UNSPECIFIED,
    effective_matrix,
    matrix_tag,
    pix_fmt_bit_depth,
    pix_fmt_chroma,
    pix_fmt_is_rgb,
    sws_colorspace,
    sws_range,
)
from .probe import StreamInfo
from .reader import SWS_THREADS, error_reason
from .worker import OrderedWorker

# container suffix / format name -> FFmpeg muxer
CONTAINER_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm"}
FORMATS = {"mp4": "mp4", "mkv": "matroska", "matroska": "matroska", "mov": "mov", "webm": "webm", "nut": "nut"}
PIPE_FORMATS = frozenset({"matroska", "nut", "webm"})
DEFAULT_CODECS = {"webm": "libvpx-vp9"}
DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18
CRF_CODECS = frozenset({"libx264", "libx264rgb", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"})
PNG_PATTERN = "frame_%06d.png"
WORKER_DEPTH = 4  # frames waiting for the background encoder


def _is_enospc(e: BaseException) -> bool:
    return isinstance(e, OSError) and getattr(e, "errno", None) == errno.ENOSPC


def _stdout_binary() -> Any:
    """stdout for binary data, unbuffered on the Python side (so a failed write leaves nothing
    behind for the interpreter to retry at exit)."""
    sys.stdout.flush()
    buf = sys.stdout.buffer
    buf.flush()
    return getattr(buf, "raw", buf)


def parse_bitrate(value: int | str) -> int:
    """Bits per second from an int or a string like ``"8M"``, ``"2500k"``."""
    if isinstance(value, int):
        rate = value
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", str(value))
        if not m:
            raise OutputError(f"bitrate {value!r}: expected a number like 8M or 2500k")
        rate = int(float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()])
    if rate <= 0:
        raise OutputError(f"bitrate {value!r} must be positive")
    return rate


class VideoWriter:
    """Encode RGB frames to one output. ``write`` each frame, then ``close`` (or ``abort``).

    Use as a context manager: a clean exit closes (finalises and renames into place), an
    exception (KeyboardInterrupt included) aborts and leaves no output behind.
    """

    path: Path | None  # final destination, None for stdout
    frames_written: int

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _check_frame(rgb: np.ndarray, width: int, height: int) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.shape != (height, width, 3):
        shape = getattr(rgb, "shape", None)
        raise ValueError(f"expected an RGB array of shape {(height, width, 3)}, got {shape}")
    if rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 RGB, got {rgb.dtype}")


def _to_depth(rgb: np.ndarray, sixteen: bool) -> np.ndarray:
    """Convert between uint8 and full-scale uint16 RGB."""
    if sixteen and rgb.dtype == np.uint8:
        return rgb.astype(np.uint16) * 257
    if not sixteen and rgb.dtype == np.uint16:
        return ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return rgb


def _choose_pix_fmt(codec: av.codec.Codec, info: StreamInfo) -> str:
    names = [f.name for f in (codec.video_formats or ())]
    if not names:
        raise OutputError(f"encoder {codec.name} lists no pixel formats")
    chroma = "420" if info.matrix == "rgb" else pix_fmt_chroma(info.pix_fmt)
    high = info.bit_depth > 8
    wanted = [f"yuv{chroma}p10le", "yuv420p10le"] if high else []
    wanted += [f"yuv{chroma}p", "yuv420p"]
    for name in wanted:
        if name in names:
            if high and pix_fmt_bit_depth(name) == 8:
                warnings.warn(f"{codec.name} cannot encode more than 8 bits here; writing 8-bit video", stacklevel=3)
            return name
    return names[0]


class ContainerWriter(VideoWriter):
    """A video stream encoded into a container file (through a temporary file) or stdout."""

    def __init__(
        self,
        target: AtomicTarget | None,
        muxer: str,
        info: StreamInfo,
        width: int,
        height: int,
        *,
        codec: str | None,
        crf: float | None,
        bitrate: int | str | None,
        pix_fmt: str | None,
        options: dict[str, Any] | None,
        copy_from: str | Path | None,
        copy_audio: bool,
        copy_subtitles: bool,
        start: float | None,
        duration: float | None,
        threads: int,
        background: bool,
    ) -> None:
        self._target = target
        self._worker: OrderedWorker | None = None
        self.path = target.dst if target else None
        self._label = str(self.path) if self.path else "<stdout>"
        self.width, self.height = width, height
        self.frames_written = 0
        self._closed = False
        self._side_in: av.container.InputContainer | None = None
        self._out: av.container.OutputContainer | None = None
        try:
            self._open(
                muxer, info, codec_name=codec, crf=crf, bitrate=bitrate, pix_fmt=pix_fmt, options=options,
                copy_from=copy_from, copy_audio=copy_audio, copy_subtitles=copy_subtitles, start=start,
                duration=duration, threads=threads,
            )  # fmt: skip
        except BaseException as e:
            self.abort()
            if isinstance(e, OutputError):
                raise
            if _is_enospc(e):
                raise OutputError(f"{self._label}: disk full") from None
            if isinstance(e, (av.error.FFmpegError, OSError, ValueError)):
                raise OutputError(f"{self._label}: cannot start writing ({error_reason(e)})") from None
            raise
        if background:
            self._worker = OrderedWorker(self._encode_frame, depth=WORKER_DEPTH)

    # -- setup ------------------------------------------------------------------------------------
    def _open(
        self,
        muxer: str,
        info: StreamInfo,
        codec_name: str | None,
        crf: float | None,
        bitrate: int | str | None,
        pix_fmt: str | None,
        options: dict[str, Any] | None,
        copy_from: str | Path | None,
        copy_audio: bool,
        copy_subtitles: bool,
        start: float | None,
        duration: float | None,
        threads: int,
    ) -> None:
        codec_name = codec_name or DEFAULT_CODECS.get(muxer, DEFAULT_CODEC)
        try:
            codec = av.codec.Codec(codec_name, "w")
        except (av.error.FFmpegError, ValueError):
            raise OutputError(f"unknown video encoder {codec_name!r}") from None
        if codec.type != "video":
            raise OutputError(f"{codec_name!r} is not a video encoder")
        if pix_fmt is None:
            pix_fmt = _choose_pix_fmt(codec, info)
        elif pix_fmt not in {f.name for f in codec.video_formats or ()}:
            names = ", ".join(f.name for f in codec.video_formats or ())
            raise OutputError(f"{codec_name} cannot encode pix_fmt {pix_fmt} (supported: {names})")
        chroma = pix_fmt_chroma(pix_fmt)
        if not pix_fmt_is_rgb(pix_fmt) and (
            (chroma in ("420", "422") and self.width % 2) or (chroma == "420" and self.height % 2)
        ):
            raise OutputError(f"{pix_fmt} needs an even width/height, got {self.width}x{self.height}")
        self.pix_fmt = pix_fmt
        self._sixteen = pix_fmt_bit_depth(pix_fmt) > 8

        # Colour: RGB->YUV with the source's matrix and range; tags copied from the source.
        if pix_fmt_is_rgb(pix_fmt):
            matrix, full, space_tag, range_tag = "rgb", True, SPC_RGB, RANGE_FULL
        else:
            matrix = info.matrix if info.matrix != "rgb" else "bt709"
            full = (info.full_range and info.matrix != "rgb") or pix_fmt.startswith("yuvj")
            src_space = effective_matrix(info.color_space, info.pix_fmt, info.width, info.height)
            keep = info.color_space != SPC_UNSPECIFIED and src_space == matrix
            space_tag = info.color_space if keep else matrix_tag(matrix)
            range_tag = RANGE_FULL if full else RANGE_LIMITED
        self.matrix, self.full_range = matrix, full

        opts = {str(k): str(v) for k, v in (options or {}).items()}
        if bitrate is None and codec.name in CRF_CODECS:
            opts.setdefault("crf", str(DEFAULT_CRF if crf is None else crf))
        elif crf is not None:
            if codec.name not in CRF_CODECS:
                raise OutputError(f"{codec.name} has no crf setting; use a bitrate")
            opts["crf"] = str(crf)
        if codec.name == "libx265":
            opts.setdefault("x265-params", "log-level=error")
        if codec.name in ("libvpx-vp9", "libvpx"):
            opts.setdefault("row-mt", "1")

        self._tb = Fraction(info.time_base)
        self._fps = Fraction(info.fps)
        out = self._out = (
            av.open(str(self._target.tmp), "w", format=muxer)
            if self._target
            else av.open(_stdout_binary(), "w", format=muxer)
        )
        try:
            vs = out.add_stream(codec.name, rate=self._fps, options=opts)
        except ValueError as e:
            raise OutputError(
                f"{self._label}: the {muxer} container cannot hold {codec.name} video ({error_reason(e)})"
            ) from None
        vs.width, vs.height, vs.pix_fmt = self.width, self.height, pix_fmt
        cc = vs.codec_context
        cc.time_base = self._tb
        vs.time_base = self._tb
        cc.thread_count = threads
        if bitrate is not None:
            cc.bit_rate = parse_bitrate(bitrate)
        cc.colorspace = space_tag
        cc.color_range = range_tag
        cc.color_primaries = info.color_primaries  # copied as they are (unspecified stays unspecified)
        cc.color_trc = info.color_trc
        if info.rotation % 360:
            vs.set_display_rotation(info.rotation % 360)
        self._vs = vs
        self._sws = VideoReformatter()
        self._sws_args = (
            {}
            if matrix == "rgb"
            else {
                # area-averaged chroma: measured the smallest RGB->YUV->RGB error at the same CPU cost
                "interpolation": Interpolation.AREA,
                "src_colorspace": sws_colorspace(matrix),
                "dst_colorspace": sws_colorspace(matrix),
                "src_color_range": ColorRange.JPEG,
                "dst_color_range": sws_range(full),
            }
        )

        self._open_streams_state(muxer, info, copy_from, copy_audio, copy_subtitles, start, duration)

    def _open_streams_state(
        self,
        muxer: str,
        info: StreamInfo,
        copy_from: str | Path | None,
        copy_audio: bool,
        copy_subtitles: bool,
        start: float | None,
        duration: float | None,
    ) -> None:
        """Trimming and timestamp state, the copied audio/subtitle streams, then the container header."""
        # Trimming: video and copied streams shift by the same amount, so they stay in sync.
        origin = Fraction(info.start_time).limit_denominator(1_000_000)
        self._cut_start = origin + Fraction(start).limit_denominator(1_000_000) if start else None
        self._cut_end = None
        if duration:
            self._cut_end = (self._cut_start or origin) + Fraction(duration).limit_denominator(1_000_000)
        self._pts_offset = round(self._cut_start / self._tb) if self._cut_start is not None else 0
        self._last_pts: int | None = None
        self._last_video_time: Fraction | None = None

        self._side_map: dict[int, av.stream.Stream] = {}
        self._side_iter: Iterator[av.Packet] | None = None
        self._pending: tuple[av.Packet, Fraction] | None = None
        if copy_from is not None and (copy_audio or copy_subtitles):
            self._open_side(copy_from, copy_audio, copy_subtitles, muxer, info)
        self._out.start_encoding()  # write the header now: container/codec problems surface before any work

    def _open_side(self, copy_from: str | Path, audio: bool, subs: bool, muxer: str, info: StreamInfo) -> None:
        if str(copy_from) == "-":
            if (audio and info.has_audio) or (subs and info.has_subtitles):
                warnings.warn("audio/subtitles cannot be copied from stdin; writing video only", stacklevel=5)
            return
        path = Path(copy_from)
        if path.is_dir():
            return
        try:
            src = self._side_in = av.open(str(path), "r")
        except (av.error.FFmpegError, OSError) as e:
            raise OutputError(f"{copy_from}: cannot open to copy audio/subtitles ({error_reason(e)})") from None
        wanted = [s for s in src.streams if (audio and s.type == "audio") or (subs and s.type == "subtitle")]
        for s in wanted:
            kind = "audio" if s.type == "audio" else "subtitle"
            flag = "--no-audio" if kind == "audio" else "--no-subtitles"
            try:
                self._side_map[s.index] = self._out.add_stream_from_template(s)
            except (ValueError, av.error.FFmpegError):
                raise OutputError(
                    f"{self._label}: the {muxer} container cannot hold {kind} codec {s.codec_context.name!r}; "
                    f"use {flag} or another container (e.g. .mkv)"
                ) from None
        if wanted:
            self._side_iter = src.demux(wanted)

    # -- copied streams ---------------------------------------------------------------------------
    def _next_side(self) -> tuple[av.Packet, Fraction] | None:
        """Next copied packet inside the trim window, with its dts in seconds (None at the end)."""
        while self._side_iter is not None:
            try:
                pk = next(self._side_iter)
            except StopIteration:
                self._side_iter = None
                break
            except (av.error.FFmpegError, OSError) as e:
                warnings.warn(f"copying audio/subtitles stopped early: {error_reason(e)}", stacklevel=5)
                self._side_iter = None
                break
            if pk.size == 0 or (pk.pts is None and pk.dts is None):
                continue
            tb = pk.time_base
            t_pts = (pk.pts if pk.pts is not None else pk.dts) * tb
            t_dts = (pk.dts if pk.dts is not None else pk.pts) * tb
            if self._cut_start is not None and t_pts < self._cut_start:
                continue
            if self._cut_end is not None and t_pts >= self._cut_end:
                if t_dts > self._cut_end + 10:  # well past the window in every stream: stop reading
                    self._side_iter = None
                    break
                continue
            if self._cut_start is not None:
                shift = round(self._cut_start / tb)
                if pk.pts is not None:
                    pk.pts -= shift
                if pk.dts is not None:
                    pk.dts -= shift
            return pk, t_dts
        return None

    def _pump(self, until: Fraction | None) -> None:
        """Mux copied packets whose dts is <= ``until`` seconds (all of them when None)."""
        if not self._side_map:
            return
        while True:
            if self._pending is None:
                self._pending = self._next_side()
                if self._pending is None:
                    return
            pk, t = self._pending
            if until is not None and t > until:
                return
            self._pending = None
            pk.stream = self._side_map[pk.stream_index]
            self._out.mux(pk)

    # -- video ------------------------------------------------------------------------------------
    def _mux_video(self, packets: list[av.Packet]) -> None:
        for pk in packets:
            self._out.mux(pk)
            if pk.dts is not None:
                self._last_video_time = pk.dts * pk.time_base + (self._cut_start or 0)
        if self._last_video_time is not None:
            self._pump(self._last_video_time)

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one ``(height, width, 3)`` uint8/uint16 RGB frame at ``pts`` (source time_base units).

        ``pts=None`` places the frame at ``frames_written / fps``. Non-increasing pts are nudged
        forward by one tick (encoders require strictly increasing timestamps).
        """
        if self._closed:
            raise RuntimeError("write() on a closed VideoWriter")
        _check_frame(rgb, self.width, self.height)
        if pts is None:
            out_pts = round(self.frames_written / (self._fps * self._tb))
        else:
            out_pts = int(pts) - self._pts_offset
        if self._last_pts is not None and out_pts <= self._last_pts:
            out_pts = self._last_pts + 1
        self._last_pts = out_pts
        rgb = np.ascontiguousarray(_to_depth(rgb, self._sixteen))
        try:
            fmt = "rgb48le" if self._sixteen else "rgb24"
            if fmt == self.pix_fmt:  # no conversion: the encoder may keep the frame, so copy it
                frame = av.VideoFrame.from_ndarray(rgb, fmt)
            else:  # wrap without a copy; swscale reads it into a new YUV frame right away
                frame = av.VideoFrame.from_numpy_buffer(rgb, fmt)
            frame = self._sws.reformat(frame, format=self.pix_fmt, threads=SWS_THREADS, **self._sws_args)
            frame.pts = out_pts
            frame.time_base = self._tb
            if self._worker is not None:
                self._worker.submit(frame)
            else:
                self._encode_frame(frame)
        except BaseException as e:
            self._fail(e)
        self.frames_written += 1

    def _encode_frame(self, frame: av.VideoFrame) -> None:
        self._mux_video(self._vs.encode(frame))

    def _fail(self, e: BaseException) -> None:
        self.abort()
        if _is_enospc(e):
            raise OutputError(f"{self._label}: disk full; output removed") from None
        if isinstance(e, BrokenPipeError):
            raise OutputError(f"{self._label}: the reading end of the pipe closed") from None
        if isinstance(e, (av.error.FFmpegError, OSError)):
            raise OutputError(f"{self._label}: writing failed ({error_reason(e)})") from None
        raise e

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio/subtitles, finalise and rename into place."""
        if self._closed:
            return
        try:
            if self._worker is not None:
                self._worker.finish()
            self._mux_video(self._vs.encode(None))
            self._pump(None)
            self._out.close()
        except BaseException as e:
            self._fail(e)
        self._closed = True
        self._close_side()
        if self._target is not None:
            self._target.commit()

    def _close_side(self) -> None:
        if self._side_in is not None:
            self._side_in.close()
            self._side_in = None

    def abort(self) -> None:
        """Stop and delete the partial output (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
        if self._out is not None:
            with contextlib.suppress(Exception):  # best effort while aborting
                self._out.close()
        self._close_side()
        if self._target is not None:
            self._target.discard()


class _PNGSequenceWriter(VideoWriter):
    """One PNG per frame (``frame_000001.png`` ... or a ``%d`` pattern) in a temporary folder
    renamed into place."""

    def __init__(
        self, target: AtomicTarget, info: StreamInfo, width: int, height: int, pattern: str, background: bool
    ) -> None:
        self._target = target
        self._pattern = pattern
        self.path = target.dst
        self.width, self.height = width, height
        self.frames_written = 0
        self._closed = False
        self._sixteen = info.bit_depth > 8
        cc = av.CodecContext.create("png", "w")
        cc.width, cc.height = width, height
        cc.pix_fmt = "rgb48be" if self._sixteen else "rgb24"
        cc.time_base = Fraction(1, 25)
        self._cc = cc
        self._worker = OrderedWorker(self._save, depth=WORKER_DEPTH) if background else None

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Write the next frame as a PNG (``pts`` is ignored: files are numbered in order)."""
        if self._closed:
            raise RuntimeError("write() on a closed VideoWriter")
        _check_frame(rgb, self.width, self.height)
        rgb = np.ascontiguousarray(_to_depth(rgb, self._sixteen))
        try:
            # a copy (the caller may reuse its array); PyAV stores native-order samples big-endian
            frame = av.VideoFrame.from_ndarray(rgb, "rgb48be" if self._sixteen else "rgb24")
            job = (self._target.tmp / (self._pattern % (self.frames_written + 1)), frame)
            if self._worker is not None:
                self._worker.submit(job)
            else:
                self._save(job)
        except BaseException as e:
            self._fail(e)
        self.frames_written += 1

    def _save(self, job: tuple[Path, av.VideoFrame]) -> None:
        name, frame = job
        data = b"".join(bytes(p) for p in self._cc.encode(frame))
        with open(name, "wb") as fh:
            fh.write(data)

    def _fail(self, e: BaseException) -> None:
        self.abort()
        if _is_enospc(e):
            raise OutputError(f"{self.path}: disk full; output removed") from None
        if isinstance(e, (av.error.FFmpegError, OSError)):
            raise OutputError(f"{self.path}: writing failed ({error_reason(e)})") from None
        raise e

    def close(self) -> None:
        if self._closed:
            return
        if self._worker is not None:
            try:
                self._worker.finish()
            except BaseException as e:
                self._fail(e)
        self._closed = True
        self._target.commit()

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            if self._worker is not None:
                self._worker.cancel()
            self._target.discard()


def png_target(dst: str, fmt: str) -> tuple[Path, str] | None:
    """(folder, file-name pattern) when ``dst`` asks for a PNG sequence, else None."""
    p = Path(dst.rstrip("/\\") or dst)
    if fmt in ("auto", "png") and re.search(r"%0?\d*d", p.name) and p.suffix.lower() == ".png":
        try:
            p.name % 1
        except (TypeError, ValueError):
            raise OutputError(f"{dst}: the pattern needs one number field such as %06d") from None
        if p.parent in (Path("."), Path("")) or p.parent == p.parent.parent:
            raise OutputError(f"{dst}: put the PNG pattern in a folder of its own, e.g. frames/{p.name}")
        return p.parent, p.name
    if fmt == "png":
        return p, PNG_PATTERN
    if fmt != "auto":
        return None
    if dst.endswith(("/", "\\")) or p.is_dir() or (p.suffix == "" and not p.exists()):
        return p, PNG_PATTERN
    return None


def open_writer(
    dst: str | Path,
    src_info: StreamInfo,
    width: int,
    height: int,
    *,
    codec: str | None = None,
    crf: float | None = None,
    bitrate: int | str | None = None,
    pix_fmt: str | None = None,
    options: dict[str, Any] | None = None,
    format: str = "auto",
    copy_from: str | Path | None = None,
    copy_audio: bool = True,
    copy_subtitles: bool = True,
    overwrite: bool = False,
    start: float | None = None,
    duration: float | None = None,
    threads: int = 0,
    background: bool = True,
) -> VideoWriter:
    """Open an output for ``width`` x ``height`` RGB frames shaped like ``src_info``'s source.

    dst: ``x.mp4``/``.mkv``/``.mov``/``.webm`` (by suffix, or ``format`` = mp4/mkv/mov/webm/nut),
        ``"-"`` for stdout (matroska unless ``format`` is nut/webm), or a PNG sequence: a folder
        (``format="png"``, a path ending in ``/``, an existing folder, or a suffix-less name) filled
        with ``frame_000001.png`` ..., or a pattern such as ``frames/img_%04d.png`` (numbered from 1).
    codec: encoder (default libx264, libvpx-vp9 for webm); crf (default 18) or bitrate ("8M");
        pix_fmt: default keeps the source's chroma layout and bit depth (10-bit when > 8 bits).
    options: extra encoder options, e.g. ``{"preset": "veryfast"}``.
    copy_from: file whose audio/subtitle streams are packet-copied (``copy_audio``/``copy_subtitles``),
        trimmed to ``start``/``duration`` (the same seconds given to the reader).
    overwrite: replace an existing ``dst``. threads: encoder threads (0 = automatic).
    background: encode and mux on a worker thread (``write`` converts RGB->YUV in the caller's
        thread and queues at most 4 frames), so encoding overlaps the caller's work; errors surface
        at a later ``write`` or at ``close``. False does everything inside ``write``.

    Raises :class:`OutputError` for a missing folder, an existing output, ``dst`` == input, a
    codec the container cannot hold, a full disk, or another write failure.
    """
    if not (isinstance(width, int) and isinstance(height, int)) or width <= 0 or height <= 0:
        raise OutputError(f"invalid output size {width}x{height}")
    fmt = str(format).lower()
    if fmt != "auto" and fmt != "png" and fmt not in FORMATS:
        raise OutputError(f"unknown output format {format!r} (use mp4, mkv, mov, webm, nut or png)")
    dst_s = str(dst)
    enc = {"codec": codec, "crf": crf, "bitrate": bitrate, "pix_fmt": pix_fmt, "options": options}
    rest = {
        "copy_from": copy_from,
        "copy_audio": copy_audio,
        "copy_subtitles": copy_subtitles,
        "start": start,
        "duration": duration,
        "threads": threads,
        "background": background,
    }
    if dst_s == "-":
        if fmt == "png":
            raise OutputError("PNG sequences cannot be written to stdout")
        muxer = "matroska" if fmt == "auto" else FORMATS[fmt]
        if muxer not in PIPE_FORMATS:
            raise OutputError(f"{fmt} cannot be written to a pipe; use mkv or nut")
        return ContainerWriter(None, muxer, src_info, width, height, **enc, **rest)

    png = png_target(dst_s, fmt)
    path = png[0] if png else Path(dst_s)
    for other in (src_info.source, copy_from):
        if other is not None and str(other) != "-" and path.exists() and same_file(path, other):
            raise OutputError(f"{dst}: is the input; choose another output name")
    if png:
        target = AtomicTarget(path, overwrite=overwrite, is_dir=True)
        try:
            return _PNGSequenceWriter(target, src_info, width, height, png[1], background)
        except BaseException:
            target.discard()
            raise
    if fmt == "auto":
        muxer = CONTAINER_SUFFIXES.get(path.suffix.lower())
        if muxer is None:
            raise OutputError(
                f"{dst}: unknown container {path.suffix!r}; use .mp4, .mkv, .mov, .webm, or a folder for PNGs"
            )
    else:
        muxer = FORMATS[fmt]
    target = AtomicTarget(path, overwrite=overwrite, is_dir=False)
    return ContainerWriter(target, muxer, src_info, width, height, **enc, **rest)
