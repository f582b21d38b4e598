"""Bounded memory: a long clip streams through reader and writer without accumulating frames."""

from __future__ import annotations

import gc

import av
import psutil

from streamvsr.media import open_reader, open_writer
from streamvsr.media.synth import make_clip

FRAMES = 2000


def test_long_clip_rss_stays_flat(tmp_path):
    src = make_clip(
        tmp_path / "long.mkv", frames=FRAMES, width=32, height=32, audio=True, options={"preset": "ultrafast"}
    )
    proc = psutil.Process()
    gc.collect()
    samples = []
    count = 0
    with (
        open_reader(src) as r,
        open_writer(tmp_path / "out.mkv", r.info, 64, 64, copy_from=src, options={"preset": "ultrafast"}) as w,
    ):
        for f in r:
            big = f.rgb.repeat(2, 0).repeat(2, 1)
            w.write(big, pts=f.pts)
            count += 1
            if count % 250 == 0:
                samples.append(proc.memory_info().rss)
    assert count == FRAMES
    # after warm-up (first 500 frames) RSS may not keep growing: 2000 frames of 64x64x3 would be ~24 MB
    growth = samples[-1] - samples[1]
    assert growth < 8 * 2**20, [s // 2**20 for s in samples]
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert sum(1 for p in c.demux(video=0) if p.size) == FRAMES
