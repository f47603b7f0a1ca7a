"""The movement a vehicle made at the intersection, per track, for the movement rules
(不按导向车道行驶, 违反禁令标志). Signal-independent; pure; frame time only.

A track is followed in the approach lanes; its stop-line crossing is found as the red-light
rule finds it (segment between two analysed frames, hysteresis ``line_margin``,
``confirm_frames`` past the line, back behind the line = jitter, start again; a car by the middle
of its wheel line, :func:`~sharpeyes.pipeline.rules.common.line_contact`). The lanes it may
have come from are every lane whose polygon holds its last position behind the line within a
lateral tolerance (a vehicle straddling two lanes gets both, and a rule charges only when the
movement is wrong for all of them).

The movement is the heading from the crossing point to the vehicle's latest position, relative
to the lane's travel direction, and is decided only when it is certain:

* the vehicle must have entered the intersection (entry line or zone) and moved
  ``2 × min_displacement`` from the crossing point — a vehicle pushed over the line by a queue,
  or stopped on the crosswalk, never gets a movement;
* the angle must clear ``turn_angle_deg`` by ``margin_deg`` either way (left/right beyond it,
  straight within it, U-turn beyond 150°, or when the latest ``2 × min_displacement`` of motion
  points back against the lane's travel); in between it is uncertain and never decided;
* it is decided when the track ends (lost for ``stale_track_s``, or end of stream) or early once
  the vehicle is ``_FAR`` of the frame diagonal from the crossing point — a left turn seen
  half-way is not taken for straight on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sharpeyes.pipeline.calibration import Approach, IntersectionCalibration, Lane, Movement
from sharpeyes.pipeline.rules.charge import (
    Charge,
    Raw,
    TrackTable,
    charge_event,
    frame_rows,
    observe,
    points_text,
    region_of,
    vector_text,
)
from sharpeyes.pipeline.rules.common import Observation, TrackHistory, line_contact
from sharpeyes.pipeline.rules.geometry import (
    BoxedPolygon,
    OrientedLine,
    Vec,
    distance,
    heading_change_deg,
    lerp,
    to_pixels,
    unit,
)
from sharpeyes.pipeline.types import Anchor, Event, Frame, SignalState, Tracks

_FAR = 0.30  # fraction of the diagonal from the crossing point that settles a movement early
_LATERAL = 0.012  # lane-membership tolerance (fraction of the diagonal) for the candidate lanes
_U_TURN_DEG = 150.0


@dataclass(frozen=True, slots=True)
class LaneGeo:
    cfg: Lane
    approach: Approach
    stop: OrientedLine
    entry: OrientedLine | None
    polygon: BoxedPolygon
    points: tuple[Vec, ...]
    travel: Vec


@dataclass(frozen=True, slots=True)
class MovementDecision:
    """A track's settled heading change with the facts a rule needs to charge it; each rule
    reads the movement with its own margin (:meth:`movement`)."""

    hist: TrackHistory
    lanes: tuple[LaneGeo, ...]  # the lane(s) it came from (first: the most likely)
    angle_deg: float  # ±180 when the latest motion points back (a U-turn)
    cross_pts: float
    pre: Observation  # last behind the stop line
    post: Observation  # first past the stop line
    entered: Observation  # first in the intersection
    end: Observation  # the observation the movement was read at

    def movement(self, turn_deg: float, margin_deg: float) -> Movement | None:
        """The movement, or None when the heading is too close to the turn threshold."""
        return classify(self.angle_deg, turn_deg, margin_deg)


@dataclass(slots=True, eq=False)
class _Car:
    hist: TrackHistory  # from the last observation behind the stop line on
    lanes: tuple[LaneGeo, ...] = ()
    last_behind: Raw | None = None
    first_after: Raw | None = None
    pre: Observation | None = None  # ``last_behind`` / ``first_after`` of the crossing
    post: Observation | None = None
    cross_pts: float = 0.0
    point: Vec | None = None
    count: int = 0
    entered: Observation | None = None
    done: bool = False


def lane_geometry(calib: IntersectionCalibration, size: tuple[int, int]) -> list[LaneGeo]:
    """Pixel geometry of every lane (stop and entry lines oriented along the approach)."""
    out: list[LaneGeo] = []
    for ap in calib.approaches:
        travels = []
        for ln in ap.lanes:
            a, b = to_pixels(ln.travel, size)
            travels.append(unit((b[0] - a[0], b[1] - a[1])))
        fwd = unit((sum(t[0] for t in travels), sum(t[1] for t in travels)))
        s0, s1 = to_pixels(ap.stop_line, size)
        stop = OrientedLine.create(s0, s1, fwd)
        entry = None
        if ap.entry_line is not None:
            e0, e1 = to_pixels(ap.entry_line, size)
            entry = OrientedLine.create(e0, e1, fwd)
        for ln, t in zip(ap.lanes, travels, strict=True):
            pts = tuple(to_pixels(ln.polygon, size))
            out.append(LaneGeo(ln, ap, stop, entry, BoxedPolygon(pts), pts, t))
    return out


def lane_facts(lane: LaneGeo, turn_deg: float) -> tuple[tuple[str, str], ...]:
    """``Event.extra`` entries the evidence checks of a movement charge re-read: the lane's
    travel, its stop line (pixels) and the turn threshold."""
    return (
        ("travel_px", vector_text(lane.travel)),
        ("stop_line_px", points_text((lane.stop.a, lane.stop.b))),
        ("turn_angle_deg", f"{turn_deg:g}"),
    )


def classify(angle: float, turn: float, margin: float) -> Movement | None:
    """The movement for a heading change, or None when it is too close to a threshold."""
    a = abs(angle)
    if a >= _U_TURN_DEG:
        return Movement.U_TURN
    if a >= turn + margin:
        return Movement.RIGHT if angle > 0 else Movement.LEFT
    if a <= turn - margin:
        return Movement.STRAIGHT
    return None


class MovementTracker:
    """Follows the vehicles of one stream and reports each settled movement once."""

    def __init__(
        self,
        calib: IntersectionCalibration,
        frame_size: tuple[int, int],
        lanes: list[LaneGeo] | None = None,
    ) -> None:
        self.calib = calib
        diag = math.hypot(*frame_size)
        self._margin = calib.line_margin * diag
        self._wheel_lines = calib.anchor is Anchor.BOTTOM_CENTER  # cars: wheel line middle
        self._lateral = _LATERAL * diag
        self._min_disp = 2.0 * calib.min_displacement * diag
        self._far = _FAR * diag
        self._kinds = [int(k) for k in calib.object_kinds()]
        self._lanes = lanes if lanes is not None else lane_geometry(calib, frame_size)
        zone = calib.intersection_zone
        self._zone = BoxedPolygon(to_pixels(zone, frame_size)) if zone else None
        self._tracks: TrackTable[_Car] = TrackTable(
            lambda tid, kind: _Car(TrackHistory(tid, kind)), calib.stale_track_s
        )
        # Tracks are picked up in the lanes and, once seen in one, followed everywhere until
        # their movement is decided (or they pass beside the stop line).
        self._region = region_of((ln.points for ln in self._lanes), self._lateral + 1.0)
        self._active: set[int] = set()

    @property
    def live_tracks(self) -> int:
        return len(self._tracks)

    def update(self, frame: Frame, tracks: Tracks) -> list[MovementDecision]:
        out: list[MovementDecision] = []
        rows, _ = frame_rows(
            frame, tracks, self._kinds, self.calib.anchor, region=self._region, keep=self._active
        )
        for tid, kind, raw in rows:
            st = self._tracks.get(tid, kind, raw[0])
            if st.done:
                continue
            d = self._step(st, raw)
            if d is not None:
                out.append(d)
        for st in self._tracks.evict(frame.pts):
            self._active.discard(st.hist.track_id)
            d = self._decide(st)
            if d is not None:
                out.append(d)
        return out

    def end_of_stream(self) -> list[MovementDecision]:
        out = [d for st in self._tracks.drain() if (d := self._decide(st))]
        self._active.clear()
        return out

    def _candidates(self, p: Vec, current: tuple[LaneGeo, ...]) -> tuple[LaneGeo, ...]:
        """Lanes holding ``p`` behind their stop line: those it is inside first, then those
        within the lateral tolerance. Lanes do not overlap (the calibration checks), so a point
        deeper than the tolerance inside the current lane is near no other lane."""
        if current:
            lane = current[0]
            d = lane.polygon.depth(p, self._lateral)
            if d is not None and d >= self._lateral and lane.stop.signed_distance(p) < 0:
                return (lane,)
        strict: list[LaneGeo] = []
        loose: list[LaneGeo] = []
        for ln in self._lanes:
            d = ln.polygon.depth(p, self._lateral)
            if d is None or d < -self._lateral or ln.stop.signed_distance(p) >= 0:
                continue
            (strict if d >= 0 else loose).append(ln)
        return (*strict, *loose)

    def _step(self, st: _Car, raw: Raw) -> MovementDecision | None:
        if st.point is None:
            self._approach(st, raw)
            return None
        o = observe(raw)
        st.hist.add(o)
        stop = st.lanes[0].stop
        c = line_contact(stop, o, self._wheel_lines)
        back = stop.signed_distance(c) < -self._margin and -0.1 <= stop.along(c) <= 1.1
        if back:  # jitter: back behind the line (a U-turn comes back beside it, not behind it)
            st.point, st.count, st.last_behind, st.first_after = None, 0, raw, None
            return None
        st.count += 1
        if st.entered is None and self._entered(st.lanes[0], o.anchor):
            st.entered = o
        if st.entered is not None and distance(st.point, o.anchor) >= self._far:
            return self._decide(st)
        return None

    def _approach(self, st: _Car, raw: Raw) -> None:
        p = raw[2]
        lanes = self._candidates(p, st.lanes)
        if lanes:
            st.lanes = lanes
            self._active.add(st.hist.track_id)  # seen in a lane: followed everywhere until done
        if not st.lanes:
            return
        stop = st.lanes[0].stop
        d = stop.signed_distance(line_contact(stop, observe(raw), self._wheel_lines))
        if d < 0:
            st.last_behind, st.first_after = raw, None
            return
        if st.first_after is None:
            st.first_after = raw
        if d < self._margin or st.last_behind is None:
            return
        pre, post = observe(st.last_behind), observe(st.first_after)
        t = stop.crossing(
            line_contact(stop, pre, self._wheel_lines), line_contact(stop, post, self._wheel_lines)
        )
        if t is None:
            st.done = True  # passed beside this stop line
            self._active.discard(st.hist.track_id)
            return
        st.cross_pts = pre.pts + t * (post.pts - pre.pts)
        st.point = lerp(pre.anchor, post.anchor, t)
        st.count = 1
        st.pre, st.post = pre, post
        st.hist.add(pre)
        st.hist.add(post)
        if raw is not st.first_after:
            st.hist.add(observe(raw))

    def _entered(self, lane: LaneGeo, p: Vec) -> bool:
        if lane.entry is not None and lane.entry.signed_distance(p) >= self._margin:
            return True
        return self._zone is not None and self._zone.contains(p)

    def _heading_back(self, st: _Car, o: Observation, travel: Vec) -> bool:
        """Whether the latest ``min_displacement`` of motion points back against the travel
        direction (a U-turn; its net heading from the stop line may look like a left turn)."""
        for prev in reversed(st.hist.obs):
            if prev.pts < st.cross_pts:
                return False
            if distance(prev.anchor, o.anchor) >= self._min_disp:
                recent = unit((o.anchor[0] - prev.anchor[0], o.anchor[1] - prev.anchor[1]))
                return abs(heading_change_deg(travel, recent)) >= _U_TURN_DEG
        return False

    def _decide(self, st: _Car) -> MovementDecision | None:
        if st.done or st.point is None or st.entered is None or not st.hist.obs:
            return None
        if st.count < self.calib.confirm_frames:
            return None
        st.done = True
        self._active.discard(st.hist.track_id)
        o = st.hist.last
        if distance(st.point, o.anchor) < self._min_disp:
            return None
        travel = st.lanes[0].travel
        heading = unit((o.anchor[0] - st.point[0], o.anchor[1] - st.point[1]))
        angle = heading_change_deg(travel, heading)
        if self._heading_back(st, o, travel):
            angle = 180.0 if angle >= 0 else -180.0  # driving back the way it came: U-turn
        if st.pre is None or st.post is None:
            return None
        return MovementDecision(
            st.hist,
            st.lanes,
            round(angle, 1),
            st.cross_pts,
            st.pre,
            st.post,
            st.entered,
            o,
        )


class MovementJudge(Protocol):
    """A rule on settled movements (lane direction, no-turn): decisions in, charges out."""

    def judge(self, decisions: list[MovementDecision]) -> list[Event]: ...


class MovementJudgeBase:
    """What the judges of settled movements share: the stream and frame size they charge for,
    the calibrated turn angle, and how a movement made from a lane becomes a charge."""

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        self.stream_id = stream_id
        self.frame_size = frame_size
        self._turn = calib.turn_angle_deg

    def _charge_movement(
        self,
        d: MovementDecision,
        lane: LaneGeo,
        mv: Movement,
        *,
        name: str,
        code: str,
        detail: str,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> Event:
        """The event charging ``mv`` of ``d`` from ``lane`` at its stop-line crossing (evidence:
        the last position behind the line, the first past it, where the movement was read);
        ``extra`` goes between the lane and approach ids and the lane's geometry facts."""
        return charge_event(
            Charge(
                name=name,
                code=code,
                stream_id=self.stream_id,
                frame_size=self.frame_size,
                track=d.hist,
                at_pts=d.cross_pts,
                best=d.post,
                end=d.end,
                stages=(d.pre.pts, d.post.pts, d.end.pts),
                detail=detail,
                lane_no=lane.cfg.number,
                movement=mv.value,
                direction=lane.approach.direction or None,
                signal_group=next(iter(lane.cfg.movements.values())),
                extra=(
                    ("lane_id", lane.cfg.id),
                    ("approach_id", lane.approach.id),
                    *extra,
                    *lane_facts(lane, self._turn),
                ),
            )
        )


class MovementRule:
    """Runs one :class:`MovementTracker` for ``judges`` (each judge on its own it would follow
    every vehicle again: the lane-direction and no-turn rules share it)."""

    def __init__(
        self,
        calib: IntersectionCalibration,
        frame_size: tuple[int, int],
        judges: list[MovementJudge],
    ) -> None:
        self._tracker = MovementTracker(calib, frame_size)
        self._judges = judges

    def update(
        self, frame: Frame, tracks: Tracks, signals: Mapping[str, SignalState]
    ) -> list[Event]:
        decisions = self._tracker.update(frame, tracks)
        return self._judge(decisions) if decisions else []

    def end_of_stream(self) -> list[Event]:
        return self._judge(self._tracker.end_of_stream())

    @property
    def live_tracks(self) -> int:
        return self._tracker.live_tracks

    def _judge(self, decisions: list[MovementDecision]) -> list[Event]:
        return [ev for j in self._judges for ev in j.judge(decisions)]
