# ruff: noqa  (a run record: exec()uted into the module namespace of streamvsr.ops.resize, whose names it uses)
# the LQ upsampling on the device before the fifth session of 2026-11-27 (one frame at a time, the taps gathered
# into one int32 tensor), for the A/B of call 10: exec()uted into streamvsr.ops.resize
def _pillow_pass(x: torch.Tensor, in_size: int, out_size: int) -> torch.Tensor:
    """One 8-bit Pillow pass along the last axis of an integer tensor (..., in) -> uint8 (..., out)."""
    idx, w = _pillow_taps(in_size, out_size, x.device)
    # |sum| <= 255 * 1.2 * 2^22 < 2^31 (the taps' weights sum to 2^22): int32 is exact
    acc = (x.to(torch.int32)[..., idx] * w).sum(-1, dtype=torch.int32)  # (..., out)
    acc += 1 << (_PIL_PRECISION_BITS - 1)
    return (acc >> _PIL_PRECISION_BITS).clamp_(0, 255).to(torch.uint8)


def pillow_bicubic_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pillow ``Image.resize(size[::-1], BICUBIC)`` of uint8 frames ``(..., C, H, W)`` -> ``(..., C, h, w)``.

    Bit-exact with Pillow (tests/test_resize.py), on the tensor's device: FlashVSR's official LQ upsampling
    without a round trip through the CPU. Works one frame at a time to bound the int32 tap tensors.
    """
    if x.dtype != torch.uint8 or x.ndim < 3:
        raise ValueError(f"expected (..., C, H, W) uint8, got {x.dtype} {tuple(x.shape)}")
    h, w = x.shape[-2:]
    oh, ow = int(size[0]), int(size[1])
    flat = x.reshape(-1, *x.shape[-3:])
    out = torch.empty(flat.shape[0], flat.shape[1], oh, ow, dtype=torch.uint8, device=x.device)
    for i, frame in enumerate(flat):
        y = frame if ow == w else _pillow_pass(frame, w, ow)  # (C, H, ow)
        if oh != h:
            y = _pillow_pass(y.transpose(-1, -2), h, oh).transpose(-1, -2)  # (C, oh, ow)
        out[i] = y
    return out.reshape(*x.shape[:-2], oh, ow)
