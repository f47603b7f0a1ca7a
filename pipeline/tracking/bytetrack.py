"""ByteTrack: two-stage IoU association of high- and low-score detections (Zhang et al., ECCV 2022).

Written for sharpeyes from the paper's algorithm. Per frame:

1. every live track is predicted to the frame's time with a constant-velocity Kalman filter
   using the real time step ``dt`` from the pts (see :mod:`sharpeyes.pipeline.tracking.kalman`);
2. **first stage**: confirmed tracks (tracked and lost) against high-score detections
   (``score >= high_threshold``), cost ``1 − IoU·score``, gated at ``IoU >= match_iou``;
3. **second stage**: confirmed tracks still unmatched and tracked in the previous frame against
   the low-score detections (``low_threshold <= score < high_threshold``), gated at IoU 0.5 (the
   paper's second-stage value) — this recovers occluded, blurred objects;
4. tentative tracks against the high-score detections left over; unmatched tentative tracks die;
5. high-score detections still left with ``score >= new_track_threshold`` open tentative tracks.

Thresholds: ``high_threshold`` and ``new_track_threshold`` apply per kind. With
``thresholds: auto`` (the default, unless the config sets either score) a kind's pair comes down
to what the detector scores the camera's sure tracks of that kind
(:mod:`sharpeyes.pipeline.tracking.score_level`), looked at whenever a track ends and every
:data:`RETUNE_S` of pts; a two-wheeler class's come down to what it scores under the camera's
sure riders, and a two-wheeler a sure person track sits on opens at the floor — as does a person
sitting on a real two-wheeler track (one scored the configured threshold, or a sure person rode),
and a person and a two-wheeler detection, both unsure, that sit on each other in consecutive
pictures while moving (:class:`~.score_level.Pairs`).

Identity: a track gets an id only when it is confirmed after ``min_hits`` matches, from this
instance's own counter (1, 2, 3 … per stream; no class-level state). Ids are never reused by the
instance, not even after :meth:`ByteTracker.reset`.

Association is restricted to detections of the same :class:`~pipeline.types.ObjectKind`: model
classes of one kind (car / bus / truck) continue one track — its class is the score-weighted
majority vote over its matches — but a person never continues a car.

Time: a track lost for more than ``lost_buffer_s`` seconds of pts (not frames) ends; its id is then
reported once by :meth:`ByteTracker.pop_finished`. The prediction step uses the pts delta, so
frames dropped or skipped by the analysis-rate sampler are accounted for by time alone;
``frames_skipped`` is only counted in :attr:`ByteTracker.stats` (for health and benchmarks)
and never changes the result, because a pts delta is exact where a frame count is not (VFR,
dropped frames).

Output: by default only confirmed tracks matched in this frame (``detected=True``) with their
Kalman-corrected box; ``output_predicted=True`` adds confirmed lost tracks still inside the
buffer with their predicted box and ``detected=False``. Each track's class votes so far go with
it (``Tracks.class_votes``: the class evidence of the whole track, not only its winning class),
so a later stage can drop a class other evidence rules out (a plate's size, GA 36).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.config import TrackerConfig
from sharpeyes.pipeline.riders import RiderParams
from sharpeyes.pipeline.tracking import kalman
from sharpeyes.pipeline.tracking.matching import assign, iou_cost
from sharpeyes.pipeline.tracking.score_level import (
    FLOOR_HIGH,
    FLOOR_NEW,
    PAIR_PICTURES,
    PICTURES,
    Pairs,
    ScoreLevel,
    mounts,
)
from sharpeyes.pipeline.tracking.table import LOST, TENTATIVE, TRACKED, TrackTable
from sharpeyes.pipeline.types import Detections, ImageBGR, ObjectKind, Tracks

logger = logging.getLogger(__name__)

SHOWN_DIFFERENCE = 0.005
"""A threshold lowered by less than this is not reported as lowered (0.597 would print as 0.60,
the configured value)."""

TUNED_KINDS = (ObjectKind.PERSON, ObjectKind.NON_MOTOR, ObjectKind.MOTOR_VEHICLE)
WHEELS = {1: "bicycle", 3: "motorcycle"}
"""Two-wheeler model classes by name (the COCO ids of :data:`~.riders.COCO_TWO_WHEELERS`): their
thresholds also come from the person tracks that ride them (:mod:`~.score_level`)."""
RETUNE_S = 1.0
"""Seconds of pts between looks at the camera's score level while no track ends."""
SECOND_STAGE_MIN_IOU = 0.5
"""IoU gate of the low-score stage (ByteTrack's second association uses 0.5)."""


@dataclass(slots=True)
class TrackerStats:
    """Counters for health pages and benchmarks."""

    frames: int = 0
    frames_skipped: int = 0
    tracks_confirmed: int = 0
    tracks_finished: int = 0
    tracks_evicted: int = 0
    detections_dropped: int = 0
    clock_resets: int = 0


class ByteTracker:
    """Per-stream ByteTrack tracker implementing :class:`sharpeyes.pipeline.protocols.Tracker`."""

    def __init__(self, config: TrackerConfig, *, output_predicted: bool = False) -> None:
        self._cfg = config
        kinds = max(ObjectKind) + 1
        self._high = np.full(kinds, config.high_threshold)  # per ObjectKind
        self._new = np.full(kinds, config.new_track_threshold)
        self._wheel: dict[int, tuple[float, float]] = {}  # class id → lowered (high, new)
        self._carried: set[int] = set()  # two-wheeler track ids a sure person track sat on
        self._level = (
            ScoreLevel(config.new_track_threshold, config.high_threshold)
            if config.self_tuned()
            else None
        )
        self._pairs = Pairs(config.match_iou)
        self._retuned_at = -math.inf
        self._told = self._new.copy()  # thresholds last logged at INFO
        self._output_predicted = output_predicted
        self._table = TrackTable.empty()
        self._next_id = 1
        self._last_pts: float | None = None
        self._finished: deque[int] = deque(maxlen=max(1024, 4 * config.max_tracks))
        self.stats = TrackerStats()

    @property
    def config(self) -> TrackerConfig:
        return self._cfg

    def __len__(self) -> int:
        """Live track states held (tentative, tracked and lost)."""
        return len(self._table)

    def update(
        self,
        detections: Detections,
        pts: float,
        frames_skipped: int = 0,
        image: ImageBGR | None = None,
    ) -> Tracks:
        """Associate one frame's detections at presentation time ``pts`` (seconds); boxes
        alone, the image is not looked at.

        Raises:
            ValueError: ``pts`` is not finite or ``frames_skipped`` is negative.
        """
        dt = self._advance_clock(pts, frames_skipped)
        table = self._table
        table.matched[:] = False
        self._predict(dt)
        conf = detections.confidence
        cfg = self._cfg
        high_at, new_at = self._detection_thresholds(detections, pts)
        is_high = conf >= high_at
        high = np.flatnonzero(is_high)
        low = np.flatnonzero((conf >= cfg.low_threshold) & ~is_high)

        pool = np.flatnonzero(table.state != TENTATIVE)
        rows, cols, left_rows, left_high = self._match(pool, detections, high, self._cfg.match_iou)
        self._apply(rows, detections, cols, pts)

        was_tracked = left_rows[table.state[left_rows] == TRACKED]
        rows, cols, _, _ = self._match(
            was_tracked, detections, low, SECOND_STAGE_MIN_IOU, fuse=False
        )
        self._apply(rows, detections, cols, pts)

        tentative = np.flatnonzero(table.state == TENTATIVE)
        rows, cols, _, left_high = self._match(tentative, detections, left_high, cfg.match_iou)
        self._apply(rows, detections, cols, pts)

        self._retire(pts)
        new = left_high[conf[left_high] >= new_at[left_high]]
        self._spawn(detections, new, pts)
        out = self._output()
        if self._level is not None:
            seen = np.flatnonzero((table.track_id >= 0) & table.matched)
            self._level.observe(
                table.track_id[seen], table.kind[seen], table.score[seen], table.peak[seen]
            )
            self._watch_riders(detections)
            if not pts - RETUNE_S < self._retuned_at <= pts:  # and whenever a track ends
                self._retune()
                self._retuned_at = pts
        return out

    def thresholds(self, kind: ObjectKind) -> tuple[float, float]:
        """``(high, new)``: the scores at which a detection of ``kind`` continues and opens a
        track now (the configured ones, or lower: :mod:`~.score_level`)."""
        return float(self._high[kind]), float(self._new[kind])

    def wheel_thresholds(self, class_id: int) -> tuple[float, float]:
        """``(high, new)`` of two-wheeler detections of model class ``class_id`` (besides their
        kind's): the configured ones, or lower, learnt from their riders (:mod:`~.score_level`)."""
        return self._wheel.get(class_id, (self._cfg.high_threshold, self._cfg.new_track_threshold))

    def lowered(self) -> dict[str, float]:
        """Kinds and two-wheeler classes (by name) whose tracks open below the configured
        ``new_track_threshold`` now, with the score they open at — where the two differ in
        the two decimals a summary shows (:data:`SHOWN_DIFFERENCE`)."""
        below = self._cfg.new_track_threshold - SHOWN_DIFFERENCE
        out = {
            kind.name.lower(): float(self._new[kind])
            for kind in TUNED_KINDS
            if self._new[kind] <= below
        }
        for c, (_, new) in sorted(self._wheel.items()):
            if new <= below:
                out[WHEELS[c]] = new
        return out

    def _detection_thresholds(
        self, detections: Detections, pts: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per detection, the scores at which it continues and opens a track: its kind's, its
        two-wheeler class's where that is lower, the floor for a two-wheeler a sure person
        track rides, for a person sitting on a real two-wheeler track (:meth:`_sure_wheels`)
        and for both of a person and a two-wheeler that have sat on each other in this and the
        previous pictures (:meth:`_paired`). Called once per picture, at ``pts``."""
        high, new = self._high[detections.kind], self._new[detections.kind]
        for c, (wheel_high, wheel_new) in self._wheel.items():
            is_c = detections.class_id == c
            high[is_c] = np.minimum(high[is_c], wheel_high)
            new[is_c] = np.minimum(new[is_c], wheel_new)
        if self._level is not None:
            table = self._table
            sure = np.flatnonzero(
                self._sure(table.state == TRACKED) & (table.kind == int(ObjectKind.PERSON))
            )
            _, ridden = self._mounted(sure, detections, 0.0)
            floor = np.union1d(ridden, self._riders_on(self._sure_wheels(), detections))
            floor = np.union1d(floor, self._paired(detections, pts))
            high[floor] = np.minimum(high[floor], FLOOR_HIGH)
            new[floor] = np.minimum(new[floor], FLOOR_NEW)
        return high, new

    def _paired(self, detections: Detections, pts: float) -> NDArray[np.intp]:
        """Person and two-wheeler detections, both at the floor or above, that sit on each other
        and have done so, moving, in consecutive pictures (:class:`Pairs`): from the pair's
        ``PAIR_PICTURES − min_hits + 1``-th picture, so that a track they open is confirmed in
        its :data:`PAIR_PICTURES`-th at the earliest (the 2nd and 3rd with ``min_hits`` 2).
        hanoi_b without its tracker section: 69 of the 79 labelled riders get a track (61
        without the pairs), 65 decided riders (59), none false; on no picture of the other
        sample clips with their events compared."""
        scored = detections.confidence >= FLOOR_NEW - 1e-6
        persons = np.flatnonzero(scored & (detections.kind == int(ObjectKind.PERSON)))
        wheels = np.flatnonzero(scored & np.isin(detections.class_id, list(WHEELS)))
        on = mounts(detections.xyxy[persons], detections.xyxy[wheels], RiderParams().min_cover)
        persons, wheels = persons[on >= 0], wheels[on[on >= 0]]
        runs, moved = self._pairs.update(detections.xyxy[persons], detections.xyxy[wheels], pts)
        kept = moved & (runs >= max(1, PAIR_PICTURES - self._cfg.min_hits + 1))
        return np.union1d(persons[kept], wheels[kept])

    def _sure(self, state: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Confirmed tracks in ``state`` detected in :data:`PICTURES` pictures that scored the
        configured ``new_track_threshold`` once (the tracks :mod:`~.score_level` counts)."""
        table = self._table
        return (
            (table.track_id >= 0)
            & state
            & (table.peak >= self._cfg.new_track_threshold - 1e-6)
            & (table.hits >= PICTURES)
        )

    def _sure_wheels(self) -> NDArray[np.intp]:
        """Rows of the confirmed two-wheeler tracks detected in the previous picture that are
        real: scored the configured ``new_track_threshold`` once, or a sure person track sat on
        them (:attr:`_carried`)."""
        table = self._table
        rows = self._wheel_rows(table.state == TRACKED)
        real = table.peak[rows] >= self._cfg.new_track_threshold - 1e-6
        real |= np.isin(table.track_id[rows], list(self._carried))
        return rows[real]

    def _wheel_rows(self, state: NDArray[np.bool_]) -> NDArray[np.intp]:
        """Rows of the confirmed tracks in ``state`` whose class is a two-wheeler's."""
        table = self._table
        rows = np.flatnonzero((table.track_id >= 0) & state)
        return rows[np.isin(table.class_ids(rows), list(WHEELS))]

    def _riders_on(self, wheels: NDArray[np.intp], detections: Detections) -> NDArray[np.intp]:
        """Person detections that sit on the two-wheeler tracks of table rows ``wheels`` (their
        predicted box)."""
        persons = np.flatnonzero(detections.kind == int(ObjectKind.PERSON))
        if len(persons) == 0 or len(wheels) == 0:
            return persons[:0]
        boxes = kalman.state_to_xyxy(self._table.mean[wheels])
        on = mounts(detections.xyxy[persons], boxes, RiderParams().min_cover)
        return persons[on >= 0]

    def _watch_riders(self, detections: Detections) -> None:
        """Tell the score level which two-wheeler detections (down to ``low_threshold``) this
        picture's person tracks sit on."""
        assert self._level is not None
        table = self._table
        persons = np.flatnonzero(
            (table.track_id >= 0) & table.matched & (table.kind == int(ObjectKind.PERSON))
        )
        riders, det = self._mounted(persons, detections, self._cfg.low_threshold)
        self._level.ride(
            table.track_id[riders], detections.class_id[det], detections.confidence[det]
        )
        self._note_carried()

    def _note_carried(self) -> None:
        """Remember the two-wheeler tracks detected in this picture that a sure person track
        detected in it sits on (:attr:`_carried`): real, whatever the detector scores them."""
        table = self._table
        sure = np.flatnonzero(self._sure(table.matched) & (table.kind == int(ObjectKind.PERSON)))
        wheels = self._wheel_rows(table.matched)
        if len(sure) and len(wheels):
            persons = kalman.state_to_xyxy(table.mean[sure])
            on = mounts(persons, kalman.state_to_xyxy(table.mean[wheels]), RiderParams().min_cover)
            self._carried.update(table.track_id[wheels[on[on >= 0]]].tolist())

    def _mounted(
        self, rows: NDArray[np.intp], detections: Detections, min_score: float
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """The person tracks among table ``rows`` (their current box) that sit on a two-wheeler
        detection scored ``min_score`` or more, and the index of that detection."""
        wheels = np.flatnonzero(
            np.isin(detections.class_id, list(WHEELS)) & (detections.confidence >= min_score)
        )
        if len(rows) == 0 or len(wheels) == 0:
            return rows[:0], wheels[:0]
        boxes = kalman.state_to_xyxy(self._table.mean[rows])
        on = mounts(boxes, detections.xyxy[wheels], RiderParams().min_cover)
        return rows[on >= 0], wheels[on[on >= 0]]

    def _retune(self) -> None:
        """Each kind's thresholds from the camera's score level (when self-tuned)."""
        if self._level is None:
            return
        for kind in TUNED_KINDS:
            high, new = self._level.thresholds(kind)
            if (high, new) == self.thresholds(kind):
                continue
            told = abs(new - self._told[kind]) < 0.05  # said already, near enough
            logger.log(
                logging.DEBUG if told else logging.INFO,
                "%s: tracks open at %.2f and continue at %.2f (the detector scores this "
                "camera's sure ones %.2f)",
                kind.name.lower(),
                new,
                high,
                self._level.level(kind) or 0.0,
            )
            if not told:
                self._told[kind] = new
            self._high[kind], self._new[kind] = high, new
        self._retune_wheels(self._level)

    def _retune_wheels(self, level: ScoreLevel) -> None:
        """Each two-wheeler class's thresholds from the level of the ones sure riders sit on."""
        for c, name in WHEELS.items():
            high, new = level.wheel_thresholds(c)
            before = self._wheel.pop(c, None)
            if new >= self._cfg.new_track_threshold:
                continue
            self._wheel[c] = high, new
            if before == (high, new):
                continue
            logger.log(
                logging.INFO if before is None or abs(new - before[1]) >= 0.05 else logging.DEBUG,
                "%s: tracks open at %.2f and continue at %.2f (the detector scores the ones this "
                "camera's sure riders sit on %.2f)",
                name,
                new,
                high,
                level.wheel_level(c) or 0.0,
            )

    def pop_finished(self) -> list[int]:
        """Ids of confirmed tracks that ended (lost past the buffer, evicted, reset) since the
        previous call, oldest first."""
        out = list(self._finished)
        self._finished.clear()
        return out

    def reset(self) -> None:
        """Forget all tracks (stream restart); their ids become finished. The id counter goes on."""
        self._finish(np.ones(len(self._table), dtype=np.bool_))
        self._pairs.reset()
        self._last_pts = None

    def end_of_stream(self) -> list[int]:
        """Finish every track and return all finished ids not popped yet."""
        self.reset()
        return self.pop_finished()

    # -- steps ------------------------------------------------------------------------------

    def _advance_clock(self, pts: float, frames_skipped: int) -> float:
        if not math.isfinite(pts):
            raise ValueError(f"pts {pts!r} is not a finite number of seconds")
        if frames_skipped < 0:
            raise ValueError(f"frames_skipped {frames_skipped} must be >= 0")
        self.stats.frames += 1
        self.stats.frames_skipped += frames_skipped
        dt = 0.0 if self._last_pts is None else pts - self._last_pts
        if dt < 0.0:
            logger.warning(
                "pts went back from %.3f to %.3f s: finishing all tracks", self._last_pts, pts
            )
            self.stats.clock_resets += 1
            self.reset()
            dt = 0.0
        self._last_pts = pts
        return dt

    def _predict(self, dt: float) -> None:
        table = self._table
        if len(table) == 0 or dt <= 0.0:
            return
        # Like the reference implementation, a lost track keeps its motion but not its size
        # change, so a box extrapolated through an occlusion does not grow or shrink away.
        table.mean[table.state == LOST, 6:8] = 0.0
        table.mean, table.cov = kalman.predict(table.mean, table.cov, np.full(len(table), dt))

    def _match(
        self,
        rows: NDArray[np.intp],
        detections: Detections,
        cols: NDArray[np.intp],
        min_iou: float,
        *,
        fuse: bool = True,
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
        """Match table ``rows`` to detection indices ``cols``.

        Returns matched rows, their detection indices, unmatched rows and unmatched detections.
        """
        if len(rows) == 0 or len(cols) == 0:
            return rows[:0], cols[:0], rows, cols
        table = self._table
        cost = iou_cost(
            kalman.state_to_xyxy(table.mean[rows]),
            table.kind[rows],
            detections.xyxy[cols],
            detections.kind[cols],
            min_iou=min_iou,
            det_score=detections.confidence[cols] if fuse else None,
        )
        a = assign(cost, max_cost=1.0)
        return rows[a.rows], cols[a.cols], rows[a.unmatched_rows], cols[a.unmatched_cols]

    def _apply(
        self, rows: NDArray[np.intp], detections: Detections, det: NDArray[np.intp], pts: float
    ) -> None:
        """Correct matched tracks with their detections; confirm those with enough hits."""
        if len(rows) == 0:
            return
        table = self._table
        z = kalman.xyxy_to_measurement(detections.xyxy[det])
        table.mean[rows], table.cov[rows] = kalman.update(table.mean[rows], table.cov[rows], z)
        table.hits[rows] += 1
        table.last_pts[rows] = pts
        table.score[rows] = detections.confidence[det]
        table.peak[rows] = np.maximum(table.peak[rows], table.score[rows])
        table.matched[rows] = True
        table.add_votes(rows, detections.class_id[det], detections.confidence[det])
        table.state[rows[table.state[rows] == LOST]] = TRACKED
        self._confirm(
            rows[(table.state[rows] == TENTATIVE) & (table.hits[rows] >= self._cfg.min_hits)]
        )

    def _confirm(self, rows: NDArray[np.intp]) -> None:
        if len(rows) == 0:
            return
        table = self._table
        table.track_id[rows] = np.arange(self._next_id, self._next_id + len(rows))
        table.state[rows] = TRACKED
        self._next_id += len(rows)
        self.stats.tracks_confirmed += len(rows)

    def _retire(self, pts: float) -> None:
        """Unmatched tracked → lost; drop unmatched tentative tracks and expired lost ones."""
        table = self._table
        table.state[(table.state == TRACKED) & ~table.matched] = LOST
        expired = (table.state == LOST) & (pts - table.last_pts > self._cfg.lost_buffer_s)
        self._finish(((table.state == TENTATIVE) & ~table.matched) | expired)

    def _finish(self, mask: NDArray[np.bool_]) -> None:
        """Remove the masked tracks; confirmed ones are reported as finished."""
        if not mask.any():
            return
        ids = self._table.track_id[mask]
        ids = ids[ids >= 0]
        self._finished.extend(int(i) for i in ids)
        self._carried.difference_update(ids.tolist())
        if self._level is not None and len(ids):
            self._level.finish(ids.tolist())
            self._retune()
        self.stats.tracks_finished += len(ids)
        self._table.keep(~mask)

    def _spawn(self, detections: Detections, det: NDArray[np.intp], pts: float) -> None:
        """Open tentative tracks for ``det`` within the ``max_tracks`` bound."""
        if len(det) == 0:
            return
        free = self._make_room(len(det))
        if free < len(det):
            order = np.argsort(-detections.confidence[det], kind="stable")
            self.stats.detections_dropped += len(det) - free
            logger.warning(
                "track table full (%d): %d detections not tracked",
                self._cfg.max_tracks,
                len(det) - free,
            )
            det = np.sort(det[order[:free]])
        if len(det) == 0:
            return
        mean, cov = kalman.initiate(kalman.xyxy_to_measurement(detections.xyxy[det]))
        start = len(self._table)
        self._table.append(mean, cov, detections.kind[det], detections.confidence[det], pts)
        rows = np.arange(start, len(self._table), dtype=np.intp)
        self._table.add_votes(rows, detections.class_id[det], detections.confidence[det])
        self._confirm(rows[self._table.hits[rows] >= self._cfg.min_hits])

    def _make_room(self, wanted: int) -> int:
        """Evict lost tracks (oldest first), then tentative ones, until ``wanted`` fit.

        Returns how many new tracks fit afterwards.
        """
        table = self._table
        excess = len(table) + wanted - self._cfg.max_tracks
        if excess > 0:
            # Sort key: lost before tentative, then least recently matched first.
            candidates = np.flatnonzero(table.state != TRACKED)
            rank = np.lexsort((table.last_pts[candidates], table.state[candidates] != LOST))
            victims = candidates[rank[:excess]]
            mask = np.zeros(len(table), dtype=np.bool_)
            mask[victims] = True
            self.stats.tracks_evicted += len(victims)
            self._finish(mask)
        return max(0, self._cfg.max_tracks - len(self._table))

    def _output(self) -> Tracks:
        table = self._table
        show = (table.track_id >= 0) & table.matched
        if self._output_predicted:
            show |= (table.track_id >= 0) & (table.state == LOST)
        rows = np.flatnonzero(show)
        rows = rows[np.argsort(table.track_id[rows], kind="stable")]
        return Tracks(
            xyxy=kalman.state_to_xyxy(table.mean[rows]),
            confidence=table.score[rows].astype(np.float32),
            class_id=table.class_ids(rows),
            kind=table.kind[rows].astype(np.int8),
            track_id=table.track_id[rows].astype(np.int64),
            detected=table.matched[rows].copy(),
            class_votes=table.votes[rows].copy(),
        )
