"""A standing vehicle keeps its track id when the tracker loses it and finds it again.

ByteTrack ends a track lost for more than ``lost_buffer_s`` (about a second and a half). A car
parked at the kerb or waiting in a queue is hidden by every bus and truck that passes in front
of it, often for longer; each time it is seen again the tracker opens a new track, and each
track made one ``vehicle_pass`` event — one GA/T 1400 MotorVehicleObject, one vehicle in the
flow counts — for a car that did not pass anywhere (hanoi_b: a car stopped at the far side of
the crossing gave three events, another four; intersection_topview: a parked car two).

:class:`ParkedContinuity` wraps the tracker. A motor-vehicle track that ends after standing
still — seen for at least :data:`MIN_LIFE_S`, its box centre never further than
:data:`STILL_FRACTION` of its box diagonal from where it was first seen and its box never
:data:`STILL_SIZE` times larger or smaller than at first — is not reported
finished at once: it is held for :data:`HOLD_S`. A new track whose first box overlaps a held
one's last box by at least :data:`SAME_PLACE_IOU` is that vehicle seen again: downstream (events,
structuring, flow, rules) it carries the held track's id, so its event, its count and its rules'
history go on. A held track nobody takes over within the hold is reported finished then (its
event comes :data:`HOLD_S` later than before). A track that moved is finished as before — a car
that drove up to a queue and stopped moved first, so it never takes a parked car's id at birth
unless it is first seen standing exactly where that car stood.

A vehicle whose box two opposite sides of the picture cut does not stand, whatever its box does
(:func:`_cut`; the picture's size comes with each frame): on a checkpoint's near field a car
crawling in fills the picture from top to bottom, its box stays put while it drives, and the
next car's frame-filling box lies where it was — the Beijing clip at 5 pictures a second lost
two plates that way before this test. On by default (``tracker.parked_hold_s: 30``; 0 = off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sharpeyes.pipeline.geometry import iou_matrix
from sharpeyes.pipeline.types import Detections, IntArray, ObjectKind, Tracks

if TYPE_CHECKING:
    from sharpeyes.pipeline.runner import FinishingTracker

__all__ = [
    "EDGE_SHARE",
    "HOLD_S",
    "MIN_LIFE_S",
    "SAME_PLACE_IOU",
    "STILL_FRACTION",
    "STILL_SIZE",
    "ParkedContinuity",
]

HOLD_S = 30.0
"""How long a standing vehicle's track waits, after the tracker lost it, to be found again."""
MIN_LIFE_S = 1.0
"""A track seen for less than this is not known to stand (a flicker, a vehicle crossing)."""
STILL_FRACTION = 0.25
"""A track stands while its box centre stays within this share of its box diagonal of where it
was first seen (detector jitter on a parked car is a few per cent; a car creeping up a queue
moves a good part of its length)."""
STILL_SIZE = 1.5
"""…and its box's area within this factor of its first (a vehicle coming closer or going away
grows or shrinks even where its centre hardly moves: a checkpoint camera's near field)."""
SAME_PLACE_IOU = 0.5
"""A new track's first box over a held track's last box: the same vehicle, seen again."""
EDGE_SHARE = 0.01
"""A box side within this share of the picture's shorter side of the picture's side is cut by
it. A box cut by two opposite sides can stay put while its vehicle drives (a checkpoint's near
field, where a car fills the picture from top to bottom): such a vehicle is not known to
stand."""


@dataclass
class _Life:
    first_pts: float
    last_pts: float
    cx: float
    cy: float
    box: tuple[float, float, float, float]
    kind: int
    area: float
    still: bool = True


@dataclass(frozen=True, slots=True)
class _Held:
    box: tuple[float, float, float, float]
    kind: int
    until: float


class ParkedContinuity:
    """A :class:`~sharpeyes.pipeline.runner.FinishingTracker` around another (see the module
    docstring); the ids it gives out are the inner tracker's, but for a standing vehicle seen
    again, the id it had."""

    def __init__(
        self,
        inner: FinishingTracker,
        *,
        hold_s: float = HOLD_S,
        min_life_s: float = MIN_LIFE_S,
        still_fraction: float = STILL_FRACTION,
        same_place_iou: float = SAME_PLACE_IOU,
        kinds: frozenset[ObjectKind] = frozenset({ObjectKind.MOTOR_VEHICLE}),
    ) -> None:
        self.inner = inner
        self._hold_s = hold_s
        self._min_life_s = min_life_s
        self._still = still_fraction
        self._iou = same_place_iou
        self._kinds = frozenset(int(k) for k in kinds)
        self._alias: dict[int, int] = {}  # inner id → the id given out (a held track's)
        self._life: dict[int, _Life] = {}  # by the id given out
        self._held: dict[int, _Held] = {}
        self._released: list[int] = []
        self.taken_over = 0  # standing vehicles seen again under their first id

    def update(
        self,
        detections: Detections,
        pts: float,
        frames_skipped: int = 0,
        picture: tuple[int, int] | None = None,
    ) -> Tracks:
        tracks = self.inner.update(detections, pts, frames_skipped, picture)
        ids = tracks.track_id.copy()
        for i in range(len(ids)):
            inner = int(ids[i])
            out = self._alias.get(inner, inner)
            box = _box(tracks.xyxy[i])
            life = self._life.get(out)
            if life is None:
                held = self._take(box, int(tracks.kind[i]))
                if held is not None:
                    self._alias[inner] = out = held
                    life = self._life[held]
                else:
                    cx, cy = _centre(box)
                    life = self._life[out] = _Life(
                        pts, pts, cx, cy, box, int(tracks.kind[i]), _area(box)
                    )
            ids[i] = out
            if not bool(tracks.detected[i]):
                continue  # a predicted box says nothing of where the vehicle stands
            cx, cy = _centre(box)
            diag = math.hypot(box[2] - box[0], box[3] - box[1])
            grown = _area(box) / max(life.area, 1.0)
            moved = math.hypot(cx - life.cx, cy - life.cy) > self._still * diag
            if moved or not 1.0 / STILL_SIZE <= grown <= STILL_SIZE or _cut(box, picture):
                life.still = False
            life.last_pts, life.box = pts, box
        for tid, entry in list(self._held.items()):
            if pts > entry.until:
                del self._held[tid]
                self._life.pop(tid, None)
                self._released.append(tid)
        if np.array_equal(ids, tracks.track_id):
            return tracks
        return _with_ids(tracks, ids)

    def pop_finished(self) -> list[int]:
        out, self._released = self._released, []
        for inner in self.inner.pop_finished():
            tid = self._alias.pop(inner, inner)
            life = self._life.get(tid)
            if life is not None and self._stands(life):
                self._held[tid] = _Held(life.box, life.kind, life.last_pts + self._hold_s)
                continue
            self._life.pop(tid, None)
            out.append(tid)
        return out

    def reset(self) -> None:
        self.inner.reset()
        self._alias.clear()
        self._life.clear()
        self._held.clear()
        self._released.clear()

    def lowered(self) -> dict[str, float]:
        """The inner tracker's kinds whose tracks open lower (``ByteTracker.lowered``)."""
        lowered = getattr(self.inner, "lowered", None)
        return dict(lowered()) if lowered is not None else {}

    def _stands(self, life: _Life) -> bool:
        return (
            life.kind in self._kinds
            and life.still
            and life.last_pts - life.first_pts >= self._min_life_s
        )

    def _take(self, box: tuple[float, float, float, float], kind: int) -> int | None:
        """The held track of ``kind`` whose last box ``box`` overlaps most (at least the
        same-place IoU), taken out of the held ones; None when there is none."""
        if not self._held or kind not in self._kinds:
            return None
        tids = [t for t, h in self._held.items() if h.kind == kind]
        if not tids:
            return None
        held = np.array([self._held[t].box for t in tids], np.float32)
        ious = iou_matrix(np.array([box], np.float32), held)[0]
        best = int(np.argmax(ious))
        if float(ious[best]) < self._iou:
            return None
        tid = tids[best]
        del self._held[tid]
        self.taken_over += 1
        return tid


Box4 = tuple[float, float, float, float]


def _box(row: np.ndarray) -> Box4:
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def _area(box: Box4) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def _cut(box: Box4, picture: tuple[int, int] | None) -> bool:
    """Whether two opposite sides of the picture cut ``box`` (within :data:`EDGE_SHARE` of the
    picture's shorter side): what is in view is a window on a larger vehicle, which can drive
    while the box stays put. A box cut on one side grows or shrinks as its vehicle moves across
    that side, which the centre and size tests see. False with no picture size."""
    if picture is None:
        return False
    w, h = picture
    margin = EDGE_SHARE * min(w, h)
    across = box[0] <= margin and box[2] >= w - margin
    down = box[1] <= margin and box[3] >= h - margin
    return across or down


def _centre(box: Box4) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def _with_ids(tracks: Tracks, ids: IntArray) -> Tracks:
    return Tracks(
        xyxy=tracks.xyxy,
        confidence=tracks.confidence,
        class_id=tracks.class_id,
        kind=tracks.kind,
        track_id=ids,
        detected=tracks.detected,
        class_votes=tracks.class_votes,
    )
