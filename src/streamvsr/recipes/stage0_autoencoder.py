"""Stage 0: train our causal video autoencoder (the Wan2.1-VAE stand-in) on clips and images.

    torchrun --nproc_per_node=N -m streamvsr.recipes.stage0_autoencoder --run-dir runs/ae --size small \\
        --data ../shared/data/train --loader ram --max-minutes 8
    python -m streamvsr.recipes.stage0_autoencoder ...          # single process, CPU or one GPU

Loss = L1 + lpips_weight * LPIPS + kl_weight * KL. Progress is counted in samples (clips or images) seen.
The run directory holds ``ckpt-*.pt`` / ``latest`` (auto-resume), ``log.jsonl`` and ``export/`` (EMA
weights as ``ae.safetensors`` + ``config.json`` with per-channel latent statistics), refreshed at the end
of every invocation. ``--max-samples`` / ``--max-steps`` / ``--max-minutes`` end one invocation (a slice);
``--total-steps`` ends the whole run.

Data (HR frames only): ``--data`` roots are indexed by :mod:`streamvsr.train.data` (video files, frame
folders, photos; default: the shared training data). Two loaders give homogeneous batches (all clips of
``--frames`` frames, or all images):

* ``vsr`` (default): :class:`~streamvsr.train.data.VSRDataset` + ``JointBatchSampler`` in a DataLoader;
  the checkpoint stores the (epoch, batch) position.
* ``ram``: every source is decoded into RAM once, then crops are cut in threads; batches are a pure
  function of (seed, step, rank). Much faster for a small corpus on a GPU.

Either way a resumed run sees exactly the data an uninterrupted run would.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from streamvsr.errors import DataError, StreamVSRError
from streamvsr.models.autoencoder import AE_SIZES, VideoAutoencoder, num_latents
from streamvsr.recipes.entry import cli, run_main
from streamvsr.train import losses
from streamvsr.train.checkpoint import (
    find_latest,
    get_rng_state,
    load_checkpoint,
    model_state_dict,
    optimizer_state_dict,
    save_checkpoint,
    set_model_state_dict,
    set_optimizer_state_dict,
    set_rng_state,
)
from streamvsr.train.data import (
    DEFAULT_TRAIN_ROOTS,
    WORKER_CONTEXT,
    JointBatchSampler,
    ManifestEntry,
    VSRDataset,
    collate_clips,
    iter_val_sequences,
    read_frames,
    resolve_image_prob,
    scan_roots,
    worker_init,
)
from streamvsr.train.distributed import (
    DistInfo,
    all_reduce_mean,
    autocast,
    barrier,
    gather_objects,
    seed_everything,
    wrap_model,
)
from streamvsr.train.ema import EMA
from streamvsr.train.export import export_safetensors, load_autoencoder
from streamvsr.train.logger import JSONLLogger, Throughput, gpu_memory_stats
from streamvsr.train.optim import lr_at, make_adamw, set_lr
from streamvsr.train.recipe_utils import (
    add_optim_args,
    add_run_args,
    jsonable_args,
    load_perceptual,
    lpips_on_frames,
    optimizer_step,
    setup_device,
)

# ---------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stage0_autoencoder", description=__doc__.split("\n")[0])
    p.add_argument("--run-dir", required=True, help="checkpoints, log.jsonl and export/ go here")
    p.add_argument("--size", default="small", choices=sorted(AE_SIZES))
    p.add_argument("--data", action="append", default=[], help="data root (repeatable; default: shared train)")
    p.add_argument("--val-data", action="append", default=[], help="sequences for the export-time PSNR")
    p.add_argument(
        "--init", default=None, help="start from these weights (an export folder) when the run dir has no checkpoint"
    )
    p.add_argument("--loader", default="vsr", choices=["vsr", "ram"])
    p.add_argument("--frames", type=int, default=9, help="frames per training clip, 1 + 4k")
    p.add_argument("--crop", type=int, default=256, help="square crop size (multiple of 32)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per rank and step")
    p.add_argument("--image-batch-mult", type=int, default=4, help="an image batch holds this many x images")
    p.add_argument(
        "--image-prob",
        type=float,
        default=None,
        help="share of image samples / steps (default: 0.2 when --data has photos, else 0)",
    )
    p.add_argument("--max-frame-stride", type=int, default=2, help="clips use a random frame stride 1..N")
    p.add_argument("--max-zoom-out", type=float, default=4.0, help="photos: crop up to N x larger, downscale")
    add_optim_args(p, lr=5e-4, weight_decay=0.0, warmup_steps=200)
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--lpips-weight", type=float, default=0.0, help="ST-LPIPS weight (0 = off)")
    p.add_argument("--lpips-weights", default=None, help="path of alex_shift_tolerant.pth (default: the wheel)")
    p.add_argument("--lpips-frames", type=int, default=2, help="random frames per clip that get LPIPS")
    add_run_args(p)
    p.add_argument("--parallel", default="ddp", choices=["ddp", "fsdp", "none"])
    p.add_argument("--no-bf16", action="store_true", help="fp32 on CUDA too")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p.add_argument("--workers", type=int, default=4, help="DataLoader processes (vsr) or threads (ram)")
    p.add_argument("--ram-max-side", type=int, default=1280, help="ram loader: photos are kept at most this big")
    p.add_argument("--fixed-batch", action="store_true", help="reuse the first batch (overfit debugging)")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--stats-batches", type=int, default=8, help="batches for the latent mean/std")
    return p


# ---------------------------------------------------------------------------------------------------------
# Data sources. Both yield (kind, frames) with frames a CPU tensor (N, F, 3, H, W): uint8 or float in [0, 1].
# ---------------------------------------------------------------------------------------------------------


def to_video(frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, F, 3, H, W) uint8 or [0, 1] float on the CPU -> (N, 3, F, H, W) float in [-1, 1] on ``device``."""
    t = frames.to(device, non_blocking=True)
    t = t.float() / 127.5 - 1.0 if t.dtype == torch.uint8 else t.float() * 2.0 - 1.0
    return t.permute(0, 2, 1, 3, 4)


class VSRSource:
    """Batches from :class:`VSRDataset` (HR only) through a DataLoader; resumable at (epoch, batch)."""

    def __init__(
        self, entries: Sequence[ManifestEntry], args: argparse.Namespace, info: DistInfo, seed_offset: int = 0
    ) -> None:
        self.ds = VSRDataset(
            list(entries),
            clip_len=args.frames,
            crop=args.crop,
            scale=4,
            degradation="bi",  # the cheapest; the LR half is not used here
            image_prob=args.image_prob,
            seed=args.seed + seed_offset,
            strides=tuple(range(1, max(1, args.max_frame_stride) + 1)),
            max_zoom_out=args.max_zoom_out,
        )
        self.sampler = JointBatchSampler(
            self.ds,
            batch_size=args.batch_size,
            image_batch_size=args.batch_size * args.image_batch_mult,
            rank=info.rank,
            world_size=info.world_size,
        )
        self.workers = args.workers
        self.pin = info.device.type == "cuda"
        self.epoch, self.batch = 0, 0
        self._it: Iterator[dict[str, Any]] | None = None

    @property
    def num_clips(self) -> int:
        return len(self.ds.videos)

    @property
    def num_images(self) -> int:
        return len(self.ds.images)

    def state(self) -> dict[str, int]:
        """Position of the next batch."""
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self._it = None

    def _batches(self) -> Iterator[dict[str, Any]]:
        while True:
            self.sampler.set_epoch(self.epoch)
            self.sampler.start_batch = self.batch
            loader = DataLoader(
                self.ds,
                batch_sampler=self.sampler,
                num_workers=self.workers,
                collate_fn=collate_clips,
                worker_init_fn=worker_init if self.workers else None,
                multiprocessing_context=WORKER_CONTEXT if self.workers else None,
                pin_memory=self.pin,
                # its own generator: a DataLoader otherwise draws its base seed from the global RNG,
                # and a resumed run (which makes its loader at another moment) would diverge
                generator=torch.Generator().manual_seed(self.ds.seed * 1_000_003 + self.epoch),
            )
            for b in loader:
                self.batch += 1
                yield b
            self.epoch, self.batch = self.epoch + 1, 0

    def next(self) -> tuple[str, torch.Tensor]:
        if self._it is None:
            self._it = self._batches()
        b = next(self._it)
        return ("image" if bool(b["is_image"][0]) else "video"), b["hr"]

    def take(self, n: int) -> list[torch.Tensor]:
        """The first ``n`` batches of epoch 0 (for statistics)."""
        saved = self.state()
        self.load_state({"epoch": 0, "batch": 0})
        out = [self.next()[1] for _ in range(n)]
        self.load_state(saved)
        return out

    def close(self) -> None:
        self._it = None


class RamSource:
    """Every source decoded into RAM once; random crops of (seed, step, rank, item), cut in threads."""

    def __init__(
        self, entries: Sequence[ManifestEntry], args: argparse.Namespace, info: DistInfo, seed_offset: int = 0
    ) -> None:
        num_latents(args.frames)
        self.args, self.rank = args, info.rank
        self.frames, self.crop, self.seed = args.frames, args.crop, args.seed + seed_offset
        big = [e for e in entries if min(e.width, e.height) >= args.crop]
        clips = [e for e in big if e.kind != "image" and e.frames >= args.frames]
        images = [e for e in big if e.kind == "image"]
        if not clips and not images:
            raise DataError(f"no sources with >= {args.frames} frames / a side >= {args.crop} px in --data")
        self.pool = ThreadPoolExecutor(max_workers=max(1, args.workers))
        self.clips = list(self.pool.map(lambda e: read_frames(e, range(e.frames)), clips))  # (T, H, W, 3)
        self.images = list(self.pool.map(self._load_image, images))  # (H, W, 3)
        w = np.asarray([len(c) for c in self.clips], dtype=np.float64)
        self._clip_p = w / w.sum() if len(w) else w
        self.step = 0
        # the next batch is cut ahead on a thread of its own: a job of `pool` that waited on `pool`'s own jobs
        # would deadlock a pool of one worker (--workers 0 or 1)
        self._ahead = ThreadPoolExecutor(max_workers=1)
        self._pending: Future[tuple[str, torch.Tensor]] | None = None

    @property
    def num_clips(self) -> int:
        return len(self.clips)

    @property
    def num_images(self) -> int:
        return len(self.images)

    def _load_image(self, e: ManifestEntry) -> np.ndarray:
        img = read_frames(e, [0])[0]
        h, w = img.shape[:2]
        s = self.args.ram_max_side / max(h, w)
        if s < 1 and min(h, w) * s >= self.crop:
            img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(img)

    def _box(self, rng: np.random.Generator, h: int, w: int, zoom: float) -> tuple[int, int, int]:
        zmax = min(zoom, min(h, w) / self.crop)
        side = self.crop if zmax <= 1 else int(self.crop * math.exp(rng.uniform(0.0, math.log(zmax))))
        side = min(max(side, self.crop), min(h, w))
        return int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side

    def _fit(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == self.crop:
            return x
        return cv2.resize(x, (self.crop, self.crop), interpolation=cv2.INTER_AREA)

    def clip(self, rng: np.random.Generator) -> np.ndarray:
        """(F, crop, crop, 3) uint8: random clip, stride, start, crop, flip and direction."""
        c = self.clips[int(rng.choice(len(self.clips), p=self._clip_p))]
        ok = [s for s in range(1, max(1, self.args.max_frame_stride) + 1) if (self.frames - 1) * s < len(c)]
        stride = ok[int(rng.integers(len(ok)))]
        start = int(rng.integers(0, len(c) - (self.frames - 1) * stride))
        idx = list(range(start, start + (self.frames - 1) * stride + 1, stride))
        if rng.random() < 0.5:
            idx = idx[::-1]
        y, x, side = self._box(rng, c.shape[1], c.shape[2], 1.0)
        out = c[idx, y : y + side, x : x + side]
        if rng.random() < 0.5:
            out = out[:, :, ::-1]
        return np.ascontiguousarray(out)

    def image(self, rng: np.random.Generator) -> np.ndarray:
        """(1, crop, crop, 3) uint8: random photo, zoom-out, crop and flip."""
        img = self.images[int(rng.integers(len(self.images)))]
        y, x, side = self._box(rng, img.shape[0], img.shape[1], self.args.max_zoom_out)
        out = self._fit(np.ascontiguousarray(img[y : y + side, x : x + side]))
        if rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)[None]

    def kind_at(self, step: int) -> str:
        """Image or video step (the same on every rank)."""
        if not self.images:
            return "video"
        if not self.clips:
            return "image"
        return "image" if np.random.default_rng([self.seed, step, 7]).random() < self.args.image_prob else "video"

    def batch_at(self, step: int) -> tuple[str, torch.Tensor]:
        kind = self.kind_at(step)
        n = self.args.batch_size * (self.args.image_batch_mult if kind == "image" else 1)
        rngs = [np.random.default_rng([self.seed, step, self.rank, i]) for i in range(n)]
        arr = np.stack(list(self.pool.map(self.clip if kind == "video" else self.image, rngs)))
        t = torch.from_numpy(arr).permute(0, 1, 4, 2, 3)  # (N, F, 3, H, W) uint8
        return kind, t.pin_memory() if torch.cuda.is_available() else t

    def state(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])
        self._pending = None

    def next(self) -> tuple[str, torch.Tensor]:
        """This step's batch; the next one is cut in the background meanwhile."""
        out = self._pending.result() if self._pending is not None else self.batch_at(self.step)
        self.step += 1
        self._pending = self._ahead.submit(self.batch_at, self.step)
        return out

    def take(self, n: int) -> list[torch.Tensor]:
        return [self.batch_at(10_000_019 + i)[1] for i in range(n)]  # a stream of their own

    def close(self) -> None:
        self._pending = None
        self._ahead.shutdown(wait=False, cancel_futures=True)
        self.pool.shutdown(wait=False, cancel_futures=True)


def build_source(args: argparse.Namespace, info: DistInfo) -> VSRSource | RamSource:
    roots = args.data or list(DEFAULT_TRAIN_ROOTS)
    entries = scan_roots(roots)
    if not entries:
        raise DataError(f"no videos, frame folders or images under {[str(r) for r in roots]}")
    asked = args.image_prob
    args.image_prob = resolve_image_prob(asked, any(e.kind == "image" for e in entries))
    source = (VSRSource if args.loader == "vsr" else RamSource)(entries, args, info)
    if source.num_images == 0 and args.image_prob > 0:  # nor to video alone (images all below --crop)
        given = f"--image-prob {asked}" if asked is not None else f"the default --image-prob {args.image_prob}"
        raise DataError(
            f"{given}: no image of at least {args.crop} px under the --data roots; pass --image-prob 0 for video only"
        )
    if source.num_clips == 0 and args.image_prob < 1.0:  # never fall back to images alone silently
        raise DataError(
            f"no usable clip (>= {args.frames} frames, side >= {args.crop} px) under the --data roots; "
            "pass --image-prob 1 to train on images only"
        )
    return source


# ---------------------------------------------------------------------------------------------------------
# Perceptual loss (optional)
# ---------------------------------------------------------------------------------------------------------


def build_perceptual(weight: float, path: str | None, device: torch.device) -> losses.PerceptualFn | None:
    """ST-LPIPS (AlexNet) from ``streamvsr.eval.stlpips`` on [-1, 1] images, or None when weight is 0."""
    return load_perceptual(path, device) if weight > 0 else None


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------


def train(args: argparse.Namespace, info: DistInfo, callback: Callable[[dict], None] | None = None) -> dict:
    """Run (or resume) stage 0 until a slice limit or ``--total-steps``; returns a summary dict."""
    t_start = time.perf_counter()
    run_dir = Path(args.run_dir)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier()
    device, use_bf16 = setup_device(info, args.no_bf16, benchmark=True)
    num_latents(args.frames)  # validates 1 + 4k before any work

    cfg = AE_SIZES[args.size]
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = VideoAutoencoder(cfg).to(device)
    if args.init is not None and find_latest(run_dir) is None:
        init = load_autoencoder(args.init)
        if init.cfg != cfg:
            raise StreamVSRError(f"--init {args.init} holds another autoencoder config than --size {args.size}")
        model.load_state_dict(init.state_dict())
    seed_everything(args.seed, info.rank)  # then a different noise stream per rank
    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    # Wrap (DDP) or shard (FSDP2) first: the optimizer and the EMA must see the final parameters.
    net: torch.nn.Module = wrap_model(model, info, args.parallel)
    optimizer = make_adamw(model, lr=args.lr, weight_decay=args.weight_decay)
    ema = EMA(model, decay=args.ema_decay)
    source = build_source(args, info)

    step, samples = 0, 0
    ckpt_path = find_latest(run_dir)
    state = load_checkpoint(ckpt_path) if ckpt_path is not None else None
    if state is not None:
        if state.get("config") != cfg.to_dict():
            raise StreamVSRError(f"{ckpt_path} was trained with another --size / config; use a new --run-dir")
        if state["args"].get("loader") != args.loader:
            raise StreamVSRError(f"{ckpt_path} was trained with --loader {state['args'].get('loader')}")
        set_model_state_dict(model, state["model"])
        set_optimizer_state_dict(model, optimizer, state["optimizer"])
        ema.load_state_dict(state["ema"])
        step, samples = int(state["step"]), int(state["samples"])
        rngs = state.get("rng") or []
        datas = state.get("data") or []
        if len(rngs) == info.world_size and len(datas) == info.world_size:
            set_rng_state(rngs[info.rank])
            source.load_state(datas[info.rank])
        else:  # another world size: go on deterministically, but not as an uninterrupted run would
            seed_everything(args.seed + 1000003 * step, info.rank)
            source.load_state(datas[0] if datas else {"epoch": 0, "batch": 0, "step": step})
    del state

    if args.compile:
        net = torch.compile(net)
    perceptual_fn = build_perceptual(args.lpips_weight, args.lpips_weights, device)
    lpips_gen = torch.Generator().manual_seed(args.seed + 17 * info.rank)

    logger = JSONLLogger(
        run_dir / "log.jsonl",
        enabled=info.is_main,
        resume_step=step if ckpt_path is not None else None,
        callback=callback,
    )
    if info.is_main:
        logger.log(
            {
                "event": "start",
                "step": step,
                "samples": samples,
                "resumed_from": ckpt_path.name if ckpt_path else None,
                "world_size": info.world_size,
                "device": str(device),
                "params": sum(p.numel() for p in model.parameters()),
                "loader": args.loader,
                "clips": source.num_clips,
                "images": source.num_images,
                "image_prob": args.image_prob,
            }
        )

    slice_start_step, slice_start_samples = step, samples
    last_saved = step
    meter = Throughput()
    lpips_last = 0.0
    fixed: tuple[str, torch.Tensor] | None = None

    def save() -> None:
        nonlocal last_saved
        payload = {
            "model": model_state_dict(net),
            "optimizer": optimizer_state_dict(net, optimizer),
            "ema": ema.state_dict(),
            "rng": gather_objects(get_rng_state()),
            "data": gather_objects(source.state()),
            "step": step,
            "samples": samples,
            "config": cfg.to_dict(),
            "args": jsonable_args(args),
        }
        if info.is_main:
            save_checkpoint(run_dir, payload, step, keep=args.keep_ckpts)
        barrier()
        last_saved = step

    def slice_done() -> str | None:
        if args.total_steps is not None and step >= args.total_steps:
            return "total_steps"
        if args.max_steps is not None and step - slice_start_step >= args.max_steps:
            return "max_steps"
        if args.max_samples is not None and samples - slice_start_samples >= args.max_samples:
            return "max_samples"
        if args.max_minutes is not None and (time.perf_counter() - t_start) / 60 >= args.max_minutes:
            return "max_minutes"
        return None

    net.train()
    stop = slice_done()
    try:
        while stop is None:
            if args.fixed_batch:
                fixed = fixed or source.next()
                kind, frames = fixed
            else:
                kind, frames = source.next()
            video = to_video(frames, device)  # (B, 3, F, H, W) in [-1, 1]
            lr = lr_at(step, args.lr, args.warmup_steps, args.total_steps, args.schedule)
            set_lr(optimizer, lr)

            with autocast(device, use_bf16):
                recon, mean, logvar = net(video, sample=True)
            rec = losses.l1(recon, video)
            kl = losses.kl_diag_gaussian(mean, logvar)
            loss = rec + args.kl_weight * kl
            if perceptual_fn is not None:
                with autocast(device, use_bf16):
                    lp = lpips_on_frames(perceptual_fn, recon, [video], args.lpips_frames, lpips_gen)[0]
                loss = loss + args.lpips_weight * lp
                lpips_last = float(lp.detach())

            grad_norm = optimizer_step(loss, model, optimizer, args.grad_clip, ema)

            n = video.shape[0]
            if info.world_size > 1 and args.loader == "vsr":  # ranks may hold batches of either kind
                n_global = round(all_reduce_mean({"n": float(n)}, device=device)["n"] * info.world_size)
            else:
                n_global = n * info.world_size
            step += 1
            samples += n_global
            meter.add(n_global)

            if step % args.log_every == 0 or step == 1:
                with torch.no_grad():
                    p = losses.psnr(recon.detach().clamp(-1, 1), video)
                stats = all_reduce_mean(
                    {
                        "loss": float(loss.detach()),
                        "l1": float(rec.detach()),
                        "kl": float(kl.detach()),
                        "psnr": float(p),
                        "lpips": lpips_last,
                        "latent_std": float(mean.detach().float().std()),
                    },
                    device=device,
                )
                if not math.isfinite(stats["loss"]):
                    raise FloatingPointError(f"loss is {stats['loss']} at step {step}")
                record = {"step": step, "samples": samples, "kind": kind, **stats}
                record.update(lr=lr, grad_norm=float(grad_norm), samples_per_s=meter.rate())
                record.update(gpu_memory_stats(device))
                logger.log(record)
            if args.ckpt_every and step % args.ckpt_every == 0:
                save()
            stop = slice_done()
        if step != last_saved or ckpt_path is None:
            save()
        summary: dict[str, Any] = {"step": step, "samples": samples, "stopped": stop}
        if not args.no_export:
            summary.update(export(args, info, model, ema, source, step, samples))
    finally:
        source.close()
    if info.is_main:
        logger.log({"event": "end", **summary, "minutes": (time.perf_counter() - t_start) / 60})
    return summary


# ---------------------------------------------------------------------------------------------------------
# Export: EMA weights + latent statistics
# ---------------------------------------------------------------------------------------------------------


@torch.no_grad()
def latent_stats(model: VideoAutoencoder, batches: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the raw posterior means over ``batches`` of (N, 3, F, H, W) videos."""
    total = torch.zeros(model.cfg.latent_channels, dtype=torch.float64)
    sq = torch.zeros_like(total)
    count = 0
    for video in batches:
        mean, _ = model.encode_dist(video)
        m = mean.double().transpose(0, 1).reshape(mean.shape[1], -1).cpu()  # (C, N)
        total += m.sum(1)
        sq += m.square().sum(1)
        count += m.shape[1]
    mu = total / count
    var = (sq / count - mu.square()).clamp_min(1e-12)
    return mu.float(), var.sqrt().float()


@torch.no_grad()
def val_psnr(model: VideoAutoencoder, roots: Sequence[str], frames: int, crop: int, device: torch.device) -> float:
    """Mean PSNR (dB, [-1, 1] range) of encode -> decode over the first ``frames`` frames (1 + 4k) of every
    validation sequence, centre-cropped to at most ``crop`` (rounded down to a multiple of 8)."""
    scores = []
    for root in roots:
        for _name, seq in iter_val_sequences(root, max_frames=frames):  # (T, H, W, 3) uint8
            t = 1 + (len(seq) - 1) // 4 * 4
            h, w = seq.shape[1:3]
            ch, cw = min(crop, h) // 8 * 8, min(crop, w) // 8 * 8
            y, x = (h - ch) // 2, (w - cw) // 2
            clip = torch.from_numpy(np.ascontiguousarray(seq[:t, y : y + ch, x : x + cw])).permute(0, 3, 1, 2)
            video = to_video(clip[None], device)
            scores.append(float(losses.psnr(model.decode(model.encode(video)), video)))
    return float(np.mean(scores)) if scores else float("nan")


@torch.no_grad()
def export(
    args: argparse.Namespace,
    info: DistInfo,
    model: VideoAutoencoder,
    ema: EMA,
    source: VSRSource | RamSource,
    step: int,
    samples: int,
) -> dict[str, Any]:
    """Write ``<run_dir>/export/{ae.safetensors, config.json}`` from the EMA weights (rank 0)."""
    weights = ema.weights()  # collective under FSDP2
    out: dict[str, Any] = {}
    if info.is_main:
        device = info.device
        m = VideoAutoencoder(model.cfg).to(device).eval()
        m.load_state_dict(weights, strict=False)
        batches = [to_video(b, device) for b in source.take(args.stats_batches)]
        mu, std = latent_stats(m, batches)
        m.set_latent_stats(mu, std)
        out["export_psnr_train"] = float(np.mean([float(losses.psnr(m.decode(m.encode(v)), v)) for v in batches]))
        if args.val_data:
            out["val_psnr"] = val_psnr(m, args.val_data, args.frames, 512, device)
        config = {
            "autoencoder": model.cfg.to_dict(),
            "latent_mean": mu.tolist(),
            "latent_std": std.tolist(),
            "step": step,
            "samples": samples,
            "weights": "ema",
            **{k: v for k, v in out.items() if isinstance(v, float) and math.isfinite(v)},
        }
        files = export_safetensors(m.state_dict(), Path(args.run_dir) / "export", config, name="ae")
        out["export_files"] = [f.name for f in files]
    barrier()
    return out


# ---------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, callback: Callable[[dict], None] | None = None) -> dict:
    """Entry point for ``python -m`` and torchrun; returns the summary (rank 0's view)."""
    return run_main(build_parser(), train, argv, callback, require_data=False)


if __name__ == "__main__":
    cli(main)
