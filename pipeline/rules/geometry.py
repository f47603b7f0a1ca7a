"""Pixel-space geometry for the rules: oriented lines, polygons, crossings, headings.

Calibration is relative (0–1); rules convert it once per stream into pixels with
:func:`to_pixels` and then only do cheap vector maths per frame. Image coordinates: x right,
y down, so a positive cross product between the travel direction and a later heading is a
right turn as seen on screen.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Vec = tuple[float, float]
RelPoint = tuple[float, float]

_RASTER = 2000


def to_pixels(points: Sequence[RelPoint], frame_size: tuple[int, int]) -> list[Vec]:
    """Relative points → pixel points for a frame of ``(width, height)``."""
    w, h = frame_size
    return [(float(x) * w, float(y) * h) for x, y in points]


def polygon_overlap_area(a: Sequence[RelPoint], b: Sequence[RelPoint]) -> float:
    """Shared area of two relative polygons (fraction of the frame), by rasterising both."""
    masks = []
    for poly in (a, b):
        m = np.zeros((_RASTER, _RASTER), np.uint8)
        pts = np.round(np.asarray(poly, np.float64) * (_RASTER - 1)).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
        masks.append(m)
    # The shared edge pixels of adjacent polygons rasterise into both; erode them away.
    both = cv2.erode(masks[0] & masks[1], np.ones((3, 3), np.uint8))
    return float(both.sum()) / float(_RASTER * _RASTER)


MAX_WHEEL_SLOPE = 0.5
"""Beyond about 27° the line is seen from the side of the road: the box shows the car's flank, and
its bottom is the near wheels, not one end of the rear (or front) wheel line."""

WHEEL_LINE_CLASSES = frozenset({2, 5, 7})
"""COCO car, bus, truck: a wheel line as wide as the box. A two-wheeler touches the road under its
middle, and a rider's road point is estimated from the person."""


@dataclass(frozen=True, slots=True)
class OrientedLine:
    """A line segment in pixels with a 'forward' side (the direction of travel)."""

    a: Vec
    b: Vec
    normal: Vec  # unit normal pointing to the forward (downstream) side

    @classmethod
    def create(cls, a: Vec, b: Vec, forward: Vec) -> OrientedLine:
        """Build a line whose positive side is the one ``forward`` points to."""
        dx, dy = b[0] - a[0], b[1] - a[1]
        length = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / length, dx / length
        if nx * forward[0] + ny * forward[1] < 0:
            nx, ny = -nx, -ny
        return cls(a=a, b=b, normal=(nx, ny))

    def signed_distance(self, p: Vec) -> float:
        """Pixels from the line; positive past it in the direction of travel."""
        return (p[0] - self.a[0]) * self.normal[0] + (p[1] - self.a[1]) * self.normal[1]

    def wheel_point(self, box: tuple[float, float, float, float]) -> Vec:
        """The middle of a car's wheel line, for a box whose bottom is the car's lowest point.

        A car's bumper and wheel line run across its travel, as the stop line does, so on a
        tilted line (a rolled camera, an approach seen at an angle) they are tilted alike: the
        box's bottom is their lower end, half the box's width times the line's slope below their
        middle. The slope counts up to :data:`MAX_WHEEL_SLOPE`.
        """
        x1, _, x2, y2 = box
        dx, dy = abs(self.b[0] - self.a[0]), abs(self.b[1] - self.a[1])
        slope = min(dy / dx, MAX_WHEEL_SLOPE) if dx > 0.0 else MAX_WHEEL_SLOPE
        return ((x1 + x2) / 2.0, y2 - (x2 - x1) / 2.0 * slope)

    def along(self, p: Vec) -> float:
        """Position of the foot of ``p`` along the segment: 0 at ``a``, 1 at ``b``."""
        dx, dy = self.b[0] - self.a[0], self.b[1] - self.a[1]
        den = dx * dx + dy * dy or 1.0
        return ((p[0] - self.a[0]) * dx + (p[1] - self.a[1]) * dy) / den

    def crossing(self, p0: Vec, p1: Vec, extend: float = 0.1) -> float | None:
        """Fraction t in (0, 1] where segment p0→p1 crosses from behind to past the line.

        The crossing must fall within the segment's extent, widened by ``extend`` (a fraction
        of its length) at both ends; None when it does not cross forwards.
        """
        d0, d1 = self.signed_distance(p0), self.signed_distance(p1)
        if not (d0 < 0.0 <= d1):
            return None
        t = d0 / (d0 - d1)
        x = (p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1]))
        if not -extend <= self.along(x) <= 1.0 + extend:
            return None
        return t


class PixelPolygon:
    """A polygon in pixels with a point-inside test."""

    __slots__ = ("_pts",)

    def __init__(self, points: Sequence[Vec]) -> None:
        self._pts: NDArray[np.float32] = np.asarray(points, np.float32).reshape(-1, 1, 2)

    def contains(self, p: Vec, margin: float = 0.0) -> bool:
        """Inside (or within ``margin`` pixels of the border)."""
        d = cv2.pointPolygonTest(self._pts, (float(p[0]), float(p[1])), True)
        return bool(d >= -margin)


def unit(v: Vec) -> Vec:
    n = math.hypot(v[0], v[1])
    return (v[0] / n, v[1] / n) if n > 0 else (0.0, 0.0)


def heading_change_deg(reference: Vec, heading: Vec) -> float:
    """Signed angle from ``reference`` to ``heading`` in degrees; positive = right turn."""
    cross = reference[0] * heading[1] - reference[1] * heading[0]
    dot = reference[0] * heading[0] + reference[1] * heading[1]
    return math.degrees(math.atan2(cross, dot))


def lerp(p0: Vec, p1: Vec, t: float) -> Vec:
    return (p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1]))


def distance(p0: Vec, p1: Vec) -> float:
    return math.hypot(p1[0] - p0[0], p1[1] - p0[1])


class Polyline:
    """A polyline in pixels: signed distance of a point to its nearest segment.

    The sign is the side (positive left of the segment direction as drawn a→b in image
    coordinates, i.e. the cross product ``(b - a) × (p - a)``); None when the point's foot falls
    outside every segment (beyond the ends, so a vehicle passing round a line's end has no side).
    """

    __slots__ = ("_segs",)

    def __init__(self, points: Sequence[Vec]) -> None:
        segs = []
        for (ax, ay), (bx, by) in itertools.pairwise(points):
            dx, dy = bx - ax, by - ay
            length = math.hypot(dx, dy)
            if length > 0:
                segs.append((ax, ay, dx / length, dy / length, length))
        self._segs = tuple(segs)

    def side_distance(self, p: Vec) -> float | None:
        """Signed distance to the nearest segment whose extent covers ``p``'s foot."""
        hit = self.side_distance_across(p)
        return None if hit is None else hit[0]

    def side_distance_across(self, p: Vec) -> tuple[float, float] | None:
        """(signed distance, |sin| of the segment's angle to the image x axis) for the nearest
        segment whose extent covers ``p``'s foot: a horizontal span of width ``w`` centred on
        ``p`` reaches ``w / 2 × |sin|`` towards that segment."""
        best: tuple[float, float] | None = None
        for ax, ay, ux, uy, length in self._segs:
            rx, ry = p[0] - ax, p[1] - ay
            t = rx * ux + ry * uy
            if not 0.0 <= t <= length:
                continue
            d = ux * ry - uy * rx
            if best is None or abs(d) < abs(best[0]):
                best = (d, abs(uy))
        return best


class BoxedPolygon(PixelPolygon):
    """A :class:`PixelPolygon` that rejects points outside its bounding box before the exact
    test (most points a rule asks about are nowhere near most of its polygons)."""

    __slots__ = ("_box",)

    def __init__(self, points: Sequence[Vec]) -> None:
        super().__init__(points)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        self._box = (min(xs), min(ys), max(xs), max(ys))

    def contains(self, p: Vec, margin: float = 0.0) -> bool:
        x0, y0, x1, y1 = self._box
        if not (x0 - margin <= p[0] <= x1 + margin and y0 - margin <= p[1] <= y1 + margin):
            return False
        return super().contains(p, margin)

    def depth(self, p: Vec, margin: float = 0.0) -> float | None:
        """Signed distance into the polygon (negative outside); None when ``p`` is further
        than ``margin`` outside its bounding box (then it is surely outside by more)."""
        x0, y0, x1, y1 = self._box
        if not (x0 - margin <= p[0] <= x1 + margin and y0 - margin <= p[1] <= y1 + margin):
            return None
        return float(cv2.pointPolygonTest(self._pts, (float(p[0]), float(p[1])), True))
