#!/usr/bin/env python3
"""Check streamvsr's FlashVSR against the official FlashVSR code (float32, CPU, same weights/input/seed).

The official modules are imported from ``--official-src`` (a checkout of OpenImagingLab/FlashVSR, or any folder
with the same layout: ``diffsynth/pipelines/flashvsr_tiny.py``, ``diffsynth/models/wan_video_dit.py``,
``examples/WanVSR/utils/utils.py``, ``examples/WanVSR/utils/TCDecoder.py``). Nothing official is shipped here.
``block_sparse_attn`` (a CUDA extension) is replaced by a dense reference when it cannot be imported.

Both sides run the same tiny random weights (written by scripts/make_tiny_official.py unless ``--weights`` is
given), the same random LR clip and the same noise seed, with the colour fix off. The official pipeline is the
real ``FlashVSRTinyPipeline`` (model manager bypassed: its dit / LQ_proj_in / TCDecoder are set directly), run
with the official Tiny script's arguments (if_buffer=True, kv_ratio=3, topk_ratio = sparse_ratio*768*1280/(H*W)).
Ours is ``FlashVSRUpscaler(lq_upsample="pillow", noise="official", color_fix="none")`` through ``Engine``.

Usage: python scripts/parity_official.py --official-src DIR [--frames 29] [--version 1|1.1] [--size 32]
           [--sparse-ratio 2.0] [--local-range 11] [--tol 1e-4]
Exit status 1 when the largest per-frame max-abs difference (on [0, 1] frames) exceeds --tol.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from make_tiny_official import write_tiny_official  # noqa: E402

from streamvsr.pipeline.engine import Engine  # noqa: E402
from streamvsr.pipeline.flashvsr import FlashVSRUpscaler  # noqa: E402
from streamvsr.pipeline.flashvsr_weights import OFFICIAL_FILES, load_flashvsr_folder  # noqa: E402

SCALE = 4


# ----------------------------------------------------------------------------------------------
# Dense stand-in for block_sparse_attn_func (our own reference of its documented semantics)
# ----------------------------------------------------------------------------------------------


def dense_block_sparse_attn(q, k, v, cu_q, cu_k, head_mask_type, streaming_info, blockmask, max_q, max_k, p_drop,
                            deterministic=False, softmax_scale=None, is_causal=False, exact_streaming=False,
                            return_attn_probs=False):  # fmt: skip
    """One varlen sequence, every head block-sparse: q (Sq, H, D), k/v (Sk, H, D), blockmask (1, H, nqb, nkb).

    Query block i attends (exact softmax over the selected keys) to the 128-token key blocks j with
    blockmask[0, h, i, j]; a query row whose block selects nothing outputs 0.
    """
    sq, _, d = q.shape
    sk = k.shape[0]
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d)
    m = blockmask[0].bool()  # (H, nqb, nkb)
    tok = m.repeat_interleave(128, dim=1)[:, :sq].repeat_interleave(128, dim=2)[:, :, :sk]  # (H, Sq, Sk)
    qh, kh, vh = (t.transpose(0, 1).float() for t in (q, k, v))  # (H, S, D)
    s = torch.einsum("hqd,hkd->hqk", qh, kh) * scale
    p = torch.softmax(s.masked_fill(~tok, float("-inf")), dim=-1).nan_to_num(0.0)
    return torch.einsum("hqk,hkd->hqd", p, vh).transpose(0, 1).to(q.dtype)  # (Sq, H, D)


def import_official(src: Path) -> types.SimpleNamespace:
    """Import the official pipeline, DiT, projector and decoder modules from ``src``."""
    if not (src / "diffsynth").is_dir():
        raise SystemExit(f"{src} has no diffsynth/ folder (expected a FlashVSR checkout)")
    try:
        import block_sparse_attn  # noqa: F401
    except ImportError:
        mod = types.ModuleType("block_sparse_attn")
        mod.block_sparse_attn_func = dense_block_sparse_attn  # type: ignore[attr-defined]
        sys.modules["block_sparse_attn"] = mod
    for p in (src / "examples" / "WanVSR", src):
        sys.path.insert(0, str(p))
    from diffsynth.models.wan_video_dit import WanModel
    from diffsynth.pipelines.flashvsr_tiny import FlashVSRTinyPipeline
    from utils import utils as lq_utils
    from utils.TCDecoder import build_tcdecoder

    return types.SimpleNamespace(
        WanModel=WanModel, Pipeline=FlashVSRTinyPipeline, lq=lq_utils, build_tcdecoder=build_tcdecoder
    )


# ----------------------------------------------------------------------------------------------
# Official modules on the folder's weights
# ----------------------------------------------------------------------------------------------


def official_modules(off: types.SimpleNamespace, folder: Path, cfg, version: str):
    """(dit with LQ_proj_in, TCDecoder) built with the official classes and the folder's state dicts."""
    d = cfg.dit
    dit = off.WanModel(
        dim=d.dim, in_dim=d.in_channels, ffn_dim=d.ffn_dim, out_dim=d.in_channels, text_dim=d.text_dim,
        freq_dim=d.freq_dim, eps=1e-6, patch_size=tuple(d.patch), num_heads=d.num_heads, num_layers=d.num_layers,
    )  # fmt: skip
    dit.load_state_dict(load_file(str(folder / OFFICIAL_FILES["dit"])), strict=True)

    lq_sd = torch.load(folder / OFFICIAL_FILES["lq_proj"], map_location="cpu", weights_only=True)
    layers = 1 + max(int(k.split(".")[1]) for k in lq_sd if k.startswith("linear_layers."))
    cls = off.lq.Causal_LQ4x_Proj if version == "1.1" else off.lq.Buffer_LQ4x_Proj
    with torch.device("meta"):  # the class hard-codes 2048/3072 hidden widths: build, then resize
        proj = cls(in_dim=3, out_dim=d.dim, layer_num=layers)
    h1, h2 = lq_sd["conv1.weight"].shape[0], lq_sd["conv2.weight"].shape[0]
    cin = lq_sd["conv1.weight"].shape[1]
    proj.hidden_dim1, proj.hidden_dim2 = h1, h2
    proj.conv1 = off.lq.CausalConv3d(cin, h1, (4, 3, 3), stride=(2, 1, 1), padding=(1, 1, 1))
    proj.norm1 = off.lq.RMS_norm(h1, images=False)
    proj.conv2 = off.lq.CausalConv3d(h1, h2, (4, 3, 3), stride=(2, 1, 1), padding=(1, 1, 1))
    proj.norm2 = off.lq.RMS_norm(h2, images=False)
    proj.linear_layers = torch.nn.ModuleList([torch.nn.Linear(h2, d.dim) for _ in range(layers)])
    proj.load_state_dict(lq_sd, strict=True)
    dit.LQ_proj_in = proj

    tc_sd = torch.load(folder / OFFICIAL_FILES["tcdecoder"], map_location="cpu", weights_only=True)
    dec = off.build_tcdecoder(
        new_channels=list(cfg.decoder.channels), device="cpu", dtype=torch.float32, new_latent_channels=16 + 768
    )
    res = dec.load_state_dict(tc_sd, strict=False)  # the official call is strict=False: check it is exact
    if res.missing_keys or res.unexpected_keys:
        raise SystemExit(f"TCDecoder keys do not match the official class: {res}")
    return dit.float().eval(), dec.float()


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def _context(folder: Path) -> torch.Tensor:
    return torch.load(folder / OFFICIAL_FILES["prompt"], map_location="cpu", weights_only=True).float()


def make_clip(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """(n, h, w, 3) uint8: a smooth moving pattern plus noise (deterministic)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for t in range(n):
        base = np.stack([np.sin((xx + 2 * t) / 5.0), np.cos((yy - t) / 7.0), np.sin((xx + yy + 3 * t) / 9.0)], -1)
        img = 127.5 + 90 * base + rng.normal(0, 12, (h, w, 3))
        frames.append(np.clip(img, 0, 255).round().astype(np.uint8))
    return np.stack(frames)


def official_lq_video(clip: np.ndarray) -> tuple[torch.Tensor, int]:
    """The official Tiny script's LQ preparation: pad 4 copies of the last frame, keep the largest 8n+1 prefix,
    Pillow bicubic x4 (the sizes here need no crop), uint8 -> [-1, 1]. Returns ((1, 3, F, H, W), F)."""
    frames = list(clip) + [clip[-1]] * 4
    f = (len(frames) - 1) // 8 * 8 + 1
    out = []
    for fr in frames[:f]:
        img = Image.fromarray(fr).resize((fr.shape[1] * SCALE, fr.shape[0] * SCALE), Image.BICUBIC)
        t = torch.from_numpy(np.array(img, np.uint8)).float().permute(2, 0, 1) / 255.0 * 2.0 - 1.0
        out.append(t)
    return torch.stack(out, 1)[None], f


# ----------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------


def run_official(off, dit, dec, ctx, lq_video, f, seed, sparse_ratio, local_range, clamp=True) -> torch.Tensor:
    """Official FlashVSRTinyPipeline on CPU/float32 -> (F-4, 3, H, W) in [0, 1] units (clamped like ours)."""
    pipe = off.Pipeline(device="cpu", torch_dtype=torch.float32)
    pipe.dit = dit
    pipe.TCDecoder = dec
    pipe.init_cross_kv(context_tensor=ctx)
    hh, ww = lq_video.shape[-2:]
    out = pipe(
        prompt="", negative_prompt="", cfg_scale=1.0, num_inference_steps=1, seed=seed, LQ_video=lq_video,
        num_frames=f, height=hh, width=ww, is_full_block=False, if_buffer=True,
        topk_ratio=sparse_ratio * 768 * 1280 / (hh * ww), kv_ratio=3.0, local_range=local_range,
        color_fix=False, progress_bar_cmd=lambda it: it,
    )  # fmt: skip  # (3, F-4, H, W) in ~[-1, 1]
    out = (out.float().transpose(0, 1) + 1) * 0.5
    return out.clamp(0, 1) if clamp else out


def run_ours(cfg, mods, clip, seed, sparse_ratio, local_range) -> torch.Tensor:
    attn = dataclasses.replace(cfg.attention, sparse_ratio=sparse_ratio, local_range=local_range, backend="dense")
    model = FlashVSRUpscaler(
        mods["dit"], mods["lq_proj"], mods["decoder"], cfg, context=mods["context"], attention=attn,
        color_fix="none", lq_upsample="pillow", noise="official", seed=seed, num_frames=clip.shape[0],
    )  # fmt: skip
    frames = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255.0
    return Engine(model).run(frames, chunk=5)


def calibrate_decoder(folder: Path, raw: torch.Tensor) -> None:
    """Rescale the TCDecoder's last conv in ``folder`` so the (unclamped) output ``raw`` (in [0, 1] units) would
    have mean 0.5 and std 0.2 per channel: random tiny weights otherwise give nearly all-black, clamped frames,
    which would hide differences. The last layer is linear, so this is an exact affine change of the output."""
    path = folder / OFFICIAL_FILES["tcdecoder"]
    sd = torch.load(path, map_location="cpu", weights_only=True)
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("decoder."))
    w, b = sd[f"decoder.{last}.weight"], sd[f"decoder.{last}.bias"]
    mean = raw.transpose(0, 1).reshape(3, -1).mean(1)
    std = raw.transpose(0, 1).reshape(3, -1).std(1).clamp_min(1e-6)
    alpha = 0.2 / std
    sd[f"decoder.{last}.weight"] = w * alpha.view(3, 1, 1, 1)
    sd[f"decoder.{last}.bias"] = b * alpha + (0.5 - alpha * mean)
    torch.save(sd, path)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official-src", required=True, type=Path, help="folder holding the official source files")
    ap.add_argument("--frames", type=int, default=29, help="LR frames (N + 4 = 8n+1 keeps every frame; >= 21)")
    ap.add_argument("--version", default="1.1", choices=["1", "1.1"], help="1: Buffer projector, 1.1: Causal")
    ap.add_argument("--size", type=int, default=32, help="LR side (multiple of 32)")
    ap.add_argument("--weights", type=Path, help="official-layout folder (default: fresh tiny random weights)")
    ap.add_argument("--sparse-ratio", type=float, default=2.0)
    ap.add_argument("--local-range", type=int, default=11)
    ap.add_argument("--seed", type=int, default=0, help="noise seed (weights/clip seeds are fixed)")
    ap.add_argument("--tol", type=float, default=1e-4, help="max allowed |official - ours| on [0, 1] frames")
    a = ap.parse_args()
    torch.set_grad_enabled(False)

    off = import_official(a.official_src.resolve())
    clip = make_clip(a.frames, a.size, a.size, seed=1)
    lq_video, f = official_lq_video(clip)
    args = (lq_video, f, a.seed, a.sparse_ratio, a.local_range)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.weights or write_tiny_official(Path(tmp) / "w", version=a.version, seed=0))
        if a.weights is None:  # spread the random decoder's output over [0, 1] first
            cfg, _ = load_flashvsr_folder(folder, version=a.version, decoder="tiny", meta=True)
            dit, dec = official_modules(off, folder, cfg, a.version)
            calibrate_decoder(folder, run_official(off, dit, dec, _context(folder), *args, clamp=False))
        cfg, mods = load_flashvsr_folder(folder, version=a.version, decoder="tiny", dtype=torch.float32)
        dit, dec = official_modules(off, folder, cfg, a.version)
        ref = run_official(off, dit, dec, mods["context"].float(), *args)
        ours = run_ours(cfg, mods, clip, a.seed, a.sparse_ratio, a.local_range)

    n = min(ref.shape[0], ours.shape[0])
    print(f"version {a.version}  LR {a.size}x{a.size}  N={a.frames}  F={f}  official frames {ref.shape[0]}"
          f"  ours {ours.shape[0]}  sparse_ratio {a.sparse_ratio}  local_range {a.local_range}")  # fmt: skip
    print(f"official output: mean {float(ref.mean()):.3f} std {float(ref.std()):.3f}"
          f" clamped {float(((ref == 0) | (ref == 1)).float().mean()):.2%}")  # fmt: skip
    print(f"{'frame':>5} {'max_abs':>10} {'psnr_db':>8}")
    worst = 0.0
    for i in range(n):
        d = float((ref[i] - ours[i]).abs().max())
        worst = max(worst, d)
        print(f"{i:5d} {d:10.3e} {psnr(ref[i], ours[i]):8.2f}")
    print(f"max abs diff {worst:.3e} over {n} frames (tol {a.tol:g}); PSNR all {psnr(ref[:n], ours[:n]):.2f} dB")
    return 0 if worst <= a.tol and n == ref.shape[0] else 1


if __name__ == "__main__":
    sys.exit(main())
