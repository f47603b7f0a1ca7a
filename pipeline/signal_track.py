"""Follow the signal heads when the camera sways.

A pole- or gantry-mounted camera moves in the wind: the whole picture shifts by a few pixels,
more on a long lens. A head's region is calibrated on a still picture and is only a little larger
than the head (hanoi_b: 18 × 49 px, a lamp cell ~16 px tall), so a sway of ±9 px vertically puts
the red lamp where the amber cell was calibrated: on a copy of hanoi_b swaying ±12 px (``ffmpeg
crop`` with a sinusoidal offset, docs/SIGNAL.md) 62 red frames read amber, 82.8 % of frames right.

:class:`CameraSway` measures the picture's shift on every undamaged picture by phase correlation
(``cv2.phaseCorrelate``, Hanning window) of a grey copy at most :data:`WORK_SIDE` px wide against
a reference picture. The whole picture moves when the camera sways, and its still parts — road,
buildings, poles, signs — outweigh the traffic moving through it; the surroundings of a head alone
do not (a head at street level has traffic passing behind it on most pictures). Measured on the
swaying copies: median error 0.2–0.6 px, at most 2.7 px, 1.3–1.9 ms a picture at 320 × 240.

The reference is the first picture, wherever the sway had the camera then; the calibration was
drawn on some picture of the camera — on average where it sways about — so the offset given is
the shift from the reference less its mean over the pictures measured. A picture whose correlation
peak is weak (:data:`MIN_RESPONSE`: a scene that changed, a lens covered) keeps the last offset;
after :data:`REFERENCE_AFTER` weak pictures in a row the current picture becomes the reference,
continuing from the last offset.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.types import ImageBGR

__all__ = [
    "DEADBAND",
    "EXCLUDE_MARGIN",
    "MAX_SHIFT",
    "MIN_RESPONSE",
    "MIN_VISIBLE",
    "REFERENCE_AFTER",
    "WORK_SIDE",
    "CameraSway",
    "PixelBox",
]

PixelBox = tuple[int, int, int, int]
"""``(x1, y1, x2, y2)`` in the full picture's pixels."""

EXCLUDE_MARGIN = 0.25
"""Excluded boxes are grown by this share of their width and height on every side."""
WORK_SIDE = 320
"""Pictures are measured on a grey copy at most this many pixels wide (never enlarged)."""
MIN_RESPONSE = 0.05
"""Phase-correlation peaks below this are not trusted (the sample clips' weakest: 0.11–0.18)."""
DEADBAND = 1.5
"""Shifts smaller than this (px) are taken as none: on the still sample clip the measurement
wanders by up to 1 px (median 0.2), and a still camera's pictures are not to be moved about."""
MIN_VISIBLE = 0.4
"""The share of the picture that must be left when the excluded boxes are taken out."""
MAX_SHIFT = 0.06
"""The largest sway taken, as a share of the picture's width (a camera that pans is not swaying:
the pedestrian clip's handheld pan measured 100 px at 1280 wide)."""
REFERENCE_AFTER = 25
"""Weak pictures in a row after which the current picture becomes the reference."""


def _dead(shift: float) -> int:
    """``shift`` rounded, 0 within :data:`DEADBAND`."""
    return round(shift) if abs(shift) >= DEADBAND else 0


class CameraSway:
    """The picture's shift ``(dx, dy)`` in pixels from where the camera was calibrated."""

    def __init__(self) -> None:
        self._ref: NDArray[np.float32] | None = None
        self._window: NDArray[np.float32] | None = None
        self._scale = 1.0
        self._shape: tuple[int, ...] = (0, 0)
        self._base = (0.0, 0.0)  # the reference picture's shift from the first one
        self._moved = (0.0, 0.0)  # the last picture's shift from the first one
        self._sum = (0.0, 0.0)
        self._n = 0
        self._weak = 0
        self.offset = (0, 0)

    def _grey(self, image: ImageBGR) -> NDArray[np.float32]:
        small: ImageBGR = image
        if self._scale < 1.0:
            small = np.asarray(
                cv2.resize(
                    image, None, fx=self._scale, fy=self._scale, interpolation=cv2.INTER_AREA
                ),
                np.uint8,
            )
        return np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), np.float32)

    def _reference(self, image: ImageBGR) -> None:
        self._shape = image.shape[:2]
        self._scale = min(1.0, WORK_SIDE / max(1, image.shape[1]))
        self._ref = self._grey(image)
        self._window = np.asarray(
            cv2.createHanningWindow(self._ref.shape[::-1], cv2.CV_32F), np.float32
        )
        self._base, self._weak = self._moved, 0

    def _mask(self, exclude: Sequence[PixelBox]) -> NDArray[np.bool_]:
        """True where the picture is measured: outside the ``exclude`` boxes (full-size pixels,
        grown by :data:`EXCLUDE_MARGIN` of their size)."""
        assert self._ref is not None
        h, w = self._ref.shape
        keep = np.ones((h, w), np.bool_)
        for x1, y1, x2, y2 in exclude:
            mx, my = EXCLUDE_MARGIN * (x2 - x1), EXCLUDE_MARGIN * (y2 - y1)
            a, b = max(0, int((x1 - mx) * self._scale)), max(0, int((y1 - my) * self._scale))
            c = min(w, int(np.ceil((x2 + mx) * self._scale)))
            d = min(h, int(np.ceil((y2 + my) * self._scale)))
            keep[b:d, a:c] = False
        return keep

    def update(self, image: ImageBGR, exclude: Sequence[PixelBox] = ()) -> tuple[int, int]:
        """The shift of ``image`` (an undamaged picture) from where the camera was calibrated.
        ``exclude``: parts of the picture that change by themselves and must not be taken for
        motion — the signal heads (a lamp going out in one cell and lighting in another looks
        like a shift of the head) and the vehicles and people of the last analysed picture (a
        car filling a third of the picture moves it as a whole: on the Beijing checkpoint clip,
        where cars fill the frame, the shift measured with nothing left out went to 138 px).
        A picture with less than :data:`MIN_VISIBLE` of it left, or whose shift comes out over
        :data:`MAX_SHIFT` of its width, is not measured: the last shift holds."""
        ref = self._ref
        if ref is None or image.shape[:2] != self._shape:
            self._reference(image)
        else:
            mask = self._mask(exclude)
            if float(mask.mean()) < MIN_VISIBLE:
                return self.offset  # too little still picture to measure: the last shift holds
            level = float(ref.mean())
            (dx, dy), response = cv2.phaseCorrelate(
                np.where(mask, ref, level).astype(np.float32),
                np.where(mask, self._grey(image), level).astype(np.float32),
                self._window,
            )
            limit = MAX_SHIFT * ref.shape[1]
            if response >= MIN_RESPONSE and abs(dx) <= limit and abs(dy) <= limit:
                self._weak = 0
                self._moved = (
                    self._base[0] + dx / self._scale,
                    self._base[1] + dy / self._scale,
                )
            else:
                self._weak += 1
                if self._weak < REFERENCE_AFTER:
                    return self.offset  # nothing measured: the last shift holds
                self._reference(image)
        self._n += 1
        self._sum = (self._sum[0] + self._moved[0], self._sum[1] + self._moved[1])
        dx = self._moved[0] - self._sum[0] / self._n
        dy = self._moved[1] - self._sum[1] / self._n
        self.offset = (_dead(dx), _dead(dy))
        return self.offset
