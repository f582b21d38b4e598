"""Readers: any file FFmpeg reads, ``-`` (stdin), or a folder of images. Frames stream one by one."""

from __future__ import annotations

import contextlib
import math
import re
import sys
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import av.error
import numpy as np
from av.video.reformatter import ColorRange, VideoReformatter

from ..errors import DecodeWarning, InputError
from .color import (
    PRI_UNSPECIFIED,
    RANGE_UNSPECIFIED,
    SPC_UNSPECIFIED,
    TRC_UNSPECIFIED,
    effective_full_range,
    effective_matrix,
    pix_fmt_bit_depth,
    pix_fmt_is_rgb,
    sws_colorspace,
    sws_range,
)
from .probe import DecodedFrame, StreamInfo

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
DEFAULT_IMAGE_FPS = Fraction(25)
MAX_WARNINGS = 20  # per reader; then one "further warnings suppressed" message
_MAX_CONSECUTIVE_READ_ERRORS = 64
# swscale's own threads cost far more CPU than they save here (measured: 1080p YUV->RGB 4 ms of CPU
# single-threaded vs 10 ms with automatic threads); parallelism comes from the pipeline's threads.
SWS_THREADS = 1


def natural_key(name: str) -> list[object]:
    """Sort key that orders embedded numbers by value: ``frame2 < frame10``."""
    # re.split with a capture group alternates text, number, text, ...: positions compare alike.
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


class _Warner:
    """Emits at most ``MAX_WARNINGS`` DecodeWarnings, then one notice that the rest are suppressed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def __call__(self, message: str) -> None:
        self.count += 1
        if self.count <= MAX_WARNINGS:
            warnings.warn(f"{self.name}: {message}", DecodeWarning, stacklevel=4)
        elif self.count == MAX_WARNINGS + 1:
            warnings.warn(f"{self.name}: further decode warnings suppressed", DecodeWarning, stacklevel=4)


class _RGBConverter:
    """YUV/RGB frame -> ``(H, W, 3)`` uint8/uint16 RGB using the frame's (or stream's) matrix and range."""

    def __init__(self, bit_depth: int, default_space: int, default_range: int, size: tuple[int, int]) -> None:
        # swscale's fast unscaled path, as the ffmpeg CLI uses (ACCURATE_RND's filtered path costs ~4x
        # the CPU and was not closer to the source in our round-trip checks)
        self.target = "rgb48le" if bit_depth > 8 else "rgb24"
        self.width, self.height = size  # frames of another size (a mid-stream change) are rescaled
        self.default_space = default_space
        self.default_range = default_range
        self._sws = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        fmt = frame.format.name
        if pix_fmt_is_rgb(fmt):
            out = self._sws.reformat(
                frame,
                width=self.width,
                height=self.height,
                format=self.target,
                threads=SWS_THREADS,
            )
        else:
            space = frame.colorspace if frame.colorspace != SPC_UNSPECIFIED else self.default_space
            rng = frame.color_range if frame.color_range != RANGE_UNSPECIFIED else self.default_range
            matrix = effective_matrix(space, fmt, frame.width, frame.height)
            out = self._sws.reformat(
                frame,
                width=self.width,
                height=self.height,
                format=self.target,
                src_colorspace=sws_colorspace(matrix),
                dst_colorspace=sws_colorspace(matrix),
                src_color_range=sws_range(effective_full_range(rng, fmt)),
                dst_color_range=ColorRange.JPEG,
                threads=SWS_THREADS,
            )
        return np.ascontiguousarray(out.to_ndarray())  # (H, W, 3); a view of the frame unless padded


class VideoReader:
    """Iterate decoded frames of one input. Single pass: iterate once, then ``close()``.

    ``info`` describes the stream (see :class:`StreamInfo`). Use as a context manager.
    """

    info: StreamInfo

    def __iter__(self) -> Iterator[DecodedFrame]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seconds(value: float | None, what: str) -> Fraction | None:
    if value is None:
        return None
    if not math.isfinite(value) or value < 0 or (what == "duration" and value == 0):
        raise InputError(f"{what} must be a {'positive' if what == 'duration' else 'non-negative'} number")
    return Fraction(value).limit_denominator(1_000_000)


class _AVReader(VideoReader):
    """A container FFmpeg can demux: a file path or a binary stream (stdin)."""

    def __init__(
        self,
        src: Path | BinaryIO,
        name: str,
        start: Fraction | None,
        duration: Fraction | None,
        fmt: str | None,
        threads: int,
    ) -> None:
        self._name = name
        self._warn = _Warner(name)
        self._closed = False
        self._iterated = False
        try:
            self._container = av.open(src if not isinstance(src, Path) else str(src), "r", format=fmt)
        except av.error.EOFError:
            raise InputError(f"{name}: no frames (the data ends before any video)") from None
        except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
            raise InputError(f"{name}: not a readable video ({error_reason(e)})") from None
        try:
            self._setup(src, start, duration, threads)
        except BaseException:
            self._container.close()
            raise

    def _setup(self, src: Path | BinaryIO, start: Fraction | None, dur: Fraction | None, threads: int) -> None:
        c = self._container
        streams = [s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        if not streams:
            raise InputError(f"{self._name}: has no video stream")
        vs = self._vs = streams[0]
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = threads  # 0 = automatic
        cc = vs.codec_context
        tb = vs.time_base or Fraction(1, 90000)
        fps = vs.average_rate or vs.guessed_rate or vs.base_rate or Fraction(25)
        fps = Fraction(fps)
        is_vfr = None
        if vs.average_rate and vs.base_rate:
            is_vfr = Fraction(vs.average_rate) != Fraction(vs.base_rate)
        if vs.start_time is not None:
            origin = Fraction(vs.start_time) * tb
        elif c.start_time is not None:
            origin = Fraction(c.start_time, 1_000_000)
        else:
            origin = Fraction(0)
        total: Fraction | None = None
        if vs.duration:
            total = Fraction(vs.duration) * tb
        elif c.duration:
            total = Fraction(c.duration, 1_000_000)
        self._tb, self._fps, self._is_vfr = Fraction(tb), fps, is_vfr
        self._start_pts_time = origin + start if start else None
        self._end_time = (origin + (start or 0) + dur) if dur else None

        if start:
            # not seekable (pipe): decode from the start and drop frames
            with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
                c.seek(int((origin + start) / tb), stream=vs, backward=True)
        self._gen = self._frames()
        first = next(self._gen, None)
        if first is None:
            what = "no frames in the requested range" if (start or dur) else "no decodable frames"
            raise InputError(f"{self._name}: {what}")
        self._first = first

        pix_fmt = first.format.name
        bit_depth = pix_fmt_bit_depth(pix_fmt)
        bit_depth = 8 if bit_depth <= 8 else bit_depth
        space = cc.colorspace if cc.colorspace != SPC_UNSPECIFIED else first.colorspace
        rng = cc.color_range if cc.color_range != RANGE_UNSPECIFIED else first.color_range
        prim = cc.color_primaries if cc.color_primaries != PRI_UNSPECIFIED else first.color_primaries
        trc = cc.color_trc if cc.color_trc != TRC_UNSPECIFIED else first.color_trc
        width, height = first.width, first.height

        frame_count: int | None = vs.frames or None
        exact = frame_count is not None
        sel_dur: Fraction | None = total
        if total is not None and (start or dur):
            sel_dur = max(Fraction(0), total - (start or 0))
            if dur is not None:
                sel_dur = min(sel_dur, dur)
        elif total is None and dur is not None:
            sel_dur = dur
        if start or dur:
            exact = False
            frame_count = math.ceil(sel_dur * fps) if sel_dur is not None else None
        elif frame_count is None and total is not None and is_vfr is False:
            frame_count = round(total * fps)
        source = str(src) if isinstance(src, Path) else None
        self.info = StreamInfo(
            width=width,
            height=height,
            fps=fps,
            time_base=self._tb,
            frame_count=frame_count,
            frame_count_exact=exact,
            duration=float(sel_dur) if sel_dur is not None else None,
            bit_depth=bit_depth,
            pix_fmt=pix_fmt,
            codec=cc.name,
            color_space=int(space),
            color_range=int(rng),
            color_primaries=int(prim),
            color_trc=int(trc),
            matrix=effective_matrix(space, pix_fmt, width, height),
            full_range=effective_full_range(rng, pix_fmt),
            rotation=_rotation(first, vs),
            has_audio=bool(c.streams.audio),
            has_subtitles=bool(c.streams.subtitles),
            is_vfr=is_vfr,
            start_time=float(origin),
            source=source,
            kind="video" if source else "pipe",
        )
        self._convert = _RGBConverter(bit_depth, space, rng, (width, height))

    # -- decoding with recovery -------------------------------------------------------------------
    def _packets(self) -> Iterator[av.Packet]:
        errors = 0
        while True:
            try:
                for packet in self._container.demux(self._vs):
                    errors = 0
                    yield packet
                return
            except av.error.EOFError:
                return
            except (av.error.FFmpegError, OSError) as e:
                errors += 1
                self._warn(f"unreadable data near frame {self._count} skipped ({error_reason(e)})")
                if errors >= _MAX_CONSECUTIVE_READ_ERRORS:
                    self._warn(f"too many read errors; stopping at frame {self._count}")
                    return

    def _decoded(self) -> Iterator[av.VideoFrame]:
        for packet in self._packets():
            try:
                frames = self._vs.decode(packet)
            except av.error.EOFError:
                return
            except (av.error.FFmpegError, OSError) as e:
                self._warn(f"corrupt data near frame {self._count} skipped ({error_reason(e)})")
                continue
            for frame in frames:
                if frame.is_corrupt:
                    self._warn(f"frame {self._count} is damaged (decoded with concealment)")
                yield frame

    def _frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in the selected range, with pts filled in; counts and warns on gaps."""
        self._count = 0
        tb = self._tb
        step = 1 / (self._fps * tb)  # one frame in time_base units
        last: int | None = None
        regular = self._is_vfr is False  # gap checks only while the stream has looked constant-rate
        for frame in self._decoded():
            pts = frame.pts
            if pts is None:
                pts = last + max(1, round(step)) if last is not None else 0
                frame.pts = pts
            if last is not None and regular:
                delta = pts - last
                if delta > 1.5 * step:
                    lost = max(1, round(delta / step) - 1)
                    self._warn(
                        f"timestamps jump by {float(delta * tb):.3f}s before frame {self._count}: "
                        f"about {lost} frame(s) missing (damaged data?)"
                    )
                elif abs(delta - step) > 0.1 * step:
                    regular = False  # irregular spacing: variable frame rate, stop guessing
            last = pts
            t = pts * tb
            if self._start_pts_time is not None and t < self._start_pts_time - tb / 2:
                continue
            if self._end_time is not None and t >= self._end_time - tb / 2:
                return
            self._count += 1
            yield frame

    def __iter__(self) -> Iterator[DecodedFrame]:
        if self._iterated:
            raise RuntimeError("a VideoReader can only be iterated once")
        self._iterated = True
        first, self._first = self._first, None
        size = (self.info.width, self.info.height)
        for index, frame in enumerate(_chain(first, self._gen)):
            if self._closed:
                return
            if (frame.width, frame.height) != size:
                self._warn(f"frame {index} is {frame.width}x{frame.height}; rescaled to {size[0]}x{size[1]}")
                size = (frame.width, frame.height)  # warn once per change
            yield DecodedFrame(index, int(frame.pts), self._tb, self._convert(frame))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._first = None
            self._gen.close()
            self._container.close()


def _rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Display rotation, degrees counter-clockwise in [0, 360): the display matrix side data, else
    the legacy "rotate" stream tag (which counts clockwise)."""
    angle = round(frame.rotation or 0)
    if angle == 0:
        tags = {k.lower(): v for k, v in stream.metadata.items()}
        with contextlib.suppress(KeyError, ValueError):
            angle = -round(float(tags["rotate"]))
    return int(angle) % 360


def _chain(first: av.VideoFrame | None, rest: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
    if first is not None:
        yield first
    yield from rest


class _ImageFolderReader(VideoReader):
    """A folder of still images in natural-sort order, one frame each, at ``fps`` frames per second."""

    def __init__(self, folder: Path, start: Fraction | None, duration: Fraction | None, fps: Fraction) -> None:
        self._name = str(folder)
        self._warn = _Warner(self._name)
        self._closed = False
        self._iterated = False
        files = [
            p
            for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
        ]
        if not files:
            exts = "/".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))
            raise InputError(f"{folder}: folder has no images ({exts})")
        files.sort(key=lambda p: natural_key(p.name))
        total = len(files)
        first_index = round(start * fps) if start else 0
        files = files[first_index:]
        if duration is not None:
            files = files[: math.ceil(duration * fps - Fraction(1, 1000))]
        if not files:
            raise InputError(f"{folder}: no images in the requested range ({total} images at {fps} fps)")
        self._files, self._offset = files, first_index
        try:
            first = _load_image(files[0])
        except (av.error.FFmpegError, OSError, StopIteration, ValueError) as e:
            raise InputError(f"{files[0]}: not a readable image ({error_reason(e)})") from None
        pix_fmt = first.format.name
        bit_depth = 16 if pix_fmt_bit_depth(pix_fmt) > 8 else 8
        self._first = first
        self.info = StreamInfo(
            width=first.width,
            height=first.height,
            fps=fps,
            time_base=1 / fps,
            frame_count=len(files),
            frame_count_exact=True,
            duration=float(len(files) / fps),
            bit_depth=bit_depth,
            pix_fmt=pix_fmt,
            codec=_codec_name(files[0]),
            color_space=SPC_UNSPECIFIED,
            color_range=RANGE_UNSPECIFIED,
            color_primaries=PRI_UNSPECIFIED,
            color_trc=TRC_UNSPECIFIED,
            matrix="bt709",
            full_range=False,
            rotation=0,
            has_audio=False,
            has_subtitles=False,
            is_vfr=False,
            start_time=0.0,
            source=str(folder),
            kind="images",
        )
        self._convert = _RGBConverter(bit_depth, SPC_UNSPECIFIED, RANGE_UNSPECIFIED, (first.width, first.height))

    def __iter__(self) -> Iterator[DecodedFrame]:
        if self._iterated:
            raise RuntimeError("a VideoReader can only be iterated once")
        self._iterated = True
        w, h = self.info.width, self.info.height
        index = 0
        for i, path in enumerate(self._files):
            if self._closed:
                return
            if i == 0:
                frame, self._first = self._first, None
            else:
                try:
                    frame = _load_image(path)
                except (av.error.FFmpegError, OSError, StopIteration, ValueError) as e:
                    self._warn(f"image {path.name} (frame {index}) unreadable, skipped ({error_reason(e)})")
                    continue
            if (frame.width, frame.height) != (w, h):
                raise InputError(f"{path}: size {frame.width}x{frame.height} differs from the first image {w}x{h}")
            yield DecodedFrame(index, self._offset + i, self.info.time_base, self._convert(frame))
            index += 1

    def close(self) -> None:
        self._closed = True
        self._first = None


def _load_image(path: Path) -> av.VideoFrame:
    with av.open(str(path), "r") as c:
        return next(c.decode(video=0))


def _codec_name(path: Path) -> str:
    with av.open(str(path), "r") as c:
        return c.streams.video[0].codec_context.name


def error_reason(e: BaseException) -> str:
    """A short, single-line reason from an FFmpeg/OS error."""
    if isinstance(e, (av.error.FFmpegError, OSError)) and e.strerror:
        return str(e.strerror)
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def open_reader(
    src: str | Path,
    start: float | None = None,
    duration: float | None = None,
    *,
    fps: float | Fraction | None = None,
    format: str | None = None,
    threads: int = 0,
) -> VideoReader:
    """Open a video file, ``"-"`` (stdin), or a folder of images for frame-by-frame decoding.

    start, duration: seconds; frames before ``start`` (measured from the stream's first
    timestamp) are dropped after a seek, decoding stops at ``start + duration``.
    fps: frame rate for image folders (default 25); ignored for videos.
    format: FFmpeg demuxer name to force (e.g. "yuv4mpegpipe", "nut", "matroska"); default probes.
    threads: decoder threads, 0 = automatic.

    Raises :class:`InputError` for a missing path, a file that is not a video, or no frames.
    """
    start_f = _seconds(start, "start")
    dur_f = _seconds(duration, "duration")
    if str(src) == "-":
        return _AVReader(sys.stdin.buffer, "<stdin>", start_f, dur_f, format, threads)
    path = Path(src)
    if not path.exists():
        raise InputError(f"{src}: no such file or folder")
    if path.is_dir():
        rate = Fraction(fps).limit_denominator(100_000) if fps else DEFAULT_IMAGE_FPS
        if rate <= 0:
            raise InputError("fps must be positive")
        return _ImageFolderReader(path, start_f, dur_f, rate)
    if path.stat().st_size == 0:
        raise InputError(f"{src}: file is empty")
    return _AVReader(path, str(src), start_f, dur_f, format, threads)
