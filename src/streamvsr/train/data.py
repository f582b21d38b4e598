"""Training data: a JSON-lines manifest over video / frame-folder / image corpora and a clip dataset.

Manifest
--------
:func:`build_manifest` walks data roots once and writes one JSON object per line::

    {"path": "/abs/clip_dir", "kind": "frame_folder", "frames": 80, "width": 854, "height": 480,
     "files": ["00000.jpg", ...], "fps": null}

``kind`` is ``video_file`` (anything PyAV/FFmpeg opens), ``frame_folder`` (a folder of images that
form one video, frames in name order) or ``image`` (a still, used as a 1-frame clip). How a folder
of images is read depends on its root's layout (:class:`DataRoot`): ``"video"`` makes every folder
of images one frame folder, ``"images"`` makes every image a still, ``"auto"`` calls a folder a
frame folder when it holds >= 2 images whose names end in consecutive integers and share one size.

Dataset
-------
:class:`VSRDataset` is a map-style dataset of *virtual* samples: sample ``i`` of epoch ``e`` is a
pure function of ``(seed, e, i)`` (which source, clip start, stride, crop, flips, reversal and the
degradation seed), so resuming at any sample reproduces the same data bit for bit. Batches are
**homogeneous**: :class:`JointBatchSampler` buckets samples into all-image batches (``T = 1``) and
all-video batches (``T = clip_len``); we do *not* pack images and videos in one sequence with a
block-diagonal mask as FlashVSR does. About ``image_prob`` of the samples (and so of the batches)
are images.

Sources smaller than the crop: ``small="skip"`` (default) drops them when the dataset is built;
``small="upscale"`` takes the largest centred-anywhere square and bicubic-upscales it to the crop
(blurry HR, so only for tiny corpora). Videos shorter than ``clip_len`` frames are always skipped.
Photos are read without applying EXIF rotation (the manifest stores the stored pixel size).
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from streamvsr.errors import DataError
from streamvsr.train.degradations import DEFAULT_REAL_CONFIG, RealDegradationConfig, degrade

# .npy: an (H, W, 3) uint8 RGB array, memory-mapped so that a crop reads only its own rows (the fastest frame
# store for training: scripts/pack_data.py --unpack writes it)
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".npy"})
VIDEO_EXTS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".flv"}
    | {".wmv", ".y4m", ".ogv", ".3gp", ".mxf", ".nut", ".h264", ".264", ".hevc", ".265", ".ivf"}
)
Layout = Literal["auto", "video", "images"]
Kind = Literal["video_file", "frame_folder", "image"]
_IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


# ----------------------------------------------------------------------------------------------
# Data roots
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataRoot:
    """A folder to index and how its image folders are read (see module docstring)."""

    path: Path
    layout: Layout = "auto"

    def __post_init__(self) -> None:
        if self.layout not in ("auto", "video", "images"):
            raise DataError(f"unknown data root layout {self.layout!r}; use auto, video or images")


def data_dir() -> Path:
    """Shared data folder: ``$STREAMVSR_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get("STREAMVSR_DATA")
    if env:
        return Path(env).expanduser().resolve()
    repo = Path(__file__).resolve().parents[3]  # src/streamvsr/train/data.py -> repo root
    return (repo.parent / "shared" / "data").resolve()


def default_train_roots() -> tuple[DataRoot, ...]:
    """Training roots under ``data_dir()/train``: videos (frame folders) and still images.

    ``data_dir()/val`` is never included: validation clips stay out of training.
    """
    train = data_dir() / "train"
    return (DataRoot(train / "video", "video"), DataRoot(train / "images", "images"))


DEFAULT_TRAIN_ROOTS: tuple[DataRoot, ...] = default_train_roots()


# ----------------------------------------------------------------------------------------------
# Manifest
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """One source: a video file, a folder of frames or a still image."""

    path: str
    kind: Kind
    frames: int
    width: int
    height: int
    files: tuple[str, ...] = ()  # frame folders only: frame file names in order
    fps: float | None = None  # video files only (average rate)

    @property
    def name(self) -> str:
        """Short readable name: parent folder / file or folder name."""
        p = Path(self.path)
        return f"{p.parent.name}/{p.name}"

    def to_json(self) -> str:
        d = asdict(self)
        d["files"] = list(self.files)
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ManifestEntry:
        if d.get("kind") not in ("video_file", "frame_folder", "image"):
            raise DataError(f"bad manifest row {dict(d)!r}: unknown kind {d.get('kind')!r}")
        try:
            return cls(
                path=str(d["path"]),
                kind=d["kind"],
                frames=int(d["frames"]),
                width=int(d["width"]),
                height=int(d["height"]),
                files=tuple(d.get("files") or ()),
                fps=None if d.get("fps") is None else float(d["fps"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"bad manifest row {dict(d)!r}: {e}") from None


def _as_root(root: DataRoot | Path | str) -> DataRoot:
    return root if isinstance(root, DataRoot) else DataRoot(Path(root))


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header (no decode)."""
    if path.suffix.lower() == ".npy":
        shape = _load_npy(path).shape
        return int(shape[1]), int(shape[0])
    with Image.open(path) as im:
        return int(im.size[0]), int(im.size[1])


def probe_video(path: Path) -> tuple[int, int, int, float | None]:
    """(frames, width, height, fps) of the first video stream; counts packets when the header has no count."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(f"{path}: no video stream")
            s = c.streams.video[0]
            w, h = int(s.codec_context.width), int(s.codec_context.height)
            fps = float(s.average_rate) if s.average_rate else None
            n = int(s.frames or 0)
            if n <= 0:
                n = sum(1 for p in c.demux(s) if p.size > 0)
    except av.FFmpegError as e:
        raise DataError(f"{path}: cannot read video ({e})") from None
    if n <= 0 or w <= 0 or h <= 0:
        raise DataError(f"{path}: empty video")
    return n, w, h, fps


_TRAILING_INT = re.compile(r"(\d+)$")


def _looks_like_frames(files: Sequence[Path]) -> bool:
    if len(files) < 2:
        return False
    nums = []
    for f in files:
        m = _TRAILING_INT.search(f.stem)
        if not m:
            return False
        nums.append(int(m.group(1)))
    nums.sort()
    if any(b - a != 1 for a, b in zip(nums, nums[1:])):
        return False
    first = _image_size(files[0])
    return all(_image_size(f) == first for f in files[1:])


def _frame_folder_entry(folder: Path, files: Sequence[Path]) -> ManifestEntry:
    w, h = _image_size(files[0])
    if _image_size(files[-1]) != (w, h):
        raise DataError(f"{folder}: frames differ in size")
    return ManifestEntry(str(folder), "frame_folder", len(files), w, h, tuple(f.name for f in files))


def scan_roots(
    roots: Iterable[DataRoot | Path | str], progress: Callable[[str], None] | None = None
) -> list[ManifestEntry]:
    """Index ``roots`` (recursively, in sorted order). Unreadable files are skipped with a warning."""
    entries: list[ManifestEntry] = []
    for root in map(_as_root, roots):
        base = Path(root.path)
        if not base.exists():
            raise DataError(f"data root does not exist: {base}")
        walk = [(base.parent, [], [base.name])] if base.is_file() else os.walk(base, followlinks=True)
        for dirpath, dirnames, filenames in walk:
            dirnames.sort()
            folder = Path(dirpath)
            paths = [folder / f for f in sorted(filenames) if not f.startswith(".")]
            images = [p for p in paths if p.suffix.lower() in IMAGE_EXTS]
            videos = [p for p in paths if p.suffix.lower() in VIDEO_EXTS]
            for v in videos:
                try:
                    n, w, h, fps = probe_video(v)
                except DataError as e:
                    warnings.warn(f"skipping {e}", stacklevel=2)
                    continue
                entries.append(ManifestEntry(str(v), "video_file", n, w, h, (), fps))
            if not images:
                continue
            try:
                as_frames = root.layout == "video" or (root.layout == "auto" and _looks_like_frames(images))
                if as_frames:
                    entries.append(_frame_folder_entry(folder, images))
                else:
                    for im in images:
                        w, h = _image_size(im)
                        entries.append(ManifestEntry(str(im), "image", 1, w, h))
            except (OSError, DataError) as e:
                warnings.warn(f"skipping {folder}: {e}", stacklevel=2)
                continue
            if progress is not None:
                progress(f"{len(entries)} sources after {folder}")
    return entries


def write_manifest(entries: Iterable[ManifestEntry], out: Path) -> None:
    """Write entries as JSON lines (atomically: temp file then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for e in entries:
            f.write(e.to_json() + "\n")
    os.replace(tmp, out)


def build_manifest(
    roots: Iterable[DataRoot | Path | str], out: Path, progress: Callable[[str], None] | None = None
) -> list[ManifestEntry]:
    """Index ``roots`` and write the JSON-lines manifest to ``out``; returns the entries."""
    entries = scan_roots(roots, progress)
    write_manifest(entries, Path(out))
    return entries


def load_manifest(path: Path) -> list[ManifestEntry]:
    """Read a manifest written by :func:`build_manifest`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}")
    entries = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    entries.append(ManifestEntry.from_dict(json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: not JSON ({e.msg})") from None
    return entries


def ensure_manifest(roots: Iterable[DataRoot | Path | str], out: Path) -> list[ManifestEntry]:
    """Load ``out`` if it exists, else build it (large corpora are indexed once)."""
    out = Path(out)
    return load_manifest(out) if out.is_file() else build_manifest(roots, out)


# ----------------------------------------------------------------------------------------------
# Reading frames
# ----------------------------------------------------------------------------------------------

Box = tuple[int, int, int, int]  # (top, left, height, width)


def _crop(img: np.ndarray, box: Box | None) -> np.ndarray:
    if box is None:
        return img
    t, l, h, w = box
    return img[t : t + h, l : l + w]


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read frame {path}: {e}") from None
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f"{path}: a .npy frame must be (H, W, 3) uint8 RGB, got {arr.dtype} {arr.shape}")
    return arr


def _imread_rgb(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return _load_npy(path)  # memory-mapped: the caller's crop reads only what it keeps
    img = cv2.imread(str(path), _IMREAD_FLAGS)
    if img is None:
        raise DataError(f"cannot read image {path}")
    return img[:, :, ::-1]  # BGR -> RGB view


def _decode_indices(path: str, wanted: Sequence[int], fps: float | None, box: Box | None) -> dict[int, np.ndarray]:
    """Decode the frames with the given 0-based indices; seeks when the first is far in."""
    need = set(wanted)
    last = max(need)
    got: dict[int, np.ndarray] = {}

    def keep(i: int, frame: av.VideoFrame) -> None:
        if i in need and i not in got:
            got[i] = np.ascontiguousarray(_crop(frame.to_ndarray(format="rgb24"), box))

    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        first = min(need)
        tb = s.time_base
        start_pts = s.start_time if s.start_time is not None else 0
        if first >= 32 and fps and tb:
            # Seek to the keyframe before the first wanted frame; index frames by their pts.
            target = start_pts + int(Fraction(first) / Fraction(fps).limit_denominator(100000) / tb)
            c.seek(target, stream=s, backward=True, any_frame=False)
            for frame in c.decode(s):
                if frame.pts is None:
                    break
                i = round(float((frame.pts - start_pts) * tb) * fps)
                keep(i, frame)
                if i >= last:
                    break
            if len(got) == len(need):
                return got
            got.clear()
            c.seek(start_pts, stream=s, backward=True, any_frame=False)
        for i, frame in enumerate(c.decode(s)):
            keep(i, frame)
            if i >= last:
                break
    return got


def read_frames(entry: ManifestEntry, indices: Sequence[int], box: Box | None = None) -> np.ndarray:
    """Frames ``indices`` of ``entry`` as uint8 RGB ``(len(indices), h, w, 3)``, cropped to ``box``.

    Frame folders and images load only the needed files; video files decode from the nearest
    keyframe before the first index.
    """
    if entry.kind == "image":
        img = np.ascontiguousarray(_crop(_imread_rgb(Path(entry.path)), box))
        return np.stack([img] * len(indices))
    if entry.kind == "frame_folder":
        folder = Path(entry.path)
        files = entry.files or tuple(sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS))
        cache: dict[int, np.ndarray] = {}
        for i in indices:
            if i not in cache:
                cache[i] = np.ascontiguousarray(_crop(_imread_rgb(folder / files[i]), box))
        return np.stack([cache[i] for i in indices])
    if entry.kind == "video_file":
        try:
            got = _decode_indices(entry.path, indices, entry.fps, box)
        except av.FFmpegError as e:
            raise DataError(f"{entry.path}: decode failed ({e})") from None
        missing = sorted(set(indices) - set(got))
        if missing:
            raise DataError(f"{entry.path}: frames {missing[:3]}... not found (manifest out of date?)")
        return np.stack([got[i] for i in indices])
    raise DataError(f"unknown manifest kind {entry.kind!r}")


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplePlan:
    """Every random choice of one sample (pure function of seed, epoch, index)."""

    source: int  # index into VSRDataset.entries
    is_image: bool
    indices: tuple[int, ...]  # frame indices in output order (reversal applied)
    box: Box  # source region (top, left, side, side); resized to the crop when side != crop
    hflip: bool
    vflip: bool
    degradation_seed: int


IMAGE_PROB_DEFAULT = 0.2  # share of photo steps when --image-prob is not given and the data has photos


def resolve_image_prob(requested: float | None, has_images: bool) -> float:
    """The share of photo steps: ``requested``, or :data:`IMAGE_PROB_DEFAULT` / 0 (no photos) when None.

    Photo steps asked for explicitly with no photos in the data are an error, never a silent video-only run.
    """
    if requested is None:
        return IMAGE_PROB_DEFAULT if has_images else 0.0
    if requested > 0 and not has_images:
        raise DataError(
            f"--image-prob {requested} asks for photo steps, but --data has no usable still images; "
            "add photos or pass --image-prob 0"
        )
    return requested


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for sample ``index`` of ``epoch``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


@dataclass
class VSRDataset(Dataset):
    """Random HR crops of clips/images with synthetic LR; see the module docstring.

    Each item is ``dict(hr=(T,3,crop,crop), lr=(T,3,crop/scale,crop/scale), is_image=bool, name=str)``
    in [0, 1], ``T = clip_len`` for videos and 1 for images. ``dataset[i]`` uses ``self.epoch``;
    ``dataset[(epoch, i)]`` names the epoch explicitly (what :class:`JointBatchSampler` yields, so
    that persistent DataLoader workers stay in step).

    Video sources are drawn with probability proportional to their frame count, images uniformly.
    ``max_zoom_out > 1`` takes a square of side ``crop * z`` (z log-uniform in [1, max_zoom_out],
    capped by the source) and area-resizes it to the crop, so large photos give more context.
    """

    manifest: Sequence[ManifestEntry] | Path | str
    clip_len: int = 17
    crop: int = 256
    scale: int = 4
    degradation: str | Mapping[str, float] = "mix"
    image_prob: float = 0.25
    seed: int = 0
    epoch: int = 0
    samples_per_epoch: int | None = None
    strides: tuple[int, ...] = (1, 2)
    small: Literal["skip", "upscale"] = "skip"
    max_zoom_out: float = 1.0
    real_cfg: RealDegradationConfig = field(default=DEFAULT_REAL_CONFIG)

    def __post_init__(self) -> None:
        if isinstance(self.manifest, str | Path):
            self.manifest = load_manifest(Path(self.manifest))
        if self.crop <= 0 or self.crop % 32:
            raise DataError(f"crop must be a positive multiple of 32, got {self.crop}")
        if self.scale < 1 or self.crop % self.scale:
            raise DataError(f"crop {self.crop} is not divisible by scale {self.scale}")
        if self.clip_len < 1:
            raise DataError(f"clip_len must be >= 1, got {self.clip_len}")
        if not 0.0 <= self.image_prob <= 1.0:
            raise DataError(f"image_prob must lie in [0, 1], got {self.image_prob}")
        if self.small not in ("skip", "upscale"):
            raise DataError(f"small must be 'skip' or 'upscale', got {self.small!r}")
        if not self.strides or min(self.strides) < 1:
            raise DataError(f"strides must be positive, got {self.strides}")
        if self.max_zoom_out < 1.0:
            raise DataError(f"max_zoom_out must be >= 1, got {self.max_zoom_out}")

        def big_enough(e: ManifestEntry) -> bool:
            return self.small == "upscale" or min(e.width, e.height) >= self.crop

        self.entries: list[ManifestEntry] = list(self.manifest)
        self.videos = [i for i, e in enumerate(self.entries) if e.kind != "image"]
        self.videos = [i for i in self.videos if self.entries[i].frames >= self.clip_len]
        self.videos = [i for i in self.videos if big_enough(self.entries[i])]
        self.images = [i for i, e in enumerate(self.entries) if e.kind == "image" and big_enough(e)]
        if not self.videos and not self.images:
            raise DataError(
                f"no usable sources in the manifest for clip_len={self.clip_len}, crop={self.crop} "
                f"(small={self.small!r}); {len(self.entries)} entries"
            )
        w = np.asarray([self.entries[i].frames for i in self.videos], dtype=np.float64)
        self._video_p = w / w.sum() if len(w) else w
        if self.samples_per_epoch is None:
            n_clips = sum(self.entries[i].frames // self.clip_len for i in self.videos)
            self.samples_per_epoch = max(1, n_clips + len(self.images))

    def __len__(self) -> int:
        return int(self.samples_per_epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _image_chance(self) -> float:
        if not self.videos:
            return 1.0
        return 0.0 if not self.images else self.image_prob

    def is_image(self, index: int, epoch: int | None = None) -> bool:
        """Whether sample ``index`` of ``epoch`` is a still (cheap: the plan's first draw)."""
        rng = sample_rng(self.seed, self.epoch if epoch is None else epoch, index)
        return bool(rng.random() < self._image_chance())

    def plan(self, index: int, epoch: int | None = None) -> SamplePlan:
        """All random choices of sample ``index`` (deterministic in seed, epoch, index)."""
        rng = sample_rng(self.seed, self.epoch if epoch is None else epoch, index)
        is_image = bool(rng.random() < self._image_chance())  # first draw, as in is_image()
        if is_image:
            src = self.images[int(rng.integers(len(self.images)))]
            indices: tuple[int, ...] = (0,)
        else:
            src = self.videos[int(rng.choice(len(self.videos), p=self._video_p))]
            n = self.entries[src].frames
            ok = [s for s in self.strides if (self.clip_len - 1) * s + 1 <= n] or [1]
            stride = int(ok[int(rng.integers(len(ok)))])
            start = int(rng.integers(0, n - (self.clip_len - 1) * stride))
            indices = tuple(start + k * stride for k in range(self.clip_len))
            if rng.random() < 0.5:
                indices = indices[::-1]
        e = self.entries[src]
        short = min(e.width, e.height)
        if short < self.crop:
            side = short  # upscaled later (small="upscale")
        else:
            zmax = min(self.max_zoom_out, short / self.crop)
            side = self.crop if zmax <= 1.0 else int(self.crop * math.exp(rng.uniform(0.0, math.log(zmax))))
            side = min(max(side, self.crop), short)
        top = int(rng.integers(0, e.height - side + 1))
        left = int(rng.integers(0, e.width - side + 1))
        hflip, vflip = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        deg_seed = int(rng.integers(0, 2**63 - 1))
        return SamplePlan(src, is_image, indices, (top, left, side, side), hflip, vflip, deg_seed)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        p = self.plan(int(index), int(epoch))
        e = self.entries[p.source]
        clip = read_frames(e, p.indices, p.box)  # (T, side, side, 3) uint8
        if clip.shape[1] != self.crop or clip.shape[2] != self.crop:
            interp = cv2.INTER_AREA if clip.shape[1] > self.crop else cv2.INTER_CUBIC
            clip = np.stack([cv2.resize(f, (self.crop, self.crop), interpolation=interp) for f in clip])
        if p.hflip:
            clip = clip[:, :, ::-1]
        if p.vflip:
            clip = clip[:, ::-1]
        hr = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).float() / 255.0  # (T, 3, H, W)
        lr = degrade(hr, self.degradation, p.degradation_seed, self.scale, real_cfg=self.real_cfg)
        if p.is_image:
            name = e.name
        else:
            step = p.indices[1] - p.indices[0] if len(p.indices) > 1 else 1
            name = f"{e.name}[{p.indices[0]}:{step:+d}x{len(p.indices)}]"
        return {"hr": hr, "lr": lr, "is_image": p.is_image, "name": name}


def collate_clips(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples of equal clip length: hr ``(B,T,3,H,W)``, lr ``(B,T,3,h,w)``, is_image ``(B,)``."""
    lengths = {s["hr"].shape[0] for s in samples}
    if len(lengths) != 1:
        raise DataError(f"cannot batch clips of different lengths {sorted(lengths)}; use JointBatchSampler")
    return {
        "hr": torch.stack([s["hr"] for s in samples]),
        "lr": torch.stack([s["lr"] for s in samples]),
        "is_image": torch.tensor([bool(s["is_image"]) for s in samples]),
        "name": [s["name"] for s in samples],
    }


class JointBatchSampler(Sampler[list[tuple[int, int]]]):
    """Homogeneous batches for :class:`VSRDataset`: all images or all videos, never mixed.

    Walks samples ``0 .. len(dataset)-1`` of the current epoch (already random draws) and emits a
    batch whenever the image or the video bucket is full; leftovers are dropped unless
    ``drop_last=False``. Yields ``(epoch, index)`` keys. With ``world_size > 1`` rank ``r`` takes
    batches ``r, r + world_size, ...``. ``start_batch`` skips batches already consumed (resume).
    """

    def __init__(
        self,
        dataset: VSRDataset,
        batch_size: int,
        image_batch_size: int | None = None,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1 or (image_batch_size is not None and image_batch_size < 1):
            raise DataError("batch sizes must be >= 1")
        if not 0 <= rank < world_size:
            raise DataError(f"rank {rank} outside world size {world_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.image_batch_size = image_batch_size or batch_size
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.start_batch = 0
        self._cache: tuple[int, list[list[tuple[int, int]]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def _all_batches(self) -> list[list[tuple[int, int]]]:
        epoch = self.dataset.epoch
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        buckets: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
        batches: list[list[tuple[int, int]]] = []
        for i in range(len(self.dataset)):
            img = self.dataset.is_image(i, epoch)
            buckets[img].append((epoch, i))
            if len(buckets[img]) == (self.image_batch_size if img else self.batch_size):
                batches.append(buckets[img])
                buckets[img] = []
        if not self.drop_last:
            batches.extend(b for b in (buckets[False], buckets[True]) if b)
        self._cache = (epoch, batches)
        return batches

    def _mine(self) -> list[list[tuple[int, int]]]:
        return self._all_batches()[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        yield from self._mine()[self.start_batch :]

    def __len__(self) -> int:
        return max(0, len(self._mine()) - self.start_batch)


def worker_init(_worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one OpenCV thread per worker (torch already uses one)."""
    cv2.setNumThreads(1)


# Workers start from a clean process: forking a parent whose OpenCV/OpenMP thread pools are already
# running can deadlock the child (seen when a worker calls into cv2 after the parent used it).
WORKER_CONTEXT = "forkserver"


# ----------------------------------------------------------------------------------------------
# Validation folders
# ----------------------------------------------------------------------------------------------


def iter_val_sequences(root: Path | str | DataRoot, max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, frames)`` for every sequence under ``root``: uint8 RGB ``(T, H, W, 3)``.

    Frame folders and video files give their frames (first ``max_frames`` if set); images give
    ``T = 1``. Folders use ``layout="auto"`` unless a :class:`DataRoot` says otherwise.
    """
    for e in scan_roots([root]):
        n = e.frames if max_frames is None else min(e.frames, max_frames)
        yield e.name, read_frames(e, range(n))
