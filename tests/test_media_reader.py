"""Reader tests: info, YUV->RGB maths, image folders, trimming, damaged files, input errors."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvsr.errors import DecodeWarning, InputError
from streamvsr.media import natural_key, open_reader
from streamvsr.media.color import effective_full_range, effective_matrix
from streamvsr.media.synth import make_clip, pattern_frame

# (Kr, Kb) luma weights of each matrix
KRB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
SPACE_TAG = {"bt601": 6, "bt709": 1, "bt2020": 9}


def yuv_to_rgb_reference(y, u, v, matrix: str, full: bool, bits: int) -> np.ndarray:
    """Textbook Y'CbCr -> R'G'B' in [0, 1]: (H, W) planes -> (H, W, 3)."""
    kr, kb = KRB[matrix]
    kg = 1 - kr - kb
    top, s = (1 << bits) - 1, 1 << (bits - 8)
    if full:
        yy, cb, cr = y / top, (u - 128 * s) / top, (v - 128 * s) / top
    else:
        yy, cb, cr = (y - 16 * s) / (219 * s), (u - 128 * s) / (224 * s), (v - 128 * s) / (224 * s)
    r = yy + 2 * (1 - kr) * cr
    b = yy + 2 * (1 - kb) * cb
    g = (yy - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], axis=-1), 0, 1)


def write_yuv444_clip(path: Path, planes, pix_fmt: str, space: int, rng: int) -> None:
    """One lossless FFV1 frame with exactly these Y, U, V samples and colour tags."""
    h, w = planes[0].shape
    dtype = np.uint16 if pix_fmt.endswith("le") else np.uint8
    with av.open(str(path), "w") as out:
        vs = out.add_stream("ffv1", rate=24)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.codec_context.colorspace = space
        vs.codec_context.color_range = rng
        frame = av.VideoFrame(w, h, pix_fmt)
        for plane, data in zip(frame.planes, planes):
            row = plane.line_size // np.dtype(dtype).itemsize
            buf = np.zeros((h, row), dtype)
            buf[:, :w] = data
            plane.update(buf.tobytes())
        frame.pts = 0
        out.mux(vs.encode(frame))
        out.mux(vs.encode(None))


def test_reads_clip_info_and_frames(tmp_path):
    src = make_clip(tmp_path / "a.mp4", frames=15, width=64, height=48, audio=True, matrix="bt709")
    with open_reader(src) as r:
        info = r.info
        frames = list(r)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == Fraction(24) and info.frame_count == 15 and info.frame_count_exact
    assert info.bit_depth == 8 and info.pix_fmt == "yuv420p" and info.codec == "h264"
    assert info.has_audio and not info.has_subtitles and info.matrix == "bt709" and not info.full_range
    assert info.is_vfr is False and info.rotation == 0 and info.kind == "video"
    assert len(frames) == 15
    assert [f.index for f in frames] == list(range(15))
    assert all(f.rgb.shape == (48, 64, 3) and f.rgb.dtype == np.uint8 for f in frames)
    assert [f.time for f in frames] == pytest.approx([i / 24 for i in range(15)], abs=1e-3)
    # the picture survives encoding (libx264 at its default quality). Compared on luma: the RGB error of this
    # saturated 64x48 pattern is mostly 4:2:0 chroma loss (mean 5.9 to 6.1 depending on the encoder's run),
    # the luma error about 1.5 (the next frame of the pattern: 2.8; BGR order: 13.5)
    w = np.array([0.2126, 0.7152, 0.0722])
    assert np.abs(frames[5].rgb.astype(float) @ w - pattern_frame(5, 64, 48).astype(float) @ w).mean() < 2.2


@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020"])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("bits", [8, 10])
def test_yuv_to_rgb_uses_stream_matrix_and_range(tmp_path, matrix, full, bits):
    rng = np.random.default_rng(bits * 7 + full)
    s = 1 << (bits - 8)
    lo_y, hi_y = (0, (1 << bits) - 1) if full else (16 * s, 235 * s)
    lo_c, hi_c = (0, (1 << bits) - 1) if full else (16 * s, 240 * s)
    y = rng.integers(lo_y, hi_y + 1, (16, 16))
    u = rng.integers(lo_c, hi_c + 1, (16, 16))
    v = rng.integers(lo_c, hi_c + 1, (16, 16))
    pix_fmt = "yuv444p" if bits == 8 else "yuv444p10le"
    path = tmp_path / "c.mkv"
    write_yuv444_clip(path, (y, u, v), pix_fmt, SPACE_TAG[matrix], 2 if full else 1)
    with open_reader(path) as r:
        assert r.info.matrix == matrix and r.info.full_range == full and r.info.bit_depth == bits
        rgb = next(iter(r)).rgb
    assert rgb.dtype == (np.uint8 if bits == 8 else np.uint16)
    got = rgb / (255.0 if bits == 8 else 65535.0)
    exp = yuv_to_rgb_reference(y.astype(float), u.astype(float), v.astype(float), matrix, full, bits)
    assert np.abs(got - exp).max() * 255 < 1.5  # within rounding (swscale's 10-bit path is ~1 level)
    other = "bt601" if matrix != "bt601" else "bt709"
    wrong = yuv_to_rgb_reference(y.astype(float), u.astype(float), v.astype(float), other, not full, bits)
    assert np.abs(got - wrong).max() * 255 > 10  # the test can tell matrices/ranges apart


def test_untagged_matrix_and_range_guess():
    assert effective_matrix(2, "yuv420p", 1920, 1080) == "bt709"
    assert effective_matrix(2, "yuv420p", 1280, 536) == "bt709"
    assert effective_matrix(2, "yuv420p", 854, 480) == "bt601"
    assert effective_matrix(5, "yuv420p", 1920, 1080) == "bt601"
    assert effective_matrix(1, "yuv420p", 320, 240) == "bt709"
    assert effective_matrix(2, "rgb24", 64, 64) == "rgb"
    assert effective_full_range(0, "yuvj420p") and not effective_full_range(0, "yuv420p")
    assert effective_full_range(2, "yuv420p") and not effective_full_range(1, "yuvj420p")


def _save_png(path: Path, rgb: np.ndarray) -> None:
    sixteen = rgb.dtype == np.uint16
    frame = av.VideoFrame.from_ndarray(rgb, "rgb48le" if sixteen else "rgb24")
    cc = av.CodecContext.create("png", "w")
    cc.width, cc.height, cc.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb48be" if sixteen else "rgb24"
    cc.time_base = Fraction(1, 25)
    path.write_bytes(b"".join(bytes(p) for p in cc.encode(frame.reformat(format=cc.pix_fmt))))


def test_image_folder_natural_sort_8bit(tmp_path):
    order = [1, 2, 3, 9, 10, 11, 100]
    for n in reversed(order):
        rgb = np.full((8, 10, 3), n, np.uint8)
        _save_png(tmp_path / f"frame{n}.png", rgb)
    (tmp_path / "notes.txt").write_text("not an image")
    with open_reader(tmp_path, fps=12) as r:
        info = r.info
        frames = list(r)
    assert info.kind == "images" and info.fps == 12 and info.frame_count == len(order)
    assert info.bit_depth == 8 and (info.width, info.height) == (10, 8)
    assert [int(f.rgb[0, 0, 0]) for f in frames] == order
    assert [f.pts for f in frames] == list(range(len(order)))


def test_image_folder_16bit_and_trim(tmp_path):
    for i in range(6):
        rgb = np.full((4, 6, 3), 1000 * i + 7, np.uint16)
        rgb[..., 1] = 60000
        _save_png(tmp_path / f"img_{i:03d}.png", rgb)
    with open_reader(tmp_path, start=0.4, duration=0.4, fps=5) as r:
        frames = list(r)
        assert r.info.bit_depth == 16
    assert [f.rgb.dtype for f in frames] == [np.dtype(np.uint16)] * 2
    assert [int(f.rgb[0, 0, 0]) for f in frames] == [2007, 3007]  # exact: PNG is lossless
    assert int(frames[0].rgb[0, 0, 1]) == 60000


def test_image_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no images"):
        open_reader(tmp_path)
    _save_png(tmp_path / "a1.png", np.zeros((4, 4, 3), np.uint8))
    _save_png(tmp_path / "a2.png", np.zeros((6, 4, 3), np.uint8))
    (tmp_path / "a3.png").write_bytes(b"garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = open_reader(tmp_path)
        it = iter(r)
        next(it)
        with pytest.raises(InputError, match="differs from the first image"):
            next(it)
    r.close()
    assert not caught


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=30, unique=True), st.sampled_from(["f", "img_", ""]))
def test_natural_key_orders_numbers_by_value(numbers, prefix):
    names = [f"{prefix}{n}.png" for n in numbers]
    assert sorted(names, key=natural_key) == [f"{prefix}{n}.png" for n in sorted(numbers)]


def test_start_and_duration(tmp_path):
    src = make_clip(tmp_path / "t.mp4", frames=48, options={"g": "12"})
    with open_reader(src, start=0.5, duration=0.75) as r:
        assert not r.info.frame_count_exact and r.info.frame_count == 18
        assert r.info.duration == pytest.approx(0.75)
        times = [f.time for f in r]
    assert times == pytest.approx([(12 + i) / 24 for i in range(18)], abs=1e-3)
    with pytest.raises(InputError, match="no frames in the requested range"):
        open_reader(src, start=5.0)
    with pytest.raises(InputError, match="non-negative"):
        open_reader(src, start=-1)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=2, max_size=12))
def test_vfr_pts_are_kept(tmp_path_factory, gaps):
    pts = np.cumsum([0, *gaps]).tolist()
    path = make_clip(tmp_path_factory.mktemp("vfr") / "v.mkv", pts=pts, time_base=Fraction(1, 1000))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DecodeWarning)  # irregular spacing is not damage
        with open_reader(path) as r:
            got = [f.pts for f in r]
    assert got == pts


def _corrupt_middle(path: Path, length: int = 3000) -> Path:
    data = bytearray(path.read_bytes())
    mid = len(data) // 3
    for k in range(mid, min(mid + length, len(data))):
        data[k] = (data[k] * 7 + 13) % 256
    bad = path.with_name("bad" + path.suffix)
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_corrupt_midway_warns_and_continues(tmp_path, suffix):
    src = make_clip(tmp_path / f"c{suffix}", frames=60, width=64, height=48, options={"g": "10", "crf": "10"})
    bad = _corrupt_middle(src)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_reader(bad) as r:
            frames = list(r)
    msgs = [str(w.message) for w in caught if issubclass(w.category, DecodeWarning)]
    assert msgs, "damaged data must be reported"
    assert any("frame " in m for m in msgs)
    assert 30 <= len(frames) < 60
    assert frames[-1].time == pytest.approx(59 / 24, abs=0.01)  # decoding went on to the end


def test_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_reader(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(InputError, match="not a readable video"):
        open_reader(text)
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_reader(empty)
    zero = tmp_path / "zero.mkv"
    with av.open(str(zero), "w") as out:
        vs = out.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
    with pytest.raises(InputError, match="no frames"):
        open_reader(zero)
    audio_only = tmp_path / "tone.m4a"
    with av.open(str(audio_only), "w") as out:
        a = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(a.encode(frame))
        out.mux(a.encode(None))
    with pytest.raises(InputError, match="no video stream"):
        open_reader(audio_only)


def test_iterating_twice_is_an_error(tmp_path):
    src = make_clip(tmp_path / "a.mkv", frames=3)
    with open_reader(src) as r:
        assert len(list(r)) == 3
        with pytest.raises(RuntimeError):
            list(r)


def test_raw_stream_with_size_change_and_no_timestamps(tmp_path):
    a = make_clip(tmp_path / "a.h264", frames=5, width=64, height=48, format="h264")
    b = make_clip(tmp_path / "b.h264", frames=5, width=32, height=24, format="h264")
    both = tmp_path / "both.h264"
    both.write_bytes(a.read_bytes() + b.read_bytes())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_reader(both) as r:
            frames = list(r)
    assert len(frames) == 10
    assert all(f.rgb.shape == (48, 64, 3) for f in frames)  # later frames rescaled to the first size
    assert any("rescaled" in str(w.message) for w in caught)
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == 10


def test_y4m_header_only_has_no_frames(tmp_path):
    y4m = tmp_path / "empty.y4m"
    y4m.write_bytes(b"YUV4MPEG2 W64 H48 F24:1 Ip A1:1 C420jpeg\n")
    with pytest.raises(InputError, match="no decodable frames"):
        open_reader(y4m)
