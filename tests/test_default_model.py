"""The embedded default model: shipped inside the package, loaded with no download, and better than bicubic on
real footage (the bundled sample clip, BI x4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamvsr.eval.runner import evaluate_many
from streamvsr.models.flashvsr.config import FlashVSRConfig
from streamvsr.pipeline.flashvsr import FlashVSRUpscaler
from streamvsr.pipeline.registry import DEFAULT_MODEL, EMBEDDED_WEIGHTS, load_model, model_family

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FOLDER = EMBEDDED_WEIGHTS / "flashvsr-fast"
SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "sample.mp4"
MIB = 2**20


def test_the_weights_are_in_the_package_within_the_size_limits() -> None:
    names = {p.name for p in FOLDER.iterdir()}
    assert {"config.json", "dit.safetensors", "lq_proj.safetensors", "decoder.safetensors"} <= names
    sizes = [p.stat().st_size for p in FOLDER.glob("*.safetensors")]
    assert max(sizes) <= 16 * MIB and sum(sizes) <= 48 * MIB
    FlashVSRConfig.from_dict(json.loads((FOLDER / "config.json").read_text()))  # a valid config of ours


def test_the_default_is_the_embedded_flashvsr_model() -> None:
    assert DEFAULT_MODEL == "flashvsr-fast" and model_family(None) == "flashvsr"
    m = load_model()  # no name, no weights folder: nothing downloaded, nothing else needed
    assert isinstance(m, FlashVSRUpscaler) and m.spec.scale == 4
    assert m.cfg.dit.learned_context  # ours, not an official folder


def test_better_than_bicubic_on_the_sample_clip(tmp_path: Path) -> None:
    """BI x4 of the first 17 frames of the bundled clip (real footage, 320x180): the shipped weights beat bicubic
    in Y-PSNR (random or broken weights are far below it)."""
    res = evaluate_many(["flashvsr-fast", "bicubic"], SAMPLE, max_frames=17, metrics=["psnr_y"], layout="videos")
    ours, bicubic = (r["mean"]["psnr_y"] for r in res)
    assert ours > bicubic + 0.2, (ours, bicubic)


def test_cli_upscales_with_the_default_model(tmp_path: Path) -> None:
    from streamvsr.media.synth import make_clip

    clip = make_clip(tmp_path / "in.mp4", frames=9, width=40, height=30, audio=True)
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "streamvsr.cli.main", "upscale", str(clip), "-o", str(out), "--progress", "json"]
    r = subprocess.run(cmd, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    import av

    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (160, 120) and c.streams.audio
        assert sum(1 for _ in c.decode(video=0)) == 9
