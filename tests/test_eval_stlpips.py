"""eval.stlpips: our AlexNet ST-LPIPS against the stlpips-pytorch wheel's own network."""

from __future__ import annotations

import importlib
import sys
import types

import pytest
import torch
import torch.nn.functional as F

from streamvsr.errors import ModelError
from streamvsr.eval import stlpips as S


def _weights_or_skip():
    try:
        return S.weights_path()
    except ModelError:
        pytest.skip("stlpips-pytorch is not installed")


@pytest.fixture(scope="module")
def metric() -> S.STLPIPS:
    _weights_or_skip()
    return S.load_stlpips()


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = F.avg_pool2d(torch.rand(2, 3, 72, 80, generator=g), 3, 1, 1)  # some structure, not pure noise
    b = (a + 0.08 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    return a, b


def test_identical_images_score_zero(metric: S.STLPIPS):
    a, _ = _images()
    d = metric(a, a)
    assert d.shape == (2,)
    torch.testing.assert_close(d, torch.zeros(2), atol=1e-7, rtol=0)


def test_shift_tolerance(metric: S.STLPIPS):
    a, _ = _images(1)
    shifted = torch.roll(a, 1, dims=-1)
    blurred = F.avg_pool2d(a, 5, 1, 2)
    assert (metric(a, shifted) < metric(a, blurred)).all()


def test_matches_the_wheel_network(monkeypatch: pytest.MonkeyPatch, metric: S.STLPIPS):
    # The wheel imports torchvision, IPython and torchsummary at module level without needing them
    # for the AlexNet shift-tolerant variant: stand-ins let us import it and compare outputs.
    for name in ("torchvision", "IPython", "torchsummary"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["torchvision"].models = types.SimpleNamespace()  # type: ignore[attr-defined]
    sys.modules["IPython"].embed = lambda *a, **k: None  # type: ignore[attr-defined]
    sys.modules["torchsummary"].summary = lambda *a, **k: None  # type: ignore[attr-defined]
    for mod in [m for m in sys.modules if m.startswith("stlpips_pytorch")]:
        monkeypatch.delitem(sys.modules, mod)
    try:
        wheel = importlib.import_module("stlpips_pytorch.stlpips")
        ref = wheel.LPIPS(net="alex", variant="shift_tolerant", verbose=False)
    except Exception as e:  # noqa: BLE001 - any incompatibility of the third-party code
        pytest.skip(f"cannot build the wheel's reference network: {e}")
    a, b = _images(2)
    with torch.no_grad():
        expected = ref(2 * a - 1, 2 * b - 1).flatten()
        got = metric(a, b)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_missing_trunk_weights_raise_a_clear_error():
    sd = torch.load(_weights_or_skip(), map_location="cpu", weights_only=True)
    del sd["net.slice1.0.weight"]
    with pytest.raises(ModelError, match="trunk"):
        S.convert_state_dict(sd)
