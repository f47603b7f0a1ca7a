"""Self-calibrating colour of a vehicle body or a garment → GA/T 1400 ColorType names.

Everything is measured against the object's own surroundings in the same frame, so nothing is
tuned to a clip:

1. **Backdrop.** A ring around the object's box (the box grown by ``ring`` of its size, minus the
   box) is sampled; its unsaturated pixels are the road / pavement. Their mean gives grey-world
   gains (the backdrop is made neutral: a warm evening or a blue overcast cast is removed) and,
   after balancing, the backdrop's lightness ``L*`` — the frame's exposure at the object.
2. **Region.** Vehicles: the box inset at the sides and cut at the bottom (wheels, shadow,
   road) — the body, bonnet and roof; windows stay in and are handled by the statistics.
   Persons: the upper body (coat, 20–50 % of the box height) and the lower body (trousers,
   55–85 %), the middle of the box's width.
3. **Pixels.** The balanced region (at most ``MAX_SIDE`` px a side) is converted to CIELAB.
   A pixel is *chromatic* when its chroma ``C*`` ≥ ``chroma_min`` (a little less for dark pixels:
   dark paint has little chroma to show) and it is not road-like (near the backdrop's colour).
4. **Decision.** When the chromatic pixels are at least ``chroma_share`` of the region, the colour
   is the hue bin (CIELAB hue angle) holding most chromatic weight, with orange/brown and
   red/pink split by lightness. Otherwise the object is achromatic and its lightness decides:
   the ``paint_quantile`` of the achromatic pixels' ``L*`` (windows, tyres and shadows are
   darker than paint, so an upper quantile reads the paint) compared with absolute limits
   *and* with the backdrop's ``L*``: black below ``black_l``, white above ``white_l`` when also
   ``white_over_road`` above the backdrop, grey (silver) between.
5. **Track.** :func:`vote` sums the reads of one track (share × pixels per colour).

Cost: one ``cvtColor`` on ≤ 48×48 pixels plus the ring sample, well under 1 ms per crop
(``benchmarks/colour_eval.py`` measures it). Accuracy on labelled clips: ``docs/STRUCTURING.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.types import Box, ImageBGR

__all__ = [
    "MAX_SIDE",
    "Backdrop",
    "ColourRules",
    "ColourVote",
    "Region",
    "backdrop",
    "classify_box",
    "coat_region",
    "trousers_region",
    "vehicle_region",
    "vote",
]

MAX_SIDE = 48
"""Regions are sampled (nearest pixel) to at most this many pixels a side."""

Region = tuple[float, float, float, float]
"""A region as fractions (x1, y1, x2, y2) of a box."""

# CIELAB hue angle bins (degrees, upper bound exclusive) → colour; chromatic only
_HUE_BINS: tuple[tuple[float, str], ...] = (
    (20.0, "pink"),  # magenta-red side; red when dark or saturated (hue_names)
    (50.0, "red"),
    (75.0, "orange"),
    (105.0, "yellow"),
    (165.0, "green"),
    (215.0, "cyan"),
    (315.0, "blue"),  # sRGB pure blue is at 306°
    (345.0, "purple"),
    (360.0, "pink"),
)


@dataclass(frozen=True, slots=True)
class ColourVote:
    """A region's colour, the share of the region's weight behind it, and its pixel count."""

    color: str
    share: float
    pixels: int


@dataclass(frozen=True, slots=True)
class Backdrop:
    """The object's surroundings: white-balance gains (B, G, R) and the balanced ``L*``."""

    gains: NDArray[np.float32]
    lightness: float

    @staticmethod
    def neutral(lightness: float = 50.0) -> Backdrop:
        return Backdrop(np.ones(3, np.float32), lightness)


def _clip_box(xyxy: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = xyxy
    return max(0, int(x1)), max(0, int(y1)), min(w, round(x2)), min(h, round(y2))


def _sample(img: ImageBGR, max_side: int) -> ImageBGR:
    h, w = img.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / max_side)))
    return img[::step, ::step]


def backdrop(image: ImageBGR, box: Box, ring: float = 0.3, max_side: int = 64) -> Backdrop:
    """White balance and exposure from the unsaturated pixels around ``box`` (see step 1).

    Falls back to neutral gains (and ``L*`` 50) when fewer than 32 such pixels exist.
    """
    h, w = image.shape[:2]
    bw, bh = box.x2 - box.x1, box.y2 - box.y1
    ox1, oy1, ox2, oy2 = _clip_box(
        (box.x1 - ring * bw, box.y1 - ring * bh, box.x2 + ring * bw, box.y2 + ring * bh), w, h
    )
    if ox2 - ox1 < 2 or oy2 - oy1 < 2:
        return Backdrop.neutral()
    step = max(1, int(np.ceil(max(ox2 - ox1, oy2 - oy1) / max_side)))
    ys = np.arange(oy1, oy2, step)[:, None]
    xs = np.arange(ox1, ox2, step)[None, :]
    outside = (xs < box.x1) | (xs >= box.x2) | (ys < box.y1) | (ys >= box.y2)
    px = image[oy1:oy2:step, ox1:ox2:step][outside].astype(np.float32)
    if len(px) < 32:
        return Backdrop.neutral()
    mx, mn = px.max(axis=1), px.min(axis=1)
    grey = ((mx - mn) < 0.25 * np.maximum(mx, 1.0)) & (mx > 30) & (mx < 235)
    if int(grey.sum()) < 32:
        return Backdrop.neutral()
    mean = px[grey].mean(axis=0)
    gains = np.clip(mean.mean() / np.maximum(mean, 1.0), 0.6, 1.6).astype(np.float32)
    lum, _, _ = _lab(px[grey], gains)
    return Backdrop(gains, float(np.median(lum)))


def _lab(
    bgr: NDArray[np.uint8] | NDArray[np.float32], gains: NDArray[np.float32]
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """CIELAB (``L*`` 0–100, ``a*``, ``b*``) of balanced BGR pixels (N×3), via OpenCV's 8-bit
    conversion (a table lookup, several times cheaper than the float one)."""
    balanced = np.clip(bgr.astype(np.float32) * gains, 0, 255).astype(np.uint8).reshape(-1, 1, 3)
    lab = cv2.cvtColor(balanced, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
    return lab[:, 0] * (100.0 / 255.0), lab[:, 1] - 128.0, lab[:, 2] - 128.0


_HUE_EDGES = np.array([hi for hi, _ in _HUE_BINS], np.float32)
_NAMES: tuple[str, ...] = (
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
_IDX = {n: i for i, n in enumerate(_NAMES)}
_BIN_IDX = np.array([_IDX[name] for _, name in _HUE_BINS], np.int64)


def hue_names(
    hue: NDArray[np.float32], lum: NDArray[np.float32], chroma: NDArray[np.float32]
) -> NDArray[np.int64]:
    """Colour index (into ``_NAMES``) per chromatic pixel from CIELAB hue angle, ``L*``, ``C*``."""
    idx = _BIN_IDX[np.minimum(np.searchsorted(_HUE_EDGES, hue, side="right"), len(_BIN_IDX) - 1)]
    crimson = (hue < 20.0) | (hue >= 345.0)
    deep = (lum < 55.0) | (chroma > 45.0)
    idx = np.where((idx == _IDX["pink"]) & crimson & deep, _IDX["red"], idx)
    idx = np.where((idx == _IDX["orange"]) & (lum < 45.0), _IDX["brown"], idx)
    out: NDArray[np.int64] = np.where((idx == _IDX["yellow"]) & (lum < 40.0), _IDX["brown"], idx)
    return out


@dataclass(frozen=True, slots=True)
class ColourRules:
    """The thresholds of the module docstring (CIELAB units: ``L*`` 0–100, ``C*``)."""

    chroma_min: float = 10.0
    chroma_share: float = 0.15
    road_delta: float = 12.0
    black_l: float = 30.0
    black_over_road: float = 12.0
    white_l: float = 86.0
    white_over_road: float = 38.0
    paint_quantile: float = 0.75
    light_quantile: float = 0.9

    def classify(self, region: ImageBGR, scene: Backdrop) -> ColourVote | None:
        """The region's colour (steps 3–4 of the module docstring); None when empty."""
        if region.size == 0:
            return None
        pixels = int(region.shape[0] * region.shape[1])
        lum, a, b = _lab(_sample(region, MAX_SIDE).reshape(-1, 3), scene.gains)
        chroma = np.hypot(a, b)
        road_like = np.hypot(lum - scene.lightness, chroma) < self.road_delta  # ΔE to backdrop
        chromatic = (chroma >= self.chroma_min) & ~road_like
        if chromatic.any():
            hue = (np.degrees(np.arctan2(b[chromatic], a[chromatic])) % 360.0).astype(np.float32)
            idx = hue_names(hue, lum[chromatic], chroma[chromatic])
            counts = np.bincount(idx, minlength=len(_NAMES))
            best = int(np.argmax(counts))
            share = float(counts[best]) / len(lum)
            if share >= self.chroma_share:
                return ColourVote(_NAMES[best], share, pixels)
        return self._achromatic(lum, scene, pixels)

    def _achromatic(self, lum: NDArray[np.float32], scene: Backdrop, pixels: int) -> ColourVote:
        ordered = np.sort(lum)
        last = len(ordered) - 1
        paint = float(ordered[int(self.paint_quantile * last)])
        light = float(ordered[int(self.light_quantile * last)])
        over_road = float(paint) - scene.lightness
        if paint < self.black_l or over_road < self.black_over_road:
            return ColourVote("black", 1.0, pixels)
        if light >= self.white_l and over_road >= self.white_over_road:
            return ColourVote("white", 1.0, pixels)
        return ColourVote("grey", 1.0, pixels)


def _sub_box(box: Box, frac: Region) -> Box:
    bw, bh = box.x2 - box.x1, box.y2 - box.y1
    return Box(
        box.x1 + frac[0] * bw,
        box.y1 + frac[1] * bh,
        box.x1 + frac[2] * bw,
        box.y1 + frac[3] * bh,
        box.frame_w,
        box.frame_h,
    )


def vehicle_region(box: Box) -> Box:
    """The body of a vehicle: the box inset 15 % at the sides, 10 % at the top, 25 % at the
    bottom (wheels, shadow, plate)."""
    return _sub_box(box, (0.15, 0.1, 0.85, 0.75))


def coat_region(box: Box) -> Box:
    """The upper body of a person box (below the head, above the belt)."""
    return _sub_box(box, (0.25, 0.2, 0.75, 0.5))


def trousers_region(box: Box) -> Box:
    """The lower body of a person box (thighs and shins, above the feet)."""
    return _sub_box(box, (0.3, 0.58, 0.7, 0.88))


def classify_box(
    image: ImageBGR,
    region: Box,
    scene: Backdrop,
    rules: ColourRules | None = None,
    min_pixels: int = 16,
) -> ColourVote | None:
    """The colour of ``region`` (pixels of ``image``), None when it has < ``min_pixels``."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = _clip_box((region.x1, region.y1, region.x2, region.y2), w, h)
    if (x2 - x1) * (y2 - y1) < min_pixels or x2 <= x1 or y2 <= y1:
        return None
    return (rules or ColourRules()).classify(image[y1:y2, x1:x2], scene)


def vote(votes: Iterable[ColourVote | None]) -> ColourVote | None:
    """One colour for several reads of a track: summed share × pixels per colour; the share of
    the result is its part of the total."""
    weight: dict[str, float] = {}
    pixels = 0
    for v in votes:
        if v is None:
            continue
        weight[v.color] = weight.get(v.color, 0.0) + v.share * v.pixels
        pixels += v.pixels
    if not weight:
        return None
    color, w = max(weight.items(), key=lambda kv: kv[1])
    total = sum(weight.values())
    return ColourVote(color, w / total if total > 0 else 0.0, pixels)
