"""TCDecoder stage: train the Tiny Conditional Decoder to decode our autoencoder's latents with the LR condition.

    python -m streamvsr.recipes.tcdecoder --run-dir runs/tc --size small --ae runs/ae/export \\
        --data ../shared/data/train --max-samples 20000
    torchrun --nproc_per_node=N -m streamvsr.recipes.tcdecoder ...      # several GPUs (DDP)

Loss ([FlashVSR] Eq. 3 with our stage-0 autoencoder in place of the Wan decoder; spec §5):

    ||x - x_gt||^2 + lam LPIPS(x, x_gt) + ae_weight (||x - x_ae||^2 + lam LPIPS(x, x_ae)),   lam = 2

where x = TCDecoder(z, bicubic LR) and x_ae = AE.decode(z) for z = AE.encode(HR clip). The condition is exactly
the pipeline's: the bicubic x4 LR frames aligned with the frames the latents decode to (latent t <- frames
4t-3 .. 4t, latent 0 <- [f0]*4; spec §1.11.2). At inference the decoder sees the DiT's one-step estimate, not a
clean encoding, so ``--latent-noise s`` adds N(0, sigma^2) noise with sigma ~ U(0, s) per clip to z (the
targets stay those of the clean latents). LPIPS (ST-LPIPS) runs on ``--lpips-frames`` random frames per clip
and is skipped, with a log line, when its weights are missing.

The run dir holds ``ckpt-*.pt`` / ``latest`` (auto-resume), ``log.jsonl`` and ``export/`` (EMA weights as
``tcdecoder.safetensors`` + ``config.json``), refreshed at the end of every invocation; ``--export DIR`` writes
the same somewhere else. Stages 1-3 take the run dir (or its export) as ``--tcdecoder``.

``--train-encoder`` trains the autoencoder's encoder together with the decoder (its decoder stays frozen and
unused): a conditional autoencoder whose latents only need to carry what the LR condition lacks. The terms
against the AE decoding are then dropped, the latent normalisation stays that of stage 0, and the tuned
autoencoder is written to ``<run-dir>/export_ae`` for stages 1-3 (``--ae``).

``--encode-lr`` (with ``--train-encoder``) feeds the encoder the bicubic LR condition instead of the HR clip, so the
latents can only hold what the LR frames hold: encoder + TCDecoder are then a plain super-resolution network of the
model's shape, a probe of how much fidelity that shape reaches from the LR frames alone.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamvsr.errors import DataError, ModelError
from streamvsr.models.flashvsr.tcdecoder import TCDecoder
from streamvsr.recipes.entry import cli, run_main
from streamvsr.train import losses
from streamvsr.train.distributed import DistInfo, autocast, barrier, seed_everything, wrap_model
from streamvsr.train.ema import EMA
from streamvsr.train.export import export_safetensors
from streamvsr.train.flashvsr_common import (
    TrainSession,
    _jsonable,
    add_common_args,
    autoencoder_folder,
    batch_iterator,
    clip_batches_from_args,
    clip_latents,
    load_autoencoder_from,
    perceptual_from_args,
    resolve_size,
    step_generator,
    to_video,
    upsample_lr,
)
from streamvsr.train.optim import lr_at, make_adamw, set_lr
from streamvsr.train.recipe_utils import (
    add_ae_arg,
    add_image_args,
    lpips_on_frames,
    optimizer_step,
    setup_device,
)

RECIPE = "tcdecoder"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tcdecoder", description=__doc__.split("\n")[0])
    add_common_args(p, clip_len=17, crop=256, batch_size=8, lr=2e-4)
    add_ae_arg(p, required=True)
    add_image_args(p)
    p.add_argument("--lpips-weight", type=float, default=2.0, help="lambda of Eq. 3 (0 = no LPIPS)")
    p.add_argument("--lpips-frames", type=int, default=4, help="random frames per clip that get LPIPS")
    p.add_argument("--ae-weight", type=float, default=1.0, help="weight of the terms against the AE decoding")
    p.add_argument("--latent-noise", type=float, default=0.0, help="max std of the noise added to latents")
    p.add_argument(
        "--train-encoder", action="store_true", help="train the AE encoder too (conditional AE; AE terms dropped)"
    )
    p.add_argument(
        "--encode-lr", action="store_true", help="with --train-encoder: encode the bicubic LR, not the HR clip"
    )
    p.add_argument("--export", default=None, help="also write the EMA export here")
    p.add_argument("--no-export", action="store_true", help="skip refreshing <run-dir>/export")
    return p


def _latent_noise(z: torch.Tensor, max_std: float, gen: torch.Generator) -> torch.Tensor:
    """``--latent-noise``: z + N(0, sigma^2) with sigma ~ U(0, max_std) per clip (z itself when max_std is 0)."""
    if max_std <= 0:
        return z
    s = torch.rand(z.shape[0], generator=gen, device=z.device) * max_std
    return z + s.view(-1, 1, 1, 1, 1) * torch.randn(z.shape, generator=gen, device=z.device)


class _EncodeDecode(nn.Module):
    """``--train-encoder``: HR clip -> latents (trainable encoder) -> TCDecoder with the LR condition."""

    def __init__(self, ae: nn.Module, decoder: TCDecoder) -> None:
        super().__init__()
        self.ae, self.decoder = ae, decoder

    def forward(self, hr: torch.Tensor, cond: torch.Tensor, max_noise: float, gen: torch.Generator) -> torch.Tensor:
        z = _latent_noise(self.ae.encode(hr).float(), max_noise, gen)  # (B, 16, T, h, w)
        return self.decoder(z, cond)  # (B, 3, N, H, W)


def train(args: argparse.Namespace, info: DistInfo, callback: Callable[[dict], None] | None = None) -> dict:
    cfg = resolve_size(args.size)
    if cfg.decoder is None:
        raise ModelError(f"size {args.size!r} has no TCDecoder")
    clip_latents(args.clip_len)
    if args.crop % 8:
        raise DataError(f"--crop must be a multiple of 8, got {args.crop}")
    device, use_bf16 = setup_device(info, args.no_bf16, benchmark=True)

    ae = load_autoencoder_from(args.ae, device)
    if ae.cfg.latent_channels != cfg.decoder.latent_channels or ae.cfg.spatial_factor != cfg.latent_scale:
        raise ModelError("the autoencoder's latent space does not fit this TCDecoder")

    seed_everything(args.seed, info.rank)
    model = TCDecoder(cfg.decoder).to(device)
    joint = args.train_encoder
    if args.encode_lr and not joint:
        raise ModelError("--encode-lr needs --train-encoder")
    if joint:
        ae.encoder.requires_grad_(True).train()
    trained = nn.ModuleList([model, ae.encoder]) if joint else model  # what the optimiser updates
    # FSDP2 (root only) shards in place: before optimizer and EMA
    net = wrap_model(_EncodeDecode(ae, model) if joint else model, info, args.parallel)
    optimizer = make_adamw(trained, lr=args.lr, weight_decay=args.weight_decay)
    ema = EMA(model, decay=args.ema_decay)
    config = {"tcdecoder": _jsonable(cfg.decoder), "size": args.size}
    if joint:
        config["train_encoder"] = True
    if args.encode_lr:
        config["encode_lr"] = True
    session = TrainSession(args, info, RECIPE, config, callback)
    session.add("decoder", model, optimizer, ema)
    enc_ema = EMA(ae.encoder, decay=args.ema_decay) if joint else None
    if joint:
        session.add("encoder", ae.encoder, None, enc_ema)
    session.resume()

    perceptual_fn, lpips_fields = perceptual_from_args(args, device)
    data = clip_batches_from_args(
        args, info, session.run_dir, image_prob=args.image_prob, image_batch_mult=args.image_batch_mult
    )
    session.open_log(
        recipe=RECIPE, params=sum(p.numel() for p in model.parameters()), image_prob=data.image_prob, **lpips_fields
    )

    stop = session.stop_reason()
    batches = batch_iterator(data, session.step, args.workers, args.fixed_batch) if stop is None else iter(())
    net.train()
    while stop is None:
        batch = next(batches)
        step = session.step
        hr = to_video(batch.hr, device)  # (B, 3, N, H, W)
        cond = upsample_lr(batch.lr.to(device))  # (B, 3, N, H, W), the pipeline's LR condition
        gen = step_generator(args.seed, 0 if args.fixed_batch else step, info.rank, device)
        lr = lr_at(step, args.lr, args.warmup_steps, args.total_steps, args.schedule)
        set_lr(optimizer, lr)
        targets = [hr]  # the LPIPS targets: HR, and without --train-encoder the AE decoding too
        if joint:
            with autocast(device, use_bf16):
                x = net(cond if args.encode_lr else hr, cond, args.latent_noise, gen).float()  # (B, 3, N, H, W)
        else:
            with torch.no_grad(), autocast(device, use_bf16):
                z = ae.encode(hr)  # (B, 16, T, h, w)
                targets.append(ae.decode(z).float())
            with autocast(device, use_bf16):
                x = net(_latent_noise(z.float(), args.latent_noise, gen), cond).float()  # (B, 3, N, H, W)
        mse_gt = losses.mse(x, hr)
        with autocast(device, use_bf16):
            lp = lpips_on_frames(perceptual_fn, x, targets, args.lpips_frames, gen)
        lp_gt, mse_ae, lp_ae = lp[0], torch.zeros(()), torch.zeros(())
        loss = mse_gt + args.lpips_weight * lp_gt
        if not joint:
            mse_ae, lp_ae = losses.mse(x, targets[1]), lp[1]
            loss = loss + args.ae_weight * (mse_ae + args.lpips_weight * lp_ae)
        grad_norm = optimizer_step(loss, trained, optimizer, args.grad_clip, None if joint else ema)
        if joint:
            ema.update(model)
            enc_ema.update(ae.encoder)
        session.advance(hr.shape[0])
        with torch.no_grad():
            psnr = float(losses.psnr(x.detach().clamp(-1, 1), hr))
        stats = {
            "loss": float(loss.detach()),
            "mse_gt": float(mse_gt.detach()),
            "mse_ae": float(mse_ae.detach()),
            "lpips_gt": float(lp_gt.detach()),
            "lpips_ae": float(lp_ae.detach()),
            "psnr": psnr,
        }
        session.maybe_log(stats, kind=batch.kind, lr=lr, grad_norm=float(grad_norm))
        stop = session.stop_reason()
    del batches

    summary: dict[str, Any] = {}
    targets = [] if args.no_export else [session.run_dir / "export"]
    if args.export:
        targets.append(Path(args.export))
    weights = ema.weights(rank0_only=True) if info.is_main or ema.sharded else {}  # collective under FSDP2
    if info.is_main:
        m = TCDecoder(cfg.decoder)
        m.load_state_dict(weights, strict=True)
        conf = {**config, "step": session.step, "samples": session.samples, "weights": "ema"}
        for t in targets:
            files = export_safetensors(m.state_dict(), t, conf, name="tcdecoder")
            summary.setdefault("export_files", []).extend(str(f) for f in files)
        if joint and not args.no_export:
            summary["export_ae_files"] = [str(f) for f in _export_tuned_ae(args.ae, ae, enc_ema, session)]
    barrier()
    return session.finish(stop, **summary)


def _export_tuned_ae(source: str, ae: nn.Module, enc_ema: EMA, session: TrainSession) -> list[Path]:
    """``<run-dir>/export_ae``: the stage-0 autoencoder with the jointly trained (EMA) encoder, same statistics."""
    config = json.loads((autoencoder_folder(source) / "config.json").read_text())
    sd = {k: v.detach().cpu() for k, v in ae.state_dict().items()}
    for k, v in enc_ema.weights().items():
        sd[f"encoder.{k}"] = v.detach().cpu()
    config.update(encoder="trained with the TCDecoder (conditional)", encoder_step=session.step)
    return export_safetensors(sd, session.run_dir / "export_ae", config, name="ae")


def main(argv: Sequence[str] | None = None, callback: Callable[[dict], None] | None = None) -> dict:
    """Entry point for ``python -m`` and torchrun; returns the summary (rank 0's view)."""
    return run_main(build_parser(), train, argv, callback)


if __name__ == "__main__":
    cli(main)
