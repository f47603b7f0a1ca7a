"""Not yielding to pedestrians at a crosswalk (机动车不礼让斑马线行人).

A vehicle that passes through a crosswalk — its anchor enters the zebra polygon and leaves it
again, moving at least ``min_speed`` — while a pedestrian is on the zebra in conflict with it:
in the same half of the crossing as the vehicle (halves split at the middle of the crosswalk's
axis), or within ``conflict_distance`` of the vehicle along the axis. Watched on crosswalks
without a pedestrian signal (``unsignalised``) and on the others only while their pedestrian
group is green (a pedestrian crossing on red is the pedestrian rule's business). A conflict
must be seen on ``confirm_frames`` analysed frames. When the pedestrian head reads dark at the
conflict (:meth:`SignalTimeline.pending_at`: the green is only held), the charge waits until
that is resolved: the green back, it is charged; a fault, it is not. A vehicle that waits
before the zebra, or stands on it (pushed over by a queue) while the pedestrian passes, is not
charged; persons riding a two-wheeler (:func:`pipeline.riders.suppress_riders`) are not
pedestrians, nor is a person that travels with the traffic — over the last ``_SPEED_BASE_S`` it
moved across the crosswalk's axis (along the road) more than along it, at the vehicles'
``min_speed`` or faster: a rider whose two-wheeler the detector missed (a motorbike seen from
behind is mostly hidden by its rider), as on the real hanoi_b clip. Charged once per track; an
exempt class never is.

Evidence stages: 1 the vehicle before the zebra, 2 the vehicle on it with the pedestrian in
conflict (the frame with the pedestrian nearest along the axis), 3 the vehicle past it.

Default code ``1357`` — 驾驶机动车行经人行横道，不按规定减速、停车、避让行人的 (Road Traffic
Safety Law art. 47, art. 90), as listed in the Ministry's 交通违法行为代码 table; read from public
copies of the table, not verified against an official text offline. Set
``yield_to_pedestrians.code`` from the deploying province's table.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from sharpeyes.pipeline.calibration import IntersectionCalibration, YieldConfig
from sharpeyes.pipeline.riders import RiderParams, suppress_riders
from sharpeyes.pipeline.rules._suite import BlockRule, step_open
from sharpeyes.pipeline.rules.charge import (
    Raw,
    anchor_rows,
    frame_rows,
    needed,
    observe,
    points_text,
    region_of,
)
from sharpeyes.pipeline.rules.common import Observation, SignalTimeline, TrackHistory
from sharpeyes.pipeline.rules.geometry import (
    BoxedPolygon,
    Vec,
    distance,
    to_pixels,
    unit,
)
from sharpeyes.pipeline.types import Event, Frame, LampColor, ObjectKind, SignalState, Tracks

log = logging.getLogger(__name__)

NAME = "yield_pedestrian"
_PERSON = (int(ObjectKind.PERSON),)
_SPEED_BASE_S = 0.5
_APPROACH = 0.10  # vehicles this far (fraction of the diagonal) around a zebra are followed


@dataclass(frozen=True, slots=True)
class _Zebra:
    id: str
    group: str
    unsignalised: bool
    polygon: BoxedPolygon
    origin: Vec
    axis: Vec
    length: float
    points_px: str

    def position(self, p: Vec) -> float:
        return (p[0] - self.origin[0]) * self.axis[0] + (p[1] - self.origin[1]) * self.axis[1]


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A charge decided but for the colour: the pedestrian head read dark at the conflict."""

    zebra: _Zebra
    before: Observation
    worst: Observation
    end: Observation
    track: TrackHistory
    walker: int
    worst_gap: float
    conflicts: int


@dataclass(frozen=True, slots=True)
class _Walker:
    track_id: int
    zebra: _Zebra
    pos: float


@dataclass(slots=True, eq=False)
class _Car:
    hist: TrackHistory  # from the last observation before a zebra on
    last: Raw | None = None
    before: Raw | None = None  # the latest row off the zebras
    entry: Observation | None = None  # ``before`` once the vehicle drove onto a zebra
    zebra: _Zebra | None = None
    conflicts: int = 0
    worst: Observation | None = None
    worst_gap: float = math.inf
    walker: int = -1
    done: bool = False


_TWO_WHEELER_CLASSES = RiderParams().two_wheeler_classes
_NON_MOTOR, _MOTOR = int(ObjectKind.NON_MOTOR), int(ObjectKind.MOTOR_VEHICLE)


def _any_two_wheeler(tracks: Tracks) -> bool:
    """Whether a two-wheeler (as :func:`pipeline.riders.two_wheeler_mask` counts them) is in
    the frame — a plain loop: a handful of rows costs less than the numpy calls."""
    classes: list[int] = tracks.class_id.tolist()
    return any(
        k == _NON_MOTOR or (k == _MOTOR and classes[i] in _TWO_WHEELER_CLASSES)
        for i, k in enumerate(tracks.kind.tolist())
    )


class _PersonMotion:
    """Recent anchors of the persons near the zebras: the oldest kept is the latest one at least
    ``_SPEED_BASE_S`` old, so the displacement over that base is one subtraction."""

    __slots__ = ("_seen", "_stale_s")

    def __init__(self, stale_s: float) -> None:
        self._seen: dict[int, deque[tuple[float, Vec]]] = {}
        self._stale_s = stale_s

    def update(self, people: list[tuple[int, Vec]], pts: float) -> None:
        for tid, p in people:
            q = self._seen.setdefault(tid, deque())
            q.append((pts, p))
            while len(q) > 1 and pts - q[1][0] >= _SPEED_BASE_S:
                q.popleft()
        for tid in [t for t, q in self._seen.items() if pts - q[-1][0] > self._stale_s]:
            del self._seen[tid]

    def with_traffic(self, tid: int, axis: Vec, min_step: float) -> bool:
        """Whether person ``tid`` moves across ``axis`` (along the road) more than along it, at
        ``min_step`` pixels per second or faster."""
        q = self._seen.get(tid)
        if q is None or len(q) < 2:
            return False
        (t0, a), (t1, b) = q[0], q[-1]
        dx, dy = b[0] - a[0], b[1] - a[1]
        along = abs(dx * axis[0] + dy * axis[1])
        across = abs(dx * axis[1] - dy * axis[0])
        return t1 > t0 and across > along and math.hypot(dx, dy) / (t1 - t0) >= min_step

    def clear(self) -> None:
        self._seen.clear()


class _FrameWalkers:
    """This frame's walkers, found only when a vehicle moves on a zebra; riders (persons
    sitting on a two-wheeler, :func:`pipeline.riders.suppress_riders` — a car passing in front
    is no carrier) are sorted out only when a walker is in conflict."""

    __slots__ = ("_all", "_peds", "_people", "_pts", "_rule", "_tracks")

    def __init__(
        self,
        rule: YieldToPedestriansRule,
        tracks: Tracks,
        people: list[tuple[int, Vec]],
        pts: float,
    ) -> None:
        self._rule, self._tracks, self._people, self._pts = rule, tracks, people, pts
        self._all: list[_Walker] | None = None
        self._peds: list[_Walker] | None = None

    def on_zebra(self) -> list[_Walker]:
        if self._all is None:
            self._all = self._rule.walkers(self._people, self._pts)
        return self._all

    def pedestrians(self) -> list[_Walker]:
        if self._peds is None:
            t = self._tracks
            riders: set[int] = set()
            if _any_two_wheeler(t):  # nobody rides without a two-wheeler in the frame
                riders = set(t.track_id[suppress_riders(t)].tolist())
            self._peds = [
                w
                for w in self.on_zebra()
                if w.track_id not in riders and not self._rule.with_traffic(w)
            ]
        return self._peds


class YieldToPedestriansRule(BlockRule[_Car, YieldConfig]):
    """Vehicles passing pedestrians on the calibrated crosswalks of one stream."""

    name = NAME

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        cfg = needed(calib.yield_to_pedestrians, "YieldToPedestriansRule", "yield_to_pedestrians")
        super().__init__(
            stream_id, calib, frame_size, cfg, lambda tid, kind: _Car(TrackHistory(tid, kind))
        )
        diag = math.hypot(*frame_size)
        self._conflict = self.cfg.conflict_distance * diag
        self._min_step = self.cfg.min_speed * diag
        watched = set(self.cfg.crosswalks)
        self._zebras: list[_Zebra] = []
        shapes = []
        for cw in calib.crosswalks:
            if watched and cw.id not in watched:
                continue
            a, b = to_pixels(cw.axis, frame_size)
            shapes.append(to_pixels(cw.polygon, frame_size))
            poly = BoxedPolygon(shapes[-1])
            axis, length = unit((b[0] - a[0], b[1] - a[1])), distance(a, b)
            unsig = cw.id in self.cfg.unsignalised
            text = points_text(shapes[-1])
            self._zebras.append(_Zebra(cw.id, cw.signal_group, unsig, poly, a, axis, length, text))
        self._near = region_of(shapes, _APPROACH * diag)
        self._on = region_of(shapes, 1.0)
        self._timeline = SignalTimeline()
        self._motion = _PersonMotion(calib.stale_track_s)
        self._waiting: list[_Waiting] = []

    def update(
        self, frame: Frame, tracks: Tracks, signals: Mapping[str, SignalState]
    ) -> list[Event]:
        self._timeline.update({g: s.unfaulted() for g, s in signals.items()})
        events: list[Event] = self._resolve(final=False)
        people = anchor_rows(tracks, _PERSON, self.calib.anchor, self._on) if len(tracks) else []
        self._motion.update(people, frame.pts)
        walkers = _FrameWalkers(self, tracks, people, frame.pts)  # used when a car is on a zebra
        rows, _ = frame_rows(frame, tracks, self._kinds, self.calib.anchor, region=self._near)
        return step_open(
            self._tracks,
            rows,
            frame.pts,
            lambda _t, _k, st, raw: self._step(st, raw, walkers),
            events,
        )

    def end_of_stream(self) -> list[Event]:
        events = self._resolve(final=True)
        self._tracks.drain()
        self._timeline = SignalTimeline()
        self._motion.clear()
        return events

    def _zebra_of(self, p: Vec) -> _Zebra | None:
        return next((z for z in self._zebras if z.polygon.contains(p)), None)

    def _watched(self, z: _Zebra, pts: float) -> bool:
        return z.unsignalised or self._timeline.color_at(z.group, pts)[0] is LampColor.GREEN

    def with_traffic(self, w: _Walker) -> bool:
        """Whether walker ``w`` travels with the traffic (a rider, not a pedestrian)."""
        return self._motion.with_traffic(w.track_id, w.zebra.axis, self._min_step)

    def walkers(self, people: list[tuple[int, Vec]], pts: float) -> list[_Walker]:
        """Persons on a watched zebra this frame (riders included: see :class:`_FrameWalkers`)."""
        out = []
        for tid, p in people:
            z = self._zebra_of(p)
            if z is not None and self._watched(z, pts):
                out.append(_Walker(tid, z, z.position(p)))
        return out

    def _gap(self, z: _Zebra, pos: float, walkers: list[_Walker]) -> tuple[float, int] | None:
        """The nearest conflicting walker on ``z`` (gap along the axis, track id), if any."""
        half = pos >= z.length / 2.0
        best: tuple[float, int] | None = None
        for w in walkers:
            if w.zebra is not z:
                continue
            gap = abs(w.pos - pos)
            if (gap <= self._conflict or (w.pos >= z.length / 2.0) == half) and (
                best is None or gap < best[0]
            ):
                best = (gap, w.track_id)
        return best

    def _step(self, st: _Car, raw: Raw, walkers: _FrameWalkers) -> Event | None:
        st.last = raw
        z = self._zebra_of(raw[2])
        if z is None:
            if st.zebra is None:
                st.before = raw
                return None
            return self._left(st, observe(raw))
        if st.before is None:
            return None  # first seen on the zebra: its approach was not observed
        if st.zebra is None:
            st.entry = observe(st.before)
            st.hist.add(st.entry)
        st.zebra = z
        o = observe(raw)
        st.hist.add(o)
        pos = z.position(o.anchor)
        moving = self._moving(st, o)
        hit = self._gap(z, pos, walkers.on_zebra()) if moving else None
        if hit is not None:  # a conflict: make sure it is with a pedestrian, not a rider
            hit = self._gap(z, pos, walkers.pedestrians())
        if hit is not None:
            st.conflicts += 1
            if hit[0] < st.worst_gap:
                st.worst, st.worst_gap, st.walker = o, hit[0], hit[1]
        return None

    def _moving(self, st: _Car, o: Observation) -> bool:
        """Whether the vehicle moves at ``min_speed``, over the last ``_SPEED_BASE_S`` at least
        (frame to frame, box jitter at high frame rates looks like motion)."""
        for prev in reversed(st.hist.obs):
            if o.pts - prev.pts >= _SPEED_BASE_S:
                return distance(prev.anchor, o.anchor) / (o.pts - prev.pts) >= self._min_step
        first = st.hist.obs[0]  # seen for less than the baseline: its approach is the baseline
        dt = o.pts - first.pts
        return dt > 0 and distance(first.anchor, o.anchor) / dt >= self._min_step

    def _left(self, st: _Car, o: Observation) -> Event | None:
        """The vehicle left the zebra: charge it when it passed a pedestrian in conflict."""
        z, before, worst = st.zebra, st.entry, st.worst
        st.zebra = None
        st.hist.add(o)
        if z is None or before is None or worst is None:
            st.before = st.last
            return None
        if st.conflicts < self.calib.confirm_frames:
            st.before, st.conflicts, st.worst, st.worst_gap = st.last, 0, None, math.inf
            return None
        st.done = True
        if self.exempt(st.hist):
            return None
        waiting = _Waiting(z, before, worst, o, st.hist, st.walker, st.worst_gap, st.conflicts)
        if not z.unsignalised and self._timeline.pending_at(z.group, worst.pts):
            self._waiting.append(waiting)  # the head read dark: wait for what it showed
            return None
        return self._charge(waiting)

    def _resolve(self, *, final: bool) -> list[Event]:
        """Charges whose pedestrian head has been resolved since: charged if it showed green.
        ``final`` (end of stream): those still unresolved are dropped, never guessed."""
        out, keep = [], []
        for w in self._waiting:
            if self._timeline.pending_at(w.zebra.group, w.worst.pts):
                if not final:
                    keep.append(w)
                    continue
                why = "still unresolved at the end of the stream"
            elif self._watched(w.zebra, w.worst.pts):
                out.append(self._charge(w))
                continue
            else:
                why = "it did not show green (a fault or another colour)"
            log.info(
                "track %s not charged on crosswalk %s at %.2fs: the head read dark there and %s",
                w.track.track_id,
                w.zebra.id,
                w.worst.pts,
                why,
            )
        self._waiting = keep
        return out

    def _charge(self, w: _Waiting) -> Event:
        z, before, worst, o = w.zebra, w.before, w.worst, w.end
        return self.charge(
            w.track,
            at_pts=worst.pts,
            best=worst,
            end=o,
            stages=(before.pts, worst.pts, o.pts),
            detail=f"passed pedestrian track {w.walker} on crosswalk {z.id} "
            f"at {worst.pts:.2f}s "
            f"({w.worst_gap:.0f} px apart along the crossing, {w.conflicts} frames)",
            signal_group=z.group,
            signal_color=self._timeline.color_at(z.group, worst.pts)[0],
            extra=(
                ("crosswalk_id", z.id),
                ("pedestrian_track_id", str(w.walker)),
                ("crosswalk_px", z.points_px),
            ),
        )
