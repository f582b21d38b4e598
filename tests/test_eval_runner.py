"""eval.data / eval.runner / eval.report / eval.bench and the eval CLI commands, on tiny synthetic data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from streamvsr.errors import InputError, ModelError
from streamvsr.eval import data as D
from streamvsr.eval.bench import benchmark, format_table
from streamvsr.eval.runner import METRICS, evaluate, evaluate_many
from streamvsr.ops.resize import imresize_matlab
from streamvsr.pipeline.frame_model import FrameModel
from streamvsr.pipeline.protocol import ModelSpec

H, W = 100, 120


def _scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    big = ndimage.gaussian_filter(rng.normal(size=(H + 40, W + 40, 3)), sigma=(3, 3, 0))
    big = (big - big.min()) / (big.max() - big.min())
    return np.round(255 * big).astype(np.uint8)


def _clip(seed: int, n: int) -> list[np.ndarray]:
    s = _scene(seed)
    return [np.ascontiguousarray(s[10 : 10 + H, 5 + 2 * t : 5 + 2 * t + W]) for t in range(n)]


@pytest.fixture(scope="module")
def seq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seqs")
    for k, name in enumerate(["clip_b", "clip_a"]):
        d = root / name
        d.mkdir()
        for t, f in enumerate(_clip(k, 3)):
            Image.fromarray(f).save(d / f"{t + 1}.png")  # natural sort: 1, 2, 3 (not 1, 10, 2)
    return root


def matlab_bicubic() -> FrameModel:
    return FrameModel(lambda x: imresize_matlab(x.double(), scale=4).float(), ModelSpec("matlab-bicubic", 4))


class Delayed:
    """Per-frame bicubic with one frame of look-ahead (outputs lag the inputs by one)."""

    def __init__(self) -> None:
        self.spec = ModelSpec("delayed", 4, latency=1)
        self.reset()

    def reset(self) -> None:
        self.pending: list[torch.Tensor] = []

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return imresize_matlab(x.double(), scale=4).float().clamp(0, 1)

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        self.pending += list(frames)
        ready, self.pending = self.pending[:-1], self.pending[-1:]
        return self._up(torch.stack(ready)) if ready else torch.empty(0, 3, 0, 0)

    def flush(self) -> torch.Tensor:
        out = self._up(torch.stack(self.pending)) if self.pending else torch.empty(0, 3, 0, 0)
        self.pending = []
        return out


FAST = ["psnr_y", "ssim_y", "psnr_rgb", "tof", "warp_error", "niqe", "color_drift"]

# ---- data ----


def test_layouts(tmp_path: Path, seq_dir: Path):
    seqs = D.find_sequences(seq_dir)
    assert [s.name for s in seqs] == ["clip_a", "clip_b"]
    assert [p.name for p in seqs[0].images] == ["1.png", "2.png", "3.png"]
    frames_layout = D.find_sequences(seq_dir / "clip_a", layout="frames")
    assert len(frames_layout) == 1 and len(frames_layout[0].images) == 3
    # a folder of images is one 1-frame sequence per image
    img_layout = D.find_sequences(seq_dir / "clip_a")
    assert [s.name for s in img_layout] == ["1", "2", "3"]
    with pytest.raises(InputError):
        D.find_sequences(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError):
        D.find_sequences(tmp_path / "empty")


def test_video_layout(tmp_path: Path):
    import av

    vids = tmp_path / "vids"
    vids.mkdir()
    with av.open(str(vids / "v.mp4"), "w") as c:
        st = c.add_stream("libx264", rate=10, options={"crf": "10"})
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        for f in _clip(3, 4):
            for p in st.encode(av.VideoFrame.from_ndarray(f[:48, :64].copy(), format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    seqs = D.find_sequences(vids)
    assert [s.name for s in seqs] == ["v"]
    frames = seqs[0].frames(max_frames=3)
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert not seqs[0].is_gray()


def test_bi_and_bd_degradations():
    f = _clip(4, 1)[0][:98, :118]  # not multiples of 4
    gt, lq = D.degrade([f], "bi", 4)
    assert gt[0].shape == (96, 116, 3) and lq[0].shape == (24, 29, 3) and lq[0].dtype == np.uint8
    ref = imresize_matlab(torch.from_numpy(gt[0].astype(np.float64)).permute(2, 0, 1), scale=0.25)
    np.testing.assert_array_equal(lq[0], np.clip(np.round(ref.permute(1, 2, 0).numpy()), 0, 255))
    gt, lq = D.degrade([f], "bd", 4)
    g = np.exp(-((np.arange(13) - 6) ** 2) / (2 * 1.6**2))
    k = np.outer(g, g) / np.outer(g, g).sum()
    blurred = np.stack([ndimage.correlate(gt[0][..., c].astype(np.float64), k, mode="mirror") for c in range(3)], -1)
    np.testing.assert_array_equal(lq[0], np.clip(np.round(blurred[::4, ::4]), 0, 255))
    gt, lq = D.degrade([f], "none", 4)
    assert gt is None and lq[0] is f
    with pytest.raises(InputError):
        D.degrade([f], "jpeg", 4)


def test_real_degradation_shape():
    pytest.importorskip("streamvsr.train.degradations")
    frames = _clip(5, 2)
    gt, lq = D.degrade([f[:64, :64] for f in frames], "real", 4, seed=1)
    assert len(lq) == 2 and lq[0].shape == (16, 16, 3) and lq[0].dtype == np.uint8


# ---- runner ----


def test_evaluate_schema_and_plumbing(seq_dir: Path):
    res = evaluate(matlab_bicubic, seq_dir, "bi", metrics=FAST)
    assert res["model"] == "matlab-bicubic" and res["degradation"] == "bi" and res["frames"] == 6
    assert set(res["mean"]) == set(METRICS)
    assert set(res["sequences"]) == {"clip_a", "clip_b"}
    for s in res["sequences"].values():
        assert set(s) == set(METRICS)
        assert 20 < s["psnr_y"] < 60 and 0 < s["ssim_y"] <= 1
        # the model IS the colour-drift reference (MATLAB bicubic of the input): no drift at all
        assert s["color_drift"] == pytest.approx(0.0, abs=1e-3)  # up to a rare rounding tie
        assert s["tof"] is not None and s["warp_error"] is not None and s["niqe"] is not None
        assert s["st_lpips"] is None  # not asked for
    seq_mean = np.mean([s["psnr_y"] for s in res["sequences"].values()])
    assert res["mean"]["psnr_y"] == pytest.approx(seq_mean)
    assert res["mean"]["fps"] > 0


def test_latency_does_not_misalign_frames(seq_dir: Path):
    a = evaluate(matlab_bicubic, seq_dir, "bi", metrics=["psnr_y"])
    b = evaluate(Delayed, seq_dir, "bi", metrics=["psnr_y"])
    for name in a["sequences"]:
        assert b["sequences"][name]["psnr_y"] == pytest.approx(a["sequences"][name]["psnr_y"])


def test_no_gt_metrics(seq_dir: Path):
    res = evaluate(matlab_bicubic, seq_dir / "clip_a", "none", metrics=FAST, layout="frames")
    m = res["mean"]
    assert m["psnr_y"] is None and m["ssim_y"] is None and m["tof"] is None and m["st_lpips"] is None
    assert m["warp_error"] is not None and m["color_drift"] == pytest.approx(0.0, abs=1e-3)  # up to a rare rounding tie
    assert m["niqe"] is not None  # 400x480 outputs


def test_evaluate_many_with_report_and_st_lpips(tmp_path: Path, seq_dir: Path):
    from streamvsr.eval.stlpips import weights_path

    try:
        weights_path()
        metrics = [*FAST, "st_lpips"]
    except ModelError:
        metrics = FAST
    results = evaluate_many(
        [("matlab-bicubic", matlab_bicubic), "bicubic"], seq_dir, "bd", max_frames=2, report_dir=tmp_path / "rep",
        metrics=metrics,
    )  # fmt: skip
    assert [r["model"] for r in results] == ["matlab-bicubic", "bicubic"]
    assert all(r["frames"] == 4 for r in results)
    if "st_lpips" in metrics:
        assert all(0 < r["mean"]["st_lpips"] < 1 for r in results)
    rep = tmp_path / "rep"
    md = (rep / "results.md").read_text()
    assert "matlab-bicubic" in md and "| bicubic |" in md
    assert json.loads((rep / "results.json").read_text())[1]["model"] == "bicubic"
    for name in ("results.png", "montage_clip_a.png", "montage_clip_b.png"):
        assert (rep / name).stat().st_size > 0
    mont = np.array(Image.open(rep / "montage_clip_a.png"))
    assert mont.shape[1] > 3 * mont.shape[0]  # input, 2 models and GT side by side


def test_errors(seq_dir: Path):
    with pytest.raises(InputError):
        evaluate(matlab_bicubic, seq_dir, "jpeg")
    with pytest.raises(InputError):
        evaluate(matlab_bicubic, seq_dir, "bi", metrics=["psnr", "vmaf"])
    with pytest.raises(ModelError):
        evaluate(matlab_bicubic, seq_dir, "bi", scale=2)


def test_json_has_no_infinities(tmp_path: Path):
    from streamvsr.eval.report import write_json

    write_json({"psnr": math.inf, "x": [1.0, math.nan]}, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {"psnr": None, "x": [1.0, None]}


# ---- bench ----


def test_benchmark_latency_and_counts():
    res = benchmark(Delayed(), 12, 10, frames=5, warmup=1)
    assert res.frames == 5 and res.scale == 4 and res.latency_frames == 1
    assert res.fps > 0 and res.peak_rss_mb > 0 and res.peak_cuda_mb is None
    assert 0 < res.latency_ms_p50 <= res.latency_ms_p95 <= res.latency_ms_max
    assert "delayed" in format_table([res])
    with pytest.raises(ValueError):
        benchmark(Delayed(), 12, 10, frames=0)


# ---- CLI ----


def test_cli_eval_and_bench(tmp_path: Path, seq_dir: Path):
    from click.testing import CliRunner

    from streamvsr.cli.eval_cmds import bench_cmd, eval_cmd

    runner = CliRunner()
    out = tmp_path / "r.json"
    r = runner.invoke(
        eval_cmd,
        [
            "--model",
            "bicubic",
            "--data",
            str(seq_dir),
            "--max-frames",
            "2",
            "--metrics",
            "psnr_y,ssim_y",
            "--json",
            str(out),
            "--device",
            "cpu",
        ],  # fmt: skip
    )
    assert r.exit_code == 0, r.output
    assert "psnr_y" in r.output
    data = json.loads(out.read_text())
    assert data["model"] == "bicubic" and data["mean"]["psnr_y"] > 20 and data["mean"]["niqe"] is None
    bj = tmp_path / "b.json"
    r = runner.invoke(bench_cmd, ["--model", "bicubic", "--size", "16x12", "--frames", "3", "--device", "cpu",
                                  "--json", str(bj)])  # fmt: skip
    assert r.exit_code == 0, r.output
    b = json.loads(bj.read_text())
    assert b["width"] == 16 and b["height"] == 12 and b["frames"] == 3
    r = runner.invoke(bench_cmd, ["--model", "bicubic", "--size", "16by12"])
    assert r.exit_code != 0
    r = runner.invoke(bench_cmd, ["--model", "bicubic", "--size", "16x12", "--pad-to", "tokens"])
    assert r.exit_code != 0 and "--pad-to applies to --model flashvsr" in str(r.exception or r.output)


# ---- several entries of one model (e.g. two checkpoints) ----


def test_model_labels():
    from streamvsr.eval.runner import model_labels

    assert model_labels(["bicubic", "lanczos"]) == ["bicubic", "lanczos"]
    assert model_labels(["flashvsr", "flashvsr", "bicubic"], ["runs/a", "runs/b/", None]) == [
        "flashvsr@a", "flashvsr@b", "bicubic"
    ]  # fmt: skip
    assert model_labels(["flashvsr", "flashvsr", "flashvsr"], ["r/x/ckpt", "r/y/ckpt", "z/ckpt"]) == [
        "flashvsr@x/ckpt",
        "flashvsr@y/ckpt",
        "flashvsr@z/ckpt",
    ]  # fmt: skip  (as many path parts as tell them apart)
    assert model_labels(["flashvsr", "flashvsr"], ["a/ckpt", "a/ckpt"]) == ["flashvsr@ckpt", "flashvsr@ckpt#2"]
    assert model_labels(["flashvsr", "stream-diffvsr"], ["a/ckpt", "b/ckpt"]) == ["flashvsr", "stream-diffvsr"]
    assert model_labels(["bicubic", "bicubic"]) == ["bicubic", "bicubic#2"]


def test_model_args_forms():
    from streamvsr.cli.eval_cmds import _model_args

    assert _model_args(("flashvsr=runs/a", "bicubic", "flashvsr = runs/b"), ()) == (
        ["flashvsr", "bicubic", "flashvsr"], ["runs/a", None, "runs/b"]
    )  # fmt: skip
    # the older positional --weights; "" skips a model
    assert _model_args(("flashvsr", "bicubic"), ("w",)) == (["flashvsr", "bicubic"], ["w", None])
    assert _model_args(("bicubic", "flashvsr"), ("", "w")) == (["bicubic", "flashvsr"], [None, "w"])
    for models, weights in [(("flashvsr=a", "bicubic"), ("b",)), (("flashvsr=",), ()), (("=a",), ()),
                            (("bicubic",), ("a", "b"))]:  # fmt: skip
        with pytest.raises(InputError):
            _model_args(models, weights)


def test_evaluate_many_same_model_twice(seq_dir: Path):
    results = evaluate_many(["bicubic", "bicubic"], seq_dir, "bi", max_frames=1, metrics=["psnr_y"])
    assert [r["model"] for r in results] == ["bicubic", "bicubic#2"]
    assert [(r["model_name"], r["weights"]) for r in results] == [("bicubic", None), ("bicubic", None)]
    assert results[0]["sequences"]["clip_a"]["psnr_y"] == results[1]["sequences"]["clip_a"]["psnr_y"]


@pytest.fixture(scope="module")
def tiny_flashvsr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny official-layout FlashVSR folders with different weights and the same basename."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_tiny_official", Path(__file__).resolve().parents[1] / "scripts" / "make_tiny_official.py"
    )
    assert spec is not None and spec.loader is not None
    mto = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mto)
    root = tmp_path_factory.mktemp("fv")
    return mto.write_tiny_official(root / "a" / "ckpt", seed=0), mto.write_tiny_official(root / "b" / "ckpt", seed=1)


@pytest.fixture(scope="module")
def small_seq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small")
    (root / "clip").mkdir()
    for t, f in enumerate(_clip(3, 2)):
        Image.fromarray(np.ascontiguousarray(f[:32, :32])).save(root / "clip" / f"{t + 1}.png")
    return root


def _cli(*args: str):
    from click.testing import CliRunner

    from streamvsr.cli.main import cli

    return CliRunner().invoke(cli, ["eval", *args, "--metrics", "psnr_y", "--device", "cpu"])


@pytest.mark.usefixtures("one_torch_thread")  # tiny FlashVSR: many times faster on a busy CPU
def test_cli_eval_two_checkpoints_of_one_model(tmp_path: Path, small_seq: Path, tiny_flashvsr: tuple[Path, Path]):
    a, b = tiny_flashvsr
    out, rep = tmp_path / "r.json", tmp_path / "rep"
    r = _cli("--model", f"flashvsr={a}", "--model", f"flashvsr={b}", "--model", "bicubic", "--data", str(small_seq),
             "--json", str(out), "--report", str(rep))  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert rows == [f"flashvsr@{a.parent.name}/ckpt", f"flashvsr@{b.parent.name}/ckpt", "bicubic"]
    data = json.loads(out.read_text())
    assert [d["model"] for d in data] == rows
    assert [(d["model_name"], d["weights"]) for d in data] == [
        ("flashvsr", str(a.resolve())), ("flashvsr", str(b.resolve())), ("bicubic", None)
    ]  # fmt: skip
    assert data[0]["mean"]["psnr_y"] != data[1]["mean"]["psnr_y"]  # each entry ran its own weights
    md = (rep / "results.md").read_text()
    assert f"| {rows[1]} | flashvsr | {b.resolve()} |" in md
    assert [d["model"] for d in json.loads((rep / "results.json").read_text())] == rows


@pytest.mark.usefixtures("one_torch_thread")  # tiny FlashVSR: many times faster on a busy CPU
def test_cli_eval_positional_weights_still_work(tmp_path: Path, small_seq: Path, tiny_flashvsr: tuple[Path, Path]):
    out = tmp_path / "r.json"
    r = _cli("--model", "flashvsr", "--model", "bicubic", "--weights", str(tiny_flashvsr[0]), "--data",
             str(small_seq), "--json", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert [(d["model"], d["weights"]) for d in data] == [("flashvsr", str(tiny_flashvsr[0].resolve())),
                                                          ("bicubic", None)]  # fmt: skip


def test_cli_eval_weights_errors(small_seq: Path, tiny_flashvsr: tuple[Path, Path]):
    w = str(tiny_flashvsr[0])
    cases = [
        (["--model", f"flashvsr={w}", "--model", "bicubic", "--weights", w], "not both"),
        (["--model", f"bicubic={w}"], "'bicubic' takes no weights"),
        (["--model", "bicubic", "--model", "flashvsr", "--weights", w], "'bicubic' takes no weights"),  # by position
        (["--model", "flashvsr", "--model", "bicubic"], "'flashvsr' needs --weights"),
        (["--model", "flashvsr="], "NAME=WEIGHTS_DIR"),
    ]
    for args, message in cases:
        r = _cli(*args, "--data", str(small_seq))
        assert r.exit_code != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("streamvsr: error:") and message in lines[0], r.stderr


@pytest.mark.usefixtures("one_torch_thread")  # tiny FlashVSR: many times faster on a busy CPU
def test_cli_eval_detail_reaches_flashvsr_and_is_recorded(tmp_path: Path, small_seq: Path, tiny_flashvsr):
    a = tiny_flashvsr[0]
    psnr = {}
    for detail in ("1", "0"):
        out = tmp_path / f"r{detail}.json"
        r = _cli("--model", f"flashvsr={a}", "--model", "bicubic", "--data", str(small_seq), "--detail", detail,
                 "--json", str(out))  # fmt: skip
        assert r.exit_code == 0, r.output
        data = json.loads(out.read_text())
        assert [d["options"] for d in data] == [{"detail": float(detail)}, {}]  # only FlashVSR takes it
        psnr[detail] = [d["mean"]["psnr_y"] for d in data]
    assert psnr["0"][0] != psnr["1"][0] and psnr["0"][1] == psnr["1"][1]
    out = tmp_path / "default.json"  # the embedded default model is of the same family: it takes --detail too
    r = _cli("--model", "flashvsr-fast", "--data", str(small_seq), "--detail", "0.5", "--metrics", "psnr_y",
             "--json", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["options"] == {"detail": 0.5}  # one model: one result object
    r = _cli("--model", "bicubic", "--data", str(small_seq), "--detail", "0.5")
    assert r.exit_code != 0 and "--detail applies to --model flashvsr" in r.output
    out = tmp_path / "pad.json"  # --pad-to the same way, and both together
    r = _cli("--model", "flashvsr-fast", "--data", str(small_seq), "--detail", "0.5", "--pad-to", "windows",
             "--metrics", "psnr_y", "--json", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["options"] == {"detail": 0.5, "pad_to": "windows"}
    r = _cli("--model", "bicubic", "--data", str(small_seq), "--pad-to", "tokens")
    assert r.exit_code != 0 and "--pad-to applies to --model flashvsr" in r.output
