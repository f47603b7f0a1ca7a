"""Traffic flow per lane (交通流): counts, speed, headway, occupancy and queue per interval.

A :class:`FlowMeter` is a pure per-stream stage: analysed frames' tracks in (frame time only),
one :class:`FlowRecord` per lane and interval out when the interval closes. What it measures,
for each lane's detection zone (a polygon on the road, relative coordinates):

- **count** — vehicles entering the zone, each track once, in the lane whose zone its
  bottom-centre (the wheel line) entered first; by object kind and by model class name.
  :meth:`FlowMeter.lane_of` gives the same lane to the events built from the track, so the flow
  of a lane and its ``vehicle_pass`` events agree by construction.
- **headway** (车头时距) — seconds between successive vehicles' zone entries in the same lane.
- **occupancy** (占有率) — the share of the interval's analysed time in which at least one
  vehicle's wheel line is inside the zone (a virtual loop detector's time occupancy).
- **speed** — only with a ground-plane calibration (four image points and their positions in
  metres → a homography); a vehicle's speed is the least-squares slope of its ground position
  over its time in the zone, attributed to the interval in which it left the zone
  (time-mean speed); :meth:`FlowMeter.speed_of` gives the same number for the track's own
  events (the checkpoint record's speed). Without a ground plane no speed is stated.
- **queue** — with a lane ``stop_line``: the most vehicles standing still (ground speed under
  ``queue_speed_kmh`` with a ground plane, else under 2 % of their box height per second) in the
  zone at once, and with a ground plane, the farthest queued wheel line's distance from the stop
  line in metres.

Intervals are aligned to the frame's wall clock (``wall_time_ms``), so records of different
cameras and runs line up; the last, partial interval is emitted at the end of the stream with
``complete=False``, and so is an interval closed by the clock that the stream did not cover
from end to end (it started in the middle of it, or its frames stopped for over
:data:`MAX_GAP_S`): its ``observed_s`` is the time it covered and its occupancy a share of that
— a 15 s clip starting 47 s into a minute was a "complete" 60 s interval at a quarter of its
occupancy.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Protocol

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sharpeyes.pipeline.calibration import NonDegenerateLine, Point, Polygon
from sharpeyes.pipeline.rules.geometry import OrientedLine, PixelPolygon, Vec, to_pixels
from sharpeyes.pipeline.types import Event, EventType, Frame, ObjectKind, Tracks, make_event_id

_LANES_KEPT = 4096
COUNTED_KINDS = frozenset({ObjectKind.MOTOR_VEHICLE, ObjectKind.NON_MOTOR})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowLane(_Strict):
    """One lane's detection zone."""

    id: str = Field(min_length=1, max_length=64, description="Lane id (unique on the camera).")
    number: int = Field(ge=1, le=16, description="Lane number (GA/T LaneNo), 1 = leftmost.")
    zone: Polygon = Field(description="Detection zone on the road surface (relative points).")
    travel: NonDegenerateLine | None = Field(
        None, description="Direction of travel (upstream → downstream); needed for a queue."
    )
    stop_line: NonDegenerateLine | None = Field(
        None, description="Stop line ending the lane (queue length is measured back from it)."
    )


WorldPoint = tuple[float, float]


class GroundPlane(_Strict):
    """Four image points (relative) and where they lie on the road in metres (any planar frame,
    e.g. x across the road, y along it). Measured on site or from lane markings of known size
    (a Chinese lane is 3.5–3.75 m wide; a broken-line dash 6 m with 9 m gaps, GB 5768.3)."""

    image: Annotated[list[Point], Field(min_length=4, max_length=4)] = Field(
        description="Four image points (relative), no three on one line."
    )
    world_m: Annotated[list[WorldPoint], Field(min_length=4, max_length=4)] = Field(
        description="The same four points on the road plane, in metres."
    )

    @model_validator(mode="after")
    def _not_degenerate(self) -> GroundPlane:
        for pts in (self.image, self.world_m):
            a = np.asarray(pts, np.float64)
            for i in range(4):
                p, q, r = a[i], a[(i + 1) % 4], a[(i + 2) % 4]
                u, v = q - p, r - p
                if abs(float(u[0] * v[1] - u[1] * v[0])) < 1e-9:
                    raise ValueError("three of the four ground-plane points lie on one line")
        return self


class FlowConfig(_Strict):
    """Traffic-flow measurement on a camera (``flow:`` in the camera config)."""

    interval_s: float = Field(60.0, ge=1.0, le=3600.0, description="Interval length (s).")
    lanes: Annotated[list[FlowLane], Field(min_length=1)] = Field(
        description="The lanes' detection zones."
    )
    ground_plane: GroundPlane | None = Field(
        None, description="Image → road-plane calibration; without one no speed is stated."
    )
    queue_speed_kmh: float = Field(
        5.0, gt=0.0, le=30.0, description="Below this a vehicle counts as queued (ground plane)."
    )
    min_frames_in_zone: int = Field(
        1, ge=1, le=100, description="Frames a track must be seen in a zone before it counts."
    )

    @model_validator(mode="after")
    def _unique(self) -> FlowConfig:
        ids = [lane.id for lane in self.lanes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"flow lane ids must be unique: {ids}")
        return self


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One lane over one interval."""

    stream_id: str
    lane_id: str
    lane_no: int
    start_ms: int
    interval_s: float
    observed_s: float  # analysed time covered (less than interval_s for a partial interval)
    complete: bool
    count: int
    by_kind: dict[str, int]
    by_class: dict[str, int]
    mean_speed_kmh: float | None
    speeds_measured: int
    mean_headway_s: float | None
    occupancy: float
    queue_max_vehicles: int | None
    queue_max_length_m: float | None


@dataclass
class _LaneBin:
    count: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_class: dict[str, int] = field(default_factory=dict)
    speeds: list[float] = field(default_factory=list)
    headways: list[float] = field(default_factory=list)
    occupied_s: float = 0.0
    queue_vehicles: int = 0
    queue_m: float = 0.0


@dataclass
class _TrackState:
    track_id: int
    lane: int | None = None  # index into lanes, fixed at first entry
    frames_in: dict[int, int] = field(default_factory=dict)
    in_zone: list[tuple[float, Vec]] = field(default_factory=list)  # (pts, ground or pixel)
    recent: list[tuple[float, Vec, float]] = field(default_factory=list)  # pts, point, box h
    last_pts: float = 0.0
    measured: bool = False


MAX_GAP_S = 2.0
"""Frames this far apart (or closer) cover the time between them; a longer gap (a camera gone
away) is not observed time, and an interval short of this much observed time is not complete."""


class FlowMeter:
    """Per-stream traffic-flow stage (see the module docstring)."""

    GONE_S = 1.5  # a track not seen this long has left

    def __init__(
        self,
        stream_id: str,
        config: FlowConfig,
        frame_size: tuple[int, int],
        class_names: Sequence[str] = (),
    ) -> None:
        self.stream_id = stream_id
        self.config = config
        self.class_names = list(class_names)
        self._zones = [PixelPolygon(to_pixels(lane.zone, frame_size)) for lane in config.lanes]
        self._stop: list[OrientedLine | None] = []
        for lane in config.lanes:
            if lane.stop_line is None or lane.travel is None:
                self._stop.append(None)
                continue
            a, b = to_pixels(lane.stop_line, frame_size)
            t0, t1 = to_pixels(lane.travel, frame_size)
            self._stop.append(OrientedLine.create(a, b, (t1[0] - t0[0], t1[1] - t0[1])))
        self._h: np.ndarray | None = None
        if config.ground_plane is not None:
            src = np.asarray(to_pixels(config.ground_plane.image, frame_size), np.float32)
            dst = np.asarray(config.ground_plane.world_m, np.float32)
            self._h = cv2.getPerspectiveTransform(src, dst)
        self._interval_ms = round(config.interval_s * 1000)
        self._bin_start: int | None = None
        self._bins = [_LaneBin() for _ in config.lanes]
        self._observed_s = 0.0
        self._last_pts: float | None = None
        self._last_entry: list[float | None] = [None] * len(config.lanes)
        self._tracks: dict[int, _TrackState] = {}
        self._lanes: OrderedDict[int, int] = OrderedDict()  # counted track → lane number
        self._speeds: OrderedDict[int, float] = OrderedDict()  # measured track → km/h

    # --- public ------------------------------------------------------------------------

    def lane_of(self, track_id: int) -> int | None:
        """The lane number a track was counted in (None: never in a lane's zone)."""
        return self._lanes.get(track_id)

    def speed_of(self, track_id: int) -> float | None:
        """A counted track's ground speed in km/h: measured when it left its zone, or from its
        positions in the zone so far while it is still there; None without a ground plane, or
        when the track was in its zone for under three frames or 0.3 s."""
        done = self._speeds.get(track_id)
        if done is not None:
            return done
        st = self._tracks.get(track_id)
        return None if st is None or st.measured else self._speed(st)

    def update(self, pts: float, wall_ms: int, tracks: Tracks) -> list[FlowRecord]:
        """One analysed frame; returns the records of intervals this frame closed."""
        out = self._roll(wall_ms)
        dt = 0.0 if self._last_pts is None else min(max(pts - self._last_pts, 0.0), MAX_GAP_S)
        self._last_pts = pts
        self._observed_s += dt
        occupied = [False] * len(self._zones)
        queued = [0] * len(self._zones)
        queue_m = [0.0] * len(self._zones)
        seen: set[int] = set()
        for i in range(len(tracks.track_id)):
            kind = ObjectKind(int(tracks.kind[i]))
            if kind not in COUNTED_KINDS:
                continue
            tid = int(tracks.track_id[i])
            seen.add(tid)
            x1, y1, x2, y2 = (float(v) for v in tracks.xyxy[i])
            wheel: Vec = ((x1 + x2) / 2.0, y2)
            lane, in_queue = self._observe(
                tid, pts, wheel, max(y2 - y1, 1.0), kind=kind, cls=int(tracks.class_id[i])
            )
            if lane is not None:
                occupied[lane] = True
                if in_queue:
                    queued[lane] += 1
                    queue_m[lane] = max(queue_m[lane], self._queue_distance(lane, wheel))
        for lane, b in enumerate(self._bins):
            if occupied[lane]:
                b.occupied_s += dt
            b.queue_vehicles = max(b.queue_vehicles, queued[lane])
            b.queue_m = max(b.queue_m, queue_m[lane])
        for tid, st in list(self._tracks.items()):
            if tid not in seen and pts - st.last_pts > self.GONE_S:
                if not st.measured:
                    self._measure(st)
                del self._tracks[tid]
        return out

    def _observe(
        self, tid: int, pts: float, wheel: Vec, height: float, *, kind: ObjectKind, cls: int
    ) -> tuple[int | None, bool]:
        """One track in one frame: (the zone its wheel line is in, whether it stands queued)."""
        st = self._tracks.get(tid)
        if st is None:
            st = self._tracks[tid] = _TrackState(tid)
            counted = self._lanes.get(tid)
            if counted is not None:  # a standing vehicle seen again under its id (parked.py):
                st.lane = self._lane_index(counted)  # counted once, its speed measured once
                st.measured = True
        st.last_pts = pts
        lane = self._zone_of(wheel)
        point = self._ground(wheel)
        st.recent.append((pts, point, height))
        st.recent = [r for r in st.recent if pts - r[0] <= 1.0]
        if lane is None:
            if st.lane is not None and st.in_zone and not st.measured:
                self._measure(st)  # left its zone
            return None, False
        st.frames_in[lane] = st.frames_in.get(lane, 0) + 1
        if st.lane is None and st.frames_in[lane] >= self.config.min_frames_in_zone:
            st.lane = lane
            self._count(tid, lane, pts, kind=kind, cls=cls)
        if lane != st.lane:
            return lane, False
        st.in_zone.append((pts, point))
        return lane, self._is_queued(st)

    def adopt(self, from_id: int, into_id: int) -> None:
        """Tracks ``from_id`` and ``into_id`` are one vehicle (a plate-first track handed to
        the tracker's, :mod:`~sharpeyes.pipeline.structuring.plate_first`): ``into_id`` takes
        its lane and is not counted again. Where both were counted already (the tracker's
        track entered its zone before the handover), both counts stay."""
        old = self._tracks.pop(int(from_id), None)
        if old is None:
            return
        new = self._tracks.get(int(into_id))
        if new is None:
            old.track_id = int(into_id)
            self._tracks[int(into_id)] = old
        elif new.lane is None and old.lane is not None:
            new.lane = old.lane
            new.in_zone = old.in_zone + new.in_zone
        else:
            return
        lane_no = self._lanes.get(int(from_id))
        if lane_no is not None:
            self._lanes[int(into_id)] = lane_no

    def end_of_stream(self) -> list[FlowRecord]:
        """Measure the tracks still open and emit the current (partial) interval."""
        for st in self._tracks.values():
            if not st.measured:
                self._measure(st)
        if self._bin_start is None:
            return []
        out = self._close(self._bin_start, complete=False)
        self._bin_start = None
        return out

    # --- internals ---------------------------------------------------------------------

    def _roll(self, wall_ms: int) -> list[FlowRecord]:
        start = wall_ms - wall_ms % self._interval_ms
        if self._bin_start is None:
            self._bin_start = start
            return []
        out: list[FlowRecord] = []
        while start > self._bin_start:  # every interval in between, empty ones included
            covered = self._observed_s >= self.config.interval_s - MAX_GAP_S
            out += self._close(self._bin_start, complete=covered)
            self._bin_start += self._interval_ms
        return out

    def _close(self, start_ms: int, *, complete: bool) -> list[FlowRecord]:
        cfg = self.config
        observed = cfg.interval_s if complete else min(self._observed_s, cfg.interval_s)
        records = []
        for lane, b, stop in zip(cfg.lanes, self._bins, self._stop, strict=True):
            has_queue = stop is not None
            records.append(
                FlowRecord(
                    stream_id=self.stream_id,
                    lane_id=lane.id,
                    lane_no=lane.number,
                    start_ms=start_ms,
                    interval_s=cfg.interval_s,
                    observed_s=round(observed, 3),
                    complete=complete,
                    count=b.count,
                    by_kind=dict(b.by_kind),
                    by_class=dict(b.by_class),
                    mean_speed_kmh=(
                        round(float(np.mean(b.speeds)), 2)
                        if b.speeds and self._h is not None
                        else None
                    ),
                    speeds_measured=len(b.speeds),
                    mean_headway_s=round(float(np.mean(b.headways)), 3) if b.headways else None,
                    occupancy=round(min(b.occupied_s / observed, 1.0), 4) if observed > 0 else 0.0,
                    queue_max_vehicles=b.queue_vehicles if has_queue else None,
                    queue_max_length_m=(
                        round(b.queue_m, 2) if has_queue and self._h is not None else None
                    ),
                )
            )
        self._bins = [_LaneBin() for _ in cfg.lanes]
        self._observed_s = 0.0
        return records

    def _zone_of(self, p: Vec) -> int | None:
        for i, zone in enumerate(self._zones):
            if zone.contains(p):
                return i
        return None

    def _ground(self, p: Vec) -> Vec:
        if self._h is None:
            return p
        v = self._h @ np.array([p[0], p[1], 1.0])
        return (float(v[0] / v[2]), float(v[1] / v[2]))

    def _lane_index(self, number: int) -> int | None:
        return next((i for i, lane in enumerate(self.config.lanes) if lane.number == number), None)

    def _count(self, tid: int, lane: int, pts: float, *, kind: ObjectKind, cls: int) -> None:
        self._lanes[tid] = self.config.lanes[lane].number
        while len(self._lanes) > _LANES_KEPT:  # events are built soon after a track ends
            self._lanes.popitem(last=False)
        b = self._bins[lane]
        b.count += 1
        b.by_kind[kind.label] = b.by_kind.get(kind.label, 0) + 1
        name = self.class_names[cls] if 0 <= cls < len(self.class_names) else str(cls)
        b.by_class[name] = b.by_class.get(name, 0) + 1
        last = self._last_entry[lane]
        if last is not None and pts >= last:
            b.headways.append(pts - last)
        self._last_entry[lane] = pts

    def _measure(self, st: _TrackState) -> None:
        """The track left its zone (or the stream): its speed goes to the current interval."""
        st.measured = True
        speed = self._speed(st)
        if speed is None or st.lane is None:
            return
        self._bins[st.lane].speeds.append(speed)
        self._speeds[st.track_id] = speed
        while len(self._speeds) > _LANES_KEPT:
            self._speeds.popitem(last=False)

    def _speed(self, st: _TrackState) -> float | None:
        """Least-squares ground speed (km/h) over the track's positions in its zone."""
        if self._h is None or st.lane is None or len(st.in_zone) < 3:
            return None
        t = np.array([p for p, _ in st.in_zone])
        if t[-1] - t[0] < 0.3:
            return None
        xy = np.array([q for _, q in st.in_zone])
        tc = t - t.mean()
        vx = float(np.dot(tc, xy[:, 0] - xy[:, 0].mean()) / np.dot(tc, tc))
        vy = float(np.dot(tc, xy[:, 1] - xy[:, 1].mean()) / np.dot(tc, tc))
        return math.hypot(vx, vy) * 3.6

    def _is_queued(self, st: _TrackState) -> bool:
        if len(st.recent) < 2:
            return False
        (t0, p0, _), (t1, p1, h) = st.recent[0], st.recent[-1]
        if t1 - t0 < 0.5:
            return False
        v = math.hypot(p1[0] - p0[0], p1[1] - p0[1]) / (t1 - t0)
        if self._h is not None:
            return v * 3.6 < self.config.queue_speed_kmh
        return v < 0.02 * h

    def _queue_distance(self, lane: int, wheel: Vec) -> float:
        stop = self._stop[lane]
        if stop is None or self._h is None:
            return 0.0
        # the point of the stop line nearest the vehicle, both on the ground plane
        a, b = stop.a, stop.b
        s = min(max(stop.along(wheel), 0.0), 1.0)
        on_line = self._ground((a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1])))
        g = self._ground(wheel)
        return math.hypot(g[0] - on_line[0], g[1] - on_line[1])


# --- the camera stage: flow records as events, lanes on pass events ------------------------

FLOW_FIELDS = (
    "lane_id",
    "lane_no",
    "interval_s",
    "observed_s",
    "complete",
    "count",
    "by_kind",
    "by_class",
    "mean_speed_kmh",
    "speeds_measured",
    "mean_headway_s",
    "occupancy",
    "queue_max_vehicles",
    "queue_max_length_m",
)
PASS_TYPES = frozenset({EventType.VEHICLE_PASS, EventType.NON_MOTOR_PASS})


def flow_event(record: FlowRecord) -> Event:
    """A record as a ``traffic_flow`` event (stored, fed and replicated like every event; the
    fields go in ``extra`` as JSON values, :func:`flow_from_extra` reads them back)."""
    end_ms = record.start_ms + round(record.observed_s * 1000)
    extra = tuple((k, json.dumps(getattr(record, k), sort_keys=True)) for k in FLOW_FIELDS)
    speed = "" if record.mean_speed_kmh is None else f", {record.mean_speed_kmh:.1f} km/h"
    return Event(
        event_id=make_event_id(
            record.stream_id, record.lane_no, record.start_ms, EventType.TRAFFIC_FLOW.value
        ),
        type=EventType.TRAFFIC_FLOW,
        stream_id=record.stream_id,
        first_seen_ms=record.start_ms,
        last_seen_ms=end_ms,
        first_pts=0.0,
        last_pts=0.0,
        detail=f"lane {record.lane_no}: {record.count} vehicles in {record.observed_s:.0f} s"
        f"{speed}, occupancy {record.occupancy:.0%}",
        extra=extra,
    )


def flow_from_extra(extra: Iterable[tuple[str, str]]) -> dict[str, object]:
    """The flow fields of a ``traffic_flow`` event's ``extra`` (JSON values decoded)."""
    return {k: json.loads(v) for k, v in extra if k in FLOW_FIELDS}


class _TrackEvents(Protocol):
    def update(self, frame: Frame, tracks: Tracks) -> list[Event]: ...

    def finish(self, track_ids: Sequence[int]) -> list[Event]: ...

    def flush(self) -> list[Event]: ...


class FlowEvents:
    """Wraps the camera's track-event builder: measures flow on every analysed frame, emits a
    ``traffic_flow`` event per lane and closed interval, and puts the lane a pass event's track
    was counted in on that event (``extra`` ``lane_no``) — one lane assignment for both — and,
    with a ground plane, the vehicle's own speed (``extra`` ``speed_kmh``, the same measurement
    the interval's mean is made of). The meter is built on the first frame, when the frame size
    is known (any source type)."""

    def __init__(
        self,
        inner: _TrackEvents,
        stream_id: str,
        config: FlowConfig,
        class_names: Sequence[str] = (),
    ) -> None:
        self.inner = inner
        self.stream_id = stream_id
        self.config = config
        self.class_names = tuple(class_names)
        self.meter: FlowMeter | None = None

    def update(self, frame: Frame, tracks: Tracks) -> list[Event]:
        if self.meter is None:
            size = (frame.width, frame.height)
            self.meter = FlowMeter(self.stream_id, self.config, size, self.class_names)
        records = self.meter.update(frame.pts, frame.wall_time_ms, tracks)
        return self._lanes(self.inner.update(frame, tracks)) + [flow_event(r) for r in records]

    def finish(self, track_ids: Sequence[int]) -> list[Event]:
        return self._lanes(self.inner.finish(track_ids))

    def adopt(self, from_id: int, into_id: int) -> None:
        """One vehicle, two track ids: :meth:`FlowMeter.adopt`."""
        if self.meter is not None:
            self.meter.adopt(from_id, into_id)

    def flush(self) -> list[Event]:
        events = self._lanes(self.inner.flush())
        if self.meter is None:
            return events
        return events + [flow_event(r) for r in self.meter.end_of_stream()]

    def _lanes(self, events: list[Event]) -> list[Event]:
        meter = self.meter
        if meter is None:
            return events
        out = []
        for e in events:
            lane = None if e.track_id is None else meter.lane_of(e.track_id)
            if e.type not in PASS_TYPES or lane is None or e.track_id is None:
                out.append(e)
                continue
            stamp = [("lane_no", str(lane))]
            speed = meter.speed_of(e.track_id)
            if speed is not None:
                stamp.append(("speed_kmh", f"{speed:.1f}"))
            out.append(e.with_(extra=(*e.extra, *stamp)))
        return out
