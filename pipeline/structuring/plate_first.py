"""Vehicles found by their plates where the detector finds none (plate-first, 卡口).

A checkpoint camera set closer or zoomed in than the Beijing sample shows vehicle fronts larger
than the picture: the clip zoomed 1.5× (``crop=428:240:106:60,scale=640:360``) gives the
vehicle detector cut-off fronts it scores under every threshold or misses, and three of its
eight plated cars got no track at all (4 of 8 plates read). The plate detector does not need a
vehicle box: on the full zoomed picture (``plate_det_320``) it finds every one of the eight
plates, 153–175 px wide, scored 0.8–0.9, and the recogniser reads them.

:class:`PlateFirst` runs the plate detector on the whole picture and makes a track of each plate
that lies in no vehicle the camera tracks (no box of a motor-vehicle track seen within
``lost_s`` holds :data:`HELD_SHARE` of it — a car leaving at the picture's edge is lost by the
tracker a moment before its plate goes; an untracked detection does not count: it is what the
detector scored too low to track), chained from picture to picture by where its motion puts it,
confirmed after ``min_hits`` pictures, lost ``lost_s`` after it was last seen. Each such track
is a vehicle track like the tracker's — the same events, plate reads, colours, crops, flow
counts and rules follow — with a box estimated around its plate (:func:`vehicle_box`) and ids
from :data:`ID_BASE` up, apart from the tracker's. A plate track whose plate comes to lie in a
vehicle track the tracker opens later is handed to that track (``on_handover``: its reads join
it) and makes no event of its own, so a car is not counted twice; so is a lost plate track, for
``handover_s``, whose plate where its motion put it lies in a tracker's track, or — its plate
gone from the picture — to a track opened since whose box overlaps its vehicle's
(:data:`HANDOVER_IOU`).

It costs one plate detection on the whole picture (3–5 ms at 320 px on one core): every
``search_every_s`` (0.2 s, the plate reads' interval) while plates outside the tracked vehicles
keep being found (``hold_s``); otherwise a probe every ``probe_s`` (0.5 s) while the picture
shows a vehicle detection no track holds that is wide enough to carry a readable plate (the
detector saw something it would not track: a cut-off front), and else probes ``probe_s``
apart, doubling after each that finds no plate outside the tracked vehicles, up to
``probe_max_s`` (2 s: a camera whose vehicles are all tracked, a highway's, pays 2 ms a second).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.geometry import iou_matrix
from sharpeyes.pipeline.types import FloatArray, Frame, ImageBGR, ObjectKind, Tracks

logger = logging.getLogger(__name__)

__all__ = [
    "ID_BASE",
    "PlateFirst",
    "PlateFirstStats",
    "join_tracks",
    "vehicle_box",
]

ID_BASE = 1_000_000_000
"""Plate-first track ids start here (the tracker's count from 1 and never get this far)."""

HELD_SHARE = 0.3
"""A plate this much inside a vehicle track's box is that vehicle's (a detector's box often ends
at the bumper, cutting the plate of a car leaving at the picture's bottom edge)."""

HANDOVER_IOU = 0.5
"""A tracker's track that opens as a plate track is lost, whose box overlaps the box of the plate
track's vehicle this much, is that vehicle (its plate left the picture, or the car ahead hides
it)."""

VEHICLE_W = 4.0
"""A vehicle's front is about this many plates wide (a 440 mm plate on a 1.7–1.9 m car)."""
VEHICLE_ABOVE = 2.6
VEHICLE_BELOW = 0.7
"""… and reaches this many plate widths above the plate's centre (bonnet and windscreen, seen
from a checkpoint camera's height) and below it (bumper)."""


class RawPlateLike(Protocol):
    """One plate the plate detector found (``models.plate._RawPlate``)."""

    @property
    def box(self) -> NDArray[np.float32]: ...

    @property
    def score(self) -> float: ...


class PlateFinder(Protocol):
    """The plate detector of a plate reader (``models.plate.PlateReader.detect``)."""

    def detect(self, image_bgr: ImageBGR) -> Sequence[RawPlateLike]: ...


@dataclass(slots=True)
class _PlateTrack:
    track_id: int
    box: FloatArray  # the plate's last box (xyxy)
    pts: float  # when it was last seen
    velocity: FloatArray = field(default_factory=lambda: np.zeros(2, np.float32))  # px / s
    hits: int = 1
    score: float = 0.0
    detected: bool = True


@dataclass(slots=True)
class PlateFirstStats:
    """What plate-first did: pictures searched, plates found outside vehicles, tracks made and
    handed to the tracker's."""

    searches: int = 0
    orphans: int = 0
    tracks: int = 0
    handed: int = 0


def vehicle_box(plate: FloatArray, width: int, height: int) -> FloatArray:
    """The box a vehicle's front takes around its plate (:data:`VEHICLE_W`,
    :data:`VEHICLE_ABOVE`, :data:`VEHICLE_BELOW`), inside the ``width`` × ``height`` picture."""
    x1, y1, x2, y2 = (float(v) for v in plate)
    pw, cx, cy = x2 - x1, (x1 + x2) / 2, (y1 + y2) / 2
    return np.array(
        [
            max(0.0, cx - VEHICLE_W / 2 * pw),
            max(0.0, cy - VEHICLE_ABOVE * pw),
            min(float(width), cx + VEHICLE_W / 2 * pw),
            min(float(height), cy + VEHICLE_BELOW * pw),
        ],
        np.float32,
    )


def _centres(xyxy: FloatArray) -> FloatArray:
    out: FloatArray = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2], 1)
    return out


def _covering(plate: FloatArray, boxes: FloatArray, share: float = HELD_SHARE) -> int:
    """The index of the smallest of ``boxes`` that holds ``plate``: covers at least ``share``
    of its area, its centre in the box's lower half (a vehicle's plate is at its bumper; a plate
    in the upper part of a box is the next car's, seen over the roof of this one). -1: none; a
    plate box clipped to nothing is held by none."""
    area = float((plate[2] - plate[0]) * (plate[3] - plate[1]))
    if not len(boxes) or area <= 0.0:
        return -1
    iw = np.minimum(boxes[:, 2], plate[2]) - np.maximum(boxes[:, 0], plate[0])
    ih = np.minimum(boxes[:, 3], plate[3]) - np.maximum(boxes[:, 1], plate[1])
    covers = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None) >= share * area
    covers &= (plate[1] + plate[3]) / 2 >= (boxes[:, 1] + boxes[:, 3]) / 2
    if not covers.any():
        return -1
    sizes = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(np.flatnonzero(covers)[np.argmin(sizes[covers])])


def join_tracks(a: Tracks, b: Tracks) -> Tracks:
    """The rows of ``a`` then ``b`` (class votes padded to the wider of the two)."""
    if not len(b):
        return a
    if not len(a):
        return b
    width = max(a.class_votes.shape[1], b.class_votes.shape[1])

    def votes(t: Tracks) -> FloatArray:
        pad = width - t.class_votes.shape[1]
        out: FloatArray = np.pad(t.class_votes, ((0, 0), (0, pad))).astype(np.float32)
        return out

    return Tracks(
        xyxy=np.concatenate([a.xyxy, b.xyxy]).astype(np.float32),
        confidence=np.concatenate([a.confidence, b.confidence]).astype(np.float32),
        class_id=np.concatenate([a.class_id, b.class_id]),
        kind=np.concatenate([a.kind, b.kind]),
        track_id=np.concatenate([a.track_id, b.track_id]),
        detected=np.concatenate([a.detected, b.detected]),
        class_votes=np.concatenate([votes(a), votes(b)]) if width else np.zeros((0, 0), np.float32),
    )


class PlateFirst:
    """Vehicle tracks made from plates no vehicle holds (see the module docstring).

    ``finder``: the camera's plate detector; ``class_id``: the detector class the tracks are
    given (the model's "car": a plate says a motor vehicle, not which); ``on_handover(plate id,
    track id)``: called when a plate track's plate comes to lie inside a tracker's track, before
    the plate track ends (the structuring stage moves its reads over).
    """

    def __init__(
        self,
        finder: PlateFinder,
        *,
        class_id: int,
        min_score: float = 0.6,
        min_width_px: float = 50.0,
        min_hits: int = 2,
        lost_s: float = 0.6,
        handover_s: float = 1.0,
        hold_s: float = 1.0,
        search_every_s: float = 0.2,
        probe_s: float = 0.5,
        probe_max_s: float = 2.0,
        always: bool = False,
        on_handover: Callable[[int, int], None] | None = None,
    ) -> None:
        self._finder = finder
        self.class_id = class_id
        self.min_score = min_score
        self.min_width_px = min_width_px
        self.min_hits = min_hits
        self.lost_s = lost_s
        self.handover_s = handover_s
        self.hold_s = hold_s
        self.search_every_s = search_every_s
        self.probe_s = probe_s
        self.probe_max_s = probe_max_s
        self.always = always
        self._handover: list[Callable[[int, int], None]] = [on_handover] if on_handover else []
        self._tracks: list[_PlateTrack] = []
        self._ending: list[_PlateTrack] = []  # lost, waiting handover_s for a tracker's track
        self._finished: list[int] = []
        self._handed_ids: dict[int, float] = {}  # plate track id → when it was handed over
        # the tracker's vehicle tracks: id → (first seen, last seen, last box)
        self._born: dict[int, tuple[float, float, FloatArray]] = {}
        self._next_id = ID_BASE
        self._last_search: float | None = None
        self._last_pts: float | None = None
        self._last_orphan: float | None = None
        self._probe_every = probe_s
        self.stats = PlateFirstStats()

    @property
    def active(self) -> bool:
        """Whether plates without vehicles were found lately (every picture is searched)."""
        return (
            self.always or bool(self._tracks) or bool(self._ending) or self._last_orphan is not None
        )

    def handed(self, track_id: int) -> bool:
        """Whether ``track_id`` was a plate track handed to a tracker's track (its event is not
        the vehicle's: the runner drops it)."""
        return track_id in self._handed_ids

    def add_handover(self, callback: Callable[[int, int], None]) -> None:
        """Also call ``callback(plate track id, track id)`` on each handover (e.g. the flow
        meter: one vehicle is counted once)."""
        self._handover.append(callback)

    def pop_finished(self) -> list[int]:
        """Plate tracks that ended since the last call (confirmed ones: they have events)."""
        out, self._finished = self._finished, []
        return out

    def _due(self, pts: float, cue: bool) -> bool:
        last = self._last_search
        if last is None or pts < last:  # first picture, or the stream started over
            return True
        if self.active:
            return pts - last >= self.search_every_s - 1e-6
        every = self.probe_s if cue else self._probe_every
        return pts - last >= every - 1e-6

    def _cue(self, detections: FloatArray, cars: Tracks) -> bool:
        """Whether the picture shows a vehicle no track holds that is wide enough to carry a
        readable plate (:data:`VEHICLE_W` plates of ``min_width_px``): a detection the
        tracker left out, its centre in no track's box."""
        wide = detections[detections[:, 2] - detections[:, 0] >= VEHICLE_W * self.min_width_px]
        if not len(wide):
            return False
        centres = _centres(wide)
        if not len(cars):
            return True
        b = cars.xyxy
        inside = (
            (centres[:, None, 0] >= b[None, :, 0])
            & (centres[:, None, 0] <= b[None, :, 2])
            & (centres[:, None, 1] >= b[None, :, 1])
            & (centres[:, None, 1] <= b[None, :, 3])
        )
        return bool((~inside.any(axis=1)).any())

    def update(
        self,
        frame: Frame,
        tracks: Tracks,
        ended: Sequence[int] = (),
        detections: FloatArray | None = None,
    ) -> Tracks:
        """The plate tracks alive in ``frame`` (confirmed ones), after searching it when due.
        ``tracks``: the tracker's tracks of this picture (a plate inside one of their
        motor-vehicle boxes is that vehicle's, not a new one); ``ended``: the tracker's tracks
        that ended with it (nothing is handed to them: their events are out); ``detections``:
        the picture's motor-vehicle detections (xyxy), whatever their score — one wide enough
        for a readable plate that no track holds makes a probe due every ``probe_s``.

        A corrupt picture is not searched and ages nothing; a picture whose pts goes back (a
        file looped, a camera restarted) ends every plate track and forgets the tracker's. A
        picture kept on the GPU (``device_image``) is not searched either: its host image is
        not the picture."""
        pts = frame.pts
        if self._last_pts is not None and pts < self._last_pts:
            self._end_all()
        self._last_pts = pts
        if self._last_orphan is not None and pts - self._last_orphan > self.hold_s:
            self._last_orphan = None
        for tid in ended:
            self._born.pop(int(tid), None)
        cars = tracks.of_kind(ObjectKind.MOTOR_VEHICLE)
        cars = cars[cars.track_id < ID_BASE]
        self._note_born(cars, pts)
        if frame.corrupt or frame.device_image is not None:
            return self._rows(frame)
        ids, boxes = self._recent(pts)
        dets = np.zeros((0, 4), np.float32) if detections is None else detections
        if self._due(pts, self._cue(np.asarray(dets, np.float32).reshape(-1, 4), cars)):
            self._search(frame, ids, boxes)
        self._expire(pts)
        self._hand_ending(cars, ids, boxes, frame)
        return self._rows(frame)

    def _recent(self, pts: float) -> tuple[NDArray[np.int64], FloatArray]:
        """The tracker's vehicle tracks seen within ``lost_s`` and their last boxes (a car
        leaving at the picture's edge is lost by the tracker a moment before its plate goes)."""
        rows = [(t, box) for t, (_, last, box) in self._born.items() if pts - last <= self.lost_s]
        ids = np.array([t for t, _ in rows], np.int64)
        boxes = np.array([b for _, b in rows], np.float32).reshape(-1, 4)
        return ids, boxes

    def _note_born(self, cars: Tracks, pts: float) -> None:
        """When each tracker's vehicle track was first and last seen (a plate track lost just
        before one opened is handed to it); tracks gone for a minute are forgotten, and so are
        handed plate tracks' ids."""
        for tid, box in zip(cars.track_id, cars.xyxy, strict=True):
            first = self._born[int(tid)][0] if int(tid) in self._born else pts
            self._born[int(tid)] = (first, pts, box)
        for tid in [t for t, (_, last, _) in self._born.items() if pts - last > 60.0]:
            del self._born[tid]
        for tid in [t for t, when in self._handed_ids.items() if pts - when > 60.0]:
            del self._handed_ids[tid]

    def _search(self, frame: Frame, ids: NDArray[np.int64], boxes: FloatArray) -> None:
        self._last_search = frame.pts
        self.stats.searches += 1
        found = [
            p
            for p in self._finder.detect(frame.image)
            if p.score >= self.min_score and float(p.box[2] - p.box[0]) >= self.min_width_px
        ]
        orphans, probe = self.stats.orphans, not self.active
        self._found(frame, found, ids, boxes)
        if self.stats.orphans > orphans:
            self._probe_every = self.probe_s
        elif probe:  # a probe that finds no plate outside the tracked vehicles: the next later
            self._probe_every = min(self.probe_max_s, self._probe_every * 2.0)

    def _found(
        self,
        frame: Frame,
        found: Sequence[RawPlateLike],
        ids: NDArray[np.int64],
        boxes: FloatArray,
    ) -> None:
        """Chain the plates ``found`` in ``frame`` into the plate tracks (see the class)."""
        if not found:
            for t in self._tracks:
                t.detected = False
            return
        plates = np.stack([np.asarray(p.box, np.float32)[:4] for p in found])
        scores = np.array([float(p.score) for p in found], np.float32)
        centres = _centres(plates)
        owners = [_covering(plate, boxes) for plate in plates]
        matched = self._match(centres, plates, frame.pts)
        for t in self._tracks:
            t.detected = False
        for j in range(len(found)):
            track = matched.get(j)
            if track is not None:
                t = track
                if owners[j] >= 0:  # the tracker holds this vehicle now: its reads go there
                    self._hand(t, int(ids[owners[j]]), frame.pts)
                    continue
                dt = frame.pts - t.pts
                if dt >= 0.01:  # pictures with the same pts say nothing of its motion
                    step = centres[j] - _centres(t.box[None])[0]
                    t.velocity = (step / dt).astype(np.float32)
                t.box, t.pts, t.score, t.detected = plates[j], frame.pts, float(scores[j]), True
                t.hits += 1
                self.stats.tracks += int(t.hits == self.min_hits)
            elif owners[j] >= 0:
                continue
            else:
                self._tracks.append(
                    _PlateTrack(self._next_id, plates[j], frame.pts, score=float(scores[j]))
                )
                self._next_id += 1
                self.stats.tracks += int(self.min_hits <= 1)
            self.stats.orphans += 1
            self._last_orphan = frame.pts

    def _match(self, centres: FloatArray, plates: FloatArray, pts: float) -> dict[int, _PlateTrack]:
        """Each found plate's track: the nearest where its motion puts it, within one plate
        width (greedy, nearest first)."""
        pool = [*self._tracks, *self._ending]
        if not pool:
            return {}
        pred = np.stack(
            [_centres(t.box[None])[0] + t.velocity * max(pts - t.pts, 0.0) for t in pool]
        )
        width = np.array([float(t.box[2] - t.box[0]) for t in pool], np.float32)
        dist = np.linalg.norm(centres[:, None, :] - pred[None, :, :], axis=2)
        out: dict[int, _PlateTrack] = {}
        used: set[int] = set()
        for flat in np.argsort(dist, axis=None):
            j, k = divmod(int(flat), len(pool))
            if j in out or k in used or dist[j, k] > width[k]:
                continue
            out[j] = pool[k]
            used.add(k)
        for t in out.values():  # a plate missed for a while and found again: the same track
            if t in self._ending:
                self._ending.remove(t)
                self._tracks.append(t)
        return out

    def _hand(self, track: _PlateTrack, owner: int, pts: float) -> None:
        logger.debug("plate track %d handed to track %d at %.2f", track.track_id, owner, pts)
        if track.hits >= self.min_hits:
            for callback in self._handover:
                callback(track.track_id, owner)
            self._handed_ids[track.track_id] = pts
            self._finished.append(track.track_id)
            self.stats.handed += 1
        if track in self._tracks:
            self._tracks.remove(track)
        if track in self._ending:
            self._ending.remove(track)

    def _expire(self, pts: float) -> None:
        """Lost tracks wait :attr:`handover_s` for a tracker's track (unconfirmed ones end)."""
        for t in [t for t in self._tracks if pts - t.pts > self.lost_s]:
            self._tracks.remove(t)
            if t.hits >= self.min_hits:
                self._ending.append(t)
        for t in [t for t in self._ending if pts - t.pts > self.lost_s + self.handover_s]:
            logger.debug(
                "plate track %d ended at %.2f, last seen %.2f at %s",
                t.track_id,
                pts,
                t.pts,
                t.box.round().tolist(),
            )
            self._ending.remove(t)
            self._finished.append(t.track_id)

    def _hand_ending(
        self, cars: Tracks, ids: NDArray[np.int64], boxes: FloatArray, frame: Frame
    ) -> None:
        """A lost plate track is the vehicle of the tracker's track whose box holds its plate
        where its motion put it (the plate was missed there, or the box caught up with it), or
        — its plate gone from the picture — of a track first seen after the plate (or just
        before: a detector that scored the vehicle too low until then) whose box overlaps its
        vehicle's: handed to it."""
        for t in list(self._ending):
            shift = np.tile(t.velocity * (frame.pts - t.pts), 2)
            plate = np.clip(t.box + shift, 0.0, [frame.width, frame.height] * 2)
            held = _covering(plate.astype(np.float32), boxes)
            owner = int(ids[held]) if held >= 0 else -1
            if owner < 0 and len(cars):  # its plate left the picture: where its vehicle was
                last = vehicle_box(t.box, frame.width, frame.height)
                overlap = iou_matrix(last[None], cars.xyxy)[0]
                best = int(np.argmax(overlap))
                first = self._born[int(cars.track_id[best])][0]
                if float(overlap[best]) >= HANDOVER_IOU and first >= t.pts - self.lost_s:
                    owner = int(cars.track_id[best])
            if owner >= 0:
                self._hand(t, owner, frame.pts)

    def _end_all(self) -> None:
        for t in [*self._tracks, *self._ending]:
            if t.hits >= self.min_hits:
                self._finished.append(t.track_id)
        self._tracks, self._ending = [], []
        self._born.clear()
        self._last_search = self._last_orphan = None

    def _rows(self, frame: Frame) -> Tracks:
        live = [t for t in self._tracks if t.hits >= self.min_hits]
        if not live:
            return Tracks.empty()
        return Tracks(
            xyxy=np.stack([vehicle_box(t.box, frame.width, frame.height) for t in live]),
            confidence=np.array([t.score for t in live], np.float32),
            class_id=np.full(len(live), self.class_id, np.int64),
            kind=np.full(len(live), int(ObjectKind.MOTOR_VEHICLE), np.int8),
            track_id=np.array([t.track_id for t in live], np.int64),
            detected=np.array([t.detected and t.pts == frame.pts for t in live], bool),
        )
