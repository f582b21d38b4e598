# ruff: noqa: B023  (each lambda is timed immediately, inside its loop iteration)
"""The TCDecoder's full-resolution tail ops on one GPU, one frame at 768x1408 (official width 128, bf16, NHWC):
a 3x3 convolution + ReLU as two ops, as cuDNN's fused op (``fused.conv2d_relu``) and compiled by Inductor; the
3-channel output convolution by cuDNN and as a GEMM plus a shifted sum (``fused.conv3x3_by_taps``), eager and
compiled. ``--decoder`` adds the whole official-width TCDecoder (PyTorch's default initialisation, one latent
with its 4 condition frames at the output size, streamed after a first call) in bf16 with each switch, against
the same decoder in float32: what the fused ops do to the decoder's accuracy.

    python3 bench/tail_ops_gpu.py [--decoder] [--json tail_ops.json]

Each row: the mean of 20 calls after 3 warm-up calls (``gpu_timing.timed``), cuDNN's heuristic choice
(``cudnn.benchmark`` off, as in the pipeline), and the RMS error against the float32 reference relative to its RMS.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from streamvsr.models.flashvsr.config import TCDecoderConfig
from streamvsr.models.flashvsr.fused import conv2d_relu, conv3x3_by_taps
from streamvsr.models.flashvsr.tcdecoder import TCDecoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import timed as _timed  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None)
    p.add_argument("--size", default="768x1408")
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--decoder", action="store_true", help="also the whole TCDecoder against float32")
    args = p.parse_args()
    torch.backends.cudnn.benchmark = False
    h, w = (int(v) for v in args.size.split("x"))
    c = args.channels
    dev, bf = "cuda", torch.bfloat16
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(1, c, h, w, device=dev, generator=g).to(bf).contiguous(memory_format=torch.channels_last)
    wc = (torch.randn(c, c, 3, 3, device=dev, generator=g) / (3 * c**0.5)).to(bf)
    wo = (torch.randn(3, c, 3, 3, device=dev, generator=g) / (3 * c**0.5)).to(bf)
    bo = torch.randn(3, device=dev, generator=g).to(bf)
    ref_cr = F.relu(F.conv2d(x.float(), wc.float(), padding=1))
    ref_o = F.conv2d(x.float(), wo.float(), bo.float(), padding=1)
    rows = []

    def row(what: str, fn, ref: torch.Tensor) -> None:  # noqa: ANN001
        out = fn().float()
        err = ((out - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()
        ms = _timed(fn, reps=20, warmup=3) * 1e3
        rows.append({"case": what, "ms": ms, "rel_rms_err": err})
        print(f"{what:52s} {ms:8.3f} ms   rel. RMS error {err:.2e}")

    row(f"conv {c}->{c} then ReLU (two ops)", lambda: F.relu(F.conv2d(x, wc, padding=1)), ref_cr)
    row(f"conv {c}->{c} + ReLU, cuDNN fused (conv2d_relu)", lambda: conv2d_relu(x, wc, None, 1), ref_cr)
    comp_cr = torch.compile(lambda t: F.relu(F.conv2d(t, wc, padding=1)))
    row(f"conv {c}->{c} + ReLU, compiled", lambda: comp_cr(x), ref_cr)
    row(f"conv {c}->3 (cuDNN)", lambda: F.conv2d(x, wo, bo, padding=1), ref_o)
    row(f"conv {c}->3 by taps, eager", lambda: conv3x3_by_taps(x, wo, bo), ref_o)
    comp_t = torch.compile(conv3x3_by_taps)
    row(f"conv {c}->3 by taps, compiled", lambda: comp_t(x, wo, bo), ref_o)
    ref_ro = F.conv2d(F.relu(x.float()), wo.float(), bo.float(), padding=1)
    comp_ro = torch.compile(lambda t: F.conv2d(F.relu(t), wo, bo, padding=1))
    row(f"ReLU then conv {c}->3, compiled (cuDNN)", lambda: comp_ro(x), ref_ro)
    comp_rt = torch.compile(lambda t: conv3x3_by_taps(F.relu(t), wo, bo))
    row(f"ReLU then conv {c}->3 by taps, compiled", lambda: comp_rt(x), ref_ro)
    if args.decoder:
        rows += decoder_accuracy(h, w)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "size": args.size, "rows": rows}, f, indent=1)


def decoder_accuracy(h: int, w: int) -> list[dict]:
    """The official TCDecoder in bf16 (reference layers, then each fused switch) against float32: the relative
    RMS error of a steady decode (the second call of a stream, 4 frames)."""
    torch.manual_seed(0)
    dec = TCDecoder(TCDecoderConfig()).cuda().eval()
    g = torch.Generator(device="cuda").manual_seed(1)
    lat = torch.randn(1, 16, 2, h // 8, w // 8, device="cuda", generator=g)
    cond = torch.rand(1, 3, 8, h, w, device="cuda", generator=g) * 2 - 1
    cond[:, :, :1] = cond[:, :, 4:5]  # the first call sees frame 0 only (its 3 copies are prepended)

    def steady(m: TCDecoder, dtype: torch.dtype) -> torch.Tensor:
        m.reset()
        with torch.no_grad():
            m.decode(lat[:, :, :1].to(dtype), cond[:, :, :1].to(dtype))
            return m.decode(lat[:, :, 1:].to(dtype), cond[:, :, 4:].to(dtype)).float()

    dec.tail_frames = 1
    ref = steady(dec, torch.float32)
    dec.to(torch.bfloat16)
    rows = []
    for name, switches in (
        ("reference layers", ()),
        ("conv + ReLU fused (top level)", ("fused_conv_relu",)),
        ("+ MemBlocks", ("fused_conv_relu", "fused_memblocks")),
        ("+ output convolution by taps", ("fused_conv_relu", "fused_memblocks", "out_by_taps")),
    ):
        for s in ("fused_conv_relu", "fused_memblocks", "out_by_taps"):
            setattr(dec, s, s in switches)
        out = steady(dec, torch.bfloat16)
        err = ((out - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()
        rows.append({"case": f"TCDecoder bf16, {name}", "rel_rms_err_vs_fp32": err})
        print(f"TCDecoder bf16, {name:40s} rel. RMS error against float32 {err:.2e}")
    return rows


if __name__ == "__main__":
    main()
