"""H.265 test footage: a span of a real clip re-encoded with libx265 (PyAV's bundled FFmpeg), as
an MP4 with an ``hvcC`` record — the way most Chinese e-police cameras and NVRs record."""

from __future__ import annotations

from pathlib import Path

import av
import pytest


def reencode_h265(src: Path, dst: Path, frames: tuple[int, int], fps: float, gop: int = 30) -> Path:
    """Frames ``frames[0]``…``frames[1]`` (decode order, inclusive) of ``src`` as H.265 at
    ``fps``; skips the test when this PyAV build has no libx265 encoder."""
    if "libx265" not in av.codecs_available:
        pytest.skip("this PyAV build has no libx265 encoder")
    lo, hi = frames
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        w, h = inp.streams.video[0].codec_context.width, inp.streams.video[0].codec_context.height
        s = out.add_stream("libx265", rate=round(fps))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.options = {
            "preset": "ultrafast",
            "x265-params": f"keyint={gop}:log-level=error",
        }
        for i, frame in enumerate(inp.decode(video=0)):
            if i > hi:
                break
            if i >= lo:
                f = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                f.pts = i - lo
                for p in s.encode(f):
                    out.mux(p)
        for p in s.encode():
            out.mux(p)
    return dst
