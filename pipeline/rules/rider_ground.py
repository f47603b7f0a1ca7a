"""Where a rider's two-wheeler touches the road, learned from the video itself.

Seen from behind, a rider's feet are on the footrests, down on the road (waiting in a queue,
starting off) or hidden behind the bike, so the bottom of the ``person`` box is a poor stand-in
for the two-wheeler's road contact: on hanoi_b the true gap below the box is 0.0–0.47 of the box
height (rear-tyre contact read by two labellers) where a fixed share (0.25) assumes one value.
The top of the box (the head) is steady, and so is the rider's height over the road — once it
is known. Two things are learned here, both from the camera's own tracks:

* :class:`Horizon` — the camera's perspective: an upright person's box height grows linearly
  with how far its bottom is below the horizon, ``h ≈ c·(y − y_h)``. Each person track that
  moved far enough up or down the picture gives one ``y_h`` (least squares of its heights on
  its bottoms); the camera's value is the median over tracks (53 tracks on hanoi_b: 12 px).
* :class:`RiderGround` — per rider track, its height over the road, ``H = wheel bottom − head``,
  measured on the frames where its two-wheeler is detected under it and kept relative to the
  perspective, ``a = H / (wheel − y_h)`` (recent frames weigh most). Elsewhere the road point is
  the head plus that height at the new place: ``y = top + a·(y − y_h)``, i.e.
  ``y = (top − a·y_h) / (1 − a)``.

Until the rider's height is known (a frame with its bike seen) the caller keeps the fixed
``ground_offset``; until a few person tracks gave the horizon it is taken at the top edge.
Pure: no I/O, frame time only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

# A rider/bike pair whose wheel bottom is outside this share of the person height under the
# person's box bottom is not one object (another bike in the box, a tracker swap).
_GAP_RANGE = (-0.1, 0.6)
# The road point is kept within this share of the person height under the box bottom.
_ESTIMATE_RANGE = (-0.05, 0.6)


@dataclass(slots=True)
class _Fit:
    """Running least-squares sums of one person track's box height on its box bottom."""

    n: int = 0
    sy: float = 0.0
    sh: float = 0.0
    syy: float = 0.0
    syh: float = 0.0
    lo: float = float("inf")
    hi: float = float("-inf")
    last_pts: float = 0.0

    def add(self, y: float, h: float, pts: float) -> None:
        self.n += 1
        self.sy += y
        self.sh += h
        self.syy += y * y
        self.syh += y * h
        self.lo, self.hi = min(self.lo, y), max(self.hi, y)
        self.last_pts = pts

    def horizon(self, min_span: float) -> float | None:
        """``y_h`` of this track's line ``h = c·(y − y_h)``; None when too short or not growing."""
        if self.n < 5 or self.hi - self.lo < min_span:
            return None
        var = self.syy - self.sy * self.sy / self.n
        if var <= 0.0:
            return None
        c = (self.syh - self.sy * self.sh / self.n) / var
        if c <= 0.05:  # flat or shrinking downwards: not an upright object moving in depth
            return None
        b = (self.sh - c * self.sy) / self.n
        return -b / c


@dataclass
class Horizon:
    """The camera's horizon row (pixels), from the heights of its person tracks."""

    frame_h: float
    min_tracks: int = 5
    prior: float = 0.0
    """Until ``min_tracks`` tracks gave one: the picture's top edge (a road camera looks down
    the road with the horizon near or above it; the road point barely depends on it: hanoi_b's
    runners cross within 0.03 s of each other for a horizon anywhere from -50 to 70 px)."""
    stale_s: float = 5.0
    _open: dict[int, _Fit] = field(default_factory=dict)
    _done: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    _value: float | None = None
    _dirty: bool = False

    def add(self, track_id: int, bottom: float, height: float, pts: float) -> None:
        """One detected person box, not cut by the frame's bottom edge."""
        if bottom >= self.frame_h - 1.0 or height <= 0.0:
            return
        self._open.setdefault(track_id, _Fit()).add(bottom, height, pts)

    def close_stale(self, pts: float) -> None:
        """Fold tracks unseen for ``stale_s`` into the finished estimates."""
        for tid in [t for t, f in self._open.items() if pts - f.last_pts > self.stale_s]:
            yh = self._open.pop(tid).horizon(0.1 * self.frame_h)
            if yh is not None:
                self._done.append(yh)
                self._dirty = True

    @property
    def value(self) -> float:
        """Median ``y_h`` over the finished tracks that gave one; ``prior`` until
        ``min_tracks`` did. Tracks still open do not count: their fits move frame by frame."""
        if self._dirty:
            ys = list(self._done)
            self._value = float(np.median(ys)) if len(ys) >= self.min_tracks else self.prior
            self._dirty = False
        return self.prior if self._value is None else self._value


@dataclass(slots=True)
class RiderGround:
    """One rider track's height over the road, from the frames its two-wheeler was seen.

    The height is kept normalised by the perspective, ``a = (wheel − top) / (wheel − y_h)``,
    as an exponential average over the frames with the bike seen (weight ``alpha`` on the
    newest): a rider leans, sits down or lifts the feet when starting off, so the latest
    frames say most about the next.
    """

    alpha: float = 0.25
    ratio: float | None = None

    def add_pair(self, top: float, bottom: float, wheel_bottom: float, horizon: float) -> None:
        h = bottom - top
        if h <= 0.0 or wheel_bottom - horizon <= 1.0:
            return
        gap = (wheel_bottom - bottom) / h
        if not _GAP_RANGE[0] <= gap <= _GAP_RANGE[1]:
            return
        a = (wheel_bottom - top) / (wheel_bottom - horizon)
        self.ratio = a if self.ratio is None else (1.0 - self.alpha) * self.ratio + self.alpha * a

    def road_y(self, top: float, bottom: float, horizon: float) -> float | None:
        """The road contact under a person box ``top``–``bottom``; None when not learned."""
        a = self.ratio
        if a is None or not 0.0 < a < 0.9:
            return None
        y = (top - a * horizon) / (1.0 - a)
        h = bottom - top
        return float(np.clip(y, bottom + _ESTIMATE_RANGE[0] * h, bottom + _ESTIMATE_RANGE[1] * h))


__all__ = ["Horizon", "RiderGround"]
