"""A standing vehicle keeps its track id when the tracker loses it and finds it again.

ByteTrack ends a track lost for more than ``lost_buffer_s`` (about a second and a half). A car
parked at the kerb or waiting in a queue is hidden by every bus and truck that passes in front
of it, often for longer; each time it is seen again the tracker opens a new track, and each
track made one ``vehicle_pass`` event — one GA/T 1400 MotorVehicleObject, one vehicle in the
flow counts — for a car that did not pass anywhere (hanoi_b: a car stopped at the far side of
the crossing gave three events, another four; intersection_topview: a parked car two).

:class:`ParkedContinuity` wraps the tracker. A motor-vehicle track that ends standing — seen
for at least :data:`MIN_LIFE_S`, and over its last :data:`STAND_S` at least :data:`STILL_SHARE`
of its boxes within :data:`STILL_FRACTION` of their median box's diagonal of its centre and
within :data:`STILL_SIZE` of its area (a vehicle being hidden shows a shrinking box before it
is lost) — is not reported finished at once: it is held for :data:`HOLD_S`, with its median box
and the look (:func:`_look`: the box's middle, shrunk, in CIELAB) of its last box that agreed. A
new track whose first box overlaps a held one's box by at least :data:`SAME_PLACE_IOU` and
looks like it (:data:`SAME_LIGHT`, :data:`SAME_CHROMA`; closer, :data:`MOVING_LOOK`, when its
detections moved before the tracker opened it) is that vehicle seen again: downstream
(events, structuring, flow, rules) it carries the held track's id, so its event, its count and
its rules' history go on. A held track nobody takes over within the hold is reported finished
then (its event comes :data:`HOLD_S` later than before). A track that moved in its last seconds
is finished as before, and a car that drives up takes nobody's id: only a track's first box can.

A vehicle whose box two opposite sides of the picture cut does not stand, whatever its box does
(:func:`_cut`): on a checkpoint's near field a car crawling in fills the picture from top to
bottom, its box stays put while it drives, and the next car's frame-filling box lies where it
was — the Beijing clip at 5 pictures a second lost two plates that way before this test. The
look keeps another vehicle that stands where a held one stood from taking its id. On by default
(``tracker.parked_hold_s: 30``; 0 = off).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sharpeyes.pipeline.geometry import iou_matrix
from sharpeyes.pipeline.types import (
    Detections,
    FloatArray,
    ImageBGR,
    IntArray,
    ObjectKind,
    Tracks,
)

if TYPE_CHECKING:
    from sharpeyes.pipeline.runner import FinishingTracker

__all__ = [
    "BIRTH_S",
    "EDGE_SHARE",
    "HOLD_S",
    "MIN_LIFE_S",
    "MOVING_LOOK",
    "SAME_CHROMA",
    "SAME_LIGHT",
    "SAME_PLACE_IOU",
    "STAND_S",
    "STILL_FRACTION",
    "STILL_SHARE",
    "STILL_SIZE",
    "ParkedContinuity",
]

logger = logging.getLogger(__name__)

Box4 = tuple[float, float, float, float]

HOLD_S = 30.0
"""How long a standing vehicle's track waits, after the tracker lost it, to be found again."""
STAND_S = 2.0
"""A track stands when it stood still over its last this many seconds (a car that drove up to a
queue and waited, as well as one parked all along)."""
MIN_LIFE_S = 1.0
"""A track seen for less than this is not known to stand (a flicker, a vehicle crossing)."""
STILL_FRACTION = 0.25
"""Over those seconds its box centres stay within this share of their median box's diagonal of
its centre (detector jitter on a parked car is a few per cent; a car creeping up a queue moves a
good part of its length)…"""
STILL_SIZE = 1.5
"""…and its boxes' areas within this factor of the median box's (a vehicle coming closer or
going away grows or shrinks even where its centre hardly moves: a checkpoint camera's near
field)…"""
STILL_SHARE = 0.75
"""…for this share of its boxes at least (detector jitter, a passing vehicle cutting into it)."""
SAME_PLACE_IOU = 0.5
"""A new track's first box over a held track's (median) box: the same place."""
BIRTH_S = 0.5
"""Whether a new track was moving is asked of its detections of this long before its first box
(a tracker opens a track after two or three of them)."""
EDGE_SHARE = 0.01
"""A box side within this share of the picture's shorter side of the picture's side is cut by
it. A box cut by two opposite sides can stay put while its vehicle drives (a checkpoint's near
field, where a car fills the picture from top to bottom): such a vehicle is not known to
stand."""


@dataclass(frozen=True, slots=True)
class _Seen:
    pts: float
    box: Box4
    look: FloatArray | None


@dataclass
class _Life:
    first_pts: float
    kind: int
    seen: deque[_Seen] = field(default_factory=deque)  # detected boxes, the last STAND_S


@dataclass(frozen=True, slots=True)
class _Held:
    box: Box4
    kind: int
    until: float
    look: FloatArray | None


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
        self._picture: tuple[int, int] | None = None
        self._before: deque[tuple[float, FloatArray]] = deque()  # detections, the last BIRTH_S
        self.taken_over = 0  # standing vehicles seen again under their first id

    def update(
        self,
        detections: Detections,
        pts: float,
        frames_skipped: int = 0,
        image: ImageBGR | None = None,
    ) -> Tracks:
        tracks = self.inner.update(detections, pts, frames_skipped, image)
        if image is not None:
            self._picture = (int(image.shape[1]), int(image.shape[0]))
        while self._before and self._before[0][0] < pts - BIRTH_S:
            self._before.popleft()
        ids = tracks.track_id.copy()
        for i in range(len(ids)):
            inner = int(ids[i])
            kind = int(tracks.kind[i])
            if kind not in self._kinds:
                continue
            out = self._alias.get(inner, inner)
            box = _box(tracks.xyxy[i])
            detected = bool(tracks.detected[i])
            look = _look(image, box) if detected and image is not None else None
            life = self._life.get(out)
            if life is None:
                held = self._take(box, kind, look, inner, moving=not self._born_still(box))
                if held is not None:
                    self._alias[inner] = out = held
                    life = self._life[held]
                else:
                    life = self._life[out] = _Life(pts, kind)
            ids[i] = out
            if not detected:
                continue  # a predicted box says nothing of where the vehicle stands
            life.seen.append(_Seen(pts, box, look))
            while life.seen[0].pts < pts - STAND_S:
                life.seen.popleft()
        for tid, entry in list(self._held.items()):
            if pts > entry.until:
                del self._held[tid]
                self._life.pop(tid, None)
                self._released.append(tid)
        mine = np.isin(detections.kind, list(self._kinds))
        self._before.append((pts, detections.xyxy[mine]))
        if np.array_equal(ids, tracks.track_id):
            return tracks
        return _with_ids(tracks, ids)

    def pop_finished(self) -> list[int]:
        out, self._released = self._released, []
        for inner in self.inner.pop_finished():
            tid = self._alias.pop(inner, inner)
            life = self._life.get(tid)
            stood = self._stood(life) if life is not None else None
            if life is not None and stood is not None:
                until = life.seen[-1].pts + self._hold_s
                self._held[tid] = _Held(stood.box, life.kind, until, stood.look)
                continue
            self._life.pop(tid, None)
            out.append(tid)
        return out

    def reset(self) -> None:
        """Forget all tracks, as the inner tracker does: every id given out, held ones too,
        is reported finished by the next :meth:`pop_finished`."""
        self.inner.reset()
        ended = [self._alias.pop(i, i) for i in self.inner.pop_finished()]
        self._released += ended + list(self._held)
        self._alias.clear()
        self._life.clear()
        self._held.clear()
        self._before.clear()

    def lowered(self) -> dict[str, float]:
        """The inner tracker's kinds whose tracks open lower (``ByteTracker.lowered``)."""
        lowered = getattr(self.inner, "lowered", None)
        return dict(lowered()) if lowered is not None else {}

    def _stood(self, life: _Life) -> _Seen | None:
        """Where the track stood over its last :data:`STAND_S`, None when it did not stand.

        It stood when it was seen for at least ``min_life_s``, no box of that window was cut
        by two opposite sides of the picture, and at least :data:`STILL_SHARE` of its boxes
        agree with their median box: centre within ``still_fraction`` of its diagonal, area
        within :data:`STILL_SIZE` of its area (a vehicle being hidden shows a shrinking box
        before it is lost; a vehicle coming closer a growing one all along). The place is the
        median box, the look the last agreeing box's."""
        seen = life.seen
        if not seen or seen[-1].pts - life.first_pts < self._min_life_s:
            return None
        if any(_cut(s.box, self._picture) for s in seen):
            return None
        ref = _box(np.median(np.array([s.box for s in seen], np.float64), axis=0))
        cx, cy = _centre(ref)
        reach = self._still * math.hypot(ref[2] - ref[0], ref[3] - ref[1])
        area = max(_area(ref), 1.0)
        agree = [
            s
            for s in seen
            if math.hypot(_centre(s.box)[0] - cx, _centre(s.box)[1] - cy) <= reach
            and 1.0 / STILL_SIZE <= _area(s.box) / area <= STILL_SIZE
        ]
        if len(agree) < STILL_SHARE * len(seen):
            return None
        look = next((s.look for s in reversed(agree) if s.look is not None), None)
        return _Seen(seen[-1].pts, ref, look)

    def _born_still(self, box: Box4) -> bool:
        """Whether a new track's detections before its first box (the tracker confirms a
        track after a few) stood: in each picture of the last :data:`BIRTH_S`, the detection
        nearest the box (within 1.5 of its diagonal, of an area within 2× of its) is within
        ``still_fraction`` of its diagonal of it. A vehicle driving through the spot where a
        held one stood, just as a bus uncovers it, is another vehicle; a neighbour standing
        close by also says no (the cautious side). True when none is near (not seen before)."""
        cx, cy = _centre(box)
        diag = math.hypot(box[2] - box[0], box[3] - box[1])
        area = max(_area(box), 1.0)
        for _, earlier in self._before:
            if not len(earlier):
                continue
            centres = (earlier[:, :2] + earlier[:, 2:]) / 2.0
            far = np.hypot(centres[:, 0] - cx, centres[:, 1] - cy)
            sizes = (earlier[:, 2] - earlier[:, 0]) * (earlier[:, 3] - earlier[:, 1]) / area
            near = (far <= 1.5 * diag) & (sizes >= 0.5) & (sizes <= 2.0)
            if near.any() and float(far[near].min()) > self._still * diag:
                return False
        return True

    def _take(
        self, box: Box4, kind: int, look: FloatArray | None, inner: int, *, moving: bool
    ) -> int | None:
        """The held track of ``kind`` whose last box ``box`` overlaps most (at least the
        same-place IoU) and that looks like it (:func:`_alike`; the closer look of
        :data:`MOVING_LOOK` when the new track was ``moving`` before it opened), taken out of
        the held ones; None when there is none."""
        if not self._held:
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
        similar = _alike(self._held[tid].look, look)
        same = similar.within(MOVING_LOOK if moving else 1.0)
        logger.debug(
            "parked: new track %d over held %d: IoU %.2f%s, looks %s: %s",
            inner,
            tid,
            float(ious[best]),
            ", moving" if moving else "",
            similar,
            "the same" if same else "another",
        )
        if not same:
            return None
        del self._held[tid]
        self.taken_over += 1
        return tid


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


LOOK_PX = 8
"""A look is the box's middle (a tenth cut off each side: less of what is around it) shrunk to
this many pixels square, in CIELAB."""


SAME_LIGHT = 12.0
"""Two looks of one vehicle: mean lightness within this (OpenCV's 8-bit L, 0–255)…"""
SAME_CHROMA = 3.0
"""…and mean (a*, b*) within this of each other (8-bit units). Measured on every new track born
over a held one in the sample clips (19, identities by eye): the same vehicle 1.6–14.5 and
0.2–2.5, another one 3.7–88 and 1.6–23, never under both."""
MOVING_LOOK = 0.5
"""A new track that was moving before it opened over a held box is either the held vehicle
driving off (the queue moved while it was hidden: hanoi_b's red car, seen again at 39.8 s) or
another one driving through the spot as it is uncovered: its look must be this much closer
(the limits times this). The nearest pair of two vehicles above was 4.0 / 5.4."""


@dataclass(frozen=True, slots=True)
class _Likeness:
    light: float  # |Δ mean L|
    chroma: float  # |Δ mean (a*, b*)|
    known: bool = True  # both looks were there

    def within(self, scale: float) -> bool:
        """Alike within the limits times ``scale``; unknown looks are alike only unscaled."""
        if not self.known:
            return scale >= 1.0
        return self.light <= SAME_LIGHT * scale and self.chroma <= SAME_CHROMA * scale

    def __str__(self) -> str:
        if not self.known:
            return "unknown"
        return f"light {self.light:.1f} chroma {self.chroma:.1f}"


def _look(image: ImageBGR, box: Box4) -> FloatArray | None:
    """The box's look (:data:`LOOK_PX`); None for a box under 4 pixels either way."""
    h, w = image.shape[:2]
    bw, bh = box[2] - box[0], box[3] - box[1]
    x0, x1 = max(int(box[0] + 0.1 * bw), 0), min(int(box[2] - 0.1 * bw), w)
    y0, y1 = max(int(box[1] + 0.1 * bh), 0), min(int(box[3] - 0.1 * bh), h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    thumb = cv2.resize(image[y0:y1, x0:x1], (LOOK_PX, LOOK_PX), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(thumb, cv2.COLOR_BGR2LAB).astype(np.float32)


def _alike(a: FloatArray | None, b: FloatArray | None) -> _Likeness:
    """How far two looks are apart; alike when either is unknown (no picture)."""
    if a is None or b is None:
        return _Likeness(0.0, 0.0, known=False)
    light = abs(float(a[..., 0].mean() - b[..., 0].mean()))
    chroma = float(np.hypot(*(a[..., 1:].mean(axis=(0, 1)) - b[..., 1:].mean(axis=(0, 1)))))
    return _Likeness(light, chroma)


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
