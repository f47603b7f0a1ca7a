"""Self-calibrating colour of a vehicle body or a garment → GA/T 1400 ColorType names.

Everything is measured against the object's own surroundings in the same frame, so nothing is
tuned to a clip:

1. **Backdrop.** A ring around the object's box (the box grown by ``ring`` of its size, minus the
   box) is sampled; its unsaturated pixels are the road / pavement. Their mean gives grey-world
   gains (the backdrop is made neutral: a warm evening, a blue overcast or a camera whose white
   balance is off is removed — found in passes, :func:`sharpeyes.pipeline.picture.grey_balance`,
   because a strong cast tints the road past a one-pass grey test) and, after balancing, the
   backdrop's lightness ``L*`` — the frame's exposure at the object. Blown highlights (a channel
   clipped, the others near it) are read as neutral (:func:`_lab`).
2. **Region.** Vehicles: the box inset at the sides and cut at the bottom (wheels, shadow,
   road) — the body, bonnet and roof; windows stay in and are handled by the statistics.
   Persons: the upper body (coat, 20–50 % of the box height) and the lower body (trousers,
   55–85 %), the middle of the box's width.
3. **Pixels.** The balanced region (at most ``MAX_SIDE`` px a side) is converted to CIELAB.
   A pixel is *chromatic* when its chroma ``C*`` ≥ ``chroma_min`` (a little less for dark pixels:
   dark paint has little chroma to show) and it is not road-like (near the backdrop's colour).
4. **Decision.** The colour is the hue bin (CIELAB hue angle) holding most chromatic weight,
   with orange/brown and red/pink split by lightness, when the chromatic pixels within
   ``hue_window`` degrees of that bin's mean hue are at least ``chroma_share`` of the region (one
   paint whose pixels straddle a bin boundary — a teal-green bus, a red car's red and crimson
   pixels — is tested as one). Vehicles (``pink=False``) read the crimson hues as red at any
   lightness: a red car in haze or low sun is light and weakly saturated, and pink cars are rare.
   Garments (``pastel``) call a red pixel pink when its CIE saturation ``C*/L*`` is low.
   Otherwise the object is achromatic and its lightness decides:
   the ``paint_quantile`` of the achromatic pixels' ``L*`` (windows, tyres and shadows are
   darker than paint, so an upper quantile reads the paint) compared with absolute limits
   *and* with the backdrop's ``L*``: black below ``black_l``, white above ``white_l`` when also
   ``white_over_road`` above the backdrop, grey (silver) between.
5. **Track.** :func:`vote` sums the reads of one track (share × pixels per colour).
6. **Vehicles: learned hybrid.** :func:`vehicle_classifier` (:class:`ColourModel`, weights in
   ``colour_model.json``, re-fitted by ``scripts/fit_colour_model.py`` on the labelled tune clips)
   keeps the rules' read when it is a clear hue (red, green, yellow, orange, brown, purple,
   pink), its share turned into a confidence (``share / chroma_share``, at most 1: a hue
   that passed the share test is as sure as a confident model read — raw, a red car's 0.22
   of its region was outvoted by one model read of black at 0.81); otherwise (black / grey /
   white / blue / cyan — where silver vs white and sky reflections go wrong) a multinomial
   logistic regression on :func:`colour_features` decides.
   Clothing still uses the rules alone (too few labelled garments to fit anything).

Cost: one ``cvtColor`` on ≤ 48×48 pixels plus the ring sample, well under 1 ms per crop
(``benchmarks/colour_eval.py`` measures it). Accuracy on labelled clips: ``docs/STRUCTURING.md``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.picture import channel_max, channel_min, grey_balance
from sharpeyes.pipeline.types import Box, ImageBGR

__all__ = [
    "MAX_SIDE",
    "Backdrop",
    "ColourClassifier",
    "ColourModel",
    "ColourRules",
    "ColourVote",
    "Region",
    "backdrop",
    "classify_box",
    "coat_region",
    "colour_features",
    "fit_colour_model",
    "trousers_region",
    "vehicle_classifier",
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
    colours: tuple[tuple[float, float, float], ...] = ()
    """The ring's own chromatic colours (balanced ``L*``, ``a*``, ``b*``): grass, a hedge, a
    coloured pavement — each a hue held by at least :data:`RING_COLOUR_SHARE` of the ring."""

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


CLIPPED = 250.0
BLOWN_SPREAD = 0.3
"""A pixel with a channel at or above :data:`CLIPPED` and the others within this share of it is
blown (see :func:`_lab`). Under a cool cast (B ×1.2) a white car's blue channel clips while red
and green do not; balanced, the highlight came out yellow-green and the rules read the car green
(9 of 15 held-out white cars, ``benchmarks/colour_eval.py --cast 0.85,1,1.2``). Saturated paint
that clips one channel (a red car's red) has its other channels far below it and is kept."""


def backdrop(
    image: ImageBGR,
    box: Box,
    ring: float = 0.3,
    max_side: int = 64,
    *,
    exposure: float = 1.0,
    balance: NDArray[np.float32] | None = None,
) -> Backdrop:
    """White balance and exposure from the unsaturated pixels around ``box`` (see step 1).
    ``exposure``: the picture's own brightening (:func:`sharpeyes.pipeline.picture.
    exposure_gain`), applied to every channel on top of the balance.

    Falls back to ``balance`` — the whole picture's (:func:`sharpeyes.pipeline.picture.
    picture_balance`), neutral when not given — × ``exposure``, ``L*`` 50, when fewer than 32
    such pixels exist: a vehicle filling a checkpoint camera's frame has no ring of road.
    """
    frame_gains = np.ones(3, np.float32) if balance is None else balance
    fallback = Backdrop((frame_gains * exposure).astype(np.float32), 50.0)
    h, w = image.shape[:2]
    bw, bh = box.x2 - box.x1, box.y2 - box.y1
    ox1, oy1, ox2, oy2 = _clip_box(
        (box.x1 - ring * bw, box.y1 - ring * bh, box.x2 + ring * bw, box.y2 + ring * bh), w, h
    )
    if ox2 - ox1 < 2 or oy2 - oy1 < 2:
        return fallback
    step = max(1, int(np.ceil(max(ox2 - ox1, oy2 - oy1) / max_side)))
    ys = np.arange(oy1, oy2, step)[:, None]
    xs = np.arange(ox1, ox2, step)[None, :]
    outside = (xs < box.x1) | (xs >= box.x2) | (ys < box.y1) | (ys >= box.y2)
    px = image[oy1:oy2:step, ox1:ox2:step][outside].astype(np.float32)
    if len(px) < 32:
        return fallback
    found = grey_balance(px)
    if found is None:  # no grey in the ring (a walker on a lawn): its colours still count
        lum, a, b = _lab(px, fallback.gains)
        return dataclasses.replace(fallback, colours=ring_colours(lum, a, b))
    balance, grey = found
    gains = (balance * exposure).astype(np.float32)
    lum, a, b = _lab(px, gains)
    return Backdrop(gains, float(np.median(lum[grey])), ring_colours(lum, a, b))


RING_COLOUR_SHARE = 0.1
"""A hue sector holding at least this share of a backdrop ring's pixels is a colour of the
backdrop (:attr:`Backdrop.colours`)."""
RING_CHROMA = 10.0  # ColourRules.chroma_min: a pixel with less chroma is not a colour
_RING_SECTOR = 30.0  # degrees of CIELAB hue per sector


def ring_colours(
    lum: NDArray[np.float32], a: NDArray[np.float32], b: NDArray[np.float32]
) -> tuple[tuple[float, float, float], ...]:
    """The chromatic colours of a backdrop ring's balanced pixels: per CIELAB hue sector of
    :data:`_RING_SECTOR` degrees holding at least :data:`RING_COLOUR_SHARE` of all the ring's
    pixels, the median ``L*``, ``a*``, ``b*`` of its pixels."""
    if len(lum) == 0:
        return ()
    chromatic = np.hypot(a, b) >= RING_CHROMA
    if np.count_nonzero(chromatic) < RING_COLOUR_SHARE * len(lum):
        return ()
    hue = np.degrees(np.arctan2(b[chromatic], a[chromatic])) % 360.0
    sector = (hue // _RING_SECTOR).astype(np.int64)
    counts = np.bincount(sector, minlength=int(360 // _RING_SECTOR))
    out: list[tuple[float, float, float]] = []
    for k in np.flatnonzero(counts >= RING_COLOUR_SHARE * len(lum)):
        sel = sector == k
        out.append(
            (
                float(np.median(lum[chromatic][sel])),
                float(np.median(a[chromatic][sel])),
                float(np.median(b[chromatic][sel])),
            )
        )
    return tuple(out)


def like_ring(
    lum: NDArray[np.float32],
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    scene: Backdrop,
    delta: float,
) -> NDArray[np.bool_]:
    """Pixels of one of the backdrop's own colours (:attr:`Backdrop.colours`): within ``delta``
    of it in ``a*``/``b*`` and within twice ``delta`` in ``L*`` (the backdrop seen through a
    gap — between a walker's legs, beside an arm — is often in the person's shadow)."""
    near = np.zeros(len(lum), np.bool_)
    for cl, ca, cb in scene.colours:
        near |= (np.hypot(a - ca, b - cb) < delta) & (np.abs(lum - cl) < 2.0 * delta)
    return near


def _lab(
    bgr: NDArray[np.uint8] | NDArray[np.float32], gains: NDArray[np.float32]
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """CIELAB (``L*`` 0–100, ``a*``, ``b*``) of balanced BGR pixels (N×3), via OpenCV's 8-bit
    conversion (a table lookup, several times cheaper than the float one).

    A *blown* pixel (:data:`CLIPPED`: one channel at the sensor's limit, the others within
    :data:`BLOWN_SPREAD` of it) is a highlight whose hue the clipping decided, not the paint:
    it is read as neutral at its brightest balanced channel."""
    raw = bgr.astype(np.float32).reshape(-1, 3)
    balanced = np.clip(raw * gains, 0, 255)
    mx = channel_max(raw)
    blown = (mx >= CLIPPED) & (channel_min(raw) >= (1.0 - BLOWN_SPREAD) * mx)
    if blown.any():
        balanced[blown] = balanced[blown].max(axis=1, keepdims=True)
    balanced = balanced.astype(np.uint8).reshape(-1, 1, 3)
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
COLOUR_NAMES = _NAMES
"""Every colour name the stage states (GA/T 1400 ColorType names; the REST filters take these)."""
_IDX = {n: i for i, n in enumerate(_NAMES)}
_BIN_IDX = np.array([_IDX[name] for _, name in _HUE_BINS], np.int64)


def hue_names(
    hue: NDArray[np.float32],
    lum: NDArray[np.float32],
    chroma: NDArray[np.float32],
    pink: bool = True,
    pastel: float = 0.0,
) -> NDArray[np.int64]:
    """Colour index (into ``_NAMES``) per chromatic pixel from CIELAB hue angle, ``L*``, ``C*``.
    ``pink=False``: the crimson hues are red at any lightness (vehicle paint: a red car in haze or
    low sun is light and weakly saturated, and pink cars are rare)."""
    idx = _BIN_IDX[np.minimum(np.searchsorted(_HUE_EDGES, hue, side="right"), len(_BIN_IDX) - 1)]
    crimson = (hue < 20.0) | (hue >= 345.0)
    deep = (lum < 55.0) | (chroma > 45.0) | (not pink)
    idx = np.where((idx == _IDX["pink"]) & crimson & deep, _IDX["red"], idx)
    if pink and pastel > 0.0:  # light, weakly saturated red (CIE saturation C*/L*) is pink
        pale = (idx == _IDX["red"]) & (chroma < pastel * lum)
        idx = np.where(pale, _IDX["pink"], idx)
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
    hue_window: float = 30.0
    pink: bool = True
    pastel: float = 0.0
    ring_colours: bool = False  # leave out pixels of the backdrop's own colours (like_ring)

    def classify(self, region: ImageBGR, scene: Backdrop) -> ColourVote | None:
        """The region's colour (steps 3–4 of the module docstring); None when empty."""
        if region.size == 0:
            return None
        pixels = int(region.shape[0] * region.shape[1])
        lum, a, b = _lab(_sample(region, MAX_SIDE).reshape(-1, 3), scene.gains)
        chroma = np.hypot(a, b)
        road_like = np.hypot(lum - scene.lightness, chroma) < self.road_delta  # ΔE to backdrop
        chromatic = (chroma >= self.chroma_min) & ~road_like
        if self.ring_colours and scene.colours:
            chromatic &= ~like_ring(lum, a, b, scene, self.road_delta)
        if chromatic.any():
            hue = (np.degrees(np.arctan2(b[chromatic], a[chromatic])) % 360.0).astype(np.float32)
            idx = hue_names(hue, lum[chromatic], chroma[chromatic], self.pink, self.pastel)
            counts = np.bincount(idx, minlength=len(_NAMES))
            best = int(np.argmax(counts))
            share = _window_share(hue, idx == best, self.hue_window) / len(lum)
            if share >= self.chroma_share:
                return ColourVote(_NAMES[best], share, pixels)
        return self.achromatic(lum, scene, pixels)

    def achromatic(self, lum: NDArray[np.float32], scene: Backdrop, pixels: int) -> ColourVote:
        """Black, grey or white by lightness (step 4 of the module docstring) of ``L*`` values."""
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


def _window_share(hue: NDArray[np.float32], named: NDArray[np.bool_], window: float) -> float:
    """How many pixels lie within ``window`` degrees of the circular mean hue of the ``named``
    ones: one paint's pixels straddle a name boundary (green / cyan, red / orange) and should
    not be split when their share is tested."""
    rad = np.radians(hue[named])
    centre = np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean()))
    delta = np.abs((hue - centre + 180.0) % 360.0 - 180.0)
    return float(np.count_nonzero(delta <= window))


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
    rules: ColourClassifier | None = None,
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


# --- learned vehicle colour (hybrid with the rules) ----------------------------------------------


class ColourClassifier(Protocol):
    """Anything that names a region's colour against its backdrop (rules or the learned model)."""

    def classify(self, region: ImageBGR, scene: Backdrop) -> ColourVote | None: ...


_SECTORS: tuple[str, ...] = (
    "red",
    "orange",
    "brown",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "pink",
)
_SECTOR_IDX = np.array([_IDX[n] for n in _SECTORS], np.int64)
_QS = (10, 25, 50, 75, 90)
FEATURE_NAMES: tuple[str, ...] = (
    "road_l",
    *(f"l_q{q}" for q in _QS),
    *(f"l_q{q}_over_road" for q in _QS),
    *(f"c_q{q}" for q in (50, 75, 90)),
    *("a_median", "b_median", "a_light", "b_light", "a_dark", "b_dark"),
    *(f"share_{n}_c8" for n in _SECTORS),
    *(f"share_{n}_c20" for n in _SECTORS),
    *("share_l_over_90", "share_l_under_20", "share_road_like"),
)
"""What :func:`colour_features` measures, in order (lightness /100, chroma and a*/b* /50)."""


def _quantiles(x: NDArray[np.float32], qs: tuple[float, ...]) -> list[float]:
    ordered = np.sort(x)
    last = len(ordered) - 1
    return [float(ordered[int(q * last)]) for q in qs]


def _mean(x: NDArray[np.float32], sel: NDArray[np.bool_]) -> float:
    return float(x[sel].mean()) / 50.0 if sel.any() else 0.0


def colour_features(
    region: ImageBGR, scene: Backdrop, road_delta: float = 12.0
) -> NDArray[np.float64]:
    """Backdrop-normalised CIELAB statistics of a region (:data:`FEATURE_NAMES`): the backdrop's
    ``L*``, ``L*`` quantiles absolute and over the road, chroma quantiles, a*/b* of all / the
    lighter / the darker half, the share of pixels per hue sector (:func:`hue_names`) at chroma
    ≥ 8 and ≥ 20 (road-like pixels excluded), and highlight / shadow / road-like shares."""
    lum, a, b = _lab(_sample(region, MAX_SIDE).reshape(-1, 3), scene.gains)
    chroma = np.hypot(a, b)
    road = scene.lightness
    road_like = np.hypot(lum - road, chroma) < road_delta
    hue = (np.degrees(np.arctan2(b, a)) % 360.0).astype(np.float32)
    names = hue_names(hue, lum, chroma)
    lq = _quantiles(lum, (0.1, 0.25, 0.5, 0.75, 0.9))
    med = float(np.median(lum))
    light, dark = lum >= med, lum < med
    feats: list[float] = [road / 100.0]
    feats += [q / 100.0 for q in lq]
    feats += [(q - road) / 100.0 for q in lq]
    feats += [q / 50.0 for q in _quantiles(chroma, (0.5, 0.75, 0.9))]
    feats += [float(np.median(a)) / 50.0, float(np.median(b)) / 50.0]
    feats += [_mean(a, light), _mean(b, light), _mean(a, dark), _mean(b, dark)]
    for cmin in (8.0, 20.0):
        counts = np.bincount(names[(chroma >= cmin) & ~road_like], minlength=len(_NAMES))
        feats += [float(c) / len(lum) for c in counts[_SECTOR_IDX]]
    feats += [float((lum > 90).mean()), float((lum < 20).mean()), float(road_like.mean())]
    return np.asarray(feats, np.float64)


MIDDLE_BAND: tuple[float, float] = (0.3, 0.7)
MIDDLE_MIN_CHROMA = 5.0
MIDDLE_MIN_SHARE = 0.1
FALLBACK_SHARE = 0.5


_OPPONENT: dict[str, tuple[int, float]] = {
    # colour → (CIELAB channel: 0 a*, 1 b*; sign): the direction a paint of that colour pulls
    "red": (0, 1.0),
    "pink": (0, 1.0),
    "purple": (0, 1.0),
    "green": (0, -1.0),
    "cyan": (1, -1.0),
    "blue": (1, -1.0),
    "yellow": (1, 1.0),
    "orange": (1, 1.0),
    "brown": (1, 1.0),
}


def hue_in_middle(region: ImageBGR, scene: Backdrop, name: str) -> bool:
    """Whether the middle of a vehicle's body (columns ``MIDDLE_BAND`` of the region) leans
    towards the colour ``name`` at all: at least ``MIDDLE_MIN_SHARE`` of its pixels at least
    ``MIDDLE_MIN_CHROMA`` along that colour's opponent axis (red: +a*, green: −a*, blue: −b*,
    yellow: +b*). Paint covers a body from side to side; lamps (tail and brake lights,
    indicators) sit at its sides. Measured with a* ≥ 5 (labelled views): every red car 16–94 %
    of its middle (a dark maroon one under a bluish cast, purple-blue by hue, 16–26 %); a silver
    car seen from behind whose tail lights made the model say red, 3–6 %. Colours without an
    axis (black, grey, white) always pass."""
    axis = _OPPONENT.get(name)
    if axis is None:
        return True
    img = _sample(region, MAX_SIDE)
    w = img.shape[1]
    x1 = int(MIDDLE_BAND[0] * w)
    x2 = max(x1 + 1, int(np.ceil(MIDDLE_BAND[1] * w)))
    _, a, b = _lab(img[:, x1:x2].reshape(-1, 3), scene.gains)
    lean = (a, b)[axis[0]] * axis[1]
    return int(np.count_nonzero(lean >= MIDDLE_MIN_CHROMA)) >= MIDDLE_MIN_SHARE * len(lean)


RULE_COLOURS_KEPT: frozenset[str] = frozenset(
    {"red", "green", "yellow", "orange", "brown", "purple", "pink"}
)
"""Colours the rules' read is kept for: a clear hue (few labelled examples to learn from);
black / white / grey and blue / cyan (sky reflections on light paint) go to the learned model."""


@dataclass(frozen=True, slots=True)
class ColourModel:
    """Hybrid vehicle colour: :class:`ColourRules` first; when they read a colour outside
    ``keep``, a multinomial logistic regression on :func:`colour_features` (standardised by
    ``mean`` / ``scale``; ``weights`` is (features + 1) × classes, the last row the bias)
    decides, with its probability as the vote's share — unless it names a hue the middle of the
    body does not lean to (:func:`hue_in_middle`: tail lights, not paint), where the rules'
    lightness cut answers at ``FALLBACK_SHARE``. Fitted by :func:`fit_colour_model`
    (``scripts/fit_colour_model.py``), stored in ``colour_model.json`` next to this module."""

    classes: tuple[str, ...]
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    weights: NDArray[np.float64]
    keep: frozenset[str] = RULE_COLOURS_KEPT
    rules: ColourRules = ColourRules(pink=False)

    def probabilities(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """Class probabilities (order of ``classes``) of one feature vector."""
        z = ((features - self.mean) / self.scale) @ self.weights[:-1] + self.weights[-1]
        e = np.exp(z - z.max())
        out: NDArray[np.float64] = e / e.sum()
        return out

    def classify(self, region: ImageBGR, scene: Backdrop) -> ColourVote | None:
        ruled = self.rules.classify(region, scene)
        if ruled is None:
            return ruled
        if ruled.color in self.keep:
            conf = min(1.0, ruled.share / self.rules.chroma_share)
            return ColourVote(ruled.color, conf, ruled.pixels)
        p = self.probabilities(colour_features(region, scene, self.rules.road_delta))
        best = int(np.argmax(p))
        if hue_in_middle(region, scene, self.classes[best]):
            return ColourVote(self.classes[best], float(p[best]), ruled.pixels)
        # the model named a hue the body's middle does not show (lamps at its sides): it is
        # extrapolating, and the rules' lightness cut (black / grey / white) answers, at half
        # the weight of a sure read
        lum, _, _ = _lab(_sample(region, MAX_SIDE).reshape(-1, 3), scene.gains)
        plain = self.rules.achromatic(lum, scene, ruled.pixels)
        return ColourVote(plain.color, FALLBACK_SHARE, ruled.pixels)

    def to_json(self) -> dict[str, object]:
        return {
            "features": list(FEATURE_NAMES),
            "classes": list(self.classes),
            "keep": sorted(self.keep),
            "mean": [_r(x) for x in self.mean],
            "scale": [_r(x) for x in self.scale],
            "weights": [[_r(x) for x in row] for row in self.weights],
        }

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> ColourModel:
        if list(doc["features"]) != list(FEATURE_NAMES):
            raise ValueError("colour model was fitted on other features; re-fit it")
        return ColourModel(
            classes=tuple(str(c) for c in doc["classes"]),
            mean=np.asarray(doc["mean"], np.float64),
            scale=np.asarray(doc["scale"], np.float64),
            weights=np.asarray(doc["weights"], np.float64),
            keep=frozenset(str(c) for c in doc["keep"]),
        )


def _r(x: float) -> float:
    return float(f"{float(x):.6g}")


MODEL_PATH = Path(__file__).with_name("colour_model.json")


def fit_colour_model(
    features: NDArray[np.float64],
    labels: Sequence[str],
    *,
    l2: float = 0.1,
    iterations: int = 3000,
    step: float = 0.5,
    keep: frozenset[str] = RULE_COLOURS_KEPT,
) -> ColourModel:
    """Multinomial logistic regression (full-batch gradient descent from zero, L2 on the
    weights, not the bias) on per-view features (n × d) and their track's label — deterministic,
    numpy only. ``l2`` = 0.1 was chosen by leave-one-clip-out and tune-split cross-validation
    (``benchmarks/colour_eval.py``, ``docs/STRUCTURING.md``). Parameters are rounded to 6
    significant digits, as stored."""
    classes = tuple(sorted(set(labels)))
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-6
    x = np.hstack([(features - mean) / scale, np.ones((len(features), 1))])
    y = np.eye(len(classes))[[classes.index(c) for c in labels]]
    w = np.zeros((x.shape[1], len(classes)))
    for _ in range(iterations):
        z = x @ w
        e = np.exp(z - z.max(axis=1, keepdims=True))
        grad = x.T @ (e / e.sum(axis=1, keepdims=True) - y) / len(x)
        grad[:-1] += l2 * w[:-1]
        w -= step * grad
    rnd = np.vectorize(_r, otypes=[np.float64])
    return ColourModel(classes, rnd(mean), rnd(scale), rnd(w), keep)


@lru_cache(maxsize=1)
def vehicle_classifier() -> ColourModel:
    """The shipped vehicle colour model (``colour_model.json``), loaded once."""
    return ColourModel.from_json(json.loads(MODEL_PATH.read_text()))
