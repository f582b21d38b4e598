"""Evaluation data: finding sequences on disk and synthesising their low-quality inputs.

Layouts of ``data_dir`` (``layout="auto"`` picks the first that applies):

* ``sequences``: one sub-folder of frames per sequence (frames in natural sort order);
* ``videos``: a folder of video files, one sequence each (decoded by :mod:`streamvsr.media`);
* ``images``: a folder of images, each a 1-frame sequence (Set5 style);
* ``frames``: the folder itself is one sequence (only when asked for);
* a single video file is one sequence.

Degradations (frames are ``(H, W, 3)`` RGB uint8; the GT is first cropped to a multiple of
``scale``; every LQ is rounded to uint8):

* ``bi``: MATLAB bicubic ``imresize(GT, 1/scale)`` (antialiased);
* ``bd``: Gaussian blur (13x13, sigma 1.6, reflected borders) then every ``scale``-th pixel starting
  at the first (the DUF / BasicSR "BD" protocol);
* ``real``: :func:`streamvsr.train.degradations.real_degrade` with a per-sequence seed;
* ``none``: the frames are the input and there is no GT.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from streamvsr.errors import InputError
from streamvsr.ops.resize import imresize_matlab

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".y4m", ".ts", ".mpg", ".mpeg"}
DEGRADATIONS = ("bi", "bd", "real", "none")
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
LAYOUTS = ("auto", "sequences", "videos", "images", "frames")


def natural_key(name: str) -> list[object]:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _files(folder: Path, exts: set[str]) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts),
                  key=lambda p: natural_key(p.name))  # fmt: skip


@dataclass(frozen=True)
class SequenceSource:
    """Where one sequence's frames come from: a list of image files or one video file."""

    name: str
    images: tuple[Path, ...] = ()
    video: Path | None = None

    def frames(self, max_frames: int | None = None) -> list[np.ndarray]:
        """Decode the frames as ``(H, W, 3)`` RGB uint8 arrays (at most ``max_frames``)."""
        if self.video is not None:
            return _decode_video(self.video, max_frames)
        return [read_image(p) for p in self.images[:max_frames]]

    def is_gray(self) -> bool:
        """True when the source is single-channel (grey image files); videos count as colour."""
        from PIL import Image

        if self.video is not None or not self.images:
            return False
        with Image.open(self.images[0]) as img:
            return img.mode in GRAY_MODES


def read_image(path: Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` RGB uint8."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e}") from e


def _decode_video(path: Path, max_frames: int | None) -> list[np.ndarray]:
    from streamvsr.media.reader import open_reader  # colour-correct YUV -> RGB

    frames: list[np.ndarray] = []
    with open_reader(path) as reader:
        for frame in reader:
            rgb = frame.rgb
            if rgb.dtype != np.uint8:  # high bit depth: 0..65535 -> 0..255
                rgb = np.round(rgb.astype(np.float32) / 257.0).astype(np.uint8)
            frames.append(rgb)
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise InputError(f"video has no frames: {path}")
    return frames


def find_sequences(data_dir: str | Path, layout: str = "auto") -> list[SequenceSource]:
    """List the sequences under ``data_dir`` (see the module docstring for layouts)."""
    root = Path(data_dir)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if root.is_file():
        if root.suffix.lower() in VIDEO_EXTS:
            return [SequenceSource(root.stem, video=root)]
        if root.suffix.lower() in IMAGE_EXTS:
            return [SequenceSource(root.stem, images=(root,))]
        raise InputError(f"not a video, image or folder: {root}")
    if not root.is_dir():
        raise InputError(f"data folder not found: {root}")
    subdirs = sorted((d for d in root.iterdir() if d.is_dir() and _files(d, IMAGE_EXTS)),
                     key=lambda d: natural_key(d.name))  # fmt: skip
    videos = _files(root, VIDEO_EXTS)
    images = _files(root, IMAGE_EXTS)
    if layout == "auto":
        layout = "sequences" if subdirs else "videos" if videos else "images" if images else ""
    if layout == "sequences" and subdirs:
        return [SequenceSource(d.name, images=tuple(_files(d, IMAGE_EXTS))) for d in subdirs]
    if layout == "videos" and videos:
        return [SequenceSource(v.stem, video=v) for v in videos]
    if layout == "images" and images:
        return [SequenceSource(p.stem, images=(p,)) for p in images]
    if layout == "frames" and images:
        return [SequenceSource(root.name, images=tuple(images))]
    raise InputError(f"no {'' if layout in ('', 'auto') else layout + ' '}sequences found in {root}")


def mod_crop(frame: np.ndarray, scale: int) -> np.ndarray:
    """Crop bottom/right so both sides are multiples of ``scale``."""
    h, w = frame.shape[0] - frame.shape[0] % scale, frame.shape[1] - frame.shape[1] % scale
    if h == 0 or w == 0:
        raise InputError(f"frame {frame.shape[1]}x{frame.shape[0]} is smaller than the scale {scale}")
    return frame[:h, :w]


def to_uint8(x: torch.Tensor | np.ndarray, peak: float = 255.0) -> np.ndarray:
    """Round and saturate ``(..., H, W, C)`` values on the 0..``peak`` scale to uint8 (0..255)."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)


def frames_to_tensor(frames: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """``T x (H, W, 3)`` uint8 -> ``(T, 3, H, W)`` float32 in [0, 1]."""
    arr = np.stack(frames) if isinstance(frames, list) else frames
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255)


def tensor_to_frames(x: torch.Tensor) -> list[np.ndarray]:
    """``(T, 3, H, W)`` floats in [0, 1] -> list of ``(H, W, 3)`` uint8 (rounded)."""
    return list(to_uint8(x.detach().float().clamp(0, 1).permute(0, 2, 3, 1), peak=1.0))


def bicubic_down(frame: np.ndarray, scale: int) -> np.ndarray:
    """BI: MATLAB bicubic downscale of a uint8 frame (computed in float64), rounded to uint8."""
    x = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float64)).permute(2, 0, 1)  # (3, H, W)
    return to_uint8(imresize_matlab(x, scale=1 / scale).permute(1, 2, 0))


def bicubic_up(frame: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic upscale of a uint8 frame, rounded to uint8 (the reference for colour drift)."""
    x = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32)).permute(2, 0, 1)
    return to_uint8(imresize_matlab(x, scale=scale).permute(1, 2, 0))


def gaussian_kernel2d(size: int = 13, sigma: float = 1.6) -> torch.Tensor:
    """Normalised ``(size, size)`` Gaussian (float64)."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t * t) / (2 * sigma * sigma))
    k = torch.outer(g, g)
    return k / k.sum()


def blur_down(frame: np.ndarray, scale: int, size: int = 13, sigma: float = 1.6) -> np.ndarray:
    """BD: Gaussian blur (reflected borders) then keep pixels ``0, scale, 2 scale, ...``; uint8."""
    x = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float64)).permute(2, 0, 1)[:, None]  # (3,1,H,W)
    r = size // 2
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.conv2d(F.pad(x, (r, r, r, r), mode=mode), gaussian_kernel2d(size, sigma)[None, None])
    return to_uint8(x[:, 0, ::scale, ::scale].permute(1, 2, 0))


def sequence_seed(name: str) -> int:
    """A stable per-sequence seed (CRC32 of the name)."""
    return zlib.crc32(name.encode())


def degrade(frames: list[np.ndarray], degradation: str, scale: int, seed: int = 0) -> tuple[list | None, list]:
    """``(gt, lq)`` for one sequence: GT frames (mod-cropped; None for ``none``) and LQ uint8 frames."""
    if degradation not in DEGRADATIONS:
        raise InputError(f"unknown degradation {degradation!r}; use one of {', '.join(DEGRADATIONS)}")
    if degradation == "none":
        return None, frames
    gt = [mod_crop(f, scale) for f in frames]
    if degradation == "bi":
        return gt, [bicubic_down(f, scale) for f in gt]
    if degradation == "bd":
        return gt, [blur_down(f, scale) for f in gt]
    return gt, _real_lq(gt, scale, seed)


def _real_lq(gt: list[np.ndarray], scale: int, seed: int) -> list[np.ndarray]:
    try:
        from streamvsr.train.degradations import real_degrade
    except ImportError as e:
        raise InputError(
            "the 'real' degradation needs streamvsr.train.degradations.real_degrade, which is not available"
        ) from e
    lq = real_degrade(frames_to_tensor(gt), seed, scale=scale)
    if isinstance(lq, np.ndarray):
        lq = torch.from_numpy(lq)
    h, w = gt[0].shape[:2]
    if lq.ndim != 4 or tuple(lq.shape[-2:]) != (h // scale, w // scale):
        raise InputError(
            f"real_degrade returned {tuple(lq.shape)}, expected (T, 3, {h // scale}, {w // scale}) for scale {scale}"
        )
    if lq.dtype == torch.uint8:
        return list(lq.permute(0, 2, 3, 1).cpu().numpy())
    return tensor_to_frames(lq)


def iter_sequences(
    sources: list[SequenceSource], degradation: str, scale: int, max_frames: int | None = None
) -> Iterator[tuple[str, list[np.ndarray] | None, list[np.ndarray], bool]]:
    """Yield ``(name, gt or None, lq, grey source)`` per sequence, one sequence in memory at a time."""
    for src in sources:
        gt, lq = degrade(src.frames(max_frames), degradation, scale, sequence_seed(src.name))
        yield src.name, gt, lq, src.is_gray()
