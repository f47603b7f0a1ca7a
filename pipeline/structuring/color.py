"""A simple, documented colour model for vehicle bodies → GA/T ColorType names.

Method (``docs/STRUCTURING.md`` has the measurements):

1. **Region.** Vehicle bodies are sampled where a checkpoint camera sees paint: when the plate
   is known, the bonnet above it — x within ±1.5 plate widths of the plate centre, y from 1.7
   to 0.8 plate widths above the plate's top (a plate is 0.44 m wide; grille and lamps fill
   the first ~0.8 plate widths above it, the windscreen starts ~1.8 above it in a high front
   view — measured on cars of the labelled clip). Without a plate, the middle 60 % of the
   vehicle box's width and 55–80 % of its height (the bonnet of a car seen from the front
   and above; 40–75 % hit the windscreen on highway_1280x720). Regions are clipped to the frame.
2. **White balance.** The frame's grey-world gains (:func:`grey_world_gains`, over its
   unsaturated mid-tones: the road) are applied to the region first, so that a warm evening
   or a cool overcast cast does not turn white into orange or grey into blue.
3. **Pixels.** Each pixel gets one colour by HSV (OpenCV ranges H 0–179, S/V 0–255): dark
   (V < ``black_v``, unless it is saturated dark paint: S ≥ ``dark_paint_s`` and V ≥
   ``dark_paint_v``) → black; low saturation (S < ``grey_s``) → white when V ≥ ``white_v``,
   else grey (silver counts as grey, ColorType 3); otherwise the hue bin (red, orange, yellow,
   green, cyan, blue, purple, pink; crimson H ≥ 160 is red) with dim orange (V < ``brown_v``)
   → brown.
4. **Vote.** Chromatic pixels count ``chroma_weight`` times (highlights, windscreen edges and
   shadows dilute a painted body's colour far more than they add colour to a grey one); the
   colour with the largest weighted count wins, and its share is the confidence. Over a track,
   the stage sums share × region pixels per colour over its reads.

The thresholds are hand-set from looking at the two labelled sets (STRUCTURING.md) — small
sets, not a trained model; the measured accuracy there is far below the 90 % goal (silver vs
white and dark colours are where it fails).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.types import Box, ImageBGR

__all__ = ["BODY_COLORS", "ColorModel", "ColorVote", "body_region", "grey_world_gains"]

BODY_COLORS: tuple[str, ...] = (
    "black",
    "white",
    "grey",
    "red",
    "blue",
    "yellow",
    "orange",
    "brown",
    "green",
    "purple",
    "cyan",
    "pink",
)
_CHROMATIC = frozenset(
    ("red", "blue", "yellow", "orange", "brown", "green", "purple", "cyan", "pink")
)
_INDEX = {name: i for i, name in enumerate(BODY_COLORS)}
MAX_SIDE = 64
"""Regions are shrunk to at most this many pixels on their longer side before voting."""


def _weights(chroma: float) -> NDArray[np.float64]:
    return np.array([chroma if c in _CHROMATIC else 1.0 for c in BODY_COLORS], np.float64)


# hue bins (upper bound exclusive, OpenCV hue 0–179) → colour
_HUE_BINS: tuple[tuple[int, str], ...] = (
    (8, "red"),
    (20, "orange"),
    (34, "yellow"),
    (85, "green"),
    (100, "cyan"),
    (130, "blue"),
    (150, "purple"),
    (160, "pink"),
    (180, "red"),
)


@dataclass(frozen=True, slots=True)
class ColorVote:
    """A region's colour, its (weighted) share of the pixels and the pixel count."""

    color: str
    share: float
    pixels: int


def _clip(xyxy: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = xyxy
    return max(0, int(x1)), max(0, int(y1)), min(w, int(x2)), min(h, int(y2))


def body_region(
    image: ImageBGR, vehicle: Box | None, plate: Box | None
) -> tuple[int, int, int, int] | None:
    """The body region (x1, y1, x2, y2) in pixels, or None when it is (almost) empty."""
    h, w = image.shape[:2]
    if plate is not None:
        pw = plate.x2 - plate.x1
        cx = (plate.x1 + plate.x2) / 2
        r = _clip((cx - 1.5 * pw, plate.y1 - 1.7 * pw, cx + 1.5 * pw, plate.y1 - 0.8 * pw), w, h)
    elif vehicle is not None:
        bw, bh = vehicle.x2 - vehicle.x1, vehicle.y2 - vehicle.y1
        r = _clip(
            (
                vehicle.x1 + 0.2 * bw,
                vehicle.y1 + 0.55 * bh,
                vehicle.x2 - 0.2 * bw,
                vehicle.y1 + 0.8 * bh,
            ),
            w,
            h,
        )
    else:
        return None
    if (r[2] - r[0]) * (r[3] - r[1]) < 64:
        return None
    return r


def grey_world_gains(image: ImageBGR, step: int = 4) -> NDArray[np.float32]:
    """Per-channel (B, G, R) gains that make the frame's unsaturated mid-tones neutral.

    Grey-world over pixels with S < 60 and 40 < V < 220 (road, kerb, concrete — what a traffic
    camera mostly sees), on every ``step``-th pixel. Ones when too few such pixels exist.
    """
    sample = np.ascontiguousarray(image[::step, ::step])
    hsv = cv2.cvtColor(sample, cv2.COLOR_BGR2HSV).reshape(-1, 3)
    keep = (hsv[:, 1] < 60) & (hsv[:, 2] > 40) & (hsv[:, 2] < 220)
    if int(keep.sum()) < 100:
        return np.ones(3, np.float32)
    mean = sample.reshape(-1, 3)[keep].astype(np.float32).mean(axis=0)
    gains: NDArray[np.float32] = (mean.mean() / np.maximum(mean, 1.0)).astype(np.float32)
    return np.clip(gains, 0.5, 2.0)


@dataclass(frozen=True, slots=True)
class ColorModel:
    """The pixel rules of the module docstring; fields are the thresholds."""

    black_v: int = 50
    dark_paint_s: int = 120
    dark_paint_v: int = 20
    grey_s: int = 45
    white_v: int = 170
    brown_v: int = 110
    chroma_weight: float = 2.0

    def pixel_labels(
        self, region: ImageBGR, gains: NDArray[np.float32] | None = None
    ) -> NDArray[np.uint8]:
        """One colour per pixel (row-major), as an index into :data:`BODY_COLORS`."""
        if gains is not None:
            region = np.clip(region.astype(np.float32) * gains, 0, 255).astype(np.uint8)
        hsv = cv2.cvtColor(region, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
        hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
        labels = np.zeros(len(hsv), np.uint8)
        lo = 0
        for hi, name in _HUE_BINS:
            labels[(hue >= lo) & (hue < hi)] = _INDEX[name]
            lo = hi
        labels[(labels == _INDEX["orange"]) & (val < self.brown_v)] = _INDEX["brown"]
        low = sat < self.grey_s
        labels[low] = np.where(val[low] >= self.white_v, _INDEX["white"], _INDEX["grey"])
        dark_paint = (sat >= self.dark_paint_s) & (val >= self.dark_paint_v)
        labels[(val < self.black_v) & ~dark_paint] = _INDEX["black"]
        return labels

    def classify(
        self, region: ImageBGR, gains: NDArray[np.float32] | None = None
    ) -> ColorVote | None:
        """The region's colour (see the module docstring), None for an empty region.

        Regions larger than ``MAX_SIDE`` pixels are subsampled first (nearest pixel, which keeps the
        pixel distribution; averaging would turn highlights into grey): colour needs
        no detail, and the cost stays a fraction of a millisecond.
        """
        if region.size == 0:
            return None
        h, w = region.shape[:2]
        scale = MAX_SIDE / max(h, w)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            region = np.asarray(cv2.resize(region, size, interpolation=cv2.INTER_NEAREST), np.uint8)
        labels = self.pixel_labels(region, gains)
        weight = np.bincount(labels, minlength=len(BODY_COLORS)).astype(np.float64) * _weights(
            self.chroma_weight
        )
        best = int(np.argmax(weight))
        return ColorVote(BODY_COLORS[best], float(weight[best] / weight.sum()), h * w)
