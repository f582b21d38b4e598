"""Stage 3: one-step distribution-matching distillation (DMD) of the sparse-causal model.

    python -m streamvsr.recipes.stage3_dmd --run-dir runs/s3 --size small --init runs/s2 --teacher runs/s1 \\
        --tcdecoder runs/tc --data ../shared/data/train --max-samples 5000
    torchrun --nproc_per_node=N -m streamvsr.recipes.stage3_dmd ...        # --parallel fsdp for large sizes
    python -m streamvsr.recipes.stage3_dmd --run-dir runs/s3 --size small --tcdecoder runs/tc \\
        --export-only --export weights/flashvsr-small      # the final inference folder

Models ([FlashVSR] §3.2 Stage 3, Fig. 2; spec §5):

* generator G (trainable, init ``--init`` = the stage-2 run): the inference model. ONE step from pure noise,
  x0 = eps - G(eps, t = 1000, LQ) (spec §1.4), with block-sparse causal attention over the whole clip (the
  streaming-equivalent window mask), all latents at the same timestep;
* real score (frozen): the ``--teacher`` (stage 1, full attention by default; ``--teacher-attn causal`` for a
  stage-2 teacher);
* fake score (trainable, initialised as a copy of the teacher): trained with flow matching on G's detached samples,
  so it tracks the distribution of G's latents.

Generator loss ([FlashVSR] total loss): L_DMD + mse_weight ||x - x_gt||^2 + lpips_weight LPIPS(x, x_gt), lpips
weight 2; ``--temporal-weight`` adds our frame-difference term (:func:`losses.temporal_difference`),
``--detail-energy-weight`` our term on the local amount of fine detail (:func:`losses.detail_energy`).
L_DMD ([DMD] Eq. 7, Alg. 1): x_t = (1 - s) sg(x0) + s eps' at s ~ shifted U(t_min, t_max); the gradient
(fake_x0(x_t) - real_x0(x_t)) / mean|x0 - real_x0(x_t)| is applied to x0 through
0.5 ||x0 - sg(x0 - grad)||^2. Pixel terms: 2 randomly chosen consecutive latents are decoded with the frozen
TCDecoder (its memory of the earlier latents computed without gradient) and compared with the HR frames they
decode to. Fake loss: L_FM(fake) on G's detached samples (``--fake-steps`` updates per generator update).
Two optimisers and two EMA states (generator: exported; fake: kept in the checkpoint). ``--train-decoder``
(our addition) also trains the TCDecoder through the pixel terms (third optimiser, ``--decoder-lr``, own EMA,
exported with the generator): the whole inference chain is then fine-tuned end to end, so the decoder
learns the generator's latents rather than clean encodings. ``--parallel fsdp``
shards the generator, the fake score and the frozen real score (FSDP2 units: DiT blocks, their cross-attentions, root);
checkpoints stay full state dicts.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from streamvsr.errors import DataError, ModelError
from streamvsr.recipes.entry import cli, run_main
from streamvsr.train import losses
from streamvsr.train.checkpoint import find_latest
from streamvsr.train.distributed import DistInfo, all_reduce_grads, autocast, seed_everything
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
    decode_latent_pair,
    dmd_loss,
    export_ema_flashvsr,
    flow_matching_pair,
    generate_x0,
    hr_for_latents,
    load_context,
    load_net_state,
    load_tcdecoder,
    lq_input_frames,
    perceptual_from_args,
    resolve_size,
    sample_sigmas,
    step_generator,
    to_video,
    upsample_lr,
    wrap_flashvsr,
)
from streamvsr.train.optim import lr_at, make_adamw, set_lr
from streamvsr.train.recipe_utils import optimizer_step, setup_device

RECIPE = "stage3_dmd"


def _low_high(text: str) -> tuple[float, float]:
    """'0.02:0.08' -> (0.02, 0.08), low < high."""
    low, sep, high = text.partition(":")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        lo = hi = float("nan")
    if not sep or not lo < hi:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH with LOW < HIGH, got {text!r}")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stage3_dmd", description=__doc__.split("\n")[0])
    add_common_args(p, clip_len=41, crop=256, batch_size=2, lr=2e-5)
    add_dit_args(p)
    p.add_argument("--teacher", default=None, help="real score: stage-1 run dir / ckpt or a FlashVSR folder (DMD only)")
    p.add_argument("--teacher-attn", default="full", choices=["full", "causal"], help="attention of real/fake")
    p.add_argument("--fake-lr", type=float, default=None, help="fake-score learning rate (default --lr)")
    p.add_argument("--fake-steps", type=int, default=1, help="fake-score updates per generator update")
    p.add_argument("--dmd-weight", type=float, default=1.0, help="0: no DMD; real and fake scores stay idle")
    p.add_argument("--mse-weight", type=float, default=1.0)
    p.add_argument("--lpips-weight", type=float, default=2.0, help="lambda of the total loss (0 = off)")
    p.add_argument(
        "--lpips-mask",
        type=_low_high,
        default=None,
        metavar="LOW:HIGH",
        help="LPIPS only where the target has texture: weight 0 below tile detail RMS LOW, 1 above HIGH "
        "([-1, 1] pixel units; losses.texture_mask). Off by default",
    )
    p.add_argument("--temporal-weight", type=float, default=0.0, help="weight of the frame-difference loss (0 = off)")
    p.add_argument(
        "--detail-energy-weight",
        type=float,
        default=0.0,
        help="weight of the local fine-detail amount term against texture drawn over flat areas (0 = off)",
    )
    p.add_argument("--decode-latents", type=int, default=2, help="latents decoded for the pixel losses")
    p.add_argument("--train-decoder", action="store_true", help="also train the TCDecoder (pixel terms)")
    p.add_argument("--decoder-lr", type=float, default=None, help="TCDecoder learning rate (default --lr)")
    p.add_argument("--dmd-t-min", type=float, default=0.02, help="lowest u of the DMD noise level")
    p.add_argument("--dmd-t-max", type=float, default=0.98, help="highest u of the DMD noise level")
    return p


def train(args: argparse.Namespace, info: DistInfo, callback: Callable[[dict], None] | None = None) -> dict:
    cfg = resolve_size(args.size)
    t_lat = check_clip_len(args.clip_len, windowed=True)
    block_px = cfg.latent_scale * cfg.dit.patch[1] * cfg.attention.window[1]  # output pixels per block (128)
    if args.crop % block_px:
        raise DataError(f"--crop must be a multiple of {block_px} for the attention windows, got {args.crop}")
    if not 1 <= args.decode_latents <= t_lat:
        raise DataError(f"--decode-latents must be in 1..{t_lat}")
    pixel = args.mse_weight > 0 or args.lpips_weight > 0 or args.temporal_weight > 0 or args.detail_energy_weight > 0
    if (pixel or args.export) and not args.tcdecoder:
        raise ModelError("stage 3 needs --tcdecoder (pixel losses and the exported folder)")
    if args.export_only and not args.export:
        raise ModelError("--export-only needs --export DIR")
    if args.train_decoder and not pixel:
        raise ModelError("--train-decoder needs a pixel loss (--mse-weight or --lpips-weight > 0)")
    if args.train_decoder and args.parallel == "fsdp":
        raise ModelError("--train-decoder runs with --parallel ddp or in one process")
    device, bf16 = setup_device(info, args.no_bf16)
    context = load_context(args.context, cfg)
    attn = dataclasses.replace(cfg.attention, backend=args.attn_backend)
    t_attn = attn if args.teacher_attn == "causal" else None
    decoder = load_tcdecoder(args.tcdecoder, cfg.decoder, device) if args.tcdecoder else None

    seed_everything(args.seed, info.rank)
    gen_net = FlashVSRNet(cfg, context).to(device)
    fake_net = FlashVSRNet(cfg, context).to(device)
    real_net: FlashVSRNet | None = None
    fresh = find_latest(args.run_dir) is None
    if not args.export_only and (args.teacher or args.dmd_weight > 0):
        if not args.teacher:
            raise ModelError("stage 3 with DMD needs --teacher (the frozen real score, e.g. the stage-1 run dir)")
        real_net = FlashVSRNet(cfg, context)
        real_net.load_state_dict(load_net_state(args.teacher, cfg, "ema"), strict=True)
        real_net.requires_grad_(False)
        real_net = real_net.to(device).eval()
    if fresh and not args.export_only:
        if not args.init:
            raise ModelError("stage 3 starts from stage 2: give --init <stage-2 run dir>")
        gen_net.load_state_dict(load_net_state(args.init, cfg, args.init_weights), strict=True)
        # the fake score starts as the teacher; without DMD (no teacher given) it is never used, and starts as G
        fake_net.load_state_dict(copy.deepcopy((real_net or gen_net).state_dict()), strict=True)
    for n in (gen_net, fake_net):
        n.dit.gradient_checkpointing = bool(args.grad_checkpointing)
    # DDP wraps, FSDP2 shards in place (rank 0's weights on every rank): before the optimizers and the EMAs.
    # Under FSDP2 the frozen real score is sharded too (same units; it only runs forwards, without gradient).
    mode = "none" if args.export_only else args.parallel
    g_model = wrap_flashvsr(gen_net, info, mode)
    f_model = wrap_flashvsr(fake_net, info, mode)
    if real_net is not None and mode == "fsdp":
        real_net = wrap_flashvsr(real_net, info, mode)  # type: ignore[assignment]
    opt_g = make_adamw(gen_net, lr=args.lr, weight_decay=args.weight_decay)
    fake_lr = args.fake_lr if args.fake_lr is not None else args.lr
    opt_f = make_adamw(fake_net, lr=fake_lr, weight_decay=args.weight_decay)
    ema_g = EMA(gen_net, decay=args.ema_decay)
    ema_f = EMA(fake_net, decay=args.ema_decay)
    config = {"flashvsr": cfg.to_dict(), "size": args.size, "teacher_attn": args.teacher_attn}
    if args.train_decoder:
        config["train_decoder"] = True
    session = TrainSession(args, info, RECIPE, config, callback)
    session.add("net", gen_net, opt_g, ema_g)
    session.add("fake", fake_net, opt_f, ema_f)
    opt_d = ema_d = None
    dec_lr = args.decoder_lr if args.decoder_lr is not None else args.lr
    if args.train_decoder:
        decoder.requires_grad_(True).train()  # type: ignore[union-attr]
        opt_d = make_adamw(decoder, lr=dec_lr, weight_decay=args.weight_decay)  # type: ignore[arg-type]
        ema_d = EMA(decoder, decay=args.ema_decay)  # type: ignore[arg-type]
        session.add("decoder", decoder, opt_d, ema_d)  # type: ignore[arg-type]
    resumed = session.resume()

    def do_export() -> dict[str, Any]:
        dec = decoder
        if ema_d is not None:  # the EMA of the fine-tuned decoder
            dec = copy.deepcopy(decoder)
            dec.load_state_dict(ema_d.weights(), strict=True)  # type: ignore[union-attr]
        return export_ema_flashvsr(args.export, info, cfg, ema_g, dec, context)

    if args.export_only:
        if not resumed:
            raise ModelError(f"--export-only: no checkpoint in {args.run_dir}")
        return do_export()

    perceptual_fn, lpips_fields = perceptual_from_args(args, device)
    data = clip_batches_from_args(args, info, session.run_dir)
    session.open_log(
        recipe=RECIPE,
        params=sum(p.numel() for p in gen_net.parameters()),
        attention=f"lcsa-causal/{attn.backend}",
        teacher=args.teacher,
        **lpips_fields,
    )

    stop = session.stop_reason()
    batches = batch_iterator(data, session.step, args.workers, args.fixed_batch) if stop is None else iter(())
    g_model.train()
    f_model.train()
    while stop is None:
        batch = next(batches)
        step = session.step
        hr = to_video(batch.hr, device)  # (B, 3, N, H, W)
        lr_up = upsample_lr(batch.lr.to(device))
        lq = lq_input_frames(lr_up)
        hr_t = hr_for_latents(hr)  # (B, 3, 4T-3, H, W): frames the latents decode to
        cond = lr_up[:, :, : hr_t.shape[2]]  # the TCDecoder condition, aligned with those frames
        b, _, _, hh, ww = hr.shape
        s = cfg.latent_scale
        gen = step_generator(args.seed, 0 if args.fixed_batch else step, info.rank, device)
        noise = torch.randn((b, cfg.dit.in_channels, t_lat, hh // s, ww // s), generator=gen, device=device)
        g_lr = lr_at(step, args.lr, args.warmup_steps, args.total_steps, args.schedule)
        f_lr = lr_at(step, fake_lr, args.warmup_steps, args.total_steps, args.schedule)
        set_lr(opt_g, g_lr)
        set_lr(opt_f, f_lr)
        if opt_d is not None:
            set_lr(opt_d, lr_at(step, dec_lr, args.warmup_steps, args.total_steps, args.schedule))
            opt_d.zero_grad(set_to_none=True)

        # ---- generator: one step from pure noise with the inference attention
        with autocast(device, bf16):
            x0 = generate_x0(g_model, lq, noise, attn)  # (B, 16, T, h, w) float32
        sigma = sample_sigmas(b, args.shift, gen, device, args.dmd_t_min, args.dmd_t_max)
        eps = torch.randn(x0.shape, generator=gen, device=device)
        x_t, _ = flow_matching_pair(x0.detach(), eps, sigma)
        sv = sigma.view(-1, 1, 1, 1, 1)
        use_dmd = args.dmd_weight > 0  # without DMD the real and fake scores are not needed at all
        l_dmd = gap = x0.new_zeros(())
        if use_dmd:
            with torch.no_grad(), autocast(device, bf16):
                v_real = real_net(x_t, sigma * TIMESTEPS, lq, attn=t_attn, causal=t_attn is not None)  # type: ignore[misc]
                v_fake = fake_net(x_t, sigma * TIMESTEPS, lq, attn=t_attn, causal=t_attn is not None)
            real_x0 = x_t - sv * v_real.float()
            fake_x0 = x_t - sv * v_fake.float()
            l_dmd = dmd_loss(x0, real_x0, fake_x0)
            gap = (real_x0 - fake_x0).abs().mean()
        l_mse = x0.new_zeros(())
        l_lp = x0.new_zeros(())
        l_tmp = x0.new_zeros(())
        l_de = x0.new_zeros(())
        if pixel:
            n = args.decode_latents
            k = int(torch.randint(0, t_lat - n + 1, (1,), generator=gen, device=device).item())
            with autocast(device, bf16):
                frames, (fs, fe) = decode_latent_pair(decoder, x0, cond, k, n)  # type: ignore[arg-type]
                frames = frames.float()
                target = hr_t[:, :, fs:fe]
                l_mse = losses.mse(frames, target)
                l_lp = losses.perceptual(perceptual_fn, frames, target, texture=args.lpips_mask)
                if args.temporal_weight > 0:
                    l_tmp = losses.temporal_difference(frames, target)
                if args.detail_energy_weight > 0:
                    l_de = losses.detail_energy(frames, target)
        loss_g = args.dmd_weight * l_dmd + args.mse_weight * l_mse + args.lpips_weight * l_lp
        loss_g = loss_g + args.temporal_weight * l_tmp + args.detail_energy_weight * l_de
        gn_g = optimizer_step(loss_g, gen_net, opt_g, args.grad_clip, ema_g)  # backward fills the decoder's too
        gn_d = torch.zeros(())
        if opt_d is not None:
            all_reduce_grads(decoder)  # type: ignore[arg-type]
            gn_d = torch.nn.utils.clip_grad_norm_(decoder.parameters(), args.grad_clip or float("inf"))  # type: ignore[union-attr]
            opt_d.step()
            ema_d.update(decoder)  # type: ignore[union-attr, arg-type]

        # ---- fake score: flow matching on the generator's detached samples
        x0d = x0.detach()
        l_fm = x0.new_zeros(())
        gn_f = torch.zeros(())
        for _ in range(args.fake_steps if use_dmd else 0):
            sf = sample_sigmas(b, args.shift, gen, device)
            ef = torch.randn(x0d.shape, generator=gen, device=device)
            xf, _ = flow_matching_pair(x0d, ef, sf)
            with autocast(device, bf16):
                vf = f_model(xf, sf * TIMESTEPS, lq, attn=t_attn, causal=t_attn is not None)
            l_fm = losses.flow_matching_loss(vf.float(), x0d, ef)
            gn_f = optimizer_step(l_fm, fake_net, opt_f, args.grad_clip)
        if use_dmd:  # without DMD the fake score never changes
            ema_f.update(fake_net)

        session.advance(b)
        stats = {
            "loss_g": float(loss_g.detach()),
            "dmd": float(l_dmd.detach()),
            "mse": float(l_mse.detach()),
            "lpips": float(l_lp.detach()),
            "temporal": float(l_tmp.detach()),
            "detail_energy": float(l_de.detach()),
            "fm_fake": float(l_fm.detach()),
            "real_fake_gap": float(gap),
            "x0_std": float(x0.detach().std()),
        }
        if opt_d is not None:
            stats["grad_norm_d"] = float(gn_d)
        session.maybe_log(stats, lr=g_lr, grad_norm_g=float(gn_g), grad_norm_f=float(gn_f))
        stop = session.stop_reason()
    del batches
    summary = do_export()
    return session.finish(stop, **summary)


def main(argv: Sequence[str] | None = None, callback: Callable[[dict], None] | None = None) -> dict:
    """Entry point for ``python -m`` and torchrun; returns the summary (rank 0's view)."""
    return run_main(build_parser(), train, argv, callback)


if __name__ == "__main__":
    cli(main)
