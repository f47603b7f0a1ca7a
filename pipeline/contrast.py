"""What the detector is shown of a washed-out picture: the picture's tonal range measured, and
stretched when haze, fog, a dirty dome or a lens flare has squeezed it.

A veil of light over the scene (haze, fog, a dirty or scratched dome cover, a low sun flaring
in the lens) lifts the dark tones and squeezes the picture's range; the COCO detector loses the
objects whose outline it no longer sees. On hanoi_b with a veil (``ffmpeg -vf
eq=contrast=0.55:brightness=0.12:saturation=0.6``: grey range 123–129 levels instead of
224–234) yolov5n found 166 of the 215 objects (score ≥ 0.3) it finds on nine sampled clear
pictures, and 207 on the same pictures stretched back to the full range (CLAHE: 195; the
stretch on the clear pictures: 214). Through ``analyze`` on the whole clip (15 labelled runners;
clear: 15 charged, 156 vehicle passes), before → after, every charge a labelled runner:

=============================================  =========  ===============  ==============
veil (``eq=…``)                                range      runners          vehicle passes
=============================================  =========  ===============  ==============
``contrast=0.7:brightness=0.08:saturation=0.75``  160     14 → 15          138 → 154
``contrast=0.55:brightness=0.12:saturation=0.6``  126     12 → 14          120 → 142
``contrast=0.4:brightness=0.2:saturation=0.5``    92      10 → 15          88 → 141
``contrast=0.5:brightness=-0.12`` (dull, dark)    114     12 → 15          135 → 144
=============================================  =========  ===============  ==============

1. **Range** (:func:`tonal_range`): the 0.5th and 99.5th percentiles of the grey picture (a
   few specular highlights, a lamp or burnt-in text do not set it), measured once per
   :data:`MEASURE_EVERY_S` of stream time and smoothed. The seven sample clips measure 154–251
   levels on single pictures (154: a light car filling the checkpoint picture for a moment;
   smoothed, the checkpoint camera stays over 180), the veiled copies 92–160.
2. **Gate and stretch** (:class:`DetectorContrast`): at a range under :data:`RANGE_ON` *with
   the darkest tones lifted* (the 0.5th percentile at least :data:`LIFT_ON` levels above black:
   a veil adds light) the detector sees the picture mapped linearly from [low, high] to
   [0, 255] (one table lookup), the gain at most :data:`MAX_GAIN` (a nearly flat picture is not
   blown up into noise). A picture that is only dark (its blacks at 0: under-exposed, not
   veiled) is left as it is: hanoi_b darkened (``eq=brightness=-0.25:contrast=0.6``, range
   128, blacks 0) gave 14/15 and 0 false as it is, and stretched ×2 (its few levels and their
   compression artefacts with them) 14/15 and 1 false — hb04 charged late on a neighbour's
   box in the queue.
3. **Only the detector's view**, as :mod:`sharpeyes.pipeline.denoise`: tracks, crops, plates,
   colours and evidence keep the camera's own pixels. Frames kept on the GPU are not
   stretched (limit).
"""

from __future__ import annotations

import cv2
import numpy as np

from sharpeyes.pipeline.types import ImageBGR

__all__ = [
    "LIFT_ON",
    "MAX_GAIN",
    "MEASURE_EVERY_S",
    "RANGE_ON",
    "DetectorContrast",
    "tonal_range",
]

RANGE_ON = 180.0
"""Grey range (levels between the 0.5th and 99.5th percentile) under which the detector's view
is stretched. At 140 the light veil (range 160) was left as it was and lost a runner and 18
vehicle passes; at 180 it is stretched, and the sample clips (smoothed: over 180; clear
pictures 211–251) are not — the Beijing checkpoint clip's plates 8/8 either way."""

LIFT_ON = 30.0
"""Levels above black of the picture's darkest tones (0.5th percentile) from which a squeezed
range is taken for a veil: the veiled copies 35–144, the sample clips 2–25 (a light car filling
the checkpoint picture: up to 91 on single pictures, with its range over 180), a darkened
copy 0."""

MAX_GAIN = 3.0
"""The largest stretch (a picture of less than 85 levels is stretched to 3× its range)."""

MEASURE_EVERY_S = 1.0
"""Stream seconds between two measurements (a veil changes with the weather and the sun)."""

SMOOTHING = 0.3
"""Weight of a new measurement in the running low and high."""

PERCENTILES = (0.5, 99.5)
MAX_SAMPLES = 200_000
"""At most this many pixels are sampled (every n-th row and column) for the percentiles."""


def tonal_range(image: ImageBGR) -> tuple[float, float]:
    """The grey picture's (0.5th, 99.5th) percentiles, sampled on a grid of at most
    :data:`MAX_SAMPLES` pixels."""
    h, w = image.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / MAX_SAMPLES))))
    sample = np.ascontiguousarray(image[::step, ::step])
    grey = sample if sample.ndim == 2 else cv2.cvtColor(sample, cv2.COLOR_BGR2GRAY)
    hist = np.bincount(grey.ravel(), minlength=256).cumsum()
    total = float(hist[-1])
    low = float(np.searchsorted(hist, PERCENTILES[0] / 100.0 * total))
    high = float(np.searchsorted(hist, PERCENTILES[1] / 100.0 * total))
    return low, high


class DetectorContrast:
    """The picture the detector is shown: the frame itself, or stretched to the full range
    when its tonal range is under ``on`` and its blacks are lifted (module docstring). One per
    camera (it keeps the camera's running range)."""

    def __init__(self, on: float = RANGE_ON) -> None:
        self.on = on
        self.low: float | None = None
        self.high: float | None = None
        self._measured_at: float | None = None
        self._lut: np.ndarray | None = None
        self.stretched = 0  # pictures the detector saw stretched

    @property
    def span(self) -> float | None:
        """The running grey range (levels); None before a measurement."""
        if self.low is None or self.high is None:
            return None
        return self.high - self.low

    @property
    def active(self) -> bool:
        """Whether the detector is being shown the picture stretched (at the last measurement)."""
        return self._lut is not None

    def __call__(self, image: ImageBGR, pts: float) -> ImageBGR:
        if self._measured_at is None or abs(pts - self._measured_at) >= MEASURE_EVERY_S:
            self._measure(image)
            self._measured_at = pts
        if self._lut is None:
            return image
        self.stretched += 1
        return np.asarray(cv2.LUT(image, self._lut), np.uint8)

    def _measure(self, image: ImageBGR) -> None:
        low, high = tonal_range(image)
        if self.low is None or self.high is None:
            self.low, self.high = low, high
        else:
            self.low = (1.0 - SMOOTHING) * self.low + SMOOTHING * low
            self.high = (1.0 - SMOOTHING) * self.high + SMOOTHING * high
        span = self.high - self.low
        if span >= self.on or span <= 0 or self.low < LIFT_ON:
            self._lut = None
            return
        gain = min(MAX_GAIN, 255.0 / span)
        centre = (self.low + self.high) / 2.0
        levels = (np.arange(256, dtype=np.float32) - centre) * gain + 127.5
        self._lut = np.clip(np.round(levels), 0, 255).astype(np.uint8)
