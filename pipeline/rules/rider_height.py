"""Where the road is under a rider whose two-wheeler is not seen: the camera's rider height.

A rider's feet are not on the road: they rest on footrests, hang down when the bike starts from
a queue, or are hidden behind the bike, so the person box bottom sits 0.0–0.5 of the box height
above the wheels (per-frame tyre readings of the hanoi_b runners, two blind labellers). The
*head*, though, is where the box top is whatever the legs do, and the height from a rider's head
to the road at a given image row is nearly the same for every rider (hanoi_b near the stop line:
80–89 px for six riders whose feet-to-wheel share ranged 0.0–0.47).

:class:`RiderHeightModel` learns that height as a straight line of the box top's image row, from
the frames where the camera itself shows both: a detected rider over a detected two-wheeler (its
box bottom is the wheel contact, within 1–2 px of the labelled tyre). It is per camera, not per
track, so a rider's road point does not switch source with the frames its bike is detected in.
It answers after ``min_pairs`` pairs (before that the caller keeps its fixed share) and at any
row: on a flat road an object's image height is linear in its image row, so the line carries
over the picture; the caller bounds the result to the rider's own box (feet … 0.6 of its height
below them). Tried and measured on hanoi_b: answering only within the rows seen changed nothing.
Pure: no I/O.
"""

from __future__ import annotations

from collections import deque

import numpy as np

# Residuals beyond this many robust standard deviations are left out of the second fit.
_TRIM_SIGMAS = 3.0
# Tops this close together cannot tell a slope: the height is their median.
_FLAT_RANGE_PX = 4.0


class RiderHeightModel:
    """Head-to-road height of riders against the head's image row (see the module doc)."""

    def __init__(self, min_pairs: int = 30, keep: int = 600, refit_every: int = 10) -> None:
        self.min_pairs = min_pairs
        self.refit_every = refit_every
        self._tops: deque[float] = deque(maxlen=keep)
        self._heights: deque[float] = deque(maxlen=keep)
        self._new = 0
        self._line: tuple[float, float] | None = None  # height = a + b * top

    @property
    def pairs(self) -> int:
        return len(self._tops)

    def add(self, top: float, wheel: float) -> None:
        """One rider over its detected two-wheeler: box top and wheel (road) row, pixels."""
        self._tops.append(top)
        self._heights.append(wheel - top)
        self._new += 1
        if self._new >= self.refit_every:
            self._new = 0
            self._fit()

    def _fit(self) -> None:
        if len(self._tops) < self.min_pairs:
            self._line = None
            return
        x = np.asarray(self._tops, np.float64)
        y = np.asarray(self._heights, np.float64)
        keep = np.ones(len(x), np.bool_)
        for _ in range(2):  # fit, trim the outliers (a wrong pairing, a cut box), fit again
            a, b = _line(x[keep], y[keep])
            resid = y - (a + b * x)
            mad = float(np.median(np.abs(resid[keep] - np.median(resid[keep]))))
            keep = np.abs(resid) <= _TRIM_SIGMAS * 1.4826 * mad + 1.0
        self._line = _line(x[keep], y[keep])

    def height_at(self, top: float) -> float | None:
        """Head-to-road height (pixels) for a box top at row ``top``; None until learned."""
        if self._line is None:
            return None
        a, b = self._line
        return a + b * top


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a + b x`` (b = 0, a = median when x barely varies)."""
    if len(x) == 0:
        return 0.0, 0.0
    if float(np.ptp(x)) < _FLAT_RANGE_PX:
        return float(np.median(y)), 0.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


__all__ = ["RiderHeightModel"]
