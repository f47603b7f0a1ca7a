"""Occupants: persons seen inside a car, bus or truck — through its windscreen — are not
pedestrians.

A checkpoint (卡口) camera looks down on vehicle fronts; once the detector sees them at their
scale (:mod:`sharpeyes.pipeline.near_field`) it finds the driver and the passenger behind the
glass too, as ``person``. Reported as they were, every car brought a ``person_seen`` event —
a passer-by (GA/T 1400 PersonObject) that was never on the road: plates_closeup_beijing with
structuring only gave 2 such events at 25 analysed pictures a second, both drivers.

A person is *inside* a vehicle in a picture when

* at least :data:`MIN_INSIDE` of the person's box lies in the box of a motor vehicle that is
  not a two-wheeler (a rider is :mod:`sharpeyes.pipeline.riders`' business), and
* the person's box ends above the vehicle's lowest :data:`GROUND_BAND` — an occupant is seen
  from the chest up through the glass, while a pedestrian in front of (or behind) a vehicle
  stands on the road, at the bottom of its box or below it. A vehicle whose box reaches the
  picture's bottom edge shows no ground band (a checkpoint's car leaving the picture, its
  driver at the edge with it): there the box test alone decides.

A person track inside a vehicle in at least :data:`SHARE` of its pictures is an occupant: its
``person_seen`` event is not made (counted instead). Its face capture, when the camera captures
faces, stays: a driver's face is what a checkpoint's face images (GA/T 1400 image types 04/05)
are for. A person box that is the vehicle's own box (the detector calling a car, cut by the
picture's edge, a person too: once on hanoi_b) is no pedestrian either, and goes the same way.

Measured on the sample clips (structuring only on the checkpoint clip, the usual configs
elsewhere): plates_closeup_beijing's 2 person events, both drivers behind the windscreen, are
not made; hanoi_b's 30 lose 1 (a black car at the bottom edge detected as a person with the
car's box); pedestrians_crossing's 3 walkers, intersection_topview's and urban_buses' one
pedestrian each stay.

Pure numpy on :class:`~sharpeyes.pipeline.types.Tracks`; no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.geometry import intersection_matrix
from sharpeyes.pipeline.riders import COCO_TWO_WHEELERS
from sharpeyes.pipeline.types import Detections, FloatArray, ObjectKind, Tracks

__all__ = [
    "GROUND_BAND",
    "MIN_INSIDE",
    "MIN_PICTURES",
    "SHARE",
    "OccupantMemory",
    "inside",
    "vehicle_boxes",
]

MIN_INSIDE = 0.9
"""Share of the person's box inside the vehicle's."""
GROUND_BAND = 0.2
"""Lowest share of the vehicle box's height an occupant's box does not reach (the bumper, the
wheels, the road under them)."""
SHARE = 0.5
"""Share of a person track's pictures inside a vehicle that makes it an occupant."""
MIN_PICTURES = 1
"""And at least this many: a checkpoint's driver is often a track of two pictures (the car is
large and fast), seen inside the car in one of them (in the other the car has left the
picture and the detector no longer finds it)."""


TWO_WHEELERS = sorted(COCO_TWO_WHEELERS)  # a person inside one of those is a rider
EDGE = 0.02
"""A vehicle box within this share of the picture's height of its bottom edge is cut by it
(the detector's box of a frame-cut car ends a few pixels short of the edge: 357.6 of 360 on
the checkpoint clip's taxi)."""


def vehicle_boxes(*parts: Tracks | Detections) -> FloatArray:
    """Boxes of the motor vehicles that are not two-wheelers among ``parts`` (a picture's
    tracks and its detections: a car the tracker has not confirmed — the detector scores a
    checkpoint's fronts 0.3–0.6 — still holds its driver)."""
    boxes = [
        p.xyxy[(p.kind == int(ObjectKind.MOTOR_VEHICLE)) & ~np.isin(p.class_id, TWO_WHEELERS)]
        for p in parts
    ]
    return np.concatenate([np.zeros((0, 4), np.float32), *boxes]).astype(np.float32)


def inside(tracks: Tracks, vehicles: FloatArray, height: int) -> NDArray[np.bool_]:
    """Per row of ``tracks``: a person inside one of the ``vehicles`` boxes (see module doc) in
    this picture, ``height`` pixels tall."""
    out = np.zeros(len(tracks), np.bool_)
    persons = np.flatnonzero(tracks.kind == int(ObjectKind.PERSON))
    if len(persons) == 0 or len(vehicles) == 0:
        return out
    pb, vb = tracks.xyxy[persons][:, None, :], vehicles[None, :, :]
    area = np.maximum((pb[..., 2] - pb[..., 0]) * (pb[..., 3] - pb[..., 1]), 1e-6)
    share = intersection_matrix(tracks.xyxy[persons], vehicles) / area  # of the person's box
    above_ground = pb[..., 3] <= vb[..., 3] - GROUND_BAND * (vb[..., 3] - vb[..., 1])
    above_ground |= vb[..., 3] >= height * (1.0 - EDGE)
    out[persons] = ((share >= MIN_INSIDE) & above_ground).any(axis=1)
    return out


@dataclass(slots=True)
class _Tally:
    seen: int = 0
    inside: int = 0
    last_pts: float = 0.0


@dataclass
class OccupantMemory:
    """Per-track tallies of pictures inside a vehicle (like
    :class:`~sharpeyes.pipeline.riders.RiderMemory` for riders), judged when the track's event
    is made. Tallies of tracks unseen for ``stale_s`` are dropped."""

    stale_s: float = 120.0  # longer than any lost-track buffer (≤ 60 s): judged before
    _tally: dict[int, _Tally] = field(default_factory=dict)

    def update(self, tracks: Tracks, detections: Detections, pts: float, height: int) -> None:
        """Count this picture's person tracks inside a vehicle of its ``tracks`` or
        ``detections`` (detected person boxes only); ``height``: the picture's, in pixels."""
        within = inside(tracks, vehicle_boxes(tracks, detections), height)
        for i in np.flatnonzero((tracks.kind == int(ObjectKind.PERSON)) & tracks.detected):
            t = self._tally.setdefault(int(tracks.track_id[i]), _Tally())
            t.seen, t.inside, t.last_pts = t.seen + 1, t.inside + int(within[i]), pts
        for tid in [k for k, t in self._tally.items() if pts - t.last_pts > self.stale_s]:
            del self._tally[tid]

    def is_occupant(self, track_id: int) -> bool:
        """Whether the track was inside a vehicle in :data:`SHARE` of its pictures so far (and
        :data:`MIN_PICTURES`): asked when its event is made."""
        t = self._tally.get(track_id)
        return t is not None and t.inside >= MIN_PICTURES and t.inside >= SHARE * t.seen
