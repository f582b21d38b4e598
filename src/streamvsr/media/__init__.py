"""Video input/output for streamvsr (PyAV only; never imports models).

Reading::

    from streamvsr.media import open_reader, open_writer

    with open_reader("in.mp4", start=None, duration=None) as r:   # or "-" (stdin), or a folder of images
        r.info            # StreamInfo: size, fps (Fraction), time_base, frame_count, bit_depth, colour tags,
                          # matrix/full_range used for YUV<->RGB, rotation, has_audio, is_vfr, ...
        for f in r:       # DecodedFrame(index, pts, time_base, rgb)
            f.rgb         # (H, W, 3) uint8, or uint16 on the full 0..65535 scale for >8-bit sources

* Sources: any file FFmpeg reads; ``"-"`` reads stdin (y4m, nut, matroska, ... probed; ``format=``
  forces a demuxer); a folder of png/jpg/tif/bmp/webp images in natural order (``frame2`` before
  ``frame10``) at ``fps=`` (default 25). ``threads=`` sets decoder threads (0 = automatic).
* YUV->RGB uses the stream's matrix (BT.601/709/2020, ...) and range (limited/full); untagged
  streams are taken as BT.709 when HD (>= 1280 wide or >= 720 high), else BT.601, limited range.
* Frames are *not* rotated: ``info.width``/``info.height`` are the stored size and ``info.rotation``
  the display rotation (degrees counter-clockwise) that the writer copies to the output.
* ``start``/``duration`` (seconds, from the stream's first timestamp): seek, drop frames before
  ``start``, stop at ``start + duration``.
* Damaged data midway: the bad packets are skipped with a :class:`~streamvsr.errors.DecodeWarning`
  naming the frame index, and decoding goes on. A missing path, a non-video file, or a video with no
  frames raises :class:`~streamvsr.errors.InputError`.

Writing::

    with open_reader(src) as r, open_writer(dst, r.info, W * s, H * s, codec=None, crf=None,
                                            copy_from=src) as w:
        for f in r:
            w.write(out_rgb, pts=f.pts)      # (H*s, W*s, 3) uint8 or uint16; pts in r.info.time_base

* ``dst``: ``.mp4``/``.mkv``/``.mov``/``.webm`` by suffix (or ``format=``), ``"-"`` for stdout
  (matroska; ``format="nut"``), or a PNG sequence (``format="png"``, a path ending in ``/``, an
  existing folder, or a suffix-less name: ``frame_000001.png`` ...; or a pattern such as
  ``frames/img_%04d.png``), 16-bit PNGs for >8-bit sources.
* Defaults: libx264 (libvpx-vp9 for webm), crf 18, the source's chroma layout and bit depth
  (10-bit sources -> yuv420p10le etc.). ``options`` passes encoder options (``{"preset": "fast"}``).
* Timestamps, frame rate (Fraction), rotation and colour tags (matrix, range, primaries, transfer)
  are kept; RGB->YUV uses the source's matrix and range. VFR survives. (Matroska cannot store
  negative times: when copied audio starts before 0, e.g. AAC priming, the muxer shifts every stream
  by the same small amount, so sync is kept.)
* Audio and subtitle packets of ``copy_from`` are copied without re-encoding and interleaved by
  time; trimmed with the same ``start``/``duration`` as the reader. A container that cannot hold a
  codec (webm + aac) raises OutputError suggesting --no-audio or another container.
* Safe output: frames go to ``.NAME.partial-XXXXXXXX.ext`` in the destination folder, renamed into
  place by ``close()``; ``abort()``, an exception or Ctrl-C inside ``with`` deletes it. Refused with
  :class:`~streamvsr.errors.OutputError`: an existing ``dst`` without ``overwrite=True``, ``dst`` that
  is the input, a missing output folder; a full disk also raises OutputError (output removed).

Memory is bounded: readers decode on demand and writers encode and mux as frames arrive.
``streamvsr.media.synth.make_clip`` makes small deterministic test clips (VFR, 10-bit, audio,
subtitles, rotation, colour tags).

Full signatures::

    open_reader(src, start=None, duration=None, *, fps=None, format=None, threads=0) -> VideoReader
    open_writer(dst, src_info, width, height, *, codec=None, crf=None, bitrate=None, pix_fmt=None,
                options=None, format="auto", copy_from=None, copy_audio=True, copy_subtitles=True,
                overwrite=False, start=None, duration=None, threads=0) -> VideoWriter
    VideoWriter.write(rgb, pts=None); .close(); .abort(); .frames_written; .path
"""

from .color import MATRICES
from .probe import DecodedFrame, StreamInfo
from .reader import IMAGE_EXTENSIONS, VideoReader, natural_key, open_reader
from .writer import VideoWriter, open_writer

__all__ = [
    "IMAGE_EXTENSIONS",
    "MATRICES",
    "DecodedFrame",
    "StreamInfo",
    "VideoReader",
    "VideoWriter",
    "natural_key",
    "open_reader",
    "open_writer",
]
