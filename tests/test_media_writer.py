"""Writer tests: round trips (pts, VFR, audio bytes, 10-bit, rotation, colour), PNG sequences,
trimming, safe output (temp file, abort, errors)."""

from __future__ import annotations

import errno
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamvsr.errors import OutputError
from streamvsr.media import open_reader, open_writer
from streamvsr.media import writer as writer_mod
from streamvsr.media.synth import make_clip

KRB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


def transcode(src: Path, dst: Path | str, scale: int = 1, **kw):
    """The engine's usage: read, (nearest-neighbour 'upscale'), write with the same pts."""
    with open_reader(src, kw.get("start"), kw.get("duration")) as r:
        info = r.info
        with open_writer(dst, info, info.width * scale, info.height * scale, copy_from=src, **kw) as w:
            for f in r:
                out = f.rgb if scale == 1 else np.repeat(np.repeat(f.rgb, scale, 0), scale, 1)
                w.write(out, pts=f.pts)
    return info


def packet_bytes(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return []
        return [bytes(p) for p in c.demux(streams) if p.size]


def frame_times(path: Path) -> list[Fraction]:
    with open_reader(path) as r:
        return [f.pts * f.time_base for f in r]


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_round_trip_keeps_frames_size_pts_and_audio_bytes(tmp_path, suffix):
    src = make_clip(tmp_path / f"in{suffix}", frames=20, audio=True, matrix="bt709")
    dst = tmp_path / f"out{suffix}"
    info = transcode(src, dst, scale=2)
    with open_reader(dst) as r:
        out = r.info
        frames = list(r)
    assert len(frames) == info.frame_count == 20
    assert (out.width, out.height) == (128, 96)
    assert out.fps == info.fps == 24
    t_in, t_out = frame_times(src), [f.pts * f.time_base for f in frames]
    # matroska may shift every stream by the audio priming delay: compare relative times
    assert [t - t_out[0] for t in t_out] == [t - t_in[0] for t in t_in]
    assert abs(t_out[0] - t_in[0]) < Fraction(1, 20)
    a_in, a_out = packet_bytes(src, "audio"), packet_bytes(dst, "audio")
    assert len(a_in) > 10 and a_out == a_in
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_vfr_timestamps_survive(tmp_path, suffix):
    pts = [0, 33, 50, 130, 140, 141, 300, 333, 360, 500, 510, 700]
    src = make_clip(tmp_path / f"vfr{suffix}", pts=pts, time_base=Fraction(1, 1000))
    dst = tmp_path / f"o{suffix}"
    transcode(src, dst)
    assert frame_times(dst) == [Fraction(p, 1000) for p in pts]


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le", "yuv444p10le"])
def test_ten_bit_in_ten_bit_out(tmp_path, pix_fmt):
    src = make_clip(tmp_path / "in10.mkv", frames=6, pix_fmt=pix_fmt, matrix="bt2020", primaries=9, trc=14)
    dst = tmp_path / "out10.mp4"
    transcode(src, dst, crf=0)
    with open_reader(src) as a, open_reader(dst) as b:
        assert a.info.bit_depth == b.info.bit_depth == 10
        assert b.info.pix_fmt == pix_fmt  # bit depth and chroma layout kept
        fa, fb = list(a), list(b)
    assert fa[0].rgb.dtype == fb[0].rgb.dtype == np.uint16
    assert len(fa) == len(fb) == 6
    # above 8-bit precision is really carried: values are not multiples of 257
    assert np.mean(fb[2].rgb % 257 != 0) > 0.5
    diff = fa[2].rgb.astype(float) - fb[2].rgb  # (H, W, 3)
    assert np.abs(diff.reshape(-1, 3).mean(0)).max() < 257 * 2  # no colour shift
    assert np.abs(diff).mean() < 257 * (1.5 if pix_fmt == "yuv444p10le" else 5)


def test_png_sources_give_eight_bit_and_user_pix_fmt(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=3)
    with open_reader(src) as r:
        with pytest.raises(OutputError, match="cannot encode pix_fmt"):
            open_writer(tmp_path / "x.mp4", r.info, 64, 48, pix_fmt="rgb48le")
        w = open_writer(tmp_path / "x.mkv", r.info, 64, 48, codec="ffv1", pix_fmt="yuv444p")
        for f in r:
            w.write(f.rgb, f.pts)
        w.close()
    with open_reader(tmp_path / "x.mkv") as r:
        assert r.info.pix_fmt == "yuv444p" and r.info.codec == "ffv1"


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_tag_preserved(tmp_path, suffix, rotation):
    src = make_clip(tmp_path / f"r{suffix}", frames=4, rotation=rotation)
    dst = tmp_path / f"o{suffix}"
    transcode(src, dst, scale=2)
    with open_reader(src) as a, open_reader(dst) as b:
        assert a.info.rotation == b.info.rotation == rotation
        assert (b.info.width, b.info.height) == (128, 96)  # stored size, not rotated


@pytest.mark.parametrize(
    ("matrix", "full", "prim", "trc"), [("bt709", False, 1, 1), ("bt601", True, 6, 6), ("bt2020", False, 9, 16)]
)
def test_colour_tags_preserved(tmp_path, matrix, full, prim, trc):
    src = make_clip(tmp_path / "c.mkv", frames=3, matrix=matrix, full_range=full, primaries=prim, trc=trc)
    dst = tmp_path / "o.mp4"
    transcode(src, dst)
    with open_reader(src) as a, open_reader(dst) as b:
        ia, ib = a.info, b.info
        fa, fb = next(iter(a)), next(iter(b))
    assert (ib.color_space, ib.color_range, ib.color_primaries, ib.color_trc) == (
        ia.color_space,
        ia.color_range,
        prim,
        trc,
    )
    assert ib.matrix == matrix and ib.full_range == full
    assert np.abs(fa.rgb.astype(int) - fb.rgb).mean() < 3  # same matrix both ways: no colour shift


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("full", [False, True])
def test_rgb_to_yuv_uses_source_matrix_and_range(tmp_path, matrix, full):
    src = make_clip(tmp_path / "c.mkv", frames=1, matrix=matrix, full_range=full)
    with open_reader(src) as r:
        info = r.info
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    dst = tmp_path / "o.mkv"
    with open_writer(dst, info, 16, 16, codec="ffv1", pix_fmt="yuv444p") as w:
        w.write(rgb, 0)
    with av.open(str(dst)) as c:
        frame = next(c.decode(video=0))
        y = np.frombuffer(frame.planes[0], np.uint8).reshape(16, -1)[:, :16].astype(float)
    kr, kb = KRB[matrix]
    x = rgb / 255.0
    luma = kr * x[..., 0] + (1 - kr - kb) * x[..., 1] + kb * x[..., 2]
    expected = luma * 255 if full else 16 + 219 * luma
    assert np.abs(y - expected).max() <= 1.01


def test_png_sequence_8_and_16_bit(tmp_path):
    for bits, pix_fmt in [(8, "yuv420p"), (16, "yuv444p10le")]:
        src = make_clip(tmp_path / f"in{bits}.mkv", frames=5, codec="ffv1", pix_fmt=pix_fmt)
        out = tmp_path / f"png{bits}"
        with open_reader(src) as r:
            originals = []
            with open_writer(out, r.info, 64, 48, format="png") as w:
                for f in r:
                    originals.append(f.rgb)
                    w.write(f.rgb, f.pts)
        names = sorted(p.name for p in out.iterdir())
        assert names == [f"frame_{i:06d}.png" for i in range(1, 6)]
        with av.open(str(out / "frame_000003.png")) as c:
            assert next(c.decode(video=0)).format.name == ("rgb24" if bits == 8 else "rgb48be")
        with open_reader(out) as r:
            back = [f.rgb for f in r]
        assert all(np.array_equal(a, b) for a, b in zip(originals, back))  # PNG is lossless
    assert leftovers(tmp_path) == []


def test_png_folder_by_trailing_slash_and_overwrite(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=2)
    out = tmp_path / "frames"
    transcode(src, str(out) + "/")
    assert len(list(out.iterdir())) == 2
    with pytest.raises(OutputError, match="already exists"):
        transcode(src, str(out) + "/")
    transcode(src, out, format="png", overwrite=True)
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="other files"):
        transcode(src, out, format="png", overwrite=True)
    assert (out / "keep.txt").exists()


def test_trim_cuts_audio_and_video_in_sync(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=48, audio=True, subtitles=[(0.2, 0.4, "a"), (1.2, 1.5, "b")])
    dst = tmp_path / "o.mkv"
    transcode(src, dst, start=1.0, duration=0.5)
    with open_reader(dst) as r:
        times = [float(f.pts * f.time_base) for f in r]
    assert len(times) == 12
    assert times[0] == pytest.approx(0.0, abs=0.03)
    with av.open(str(dst)) as c:
        a_times = [float(p.pts * p.time_base) for p in c.demux(audio=0) if p.size]
    with av.open(str(dst)) as c:
        subs = [(round(float(p.pts * p.time_base), 3), bytes(p)) for p in c.demux(subtitles=0) if p.size]
    assert a_times[0] == pytest.approx(0.0, abs=0.03) and a_times[-1] == pytest.approx(0.5, abs=0.05)
    assert subs == [(0.2, b"b")]


def test_subtitles_copied(tmp_path):
    cues = [(0.1, 0.3, "hello"), (0.5, 0.7, "world")]
    src = make_clip(tmp_path / "in.mkv", frames=24, subtitles=cues)
    transcode(src, tmp_path / "o.mkv")
    assert packet_bytes(tmp_path / "o.mkv", "subtitle") == [b"hello", b"world"]
    transcode(src, tmp_path / "n.mkv", copy_subtitles=False)
    assert packet_bytes(tmp_path / "n.mkv", "subtitle") == []


def test_container_cannot_hold_codec(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=4, audio=True)
    with pytest.raises(OutputError, match="--no-audio"):
        transcode(src, tmp_path / "o.webm")
    transcode(src, tmp_path / "o.webm", copy_audio=False)
    with open_reader(tmp_path / "o.webm") as r:
        assert r.info.codec == "vp9" and not r.info.has_audio
    srt = make_clip(tmp_path / "s.mkv", frames=4, subtitles=[(0.0, 0.1, "x")])
    with pytest.raises(OutputError, match="--no-subtitles"):
        transcode(srt, tmp_path / "s.mp4")
    assert leftovers(tmp_path) == []


def test_output_errors(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=2)
    with open_reader(src) as r:
        info = r.info
    with pytest.raises(OutputError, match="does not exist"):
        open_writer(tmp_path / "nope" / "o.mp4", info, 64, 48)
    (tmp_path / "o.mp4").write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists"):
        open_writer(tmp_path / "o.mp4", info, 64, 48)
    assert (tmp_path / "o.mp4").read_bytes() == b"old"
    with pytest.raises(OutputError, match="is the input"):
        open_writer(src, info, 64, 48, overwrite=True)
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    with pytest.raises(OutputError, match="is the input"):
        open_writer(link, info, 64, 48, overwrite=True)
    with pytest.raises(OutputError, match="unknown container"):
        open_writer(tmp_path / "o.avi2", info, 64, 48)
    with pytest.raises(OutputError, match="unknown video encoder"):
        open_writer(tmp_path / "p.mp4", info, 64, 48, codec="nope264")
    with pytest.raises(OutputError, match="even"):
        open_writer(tmp_path / "p.mp4", info, 63, 48)
    assert leftovers(tmp_path) == []
    transcode(src, tmp_path / "o.mp4", overwrite=True)
    assert len(frame_times(tmp_path / "o.mp4")) == 2


def test_temp_file_then_rename_and_abort(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    dst = tmp_path / "o.mp4"
    with open_reader(src) as r:
        w = open_writer(dst, r.info, 64, 48)
        for f in r:
            w.write(f.rgb, f.pts)
        parts = leftovers(tmp_path)
        assert len(parts) == 1 and parts[0].startswith(".o.mp4.partial-") and not dst.exists()
        w.abort()
    assert not dst.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_inside_with_leaves_nothing(tmp_path, exc):
    src = make_clip(tmp_path / "in.mp4", frames=3)
    with pytest.raises(exc), open_reader(src) as r, open_writer(tmp_path / "o.mkv", r.info, 64, 48) as w:
        for f in r:
            w.write(f.rgb, f.pts)
            raise exc()
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]


@pytest.mark.parametrize("background", [True, False])
@pytest.mark.parametrize("dst", ["o.mp4", "frames/"])
def test_disk_full_is_output_error_and_cleans_up(tmp_path, monkeypatch, background, dst):
    src = make_clip(tmp_path / "in.mp4", frames=6)

    def no_space(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    # the step that writes bytes: muxing (video containers) or saving a file (PNG sequences)
    monkeypatch.setattr(writer_mod.ContainerWriter, "_mux_video", no_space)
    monkeypatch.setattr(writer_mod._PNGSequenceWriter, "_save", no_space)
    with pytest.raises(OutputError, match="disk full"):
        transcode(src, str(tmp_path / dst), background=background)
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_write_checks_shape_and_dtype(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=1)
    with open_reader(src) as r, open_writer(tmp_path / "o.mkv", r.info, 64, 48) as w:
        with pytest.raises(ValueError, match="shape"):
            w.write(np.zeros((48, 64), np.uint8))
        with pytest.raises(ValueError, match="uint8 or uint16"):
            w.write(np.zeros((48, 64, 3), np.float32))
        w.write(np.zeros((48, 64, 3), np.uint8))  # pts=None: placed at frames_written / fps
    assert frame_times(tmp_path / "o.mkv") == [0]


def test_png_pattern_and_empty_folder(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=3)
    (tmp_path / "seq").mkdir()  # an empty folder is not an output to protect
    transcode(src, tmp_path / "seq" / "img_%04d.png")
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == ["img_0001.png", "img_0002.png", "img_0003.png"]
    with pytest.raises(OutputError, match="folder of its own"):
        transcode(src, "%04d.png")
    transcode(src, tmp_path / "50%.mkv")  # a % in a video name is just a name
    assert (tmp_path / "50%.mkv").exists()


def test_legacy_rotate_tag_is_read_and_written_as_display_matrix(tmp_path):
    plain = make_clip(tmp_path / "p.mkv", frames=3)
    tagged = tmp_path / "tagged.mkv"
    with av.open(str(plain)) as src, av.open(str(tagged), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        stream.metadata["rotate"] = "90"  # old convention: degrees clockwise
        for pk in src.demux(video=0):
            if pk.size:
                pk.stream = stream
                out.mux(pk)
    with open_reader(tagged) as r:
        assert r.info.rotation == 270  # = 90 clockwise
    transcode(tagged, tmp_path / "o.mp4")
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert round(next(c.decode(video=0)).rotation) % 360 == 270
