"""Riders ↔ two-wheelers: which ``person`` tracks sit on a bicycle or motorbike, and which ride.

Seen from behind, a motorbike is mostly hidden by its rider: the detector often finds the
``person`` and misses the bike. These pure helpers let the rules and the event builder treat a
rider as (part of) a two-wheeler:

* :func:`carrier_ids` — per track row, the id of the two-wheeler track a person sits on (-1 if
  none): the person box lies mostly on the two-wheeler box and its centre is above it;
* :func:`suppress_riders` — a mask of the person rows that sit on a two-wheeler in this frame
  (``tracks[~suppress_riders(tracks)]`` keeps everything else);
* :class:`RiderMemory` — the same decision made sticky per track, so a rider's ``person_seen``
  event is suppressed as a whole, not frame by frame;
* :func:`rides_along` — whether a displacement is a vehicle's: fast enough along a lane's
  direction of travel and not mostly sideways (a pedestrian on a crosswalk moves across lanes).

Everything here is pure numpy on :class:`~sharpeyes.pipeline.types.Tracks`; no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.geometry import intersection_matrix
from sharpeyes.pipeline.types import FloatArray, IntArray, ObjectKind, Tracks

# COCO class ids of two-wheelers ("bicycle", "motorcycle"); NON_MOTOR kinds always count.
COCO_TWO_WHEELERS = frozenset({1, 3})

Vec = tuple[float, float]


@dataclass(frozen=True, slots=True)
class RiderParams:
    """Thresholds of the rider ↔ two-wheeler association."""

    min_cover: float = 0.35
    """Share of the smaller of (person, two-wheeler) box inside the other that makes a rider."""
    two_wheeler_classes: frozenset[int] = COCO_TWO_WHEELERS
    """Model class ids of motor-vehicle kind that are two-wheelers (motorcycle)."""
    min_speed: float = 0.025
    """Speed along the lane's direction of travel (frame diagonals per second) of a rider.
    On hanoi_b the six riders charged cover 0.025–0.086 diagonals/s from the stop line to the
    far side of the crosswalk; a pedestrian walking 1.4 m/s up the lane there covers about
    0.018 (the crosswalk, some 4–5 m deep, is 48 px tall; the diagonal is 800 px)."""
    max_lateral: float = 1.0
    """Largest sideways / along-travel displacement ratio of a rider (45° off the lane's
    direction; the charged riders veer up to 0.79 on hanoi_b, crosswalk walkers are ≫ 1)."""
    rider_share: float = 0.3
    """Share of a track's frames sitting on a two-wheeler that makes it a rider for good."""
    min_rider_frames: int = 2
    """And at least this many such frames."""
    ground_offset: float = 0.25
    """Gap between a rider's feet and the road, as a share of the person box height (median
    0.255 over 408 rider/motorbike pairs near the stop line of hanoi_b)."""


def two_wheeler_mask(tracks: Tracks, params: RiderParams | None = None) -> NDArray[np.bool_]:
    """Rows of ``tracks`` that are two-wheelers: non-motor kind, or a motorcycle class."""
    p = params or RiderParams()
    motor_2w = (tracks.kind == int(ObjectKind.MOTOR_VEHICLE)) & np.isin(
        tracks.class_id, list(p.two_wheeler_classes)
    )
    return np.asarray((tracks.kind == int(ObjectKind.NON_MOTOR)) | motor_2w)


def cover_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """(len(a), len(b)) intersection area over the smaller of the two box areas."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter = intersection_matrix(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    smaller = np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-6)
    return np.asarray(inter / smaller, np.float32)


def mounts(person: FloatArray, wheel: FloatArray, min_cover: float) -> NDArray[np.intp]:
    """Per person box (xyxy rows of ``person``), the index of the two-wheeler box of ``wheel`` it
    sits on, -1 for none.

    A person sits on a two-wheeler when the boxes overlap by ``min_cover`` (of the smaller box),
    the person's horizontal centre is within the two-wheeler's width, and the person's top is
    above the two-wheeler's upper quarter (riders sit on top; a walker passing behind a bike
    does not stand inside its box). The best-covering two-wheeler wins.
    """
    out = np.full(len(person), -1, np.intp)
    if len(person) == 0 or len(wheel) == 0:
        return out
    cover = cover_matrix(person, wheel)
    cx = (person[:, 0] + person[:, 2]) / 2
    centred = (cx[:, None] >= wheel[None, :, 0]) & (cx[:, None] <= wheel[None, :, 2])
    top = wheel[:, 1] + 0.25 * (wheel[:, 3] - wheel[:, 1])
    on_top = person[:, 1][:, None] <= top[None, :]
    score = np.where(centred & on_top & (cover >= min_cover), cover, -1.0)
    best = np.argmax(score, axis=1)
    has = score[np.arange(len(person)), best] >= 0.0
    out[has] = best[has]
    return out


def carrier_ids(tracks: Tracks, params: RiderParams | None = None) -> IntArray:
    """Per row: the track id of the two-wheeler a person sits on (:func:`mounts`), -1 for none /
    non-persons."""
    p = params or RiderParams()
    out = np.full(len(tracks), -1, np.int64)
    person_rows = np.flatnonzero(tracks.kind == int(ObjectKind.PERSON))
    wheel_rows = np.flatnonzero(two_wheeler_mask(tracks, p))
    if len(person_rows) == 0 or len(wheel_rows) == 0:
        return out
    on = mounts(tracks.xyxy[person_rows], tracks.xyxy[wheel_rows], p.min_cover)
    has = on >= 0
    out[person_rows[has]] = tracks.track_id[wheel_rows[on[has]]]
    return out


def suppress_riders(tracks: Tracks, params: RiderParams | None = None) -> NDArray[np.bool_]:
    """Mask of the person rows sitting on a two-wheeler in this frame (True = a rider)."""
    return np.asarray(carrier_ids(tracks, params) >= 0)


@dataclass(slots=True)
class _Tally:
    seen: int = 0
    carried: int = 0
    last_pts: float = 0.0


@dataclass
class RiderMemory:
    """Sticky per-track rider decision, for suppressing riders' ``person_seen`` events.

    ``update(tracks, pts)`` returns the mask of rows that are riders: persons that sat on a
    two-wheeler in at least ``min_rider_frames`` frames and ``rider_share`` of their frames so
    far. Once a rider, always a rider (the event of the whole track is suppressed). Tallies of
    tracks unseen for ``stale_s`` seconds are dropped.
    """

    params: RiderParams = field(default_factory=RiderParams)
    stale_s: float = 10.0
    _tally: dict[int, _Tally] = field(default_factory=dict)
    _riders: set[int] = field(default_factory=set)

    def update(self, tracks: Tracks, pts: float) -> NDArray[np.bool_]:
        carried = carrier_ids(tracks, self.params) >= 0
        mask = np.zeros(len(tracks), np.bool_)
        p = self.params
        for i in np.flatnonzero(tracks.kind == int(ObjectKind.PERSON)):
            tid = int(tracks.track_id[i])
            t = self._tally.setdefault(tid, _Tally())
            t.seen, t.carried, t.last_pts = t.seen + 1, t.carried + int(carried[i]), pts
            if t.carried >= p.min_rider_frames and t.carried >= p.rider_share * t.seen:
                self._riders.add(tid)
            mask[i] = tid in self._riders
        for tid in [k for k, t in self._tally.items() if pts - t.last_pts > self.stale_s]:
            del self._tally[tid]
            self._riders.discard(tid)
        return mask

    def is_rider(self, track_id: int) -> bool:
        """Whether the track is a rider (asked when its event is made). A fragment seen in
        fewer frames than ``min_rider_frames`` is one when it sat on a two-wheeler in every frame
        it was seen: a rider's track broken by occlusion leaves 1-frame pieces that can never
        reach the count (3 of the 12 hanoi_b riders ``benchmarks/attribute_eval`` found judged
        walkers), while a walker passing a bike overlaps it in some of its frames, not all."""
        if track_id in self._riders:
            return True
        t = self._tally.get(track_id)
        return t is not None and 0 < t.seen < self.params.min_rider_frames and t.carried == t.seen


def along_and_lateral(p0: Vec, p1: Vec, travel: Vec) -> tuple[float, float]:
    """Displacement p0→p1 split into (along ``travel`` (unit), absolute sideways) pixels."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    along = dx * travel[0] + dy * travel[1]
    lateral = abs(dx * travel[1] - dy * travel[0])
    return along, lateral


def rides_along(
    p0: Vec,
    t0: float,
    p1: Vec,
    t1: float,
    *,
    travel: Vec,
    diag: float,
    params: RiderParams | None = None,
) -> bool:
    """True when moving from ``p0`` at ``t0`` to ``p1`` at ``t1`` is a vehicle's movement.

    Fast enough along the direction of travel (``min_speed`` diagonals per second) and not
    mostly sideways (``max_lateral``). ``diag`` is the frame diagonal in pixels.
    """
    p = params or RiderParams()
    dt = t1 - t0
    if dt <= 0:
        return False
    along, lateral = along_and_lateral(p0, p1, travel)
    return along / dt >= p.min_speed * diag and lateral <= p.max_lateral * along


__all__ = [
    "COCO_TWO_WHEELERS",
    "RiderMemory",
    "RiderParams",
    "along_and_lateral",
    "carrier_ids",
    "cover_matrix",
    "rides_along",
    "suppress_riders",
    "two_wheeler_mask",
]
