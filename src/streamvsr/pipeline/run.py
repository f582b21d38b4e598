"""Upscale one video file: decode -> model -> encode as a pipeline with bounded queues.

Decoding and encoding run in their own threads; the model runs in the calling thread. Each queue
holds at most ``queue_size`` items, so memory is bounded by the window, never by the video's length.
Library code never prints: progress goes to the ``progress`` callback.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from streamvsr.errors import InputError
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.protocol import StreamingModel


@dataclass
class Progress:
    """One progress report: frames written so far, total if known, throughput and ETA."""

    frames: int
    total: int | None
    fps: float
    elapsed: float
    eta: float | None
    done: bool = False


@dataclass
class EncodeOptions:
    codec: str | None = None
    crf: int | None = None
    bitrate: str | None = None
    pix_fmt: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    format: str = "auto"
    copy_audio: bool = True
    copy_subtitles: bool = True
    overwrite: bool = False


@dataclass
class RunResult:
    frames: int
    seconds: float
    output: str
    width: int
    height: int
    # seconds per phase, where a run has several; "first_frame": seconds to the first encoded frame (upscale_file)
    phases: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FrameRange:
    """Part of the input to run, by presentation timestamp (the source's time_base units).

    Frames with pts in ``[first, last]`` are decoded and pushed to the model; only the outputs of those
    with pts in ``[keep_first, keep_last]`` are encoded. The frames before ``keep_first`` warm the model's
    temporal state, those after ``keep_last`` give it its look-ahead. ``seek``: seconds from the stream
    start where decoding starts (the reader seeks, then drops frames before it).
    """

    seek: float | None
    first: int
    last: int
    keep_first: int
    keep_last: int


def _in_range(frames: Iterator, r: FrameRange) -> Iterator:
    for f in frames:
        if f.pts > r.last:
            return
        if f.pts >= r.first:
            yield f


_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


# scratch of the chunked float -> integer conversion, in elements: about 1 MiB of float32, cache-resident
_CHUNK = 1 << 18


def to_tensor(frames: list[np.ndarray], device: torch.device | str = "cpu", *, integer: bool = False) -> torch.Tensor:
    """T x (H, W, 3) uint8/uint16 -> (T, 3, H, W) float32 in [0, 1] on ``device``.

    The result is a channels-last view, which every torch op accepts. On the CPU each frame is converted
    in one pass straight into a numpy-allocated batch (numpy puts large buffers on huge pages: a fresh
    torch buffer of a 1080p batch costs more in page faults than the conversion itself). Elsewhere the
    integers travel to the device (4x fewer bytes than floats, 2x for 16 bit) and are converted there.
    ``integer=True`` keeps 8-bit frames as a ``torch.uint8`` tensor (for models with ``spec.uint8_io``).
    """
    device = torch.device(device)
    dtype = frames[0].dtype
    if integer:
        if dtype != np.uint8:
            raise ValueError(f"integer frames must be uint8, got {dtype}")
        return torch.from_numpy(np.stack(frames)).to(device, non_blocking=True).permute(0, 3, 1, 2)
    peak = 255.0 if dtype == np.uint8 else 65535.0
    if device.type == "cpu":
        out = np.empty((len(frames), *frames[0].shape), np.float32)
        scale = np.float32(1.0 / peak)  # the value torch's float32 x * (1 / peak) uses: same results
        for i, f in enumerate(frames):
            np.multiply(f, scale, out=out[i], dtype=np.float32)
        return torch.from_numpy(out).permute(0, 3, 1, 2)
    batch = np.stack(frames)
    x = torch.from_numpy(batch if batch.dtype == np.uint8 else batch.astype(np.int32))
    # convert while contiguous (fast), then view as (T, 3, H, W)
    return x.to(device, non_blocking=True).float().mul_(1.0 / peak).permute(0, 3, 1, 2)


def to_array(frames: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(T, 3, H, W) float in [0, 1] -> (T, H, W, 3) uint8/uint16, rounded (not truncated).

    ``x * peak + 0.5``, clamped to ``[0, peak]``, then truncated, each step in float32. On the CPU this
    runs in cache-sized chunks into a numpy array (no full-size float temporaries; strided, e.g.
    channels-first, outputs are read in place); elsewhere on the device, then one device-to-host copy
    per batch in the output's integer width where torch has it. ``torch.uint8`` frames (from models with
    ``spec.uint8_io``) are only laid out as (T, H, W, 3), which may share memory with ``frames``.
    """
    return to_array_async(frames, dtype)()


def to_array_async(frames: torch.Tensor, dtype: np.dtype) -> Callable[[], np.ndarray]:
    """:func:`to_array` that does not wait for a CUDA device: the conversion and the copy into pinned host
    memory are queued on the current stream, and the returned function waits for them (from any thread)
    and gives the array. The caller can queue more work (the next frames) meanwhile. Elsewhere the array is
    made at once."""
    dtype = np.dtype(dtype)
    x = frames.detach().permute(0, 2, 3, 1)
    if x.dtype == torch.uint8:
        if dtype != np.uint8:
            raise ValueError(f"uint8 frames cannot become {dtype}")
        return _host_copy(x.contiguous(), None)
    peak = 255.0 if dtype == np.uint8 else 65535.0
    if x.device.type != "cpu":
        # to (T, H, W, 3) first: free for channels-last outputs, one transposing copy otherwise; the math
        # then runs on a contiguous tensor (elementwise ops on strided views are several times slower)
        x = x.contiguous().float()
        x = x.mul(peak).add_(0.5).clamp_(0, peak)  # + 0.5 then truncation = rounding
        return _host_copy(x.to(torch.uint8 if dtype == np.uint8 else torch.int32), dtype)
    arr = _to_array_cpu(x, dtype, peak)
    return lambda: arr


def _host_copy(x: torch.Tensor, dtype: np.dtype | None) -> Callable[[], np.ndarray]:
    """Copy ``x`` to the host; on CUDA without waiting (pinned buffer + event). ``dtype``: numpy cast."""
    done = None
    if x.device.type == "cuda":
        host = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
        host.copy_(x, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(x.device))
    else:
        host = x.cpu()

    def result() -> np.ndarray:
        if done is not None:
            done.synchronize()
        arr = host.numpy()
        return arr if dtype is None or arr.dtype == dtype else arr.astype(dtype)

    return result


def _to_array_cpu(x: torch.Tensor, dtype: np.dtype, peak: float) -> np.ndarray:
    """The CPU path of :func:`to_array`; ``x`` is (T, H, W, 3) float."""
    src = x.numpy() if x.dtype == torch.float32 else x.float().numpy()
    t, h, w, c = src.shape
    out = np.empty((t, h, w, c), dtype)
    rows = max(1, _CHUNK // (w * c))
    tmp = np.empty((rows, w, c), np.float32)
    fpeak = np.float32(peak)
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN from a model: the same bytes as torch, silently
        for i in range(t):
            for r in range(0, h, rows):
                part = src[i, r : r + rows]
                buf = tmp[: part.shape[0]]
                np.multiply(part, fpeak, out=buf)
                np.add(buf, np.float32(0.5), out=buf)  # + 0.5 then truncation = rounding
                np.clip(buf, 0, fpeak, out=buf)
                if dtype == np.uint8:
                    out[i, r : r + part.shape[0]] = buf  # float -> uint8 truncates, as torch's cast does
                else:
                    out[i, r : r + part.shape[0]] = buf.astype(np.int32)  # as the device path: via int32
    return out


def _producer(items: Iterator, q: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in items:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        q.put(_DONE)
    except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer thread
        q.put(_Failed(exc))


def upscale_file(
    src: str | Path,
    dst: str | Path,
    model: StreamingModel,
    *,
    device: str | torch.device = "cpu",
    encode: EncodeOptions | None = None,
    start: float | None = None,
    duration: float | None = None,
    batch: int = 4,
    queue_size: int = 8,
    progress: Callable[[Progress], None] | None = None,
    frame_range: FrameRange | None = None,
) -> RunResult:
    """Upscale ``src`` into ``dst`` with ``model``; the output is written atomically.

    ``frame_range`` (instead of ``start``/``duration``) runs only part of the input, keeping part of it
    (see :class:`FrameRange`); timestamps stay the source's.
    """
    from streamvsr.media import open_reader, open_writer

    encode = encode or EncodeOptions()
    engine = Engine(model, device)
    uint8_io = bool(getattr(model.spec, "uint8_io", False))
    # a model that takes host frames copies them on its own stream (see ModelSpec.host_input)
    in_device = "cpu" if getattr(model.spec, "host_input", False) else device
    s = model.spec.scale
    t0 = time.perf_counter()
    if frame_range is not None and (start is not None or duration is not None):
        raise ValueError("frame_range excludes start/duration")
    seek = frame_range.seek if frame_range is not None else start
    with open_reader(src, start=seek, duration=duration) as reader:
        info = reader.info
        total = info.frame_count if frame_range is None else None
        frames = iter(reader) if frame_range is None else _in_range(iter(reader), frame_range)
        out_w, out_h = info.width * s, info.height * s
        stop = threading.Event()
        dec_q: queue.Queue = queue.Queue(maxsize=queue_size)
        enc_q: queue.Queue = queue.Queue(maxsize=queue_size)
        dec = threading.Thread(target=_producer, args=(frames, dec_q, stop), daemon=True)
        with open_writer(
            dst,
            info,
            out_w,
            out_h,
            codec=encode.codec,
            crf=encode.crf,
            bitrate=encode.bitrate,
            pix_fmt=encode.pix_fmt,
            options=encode.options,
            format=encode.format,
            copy_from=src if (encode.copy_audio or encode.copy_subtitles) else None,
            copy_audio=encode.copy_audio,
            copy_subtitles=encode.copy_subtitles,
            overwrite=encode.overwrite,
            start=start,
            duration=duration,
        ) as writer:
            written = [0]
            first_frame: list[float | None] = [None]  # seconds to the first encoded frame
            enc_error: list[BaseException] = []

            def encoder() -> None:
                try:
                    while True:
                        item = enc_q.get()
                        if item is _DONE:
                            return
                        pending, ptss = item
                        for a, p in zip(pending(), ptss):  # waits for the device copy, if any
                            if frame_range is not None and not frame_range.keep_first <= p <= frame_range.keep_last:
                                continue  # a warm-up or look-ahead frame
                            writer.write(a, pts=p)
                            written[0] += 1
                            if written[0] == 1:
                                first_frame[0] = time.perf_counter() - t0
                            if progress is not None:
                                el = time.perf_counter() - t0
                                fps = written[0] / el if el > 0 else 0.0
                                eta = (total - written[0]) / fps if (total and fps > 0) else None
                                progress(Progress(written[0], total, fps, el, eta))
                except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                    enc_error.append(exc)
                    stop.set()

            enc = threading.Thread(target=encoder, daemon=True)
            if progress is not None:  # the run has started: a bar's clock starts now, not at the first output
                progress(Progress(0, total, 0.0, time.perf_counter() - t0, None))
            dec.start()
            enc.start()
            pending_pts: deque[int | None] = deque()
            out_dtype = np.uint8
            try:
                buf: list[np.ndarray] = []

                def run_model(frames: list[np.ndarray] | None) -> None:
                    if frames:
                        # 8-bit video reaches a model with ``uint8_io`` as integers: no float conversion
                        integer = uint8_io and frames[0].dtype == np.uint8
                        out = engine.push(to_tensor(frames, in_device, integer=integer))
                    else:
                        out = engine.flush()
                    if out.shape[0] == 0:
                        return
                    # no wait for the device here: the encoder thread waits, the model gets the next frames
                    pending = to_array_async(out, out_dtype)
                    ptss = [pending_pts.popleft() for _ in range(out.shape[0])]
                    while not stop.is_set():
                        try:
                            enc_q.put((pending, ptss), timeout=0.1)
                            return
                        except queue.Full:
                            continue
                    if enc_error:
                        raise enc_error[0]

                while True:
                    item = dec_q.get()
                    if item is _DONE:
                        break
                    if isinstance(item, _Failed):
                        raise item.exc
                    if enc_error:
                        raise enc_error[0]
                    out_dtype = item.rgb.dtype
                    buf.append(item.rgb)
                    pending_pts.append(item.pts)
                    if len(buf) >= batch:
                        run_model(buf)
                        buf = []
                if buf:
                    run_model(buf)
                if engine.frames_in == 0:
                    raise InputError(f"{src}: no video frames could be decoded")
                run_model(None)
                enc_q.put(_DONE)
                enc.join()
                if enc_error:
                    raise enc_error[0]
            except BaseException:
                stop.set()
                raise
            finally:
                stop.set()
                dec.join(timeout=5)
    el = time.perf_counter() - t0
    if progress is not None:
        progress(Progress(written[0], total, written[0] / el if el > 0 else 0.0, el, 0.0, done=True))
    phases = {} if first_frame[0] is None else {"first_frame": first_frame[0]}
    return RunResult(written[0], el, str(dst), out_w, out_h, phases)
