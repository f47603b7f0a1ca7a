"""What the detector is shown of a noisy picture: sensor noise measured, and filtered when it is
high enough to blind the detector.

A camera at dusk or at night raises its gain and its pictures carry sensor noise. The COCO
detector is fragile with it: on hanoi_b with added temporal noise (``ffmpeg -vf
noise=alls=N:allf=t``; measured noise σ 5.8 / 11.4 / 16.8 grey levels) yolov5n found 177 / 102 /
26 of the 215 objects (score ≥ 0.3) it finds on nine sampled clean pictures. An edge-preserving
filter given the noise's own level gets most of them back (188 / 156 / 100 with one bilateral
pass, 187 / 166 / 141 with two), at 5–10 ms a 640×480 picture; NL-means did little better
(211 / 177 / 142) at ~190 ms. Through ``analyze`` on the whole clip (15 labelled runners, clean:
15 charged, 156 vehicle passes), before → after, every charge a labelled runner:

=========================  =================  ====================
noise (σ)                  runners charged    vehicle passes
=========================  =================  ====================
alls=10 (5.8), 3 seeds     15, 15, 15 → 14,   127, 125, 136 →
                           15, 15             135, 130, 146
alls=15 (8.6), 2 seeds     14, 15 → 14, 14    119, 121 → 136, 137
alls=20 (11.4)             10 → 14            93 → 116
alls=30 (16.8)             1 → 12             30 → 98
=========================  =================  ====================

Below σ ≈ 9 a runner more or less is chance (hb09, a small motorbike, flips either way with
the noise's seed); above it the filter is what keeps the camera working. Bicycles, thin, lose
a little (non-motor passes 2 → 1 at alls=20). Plates are read on the same filter
(``PlateReader.read(..., noise=)``, the picture's noise): the Beijing checkpoint clip with noise
(its detector input 192×320) read 7/8 and 6/8 plates at alls=20 (two seeds) before, 5/8 and
6/8 with only the detector's view filtered, **6/8 and 8/8** with the plate regions filtered
too; 8/8 at alls=12 throughout; 0 false plates in every run.

1. **Noise level** (:func:`noise_sigma`): the standard deviation of the picture's noise in 8-bit
   grey levels, from the median absolute response of a Laplacian-difference kernel that cancels
   plane and ramp (Immerkær 1996, "Fast noise variance estimation", CVIU 64(2): the kernel and
   the factor √(π/2)/6 for the mean; the median, ×1.4826, is used here instead of the mean so
   that edges and texture, a minority of pixels, do not count as noise). It is the noise of
   the grey picture: independent noise per colour channel reads about 0.67 of it. Measured:
   the seven sample clips 0.25–1.5; hanoi_b with noise added 2.7, 5.8, 8.6, 11.4, 16.8.
2. **Gate** (:class:`DetectorDenoise`): measured on a centre crop once per
   :data:`MEASURE_EVERY_S` of stream time, on the picture resized as the detector resizes it,
   and smoothed. At or above :data:`NOISE_ON` the detector sees the picture filtered: a
   bilateral filter (d 9, σ space 9) with σ colour :data:`SIGMA_COLOUR_PER_NOISE` × the noise
   level, twice above :data:`TWO_PASSES_FROM`. A picture larger than the detector's input is
   first averaged down to it (``INTER_AREA``: k × k pixels averaged leave 1/k of the noise)
   and filtered only if the noise left still calls for it — a 1920 × 1080 pass costs ~70 ms on
   one core, 640 × 360 ~7 ms; the boxes found are scaled back to the frame's pixels.
   highway_1280x720 with ``noise=alls=20``: 31 → 37 vehicle passes (clear: 44).
3. **Only what is looked for.** The detector's view, and the region a plate is read from;
   tracks, crops, colours and every evidence picture keep the camera's own pixels: the
   evidence shows what the camera recorded, and the colour stages average pixels anyway.
   Frames kept on the GPU (``Frame.device_image``) are not filtered (limit).
"""

from __future__ import annotations

import cv2
import numpy as np

from sharpeyes.pipeline.types import ImageBGR

__all__ = [
    "MEASURE_EVERY_S",
    "NOISE_ON",
    "SIGMA_COLOUR_PER_NOISE",
    "TWO_PASSES_FROM",
    "DetectorDenoise",
    "noise_sigma",
]

NOISE_ON = 3.5
"""Noise σ (grey levels, as the detector sees the picture) from which the detector's view is
filtered. The sample clips measure 0.25–1.5; at σ 2.7 the detector lost 5 % of its objects and
filtering did not get them back (205 → 204–211 of 215), at 5.8 it lost 18 % (177 → 188)."""

SIGMA_COLOUR_PER_NOISE = 5.0
"""The bilateral filter's σ colour per level of noise σ (best of 3–6× on the noisy hanoi_b
copies: smaller leaves the noise, larger smooths small objects away)."""

TWO_PASSES_FROM = 8.0
"""Noise σ from which the filter runs twice (σ 11.4: 156 → 166 of 215 objects; σ 16.8:
100 → 141)."""

MEASURE_EVERY_S = 1.0
"""Stream seconds between two noise measurements (noise follows the light: it changes over
minutes, not frames)."""

SMOOTHING = 0.3
"""Weight of a new measurement in the running noise level."""

CROP = (480, 640)
"""At most this many rows and columns from the picture's centre are measured."""

_KERNEL = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], np.float32)
_MAD_TO_SIGMA = 1.4826


def noise_sigma(image: ImageBGR) -> float:
    """The σ of the picture's noise in 8-bit grey levels (module docstring, step 1), measured on
    at most :data:`CROP` pixels from its centre: the median over every other row and column of
    the filter's response (a quarter of it: on frames of highway, Beijing and hanoi_b, clean and
    with noise σ 6 and 11 added, the same σ or one quantisation step of the response away, for
    a third of the time — 2.6–6.6 → 0.9–1.8 ms)."""
    h, w = image.shape[:2]
    ch, cw = min(h, CROP[0]), min(w, CROP[1])
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = image[y0 : y0 + ch, x0 : x0 + cw]
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    response = cv2.filter2D(grey.astype(np.float32), -1, _KERNEL)[1:-1:2, 1:-1:2]
    # the kernel's response to white noise of σ 1 has σ 6 (1+4+1+4+16+4+1+4+1 = 36)
    return float(np.median(np.abs(response))) * _MAD_TO_SIGMA / 6.0


class DetectorDenoise:
    """The picture the detector is shown: the frame itself, or filtered when its noise (at the
    detector's scale) is at least ``on`` (module docstring). One per camera (it keeps the
    camera's running noise level); ``detector_side`` is the longest side the detector resizes
    a picture to (its input size; 0 = unknown: measured as it comes)."""

    def __init__(self, detector_side: int = 0, on: float = NOISE_ON) -> None:
        self.detector_side = detector_side
        self.on = on
        self.level: float | None = None  # the running noise σ as the detector sees pictures
        self.full_level: float | None = None  # … and at the pictures' own size
        self._measured_at: float | None = None
        self.filtered = 0  # pictures the detector saw filtered

    @property
    def active(self) -> bool:
        """Whether the detector is being shown filtered pictures (at the last measurement)."""
        return self.level is not None and self.level >= self.on

    def _seen(self, image: ImageBGR) -> ImageBGR:
        """The picture at the size the detector resizes it to (bilinear, as it does: a
        bilinear shrink averages the noise away only at some ratios — 1920 → 640 px samples
        pixel centres and keeps all of it — so it is measured, not assumed)."""
        h, w = image.shape[:2]
        side = max(h, w)
        if self.detector_side <= 0 or side <= self.detector_side:
            return image
        scale = self.detector_side / side
        return np.asarray(cv2.resize(image, (round(w * scale), round(h * scale))), np.uint8)

    def _measure(self, image: ImageBGR) -> None:
        """Update the running noise as the detector sees the picture (``level``, which decides)
        and at the picture's own size (``full_level``: what shrinking by averaging divides)."""
        shown = self._seen(image)
        seen = noise_sigma(shown)
        full = noise_sigma(image) if shown is not image else seen
        if self.level is None or self.full_level is None:
            self.level, self.full_level = seen, full
            return
        self.level = (1.0 - SMOOTHING) * self.level + SMOOTHING * seen
        self.full_level = (1.0 - SMOOTHING) * self.full_level + SMOOTHING * full

    def __call__(self, image: ImageBGR, pts: float) -> ImageBGR:
        """The picture the detector is shown, at the picture's own size."""
        view, _ = self.view(image, pts, shrink=False)
        return view

    def view(self, image: ImageBGR, pts: float, *, shrink: bool = True) -> tuple[ImageBGR, float]:
        """The picture the detector is shown and the factor from its pixels to ``image``'s.

        A noisy picture larger than the detector's input is first shrunk to it by pixel
        averaging (``INTER_AREA``: averaging k × k pixels divides independent noise by k, and
        filtering 640 px costs a tenth of filtering 1920), then filtered if the noise left is
        still at least ``on``; the detector's boxes are then in the shrunk picture's pixels,
        × the returned factor in ``image``'s. ``shrink=False`` keeps the picture's size."""
        if self._measured_at is None or abs(pts - self._measured_at) >= MEASURE_EVERY_S:
            self._measure(image)
            self._measured_at = pts
        noise = self.level if self.level is not None else 0.0
        if noise < self.on:
            return image, 1.0
        self.filtered += 1
        h, w = image.shape[:2]
        factor = 1.0
        if shrink and 0 < self.detector_side < max(h, w):
            scale = self.detector_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
            factor = 1.0 / scale
            noise = (self.full_level or 0.0) * scale  # what averaging the pixels left
            if noise < self.on:
                return image, factor
        colour = SIGMA_COLOUR_PER_NOISE * noise
        out = cv2.bilateralFilter(image, 9, colour, 9)
        if noise >= TWO_PASSES_FROM:
            out = cv2.bilateralFilter(out, 9, colour, 9)
        return np.asarray(out, np.uint8), factor
