"""FP8 (e4m3) linear layers for the FlashVSR DiT: rowwise-scaled weights and per-token activations.

:class:`FP8Linear` keeps its weight quantised once to ``torch.float8_e4m3fn`` with one float32 scale per
output row, and quantises the activation per token (one float32 scale per row of the flattened input,
``amax / 448``, computed at run time). On CUDA with a bf16 activation it runs ``torch._scaled_mm`` (Hopper
FP8 tensor cores, fp32 accumulation, bf16 output); everywhere else it runs an emulation with the same
quantise -> dequantise math and a float32 matmul. The emulation is the reference the CUDA path must match.

:func:`convert_dit_linears_to_fp8` swaps the big linears of every DiT block in place. With ``fuse_gelu`` the
FFN's GELU moves into the second FFN linear (``FP8Linear.pre_gelu``): on CUDA one optional Triton kernel
(:func:`gelu_quantize_rowwise`, the ``streamvsr::gelu_fp8_rowwise`` op) then reads the first linear's output
once and writes the FP8 input of the second, instead of a GELU kernel and a quantisation that read it again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_INCLUDE",
    "FAST_INCLUDE",
    "FP8_DTYPE",
    "FP8_MAX",
    "FP8Linear",
    "convert_dit_linears_to_fp8",
    "dequantize_rowwise",
    "fp8_gemm_device",
    "fp8_supported_shape",
    "gelu_quantize_rowwise",
    "quantize_rowwise",
]

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite float8_e4m3fn
_AMAX_EPS = 1e-12  # all-zero rows: scale stays positive (their quantised values are 0 anyway)

# Linears of a DiT block (names relative to the block) that run on every token of every chunk. The K/V
# projections of the cross-attention act on the fixed context only: WanDiT.prepare computes them once per
# stream (DiTState.cross_kv), so they stay in the model dtype.
DEFAULT_INCLUDE: tuple[str, ...] = (
    "self_attn.q",
    "self_attn.k",
    "self_attn.v",
    "self_attn.o",
    "cross_attn.q",
    "cross_attn.o",
    "ffn.0",
    "ffn.2",
)

# All of the above but ``ffn.2``, whose 8960-wide input costs more to quantise per token than its FP8 GEMM saves
# when the GELU runs as a kernel of its own (docs/performance.md, afternoon of 2026-11-26: 54.1 against 53.6 steady
# FPS at 768x1408 on an H200, 10.67 against 10.29 GiB). With ``fuse_gelu`` ffn.2 in FP8 is no slower and 0.39 GiB
# smaller (session "kernels" of 2026-11-26), also end to end through ``upscale_file`` (evening of 2026-11-26: 48.95
# against 48.40 fps), so the CLI's ``--fp8`` converts all eight with the GELU fused; this set stays for comparison.
FAST_INCLUDE: tuple[str, ...] = tuple(n for n in DEFAULT_INCLUDE if n != "ffn.2")


def quantize_rowwise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, K) float -> (M, K) float8_e4m3fn and (M, 1) float32 scales with x ~= q * scale.

    scale = max(|row|) / 448 in float32 (the amax is exact in any float dtype), q = x / scale in float32,
    cast to e4m3 (round to nearest). No clamp is needed: |x / scale| <= 448 up to two float32 roundings,
    which e4m3 rounds to 448 (its next value, 480, is not finite); an all-zero row gives a tiny positive
    scale and zeros. Three passes over x (amax, divide, cast); compiled, they fuse.
    """
    amax = torch.linalg.vector_norm(x, float("inf"), dim=-1, keepdim=True, dtype=torch.float32)  # (M, 1)
    scale = amax.clamp(min=_AMAX_EPS) / FP8_MAX
    q = (x / scale).to(FP8_DTYPE)  # x promotes to float32 against the float32 scale
    return q, scale


def dequantize_rowwise(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(M, K) fp8 and (M, 1) float32 scales -> (M, K) float32."""
    return q.to(torch.float32) * scale


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")  # Wan2.1's FFN activation


_GELU_KERNEL = None


def _gelu_quant_kernel():  # noqa: ANN202 - a Triton kernel, built on first use (Triton is optional)
    global _GELU_KERNEL
    if _GELU_KERNEL is None:
        import triton
        import triton.language as tl

        @triton.jit
        def kernel(x_ptr, q_ptr, s_ptr, n_cols, stride_x, stride_q, BLOCK: tl.constexpr):  # noqa: ANN001, ANN202
            # one program per row: the whole row in registers, read once
            row = tl.program_id(0).to(tl.int64)
            cols = tl.arange(0, BLOCK)
            mask = cols < n_cols
            x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
            u = 0.7978845608028654 * (x + 0.044715 * x * x * x)  # sqrt(2 / pi) (x + 0.044715 x^3)
            g = x * tl.sigmoid(2.0 * u)  # = 0.5 x (1 + tanh(u)), the tanh GELU
            g = g.to(x_ptr.dtype.element_ty).to(tl.float32)  # rounded like the unfused GELU's output
            # _AMAX_EPS and FP8_MAX of quantize_rowwise, as literals (the kernel measured on the H100 had them so)
            scale = tl.maximum(tl.max(tl.abs(g), axis=0), 1e-12) / 448.0
            q = g / scale
            tl.store(q_ptr + row * stride_q + cols, q.to(q_ptr.dtype.element_ty), mask=mask)
            tl.store(s_ptr + row, scale)

        _GELU_KERNEL = kernel
    return _GELU_KERNEL


@functools.cache
def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@torch.library.custom_op("streamvsr::gelu_fp8_rowwise", mutates_args=())
def gelu_quantize_rowwise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``quantize_rowwise(gelu_tanh(x))`` for (M, K) ``x``: the FP8 input of a linear that follows a GELU.

    On CUDA (with Triton) one kernel computes it from one read of ``x``; elsewhere the two steps run as written
    (the reference the kernel must match; the GELU output keeps ``x``'s dtype in both). An opaque op for
    torch.compile."""
    if x.is_cuda and x.dim() == 2 and _triton_available():
        import triton

        x = x.contiguous()
        m, k = x.shape
        q = torch.empty((m, k), dtype=FP8_DTYPE, device=x.device)
        s = torch.empty((m, 1), dtype=torch.float32, device=x.device)
        block = triton.next_power_of_2(k)
        warps = 4 if block <= 2048 else 8 if block <= 8192 else 16
        with torch.cuda.device(x.device):
            _gelu_quant_kernel()[(m,)](x, q, s, k, x.stride(0), q.stride(0), BLOCK=block, num_warps=warps)
        return q, s
    return quantize_rowwise(_gelu_tanh(x))


@gelu_quantize_rowwise.register_fake
def _(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.new_empty(x.shape, dtype=FP8_DTYPE), x.new_empty((x.shape[0], 1), dtype=torch.float32)


def fp8_supported_shape(in_features: int, out_features: int) -> bool:
    """``torch._scaled_mm`` needs K (in) and N (out) to be multiples of 16."""
    return in_features % 16 == 0 and out_features % 16 == 0


def fp8_gemm_device(device: torch.device | str | None) -> bool:
    """Whether rowwise-scaled ``torch._scaled_mm`` runs on ``device``: CUDA with compute capability 9.0+."""
    if device is None or torch.device(device).type != "cuda" or not hasattr(torch, "_scaled_mm"):
        return False
    return torch.cuda.get_device_capability(torch.device(device)) >= (9, 0)


class FP8Linear(nn.Module):
    """A linear layer with an e4m3 weight (rowwise float32 scales) and per-token e4m3 activations.

    Buffers: ``weight_fp8`` (N, K) float8_e4m3fn (row-major, passed to ``_scaled_mm`` as its column-major
    transpose), ``weight_scale`` (1, N) float32; ``bias`` (N,) follows the module dtype. Moving the module
    (``.to(device)``, ``.to(dtype)``, ``.half()``) moves the buffers but keeps their dtypes.

    forward(x): x (..., K) -> (..., N) in x's dtype. The ``_scaled_mm`` path is taken on a CUDA device of
    compute capability 9.0+ (Hopper) for a bf16 activation (rowwise-scaled ``_scaled_mm`` only produces
    bf16) and a supported shape; otherwise the emulation (quantise, dequantise, float32 matmul) runs.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        use_fast_accum: bool = False,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.use_fast_accum = use_fast_accum  # Hopper fast FP8 accumulation (less exact, a bit faster)
        w = torch.zeros(out_features, in_features, dtype=FP8_DTYPE, device=device)
        self.register_buffer("weight_fp8", w)
        self.register_buffer("weight_scale", torch.ones(1, out_features, dtype=torch.float32, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, device=device), requires_grad=False) if bias else None
        self.gemm_ok = fp8_gemm_device(device)  # a plain attribute: static for torch.compile
        self.fallback_rows: set[int] = set()  # row counts cuBLASLt rejected (eager mode emulates them)
        self.pre_gelu = False  # True: forward(x) = linear(gelu_tanh(x)), the GELU fused into the quantisation

    @classmethod
    def from_linear(cls, linear: nn.Linear, use_fast_accum: bool = False) -> FP8Linear:
        """Quantise ``linear`` (any float dtype, any device) once; the bias keeps the linear's dtype."""
        n, k = linear.weight.shape
        m = cls(k, n, bias=linear.bias is not None, use_fast_accum=use_fast_accum, device=linear.weight.device)
        with torch.no_grad():
            q, s = quantize_rowwise(linear.weight.detach())  # (N, K), (N, 1)
            m.weight_fp8 = q.contiguous()
            m.weight_scale = s.reshape(1, n).contiguous()
            if linear.bias is not None:
                m.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return m

    def extra_repr(self) -> str:
        gelu = ", pre_gelu=True" if self.pre_gelu else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}{gelu}"

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 - nn.Module signature
        # Module.to(dtype) casts every floating buffer; the fp8 weight and the float32 scales must keep
        # their dtypes (only their device follows). fp8 -> any float -> fp8 round-trips exactly.
        scale = self.weight_scale
        out = super()._apply(fn, recurse)
        self.weight_fp8 = self.weight_fp8.to(FP8_DTYPE)
        self.weight_scale = scale.to(self.weight_fp8.device)
        self.gemm_ok = fp8_gemm_device(self.weight_fp8.device)
        return out

    def dequantized_weight(self) -> torch.Tensor:
        """(N, K) float32 weight the layer effectively uses."""
        return self.weight_fp8.to(torch.float32) * self.weight_scale.reshape(-1, 1)

    def uses_scaled_mm(self, x: torch.Tensor) -> bool:
        """Whether forward(x) takes the ``torch._scaled_mm`` path (else the emulation)."""
        return (
            self.gemm_ok
            and x.is_cuda
            and x.dtype == torch.bfloat16
            and fp8_supported_shape(self.in_features, self.out_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # (M, K)
        if self.uses_scaled_mm(x):
            out = self._forward_scaled_mm(x2)
        else:
            out = self._forward_emulated(_gelu_tanh(x2) if self.pre_gelu else x2)
        return out.reshape(*lead, self.out_features)

    def _forward_scaled_mm(self, x2: torch.Tensor) -> torch.Tensor:
        """(M, K) bf16 on CUDA -> (M, N) bf16 through the rowwise-scaled FP8 GEMM.

        cuBLASLt rejects some shapes (CUBLAS_STATUS_NOT_SUPPORTED, seen for M = 64, K = 8960 on an H100 with
        torch 2.11). In eager mode such a row count falls back to the emulation, once reported in
        ``fallback_rows``; the DiT's own row counts (thousands of tokens) take the GEMM.
        """
        if self.pre_gelu:
            q, s = torch.ops.streamvsr.gelu_fp8_rowwise(x2)  # (M, K) fp8, (M, 1) float32
        else:
            q, s = quantize_rowwise(x2)
        q = q.contiguous()  # row-major, as _scaled_mm requires (a no-op for the DiT's activations)
        m = x2.shape[0]
        if torch.compiler.is_compiling():
            return self._scaled_mm(q, s, x2.dtype)
        if m not in self.fallback_rows:
            try:
                return self._scaled_mm(q, s, x2.dtype)
            except RuntimeError as e:
                if "NOT_SUPPORTED" not in str(e):
                    raise
                self.fallback_rows.add(m)
        return self._emulate(q, s, x2.dtype)

    def _scaled_mm(self, q: torch.Tensor, s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(dtype)
        out = torch._scaled_mm(
            q,
            self.weight_fp8.t(),  # (K, N) column-major view of the row-major (N, K) weight
            scale_a=s,  # (M, 1) float32
            scale_b=self.weight_scale,  # (1, N) float32
            bias=bias,
            out_dtype=dtype,
            use_fast_accum=self.use_fast_accum,
        )
        return out[0] if isinstance(out, tuple) else out  # older torch returned (out, amax)

    def _forward_emulated(self, x2: torch.Tensor) -> torch.Tensor:
        """(M, K) -> (M, N): the same quantisation, dequantised, float32 matmul, cast to x's dtype."""
        return self._emulate(*quantize_rowwise(x2), x2.dtype)

    def _emulate(self, q: torch.Tensor, s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(torch.float32)
        return F.linear(dequantize_rowwise(q, s), self.dequantized_weight(), bias).to(dtype)


def _get_child(root: nn.Module, dotted: str) -> tuple[nn.Module, str, nn.Module | None]:
    """(parent, attribute name, child or None) for a dotted path below ``root``."""
    parts = dotted.split(".")
    parent = root
    for p in parts[:-1]:
        parent = getattr(parent, p, None)
        if parent is None:
            return root, parts[-1], None
    name = parts[-1]
    if isinstance(parent, nn.Sequential) and name.isdigit():
        idx = int(name)
        return parent, name, parent[idx] if idx < len(parent) else None
    return parent, name, getattr(parent, name, None)


def convert_dit_linears_to_fp8(
    dit: nn.Module, include: Iterable[str] = DEFAULT_INCLUDE, use_fast_accum: bool = False, fuse_gelu: bool = False
) -> int:
    """Replace, in every block of ``dit.blocks``, the ``nn.Linear`` children named in ``include`` (paths
    relative to the block) by :class:`FP8Linear`; returns how many were replaced.

    Linears whose in/out features are not multiples of 16 (a ``_scaled_mm`` constraint) stay as they
    are, as do embeddings, the head and the cross-attention K/V projections (not in the default
    ``include``). ``fuse_gelu``: where ``ffn.2`` became an FP8Linear, the FFN's GELU moves into it
    (``pre_gelu``; see :func:`gelu_quantize_rowwise`). Destructive: the bf16 weights are dropped (convert a deep
    copy to keep the original). A bf16 FFN fused by :func:`~streamvsr.models.flashvsr.fused.fuse_ffn_gelu` is
    split again first where ``ffn.0`` or the GELU is to change.
    """
    from streamvsr.models.flashvsr.fused import unfuse_ffn_gelu

    names = tuple(include)
    if "ffn.0" in names or fuse_gelu:
        unfuse_ffn_gelu(dit)
    count = 0
    with torch.no_grad():
        for block in dit.blocks:  # type: ignore[attr-defined]
            for name in names:
                parent, attr, child = _get_child(block, name)
                if type(child) is not nn.Linear:  # already converted, absent, or another module
                    continue
                if not fp8_supported_shape(child.in_features, child.out_features):
                    continue
                setattr(parent, attr, FP8Linear.from_linear(child, use_fast_accum=use_fast_accum))
                count += 1
            if fuse_gelu:
                _fuse_ffn_gelu(block)
    return count


def _fuse_ffn_gelu(block: nn.Module) -> None:
    """``ffn = [linear, GELU(tanh), FP8Linear]`` -> ``[linear, Identity, FP8Linear(pre_gelu)]`` (same function)."""
    ffn = getattr(block, "ffn", None)
    if not isinstance(ffn, nn.Sequential) or len(ffn) != 3:
        return
    act, last = ffn[1], ffn[2]
    if isinstance(act, nn.GELU) and act.approximate == "tanh" and isinstance(last, FP8Linear) and not last.pre_gelu:
        ffn[1] = nn.Identity()
        last.pre_gelu = True
