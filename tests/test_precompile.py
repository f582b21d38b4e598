"""DiskCompiled: a compiled method saved once and loaded by later processes without a new trace, valid only where
its key and guards hold (Inductor on the CPU: needs the C++ compiler the rest of the suite's compile tests use)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from streamvsr.models.flashvsr.config import SIZES
from streamvsr.pipeline import precompile
from streamvsr.pipeline.flashvsr import FlashVSRUpscaler, compile_decoder, compile_dit, compile_lq_proj
from streamvsr.pipeline.precompile import DiskCompiled, module_fingerprint

KW = {"dynamic": False, "backend": "inductor"}


class _Net(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(8, 8)
        self.double = False  # a switch the trace branches on

    def step(self, x: torch.Tensor, mem: dict[int, torch.Tensor]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        y = torch.relu(self.lin(x)) + mem[0]
        return (y * 2 if self.double else y), {0: y}


def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process has: no function loaded, traced or failed, and no Dynamo cache."""
    monkeypatch.setattr(precompile, "_LOADED", {})
    monkeypatch.setattr(precompile, "_FAILED", {})
    monkeypatch.setattr(precompile, "_JITS", {})
    torch._dynamo.reset()
    counters.clear()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMVSR_COMPILE_CACHE", str(tmp_path))
    _fresh_process(monkeypatch)
    yield tmp_path
    torch._dynamo.reset()


def _inputs() -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 8, generator=g), {0: torch.randn(4, 8, generator=g)}


def test_saved_graph_loads_without_a_trace(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, mem = _inputs()
    net = _Net(0)
    with torch.inference_mode():
        ref = net.step(x, mem)
        a = DiskCompiled(_Net.step, net, "net", KW)
        out = a(x, mem)
    assert a.events == ["save"] and len(list(cache.glob("net-*.bin"))) == 1
    torch.testing.assert_close(out, ref)
    _fresh_process(monkeypatch)
    net = _Net(0)  # made outside inference mode, as the first (a guard checks the parameters' dispatch keys)
    with torch.inference_mode():
        b = DiskCompiled(_Net.step, net, "net", KW)
        again = b(x, mem)
        b(x, mem)
    assert b.events == ["load"]
    assert counters["stats"]["unique_graphs"] == 0  # Dynamo traced nothing
    torch.testing.assert_close(again, out, rtol=0, atol=0)


def test_owners_share_a_graph_with_their_own_weights(cache: Path) -> None:
    """One file serves two modules of one class: their parameters are inputs of the graph, not constants."""
    x, mem = _inputs()
    n0, n1 = _Net(0), _Net(1)
    with torch.inference_mode():
        a, b = DiskCompiled(_Net.step, n0, "net", KW), DiskCompiled(_Net.step, n1, "net", KW)
        out0, out1 = a(x, mem), b(x, mem)
        torch.testing.assert_close(out0, n0.step(x, mem))
        torch.testing.assert_close(out1, n1.step(x, mem))
    assert (a.events, b.events) == (["save"], ["shared"])


def test_a_changed_switch_or_shape_gets_its_own_graph(cache: Path) -> None:
    x, mem = _inputs()
    net = _Net(0)
    with torch.inference_mode():
        a = DiskCompiled(_Net.step, net, "net", KW)
        a(x, mem)
        before = module_fingerprint(net)
        net.double = True  # the saved function's guard on it fails: traced again, under another file name
        assert module_fingerprint(net) != before
        torch.testing.assert_close(a(x, mem), net.step(x, mem))
        a(x[:2], {0: mem[0][:2]})  # another input shape
    assert a.events == ["save", "save", "save"] and len(list(cache.glob("net-*.bin"))) == 3


def test_fallbacks_compile_in_memory(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk cache off, a backend that cannot be saved, CUDA graphs: torch.compile as usual, right results."""
    x, mem = _inputs()
    net = _Net(0)
    with torch.inference_mode():
        ref = net.step(x, mem)
        e = DiskCompiled(_Net.step, net, "net", {"dynamic": False, "backend": "eager"})
        torch.testing.assert_close(e(x, mem), ref)
        g = DiskCompiled(_Net.step, net, "net", {**KW, "mode": "reduce-overhead"})
        assert g._prepare((x, mem), [], ()).__class__.__name__ == "_Jit"
        monkeypatch.setenv("STREAMVSR_COMPILE_CACHE", "off")
        off = DiskCompiled(_Net.step, net, "net", KW)
        torch.testing.assert_close(off(x, mem), ref)
    assert e.events == ["jit: backend 'eager' is not saved"]
    assert g.events == ["jit: CUDA graphs are not saved"]
    assert off.events == ["jit: disk cache off"] and not list(cache.iterdir())


def test_a_file_that_does_not_load_is_not_captured_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A saved graph that does not load (here: torn) is marked failed: this and later processes compile in memory
    at once instead of capturing (and failing to load) again."""
    x, mem = _inputs()
    n0, n1 = _Net(0), _Net(0)
    with torch.inference_mode():
        DiskCompiled(_Net.step, n0, "net", KW)(x, mem)
        (path,) = cache.glob("net-*.bin")
        path.write_bytes(path.read_bytes()[:100])  # torn
        _fresh_process(monkeypatch)
        b = DiskCompiled(_Net.step, n1, "net", KW)
        torch.testing.assert_close(b(x, mem), n1.step(x, mem))
        _fresh_process(monkeypatch)
        monkeypatch.setattr(DiskCompiled, "_capture", lambda self, *a: pytest.fail("captured again"))
        c = DiskCompiled(_Net.step, n1, "net", KW)
        torch.testing.assert_close(c(x, mem), n1.step(x, mem))
    assert len(b.events) == 1 and b.events[0].startswith("jit: saved but does not load: ")
    assert c.events == b.events and path.with_suffix(".failed").is_file()


class _Breaks(_Net):
    def step(self, x: torch.Tensor, mem: dict[int, torch.Tensor]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        y = self.lin(x)
        torch._dynamo.graph_break()  # not one graph: no capture
        return y + mem[0], {0: y}


def test_a_failed_capture_is_not_tried_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, mem = _inputs()
    net = _Breaks(0)
    with torch.inference_mode():
        a = DiskCompiled(_Breaks.step, net, "brk", KW)
        torch.testing.assert_close(a(x, mem), net.step(x, mem))
        (marker,) = cache.glob("brk-*.failed")
        _fresh_process(monkeypatch)
        tried = []
        monkeypatch.setattr(DiskCompiled, "_capture", lambda self, *a: tried.append(1))
        b = DiskCompiled(_Breaks.step, net, "brk", KW)
        torch.testing.assert_close(b(x, mem), net.step(x, mem))
    assert a.events == b.events == [f"jit: {marker.read_text().strip()}"] and not tried
    assert not list(cache.glob("brk-*.bin"))


def test_pickles_as_a_placeholder(cache: Path) -> None:
    """Dynamo pickles an owner's state with its guards; the compiled attribute travels as its tag alone."""
    net = _Net(0)
    net.step = DiskCompiled(_Net.step, net, "net", KW)
    assert pickle.loads(pickle.dumps(net.step)) == "DiskCompiled(net)"


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")],
        ),
    ],
)
def test_compiled_upscaler_loads_every_graph(cache: Path, monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    """The tiny upscaler compiled (DiT blocks, TCDecoder, LQ projector): a second 'process' loads every graph
    (the blocks share theirs), traces none, and streams the same frames bit for bit; both match eager.

    float32 on both devices, TF32 off: the tiny random model is chaotic in bf16, where an input changed by 1e-3
    moved 1% of the output values by up to 0.5 in eager mode alone (CPU; the GPU run of this test in bf16 failed
    its eager comparison the same way, whichever single part was compiled), so bf16 could not tell a wrong graph
    from rounding."""
    if device == "cuda":
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)

    def run() -> tuple[torch.Tensor, FlashVSRUpscaler]:
        up = FlashVSRUpscaler.from_config(SIZES["tiny"], init_seed=0, device=device, dtype=torch.float32)
        dec = up.decoder  # the GPU path's decoder ops (their CPU references), as the CUDA pipeline switches them on
        dec.fused_conv_relu = dec.fused_memblocks = dec.out_by_taps = dec.subpixel_upsample = True
        x = torch.rand(33, 3, 32, 32, generator=torch.Generator().manual_seed(4)).to(device)
        with torch.inference_mode():
            up.reset()
            ref = torch.cat([up.push(x), up.flush()])
            compile_dit(up.dit), compile_decoder(up.decoder), compile_lq_proj(up.lq_proj)
            for _ in range(2):  # the decoder's first pass runs in its graph from the second stream on
                up.reset()
                out = torch.cat([up.push(x), up.flush()])
        tol = 1e-4 if device == "cpu" else 1e-3  # the GPU's fused kernels sum in another order
        torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
        return out, up

    def events(up: FlashVSRUpscaler) -> set[str]:
        parts = [b.__dict__[n] for b in up.dit.blocks for n in ("pre", "post")]
        for wrapper in (up.decoder.__dict__["_run"], up.lq_proj.__dict__["_steady"]):  # each closes over its own
            parts += [c.cell_contents for c in wrapper.__closure__ if isinstance(c.cell_contents, DiskCompiled)]
        assert len(parts) == 2 * len(up.dit.blocks) + 2
        return {e for p in parts for e in p.events}

    first, up1 = run()
    assert events(up1) == {"save", "shared"}
    _fresh_process(monkeypatch)
    second, up2 = run()
    assert events(up2) == {"load", "shared"}
    assert counters["stats"]["unique_graphs"] == 0
    torch.testing.assert_close(second, first, rtol=0, atol=0)


def test_flex_attention_kept_on_disk(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FlexAttention through the pipeline's hook (a function of the block lists): the first 'process' traces and
    saves, a second loads without a trace; both give the built-in compiled kernel's output. Two key lengths, two
    files. (The CPU's compiled FlexAttention has no ``return_lse``.)"""
    from streamvsr.models.flashvsr import attention as A
    from streamvsr.pipeline.flashvsr import keep_flex_on_disk

    monkeypatch.setattr(A, "_FLEX_COMPILER", None)
    monkeypatch.setattr(A, "_FLEX_RUNNERS", {})
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 2, 256, 32, generator=g)
    kv = [(torch.randn(1, 2, n, 32, generator=g), torch.randn(1, 2, n, 32, generator=g)) for n in (256, 384)]
    masks = [
        torch.tensor([[[True, False], [True, True]], [[False, True], [True, False]]])[None],  # (1, 2, 2, 2)
        torch.tensor([[[True, False, True], [False, True, True]], [[True, True, False], [False, False, True]]])[None],
    ]

    def attend() -> list[torch.Tensor]:
        return [
            A.flex_block_attention(q, k, v, None, compiled=True, lists=A.block_lists(bm))
            for (k, v), bm in zip(kv, masks, strict=True)
        ]

    with torch.inference_mode():
        ref = attend()  # the built-in compile (a BlockMask argument)
        keep_flex_on_disk(True)
        first = attend()
        (run,) = A._FLEX_RUNNERS.values()
        assert run.events == ["save", "save"]
        _fresh_process(monkeypatch)
        monkeypatch.setattr(A, "_FLEX_RUNNERS", {})
        second = attend()
        (run,) = A._FLEX_RUNNERS.values()
        assert run.events == ["load", "load"]
        assert counters["stats"]["unique_graphs"] == 0  # nothing traced
    for x, y, z in zip(ref, first, second, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(z, y, rtol=0, atol=0)
    assert len(list(cache.glob("flex-*.bin"))) == 2
    for name in ("_FLEX_OPTIONS", "_FLEX_MODE", "_FLEX_COMPILED"):
        monkeypatch.setattr(A, name, getattr(A, name))
    A.set_flex_options({"BLOCK_M": 64})  # new options: the runners are made again, with them
    assert not A._FLEX_RUNNERS
    keep_flex_on_disk(False)
    assert A.get_flex_compiler() is None
