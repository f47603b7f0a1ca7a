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
While :class:`MotionCue` sees motion the size of a plate-carrying vehicle outside every tracked
box, the picture is searched every ``search_every_s`` as with ``always``: the 2×-zoomed clip's
plates are in view 0.6–1.4 s and its detector tracks nothing, so probes found them too late to
read (4/8 at 25 fps, 3/8 at 5 fps; with the cue 7/8 at both, as ``always``; the highway's
searches stay at 8). A plate track is given the detector's "car" unless its plate is yellow
(:meth:`PlateFirst.class_of`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from sharpeyes.pipeline.geometry import iou_matrix
from sharpeyes.pipeline.types import FloatArray, Frame, ImageBGR, ObjectKind, Tracks

logger = logging.getLogger(__name__)

__all__ = [
    "ID_BASE",
    "MotionCue",
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


MOTION_COLUMNS = 80
"""The motion grid is about this many cells wide (8 px cells on a 640 px picture, 16 on 1280):
two green samples a cell, 3–5 µs to take."""
MOTION_LAG_S = 0.2
"""The picture a cell's change is measured against is at least this old (the reads' interval):
the same change at 5 and at 25 pictures a second."""
MOTION_LEVEL_MIN = 12.0
"""A cell changed when its grey level moved more than this (8-bit levels) …"""
MOTION_NOISE_K = 3.0
MOTION_NOISE_S = 10.0
"""… and more than this many times the camera's own noise: the lowest median change of a cell
over the last :data:`MOTION_NOISE_S` (noise is in every picture; a moving vehicle is not)."""
CUE_PATIENCE_S = 20.0
"""The motion cue is muted when the searches it made since a plate was last found outside the
tracked vehicles add up to this much searching (100 searches 0.2 s apart: a swaying tree, a
shadow — they are not vehicles; the zoomed clip's longest stretch between two such plates is
7.5 s); a plate found outside them re-arms it. Counted in searches, not in time since the
first one in vain: a cyclist's motion once, then a quiet minute, must not mute the cue for the
next car."""


class MotionCue:
    """Whether the picture shows motion, outside every tracked object, the size of a vehicle that
    can carry a readable plate — a cut-off front the detector scores under every threshold.

    A grid of about :data:`MOTION_COLUMNS` cells is sampled from the green channel (two samples a
    cell, averaged), compared with the grid of a picture at least :data:`MOTION_LAG_S` older; a
    cell changed when it moved more than :data:`MOTION_LEVEL_MIN` levels and
    :data:`MOTION_NOISE_K` times the camera's noise; the cells of the tracked boxes of both
    pictures (one cell around them) do not count. The cue holds when the changed cells make a
    connected region whose box is ``min_w`` × ``min_h`` px or larger. Sensor noise, rain and
    compression make scattered cells (and raise the level); the far vehicles a detector misses
    on a highway make regions a few cells across."""

    def __init__(self, min_w: float, min_h: float) -> None:
        self.min_w = min_w
        self.min_h = min_h
        self._ref: NDArray[np.int16] | None = None
        self._ref_pts = 0.0
        self._ref_boxes: FloatArray = np.zeros((0, 4), np.float32)
        self._noise: deque[tuple[float, float]] = deque()

    def reset(self) -> None:
        self._ref = None
        self._noise.clear()

    @staticmethod
    def grid(image: ImageBGR) -> tuple[NDArray[np.int16], int]:
        """The picture's motion grid and its cell size in px."""
        step = max(1, int(image.shape[1]) // MOTION_COLUMNS)
        h, w = int(image.shape[0]) // step * step, int(image.shape[1]) // step * step
        half = step // 2
        a = image[0:h:step, 0:w:step, 1].astype(np.int16)
        b = image[half:h:step, half:w:step, 1].astype(np.int16)
        return (a + b) >> 1, step

    def observe(self, image: ImageBGR, pts: float, boxes: FloatArray) -> bool:
        """Whether the cue holds in this picture (``boxes``: its tracked objects, xyxy)."""
        cells, step = self.grid(image)
        ref = self._ref
        if ref is None or ref.shape != cells.shape or pts < self._ref_pts:
            self.reset()
            self._ref, self._ref_pts, self._ref_boxes = cells, pts, boxes
            return False
        diff = np.abs(cells - ref)
        median = float(np.partition(diff.ravel(), diff.size // 2)[diff.size // 2])
        self._noise.append((pts, median))
        while self._noise and pts - self._noise[0][0] > MOTION_NOISE_S:
            self._noise.popleft()
        level = max(MOTION_LEVEL_MIN, MOTION_NOISE_K * min(m for _, m in self._noise))
        changed = diff > level
        for x1, y1, x2, y2 in (*self._ref_boxes, *boxes):
            changed[
                max(0, int(y1) // step - 1) : int(np.ceil(y2 / step)) + 1,
                max(0, int(x1) // step - 1) : int(np.ceil(x2 / step)) + 1,
            ] = False
        if pts - self._ref_pts >= MOTION_LAG_S - 1e-6:
            self._ref, self._ref_pts, self._ref_boxes = cells, pts, boxes
        wide, high = self.min_w / step, self.min_h / step
        if int(changed.sum()) < wide + high:
            return False
        _, _, stats, _ = cv2.connectedComponentsWithStats(changed.view(np.uint8), connectivity=8)
        return bool(
            ((stats[1:, cv2.CC_STAT_WIDTH] >= wide) & (stats[1:, cv2.CC_STAT_HEIGHT] >= high)).any()
        )


class RawPlateLike(Protocol):
    """One plate the plate detector found (``models.plate._RawPlate``)."""

    @property
    def box(self) -> NDArray[np.float32]: ...

    @property
    def score(self) -> float: ...

    @property
    def layers(self) -> int: ...


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
    yellow: int = 0  # searches whose plate was yellow, single-layer (plate_colour)
    seen: int = 0  # searches whose plate had a colour at all
    votes: dict[int, float] = field(default_factory=dict)  # detector class → summed scores


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


def _holding(plate: FloatArray, boxes: FloatArray, share: float = HELD_SHARE) -> NDArray[np.bool_]:
    """Which of ``boxes`` hold ``plate`` (as :func:`_covering`, every one of them)."""
    area = float((plate[2] - plate[0]) * (plate[3] - plate[1]))
    if not len(boxes) or area <= 0.0:
        return np.zeros(len(boxes), np.bool_)
    iw = np.minimum(boxes[:, 2], plate[2]) - np.maximum(boxes[:, 0], plate[0])
    ih = np.minimum(boxes[:, 3], plate[3]) - np.maximum(boxes[:, 1], plate[1])
    held: NDArray[np.bool_] = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None) >= share * area
    held &= (plate[1] + plate[3]) / 2 >= (boxes[:, 1] + boxes[:, 3]) / 2
    return held


def _left_picture(t: _PlateTrack, frame: Frame) -> bool:
    """Whether ``t``'s plate, where its motion puts it in ``frame``, is over half outside the
    picture."""
    box = t.box + np.tile(t.velocity * (frame.pts - t.pts), 2)
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    if w <= 0.0 or h <= 0.0:
        return False
    iw = min(float(box[2]), frame.width) - max(float(box[0]), 0.0)
    ih = min(float(box[3]), frame.height) - max(float(box[1]), 0.0)
    return max(iw, 0.0) * max(ih, 0.0) < 0.5 * w * h


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


YELLOW_HUE = (10, 40)
BLUE_HUE = (95, 135)
"""OpenCV hue ranges (0–180) of a yellow and a blue plate's background."""


def plate_colour(image: ImageBGR, plate: FloatArray) -> str | None:
    """The plate's background, "yellow" or "blue", from the hue of its inner part's saturated
    pixels (more than half of them in one range; the characters, black or white, are not
    saturated); None when neither (a white, black or green plate, or a washed-out picture).

    Measured on every plate ``plate_det_320`` found at ≥ 0.6, ≥ 50 px in the Beijing clip and
    its 1.5× and 2× zooms (706 plates): the MB100's yellow plate yellow on all 74 pictures, the
    blue plates blue but for 15 None and 17 "yellow" that belong to the MB100 (the labels'
    frames of the Tiida and the MB100 overlap)."""
    x1, y1, x2, y2 = (int(v) for v in plate)
    w, h = x2 - x1, y2 - y1
    crop = image[
        max(0, y1 + h // 4) : max(0, y2 - h // 4), max(0, x1 + w // 8) : max(0, x2 - w // 8)
    ]
    if crop.size == 0:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2HSV).reshape(-1, 3)
    hue = hsv[hsv[:, 1] >= 80, 0]
    if len(hue) < 0.2 * len(hsv):
        return None
    if ((hue >= YELLOW_HUE[0]) & (hue <= YELLOW_HUE[1])).mean() > 0.5:
        return "yellow"
    if ((hue >= BLUE_HUE[0]) & (hue <= BLUE_HUE[1])).mean() > 0.5:
        return "blue"
    return None


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
        self._motion = MotionCue(
            VEHICLE_W * min_width_px, (VEHICLE_ABOVE + VEHICLE_BELOW) * min_width_px
        )
        self._dets: tuple[FloatArray, NDArray[np.int64], FloatArray] = (
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
        )
        self._cue_vain_s = 0.0  # motion-cued searching in vain since a plate was found
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

    def _due(self, pts: float, cue: bool, moving: bool) -> bool:
        last = self._last_search
        if last is None or pts < last:  # first picture, or the stream started over
            return True
        if self.active or moving:
            return pts - last >= self.search_every_s - 1e-6
        every = self.probe_s if cue else self._probe_every
        return pts - last >= every - 1e-6

    @property
    def muted(self) -> bool:
        """Whether the motion cue's searches have been in vain for :data:`CUE_PATIENCE_S`."""
        return self._cue_vain_s >= CUE_PATIENCE_S - 1e-6

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
        *,
        classes: NDArray[np.int64] | None = None,
        scores: FloatArray | None = None,
    ) -> Tracks:
        """The plate tracks alive in ``frame`` (confirmed ones), after searching it when due.
        ``tracks``: the tracker's tracks of this picture (a plate inside one of their
        motor-vehicle boxes is that vehicle's, not a new one); ``ended``: the tracker's tracks
        that ended with it (nothing is handed to them: their events are out); ``detections``:
        the picture's motor-vehicle detections (xyxy), whatever their score — one wide enough
        for a readable plate that no track holds makes a probe due every ``probe_s`` — and
        ``classes``, ``scores`` theirs (:meth:`class_of`).

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
        dets = np.asarray(np.zeros((0, 4)) if detections is None else detections, np.float32)
        dets = dets.reshape(-1, 4)
        n = len(dets)
        self._dets = (
            dets,
            np.full(n, self.class_id, np.int64) if classes is None else np.asarray(classes),
            np.zeros(n, np.float32) if scores is None else np.asarray(scores, np.float32),
        )
        cue = self._cue(dets, cars)
        # the tracker's boxes, and its vehicles' seen within lost_s: a plate there is theirs
        # (as for the searches), and so is the motion — a car the tracker just lost at the
        # picture's edge (the Beijing clip: the cue in 156 of its pictures, 81 so)
        own = np.concatenate([tracks.xyxy[tracks.track_id < ID_BASE], boxes])
        moving = self._motion.observe(frame.image, pts, own) and not self.muted
        if self._due(pts, cue, moving):
            self._search(frame, ids, boxes, cued=moving and not self.active)
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

    def _search(
        self, frame: Frame, ids: NDArray[np.int64], boxes: FloatArray, cued: bool = False
    ) -> None:
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
            self._cue_vain_s = 0.0
        elif cued:  # the motion cue searched in vain (CUE_PATIENCE_S)
            self._cue_vain_s += max(self.search_every_s, 1e-3)
        if self.stats.orphans == orphans and probe:  # a probe in vain: the next one later
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
                t = _PlateTrack(self._next_id, plates[j], frame.pts, score=float(scores[j]))
                self._tracks.append(t)
                self._next_id += 1
                self.stats.tracks += int(self.min_hits <= 1)
            self._note_class(t, frame.image, plates[j], int(found[j].layers))
            self.stats.orphans += 1
            self._last_orphan = frame.pts

    def _note_class(self, t: _PlateTrack, image: ImageBGR, plate: FloatArray, layers: int) -> None:
        """What this picture says of the class of ``t``'s vehicle: its plate's colour
        (:func:`plate_colour`) and the detections, whatever their score, that hold the plate
        (the detector's classes, weighted by score)."""
        colour = plate_colour(image, plate)
        t.seen += colour is not None
        t.yellow += colour == "yellow" and layers == 1
        boxes, classes, scores = self._dets
        for k in np.flatnonzero(_holding(plate, boxes)):
            t.votes[int(classes[k])] = t.votes.get(int(classes[k]), 0.0) + float(scores[k])

    def class_of(self, t: _PlateTrack) -> int:
        """The class a plate track is given: :attr:`class_id` (the detector's "car"), unless its
        plate is a yellow single-layer one on most searches that saw a colour (at least two) —
        GA 36-2018: the front plate of a medium or large vehicle (大型汽车号牌); the blue plate is
        the small vehicles' — and the detections that held it voted for another class: the one
        with the most score among those. The detector's own votes on a blue plate are not
        evidence: on the fronts cut off by the 1.5× and 2× zooms most of its score went to another
        class than car (mostly bus) for 4 and 5 of the 6 small cars it saw, and a blue plate
        rules a bus out."""
        if t.seen < 2 or 2 * t.yellow <= t.seen:
            return self.class_id
        others = {c: v for c, v in t.votes.items() if c != self.class_id}
        return max(others, key=lambda c: others[c]) if others else self.class_id

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
        # a track whose plate its motion has taken out of the picture is not waited for: the
        # tracker's track that opens on the rest of the vehicle may be over by then (the 2×
        # zoom: the plate left at the bottom at 15.0 s, a track held the car 15.04–15.2 s)
        gone = [t for t in self._tracks if t.pts < frame.pts and _left_picture(t, frame)]
        for t in [*self._ending, *gone]:
            shift = np.tile(t.velocity * (frame.pts - t.pts), 2)
            plate = np.clip(t.box + shift, 0.0, [frame.width, frame.height] * 2)
            held = _covering(plate.astype(np.float32), boxes) if t in self._ending else -1
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
        self._motion.reset()
        self._last_search = self._last_orphan = None

    def _rows(self, frame: Frame) -> Tracks:
        live = [t for t in self._tracks if t.hits >= self.min_hits]
        if not live:
            return Tracks.empty()
        return Tracks(
            xyxy=np.stack([vehicle_box(t.box, frame.width, frame.height) for t in live]),
            confidence=np.array([t.score for t in live], np.float32),
            class_id=np.array([self.class_of(t) for t in live], np.int64),
            kind=np.full(len(live), int(ObjectKind.MOTOR_VEHICLE), np.int8),
            track_id=np.array([t.track_id for t in live], np.int64),
            detected=np.array([t.detected and t.pts == frame.pts for t in live], bool),
        )
