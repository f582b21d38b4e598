"""RAFT: torchvision raft_large key names/shapes, the on-demand correlation, convex upsampling, parity (GPU)."""

from __future__ import annotations

import pytest
import torch

from streamvsr.models.raft import (
    RAFT,
    RAFT_LARGE,
    RAFT_TINY,
    CorrBlock,
    config_from_state_dict,
    convex_upsample,
    coords_grid,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


def expected_raft_large() -> dict[str, tuple[int, ...]]:
    """torchvision ``raft_large`` state dict (key -> shape), written out from its architecture."""
    keys: dict[str, tuple[int, ...]] = {}

    def conv(p: str, cin: int, cout: int, k: tuple[int, int]) -> None:
        keys[f"{p}.weight"] = (cout, cin, *k)
        keys[f"{p}.bias"] = (cout,)

    def bn(p: str, c: int) -> None:
        for n in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{p}.{n}"] = (c,)
        keys[f"{p}.num_batches_tracked"] = ()

    layers = (64, 64, 96, 128, 256)
    for enc, batch in (("feature_encoder", False), ("context_encoder", True)):
        conv(f"{enc}.convnormrelu.0", 3, 64, (7, 7))
        if batch:
            bn(f"{enc}.convnormrelu.1", 64)
        for stage, stride in zip((1, 2, 3), (1, 2, 2)):
            cin, cout = layers[stage - 1], layers[stage]
            for b in (0, 1):
                p = f"{enc}.layer{stage}.{b}"
                conv(f"{p}.convnormrelu1.0", cin if b == 0 else cout, cout, (3, 3))
                conv(f"{p}.convnormrelu2.0", cout, cout, (3, 3))
                if batch:
                    bn(f"{p}.convnormrelu1.1", cout)
                    bn(f"{p}.convnormrelu2.1", cout)
                if b == 0 and stride == 2:
                    conv(f"{p}.downsample.0", cin, cout, (1, 1))
                    if batch:
                        bn(f"{p}.downsample.1", cout)
        conv(f"{enc}.conv", 128, 256, (1, 1))
    me = "update_block.motion_encoder"
    conv(f"{me}.convcorr1.0", 4 * 81, 256, (1, 1))
    conv(f"{me}.convcorr2.0", 256, 192, (3, 3))
    conv(f"{me}.convflow1.0", 2, 128, (7, 7))
    conv(f"{me}.convflow2.0", 128, 64, (3, 3))
    conv(f"{me}.conv.0", 192 + 64, 126, (3, 3))
    for gru, k in (("convgru1", (1, 5)), ("convgru2", (5, 1))):
        for g in ("convz", "convr", "convq"):
            conv(f"update_block.recurrent_block.{gru}.{g}", 128 + 128 + 128, 128, k)
    conv("update_block.flow_head.conv1", 128, 256, (3, 3))
    conv("update_block.flow_head.conv2", 256, 2, (3, 3))
    conv("mask_predictor.convrelu.0", 128, 256, (3, 3))
    conv("mask_predictor.conv", 256, 8 * 8 * 9, (1, 1))
    return keys


def test_state_dict_matches_torchvision_raft_large() -> None:
    with torch.device("meta"):
        model = RAFT(RAFT_LARGE)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = expected_raft_large()
    assert sorted(got) == sorted(want)
    assert {k: got[k] for k in want} == want
    # torchvision documents raft_large as 5,257,536 parameters
    assert sum(p.numel() for p in model.parameters()) == 5_257_536


def test_config_round_trips_through_shapes() -> None:
    for cfg, levels in ((RAFT_LARGE, 4), (RAFT_TINY, 2)):
        with torch.device("meta"):
            sd = RAFT(cfg).state_dict()
        assert config_from_state_dict(sd, levels) == cfg


def test_on_demand_correlation_equals_all_pairs() -> None:
    torch.manual_seed(0)
    block = CorrBlock(levels=3, radius=2)
    f1, f2 = torch.randn(2, 2, 12, 10, 16).unbind(0)  # (B, C, h, w) each
    coords = coords_grid(2, 10, 16, torch.device("cpu")) + torch.randn(2, 2, 10, 16) * 3
    a = block.lookup(block.build(f1, f2), coords)
    b = block.lookup_on_demand(f1, block.pool_features(f2), coords, chunk=37)
    assert a.shape == (2, 3 * 25, 10, 16)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_all_pairs_lookup_at_integer_offsets_is_a_dot_product() -> None:
    """Channel i*K+j of level 0 is <f1(p), f2(p + (d_i, d_j))> / sqrt(C) (x offset first)."""
    torch.manual_seed(1)
    block = CorrBlock(levels=1, radius=1)
    f1, f2 = torch.randn(2, 1, 4, 6, 7).unbind(0)
    corr = block.lookup(block.build(f1, f2), coords_grid(1, 6, 7, torch.device("cpu")))  # (1, 9, 6, 7)
    y, x = 3, 2
    for i, dx in enumerate((-1, 0, 1)):
        for j, dy in enumerate((-1, 0, 1)):
            want = (f1[0, :, y, x] * f2[0, :, y + dy, x + dx]).sum() / 2.0
            torch.testing.assert_close(corr[0, i * 3 + j, y, x], want)


def test_forward_modes_agree_and_shapes() -> None:
    torch.manual_seed(2)
    model = RAFT(RAFT_TINY).eval()
    a, b = torch.rand(2, 1, 3, 40, 48).mul(2).sub(1).unbind(0)
    with torch.no_grad():
        model.corr_mode = "all-pairs"
        preds = model(a, b, num_flow_updates=3, all_predictions=True)
        model.corr_mode = "on-demand"
        last = model(a, b, num_flow_updates=3)
    assert len(preds) == 3 and preds[-1].shape == (1, 2, 40, 48)
    torch.testing.assert_close(last, preds[-1], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(a[..., :44], b[..., :44])
    with pytest.raises(ValueError, match="too small"):
        model(a[..., :16, :16], b[..., :16, :16])


def test_convex_upsample_keeps_constant_flow_inside() -> None:
    flow = torch.tensor([1.5, -2.0]).view(1, 2, 1, 1).expand(1, 2, 5, 6).contiguous()
    up = convex_upsample(flow, torch.randn(1, 576, 5, 6))
    assert up.shape == (1, 2, 40, 48)
    inner = up[..., 8:-8, 8:-8]
    torch.testing.assert_close(inner[:, 0], torch.full_like(inner[:, 0], 12.0))
    torch.testing.assert_close(inner[:, 1], torch.full_like(inner[:, 1], -16.0))


def _randomise(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = v
        elif k.endswith("running_var"):
            sd[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(v.shape, generator=g) * (0.5 / max(1, v[0].numel()) ** 0.5 if v.ndim > 1 else 0.1)
    return sd


@pytest.mark.gpu
def test_parity_with_torchvision_raft_large() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    tv = pytest.importorskip("torchvision.models.optical_flow")
    ref = tv.raft_large(weights=None).cuda().eval()
    sd = _randomise(ref, 0)
    ref.load_state_dict(sd)
    ours = RAFT(RAFT_LARGE).cuda().eval()
    ours.load_state_dict(sd, strict=True)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.rand(2, 3, 128, 160, device="cuda", generator=g) * 2 - 1
    b = torch.roll(a, shifts=(3, -2), dims=(2, 3)) + 0.05 * torch.randn(a.shape, device="cuda", generator=g)
    with torch.no_grad():
        want = ref(a, b, num_flow_updates=12)
        got = ours(a, b, num_flow_updates=12, all_predictions=True)
        ours.corr_mode = "on-demand"
        got_od = ours(a, b, num_flow_updates=12)
    assert len(got) == len(want) == 12
    for w, o in zip(want, got):
        torch.testing.assert_close(o, w, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(got_od, want[-1], atol=1e-3, rtol=1e-3)
