"""Encode BGR frames to an H.264 MP4 with PyAV (annotated output, generated test clips)."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.errors import StreamError

logger = logging.getLogger(__name__)


class Mp4Writer:
    """Writes frames to ``path`` (atomically: a temp file renamed on ``close``).

    Frames must all have the size of the first one; odd sizes are padded to even (yuv420p).
    """

    def __init__(
        self,
        path: Path,
        fps: float,
        *,
        crf: int = 23,
        preset: str = "veryfast",
        gop: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.part")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rate = Fraction(fps).limit_denominator(1001)
        self._opts = {"crf": str(crf), "preset": preset}
        self._gop = gop
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        self._stream: av.VideoStream | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0
        self._first_s: float | None = None
        self._last_pts = -1

    def _open_stream(self, width: int, height: int) -> av.VideoStream:
        stream = self._container.add_stream("libx264", rate=self._rate, options=self._opts)
        stream.width = width + (width % 2)
        stream.height = height + (height % 2)
        stream.pix_fmt = "yuv420p"
        if self._gop is not None:
            stream.codec_context.gop_size = self._gop
        self._size = (width, height)
        return stream

    def write(self, image: NDArray[np.uint8], at_s: float | None = None) -> None:
        """Append ``image``; ``at_s`` (seconds, any origin) places it in time — a frame not
        written in between (sampled out, a repeat not analysed) then keeps the picture on
        screen for its duration instead of the video running fast. None: the next frame slot."""
        h, w = image.shape[:2]
        if self._stream is None:
            self._stream = self._open_stream(w, h)
        if self._size != (w, h):
            raise StreamError(f"frame size {w}x{h} differs from the first frame {self._size}")
        if w % 2 or h % 2:
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        pts = self._last_pts + 1
        if at_s is not None:
            if self._first_s is None:
                self._first_s = at_s
            pts = max(pts, round((at_s - self._first_s) * self._rate))
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = 1 / self._rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        self._container.close()
        if self.frames:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
