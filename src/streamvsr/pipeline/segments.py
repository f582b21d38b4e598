"""One video, several workers: split the frames into segments, upscale each, join by remuxing.

The frames are split into N contiguous ranges, balanced so that every segment pushes the same number of
frames, warm-up and look-ahead included (:func:`balanced_bounds`). A model keeps temporal state (FlashVSR a KV cache of
previous windows, Stream-DiffVSR its previous output), so a segment that started cold would differ
from the same frames processed in one stream, and the seam would show. Each segment therefore also
decodes and pushes ``overlap`` warm-up frames before its range and ``spec.latency`` look-ahead frames
after it; their outputs are discarded. Every input frame gets exactly one output frame, at its own
timestamp. Default overlap: ``max(16, 2 * latency + 1)``: for FlashVSR (latency 24) 49 frames, i.e.
its 25-frame first call plus 24 frames (its 3 KV-cache windows of 8 frames), so the segment's first
kept frame is made by a steady call with a full cache; for latency-0 recurrent models (Stream-DiffVSR:
the previous output) 16 frames, half a second, over which the cold start fades.

``segments="auto"``: one segment per worker (WORLD_SIZE, 1 without torchrun), each boundary moved to
the strongest scene cut (luma-histogram change of a downscaled decode of the frames within reach only)
within a quarter of a segment of the balanced split point. At a cut no warm-up is used: the model's memory
of the previous shot is worthless there. Without a cut nearby, the balanced point with the overlap is used.

Each segment is encoded to ``.OUT.segments/part-NNNN.nut`` next to the output (NUT keeps timestamps
exact), with the same encoder settings, starting with a keyframe. Then rank 0 (after a barrier, or the
single process) joins the parts by copying packets into OUT, copying the input's audio/subtitles once
for the whole duration; OUT is written atomically and the parts are removed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from streamvsr.errors import InputError, OutputError, StreamVSRError
from streamvsr.pipeline.jobs import rank_and_world
from streamvsr.pipeline.protocol import StreamingModel
from streamvsr.pipeline.run import EncodeOptions, FrameRange, Progress, RunResult, upscale_file

MIN_OVERLAP = 16
CUT_THRESHOLD = 0.3  # luma-histogram change (0..1) that counts as a scene cut
CUT_WINDOW = 4  # search +- segment length / CUT_WINDOW around each even split point


def default_overlap(latency: int) -> int:
    """Warm-up frames before each segment: enough for the look-ahead and the model's memory."""
    return max(MIN_OVERLAP, 2 * latency + 1)


@dataclass(frozen=True)
class Segment:
    """Frames ``[begin, end)`` are kept; ``[lo, hi)`` are pushed (warm-up before, look-ahead after)."""

    index: int
    begin: int
    end: int
    lo: int
    hi: int


@dataclass(frozen=True)
class SegmentPlan:
    pts: list[int]  # every frame's pts, display order
    time_base: Fraction
    origin: Fraction
    segments: list[Segment]

    def frame_range(self, s: Segment) -> FrameRange:
        seek = float(self.pts[s.lo] * self.time_base - self.origin) if s.lo > 0 else None
        return FrameRange(seek, self.pts[s.lo], self.pts[s.hi - 1], self.pts[s.begin], self.pts[s.end - 1])


def balanced_bounds(total: int, n: int, overlap: int, lookahead: int) -> list[int]:
    """The N-1 inner boundaries that give every segment the same number of *pushed* frames.

    Segment k pushes its kept frames, plus ``overlap`` warm-up frames if k > 0 and ``lookahead`` frames if
    k < N-1; so the first and last segments keep more frames than the inner ones. Where that would leave a
    segment with fewer than one kept frame (a very short video), the even split."""
    if n <= 1:
        return []
    work = (total + (n - 1) * (overlap + lookahead)) / n
    bounds, at = [], 0.0
    for k in range(n - 1):
        at += work - (overlap if k > 0 else 0) - lookahead
        bounds.append(round(at))
    edges = [0, *bounds, total]
    if any(b <= a for a, b in zip(edges, edges[1:])):
        return [round(k * total / n) for k in range(1, n)]
    return bounds


def split_frames(
    total: int, n: int, overlap: int, lookahead: int, bounds: list[int] | None = None, cuts: frozenset = frozenset()
) -> list[Segment]:
    """N contiguous segments of ``total`` frames (:func:`balanced_bounds` unless ``bounds``, the N-1 inner
    boundaries); a boundary in ``cuts`` gets no warm-up."""
    if n < 1:
        raise InputError(f"--segments must be at least 1, got {n}")
    if n > total:
        raise InputError(f"--segments {n} is more than the video's {total} frames")
    if overlap < 0:
        raise InputError(f"--overlap must be 0 or more, got {overlap}")
    inner = bounds if bounds is not None else balanced_bounds(total, n, overlap, lookahead)
    edges = [0, *inner, total]
    segs = []
    for i in range(n):
        b, e = edges[i], edges[i + 1]
        if e <= b:
            raise ValueError(f"empty segment {i}: {edges}")
        lo = b if b in cuts else max(0, b - overlap)
        segs.append(Segment(i, b, e, lo, min(total, e + lookahead)))
    return segs


PRESCAN_MARGIN = 256  # frames scored beyond the reach of the even split points by prescan_scenes


@dataclass(frozen=True)
class SceneScan:
    """Scene-cut scores of some frames of a video: ``spans`` are the frame-index ranges [lo, hi] scored."""

    frames: int
    spans: tuple[tuple[int, int], ...]
    scores: dict[int, float]  # pts -> score

    def covers(self, spans: list[list[int]]) -> bool:
        return all(any(a <= lo and hi <= b for a, b in self.spans) for lo, hi in spans)


def _merge(ranges: list[tuple[int, int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def _spans(points: list[int], reach: int, total: int) -> list[list[int]]:
    """The frame ranges a split point may move to, plus the frame before each (scored against it), merged."""
    return _merge([(max(0, e - reach - 1), min(total - 1, e + reach)) for e in points])


def _scan(src: str | Path, pts: list[int], spans: list[list[int]]) -> SceneScan:
    from streamvsr.media.scenes import cut_scores

    scores = cut_scores(src, windows=[(pts[lo], pts[hi]) for lo, hi in spans])
    return SceneScan(len(pts), tuple((lo, hi) for lo, hi in spans), scores)


def prescan_scenes(src: str | Path, workers: int, margin: int = PRESCAN_MARGIN) -> SceneScan | None:
    """The scene scores ``--segments auto`` on ``workers`` workers will need, before the model is known.

    The split points depend on the model's warm-up and look-ahead (:func:`balanced_bounds`), so this scores
    the frames within reach of the even points plus ``margin``; the CLI runs it while the model loads, and
    :func:`plan_segments` scans whatever it does not cover. None for a video without a packet index."""
    from streamvsr.media.remux import video_index

    index = video_index(src)
    if index is None or workers < 2 or len(index.pts) < workers:
        return None
    total = len(index.pts)
    reach = max(1, total // (workers * CUT_WINDOW)) + margin
    points = [round(k * total / workers) for k in range(1, workers)]
    return _scan(src, index.pts, _spans(points, reach, total))


def _scene_bounds(
    src: str | Path, pts: list[int], n: int, overlap: int, lookahead: int, scan: SceneScan | None = None
) -> tuple[list[int], frozenset]:
    """Boundaries moved from the balanced split points to the strongest scene cut within reach."""
    total = len(pts)
    reach = max(1, total // (n * CUT_WINDOW))
    points = balanced_bounds(total, n, overlap, lookahead)
    spans = _spans(points, reach, total)
    if scan is None or scan.frames != total or not scan.covers(spans):
        scan = _scan(src, pts, spans)
    score = [scan.scores.get(p, 0.0) for p in pts]
    bounds, cuts = [], set()
    for k, even in enumerate(points, start=1):
        lo = max(bounds[-1] + 1 if bounds else 1, even - reach)
        hi = min(total - (n - k), even + reach)
        best = max(range(lo, hi + 1), key=lambda i: (score[i], -abs(i - even)), default=even)
        if score[best] >= CUT_THRESHOLD:
            bounds.append(best)
            cuts.add(best)
        else:
            bounds.append(max(even, bounds[-1] + 1) if bounds else even)
    return bounds, frozenset(cuts)


def plan_segments(
    src: str | Path, segments: int | str, overlap: int, lookahead: int, world: int = 1, scan: SceneScan | None = None
) -> SegmentPlan:
    """Frame index of ``src`` and its segments (``segments``: a count, or "auto" = one per worker at scene
    cuts; ``scan``: scores from :func:`prescan_scenes`, used where they cover what the plan needs)."""
    from streamvsr.media import open_reader
    from streamvsr.media.remux import video_index

    index = video_index(src)
    if index is not None:
        pts, tb, origin = index.pts, index.time_base, index.origin
    else:  # some packet without a timestamp: take the reader's (which fills them in)
        with open_reader(src) as r:
            tb, origin = Fraction(r.info.time_base), Fraction(r.info.start_time).limit_denominator(1_000_000)
            pts = [f.pts for f in r]
    if not pts:
        raise InputError(f"{src}: no video frames")
    if segments == "auto":
        n = world
        if n > len(pts):
            raise InputError(f"--segments auto: {n} workers for only {len(pts)} frames")
        bounds, cuts = _scene_bounds(src, pts, n, overlap, lookahead, scan) if n > 1 else ([], frozenset())
        segs = split_frames(len(pts), n, overlap, lookahead, bounds, cuts)
    else:
        segs = split_frames(len(pts), int(segments), overlap, lookahead)
    return SegmentPlan(pts, tb, origin, segs)


class _Group:
    """The torchrun ranks (a gloo process group for the plan broadcast and the barrier), or one process."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world
        self._own = False
        if world > 1:
            import datetime

            import torch.distributed as dist

            if not dist.is_initialized():
                # a segment can take hours: the barrier must outwait the slowest rank
                dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
                self._own = True

    def broadcast(self, obj: object) -> object:
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self._own:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._own = False


def parts_folder(dst: str | Path) -> Path:
    dst = Path(dst)
    return dst.parent / f".{dst.name}.segments"


def upscale_segmented(
    src: str | Path,
    dst: str | Path,
    model: StreamingModel,
    *,
    segments: int | str,
    overlap: int | None = None,
    device: str = "cpu",
    encode: EncodeOptions | None = None,
    batch: int = 4,
    progress: Callable[[Progress], None] | None = None,
    rank: int | None = None,
    world: int | None = None,
    on_segment: Callable[[Segment, RunResult], None] | None = None,
    scan: SceneScan | None = None,
) -> RunResult:
    """Upscale ``src`` into ``dst`` as segments (this rank's share of them), joined by rank 0.

    ``rank``/``world`` default to torchrun's RANK/WORLD_SIZE (0/1 without it: every segment runs here,
    one after another). The result on rank 0 describes the joined output; on other ranks, their parts.
    """
    from streamvsr.media import open_reader, open_writer
    from streamvsr.media.remux import VideoJoin, container_muxer
    from streamvsr.media.writer import DEFAULT_CODEC, DEFAULT_CODECS, png_target

    encode = encode or EncodeOptions()
    env_rank, env_world = rank_and_world()
    rank = env_rank if rank is None else rank
    world = env_world if world is None else world
    if str(src) == "-":
        raise InputError("--segments needs a video file as input, not stdin")
    if Path(src).is_dir():
        raise InputError("--segments needs a video file as input, not a folder of images")
    if str(dst) == "-" or encode.format == "png" or png_target(str(dst), encode.format):
        raise OutputError("--segments writes a video file (mp4, mkv, mov, webm), not stdout or PNG images")
    muxer = container_muxer(dst, encode.format)
    lookahead = model.spec.latency
    overlap = default_overlap(lookahead) if overlap is None else overlap
    s = model.spec.scale
    copy = encode.copy_audio or encode.copy_subtitles
    # the final output's checks (existing file, container vs codecs, audio copy) before any work
    with open_reader(src) as r:
        info = r.info
    probe = open_writer(
        dst, info, info.width * s, info.height * s, codec=encode.codec, crf=encode.crf, bitrate=encode.bitrate,
        pix_fmt=encode.pix_fmt, options=encode.options, format=encode.format, copy_from=src if copy else None,
        copy_audio=encode.copy_audio, copy_subtitles=encode.copy_subtitles, overwrite=encode.overwrite,
        background=False,
    )  # fmt: skip
    probe.abort()

    t0 = time.perf_counter()
    work = parts_folder(dst)
    group = _Group(rank, world)
    phases = {"start": time.perf_counter() - t0}  # start: the ranks meet; plan, segments, wait, join
    mine: list[Path] = []
    join: VideoJoin | None = None
    try:
        plan: SegmentPlan | StreamVSRError | None = None
        if rank == 0:
            try:
                plan = plan_segments(src, segments, overlap, lookahead, world, scan)
                shutil.rmtree(work, ignore_errors=True)  # parts of an interrupted run
                work.mkdir()
            except StreamVSRError as e:
                plan = e
        plan = group.broadcast(plan)
        phases["plan"] = time.perf_counter() - t0 - phases["start"]
        if isinstance(plan, StreamVSRError):
            raise plan
        assert isinstance(plan, SegmentPlan)
        todo = [seg for seg in plan.segments if seg.index % world == rank]
        total = sum(seg.end - seg.begin for seg in todo)
        # the parts: the encoder the output's container would get, NUT (exact timestamps), video only
        codec = encode.codec or DEFAULT_CODECS.get(muxer, DEFAULT_CODEC)
        part_enc = replace(encode, codec=codec, format="nut", copy_audio=False, copy_subtitles=False, overwrite=True)
        done = 0
        for seg in todo:
            part = work / f"part-{seg.index:04d}.nut"
            mine.append(part)

            def report(p: Progress, done: int = done) -> None:
                if progress is not None and not p.done:
                    el = time.perf_counter() - t0
                    n = done + p.frames
                    fps = n / el if el > 0 else 0.0
                    progress(Progress(n, total, fps, el, (total - n) / fps if fps > 0 else None))

            res = upscale_file(
                src, part, model, device=device, encode=part_enc, batch=batch, progress=report,
                frame_range=plan.frame_range(seg),
            )  # fmt: skip
            want = seg.end - seg.begin
            if res.frames != want:
                raise InputError(
                    f"{src}: segment {seg.index} decoded {res.frames} of its {want} frames; "
                    "this video cannot be split exactly (run it without --segments)"
                )
            done += res.frames
            if on_segment is not None:
                on_segment(seg, res)
        t1 = time.perf_counter()
        phases["segments"] = t1 - t0 - phases["start"] - phases["plan"]
        parts = [(work / f"part-{seg.index:04d}.nut", seg) for seg in plan.segments]
        if rank == 0:  # copy the parts that are ready (this rank's first ones) while the others finish theirs
            join = VideoJoin(
                dst, info, plan.pts, format=encode.format, copy_from=src if copy else None,
                copy_audio=encode.copy_audio, copy_subtitles=encode.copy_subtitles, overwrite=encode.overwrite,
            )  # fmt: skip
            while parts and parts[0][1].index % world == 0:
                part, seg = parts.pop(0)
                join.add(part, seg.begin)
        t2 = time.perf_counter()
        phases["join_ready"] = t2 - t1
        group.barrier()
        t3 = time.perf_counter()
        phases["wait"] = t3 - t2
        if join is None:
            return RunResult(done, t3 - t0, str(work), info.width * s, info.height * s, phases)
        for part, seg in parts:
            join.add(part, seg.begin)
        frames = join.finish()
        if frames != len(plan.pts):  # never seen: every part was counted above
            Path(dst).unlink(missing_ok=True)
            raise OutputError(f"{dst}: joined {frames} frames of {len(plan.pts)}; output removed")
        shutil.rmtree(work, ignore_errors=True)
        el = time.perf_counter() - t0
        phases["join"] = el - (t3 - t0)
        if progress is not None:  # this rank's frames, as the reports before
            progress(Progress(done, total, done / el if el > 0 else 0.0, el, 0.0, done=True))
        return RunResult(frames, el, str(dst), info.width * s, info.height * s, phases)
    except BaseException:
        if join is not None:
            join.abort()
        if rank == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for p in mine:
                p.unlink(missing_ok=True)
        raise
    finally:
        group.close()
