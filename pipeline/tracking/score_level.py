"""A camera's own score level: the tracker's thresholds set from what its detector scores the
objects it is sure of, per kind.

ByteTrack's thresholds (a track opens at 0.6, continues at 0.5) suit a detector that scores a
real object 0.7–0.9 in most pictures. yolov5n does on a traffic camera (highway_1280x720's
vehicle tracks: median score 0.68 at 25 fps), not on views it learnt little of:
plates_closeup_beijing's frame-filling fronts score 0.3–0.6 (median 0.49), hanoi_b's motorbikes
seen from behind 0.3–0.5. Both sample configs set 0.35 / 0.3 by hand; a camera without that
setting lost them — at 5 analysed pictures a second, three of the checkpoint clip's eight plates
(the third picture of a car scored 0.43, 0.55, 0.45 never reaches 0.6).

Here the camera measures it instead. A track is *sure* when the detector gave it the configured
``new_track_threshold`` at least once and it was detected in :data:`PICTURES` pictures; its
*level* is the median of its detected pictures' scores. A kind's level is the median of its
last :data:`MEMORY` sure tracks' levels, once there are :data:`MIN_TRACKS`. The kind's tracks
then open at ``min(new_track_threshold, level)`` — a detection as good as the typical picture of
an object the detector is sure of — and continue at the same fraction of it as configured
(``high / new``: 5/6 with the defaults), never below :data:`FLOOR_NEW` / :data:`FLOOR_HIGH`.
A kind the detector scores high keeps the configured thresholds; they only ever go down, and
come back up as the sure tracks' level does. Which tracks count is fixed by the configured
threshold, not by the one in use, so a lowered threshold does not feed on the weaker tracks it
lets in.

Two-wheelers seen from behind are the case the sure tracks miss: hanoi_b's motorbikes, mostly
hidden by their riders, score 0.3–0.6 (median 0.46 over the clip's detections; its cars 0.61, of
the same kind there), too seldom 0.6 to lower the kind; their riders score higher. So a
two-wheeler model class (:data:`~.bytetrack.WHEELS`) has a level of its own: a person track that
sits on a two-wheeler detection (:func:`mounts`, the riders' geometry of
:mod:`~sharpeyes.pipeline.riders`; detections down to ``low_threshold``) in :data:`PICTURES`
pictures and is sure itself says the two-wheeler under it is real; the median of those
detections' scores is that ride's level, and the class's level the median of its last
:data:`MEMORY` rides' once there are :data:`MIN_TRACKS` — the same thresholds and floors follow,
for that class's detections only (the lower of its kind's and its class's). The tracker also
lets a two-wheeler detection that a sure person track sits on in this picture open at the
floor: the rider is the evidence a sure score would be. Neither lets a detection in without a
sure person over it or a level learnt from such ones, so clutter scored 0.35–0.45 (litter bins
as persons) stays out.

The riders themselves are the mirror case: hanoi_b's persons on motorbikes seen from behind
often score under the persons' level (0.55 there). The two-wheeler under one is the evidence:
a person detection that sits on a *real* two-wheeler track — confirmed, detected in the
previous picture, and scored the configured ``new_track_threshold`` once or ridden by a sure
person track in some picture — opens and continues at the floor. Only a track makes a
two-wheeler real, never a bare detection, so a litter bin needs a tracked bike under it; and a
rider let in low is not sure, so it lowers no level (no rider level is learnt: the floor on a
real two-wheeler track lets in every rider one could).

Riders and two-wheelers that are both unsure are the last case: hanoi_b's riders whose person
and motorbike detections both score under their levels, with no sure track over or under them
(18 of its 79 labelled riders, most early in the clip before any level is learnt). A person
detection and a two-wheeler detection that sit on each other (:func:`mounts`), both scored at
:data:`FLOOR_NEW` or more, are followed from picture to picture (:class:`Pairs`: the box
around both, IoU-chained on its own velocity); once the pair has persisted in consecutive
pictures and moved off where it was first seen, both open and continue at the floor — from the
picture that lets a track confirmed after ``min_hits`` matches be confirmed in the pair's
:data:`PAIR_PICTURES`-th picture. Clutter stands still (a pole or a bin behind a parked bike),
a bin or a pole alone has no two-wheeler under it, a parked bike no person on it, a person
beside a bike does not sit on it; pairs let in low never score the configured threshold, so
they lower no level.

Measured (docs/STRUCTURING.md, "The camera's own score level"): the checkpoint clip with
nothing but structuring on, at 5 analysed pictures a second, reads 7 of its 8 plates (5 before;
cars open at 0.49, sure ones' level), none false; at 25 fps 8/8 as before (cars at 0.46).
highway_1280x720 (25 and 5 fps) and pedestrians_crossing keep the configured thresholds and
their events. hanoi_b without its tracker section charges 15 of 15 red-light runners (13 with
the sure tracks alone, 15 with its hand-set 0.35 / 0.3): motorbikes open at 0.48, the level of
the ones under its sure riders, and at 0.35 under a sure rider; each alone charges 14. A rider
on a real two-wheeler track opening at the floor: a track for 61 of its 79 labelled riders
(41 before), 59 of them decided riders; still 15 of 15 runners. Pairs: 69 riders with a track,
65 decided (no non-rider decided), 74 labelled two-wheelers typed, 57 unmatched (72 and 59
before); still 15 of 15 runners; no other sample clip's events change (the pairs fire on no
picture of highway_1280x720, pedestrians_crossing or the Beijing checkpoint).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.geometry import iou_matrix
from sharpeyes.pipeline.riders import mounts
from sharpeyes.pipeline.tracking.matching import BLOCKED_COST, assign
from sharpeyes.pipeline.types import FloatArray

__all__ = [
    "FLOOR_HIGH",
    "FLOOR_NEW",
    "MEMORY",
    "MIN_TRACKS",
    "PAIR_PICTURES",
    "PICTURES",
    "Pairs",
    "ScoreLevel",
    "mounts",
]

PICTURES = 3
"""Detected pictures a track needs before its level counts (a median of fewer says little)."""
MIN_TRACKS = 3
"""Sure tracks of a kind before its thresholds move: one odd object does not set them."""
MEMORY = 30
"""Sure tracks a kind's level is the median of: the camera follows a changed view (dusk, a
moved PTZ camera) within that many objects."""
FLOOR_NEW = 0.35
FLOOR_HIGH = 0.3
"""The lowest thresholds a camera sets itself: the values both hand-tuned sample cameras chose
(hanoi_b's motorbikes, the checkpoint's fronts); below, yolov5n's boxes are mostly clutter
(pedestrians_crossing's litter bins and sign poles score 0.38–0.44 as persons)."""


KEPT = 50
"""Latest detected scores kept per track (a parked car's track lives for hours)."""


@dataclass(slots=True)
class _Track:
    kind: int
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=KEPT))
    sure: bool = False  # scored the configured new_track_threshold at least once


class ScoreLevel:
    """The level of one camera's sure tracks per kind (see module doc) and the thresholds it
    implies; and the level of the two-wheelers its sure riders sit on, per class. Fed with every
    :class:`Tracks` the tracker outputs, the two-wheeler detections under its person tracks and
    the ids that finished."""

    def __init__(self, new_track_threshold: float, high_threshold: float) -> None:
        self.new_track_threshold = new_track_threshold
        self.high_threshold = high_threshold
        self._live: dict[int, _Track] = {}
        self._levels: dict[int, deque[float]] = {}
        self._rides: dict[int, dict[int, deque[float]]] = {}  # rider id → class → scores
        self._wheels: dict[int, deque[float]] = {}  # class → levels of sure riders' mounts

    def observe(
        self,
        track_id: NDArray[np.int64],
        kind: NDArray[np.int8],
        score: NDArray[np.float32],
        peak: NDArray[np.float32],
    ) -> None:
        """Record one picture's detected confirmed tracks: their ids, kinds, scores in this
        picture and highest scores so far (the picture that opened the track included)."""
        for tid, k, s, p in zip(
            track_id.tolist(), kind.tolist(), score.tolist(), peak.tolist(), strict=True
        ):
            t = self._live.setdefault(int(tid), _Track(int(k)))
            t.scores.append(float(s))
            t.sure = t.sure or p >= self.new_track_threshold - 1e-6

    def ride(
        self, rider_id: NDArray[np.int64], class_id: NDArray[np.int64], score: NDArray[np.float32]
    ) -> None:
        """Record one picture's two-wheeler detections (model class, score) that person tracks
        ``rider_id`` sit on (:func:`mounts`). They count once the person track is sure."""
        for tid, c, s in zip(rider_id.tolist(), class_id.tolist(), score.tolist(), strict=True):
            seen = self._rides.setdefault(int(tid), {})
            seen.setdefault(int(c), deque(maxlen=KEPT)).append(float(s))

    def finish(self, ids: Iterable[int]) -> None:
        """Tracks ended: the sure ones' levels join their kind's memory, and the levels of the
        two-wheelers a sure rider sat on join their class's."""
        for tid in ids:
            t = self._live.pop(int(tid), None)
            rides = self._rides.pop(int(tid), {})
            if t is None or not _counts(t):
                continue
            _remember(self._levels, t.kind, t.scores)
            for c, scores in rides.items():
                _remember(self._wheels, c, scores)

    def level(self, kind: int) -> float | None:
        """Median level of the kind's sure tracks (ended and live), None with too few."""
        live = [t.scores for t in self._live.values() if t.kind == kind and _counts(t)]
        return _median(self._levels.get(kind, ()), live)

    def wheel_level(self, class_id: int) -> float | None:
        """Median level of the two-wheelers of model class ``class_id`` that sure riders (ended
        and live) sat on, None with too few riders."""
        live = [
            rides[class_id]
            for tid, rides in self._rides.items()
            if class_id in rides and (t := self._live.get(tid)) is not None and _counts(t)
        ]
        return _median(self._wheels.get(class_id, ()), live)

    def thresholds(self, kind: int) -> tuple[float, float]:
        """``(high, new)`` for the kind's detections: the configured ones, lowered to the
        kind's level (see module doc)."""
        return self._lowered(self.level(kind))

    def wheel_thresholds(self, class_id: int) -> tuple[float, float]:
        """``(high, new)`` for two-wheeler detections of model class ``class_id``: the
        configured ones, lowered to the level of the two-wheelers sure riders sit on."""
        return self._lowered(self.wheel_level(class_id))

    def _lowered(self, level: float | None) -> tuple[float, float]:
        if level is None or level >= self.new_track_threshold:
            return self.high_threshold, self.new_track_threshold
        new = max(FLOOR_NEW, level)
        ratio = self.high_threshold / self.new_track_threshold if self.new_track_threshold else 1
        return min(self.high_threshold, max(FLOOR_HIGH, new * ratio)), new


def _counts(t: _Track) -> bool:
    """Whether a track is sure and long enough for its level to count."""
    return t.sure and len(t.scores) >= PICTURES


def _remember(memory: dict[int, deque[float]], key: int, scores: Iterable[float]) -> None:
    """A finished object's level (median of ``scores``, when there are :data:`PICTURES`) joins
    ``key``'s memory."""
    scores = list(scores)
    if len(scores) >= PICTURES:
        memory.setdefault(key, deque(maxlen=MEMORY)).append(statistics.median(scores))


def _median(ended: Iterable[float], live: Iterable[Iterable[float]]) -> float | None:
    """Median of the ended objects' levels and the live ones' (those with :data:`PICTURES`
    scores), over the last :data:`MEMORY`; None with fewer than :data:`MIN_TRACKS`."""
    levels = list(ended)
    levels += [statistics.median(s) for s in map(list, live) if len(s) >= PICTURES]
    if len(levels) < MIN_TRACKS:
        return None
    return statistics.median(levels[-MEMORY:])


PAIR_PICTURES = 3
"""Consecutive pictures a person and a two-wheeler detection must sit on each other before a
track opened on that evidence is confirmed (:class:`Pairs`)."""
PAIR_MOVED_IOU = 0.8
"""A pair has moved once the box around its two boxes overlaps the one where it was first seen
by less than this (:class:`Pairs`)."""


class Pairs:
    """Person and two-wheeler detections that sit on each other (:func:`mounts`), followed from
    picture to picture: how many consecutive pictures each pair has persisted, and whether it
    has moved.

    A pair continues one of the previous picture's when the box around its two boxes overlaps
    that pair's, moved on at the velocity of its last step, at ``min_iou`` or more (the
    tracker's own first-stage gate); each previous pair continues at most one (the best overlap,
    one-to-one). A picture without the pair ends it: the pair must be seen in every picture,
    not here and there.

    Why the box around both: at 6 pictures a second a rider near the camera moves a good part
    of its own box between two pictures (hanoi_b's person tracks: a tenth of consecutive boxes
    overlap under 0.29), and its motorbike, mostly hidden, is boxed unevenly; the two together
    move as one larger box. That the person still sits on the two-wheeler is checked in every
    picture (:func:`mounts`), so the two keep their places relative to each other.

    Why moved: clutter stands still and is detected the same in every picture — a sign pole or
    a litter bin behind a parked bike, each scored 0.35–0.45, would persist as long as the
    camera looks. A pair counts once its box has left where it was first seen (overlapping it
    by less than :data:`PAIR_MOVED_IOU`), and stays counted when it stops (a rider waiting at
    a red light).
    """

    def __init__(self, min_iou: float) -> None:
        self._min_iou = min_iou
        self.reset()

    def reset(self) -> None:
        """Forget every pair (a stream restart, a clock that went back)."""
        self._boxes = np.zeros((0, 4), np.float32)  # per pair: the box around both
        self._velocity = np.zeros((0, 4), np.float32)  # its corners' velocity, per second
        self._start = np.zeros((0, 4), np.float32)  # where it was first seen
        self._moved = np.zeros(0, np.bool_)
        self._runs = np.zeros(0, np.intp)
        self._pts: float | None = None

    def update(
        self, person: FloatArray, wheel: FloatArray, pts: float
    ) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
        """This picture's pairs (``person[i]`` sits on ``wheel[i]``, xyxy rows), seen at ``pts``
        seconds: per pair, the number of consecutive pictures it has persisted, this one
        included, and whether it has moved since it was first seen."""
        boxes = np.concatenate(
            [np.minimum(person[:, :2], wheel[:, :2]), np.maximum(person[:, 2:], wheel[:, 2:])],
            axis=1,
        ).astype(np.float32)
        dt = 0.0 if self._pts is None else max(pts - self._pts, 0.0)
        runs = np.ones(len(boxes), np.intp)
        velocity = np.zeros_like(boxes)
        start, moved = boxes.copy(), np.zeros(len(boxes), np.bool_)
        if len(self._boxes) and len(boxes):
            ahead = self._boxes + self._velocity * np.float32(dt)
            overlap = iou_matrix(ahead, boxes).astype(np.float64)
            cost = np.where(overlap >= self._min_iou, 1.0 - overlap, BLOCKED_COST)
            a = assign(cost, max_cost=1.0)
            runs[a.cols] = self._runs[a.rows] + 1
            start[a.cols], moved[a.cols] = self._start[a.rows], self._moved[a.rows]
            if dt > 0.0:
                velocity[a.cols] = (boxes[a.cols] - self._boxes[a.rows]) / np.float32(dt)
        if len(boxes):
            away = np.diag(iou_matrix(start, boxes)) < PAIR_MOVED_IOU
            moved |= away
        self._boxes, self._velocity, self._runs, self._pts = boxes, velocity, runs, pts
        self._start, self._moved = start, moved
        return runs, moved.copy()
