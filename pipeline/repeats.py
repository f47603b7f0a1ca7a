"""Repeated frames: a decoded picture that shows nothing the last analysed one did not.

Encoders and recorders repeat frames: a 25 fps stream from a sensor that delivers fewer, an NVR
converting a variable rate to a constant one, a re-encode at a higher rate. Two sample clips
hold such repeats natively (``highway_1280x720`` 15 and ``plates_closeup_beijing`` 16 of their
first 199 frame pairs). Analysed, a repeat tells the tracker that everything stopped for a
frame: its Kalman velocities are pulled to zero, the next real frame jumps, and tracks break —
``intersection_hanoi_b`` converted from 6 to 25 fps by repeating frames gave 276 vehicle passes
instead of 156 and missed a red-light runner. A repeat carries no information, so it is not
analysed (the signal board still reads it: a lamp may change in a frame where little else does).

A frame repeats the last analysed one when at most :data:`MAX_CHANGED_SHARE` of its pixels
differ from it by more than :data:`CHANGE_LEVEL` in any channel — compression noise of a
re-encoded repeat changes a few dozen pixels of a 640×480 picture (up to 0.03 %), a moving
vehicle or person thousands. The comparison is with the last *analysed* frame, so slow motion
adds up until it is analysed, and at least one frame per :data:`MAX_REPEAT_S` is analysed
whatever it shows (time-based track ageing and health keep their pace on a static scene).
Frames decoded on the GPU are not compared (their host picture may be a placeholder).
"""

from __future__ import annotations

import cv2
import numpy as np

from sharpeyes.pipeline.types import Frame, ImageBGR

__all__ = ["CHANGE_LEVEL", "MAX_CHANGED_SHARE", "MAX_REPEAT_S", "RepeatedFrames"]

CHANGE_LEVEL = 12
"""A pixel changed when a channel differs by more than this (8-bit levels)."""
MAX_CHANGED_SHARE = 5e-4
"""A repeat changes at most this share of the pixels (154 of a 640×480 picture)."""
MAX_REPEAT_S = 1.0
"""Frames are analysed at least this often (seconds of pts) even when nothing changes."""


class RepeatedFrames:
    """Says whether a frame repeats the last one :meth:`analysed` was told about."""

    def __init__(
        self,
        change_level: int = CHANGE_LEVEL,
        max_changed_share: float = MAX_CHANGED_SHARE,
        max_repeat_s: float = MAX_REPEAT_S,
    ) -> None:
        if not 0 <= change_level < 255 or not 0.0 <= max_changed_share < 1.0 or max_repeat_s < 0:
            raise ValueError("change_level 0–254, max_changed_share in [0, 1), max_repeat_s ≥ 0")
        self._level = change_level
        self._share = max_changed_share
        self._max_s = max_repeat_s
        self._last: ImageBGR | None = None
        self._last_pts: float | None = None
        self.repeats = 0

    def repeats_last(self, frame: Frame) -> bool:
        """True when ``frame`` shows nothing new since the last analysed frame (counted)."""
        last, image = self._last, frame.image
        if frame.device_image is not None:  # a GPU frame's host image may be a placeholder
            return False
        if last is None or self._last_pts is None or last.shape != image.shape:
            return False
        if not 0.0 <= frame.pts - self._last_pts < self._max_s:  # due, or pts went back
            return False
        diff = cv2.absdiff(image, last)
        changed = int(np.count_nonzero(diff.max(axis=2) > self._level))
        repeat = bool(changed <= self._share * image.shape[0] * image.shape[1])
        self.repeats += int(repeat)
        return repeat

    def analysed(self, frame: Frame) -> None:
        """``frame`` is analysed: later frames are compared with it."""
        self._last, self._last_pts = frame.image, frame.pts
