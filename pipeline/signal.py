"""Signal state: lamp colour per signal head from pixels, smoothed, per signal group.

Per frame and head, :func:`read_lamp` looks only inside the configured lamp region, splits it
into one cell per lamp (vertical / horizontal layout) and counts pixels that are bright,
saturated and of the lamp's hue in that lamp's cell — so the countdown digits beside a head
(outside the region, or red digits in the green cell) do not decide anything. When no cell is
lit in its own hue but one cell is clearly the brightest (night bloom turns lamps white), the
position decides with lower confidence. All cells dark → OFF; ambiguous or glare → UNKNOWN.

:class:`SignalSmoother` adds hysteresis: a new colour needs ``confirm_frames`` consecutive
readings (OFF/UNKNOWN also need ``dark_hold_s`` seconds), so one noisy frame never flips the
state and a flickering LED never reads as OFF. ``since_pts`` is back-dated to the first reading
of the new colour, so rules see when the colour really began.

:class:`SignalBoard` is the one object the runner calls: ``board.update(frame)`` returns
``{group: SignalState}`` from video heads and/or :class:`ExternalPhaseInput`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from sharpeyes.pipeline.calibration import IntersectionCalibration, SignalGroup, SignalHead
from sharpeyes.pipeline.signal_input import ExternalPhaseInput
from sharpeyes.pipeline.types import Frame, ImageBGR, LampColor, SignalState

# OpenCV hue (0–179) ranges of lit lamps; LED greens are cyan-ish (≈ 85–95).
_HUES: dict[LampColor, tuple[tuple[int, int], ...]] = {
    LampColor.RED: ((0, 10), (160, 179)),
    LampColor.AMBER: ((11, 35),),
    LampColor.GREEN: ((40, 100),),
}
_BLOOM_MARGIN = 40  # brightest cell's V exceeds the others by this much → position decides


@dataclass(frozen=True, slots=True)
class LampReading:
    """One frame's raw reading of one head."""

    color: LampColor
    confidence: float


def _hue_mask(hsv: np.ndarray, color: LampColor) -> np.ndarray:
    h = hsv[..., 0]
    mask = np.zeros(h.shape, bool)
    for lo, hi in _HUES[color]:
        mask |= (h >= lo) & (h <= hi)
    return mask


def _cells(region: np.ndarray, n: int, layout: str) -> list[np.ndarray]:
    if layout == "single" or n == 1:
        return [region]
    axis = 0 if layout == "vertical" else 1
    return list(np.array_split(region, n, axis=axis))


def _lit_fraction(hsv: np.ndarray, color: LampColor, head: SignalHead) -> float:
    lit = (hsv[..., 2] >= head.min_value) & (hsv[..., 1] >= head.min_saturation)
    return float((lit & _hue_mask(hsv, color)).mean()) if hsv.size else 0.0


def _top_value(hsv: np.ndarray) -> float:
    v = hsv[..., 2].reshape(-1)
    return float(np.percentile(v, 90)) if v.size else 0.0


def read_lamp(crop: ImageBGR, head: SignalHead) -> LampReading:
    """Classify one head's lamp region (a BGR crop of exactly the region)."""
    if crop.size == 0:
        return LampReading(LampColor.UNKNOWN, 0.0)
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    colors = [LampColor(c) for c in head.lamps]
    cells = _cells(hsv, len(colors), head.layout)
    if len(cells) == 1:
        scores = [_lit_fraction(cells[0], c, head) for c in colors]
    else:
        scores = [_lit_fraction(cell, c, head) for cell, c in zip(cells, colors, strict=True)]
    order = np.argsort(scores)[::-1]
    best = scores[int(order[0])]
    second = scores[int(order[1])] if len(scores) > 1 else 0.0
    if best >= head.min_lit_fraction:
        if second >= 0.5 * best:
            return LampReading(LampColor.UNKNOWN, 0.0)
        strength = min(1.0, best / (3 * head.min_lit_fraction))
        return LampReading(colors[int(order[0])], strength * (1.0 - second / best))
    return _by_brightness(cells, colors, head)


def _by_brightness(
    cells: list[np.ndarray], colors: list[LampColor], head: SignalHead
) -> LampReading:
    tops = [_top_value(c) for c in cells]
    if max(tops) < head.min_value:
        return LampReading(LampColor.OFF, 0.8)
    if len(cells) == 1:
        return LampReading(LampColor.UNKNOWN, 0.0)
    order = np.argsort(tops)[::-1]
    k = int(order[0])
    if tops[k] - tops[int(order[1])] < _BLOOM_MARGIN or _foreign_hue(cells[k], colors, k, head):
        return LampReading(LampColor.UNKNOWN, 0.0)
    return LampReading(colors[k], 0.5)


def _foreign_hue(cell: np.ndarray, colors: list[LampColor], k: int, head: SignalHead) -> bool:
    """True when the bright pixels of cell ``k`` are coloured like another lamp (e.g. red
    countdown digits in the green cell) rather than white bloom or the lamp's own hue."""
    bright = (cell[..., 2] >= head.min_value) & (cell[..., 1] >= head.min_saturation)
    n = int(bright.sum())
    if n == 0:
        return False
    own = int((bright & _hue_mask(cell, colors[k])).sum())
    other = max(
        (int((bright & _hue_mask(cell, c)).sum()) for i, c in enumerate(colors) if i != k),
        default=0,
    )
    return other > own


class SignalSmoother:
    """Hysteresis over raw readings: one noisy frame never flips the state.

    A colour candidate survives interleaved dark readings (LED flicker); a dark state
    (OFF/UNKNOWN) needs an unbroken dark run of ``confirm_frames`` and ``dark_hold_s``.
    """

    def __init__(self, group: str, confirm_frames: int = 2, dark_hold_s: float = 0.6) -> None:
        self.group = group
        self._confirm = confirm_frames
        self._dark_hold = dark_hold_s
        self._color = LampColor.UNKNOWN
        self._since: float | None = None
        self._conf = 0.0
        self._seen_color = False
        self._cand: LampColor | None = None
        self._cand_since = 0.0
        self._cand_count = 0
        self._dark: LampColor | None = None
        self._dark_since = 0.0
        self._dark_count = 0

    def update(self, reading: LampReading, pts: float) -> SignalState:
        if self._since is None:
            self._since = pts
        if reading.color is self._color:
            self._cand, self._dark = None, None
            self._conf = 0.8 * self._conf + 0.2 * reading.confidence
        elif reading.color in (LampColor.OFF, LampColor.UNKNOWN):
            self._consider_dark(reading, pts)
        else:
            self._consider_color(reading, pts)
        return SignalState(self.group, self._color, round(self._conf, 3), self._since, pts)

    def _adopt(self, color: LampColor, since: float, confidence: float) -> None:
        self._color, self._since, self._conf = color, since, confidence
        self._cand, self._dark = None, None

    def _consider_dark(self, reading: LampReading, pts: float) -> None:
        if reading.color is not self._dark:
            self._dark, self._dark_since, self._dark_count = reading.color, pts, 0
        self._dark_count += 1
        if self._dark_count >= self._confirm and pts - self._dark_since >= self._dark_hold:
            self._adopt(reading.color, self._dark_since, reading.confidence)

    def _consider_color(self, reading: LampReading, pts: float) -> None:
        self._dark = None
        if reading.color is self._cand:
            self._cand_count += 1
        else:
            self._cand, self._cand_since, self._cand_count = reading.color, pts, 1
        startup = not self._seen_color and reading.confidence >= 0.8
        if startup or self._cand_count >= self._confirm:
            self._seen_color = True
            self._adopt(reading.color, self._cand_since, reading.confidence)


class VideoHead:
    """One signal head read from the video: pixel region + reader + smoother."""

    def __init__(self, head: SignalHead, frame_size: tuple[int, int]) -> None:
        w, h = frame_size
        (x1, y1), (x2, y2) = head.region
        self.head = head
        self._box = (
            max(0, round(x1 * w)),
            max(0, round(y1 * h)),
            min(w, max(round(x2 * w), round(x1 * w) + 1)),
            min(h, max(round(y2 * h), round(y1 * h) + 1)),
        )
        self.smoother = SignalSmoother(head.group)
        self.last_reading = LampReading(LampColor.UNKNOWN, 0.0)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Pixel box ``(x1, y1, x2, y2)`` of the lamp region."""
        return self._box

    def update(self, image: ImageBGR, pts: float) -> SignalState:
        x1, y1, x2, y2 = self._box
        self.last_reading = read_lamp(image[y1:y2, x1:x2], self.head)
        return self.smoother.update(self.last_reading, pts)


def _fuse(group: str, states: list[SignalState], pts: float) -> SignalState:
    """Several heads of one group: the most confident known state wins; none → UNKNOWN."""
    known = [s for s in states if s.color not in (LampColor.UNKNOWN,)]
    if not known:
        return SignalState(group, LampColor.UNKNOWN, 0.0, min(s.since_pts for s in states), pts)
    return max(known, key=lambda s: s.confidence)


class SignalBoard:
    """Per-frame signal state of every signal group of one camera."""

    def __init__(
        self,
        groups: list[SignalGroup],
        heads: list[VideoHead],
        external: ExternalPhaseInput | None = None,
    ) -> None:
        self._groups = groups
        self._heads = heads
        self._external = external
        self._first_pts: float | None = None

    @property
    def heads(self) -> list[VideoHead]:
        return list(self._heads)

    def update(self, frame: Frame) -> dict[str, SignalState]:
        """Read every head on this frame and return the state of every group."""
        if self._first_pts is None:
            self._first_pts = frame.pts
        video: dict[str, list[SignalState]] = {}
        for head in self._heads:
            video.setdefault(head.head.group, []).append(head.update(frame.image, frame.pts))
        out: dict[str, SignalState] = {}
        for g in self._groups:
            out[g.id] = self._group_state(g, video.get(g.id, []), frame)
        return out

    def _group_state(self, g: SignalGroup, video: list[SignalState], frame: Frame) -> SignalState:
        if g.source != "video" and self._external is not None:
            ext = self._external.state_at(g.id, frame.pts, frame.wall_time_ms)
            stale = (
                ext is not None
                and g.external_timeout_s > 0
                and frame.pts - ext.heard_pts > g.external_timeout_s
            )
            if ext is not None and not stale:
                return SignalState(g.id, ext.color, 1.0, ext.since_pts, frame.pts, "external")
        if g.source != "external" and video:
            return _fuse(g.id, video, frame.pts)
        since = self._first_pts if self._first_pts is not None else frame.pts
        source = "external" if g.source != "video" else "video"
        return SignalState(g.id, LampColor.UNKNOWN, 0.0, since, frame.pts, source)


def build_signal_board(
    calib: IntersectionCalibration,
    frame_size: tuple[int, int],
    external: ExternalPhaseInput | None = None,
) -> SignalBoard:
    """The signal board for one camera: video heads from the calibration plus external input."""
    heads = [VideoHead(h, frame_size) for h in calib.signal_heads]
    return SignalBoard(list(calib.signal_groups), heads, external)


def states_by_group(states: Mapping[str, SignalState]) -> dict[str, LampColor]:
    """Colours only (for logs and overlays)."""
    return {k: v.color for k, v in states.items()}
