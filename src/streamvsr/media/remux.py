"""Frame timestamps without decoding, and joining encoded parts of one video without re-encoding.

``video_index(src)`` lists the presentation timestamps of every video frame by demuxing only (no
decoding), so a long video can be split into frame ranges cheaply. ``concat_video(parts, dst, info)``
joins video files encoded with the same settings (each starting with a keyframe) by copying their
packets, in order, into one output; audio and subtitle packets of ``copy_from`` are copied once for the
whole duration, interleaved by time, exactly as :func:`~streamvsr.media.open_writer` does. The output is
written atomically (a hidden temporary file renamed into place; removed on any error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from ..errors import InputError, OutputError
from .atomic import AtomicTarget, same_file
from .probe import StreamInfo
from .reader import error_reason
from .writer import CONTAINER_SUFFIXES, FORMATS, ContainerWriter


@dataclass(frozen=True)
class VideoIndex:
    """Presentation timestamps of a file's video frames, in display order.

    pts:        one per frame, in units of ``time_base`` (the same values a reader gives).
    time_base:  the video stream's time base.
    origin:     seconds where the stream starts (what a reader's ``start`` is measured from).
    """

    pts: list[int]
    time_base: Fraction
    origin: Fraction

    def seconds(self, i: int) -> float:
        """Frame ``i``'s time from the stream start, as a reader's ``start`` argument."""
        return float(self.pts[i] * self.time_base - self.origin)


def _video_stream(c: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    streams = [s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    return streams[0] if streams else None


def video_index(src: str | Path) -> VideoIndex | None:
    """Frame timestamps of ``src`` from its packets (no decoding); None when some packet has none."""
    try:
        c = av.open(str(src), "r")
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"{src}: not a readable video ({error_reason(e)})") from None
    with c:
        vs = _video_stream(c)
        if vs is None:
            raise InputError(f"{src}: has no video stream")
        tb = Fraction(vs.time_base or Fraction(1, 90000))
        if vs.start_time is not None:  # the same origin as the reader's
            origin = Fraction(vs.start_time) * tb
        elif c.start_time is not None:
            origin = Fraction(c.start_time, 1_000_000)
        else:
            origin = Fraction(0)
        pts: list[int] = []
        try:
            for pk in c.demux(vs):
                if pk.size == 0:
                    continue
                if pk.pts is None:
                    return None
                pts.append(int(pk.pts))
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(f"{src}: unreadable data while indexing frames ({error_reason(e)})") from None
    pts.sort()
    return VideoIndex(pts, tb, origin)


def container_muxer(dst: str | Path, format: str = "auto") -> str:
    """FFmpeg muxer for a container file ``dst`` (by suffix, or ``format``); OutputError otherwise."""
    fmt = str(format).lower()
    if fmt == "auto":
        muxer = CONTAINER_SUFFIXES.get(Path(dst).suffix.lower())
        if muxer is None:
            raise OutputError(f"{dst}: unknown container {Path(dst).suffix!r}; use .mp4, .mkv, .mov or .webm")
        return muxer
    if fmt not in FORMATS:
        raise OutputError(f"{dst}: format {format!r} cannot be joined from parts (use mp4, mkv, mov, webm or nut)")
    return FORMATS[fmt]


class _RemuxWriter(ContainerWriter):
    """A container writer whose video packets come already encoded (copied from ``template``'s file).

    Everything else (atomic target, audio/subtitle copy and interleaving, error handling) is the
    encoding writer's.
    """

    def __init__(
        self,
        target: AtomicTarget,
        muxer: str,
        info: StreamInfo,
        template: av.video.stream.VideoStream,
        *,
        copy_from: str | Path | None,
        copy_audio: bool,
        copy_subtitles: bool,
    ) -> None:
        self._template = template
        cc = template.codec_context
        super().__init__(
            target, muxer, info, cc.width, cc.height, codec=None, crf=None, bitrate=None, pix_fmt=None,
            options=None, copy_from=copy_from, copy_audio=copy_audio, copy_subtitles=copy_subtitles,
            start=None, duration=None, threads=0, background=False,
        )  # fmt: skip

    def _open(  # called by the encoding writer's __init__; its encoder settings do not apply to a remux
        self,
        muxer: str,
        info: StreamInfo,
        *,
        copy_from: str | Path | None,
        copy_audio: bool,
        copy_subtitles: bool,
        **_encoder_settings: object,
    ) -> None:
        self._tb = Fraction(info.time_base)
        self._fps = Fraction(info.fps)
        out = self._out = av.open(str(self._target.tmp), "w", format=muxer)
        try:
            vs = out.add_stream_from_template(self._template)
        except (ValueError, av.error.FFmpegError) as e:
            name = self._template.codec_context.name
            why = error_reason(e)
            raise OutputError(f"{self._label}: the {muxer} container cannot hold {name} video ({why})") from None
        vs.time_base = self._tb  # what the encoding writer asks for: the muxer then picks the same
        vs.codec_context.framerate = self._fps  # the frame rate the encoding writer declares
        if info.rotation % 360:
            vs.set_display_rotation(info.rotation % 360)
        self._vs = vs
        self._open_streams_state(muxer, info, copy_from, copy_audio, copy_subtitles, None, None)

    def write(self, rgb: object, pts: int | None = None) -> None:
        raise TypeError("a remux writer takes encoded packets (write_packet), not frames")

    def write_packet(self, pk: av.Packet) -> None:
        if self._closed:
            raise RuntimeError("write_packet() on a closed writer")
        pk.stream = self._vs
        try:
            self._mux_video([pk])
        except BaseException as e:
            self._fail(e)
        self.frames_written += 1

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._pump(None)
            self._out.close()
        except BaseException as e:
            self._fail(e)
        self._closed = True
        self._close_side()
        self._target.commit()


def _signature(vs: av.video.stream.VideoStream) -> tuple:
    cc = vs.codec_context
    return (cc.name, cc.width, cc.height, cc.pix_fmt, bytes(cc.extradata or b""))


def _rescale(value: int, src_tb: Fraction, dst_tb: Fraction) -> int:
    return round(value * src_tb / dst_tb)


class VideoJoin:
    """Join the video streams of parts into ``dst`` by copying packets, one part at a time, in order.

    :func:`concat_video` in steps, so a caller can copy the parts that are ready while others are still
    being made (``--segments``: rank 0 copies its own first part while the other ranks finish theirs). The
    parts must be encoded with the same encoder settings (same codec, size, pixel format and codec header)
    and each must start with a keyframe. ``pts``: every output frame's timestamp in display order
    (``src_info.time_base`` units); :meth:`add` takes a part and the index in ``pts`` of its first frame.
    Timestamps are restored from them: a part whose container moved its start (NUT shifts a stream whose
    first dts would be negative) is shifted back, and decode timestamps a container does not store (NUT and
    Matroska keep none for the first packets of a stream with B-frames) are filled in with the ones a
    single encode gives: the n-th packet decodes at the time of the frame ``delay`` frames before it.
    ``copy_from``: the source whose audio/subtitle packets are copied once for the whole output. The output
    is renamed into place by :meth:`finish` only; :meth:`abort` (or any error) leaves nothing.
    """

    def __init__(
        self,
        dst: str | Path,
        src_info: StreamInfo,
        pts: Sequence[int],
        *,
        format: str = "auto",
        copy_from: str | Path | None = None,
        copy_audio: bool = True,
        copy_subtitles: bool = True,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(dst)
        self._muxer = container_muxer(self.path, format)
        for other in (src_info.source, copy_from):
            if other is not None and str(other) != "-" and self.path.exists() and same_file(self.path, other):
                raise OutputError(f"{dst}: is the input; choose another output name")
        self._info, self._pts = src_info, pts
        self._copy = {"copy_from": copy_from, "copy_audio": copy_audio, "copy_subtitles": copy_subtitles}
        self._overwrite = overwrite
        self._src_tb = Fraction(src_info.time_base)
        self._step = max(1, round(1 / (Fraction(src_info.fps) * self._src_tb)))  # one frame
        self._writer: _RemuxWriter | None = None
        self._sig: tuple | None = None
        self._first_part: str | Path | None = None  # the part the others must match
        self._last_dts: int | None = None

    def _dts_at(self, k: int, d: int, first: int, tb: Fraction) -> int:
        """dts of a part's k-th packet with a reorder delay of d packets: the frame d earlier; before the
        video's first frame, as x264 does: its pts less the delay (pts[d] - pts[0])."""
        pts = self._pts
        j = first + k - d
        if j >= 0:
            return _rescale(pts[j], self._src_tb, tb)
        delay = pts[min(d, len(pts) - 1)] - pts[0]
        return _rescale(pts[min(k, len(pts) - 1)] - (delay if delay > 0 else d * self._step), self._src_tb, tb)

    def add(self, part: str | Path, first: int) -> None:
        """Copy the packets of ``part``, whose first frame is ``pts[first]``."""
        try:
            c = av.open(str(part), "r")
        except (av.error.FFmpegError, OSError) as e:
            self.abort()
            raise OutputError(f"{part}: cannot read this part ({error_reason(e)})") from None
        try:
            vs = _video_stream(c)
            if vs is None:
                raise OutputError(f"{part}: a part has no video stream")
            if self._sig is None:
                self._sig, self._first_part = _signature(vs), part
            elif _signature(vs) != self._sig:
                raise OutputError(
                    f"{part}: encoded differently from {self._first_part}; cannot join without re-encoding"
                )
            if self._writer is None:
                target = AtomicTarget(self.path, overwrite=self._overwrite, is_dir=False)
                try:
                    self._writer = _RemuxWriter(target, self._muxer, self._info, vs, **self._copy)
                except BaseException:
                    target.discard()
                    raise
            self._copy_packets(c, vs, first)
        except BaseException:
            self.abort()
            raise
        finally:
            c.close()

    def _copy_packets(self, c: av.container.InputContainer, vs: av.VideoStream, first: int) -> None:
        writer = self._writer
        assert writer is not None
        shift: int | None = None
        leading: list[av.Packet] = []
        k = 0
        for pk in c.demux(vs):
            if pk.size == 0:
                continue
            tb = Fraction(pk.time_base)
            if shift is None:
                if pk.pts is None:
                    raise OutputError(f"{self.path}: a part's first packet has no timestamp")
                shift = _rescale(self._pts[first], self._src_tb, tb) - pk.pts
            if pk.pts is not None:
                pk.pts += shift
            if pk.dts is not None:
                pk.dts += shift
            if pk.dts is None and k == len(leading):  # no dts yet in this part: wait for the first
                leading.append(pk)
                k += 1
                continue
            if leading:
                d = len(leading)
                for i, lp in enumerate(leading):
                    lp.dts = self._dts_at(i, d, first, Fraction(lp.time_base))
                    writer.write_packet(lp)
                leading = []
            if pk.dts is None and self._last_dts is not None:
                pk.dts = self._last_dts + 1
            self._last_dts = pk.dts
            writer.write_packet(pk)
            k += 1
        d = len(leading)
        for i, lp in enumerate(leading):  # a part whose packets all lack dts
            lp.dts = self._dts_at(i, d, first, Fraction(lp.time_base))
            writer.write_packet(lp)

    def finish(self) -> int:
        """Copy the rest of the audio/subtitles, rename the output into place; returns the frames written."""
        if self._writer is None:
            raise ValueError("no parts to join")
        writer, self._writer = self._writer, None
        writer.close()
        return writer.frames_written

    def abort(self) -> None:
        """Delete the partial output (idempotent)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.abort()


def concat_video(
    parts: Sequence[str | Path],
    dst: str | Path,
    src_info: StreamInfo,
    pts: Sequence[int],
    starts: Sequence[int],
    *,
    format: str = "auto",
    copy_from: str | Path | None = None,
    copy_audio: bool = True,
    copy_subtitles: bool = True,
    overwrite: bool = False,
) -> int:
    """Join the video streams of ``parts`` (in order) into ``dst`` by copying packets; returns the frames.

    ``starts``: the index in ``pts`` of each part's first frame. See :class:`VideoJoin` for the rules.
    """
    if not parts:
        raise ValueError("no parts to join")
    if len(starts) != len(parts):
        raise ValueError("starts needs one frame index per part")
    join = VideoJoin(
        dst, src_info, pts, format=format, copy_from=copy_from, copy_audio=copy_audio,
        copy_subtitles=copy_subtitles, overwrite=overwrite,
    )  # fmt: skip
    for p, first in zip(parts, starts):
        join.add(p, first)
    return join.finish()
