"""Self-calibrating lamp reader: one head's lamp colour per frame, from that head's own history.

No absolute brightness thresholds: every frame, each lamp cell of the head region gets two
features — *chroma* (``max(B,G,R) − min(B,G,R)`` of its brightest pixels: high for a lit
coloured lamp, low for a dark lens, housing, sky or white glare) and *brightness* (``max`` of
the channels, for night bloom where a lit lamp turns white). A cell is lit when its feature is
well above **its own unlit level** — learned from the frames in which the reader judged it
unlit (running window, median) — and above the other cells. Where a cell has also been seen
lit, the decision point is a fraction of the way from its unlit to its lit level, so a dim LED
that is dim all along still reads. Until a cell has history, the other cells of the same
frame stand in for its unlit level (at most one lamp of a head is lit). Exposure ×0.4…×1.6,
white balance, blur and compression scale or shift both levels together and leave the ratios.

Colour comes from the lit cell's position (vertical/horizontal heads) and is checked against
the hue of its bright pixels: pixels are classed to the nearest lamp hue — the hue that cell
has shown when lit (learned) or the nominal one — and a cell whose light is mostly another
lamp's colour (red countdown digits in the green cell) reads UNKNOWN. A ``single`` head (one
lamp that changes colour) is read by hue alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from sharpeyes.pipeline.calibration import SignalHead
from sharpeyes.pipeline.types import ImageBGR, LampColor

# Nominal OpenCV hues (0–179) of lit lamps; LED greens are cyan-ish (≈ 85–95).
NOMINAL_HUE: dict[LampColor, float] = {
    LampColor.RED: 0.0,
    LampColor.AMBER: 20.0,
    LampColor.GREEN: 82.0,
}
TOP_SHARE = 0.2  # the brightest fifth of a cell's pixels describe its lamp
LIT_RATIO = 2.0  # lit ≥ this × own unlit level (cells without a learned lit level)
LIT_FRACTION = 0.35  # … or this far from the learned unlit to the learned lit level
BORROWED_FRACTION = 0.2
"""A cell not yet seen lit, judged on another cell's lit level: it is lit this far from its unlit
level to that one (or at ``LIT_RATIO`` × its unlit level, whichever is higher). Lamps of one head
are alike, not equal: on hanoi_b darkened to 20 % with sensor noise the red lamp's chroma is 204
and the green's, clearly lit, 70 over an unlit 17 (0.28 of the way) — at ``LIT_FRACTION`` the
green read dark for the whole phase, a signal fault. JPEG-flattened cells (chroma 0–2 unlit)
show artefacts at 0.09 of the way: the ratio alone (about 8) would call them lit."""
SECOND_LIT = 0.55  # second cell this close to the best (in normalised units) → two lit
NOISE_FLOOR = 6.0  # additive floor (grey levels) so near-black unlit levels do not divide by 0
GLARE_VALUE = 200.0  # every cell this bright and colourless: over-exposed, not dark
MIN_SAMPLES = 8  # history samples before a learned level is trusted
HUE_TOLERANCE = 25.0  # a lit cell's mean hue this close to its lamp's hue confirms the colour
HUE_MARGIN = 10.0  # a cell's learned lit hue this much nearer another colour: wrong lamp
MIN_HUE_CHECK = 20  # lit readings of a cell before its learned hue is judged


@dataclass(frozen=True, slots=True)
class LampReading:
    """One frame's raw reading of one head."""

    color: LampColor
    confidence: float


@dataclass(frozen=True, slots=True)
class CellFeatures:
    """What one lamp cell looks like on one frame."""

    chroma: float
    value: float
    hue: float | None  # circular mean hue of its bright chromatic pixels (None when colourless)
    hue_pixels: np.ndarray  # hues (OpenCV 0–179) of its bright chromatic pixels


def cells_of(region: np.ndarray, n: int, layout: str) -> list[np.ndarray]:
    """Split a head region into one cell per lamp, in layout order."""
    if layout == "single" or n == 1:
        return [region]
    axis = 0 if layout == "vertical" else 1
    return list(np.array_split(region, n, axis=axis))


def _top_mean(x: np.ndarray) -> float:
    flat = x.reshape(-1)
    if flat.size == 0:
        return 0.0
    k = max(1, int(flat.size * TOP_SHARE))
    return float(np.partition(flat, flat.size - k)[flat.size - k :].mean())


def _circ_mean(h: np.ndarray) -> float | None:
    if h.size == 0:
        return None
    ang = h.astype(np.float64) * (np.pi / 90.0)
    m = float(np.arctan2(np.sin(ang).mean(), np.cos(ang).mean()) * 90.0 / np.pi)
    return m % 180.0


def hue_distance(a: float, b: float) -> float:
    """Circular distance of two OpenCV hues (0–179)."""
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def cell_features(cell: ImageBGR) -> CellFeatures:
    """Chroma, brightness and hue of one cell's brightest pixels."""
    if cell.size == 0:
        return CellFeatures(0.0, 0.0, None, np.zeros(0))
    c16 = cell.astype(np.int16)
    vmax = c16.max(axis=2)
    chroma = vmax - c16.min(axis=2)
    top_c = _top_mean(chroma)
    top_v = _top_mean(vmax)
    hsv = cv2.cvtColor(cell, cv2.COLOR_BGR2HSV)
    sel = (chroma >= max(12.0, 0.5 * top_c)) & (hsv[..., 1] >= 60)
    hues = hsv[..., 0][sel]
    return CellFeatures(top_c, top_v, _circ_mean(hues), hues)


class _Levels:
    """Running unlit / lit levels of one feature of one cell (medians over a window)."""

    def __init__(self, window: int) -> None:
        self.unlit: deque[float] = deque(maxlen=window)
        self.lit: deque[float] = deque(maxlen=window)

    def unlit_level(self) -> float | None:
        return float(np.median(self.unlit)) if len(self.unlit) >= MIN_SAMPLES else None

    def lit_level(self) -> float | None:
        return float(np.median(self.lit)) if len(self.lit) >= MIN_SAMPLES else None


class HeadCalibrator:
    """Reads one head frame by frame and learns its cells' lit/unlit levels and lit hues.

    ``window`` is the number of samples each running statistic keeps (per cell, per state).
    """

    def __init__(self, head: SignalHead, window: int = 600) -> None:
        self.head = head
        self.colors = [LampColor(c) for c in head.lamps]
        self.single = head.layout == "single" or len(self.colors) == 1
        n = 1 if self.single else len(self.colors)
        self._chroma = [_Levels(window) for _ in range(n)]
        # brightness levels per picture mode: a lamp's brightest channel in colour (a red lamp:
        # its red) is not its brightness in grey once the camera turns to infrared night mode,
        # and levels learned in one mode would call the lamps of the other dark
        self._value_modes = {grey: [_Levels(window) for _ in range(n)] for grey in (False, True)}
        self._value = self._value_modes[False]
        self.grey = False
        """The picture has no colour now (a camera in monochrome / infrared night mode): lamps
        are read by which cell is lit, on the brightness levels learned in that mode."""
        self._hue: list[deque[float]] = [deque(maxlen=window) for _ in range(n)]
        self._hue_single: dict[LampColor, deque[float]] = {
            c: deque(maxlen=window) for c in self.colors
        }
        self.frames = 0
        self.lit_frames = 0

    # -- learned statistics ------------------------------------------------------------
    def lit_hue(self, k: int) -> float:
        """Hue cell ``k`` shows when lit (learned, else nominal)."""
        if len(self._hue[k]) >= MIN_SAMPLES:
            m = _circ_mean(np.asarray(self._hue[k]))
            if m is not None:
                return m
        return NOMINAL_HUE[self.colors[k]]

    def _ref_hue(self, color: LampColor) -> float:
        if self.single:
            seen = self._hue_single[color]
            if len(seen) >= MIN_SAMPLES:
                m = _circ_mean(np.asarray(seen))
                return NOMINAL_HUE[color] if m is None else m
            return NOMINAL_HUE[color]
        return self.lit_hue(self.colors.index(color))

    def levels(self, k: int) -> tuple[float | None, float | None]:
        """(unlit, lit) chroma levels of cell ``k`` (None while unknown)."""
        return self._chroma[k].unlit_level(), self._chroma[k].lit_level()

    def colour_problem(self) -> str | None:
        """A calibration reason when a cell's light is another lamp's colour: the hue it has
        shown when read lit (≥ ``MIN_HUE_CHECK`` readings) is ``HUE_MARGIN`` nearer another
        colour's nominal hue than its own lamp's — the light of that colour does not come from
        where the layout / lamp order put its lamp (a vertical head read as ``horizontal``:
        its red lamp read as amber). Relative to the hue distances only, so exposure and white
        balance (which move a lamp's hue a few units) do not raise it. None for ``single``."""
        if self.single:
            return None
        for k, own in enumerate(self.colors):
            if len(self._hue[k]) < MIN_HUE_CHECK:
                continue
            hue = self.lit_hue(k)
            d_own = hue_distance(hue, NOMINAL_HUE[own])
            other = min(
                (c for c in NOMINAL_HUE if c is not own),
                key=lambda c: hue_distance(hue, NOMINAL_HUE[c]),
            )
            if hue_distance(hue, NOMINAL_HUE[other]) + HUE_MARGIN <= d_own:
                return (
                    f"the {own.value} lamp's cell ({k + 1} of {len(self.colors)}, "
                    f"{self.head.layout}) lights {other.value} (hue {hue:.0f}; {other.value} ≈ "
                    f"{NOMINAL_HUE[other]:.0f}, {own.value} ≈ {NOMINAL_HUE[own]:.0f}) — the "
                    f"{other.value} light is not where the layout / lamp order put that lamp "
                    "(check layout / lamps)"
                )
        return None

    # -- reading -----------------------------------------------------------------------
    def read(self, crop: ImageBGR, *, grey: bool = False) -> LampReading:
        """Classify one head's lamp region (a BGR crop of exactly the region) and learn.
        ``grey``: the picture has no colour now (:attr:`grey`; the board decides): the
        brightness levels of that mode are used and learned, the colour levels left as they
        were."""
        if grey != self.grey:
            self.grey = grey
            self._value = self._value_modes[grey]
        if crop.size == 0:
            return LampReading(LampColor.UNKNOWN, 0.0)
        self.frames += 1
        cells = cells_of(crop, 1 if self.single else len(self.colors), self.head.layout)
        feats = [cell_features(c) for c in cells]
        reading = self._read_single(feats[0]) if self.single else self._read_cells(feats)
        if reading.color not in (LampColor.OFF, LampColor.UNKNOWN):
            self.lit_frames += 1
        return reading

    def _norm(self, levels: list[_Levels], x: list[float], fallback: float) -> list[float]:
        """Each cell's activation: 0 at its unlit level, 1 at the lit decision point.

        The decision point lies ``LIT_FRACTION`` of the way from the cell's unlit level to its
        lit level; a cell not yet seen lit borrows the lowest lit level of the head's other
        cells (lamps of one head are alike), ``BORROWED_FRACTION`` of the way to it (not below
        its own ratio); with nothing learned yet, lit means ``LIT_RATIO`` times the unlit level
        (plus a noise floor).
        """
        known = [lit for lv in levels if (lit := lv.lit_level()) is not None]
        out = []
        for lv, xi in zip(levels, x, strict=True):
            u = lv.unlit_level()
            u = fallback if u is None else u
            ratio_point = (u + NOISE_FLOOR) * LIT_RATIO - NOISE_FLOOR
            lit = lv.lit_level()
            borrowed = lit is None and bool(known)
            if borrowed:
                lit = min(known)
            if lit is not None and lit > u * 1.3 + NOISE_FLOOR:
                point = u + LIT_FRACTION * (lit - u)
                if borrowed:  # another lamp's level: lamps of a head are alike, not equal
                    point = min(point, max(ratio_point, u + BORROWED_FRACTION * (lit - u)))
            else:
                point = ratio_point
            out.append((xi - u) / max(point - u, 1e-6))
        return out

    def _read_cells(self, feats: list[CellFeatures]) -> LampReading:
        chroma = [f.chroma for f in feats]
        value = [f.value for f in feats]
        n = len(feats)
        # This frame's stand-in unlit level: at most one lamp is lit, so the second largest
        # (3+ cells) or the smallest (2 cells) value is an unlit cell.
        rank = 1 if n >= 3 else n - 1
        ref_c = sorted(chroma, reverse=True)[rank]
        ref_v = sorted(value, reverse=True)[rank]
        a = self._norm(self._chroma, chroma, ref_c)
        k = int(np.argmax(a))
        second = max(
            (x for i, x in enumerate(a) if i != k and not self._spill(feats[i], i, k)), default=0.0
        )
        if a[k] >= 1.0:
            if second >= max(1.0, SECOND_LIT * a[k]):
                return LampReading(LampColor.UNKNOWN, 0.0)
            near = self._hue_near(feats[k], k)
            if near is None:
                return LampReading(LampColor.UNKNOWN, 0.0)
            self._learn(feats, k)
            conf = min(1.0, 0.6 + 0.2 * a[k]) * (1.0 - 0.5 * max(0.0, second) / a[k])
            return LampReading(self.colors[k], round(max(0.8, conf) if near else 0.7, 3))
        # No coloured lamp: bloom (white lamp, read by position) or dark.
        av = self._norm(self._value, value, ref_v)
        kv = int(np.argmax(av))
        second_v = max((x for i, x in enumerate(av) if i != kv), default=0.0)
        if min(value) >= GLARE_VALUE and max(chroma) < 0.25 * min(value):
            return LampReading(LampColor.UNKNOWN, 0.0)
        if av[kv] >= 1.0:
            if second_v >= max(1.0, SECOND_LIT * av[kv]) or self._foreign(feats[kv], kv):
                return LampReading(LampColor.UNKNOWN, 0.0)
            return LampReading(self.colors[kv], 0.5)
        self._learn(feats, None)
        return LampReading(LampColor.OFF, 0.8)

    def _hue_share(self, f: CellFeatures, k: int) -> float:
        """Share of the cell's chromatic pixels nearest to its own lamp hue."""
        if f.hue_pixels.size == 0:
            return 0.0
        refs = [self.lit_hue(i) for i in range(len(self.colors))]
        d = np.stack(
            [np.minimum(np.abs(f.hue_pixels - r), 180.0 - np.abs(f.hue_pixels - r)) for r in refs]
        )
        nearest = np.argmin(d, axis=0)
        return float((nearest == k).mean())

    def _hue_near(self, f: CellFeatures, k: int) -> bool | None:
        """Does the light of cell ``k`` have that lamp's hue? True: its mean hue is within
        ``HUE_TOLERANCE`` of the lamp's (learned or nominal) hue; False: farther, but most of
        its chromatic pixels are still nearest to it (a lamp with some foreign pixels); None:
        it is another lamp's colour (countdown digits, reflections) — not this lamp."""
        if f.hue is None:
            return None
        if hue_distance(f.hue, self.lit_hue(k)) <= HUE_TOLERANCE:
            return True
        return False if self._hue_share(f, k) >= 0.5 else None

    def _spill(self, f: CellFeatures, i: int, k: int) -> bool:
        """Cell ``i``'s light is lamp ``k``'s spilling over (a region a few pixels off, bloom):
        its hue is nearer the hue cell ``k`` shows lit than its own lamp's. Not a second lamp."""
        if f.hue is None:
            return False
        return hue_distance(f.hue, self.lit_hue(k)) < hue_distance(f.hue, self.lit_hue(i))

    def _foreign(self, f: CellFeatures, k: int) -> bool:
        """Bright pixels of cell ``k`` coloured like another lamp (digits), not white bloom."""
        return f.hue_pixels.size > 4 and self._hue_share(f, k) < 0.5

    def _learn(self, feats: list[CellFeatures], lit: int | None) -> None:
        for i, f in enumerate(feats):
            if i == lit:
                self._value[i].lit.append(f.value)
                if not self.grey:  # a grey picture's chroma says nothing of the lamp's
                    self._chroma[i].lit.append(f.chroma)
                    if f.hue is not None:
                        self._hue[i].append(f.hue)
            else:
                self._value[i].unlit.append(f.value)
                if not self.grey:
                    self._chroma[i].unlit.append(f.chroma)

    def _read_single(self, f: CellFeatures) -> LampReading:
        lv = self._chroma[0]
        u = lv.unlit_level()
        a = self._norm([lv], [f.chroma], u if u is not None else NOISE_FLOOR * 2)[0]
        if a < 1.0 or f.hue is None:
            if f.value >= GLARE_VALUE and f.chroma < 0.25 * f.value:
                return LampReading(LampColor.UNKNOWN, 0.0)
            lv.unlit.append(f.chroma)
            return LampReading(LampColor.OFF, 0.8)
        hue = f.hue
        dist = {c: hue_distance(hue, self._ref_hue(c)) for c in self.colors}
        best = min(dist, key=lambda c: dist[c])
        if dist[best] > 30.0:
            return LampReading(LampColor.UNKNOWN, 0.0)
        lv.lit.append(f.chroma)
        self._hue_single[best].append(hue)
        return LampReading(best, 0.8 if dist[best] <= 15.0 else 0.6)


def read_lamp(crop: ImageBGR, head: SignalHead) -> LampReading:
    """Classify one head region without history (a fresh :class:`HeadCalibrator`)."""
    return HeadCalibrator(head).read(crop)
