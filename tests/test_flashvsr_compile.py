"""compile_dit: the DiT blocks' pre/post compiled in place give the eager output, share their graphs across
blocks, and undo restores the eager blocks (dynamo's eager backend: no C compiler, a few seconds)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from streamvsr.models.flashvsr.config import SIZES
from streamvsr.models.flashvsr.fp8 import convert_dit_linears_to_fp8
from streamvsr.pipeline import flashvsr as flashvsr_pipeline
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.flashvsr import FlashVSRUpscaler, compile_dit
from streamvsr.pipeline.flashvsr_weights import save_flashvsr
from streamvsr.pipeline.registry import load_model


def _stream(up: FlashVSRUpscaler, x: torch.Tensor) -> torch.Tensor:
    up.reset()
    e = Engine(up, device="cpu")
    return torch.cat([e.push(x[i : i + 8]) for i in range(0, x.shape[0], 8)] + [e.flush()])


def _clip(seed: int) -> torch.Tensor:
    return torch.rand(33, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _eager_then_compiled(up: FlashVSRUpscaler, x: torch.Tensor, compile_fn):  # noqa: ANN001, ANN202
    """Stream ``x`` eagerly, compile (dynamo counters reset), stream it again:
    (eager output, compiled output, graphs dynamo made, the compile handle)."""
    torch._dynamo.reset()
    counters.clear()
    with torch.inference_mode():
        ref = _stream(up, x)
        handle = compile_fn()
        out = _stream(up, x)
    return ref, out, counters["stats"]["unique_graphs"], handle


def test_compiled_blocks_match_eager_and_share_graphs() -> None:
    tiny = SIZES["tiny"]
    cfg = dataclasses.replace(tiny, dit=dataclasses.replace(tiny.dit, num_layers=5))
    up = FlashVSRUpscaler.from_config(cfg, init_seed=0)
    convert_dit_linears_to_fp8(up.dit, include=("ffn.0", "ffn.2"))  # FP8 and plain linears both go through
    x = _clip(1)
    ref, out, graphs, handle = _eager_then_compiled(up, x, lambda: compile_dit(up.dit, backend="eager"))
    assert all("pre" in b.__dict__ and "post" in b.__dict__ for b in up.dit.blocks)
    assert graphs == 4  # pre and post, each for the first call's and the steady calls' shapes, shared by 5 blocks
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    with torch.inference_mode():
        handle.undo()
        assert not any("pre" in b.__dict__ or "post" in b.__dict__ for b in up.dit.blocks)
        torch.testing.assert_close(_stream(up, x), ref, rtol=0, atol=0)
    torch._dynamo.reset()


def test_load_model_compile_option(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """``load_model("flashvsr", compile=True)`` (the CLI's --compile) compiles the loaded DiT, TCDecoder and LQ
    projector, and only then."""
    up = FlashVSRUpscaler.from_config(SIZES["tiny"], init_seed=0)
    save_flashvsr(tmp_path, SIZES["tiny"], {"dit": up.dit, "lq_proj": up.lq_proj, "decoder": up.decoder})
    seen = []
    monkeypatch.setattr(flashvsr_pipeline, "compile_dit", lambda dit, *a, **k: seen.append(dit))
    monkeypatch.setattr(flashvsr_pipeline, "compile_decoder", lambda dec, *a, **k: seen.append(dec))
    monkeypatch.setattr(flashvsr_pipeline, "compile_lq_proj", lambda proj, *a, **k: seen.append(proj))
    plain = load_model("flashvsr", weights=tmp_path)
    assert seen == []
    compiled = load_model("flashvsr", weights=tmp_path, compile=True)
    assert seen == [compiled.dit, compiled.decoder, compiled.lq_proj] and compiled.dit is not plain.dit


def test_load_model_fp8_option(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """``load_model("flashvsr", fp8=True)`` (the CLI's --fp8): refused off Hopper and outside bf16 with one
    clear error; where the FP8 GEMM runs, the DiT's eight block linears are FP8Linear before compilation, the
    FFN's GELU fused into ffn.2's quantisation."""
    from streamvsr.errors import ModelError
    from streamvsr.models.flashvsr import fp8 as fp8_mod
    from streamvsr.models.flashvsr.fp8 import DEFAULT_INCLUDE, FP8Linear

    up = FlashVSRUpscaler.from_config(SIZES["tiny"], init_seed=0)
    save_flashvsr(tmp_path, SIZES["tiny"], {"dit": up.dit, "lq_proj": up.lq_proj, "decoder": up.decoder})
    with pytest.raises(ModelError, match="compute capability 9.0"):
        load_model("flashvsr", weights=tmp_path, fp8=True)
    monkeypatch.setattr(fp8_mod, "fp8_gemm_device", lambda device: True)  # pretend a Hopper GPU
    with pytest.raises(ModelError, match="bfloat16, not float32"):
        load_model("flashvsr", weights=tmp_path, dtype=torch.float32, fp8=True)
    seen = []
    monkeypatch.setattr(flashvsr_pipeline, "compile_dit", lambda dit, *a, **k: seen.append(dit.blocks[0].ffn[0]))
    m = load_model("flashvsr", weights=tmp_path, dtype=torch.bfloat16, fp8=True, compile=True)
    kinds = {n: type(mod) for n, mod in m.dit.blocks[0].named_modules() if n in DEFAULT_INCLUDE + ("ffn.1",)}
    assert {n for n, t in kinds.items() if t is FP8Linear} == set(DEFAULT_INCLUDE)
    assert kinds["ffn.1"] is torch.nn.Identity and m.dit.blocks[0].ffn[2].pre_gelu  # the GELU moved into ffn.2
    assert len(seen) == 1 and isinstance(seen[0], FP8Linear)  # converted before compile_dit saw the DiT


@pytest.mark.parametrize(
    ("compile_name", "module", "method", "wrong", "seed"),
    [
        # the TCDecoder's layer stack: a stream's first pass (zero memories) and the later passes share a graph
        ("compile_decoder", "decoder", "_run", "dit", 2),
        # the LQ projector's later calls: one clip each, the flush's too
        ("compile_lq_proj", "lq_proj", "_steady", "decoder", 3),
    ],
)
def test_compiled_part_matches_eager(compile_name: str, module: str, method: str, wrong: str, seed: int) -> None:
    """compile_decoder / compile_lq_proj: the compiled part (one graph) streams the same frames, a second stream
    too (the decoder's first pass then runs in that graph); undo restores it; another module is refused."""
    from streamvsr.errors import ModelError

    compile_fn = getattr(flashvsr_pipeline, compile_name)
    up = FlashVSRUpscaler.from_config(SIZES["tiny"], init_seed=0)
    part = getattr(up, module)
    x = _clip(seed)
    ref, out, graphs, handle = _eager_then_compiled(up, x, lambda: compile_fn(part, backend="eager"))
    assert graphs == 1
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    with torch.inference_mode():
        again = _stream(up, x)
    assert counters["stats"]["unique_graphs"] == 1
    torch.testing.assert_close(again, ref, rtol=0, atol=0)
    handle.undo()
    assert method not in part.__dict__
    with pytest.raises(ModelError):
        compile_fn(getattr(up, wrong))
    torch._dynamo.reset()


def test_cuda_graph_mode_copies_every_output_out() -> None:
    """mode="reduce-overhead" (CUDA graphs, whose next replay overwrites their outputs): every output of the
    compiled DiT parts and decoder is cloned on return, nested ones too, and the stream stays exact. On the CPU
    the graphs themselves do not apply, so this pins the copying and the results."""
    from streamvsr.pipeline.flashvsr import _compiled, compile_decoder

    kept = {}

    def f(x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        kept["x"] = x
        return x, {"m": x, "n": 3}

    out, mem = _compiled(f, "reduce-overhead", {"backend": "eager"})(torch.ones(3))
    assert out.data_ptr() != kept["x"].data_ptr() and mem["m"].data_ptr() != kept["x"].data_ptr()
    assert mem["n"] == 3 and torch.equal(out, torch.ones(3))
    out, _ = _compiled(f, None, {"backend": "eager"})(torch.ones(3))
    assert out.data_ptr() == kept["x"].data_ptr()  # other modes return what the graph returns

    up = FlashVSRUpscaler.from_config(SIZES["tiny"], init_seed=0)
    x = _clip(3)

    def both() -> None:
        compile_dit(up.dit, mode="reduce-overhead", backend="eager")
        compile_decoder(up.decoder, mode="reduce-overhead", backend="eager")

    ref, out, _, _ = _eager_then_compiled(up, x, both)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch._dynamo.reset()
