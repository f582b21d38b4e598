# ruff: noqa: B023  (each lambda is timed immediately, inside its loop iteration)
"""Steady-state CPU cost of FlashVSR sizes at 320x180 -> 1280x720 (model grid 768x1280), random weights.

python bench/flashvsr_cpu.py p32-d256-kv1,small 2      # configs, threads
"""

import dataclasses
import json
import sys
import time

import torch

from streamvsr.models.flashvsr.attention import KVCache
from streamvsr.models.flashvsr.config import SIZES, LQProjConfig, TCDecoderConfig
from streamvsr.models.flashvsr.dit import WanDiT
from streamvsr.models.flashvsr.lq_proj import LQProjector
from streamvsr.models.flashvsr.tcdecoder import TCDecoder
from streamvsr.ops.color import adain_color_fix

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
S = SIZES["small"]
R = dataclasses.replace
CFGS = {
    "small": S,
    "small-kv1": R(S, attention=R(S.attention, kv_windows=1)),
    "p16-d256": R(
        S,
        dit=R(S.dit, dim=256, num_layers=6, num_heads=4, ffn_dim=768),
        lq_proj=LQProjConfig(hidden1=64, hidden2=128, out_dim=256),
        decoder=TCDecoderConfig(channels=(32, 24, 16, 16)),
    ),
    "p32-d384": R(
        S,
        dit=R(S.dit, patch=(1, 4, 4)),
        lq_proj=LQProjConfig(unshuffle=32, hidden1=64, hidden2=128, out_dim=384),
        decoder=TCDecoderConfig(channels=(32, 24, 16, 16)),
    ),
    "p32-d256-kv1": R(
        S,
        dit=R(S.dit, dim=256, num_layers=6, num_heads=4, ffn_dim=768, patch=(1, 4, 4)),
        attention=R(S.attention, kv_windows=1),
        lq_proj=LQProjConfig(unshuffle=32, hidden1=32, hidden2=64, out_dim=256),
        decoder=TCDecoderConfig(channels=(24, 16, 12, 12)),
    ),
}
H, W = 768, 1280


def tm(fn, n=1):
    t = time.perf_counter()
    for _ in range(n):
        out = fn()
    return (time.perf_counter() - t) / n, out


res = {}
for name in sys.argv[1].split(","):
    cfg = CFGS[name]
    torch.manual_seed(0)
    dit, lq, dec = WanDiT(cfg.dit).eval(), LQProjector(cfg.lq_proj).eval(), TCDecoder(cfg.decoder).eval()
    r = {
        "params_dit_M": sum(p.numel() for p in dit.parameters()) / 1e6,
        "params_lq_M": sum(p.numel() for p in lq.parameters()) / 1e6,
        "params_dec_M": sum(p.numel() for p in dec.parameters()) / 1e6,
    }
    with torch.inference_mode():
        st = dit.prepare(None, 1000.0)
        kv = KVCache(cfg.dit.num_layers, cfg.attention.kv_windows)
        h8, w8 = H // 8, W // 8
        x6 = torch.randn(1, 16, 6, h8, w8)
        tok = H * W // (8 * cfg.dit.patch[1]) ** 2
        lq6 = torch.randn(1, 6 * tok, cfg.dit.dim)
        r["dit_call0_s"], _ = tm(
            lambda: dit.forward_chunk(x6, lq6, t_positions=torch.arange(6), kv_cache=kv, attn=cfg.attention, state=st)
        )
        steady = []
        for k in range(1, 2):  # the cache is full after call 0
            x2 = torch.randn(1, 16, 2, h8, w8)
            lq2 = torch.randn(1, 2 * tok, cfg.dit.dim)
            t, _ = tm(
                lambda: dit.forward_chunk(
                    x2, lq2, t_positions=torch.arange(4 + 2 * k, 6 + 2 * k), kv_cache=kv, attn=cfg.attention, state=st
                )
            )
            steady.append(t)
        r["dit_steady_s"] = steady[-1]
        fr = torch.rand(1, 3, 25, H, W) * 2 - 1
        lq.reset()
        lq.step(fr[:, :, :1])
        lq.step(fr[:, :, 1:9])
        r["lq_8frames_s"], _ = tm(lambda: lq.step(fr[:, :, 9:17]))
        dec.reset()
        lat = torch.randn(1, 16, 2, h8, w8)
        dec.decode(lat, fr[:, :, :5])
        r["dec_8frames_s"], _ = tm(lambda: dec.decode(lat, fr[:, :, 5:13]))
        sr = torch.rand(8, 3, H, W) * 2 - 1
        r["color_8frames_s"], _ = tm(lambda: adain_color_fix(sr, sr))
        up = torch.rand(8, 3, 180, 320)
        r["upsample_8frames_s"], _ = tm(
            lambda: torch.nn.functional.interpolate(
                torch.nn.functional.pad(up, (0, 0, 0, 12)), scale_factor=4, mode="bicubic"
            )
        )
    tot = r["dit_steady_s"] + r["lq_8frames_s"] + r["dec_8frames_s"] + r["color_8frames_s"] + r["upsample_8frames_s"]
    r["steady_fps"] = 8 / tot
    res[name] = r
    print(name, json.dumps({k: round(v, 3) for k, v in r.items()}), flush=True)
