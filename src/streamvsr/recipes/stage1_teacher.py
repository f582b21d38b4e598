"""Stage 1: the LQ-conditioned flow-matching teacher (full attention, joint image + video).

    python -m streamvsr.recipes.stage1_teacher --run-dir runs/s1 --size small --ae runs/ae/export \\
        --data ../shared/data/train --max-samples 20000
    torchrun --nproc_per_node=N -m streamvsr.recipes.stage1_teacher ...      # several GPUs (DDP)
    torchrun --nproc_per_node=N -m streamvsr.recipes.stage1_teacher --parallel fsdp ...   # FSDP2, large sizes

What is trained ([FlashVSR] §3.2 Stage 1, spec §5): the DiT of ``--size`` and the LQ projector, from scratch
(or from ``--init``), on latents of HR clips from our frozen stage-0 autoencoder (``--ae``), conditioned on the
LR clip through the projector exactly as at inference (spec §1.3: latent t <- LR frames 4t+1 .. 4t+4, tokens
added before block 0; the projector's cache semantics are those of the size's config). Attention is full 3-D
attention.

Loss: rectified flow matching ([RF] Eq. 1; spec §1.4): x_t = (1 - sigma) x0 + sigma eps, target v = eps - x0,
||v_theta(x_t, 1000 sigma, LQ) - v||^2, with sigma = s u / (1 + (s - 1) u), u ~ U(0, 1), s = ``--shift`` = 5
(the shifted schedule of Wan's ``FlowMatchScheduler(shift=5)`` that FlashVSR uses).

Joint image + video ([FlashVSR] Eq. 1): ``--image-prob p`` makes a share p of the steps photo steps (1-frame clips,
one latent, LQ tokens from 5 copies of the LR photo, ``--image-batch-mult`` x the batch); ``--pack-images k``
instead packs k photos behind every clip in one sequence with a block-diagonal segment mask (each photo's time
index restarts at 0), which is what the paper does.

Checkpoints (``ckpt-*.pt``, auto-resume), ``log.jsonl``; ``--export DIR --tcdecoder TC`` writes a FlashVSR
weights folder from the EMA weights (the pipeline can run it; a stage-1 model uses full attention in training
but the pipeline runs it with the config's LCSA). Stage 2 and 3 take this run dir as ``--init`` / ``--teacher``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from streamvsr.errors import DataError, ModelError
from streamvsr.models.autoencoder import VideoAutoencoder
from streamvsr.recipes.entry import cli, run_main
from streamvsr.train import losses
from streamvsr.train.checkpoint import find_latest
from streamvsr.train.distributed import DistInfo, autocast, seed_everything
from streamvsr.train.ema import EMA
from streamvsr.train.flashvsr_common import (
    TIMESTEPS,
    FlashVSRNet,
    TrainSession,
    add_common_args,
    add_dit_args,
    batch_iterator,
    check_clip_len,
    clip_batches_from_args,
    export_ema_flashvsr,
    flow_matching_pair,
    hr_for_latents,
    load_autoencoder_from,
    load_context,
    load_net_state,
    load_tcdecoder,
    lq_input_frames,
    resolve_size,
    sample_sigmas,
    step_generator,
    to_video,
    upsample_lr,
    wrap_flashvsr,
)
from streamvsr.train.optim import lr_at, make_adamw, set_lr
from streamvsr.train.recipe_utils import (
    add_ae_arg,
    add_image_args,
    optimizer_step,
    setup_device,
)

RECIPE = "stage1_teacher"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stage1_teacher", description=__doc__.split("\n")[0])
    add_common_args(p, clip_len=25, crop=256, batch_size=8, lr=1e-4)
    add_dit_args(p)
    add_ae_arg(p)
    add_image_args(p)
    p.add_argument("--pack-images", type=int, default=0, help="pack k photos behind every clip (segment mask)")
    return p


# ---------------------------------------------------------------------------------------------------------
# The flow-matching trainer shared by stage 1 (full attention) and stage 2 (block-sparse causal)
# ---------------------------------------------------------------------------------------------------------


def encode_latents(ae: VideoAutoencoder, hr: torch.Tensor, device: torch.device, bf16: bool) -> torch.Tensor:
    """Target latents (B, 16, T, h, w) of a (B, 3, 1+4T, H, W) HR clip (its first 4T-3 frames; spec §1.3)."""
    with torch.no_grad(), autocast(device, bf16):
        return ae.encode(hr_for_latents(hr)).float()


def fm_step_inputs(batch: Any, ae: VideoAutoencoder, device: torch.device, bf16: bool, pack: int) -> dict[str, Any]:
    """Latents x0 and the net's conditioning arguments for one batch (video, image or packed)."""
    hr = to_video(batch.hr, device)
    lq = lq_input_frames(upsample_lr(batch.lr.to(device)))
    x0 = encode_latents(ae, hr, device, bf16)
    kw: dict[str, Any] = {"lq_frames": lq}
    if batch.kind == "pack":
        ihr = to_video(batch.image_hr, device)  # (B*k, 3, 1, H, W)
        xi = encode_latents(ae, ihr, device, bf16)  # (B*k, C, 1, h, w)
        b, c, t, h, w = x0.shape
        xi = xi.reshape(b, pack, c, h, w).transpose(1, 2)  # (B, C, k, h, w), photo j of clip i at [i, :, j]
        x0 = torch.cat([x0, xi], dim=2)
        seg = torch.cat([torch.zeros(t, dtype=torch.long), torch.arange(1, pack + 1)]).to(device)
        pos = torch.cat([torch.arange(t), torch.zeros(pack, dtype=torch.long)]).to(device)
        kw.update(
            image_frames=lq_input_frames(upsample_lr(batch.image_lr.to(device))),
            images_per_seq=pack,
            segment_ids=seg,
            t_positions=pos,
        )
    return {"x0": x0, "kw": kw, "n": hr.shape[0]}


def train_flow_matching(
    args: argparse.Namespace,
    info: DistInfo,
    recipe: str,
    windowed: bool,
    callback: Callable[[dict], None] | None = None,
) -> dict:
    """Stages 1 and 2: flow matching of FlashVSRNet on AE latents (full attention, or LCSA + causal windows)."""
    cfg = resolve_size(args.size)
    check_clip_len(args.clip_len, windowed)
    token_px = cfg.latent_scale * cfg.dit.patch[1]  # output pixels per DiT token (16)
    block_px = token_px * cfg.attention.window[1]  # per attention block (128)
    if windowed and args.crop % block_px:
        raise DataError(f"--crop must be a multiple of {block_px} for the attention windows, got {args.crop}")
    if args.crop % token_px:
        raise DataError(f"--crop must be a multiple of {token_px}, got {args.crop}")
    if args.export and not args.tcdecoder:
        raise ModelError("--export needs --tcdecoder (the exported folder holds the decoder too)")
    if not args.export_only and not args.ae:
        raise ModelError("give --ae (the stage-0 autoencoder export)")
    device, bf16 = setup_device(info, args.no_bf16)

    context = load_context(args.context, cfg)
    decoder = load_tcdecoder(args.tcdecoder, cfg.decoder, torch.device("cpu")) if args.tcdecoder else None
    attn = dataclasses.replace(cfg.attention, backend=args.attn_backend) if windowed else None

    seed_everything(args.seed, info.rank)
    net = FlashVSRNet(cfg, context).to(device)
    fresh = find_latest(args.run_dir) is None
    if fresh and args.init:
        net.load_state_dict(load_net_state(args.init, cfg, args.init_weights), strict=True)
    elif fresh:
        if windowed:
            raise ModelError("stage 2 starts from stage 1: give --init <stage-1 run dir>")
        net.dit.init_weights(zero_head=True)  # v = 0 at the start
    net.dit.gradient_checkpointing = bool(args.grad_checkpointing)
    # DDP wraps, FSDP2 shards in place (rank 0's weights on every rank): before the optimizer and the EMA
    model = wrap_flashvsr(net, info, "none" if args.export_only else args.parallel)
    optimizer = make_adamw(net, lr=args.lr, weight_decay=args.weight_decay)
    ema = EMA(net, decay=args.ema_decay)
    config = {"flashvsr": cfg.to_dict(), "size": args.size, "windowed": windowed}
    session = TrainSession(args, info, recipe, config, callback)
    session.add("net", net, optimizer, ema)
    resumed = session.resume()

    def do_export() -> dict[str, Any]:
        return export_ema_flashvsr(args.export, info, cfg, ema, decoder, context)

    if args.export_only:
        if not resumed:
            raise ModelError(f"--export-only: no checkpoint in {args.run_dir}")
        if not args.export:
            raise ModelError("--export-only needs --export DIR")
        return do_export()

    ae = load_autoencoder_from(args.ae, device)
    if ae.cfg.latent_channels != cfg.dit.in_channels or ae.cfg.spatial_factor != cfg.latent_scale:
        raise ModelError("the autoencoder's latent space does not fit this DiT")
    pack = 0 if windowed else args.pack_images
    data = clip_batches_from_args(
        args,
        info,
        session.run_dir,
        image_prob=0.0 if windowed else args.image_prob,
        image_batch_mult=1 if windowed else args.image_batch_mult,
        pack_images=pack,
    )
    session.open_log(
        recipe=recipe,
        params=sum(p.numel() for p in net.parameters()),
        attention="full" if attn is None else f"lcsa-causal/{attn.backend}",
        init=args.init if fresh else None,
        image_prob=data.image_prob,
    )

    stop = session.stop_reason()
    batches = batch_iterator(data, session.step, args.workers, args.fixed_batch) if stop is None else iter(())
    model.train()
    while stop is None:
        batch = next(batches)
        step = session.step
        inp = fm_step_inputs(batch, ae, device, bf16, pack)
        x0 = inp["x0"]
        gen = step_generator(args.seed, 0 if args.fixed_batch else step, info.rank, device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        sigma = sample_sigmas(x0.shape[0], args.shift, gen, device)
        x_t, _ = flow_matching_pair(x0, noise, sigma)
        lr = lr_at(step, args.lr, args.warmup_steps, args.total_steps, args.schedule)
        set_lr(optimizer, lr)
        with autocast(device, bf16):
            v = model(x_t, sigma * TIMESTEPS, attn=attn, causal=windowed, **inp["kw"])
        loss = losses.flow_matching_loss(v.float(), x0, noise)
        grad_norm = optimizer_step(loss, net, optimizer, args.grad_clip, ema)
        session.advance(inp["n"])
        stats = {"loss": float(loss.detach()), "sigma": float(sigma.mean()), "latent_std": float(x0.std())}
        session.maybe_log(stats, kind=batch.kind, lr=lr, grad_norm=float(grad_norm))
        stop = session.stop_reason()
    del batches
    summary = do_export()
    return session.finish(stop, **summary)


def train(args: argparse.Namespace, info: DistInfo, callback: Callable[[dict], None] | None = None) -> dict:
    return train_flow_matching(args, info, RECIPE, windowed=False, callback=callback)


def main(argv: Sequence[str] | None = None, callback: Callable[[dict], None] | None = None) -> dict:
    """Entry point for ``python -m`` and torchrun; returns the summary (rank 0's view)."""
    return run_main(build_parser(), train, argv, callback)


if __name__ == "__main__":
    cli(main)
