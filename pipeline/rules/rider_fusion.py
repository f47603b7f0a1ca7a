"""Rider fusion for the vehicle red-light rule: a riding ``person`` stands in for its two-wheeler.

Seen from behind, a motorbike is mostly hidden by its rider and the detector often reports only
the ``person``. :class:`RiderFeed` turns the person tracks of a frame into rider observations
for :class:`~sharpeyes.pipeline.rules.red_light.RedLightRule`:

* the anchor is moved from the rider's feet down to the road and the box is extended to it, so
  crossing times and evidence crops match a two-wheeler's: the road is the head plus the
  camera's learned rider height at that row (:mod:`.rider_height`), and ``ground_offset`` of the
  person box height under the feet until enough riders over detected two-wheelers have been
  seen (the median gap between rider feet and the carrying two-wheeler's wheels near the stop
  line of hanoi_b: 0.255 of the person height, 408 rider/bike pairs). That fixed-share point
  rides along (``Observation.alt_anchor``) for entry-line decisions, and the person box's own
  bottom (``own_y2``) for the evidence;
* each person row carries the id of the two-wheeler track it sits on this frame, if any
  (:func:`pipeline.riders.carrier_ids`) and whether that two-wheeler is one the rule charges;
* a rider charged for a crossing that a two-wheeler it sat on also made, seen within
  ``_CARRIER_MAX_GAP_S`` on both sides of the line, is timed by that two-wheeler's own crossing
  (:meth:`RiderArbiter.carrier_crossing`): its wheels are measured, the rider's road point is
  estimated. The choice is made once per crossing, not frame by frame.

:class:`ChargeLedger` remembers recent charges so that a rider and a two-wheeler crossing at the
same place and time are charged once even when their boxes were never seen overlapping, and so
that two tracks of one object (a detector alternating between two boxes of it) are too.
Pure: no I/O, frame time only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sharpeyes.pipeline.riders import RiderParams, carrier_ids, rides_along
from sharpeyes.pipeline.rules.common import Observation
from sharpeyes.pipeline.rules.geometry import Vec, distance
from sharpeyes.pipeline.rules.rider_height import RiderHeightModel
from sharpeyes.pipeline.types import Anchor, Frame, ObjectKind, Tracks, box_anchors

log = logging.getLogger(__name__)

# A charge within this time and this many box widths of another is the same crossing (0.6 s:
# rider and two-wheeler times agree within ~0.2 s since the learned rider height; 1.0 s took a
# rider 0.92 s behind another motorbike in its lane for that bike's rider).
_SAME_CROSSING_S = 0.6
_SAME_CROSSING_WIDTHS = 1.0
# Two charges of the same sort (two vehicle tracks, or two riders) are one object seen twice when
# they crossed within half a box width of each other on the line and so close in time that, at
# the speed they moved, they were less than a fifth of a box height apart along the lane: two
# real vehicles cannot overlap like that (one following another is at least its own length
# behind). In a motion-interpolated copy of hanoi_b the detector alternated between a
# motorbike's own box (45 px tall) and a box of bike and rider (83 px): two tracks of one bike,
# crossing 0.05 s and 0 px apart at ~30 px/s, both charged.
_TWIN_WIDTHS = 0.5
_TWIN_HEIGHTS = 0.2
_LEDGER_KEEP_S = 10.0
# A charge made through a link (a rider ↔ the two-wheeler it sat on) stands for this crossing
# only when the linked track crossed within this time of it: a rider and its two-wheeler cross
# within ~0.6 s (above), and a link is made by any frame the two boxes overlap — in an MJPEG
# copy of hanoi_b a passing rider's track jumped onto hb08's waiting motorbike for a frame, was
# charged for its own crossing at 28.2 s, and hb08's rider crossing at 39.2 s was then never
# charged, "charged through a link".
_LINKED_SAME_CROSSING_S = 3.0
# A two-wheeler's own crossing times its rider only when it was seen within this time before
# and after the line (three frames at 6 fps). Over a longer gap the two sightings may be of
# different moments of its motion or of another object: in hanoi_b the two-wheeler under hb10
# was last seen 1.17 s before its next sighting, in the queue, and its interpolated crossing
# was 0.3 s early; hb06's, seen 0.5 s apart, was 0.04 s from the label.
_CARRIER_MAX_GAP_S = 0.5
# A detected carrier's box bottom counts as the road under its rider when it is within this
# share of the person height of the fixed estimate (feet + ``ground_offset``).
_WHEEL_AGREES = 0.3
# The road point from the learned rider height is kept between the feet and this share of the
# person height under them.
_MAX_GAP = 0.6


@dataclass(frozen=True, slots=True)
class RiderRow:
    """One person of one frame as the rule sees it."""

    track_id: int
    obs: Observation
    carrier: int  # track id of the two-wheeler it sits on, -1 when none
    carrier_in_scope: bool  # that two-wheeler is of a kind the rule charges


class RiderFeed:
    """Builds :class:`RiderRow` s from a frame's tracks.

    A rider's road point is its head plus the camera's learned rider height at that row
    (:class:`~.rider_height.RiderHeightModel`, from riders over detected two-wheelers), and
    ``ground_offset`` of the person height under its feet where that is not known yet.
    """

    def __init__(self, params: RiderParams, kinds: list[int], anchor: Anchor, frame_h: int) -> None:
        self.params = params
        self._kinds = kinds
        self._anchor = anchor
        self._frame_h = float(frame_h)
        self.heights = RiderHeightModel()

    def _learn(self, tracks: Tracks, idx: np.ndarray, carriers: np.ndarray) -> None:
        """Pairs for the height model: a detected rider over a detected two-wheeler."""
        row_of = {int(t): r for r, t in enumerate(tracks.track_id)}
        for i in idx:
            c = row_of.get(int(carriers[i]))
            if c is None or not (bool(tracks.detected[i]) and bool(tracks.detected[c])):
                continue
            top, bottom = float(tracks.xyxy[i, 1]), float(tracks.xyxy[i, 3])
            wheel, h = float(tracks.xyxy[c, 3]), bottom - top
            if wheel < self._frame_h - 1.0 and abs(wheel - self._fixed(top, bottom)) <= (
                _WHEEL_AGREES * h
            ):
                self.heights.add(top, wheel)

    def _fixed(self, top: float, bottom: float) -> float:
        """The road under a rider by the fixed share: feet + ``ground_offset`` of its height."""
        return bottom + self.params.ground_offset * (bottom - top)

    def _road(self, top: float, bottom: float) -> float:
        height = self.heights.height_at(top)
        if height is None:
            return self._fixed(top, bottom)
        return min(max(top + height, bottom), bottom + _MAX_GAP * (bottom - top))

    def rows(self, frame: Frame, tracks: Tracks) -> list[RiderRow]:
        person = tracks.kind == int(ObjectKind.PERSON)
        if not person.any():
            return []
        carriers = carrier_ids(tracks, self.params)
        in_scope = {
            int(t)
            for t, k in zip(tracks.track_id, tracks.kind, strict=True)
            if int(k) in self._kinds
        }
        idx = np.flatnonzero(person)
        self._learn(tracks, idx, carriers)
        boxes = tracks.xyxy[idx].astype(np.float32).copy()
        own_bottom = boxes[:, 3].copy()
        fixed = boxes.copy()
        fixed[:, 3] = [min(self._fixed(float(b[1]), float(b[3])), self._frame_h) for b in boxes]
        road = [self._road(float(b[1]), float(b[3])) for b in boxes]
        boxes[:, 3] = np.minimum(np.asarray(road, np.float32), self._frame_h)
        anchors = box_anchors(boxes, self._anchor)
        fixed_anchors = box_anchors(fixed, self._anchor)
        riders = dataclasses.replace(tracks[idx], xyxy=boxes)  # feet moved down to the road
        out = []
        for j, i in enumerate(idx):
            obs = Observation.of_row(frame, riders, anchors, j)
            alt = (float(fixed_anchors[j, 0]), float(fixed_anchors[j, 1]))
            obs = dataclasses.replace(obs, own_y2=float(own_bottom[j]), alt_anchor=alt)
            c = int(carriers[i])
            out.append(RiderRow(int(tracks.track_id[i]), obs, c, c in in_scope))
        return out


@dataclass(frozen=True, slots=True)
class Charge:
    """One charged crossing as the ledger keeps it."""

    pts: float
    point: Vec
    width: float
    rider: bool
    two_wheeler: bool = True  # a rider or a two-wheeler (the sorts that stand in for each other)
    height: float = 0.0  # box height at the crossing, pixels
    speed: float = 0.0  # pixels per second along the lane at the crossing


class ChargeLedger:
    """Recent charges, to charge one physical crossing once: a rider and its two-wheeler
    (:data:`_SAME_CROSSING_S`), or two tracks of one object (:data:`_TWIN_HEIGHTS`)."""

    def __init__(self) -> None:
        self._recent: deque[Charge] = deque()

    def duplicate(self, new: Charge) -> bool:
        """True when a recent charge is this crossing: one of the other sort (rider vs
        two-wheeler) at the same place and time, or one of the same sort that cannot be another
        object (see :data:`_TWIN_HEIGHTS`)."""
        return any(_same_object(c, new) for c in self._recent)

    def add(self, c: Charge) -> None:
        self._recent.append(c)
        while self._recent and c.pts - self._recent[0].pts > _LEDGER_KEEP_S:
            self._recent.popleft()

    def clear(self) -> None:
        self._recent.clear()


def _same_object(a: Charge, b: Charge) -> bool:
    dt, apart = abs(a.pts - b.pts), distance(a.point, b.point)
    if dt > _SAME_CROSSING_S:
        return False
    if a.rider is not b.rider:
        both = a.two_wheeler and b.two_wheeler
        return both and apart <= _SAME_CROSSING_WIDTHS * max(a.width, b.width)
    short = min(a.height, b.height)
    if short <= 0 or apart > _TWIN_WIDTHS * max(a.width, b.width):
        return False
    return dt * max(a.speed, b.speed) <= _TWIN_HEIGHTS * short


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class StopCrossing:
    """Where and when a two-wheeler's own box crossed a stop line: its wheels on the road,
    measured — a rider's road point is an estimate (:class:`RiderFeed`)."""

    approach: str
    pts: float
    point: Vec
    width: float
    gap: float  # seconds between the observations behind and past the line


@dataclass(slots=True, eq=False)
class FusionState:
    """What rider fusion remembers about one tracked object of the red-light rule."""

    rider: bool = False  # a person track standing in for an undetected two-wheeler
    links: list[FusionState] = field(default_factory=list)  # riders ↔ the bikes they sat on
    out_of_scope: int = 0  # frames this rider sat on a two-wheeler the rule does not charge
    carried: int = 0  # frames this rider sat on a two-wheeler the rule charges
    charged: bool = False
    closed: bool = False  # evicted, finalized or replaced after an identity switch
    deciding: Callable[[], bool] = _never  # crossed on red, verdict pending
    crossing: StopCrossing | None = None  # a vehicle track's own stop-line crossing

    def link(self, other: FusionState) -> None:
        if not any(x is other for x in self.links):
            self.links.append(other)
            other.links.append(self)


@dataclass(frozen=True, slots=True)
class CrossingFacts:
    """A stop-line crossing as the arbiter needs it."""

    pts: float
    point: Vec
    width: float  # box width just past the line, pixels
    start: Observation  # last observation behind the line
    end: Observation  # first observation inside the intersection (or the last one)
    travel: Vec  # the lane's unit direction of travel

    @property
    def height(self) -> float:
        """The smaller box height on either side of the line, pixels."""
        return min(_own_bottom(o) - o.box[1] for o in (self.start, self.end))

    @property
    def speed(self) -> float:
        """Pixels per second along the lane from ``start`` to ``end`` (0 when not moving on)."""
        a, b = self.start, self.end
        if b.pts <= a.pts:
            return 0.0
        along = (b.anchor[0] - a.anchor[0]) * self.travel[0] + (
            b.anchor[1] - a.anchor[1]
        ) * self.travel[1]
        return max(along, 0.0) / (b.pts - a.pts)


class RiderArbiter:
    """Decides whether a crossing may be charged: one charge per rider + two-wheeler."""

    def __init__(self, params: RiderParams, diag: float) -> None:
        self.params = params
        self._diag = diag
        self._ledger = ChargeLedger()

    def wait(self, fs: FusionState) -> bool:
        """A rider waits while a two-wheeler it sat on is deciding the same crossing."""
        return any(not x.closed and x.deciding() for x in fs.links)

    def chargeable(
        self, fs: FusionState, f: CrossingFacts, two_wheeler: bool, track_id: int, n_obs: int
    ) -> bool:
        """Not already charged through a link or the ledger; a rider must ride."""
        if any(x.charged and _same_crossing(x, f) for x in fs.links):
            log.debug("track %s: charged through a linked rider/two-wheeler", track_id)
            return False
        if fs.rider and not self._rides(fs, f, n_obs):
            log.debug("person %s crossed but is not a rider of a charged vehicle", track_id)
            return False
        if self._ledger.duplicate(_charge_of(fs, f, two_wheeler)):
            log.debug("track %s: same crossing already charged", track_id)
            return False
        return True

    def _rides(self, fs: FusionState, f: CrossingFacts, n_obs: int) -> bool:
        p = self.params
        if fs.out_of_scope >= max(p.min_rider_frames, p.rider_share * n_obs):
            return False  # sits on a two-wheeler this rule does not charge (a bicycle)
        if fs.carried >= p.min_rider_frames:
            return True  # seen sitting on a charged two-wheeler: a rider at any speed
        a, b = f.start, f.end
        return rides_along(
            a.anchor, a.pts, b.anchor, b.pts, travel=f.travel, diag=self._diag, params=p
        )

    def carrier_crossing(
        self, fs: FusionState, approach: str, pts: float, point: Vec, width: float
    ) -> StopCrossing | None:
        """The stop-line crossing of a two-wheeler this rider sat on, when it is the same
        crossing as the rider's (same approach, within ``_SAME_CROSSING_S`` and a box width of
        it; the nearest in time of several), else None."""
        best: StopCrossing | None = None
        for x in fs.links:
            c = x.crossing
            if x.rider or c is None or c.approach != approach or c.gap > _CARRIER_MAX_GAP_S + 1e-6:
                continue
            if abs(c.pts - pts) > _SAME_CROSSING_S:
                continue
            if distance(c.point, point) > _SAME_CROSSING_WIDTHS * max(c.width, width):
                continue
            if best is None or abs(c.pts - pts) < abs(best.pts - pts):
                best = c
        return best

    def charge(self, fs: FusionState, f: CrossingFacts, two_wheeler: bool) -> None:
        fs.charged = True
        self._ledger.add(_charge_of(fs, f, two_wheeler))

    def clear(self) -> None:
        self._ledger.clear()


def _charge_of(fs: FusionState, f: CrossingFacts, two_wheeler: bool) -> Charge:
    return Charge(f.pts, f.point, f.width, fs.rider, two_wheeler or fs.rider, f.height, f.speed)


def _same_crossing(linked: FusionState, f: CrossingFacts) -> bool:
    """Whether the charge of a linked track is for the crossing ``f`` (see
    :data:`_LINKED_SAME_CROSSING_S`); a linked rider, whose own crossing is not kept, is."""
    c = linked.crossing
    return c is None or abs(c.pts - f.pts) <= _LINKED_SAME_CROSSING_S


def _own_bottom(o: Observation) -> float:
    return o.box[3] if o.own_y2 is None else o.own_y2


def identity_switch(
    prev: Observation,
    cur: Observation,
    bottom: float,
    max_ratio: float = 1.5,
    right: float = math.inf,
) -> bool:
    """True when a track's box changed size and place at once: the tracker swapped objects, or
    the detector merged the object with another.

    Both boxes must be detections not cut by the frame's bottom edge (``bottom``, pixels: a box
    entering the frame grows fast); the height must change by ``max_ratio`` or more and the
    anchor jump by more than a third of the smaller height — or, for boxes clear of the frame's
    side edges (``right``: the right edge, pixels), the width change by ``max_ratio`` and the
    anchor jump by more than a third of the smaller width. Vehicles grow and shrink slowly as
    they move and turn; a sudden both-at-once change is another object under the same id (in a
    motion-interpolated copy of hanoi_b a waiting motorbike's box, 32 px wide, merged with a
    passing one into one 64 px box whose anchor lay past the stop line: a "crossing").
    """
    if not (prev.detected and cur.detected) or max(prev.box[3], cur.box[3]) >= bottom:
        return False
    jump = distance(prev.anchor, cur.anchor)
    h0 = _own_bottom(prev) - prev.box[1]
    h1 = _own_bottom(cur) - cur.box[1]
    if _changed(h0, h1, max_ratio) and jump > min(h0, h1) / 3:
        return True
    if min(prev.box[0], cur.box[0]) <= 1.0 or max(prev.box[2], cur.box[2]) >= right:
        return False
    w0, w1 = prev.box[2] - prev.box[0], cur.box[2] - cur.box[0]
    return _changed(w0, w1, max_ratio) and jump > min(w0, w1) / 3


def _changed(a: float, b: float, ratio: float) -> bool:
    small, big = min(a, b), max(a, b)
    return small > 0 and big / small >= ratio


__all__ = [
    "Charge",
    "ChargeLedger",
    "CrossingFacts",
    "FusionState",
    "RiderArbiter",
    "RiderFeed",
    "RiderRow",
    "StopCrossing",
    "identity_switch",
]
