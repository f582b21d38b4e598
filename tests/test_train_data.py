"""Tests for streamvsr.train.data (manifest, frame reading, VSRDataset, batching, default roots)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from streamvsr.errors import DataError
from streamvsr.train import data as D

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def level_frame(level: int, h: int, w: int) -> np.ndarray:
    """A frame whose mean encodes ``level`` plus a small texture (uint8 RGB)."""
    yy, xx = np.mgrid[0:h, 0:w]
    tex = ((xx // 4 + yy // 4) % 2) * 6
    img = np.clip(level + tex[..., None] - 3, 0, 255).astype(np.uint8)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def write_video(path: Path, n: int, h: int, w: int, gop: int = 8) -> None:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"crf": "0"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(level_frame(20 + 4 * i, h, w), format="rgb24")
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "videos").mkdir()
    write_video(root / "videos" / "clip.mp4", 48, 72, 96)
    frames = root / "videos" / "seq"
    frames.mkdir()
    for i in range(12):
        Image.fromarray(level_frame(10 * i, 64, 80)).save(frames / f"{i:05d}.png")
    imgs = root / "photos"
    imgs.mkdir()
    Image.fromarray(level_frame(100, 80, 70)).save(imgs / "img_001.png")  # numbered, but sizes differ:
    Image.fromarray(level_frame(150, 64, 96)).save(imgs / "img_002.jpg")  # stills, not a frame folder
    Image.fromarray(level_frame(200, 20, 20)).save(imgs / "img_003.png")  # smaller than the crops below
    return root


def test_manifest_kinds_counts_and_sizes(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    entries = D.build_manifest([corpus], out)
    by_name = {Path(e.path).name: e for e in entries}
    assert set(by_name) == {"clip.mp4", "seq", "img_001.png", "img_002.jpg", "img_003.png"}
    v = by_name["clip.mp4"]
    assert (v.kind, v.frames, v.width, v.height) == ("video_file", 48, 96, 72) and v.fps == pytest.approx(25)
    f = by_name["seq"]
    assert (f.kind, f.frames, f.width, f.height) == ("frame_folder", 12, 80, 64)
    assert f.files[:2] == ("00000.png", "00001.png")
    i = by_name["img_002.jpg"]
    assert (i.kind, i.frames, i.width, i.height) == ("image", 1, 96, 64)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["kind"] for r in rows} == {"video_file", "frame_folder", "image"}
    assert D.load_manifest(out) == entries
    assert D.ensure_manifest([tmp_path / "nowhere"], out) == entries  # existing manifest: no re-scan
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "x", "kind": "movie", "frames": 1, "width": 1, "height": 1}\n')
    with pytest.raises(DataError):
        D.load_manifest(bad)


def test_layout_overrides(corpus: Path) -> None:
    as_video = D.scan_roots([D.DataRoot(corpus / "videos" / "seq", "video")])
    assert [e.kind for e in as_video] == ["frame_folder"]
    with pytest.warns(UserWarning, match="differ in size"):
        assert D.scan_roots([D.DataRoot(corpus / "photos", "video")]) == []
    as_images = D.scan_roots([D.DataRoot(corpus / "videos" / "seq", "images")])
    assert [e.kind for e in as_images] == ["image"] * 12
    with pytest.raises(DataError):
        D.scan_roots([corpus / "missing"])
    with pytest.raises(DataError):
        D.DataRoot(corpus, "weird")  # type: ignore[arg-type]


def test_read_frames_gives_the_requested_frames(corpus: Path) -> None:
    entries = {Path(e.path).name: e for e in D.scan_roots([corpus])}
    seq = D.read_frames(entries["seq"], [3, 7, 3], box=(8, 16, 32, 32))
    assert seq.shape == (3, 32, 32, 3) and seq.dtype == np.uint8
    np.testing.assert_array_equal(seq[0], level_frame(30, 64, 80)[8:40, 16:48])
    np.testing.assert_array_equal(seq[1], level_frame(70, 64, 80)[8:40, 16:48])
    # Video: late frames take the seek path (first index >= 32); levels identify the frames.
    vid = entries["clip.mp4"]
    for idx in ([40, 42, 44, 46], [1, 0, 2], [47]):
        got = D.read_frames(vid, idx, box=(0, 0, 72, 96))
        means = [float(fr.mean()) for fr in got]
        expect = [float(level_frame(20 + 4 * i, 72, 96).mean()) for i in idx]
        np.testing.assert_allclose(means, expect, atol=1.0)
    with pytest.raises(DataError):
        D.read_frames(vid, [48])


def test_dataset_shapes_ranges_and_determinism(corpus: Path) -> None:
    entries = D.scan_roots([corpus])
    kw = {"clip_len": 5, "crop": 32, "degradation": "mix", "image_prob": 0.4, "seed": 3, "samples_per_epoch": 24}
    ds = D.VSRDataset(entries, **kw)
    assert len(ds) == 24
    assert len(ds.images) == 2  # the 20x20 still is skipped (small="skip")
    seen = {True: 0, False: 0}
    for i in range(len(ds)):
        s = ds[i]
        t = 1 if s["is_image"] else 5
        assert s["is_image"] == ds.is_image(i)
        assert s["hr"].shape == (t, 3, 32, 32) and s["lr"].shape == (t, 3, 8, 8)
        assert s["hr"].dtype == torch.float32 and float(s["hr"].min()) >= 0 and float(s["hr"].max()) <= 1
        assert float(s["lr"].min()) >= 0 and float(s["lr"].max()) <= 1
        seen[s["is_image"]] += 1
    assert seen[True] > 0 and seen[False] > 0
    again = D.VSRDataset(entries, **kw)  # a fresh object (e.g. after resume) gives identical samples
    for i in (0, 5, 11):
        a, b = ds[(0, i)], again[(0, i)]
        assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"]) and a["name"] == b["name"]
    plans0 = [ds.plan(i, 0) for i in range(8)]
    plans1 = [ds.plan(i, 1) for i in range(8)]
    assert plans0 != plans1
    ds.set_epoch(1)
    assert torch.equal(ds[2]["hr"], again[(1, 2)]["hr"])


def test_dataset_clip_sampling_strides_and_reversal(corpus: Path) -> None:
    ds = D.VSRDataset(D.scan_roots([corpus / "videos"]), clip_len=5, crop=32, image_prob=0.0, seed=0)
    strides, reversed_ = set(), 0
    for i in range(60):
        p = ds.plan(i)
        steps = {b - a for a, b in zip(p.indices, p.indices[1:])}
        assert len(steps) == 1 and abs(steps.pop()) in (1, 2)
        strides.add(abs(p.indices[1] - p.indices[0]))
        reversed_ += p.indices[1] < p.indices[0]
        n = ds.entries[p.source].frames
        assert min(p.indices) >= 0 and max(p.indices) < n
        top, left, h, w = p.box
        e = ds.entries[p.source]
        assert h == w == 32 and top + h <= e.height and left + w <= e.width
    assert strides == {1, 2} and 10 < reversed_ < 50


def test_dataset_hr_is_the_cropped_flipped_source(corpus: Path) -> None:
    entries = [e for e in D.scan_roots([corpus]) if Path(e.path).name == "seq"]
    ds = D.VSRDataset(entries, clip_len=4, crop=32, degradation="bi", seed=1, strides=(1,))
    for i in range(6):
        p = ds.plan(i)
        s = ds[i]
        ref = D.read_frames(entries[0], p.indices, p.box)
        if p.hflip:
            ref = ref[:, :, ::-1]
        if p.vflip:
            ref = ref[:, ::-1]
        ref_t = torch.from_numpy(np.ascontiguousarray(ref)).permute(0, 3, 1, 2).float() / 255
        assert torch.equal(s["hr"], ref_t)


def test_small_sources_upscale_or_skip(corpus: Path) -> None:
    entries = list(D.scan_roots([corpus / "photos"]))
    skip = D.VSRDataset(entries, clip_len=1, crop=64, image_prob=1.0)
    assert {Path(skip.entries[i].path).name for i in skip.images} == {"img_001.png", "img_002.jpg"}
    up = D.VSRDataset(
        entries, clip_len=1, crop=64, image_prob=1.0, small="upscale", degradation="bd", samples_per_epoch=30
    )
    assert len(up.images) == 3
    tiny = [i for i in range(len(up)) if Path(up.entries[up.plan(i).source].path).name == "img_003.png"]
    assert tiny and up[tiny[0]]["hr"].shape == (1, 3, 64, 64)
    with pytest.raises(DataError):
        D.VSRDataset(entries, clip_len=1, crop=128)  # nothing big enough
    with pytest.raises(DataError):
        D.VSRDataset(entries, crop=48)  # not a multiple of 32


def test_joint_batches_are_homogeneous_and_resumable(corpus: Path) -> None:
    ds = D.VSRDataset(D.scan_roots([corpus]), clip_len=3, crop=32, image_prob=0.5, seed=5, samples_per_epoch=20)
    ds.degradation = "bi"
    sampler = D.JointBatchSampler(ds, batch_size=3, image_batch_size=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for b in batches:
        kinds = {ds.is_image(i, e) for e, i in b}
        assert len(kinds) == 1 and len(b) == (4 if kinds.pop() else 3)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=D.collate_clips, num_workers=0)
    out = list(loader)
    assert {tuple(b["hr"].shape[1:2]) for b in out} == {(1,), (3,)}
    for b in out:
        assert b["is_image"].all() or not b["is_image"].any()
        assert b["lr"].shape[-2:] == (8, 8)
    sampler.start_batch = 2
    assert list(sampler) == batches[2:]
    ranks = [list(D.JointBatchSampler(ds, 3, 4, rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(batches)
    with pytest.raises(DataError):
        D.collate_clips([ds[(0, i)] for i in range(20)])  # mixed lengths


def test_default_train_roots_exclude_val(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = D.data_dir()
    for root in D.DEFAULT_TRAIN_ROOTS:
        p = Path(root.path).resolve()
        assert p.is_relative_to(base / "train") and not p.is_relative_to(base / "val")
    monkeypatch.setenv("STREAMVSR_DATA", str(tmp_path))
    roots = D.default_train_roots()
    assert all(Path(r.path).is_relative_to(tmp_path / "train") for r in roots)
    assert {r.layout for r in roots} == {"video", "images"}


def test_default_manifest_has_no_val_paths() -> None:
    base = D.data_dir()
    if not all(Path(r.path).is_dir() for r in D.DEFAULT_TRAIN_ROOTS):
        pytest.skip("shared data corpus not present")
    entries = D.scan_roots(D.DEFAULT_TRAIN_ROOTS)
    assert entries
    val = (base / "val").resolve()
    assert not any(Path(e.path).resolve().is_relative_to(val) for e in entries)
    assert {e.kind for e in entries} <= {"frame_folder", "image", "video_file"}


def test_iter_val_sequences(corpus: Path) -> None:
    seqs = dict(D.iter_val_sequences(corpus, max_frames=4))
    assert seqs["videos/seq"].shape == (4, 64, 80, 3)
    assert seqs["videos/clip.mp4"].shape == (4, 72, 96, 3)
    assert seqs["photos/img_002.jpg"].shape == (1, 64, 96, 3)


def test_npy_frame_folders_read_like_png_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 40, 56, 3), dtype=np.uint8)
    for kind in ("png", "npy"):
        d = tmp_path / "root" / kind
        d.mkdir(parents=True)
        for i, f in enumerate(frames):
            if kind == "png":
                Image.fromarray(f).save(d / f"{i:05d}.png")
            else:
                np.save(d / f"{i:05d}.npy", f)
    entries = {Path(e.path).name: e for e in D.build_manifest([tmp_path / "root"], tmp_path / "m.jsonl")}
    assert (entries["npy"].kind, entries["npy"].frames, entries["npy"].width, entries["npy"].height) == (
        "frame_folder",
        6,
        56,
        40,
    )
    box = (3, 5, 16, 24)  # top, left, height, width
    a = D.read_frames(entries["png"], [1, 4, 4], box)
    b = D.read_frames(entries["npy"], [1, 4, 4], box)
    assert np.array_equal(a, b) and np.array_equal(b[0], frames[1, 3:19, 5:29]) and b.flags["C_CONTIGUOUS"]
    np.save(tmp_path / "root" / "npy" / "00002.npy", frames[2].astype(np.float32))
    with pytest.raises(DataError):
        D.read_frames(entries["npy"], [2])
