"""Motor-vehicle red-light running (闯红灯): a per-track state machine on frame time.

approaching in a lane → the anchor crosses the stop line (segment between two analysed frames,
interpolated, so 6 fps tracks that jump over the line still count; a hysteresis band and
``confirm_frames`` debounce jitter) → the governing group's colour *at the interpolated crossing
time* is RED (the signal timeline is back-dated, so amber crossings and vehicles already past
the line at red onset are not violations) → the vehicle reaches the entry line / intersection
zone and is displaced → violation, unless its movement is exempt. Stopping on the line never
reaches the entry line and is not a violation. No I/O, no wall clock.

Rider fusion (``riders``, on by default): ``person`` tracks run the same state machine as
two-wheelers (see :mod:`pipeline.rules.rider_fusion`). A person is charged as a two-wheeler only
when its movement is a vehicle's (:func:`pipeline.riders.rides_along` from the stop line to the
entry line, so pedestrians crossing the lanes never are), it was not mostly seen sitting on a
two-wheeler the rule does not charge (a bicycle), and the same crossing was not charged through
its two-wheeler: a rider and the two-wheeler it sat on are linked, the rider waits while a linked
two-wheeler is deciding, and whichever is charged first suppresses the other. A track whose box
changes size and place at once has swapped objects (:func:`identity_switch`): its state restarts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sharpeyes.pipeline.calibration import Approach, IntersectionCalibration, Lane, Movement
from sharpeyes.pipeline.riders import RiderParams
from sharpeyes.pipeline.rules.common import (
    Observation,
    SignalTimeline,
    TrackHistory,
    ViolationFacts,
    dominant_class,
    exempt,
    line_contact,
    red_age_text,
    red_onset,
    violation_event,
)
from sharpeyes.pipeline.rules.geometry import (
    WHEEL_LINE_CLASSES,
    BoxedPolygon,
    OrientedLine,
    PixelPolygon,
    Vec,
    distance,
    heading_change_deg,
    lerp,
    to_pixels,
    unit,
)
from sharpeyes.pipeline.rules.rider_fusion import (
    CrossingFacts,
    FusionState,
    RiderArbiter,
    RiderFeed,
    RiderRow,
    StopCrossing,
    identity_switch,
)
from sharpeyes.pipeline.types import (
    Anchor,
    Event,
    EventType,
    Frame,
    LampColor,
    ObjectKind,
    SignalState,
    Tracks,
    Violation,
)

log = logging.getLogger(__name__)

EVIDENCE_LOOKBACK_S = 3.0
"""How long before the stop-line crossing evidence image 1 may be (frames kept for it)."""
EVIDENCE_MAX_GAP_S = 1.0
SWITCH_BACK_S = 0.5
"""A track whose box jumped to another object (:func:`identity_switch`) and within this time
comes back to where the object it followed would be is the same vehicle: the detector merged it
with a neighbour for a frame or two. Its state is kept aside this long, then finalized as
before; coming back resumes it. (MJPEG copy of hanoi_b: hb04's box merged with a waiting
motorbike for two frames right after hb04 crossed; the restarted state took the merged box
for "behind the line" and charged a second crossing 6 frames late and 40 px away, and hb04's
own crossing was dropped.)"""
"""A track not detected for longer than this after its crossing may come back on another
vehicle (the tracker re-associates a coasting box): image 3 is not taken past such a gap."""


@dataclass(frozen=True, slots=True)
class _ApproachGeo:
    cfg: Approach
    stop: OrientedLine
    entry: OrientedLine | None
    travel: Vec


@dataclass(frozen=True, slots=True)
class _LaneGeo:
    cfg: Lane
    approach: _ApproachGeo
    polygon: BoxedPolygon
    travel: Vec


@dataclass(slots=True)
class _Crossing:
    pre: Observation
    post: Observation
    pts: float
    point: Vec
    colors: dict[Movement, tuple[LampColor, float]] = field(default_factory=dict)
    confirmed: bool = False
    count: int = 0
    entered: Observation | None = None
    entry_note: str | None = None  # lost before the entry line, yet went on (how we know)


@dataclass(slots=True, eq=False)
class _Vehicle:
    hist: TrackHistory
    lane: _LaneGeo | None = None
    last_behind: Observation | None = None
    first_after: Observation | None = None
    crossing: _Crossing | None = None
    done: bool = False
    fusion: FusionState = field(default_factory=FusionState)

    def deciding(self) -> bool:
        """Crossed on red and not decided yet (a linked rider waits for this)."""
        return not self.done and self.crossing is not None and self.crossing.confirmed


def _line(
    rel: tuple[tuple[float, float], tuple[float, float]], size: tuple[int, int], fwd: Vec
) -> OrientedLine:
    a, b = to_pixels(rel, size)
    return OrientedLine.create(a, b, fwd)


def _travel(lane: Lane, size: tuple[int, int]) -> Vec:
    a, b = to_pixels(lane.travel, size)
    return unit((b[0] - a[0], b[1] - a[1]))


def detection_gap(
    obs: Sequence[Observation], since_pts: float, max_gap_s: float
) -> tuple[float, float] | None:
    """The first stretch after ``since_pts`` longer than ``max_gap_s`` in which the track was
    not detected (coasting on its motion model or unseen), as (last detection before, first
    after); None when it was detected throughout."""
    last = since_pts
    for x in obs:
        if x.pts <= since_pts or not x.detected:
            continue
        if x.pts - last > max_gap_s:
            return last, x.pts
        last = x.pts
    return None


class RedLightRule:
    """Red-light running of vehicles on the calibrated approaches of one stream."""

    def __init__(
        self,
        stream_id: str,
        calib: IntersectionCalibration,
        frame_size: tuple[int, int],
        riders: RiderParams | None = RiderParams(),  # noqa: B008 - frozen, shared safely
    ) -> None:
        """``riders=None`` turns rider fusion off (only vehicle tracks are watched)."""
        self.stream_id = stream_id
        self.calib = calib
        self.frame_size = frame_size
        diag = math.hypot(*frame_size)
        self._diag = diag
        self._bottom = float(frame_size[1]) - 2.0
        self._right = float(frame_size[0]) - 2.0
        self._margin = calib.line_margin * diag
        self._min_disp = calib.min_displacement * diag
        self._wheel_lines = calib.anchor is Anchor.BOTTOM_CENTER
        self._kinds = [int(k) for k in calib.object_kinds()]
        self._lanes: list[_LaneGeo] = []
        for ap in calib.approaches:
            travels = [_travel(ln, frame_size) for ln in ap.lanes]
            fwd = unit((sum(t[0] for t in travels), sum(t[1] for t in travels)))
            geo = _ApproachGeo(
                ap,
                _line(ap.stop_line, frame_size, fwd),
                _line(ap.entry_line, frame_size, fwd) if ap.entry_line else None,
                fwd,
            )
            for ln, t in zip(ap.lanes, travels, strict=True):
                poly = BoxedPolygon(to_pixels(ln.polygon, frame_size))
                self._lanes.append(_LaneGeo(ln, geo, poly, t))
        zone = calib.intersection_zone
        self._zone = PixelPolygon(to_pixels(zone, frame_size)) if zone else None
        self._timeline = SignalTimeline()
        self._tracks: dict[int, _Vehicle] = {}
        self._parked: dict[int, _Vehicle] = {}  # a state kept aside after an identity switch
        self._riders = riders
        self._feed = RiderFeed(riders, self._kinds, calib.anchor, frame_size[1]) if riders else None
        motor = int(ObjectKind.MOTOR_VEHICLE)
        self._rider_kind = ObjectKind(motor if motor in self._kinds else self._kinds[0])
        self._arbiter = RiderArbiter(riders or RiderParams(), diag)

    # -- Rule protocol ---------------------------------------------------------------------
    def update(
        self, frame: Frame, tracks: Tracks, signals: Mapping[str, SignalState]
    ) -> list[Event]:
        self._timeline.update({g: s.unfaulted() for g, s in signals.items()})  # fault → UNKNOWN
        sel = tracks[np.isin(tracks.kind, self._kinds)]
        anchors = sel.anchors(self.calib.anchor)
        events: list[Event] = []
        seen: set[int] = set()
        for i in range(len(sel)):
            tid = int(sel.track_id[i])
            seen.add(tid)
            o = Observation.of_row(frame, sel, anchors, i)
            events.extend(self._observe(tid, ObjectKind(int(sel.kind[i])), o, rider=False))
        if self._feed is not None:
            for row in self._feed.rows(frame, tracks):
                seen.add(row.track_id)
                events.extend(self._observe_rider(row))
        events.extend(self._evict(frame.pts, seen))
        events.extend(self._release_parked(frame.pts))
        return events

    def _observe(self, tid: int, kind: ObjectKind, o: Observation, *, rider: bool) -> list[Event]:
        events: list[Event] = []
        st = self._tracks.get(tid)
        parked = self._parked.get(tid)
        if parked is not None and st is not None and self._returns(parked, st, o):
            log.debug("track %s came back to the object it followed at %.2fs", tid, o.pts)
            del self._parked[tid]
            st.fusion.closed = True  # the merged boxes were not a vehicle of their own
            st = self._tracks[tid] = parked
        elif st is not None and st.hist.obs and self._switched(st.hist.last, o):
            log.debug("track %s swapped objects at %.2fs: state restarts", tid, o.pts)
            if parked is not None:  # an earlier switch that did not come back
                ev = self._finalize(self._parked.pop(tid))
                events.extend([ev] if ev is not None else [])
            self._parked[tid] = st
            st = None
        if st is None:
            st = self._tracks[tid] = _Vehicle(TrackHistory(tid, kind))
            st.fusion.rider, st.fusion.deciding = rider, st.deciding
        st.hist.add(o)
        ev = self._step(st, o)
        return [*events, ev] if ev is not None else events

    def _observe_rider(self, row: RiderRow) -> list[Event]:
        events = self._observe(row.track_id, self._rider_kind, row.obs, rider=True)
        fs = self._tracks[row.track_id].fusion
        if row.carrier >= 0 and not row.carrier_in_scope:
            fs.out_of_scope += 1
        elif row.carrier >= 0 and (carrier := self._tracks.get(row.carrier)) is not None:
            fs.carried += 1
            fs.link(carrier.fusion)
        return events

    def _returns(self, old: _Vehicle, cur: _Vehicle, o: Observation) -> bool:
        """Whether ``o`` is the object ``old`` followed before the switch (see
        :data:`SWITCH_BACK_S`): soon after it, no switch from ``old``'s last box, and nearer
        to where ``old``'s motion would have taken it than to the box the track jumped to."""
        last = old.hist.last
        if cur.fusion.charged or o.pts - last.pts > SWITCH_BACK_S:
            return False
        if self._switched(last, o):
            return False
        expect = last.anchor
        if len(old.hist.obs) >= 2:
            prev = old.hist.obs[-2]
            if last.pts > prev.pts:
                k = (o.pts - last.pts) / (last.pts - prev.pts)
                expect = (
                    last.anchor[0] + k * (last.anchor[0] - prev.anchor[0]),
                    last.anchor[1] + k * (last.anchor[1] - prev.anchor[1]),
                )
        return distance(expect, o.anchor) < distance(cur.hist.last.anchor, o.anchor)

    def _switched(self, prev: Observation, o: Observation) -> bool:
        return identity_switch(prev, o, self._bottom, right=self._right)

    def _release_parked(self, pts: float) -> list[Event]:
        """Finalize the states kept aside after a switch that did not come back in time."""
        late = [t for t, st in self._parked.items() if pts - st.hist.last.pts > SWITCH_BACK_S]
        return [ev for t in late if (ev := self._finalize(self._parked.pop(t))) is not None]

    def end_of_stream(self) -> list[Event]:
        states = [*self._parked.values(), *self._tracks.values()]
        events = [ev for st in states if (ev := self._finalize(st)) is not None]
        self._parked.clear()
        self._tracks.clear()
        self._timeline = SignalTimeline()
        self._arbiter.clear()
        return events

    @property
    def live_tracks(self) -> int:
        return len(self._tracks)

    # -- state machine ---------------------------------------------------------------------
    def _step(self, st: _Vehicle, o: Observation) -> Event | None:
        if st.done:
            return None
        if st.crossing is None:
            self._approach(st, o)
            return None
        return self._after_crossing(st, st.crossing, o)

    def _lane_of(self, p: Vec) -> _LaneGeo | None:
        """The lane whose polygon ``p`` lies deepest in (within ``line_margin`` outside counts),
        behind its stop line. Deepest, not the first listed: lanes are listed left to right, and
        the first within the margin of its edge took every vehicle on a boundary — on the
        mirrored hanoi_b the same track came out in the other lane (benchmarks/metamorphic)."""
        best: _LaneGeo | None = None
        best_depth = -self._margin
        for lane in self._lanes:
            depth = lane.polygon.depth(p, self._margin)
            if depth is None or depth < best_depth or lane.approach.stop.signed_distance(p) >= 0:
                continue
            if best is None or depth > best_depth:
                best, best_depth = lane, depth
        return best

    def _approach(self, st: _Vehicle, o: Observation) -> None:
        lane = self._lane_of(o.anchor)
        if lane is not None:
            st.lane = lane
        if st.lane is None:
            return
        stop = st.lane.approach.stop
        d = stop.signed_distance(self._contact(stop, o))
        if d < 0:
            st.last_behind, st.first_after = o, None
            return
        if st.first_after is None:
            st.first_after = o
        if d < self._margin or st.last_behind is None:
            return
        pre, post = st.last_behind, st.first_after
        t = stop.crossing(self._contact(stop, pre), self._contact(stop, post))
        if t is None:
            st.done = True  # passed beside this stop line: not an approach we watch
            return
        pts = pre.pts + t * (post.pts - pre.pts)
        st.crossing = _Crossing(pre, post, pts, lerp(pre.anchor, post.anchor, t))
        if not st.fusion.rider:
            width = post.box[2] - post.box[0]
            ap = st.lane.approach.cfg.id
            gap = post.pts - pre.pts
            st.fusion.crossing = StopCrossing(ap, pts, st.crossing.point, width, gap)
        self._count_past(st, st.crossing, o)

    def _count_past(self, st: _Vehicle, c: _Crossing, o: Observation) -> None:
        c.count += 1
        if c.confirmed or c.count < self.calib.confirm_frames:
            return
        assert st.lane is not None
        if any(self._timeline.pending_at(g, c.pts) for g in st.lane.cfg.movements.values()):
            return  # the head went dark before the crossing: wait until that is resolved
        c.confirmed = True
        for mv, group in st.lane.cfg.movements.items():
            c.colors[mv] = self._timeline.color_at(group, c.pts)
        if not any(col is LampColor.RED for col, _ in c.colors.values()):
            st.done = True
            log.debug("track %s crossed on %s", st.hist.track_id, c.colors)

    def _after_crossing(self, st: _Vehicle, c: _Crossing, o: Observation) -> Event | None:
        assert st.lane is not None
        stop = st.lane.approach.stop
        if stop.signed_distance(self._contact(stop, o)) < -self._margin:
            st.crossing, st.last_behind, st.first_after = None, o, None  # jitter: back behind
            st.fusion.crossing = None
            return None
        self._count_past(st, c, o)
        if st.done or not c.confirmed:
            return None
        if c.entered is None and self._entered_obs(st.lane.approach, o):
            c.entered = o
        if c.entered is None or distance(c.post.anchor, o.anchor) < self._min_disp:
            return None
        movement, certain = self._movement(st.lane, c, o)
        if not certain and distance(c.point, o.anchor) < 2 * self._min_disp:
            return None
        return self._decide(st, c, o, movement, final=False)

    def _entered_obs(self, ap: _ApproachGeo, o: Observation) -> bool:
        """Past the entry line: the anchor, or a rider's fixed-share road point."""
        alt = o.alt_anchor
        return self._entered(ap, o.anchor) or (alt is not None and self._entered(ap, alt))

    def _entered(self, ap: _ApproachGeo, p: Vec) -> bool:
        if ap.entry is not None and ap.entry.signed_distance(p) >= self._margin:
            return True
        return self._zone is not None and self._zone.contains(p)

    def _movement(self, lane: _LaneGeo, c: _Crossing, o: Observation) -> tuple[Movement, bool]:
        """Movement from the heading since the crossing, and whether the verdict depends on it."""
        heading = (o.anchor[0] - c.point[0], o.anchor[1] - c.point[1])
        ang = heading_change_deg(lane.travel, unit(heading))
        turn = self.calib.turn_angle_deg
        if abs(ang) > 150.0:
            mv = Movement.U_TURN
        elif ang >= turn:
            mv = Movement.RIGHT
        elif ang <= -turn:
            mv = Movement.LEFT
        else:
            mv = Movement.STRAIGHT
        allowed = list(lane.cfg.movements)
        if mv not in allowed:
            mv = Movement.STRAIGHT if Movement.STRAIGHT in allowed else allowed[0]
        verdicts = {self._is_violation(lane, c, m, o.wall_ms) for m in allowed}
        return mv, abs(ang) >= turn or len(verdicts) == 1

    def _is_violation(self, lane: _LaneGeo, c: _Crossing, mv: Movement, wall_ms: int) -> bool:
        if c.colors.get(mv, (LampColor.UNKNOWN, 0.0))[0] is not LampColor.RED:
            return False
        return not self._exempt(lane.cfg, mv, wall_ms)

    def _exempt(self, lane: Lane, mv: Movement, wall_ms: int) -> bool:
        return exempt(self.calib.exemptions, lane.id, mv, wall_ms)

    def _decide(
        self, st: _Vehicle, c: _Crossing, o: Observation, mv: Movement, *, final: bool
    ) -> Event | None:
        assert st.lane is not None
        if st.fusion.rider and not final and self._arbiter.wait(st.fusion):
            return None  # its two-wheeler is deciding the same crossing: wait for it
        st.done = True
        carrier = self._carrier_time(st, c) if st.fusion.rider else None
        facts = CrossingFacts(
            c.pts, c.point, c.post.box[2] - c.post.box[0], c.pre, c.entered or o, st.lane.travel
        )
        if not self._is_violation(st.lane, c, mv, o.wall_ms):
            return None
        tid, n, two_wheeler = st.hist.track_id, len(st.hist.obs), self._two_wheeler(st)
        if not self._arbiter.chargeable(st.fusion, facts, two_wheeler, tid, n):
            return None
        group = st.lane.cfg.movements[mv]
        _, red_since = c.colors[mv]
        stages, notes = self._evidence_stages(st, c, o, group)
        ap = st.lane.approach.cfg
        v = Violation(
            code=self.calib.violation_code,
            signal_group=group,
            signal_color=LampColor.RED,
            seconds_since_red=round(c.pts - red_since, 3),
            lane_no=st.lane.cfg.number,
            movement=mv.value,
            approach=ap.id,
            crossed_stop_line_pts=round(c.pts, 4),
            evidence_pts=stages,
        )
        who = " (rider; two-wheeler not detected)" if st.fusion.rider else ""
        if carrier is not None:
            who = " (rider; crossing timed by the two-wheeler it rode)"
        onset = red_onset(self._timeline, group, c.pts)
        detail = (
            f"lane {st.lane.cfg.number} {mv.value}{who}: crossed the stop line at {c.pts:.2f}s, "
            f"{red_age_text(c.pts - red_since, onset)}"
        )
        rider = (("detected_as", "person"),) if st.fusion.rider else ()
        if carrier is not None:
            rider = (*rider, ("crossing_from", carrier))
        vf = ViolationFacts(
            EventType.RED_LIGHT_VIOLATION,
            self.stream_id,
            st.hist,
            self.frame_size,
            v,
            c.post,
            o,
            ap.direction or None,
            detail,
            (("lane_id", st.lane.cfg.id), *rider, *onset, *notes),
        )
        self._arbiter.charge(st.fusion, facts, two_wheeler)
        return violation_event(vf)

    def _carrier_time(self, st: _Vehicle, c: _Crossing) -> str | None:
        """A rider's crossing re-timed by the two-wheeler it sat on, when that two-wheeler's
        own box crossed the same stop line (:meth:`RiderArbiter.carrier_crossing`): its wheels'
        contact is measured where the rider's road point is estimated. The colours are read
        again at that time and the first observation of the rider at or after it becomes
        image 2. Returns what was done (an event ``extra`` value), None when nothing was."""
        assert st.lane is not None
        width = c.post.box[2] - c.post.box[0]
        ap = st.lane.approach.cfg.id
        got = self._arbiter.carrier_crossing(st.fusion, ap, c.pts, c.point, width)
        if got is None:
            return None
        obs = list(st.hist.obs)
        c.post = next((x for x in obs if x.pts >= got.pts), c.post)
        c.pre = next((x for x in reversed(obs) if x.pts < got.pts), c.pre)
        c.pts, c.point = got.pts, got.point
        for mv, group in st.lane.cfg.movements.items():
            c.colors[mv] = self._timeline.color_at(group, got.pts)
        return "two-wheeler"

    def _contact(self, stop: OrientedLine, o: Observation) -> Vec:
        """The point whose side of ``stop`` says where the vehicle is: a car's (bus's, truck's)
        wheel line middle (:meth:`OrientedLine.wheel_point`), else the anchor."""
        return line_contact(stop, o, self._wheel_lines)

    # -- evidence stages -----------------------------------------------------------------------
    def _box_distance(self, st: _Vehicle, stop: OrientedLine, o: Observation) -> float:
        """Signed distance to the stop line of the box as the tracker drew it: a car's wheel
        line middle, else the bottom centre.

        A rider's observation has its box extended down to the road; the box drawn on evidence
        is the person's own, whose bottom the observation keeps (``own_y2``).
        """
        x1, _, x2, y2 = o.box
        if o.own_y2 is not None:
            y2 = o.own_y2
        elif self._wheel_lines and o.class_id in WHEEL_LINE_CLASSES:
            return stop.signed_distance(stop.wheel_point(o.box))
        return stop.signed_distance(((x1 + x2) / 2.0, y2))

    def _evidence_stages(
        self, st: _Vehicle, c: _Crossing, o: Observation, group: str
    ) -> tuple[tuple[float, float, float], tuple[tuple[str, str], ...]]:
        """(image 1, image 2, image 3) pts chosen from the track's own observations, and notes
        (``evidence_note_<i>``) for an image that cannot show what it should.

        1: before the stop line (anchor and drawn box) while the group is red, within
        ``EVIDENCE_LOOKBACK_S`` of the crossing, preferring one displaced ``min_displacement``
        from image 2; 2: the first observation over the line; 3: the first observation past
        the entry line (or in the zone), displaced from image 2.
        """
        assert st.lane is not None
        stop = st.lane.approach.stop
        obs = list(st.hist.obs)
        notes: list[tuple[str, str]] = []
        lo = c.pts - EVIDENCE_LOOKBACK_S
        before = [
            x
            for x in obs
            if lo <= x.pts < c.pts
            and stop.signed_distance(self._contact(stop, x)) < -self._margin
            and self._box_distance(st, stop, x) < -self._margin
        ]
        red = [x for x in before if self._timeline.color_at(group, x.pts)[0] is LampColor.RED]
        far = [x for x in red if distance(x.anchor, c.post.anchor) >= self._min_disp]
        if far:
            ev1 = far[-1]
        elif red:
            ev1 = red[0]
        elif before:
            ev1 = before[-1]
            notes.append(("evidence_note_1", "no observation before the stop line while red"))
        else:
            ev1 = c.pre
            notes.append(
                ("evidence_note_1", "the track was not observed clearly before the stop line")
            )
        end = c.entered or o
        ev3 = next(
            (
                x
                for x in obs
                if x.pts >= end.pts and distance(c.post.anchor, x.anchor) >= self._min_disp
            ),
            o,
        )
        gap = detection_gap(obs, c.post.pts, EVIDENCE_MAX_GAP_S)
        if gap is not None and ev3.pts >= gap[1]:
            lost = f"the track was not detected for {gap[1] - gap[0]:.1f} s after the crossing"
            moved = [
                x
                for x in obs
                if c.post.pts < x.pts <= gap[0]
                and x.detected
                and distance(c.post.anchor, x.anchor) >= self._min_disp
            ]
            if moved:  # the same vehicle for sure, though maybe not yet through the junction
                ev3 = moved[-1]
                note = f"{lost}: image 3 is its last view before that (a later one may be another)"
            else:
                note = f"{lost}: check that image 3 shows the same vehicle"
            notes.append(("evidence_note_3", note))
        elif c.entry_note is not None:
            notes.append(("evidence_note_3", c.entry_note))
        elif c.entered is None:
            notes.append(("evidence_note_3", "the track was not observed past the entry line"))
        return (ev1.pts, c.post.pts, ev3.pts), tuple(notes)

    def oldest_needed_pts(self) -> float | None:
        """The earliest pts of a frame a pending track may still need for evidence (None: none).

        Image 1 is at most ``EVIDENCE_LOOKBACK_S`` before the crossing, which is never before
        a track's latest observation behind the line; decided tracks need nothing more.
        """
        needed: float | None = None
        for st in [*self._tracks.values(), *self._parked.values()]:
            if st.done or not st.hist.obs:
                continue
            if st.crossing is not None:
                t = st.crossing.pts - EVIDENCE_LOOKBACK_S
            else:  # a crossing still to come is after the latest observation behind the line
                t = (st.last_behind or st.hist.last).pts - EVIDENCE_LOOKBACK_S
            t = max(t, st.hist.obs[0].pts)
            needed = t if needed is None else min(needed, t)
        return needed

    def _two_wheeler(self, st: _Vehicle) -> bool:
        if self._riders is None:
            return False
        if st.fusion.rider or st.hist.kind is ObjectKind.NON_MOTOR:
            return True
        return dominant_class(list(st.hist.obs)) in self._riders.two_wheeler_classes

    def _finalize(self, st: _Vehicle) -> Event | None:
        st.fusion.closed = True
        c = st.crossing
        if st.done or c is None or not c.confirmed or st.lane is None:
            return None
        o = st.hist.last
        if c.entered is None:
            c.entry_note = self._entered_unseen(st, c)
            if c.entry_note is None:
                return None
        movement, _ = self._movement(st.lane, c, o)
        return self._decide(st, c, o, movement, final=True)

    def _entered_unseen(self, st: _Vehicle, c: _Crossing) -> str | None:
        """For a track lost after crossing on red but before the entry line: why it still
        counts as having gone into the intersection (the evidence note for image 3), or None.

        Either the two-wheeler a rider sat on (a linked track) was seen past the entry line
        after the crossing — one physical vehicle, two tracks — or the track was still moving
        on and its own motion carries it over the line (:meth:`_carried_over_entry`).
        """
        assert st.lane is not None
        for other in self._tracks.values():
            if other is st or not any(x is other.fusion for x in st.fusion.links):
                continue
            seen = next(
                (
                    x
                    for x in other.hist.obs
                    if x.pts > c.pts and self._entered_obs(st.lane.approach, x)
                ),
                None,
            )
            if seen is not None:
                who = "two-wheeler it rode" if st.fusion.rider else "rider on it"
                return (
                    f"the track was lost before the entry line; the {who} (track "
                    f"{other.hist.track_id}) was seen past it at {seen.pts:.2f} s; image 3 is "
                    "this track's last sighting — check the clip"
                )
        if self._carried_over_entry(st, c):
            return (
                "the track was lost before the entry line while moving on towards it; image 3 "
                "is its last sighting — check the clip"
            )
        return None

    def _carried_over_entry(self, st: _Vehicle, c: _Crossing) -> bool:
        """Whether a track lost between the stop line and the entry line was still moving on:
        its forward speed over its last half second is at least half its mean speed since the
        crossing (it was not slowing to a stop on the crosswalk), and that speed carries it
        over the entry line within ``entry_extrapolation_s`` (occlusion in the crosswalk, a
        detector that loses a small two-wheeler)."""
        horizon = self.calib.entry_extrapolation_s
        assert st.lane is not None
        if horizon <= 0.0:
            return False
        last = st.hist.last
        recent = [x for x in st.hist.obs if x.pts >= max(c.post.pts, last.pts - 0.5)]
        if len(recent) < 2 or last.pts - recent[0].pts <= 0.0 or last.pts <= c.pts:
            return False
        travel = st.lane.travel

        def forward(a: Vec, b: Vec, dt: float) -> float:
            return ((b[0] - a[0]) * travel[0] + (b[1] - a[1]) * travel[1]) / dt

        dt = last.pts - recent[0].pts

        def carries(first: Vec, end: Vec) -> bool:
            speed = forward(first, end, dt)
            mean = forward(c.point, end, last.pts - c.pts)
            if speed <= 0.0 or speed < 0.5 * mean:
                return False
            ahead = (end[0] + travel[0] * speed * horizon, end[1] + travel[1] * speed * horizon)
            assert st.lane is not None
            return self._entered(st.lane.approach, ahead)

        if carries(recent[0].anchor, last.anchor):
            return True
        a0, a1 = recent[0].alt_anchor, last.alt_anchor  # a rider's fixed-share road point
        return a0 is not None and a1 is not None and carries(a0, a1)

    def _evict(self, pts: float, seen: set[int]) -> list[Event]:
        stale = [
            tid
            for tid, st in self._tracks.items()
            if tid not in seen and pts - st.hist.last.pts > self.calib.stale_track_s
        ]
        events = []
        for tid in stale:
            ev = self._finalize(self._tracks.pop(tid))
            if ev is not None:
                events.append(ev)
        return events
