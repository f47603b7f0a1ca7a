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

Measured (docs/STRUCTURING.md, "The camera's own score level"): the checkpoint clip with
nothing but structuring on, at 5 analysed pictures a second, reads 7 of its 8 plates (5 before;
cars open at 0.49, sure ones' level), none false; at 25 fps 8/8 as before (cars at 0.46).
highway_1280x720 (25 and 5 fps) and pedestrians_crossing keep the configured thresholds and
their events; hanoi_b without its tracker section lowers persons to 0.55 and reads 13 of 15
red-light runners as before — its motorbikes, never scored 0.6, give no sure track to learn
from, so its config's hand-set 0.35 / 0.3 (15 of 15) still matter there.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["FLOOR_HIGH", "FLOOR_NEW", "MEMORY", "MIN_TRACKS", "PICTURES", "ScoreLevel"]

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
    implies. Fed with every :class:`Tracks` the tracker outputs and the ids that finished."""

    def __init__(self, new_track_threshold: float, high_threshold: float) -> None:
        self.new_track_threshold = new_track_threshold
        self.high_threshold = high_threshold
        self._live: dict[int, _Track] = {}
        self._levels: dict[int, deque[float]] = {}

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

    def finish(self, ids: Iterable[int]) -> None:
        """Tracks ended: the sure ones' levels join their kind's memory."""
        for tid in ids:
            t = self._live.pop(int(tid), None)
            if t is not None and t.sure and len(t.scores) >= PICTURES:
                memory = self._levels.setdefault(t.kind, deque(maxlen=MEMORY))
                memory.append(statistics.median(t.scores))

    def level(self, kind: int) -> float | None:
        """Median level of the kind's sure tracks (ended and live), None with too few."""
        levels = list(self._levels.get(kind, ()))
        levels += [
            statistics.median(t.scores)
            for t in self._live.values()
            if t.kind == kind and t.sure and len(t.scores) >= PICTURES
        ]
        if len(levels) < MIN_TRACKS:
            return None
        return statistics.median(levels[-MEMORY:])

    def thresholds(self, kind: int) -> tuple[float, float]:
        """``(high, new)`` for the kind's detections: the configured ones, lowered to the
        kind's level (see module doc)."""
        level = self.level(kind)
        if level is None or level >= self.new_track_threshold:
            return self.high_threshold, self.new_track_threshold
        new = max(FLOOR_NEW, level)
        ratio = self.high_threshold / self.new_track_threshold if self.new_track_threshold else 1
        return min(self.high_threshold, max(FLOOR_HIGH, new * ratio)), new
