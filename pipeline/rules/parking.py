"""Illegal parking (违法停车): a vehicle stationary inside a no-parking zone for longer than a
dwell, charged once per stop.

A stop begins where a vehicle's anchor comes to rest; it stays the same stop while the anchor
remains within ``still_radius`` (fraction of the frame diagonal) of the mean of its anchors in
the stop — a frame or two outside (``confirm_frames``) is jitter — so box jitter does not end it
and a vehicle that creeps forward in a queue starts a new one. The dwell clock
runs only in frames that are inside the zone's time windows (Beijing time, from frame time) and
not jammed: when at least ``jam_min_stopped`` vehicles stand in the zone and none moves, the
traffic is a jam (every vehicle stopped in a queue), not parking, and the clock pauses. A stop
whose clock reaches the dwell is charged once; an exempt class never is.

Known limits: several vehicles parked together in a zone with no traffic passing look like a
jam and are not charged (the conservative choice); a parked vehicle the tracker loses for longer
than ``stale_track_s`` starts over.

Evidence stages: 1 the start of the stop, 2 half way through the dwell, 3 when the dwell was
reached — the same place at three times. With dwells longer than the runner's frame history
(12 s) the first two are no longer in memory when the charge is made: see docs/VIOLATIONS.md.

Default code ``1039`` — 机动车违反规定停放、临时停车且驾驶人不在现场或驾驶人虽在现场拒绝立即
驶离，妨碍其它车辆、行人通行的 (Road Traffic Safety Law art. 56, art. 93), as listed in the
Ministry's 交通违法行为代码 table; read from public copies of the table, not verified against an
official text offline. Set ``parking.code`` from the deploying province's table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sharpeyes.pipeline.calibration import IntersectionCalibration, NoParkingZone, ParkingConfig
from sharpeyes.pipeline.rules._suite import BlockRule
from sharpeyes.pipeline.rules.charge import frame_rows, needed, observe, points_text, region_of
from sharpeyes.pipeline.rules.common import Observation, TrackHistory, in_windows
from sharpeyes.pipeline.rules.geometry import BoxedPolygon, Vec, distance, to_pixels
from sharpeyes.pipeline.types import Event, Frame, SignalState, Tracks

NAME = "illegal_parking"
_SETTLED_S = 1.0  # a vehicle at rest this long counts as standing (for the jam test)


@dataclass(frozen=True, slots=True)
class _Zone:
    cfg: NoParkingZone
    polygon: BoxedPolygon
    dwell_s: float


@dataclass(slots=True, eq=False)
class _Car:
    hist: TrackHistory
    zone: _Zone | None = None
    start: Observation | None = None  # where and when the current stop began
    ref: Vec = (0.0, 0.0)  # mean anchor of the stop so far (jitter averages out)
    n: int = 0
    away: int = 0  # consecutive frames further than ``still_radius`` from ``ref``
    away_first: Observation | None = None  # the first of them
    last_pts: float = 0.0
    dwell: float = 0.0
    half: Observation | None = None
    charged: bool = False
    stops: int = 0


class IllegalParkingRule(BlockRule[_Car, ParkingConfig]):
    """Vehicles parked in the calibrated no-parking zones of one stream."""

    name = NAME

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        cfg = needed(calib.parking, "IllegalParkingRule", "parking")
        super().__init__(
            stream_id, calib, frame_size, cfg, lambda tid, kind: _Car(TrackHistory(tid, kind))
        )
        self._radius = self.cfg.still_radius * math.hypot(*frame_size)
        pixels = [to_pixels(z.polygon, frame_size) for z in self.cfg.zones]
        self._zones = [
            _Zone(z, BoxedPolygon(p), z.dwell_s or self.cfg.dwell_s)
            for z, p in zip(self.cfg.zones, pixels, strict=True)
        ]
        self._zone_px = {z.id: points_text(p) for z, p in zip(self.cfg.zones, pixels, strict=True)}
        self._region = region_of(pixels, 1.0)

    def update(
        self, frame: Frame, tracks: Tracks, signals: Mapping[str, SignalState]
    ) -> list[Event]:
        here: list[tuple[_Car, Observation]] = []
        rows, skipped = frame_rows(
            frame, tracks, self._kinds, self.calib.anchor, region=self._region
        )
        for tid in skipped:  # outside every zone: the stop (if any) is over
            if (gone := self._tracks.states.get(tid)) is not None:
                gone.zone = gone.start = None
        for tid, kind, raw in rows:
            o = observe(raw)
            st = self._tracks.get(tid, kind, o.pts)
            st.hist.add(o)
            self._place(st, o)
            here.append((st, o))
        jammed = self._jammed_zones(here, frame.pts)
        events: list[Event] = []
        for st, o in here:
            ev = self._tick(st, o, jammed)
            if ev is not None:
                events.append(ev)
        self._tracks.evict(frame.pts)
        return events

    def pinned_pts(self) -> list[float]:
        """Evidence times already in the past of the stops under watch: each uncharged stop's
        start and, once reached, the half-way point of its dwell. Stages 1 and 2 of a charge lie
        up to ``dwell_s`` back, beyond a runner's short frame history: a runner keeps the frames
        nearest these times until the stop is charged or ends."""
        out: list[float] = []
        for st in self._tracks.states.values():
            if st.start is None or st.charged:
                continue
            out.append(st.start.pts)
            if st.half is not None:
                out.append(st.half.pts)
        return out

    def _zone_of(self, p: Vec) -> _Zone | None:
        for z in self._zones:
            if z.polygon.contains(p):
                return z
        return None

    def _place(self, st: _Car, o: Observation) -> None:
        """Continue the current stop, or start a new one (moved for ``confirm_frames`` frames,
        or changed zone). The stop's place is the mean of its anchors, so jitter neither moves
        it nor ends it."""
        if st.start is not None and self._stays(st, o):
            return
        # a new stop, from the first frame off the old one (where the vehicle was then)
        start = st.away_first if st.start is not None and st.away_first is not None else o
        st.zone = self._zone_of(start.anchor)
        st.start, st.last_pts, st.dwell, st.half, st.charged = start, start.pts, 0.0, None, False
        st.ref, st.n, st.away, st.away_first = start.anchor, 1, 0, None
        st.stops += 1
        if st.zone is None:
            st.start = None
        elif start is not o:
            self._stays(st, o)

    def _stays(self, st: _Car, o: Observation) -> bool:
        """Whether ``o`` continues the stop (near its mean place, or off it for fewer than
        ``confirm_frames`` frames)."""
        if distance(st.ref, o.anchor) <= self._radius:
            n = st.n + 1
            (rx, ry), (x, y) = st.ref, o.anchor
            st.ref, st.n = (rx + (x - rx) / n, ry + (y - ry) / n), n
            st.away, st.away_first = 0, None
            return True
        st.away += 1
        if st.away_first is None:
            st.away_first = o
        return st.away < self.calib.confirm_frames

    def _jammed_zones(self, here: list[tuple[_Car, Observation]], pts: float) -> set[str]:
        standing: dict[str, int] = {}
        moving: set[str] = set()
        for st, _ in here:
            if st.zone is None or st.start is None:
                continue
            zid = st.zone.cfg.id
            if pts - st.start.pts >= _SETTLED_S:
                standing[zid] = standing.get(zid, 0) + 1
            else:
                moving.add(zid)
        return {z for z, n in standing.items() if n >= self.cfg.jam_min_stopped and z not in moving}

    def _tick(self, st: _Car, o: Observation, jammed: set[str]) -> Event | None:
        zone, start = st.zone, st.start
        if zone is None or start is None:
            return None
        dt, st.last_pts = o.pts - st.last_pts, o.pts
        if zone.cfg.id in jammed or not in_windows(zone.cfg.windows, o.wall_ms):
            return None
        st.dwell += dt
        if st.half is None and st.dwell >= zone.dwell_s / 2.0:
            st.half = o
        if st.charged or st.dwell < zone.dwell_s:
            return None
        st.charged = True
        if self.exempt(st.hist):
            return None
        return self._charge(st, zone, start, o)

    def _charge(self, st: _Car, zone: _Zone, start: Observation, o: Observation) -> Event:
        half = st.half or o
        return self.charge(
            st.hist,
            at_pts=o.pts,
            best=o,
            end=o,
            stages=(start.pts, half.pts, o.pts),
            detail=f"stationary in no-parking zone {zone.cfg.id} since {start.pts:.2f}s, "
            f"dwell {st.dwell:.1f}s >= {zone.dwell_s:.0f}s at {o.pts:.2f}s",
            extra=(
                ("zone_id", zone.cfg.id),
                ("stop_start_pts", f"{start.pts:.3f}"),
                ("zone_px", self._zone_px[zone.cfg.id]),
                ("dwell_s", f"{zone.dwell_s:g}"),
                ("still_radius_px", f"{self._radius:.1f}"),
            ),
            key=f"stop{st.stops}",
        )
