#!/usr/bin/env python3
"""GPU timings of the FlashVSR LQ projector, TCDecoder, Wan VAE decoder and colour fix at official widths.

Random weights (timings only). Output 768x1408, bf16, one stream.
Usage: PYTHONPATH=src python3 bench/flashvsr_decoders_gpu.py
"""

from __future__ import annotations

import json
import time

import torch

from streamvsr.models.flashvsr.config import LQProjConfig, TCDecoderConfig, WanVAEDecoderConfig
from streamvsr.models.flashvsr.lq_proj import LQProjector
from streamvsr.models.flashvsr.tcdecoder import TCDecoder
from streamvsr.models.flashvsr.wan_vae import WanVAEDecoder
from streamvsr.ops.color import adain_color_fix, wavelet_color_fix

H, W = 768, 1408
h, w = H // 8, W // 8
dev = torch.device("cuda")
dt = torch.bfloat16


def timed(fn, reset=None, warm=2, iters=5) -> tuple[float, float]:
    """(median seconds, peak GiB) of fn() after warm-ups; ``reset`` runs before each call, untimed."""
    times = []
    for i in range(warm + iters):
        if reset:
            reset()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        if i >= warm:
            times.append(time.perf_counter() - t0)
        peak = (torch.cuda.max_memory_allocated() - base) / 2**30
    times.sort()
    return times[len(times) // 2], peak


def bench_lq(res: dict, g: torch.Generator) -> None:
    with dev:
        lq = LQProjector(LQProjConfig(causal=True)).to(dt).eval()
    lr = torch.rand(1, 3, 25, H, W, device=dev, generator=g).to(dt) * 2 - 1

    def first() -> None:
        lq.reset()
        lq.step(lr[:, :, :1])
        lq.step(lr[:, :, 1:25])

    res["lq_call0_6clips_s"], res["lq_call0_peak_gib"] = timed(first)
    lq.reset()
    lq.step(lr[:, :, :1])
    res["lq_2clips_s"], res["lq_2clips_peak_gib"] = timed(lambda: lq.step(lr[:, :, 1:9]))


def bench_tc(res: dict, g: torch.Generator) -> None:
    with dev:
        tc = TCDecoder(TCDecoderConfig()).to(dt).eval()
    lat = torch.randn(1, 16, 6, h, w, device=dev, generator=g).to(dt)
    cond = torch.rand(1, 3, 24, H, W, device=dev, generator=g).to(dt) * 2 - 1
    for lpp in (1, 2, None):
        s, m = timed(lambda lpp=lpp: tc.decode(lat[:, :, :2], cond[:, :, :8], latents_per_pass=lpp))
        res[f"tc_2lat_lpp{lpp}_s"], res[f"tc_2lat_lpp{lpp}_peak_gib"] = s, m
    s, m = timed(lambda: tc.decode(lat, cond[:, :, 3:]), reset=tc.reset)
    res["tc_call0_6lat_s"], res["tc_call0_peak_gib"] = s, m


def bench_vae(res: dict, g: torch.Generator) -> None:
    with dev:
        vae = WanVAEDecoder(WanVAEDecoderConfig()).to(dt).eval()
    lat = torch.randn(1, 16, 3, h, w, device=dev, generator=g).to(dt)
    vae.decode(lat[:, :, :1])
    for per in (True, False):
        s, m = timed(lambda per=per: vae.decode(lat[:, :, 1:3], per_latent=per))
        res[f"vae_2lat_perlatent{per}_s"], res[f"vae_2lat_perlatent{per}_peak_gib"] = s, m


def bench_color(res: dict, g: torch.Generator) -> None:
    sr = torch.rand(8, 3, H, W, device=dev, generator=g).to(dt) * 2 - 1
    ref = torch.rand(8, 3, H, W, device=dev, generator=g).to(dt) * 2 - 1
    res["adain_8f_s"] = timed(lambda: adain_color_fix(sr, ref))[0]
    res["wavelet_8f_s"] = timed(lambda: wavelet_color_fix(sr, ref))[0]


def main() -> None:
    res: dict[str, object] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "size": [H, W]}
    g = torch.Generator(device=dev).manual_seed(0)
    with torch.inference_mode():
        for fn in (bench_lq, bench_tc, bench_vae, bench_color):
            fn(res, g)
            torch.cuda.empty_cache()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
