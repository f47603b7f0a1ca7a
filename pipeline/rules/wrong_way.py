"""Wrong-way driving (逆行): sustained motion against a lane's (or zone's) travel direction.

Per track, inside one lane polygon or travel zone (the middle half of the vehicle's wheel line
in it, so a vehicle straddling the zone's edge — an oncoming car hugging the centre line, as on
the real hanoi_b clip — is in neither), the rule keeps the most downstream
observation of the current run (its position along the travel direction). A vehicle is charged
once its anchor is ``min_distance`` (fraction of the frame diagonal) upstream of that point with
the net motion within ``max_angle_deg`` of the reverse direction, seen over at least
``confirm_frames`` analysed frames. Box jitter moves the anchor by pixels, never by the distance,
and a vehicle that rolls back a little in a queue is not charged; leaving the zone restarts the
run. Charged once per track; an exempt class (emergency vehicles, when configured) never is.

Evidence stages: 1 where the run began, 2 half way, 3 where the distance was reached — each
shows the vehicle further against the travel direction.

Default code ``1301`` — 机动车逆向行驶的 (Road Traffic Safety Law art. 35, art. 90), as listed in
the Ministry of Public Security's 交通违法行为代码 table (first digit 1 = motor vehicle, second =
points class; the table is usually attributed to GA 408.1). Read from public copies of that
table, not from an official text (not available offline); provinces renumber some codes after
the 2022 points reform (公安部令第163号), so set ``wrong_way.code`` from the deploying province's
table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sharpeyes.pipeline.calibration import IntersectionCalibration, WrongWayConfig
from sharpeyes.pipeline.rules._suite import BlockRule, step_open
from sharpeyes.pipeline.rules.charge import (
    Raw,
    frame_rows,
    nearest_obs,
    needed,
    observe,
    points_text,
    region_of,
    vector_text,
)
from sharpeyes.pipeline.rules.common import Observation, TrackHistory
from sharpeyes.pipeline.rules.geometry import BoxedPolygon, Vec, to_pixels, unit
from sharpeyes.pipeline.types import Event, Frame, SignalState, Tracks

NAME = "wrong_way"


@dataclass(frozen=True, slots=True)
class _Zone:
    id: str
    polygon: BoxedPolygon
    points: tuple[Vec, ...]
    travel: Vec  # unit vector, legal direction
    lane_no: int | None
    direction: str | None


@dataclass(slots=True, eq=False)
class _Run:
    hist: TrackHistory  # the observations of against-travel runs only
    zone: _Zone | None = None
    top: Raw | None = None  # the most downstream row so far in this zone
    top_pos: float = 0.0
    start: Observation | None = None  # ``top`` once a run against the travel began
    frames: int = 0
    done: bool = False


def _zones(
    calib: IntersectionCalibration, cfg: WrongWayConfig, size: tuple[int, int]
) -> list[_Zone]:
    out: list[_Zone] = []
    if cfg.use_lanes:
        for ap in calib.approaches:
            for ln in ap.lanes:
                a, b = to_pixels(ln.travel, size)
                pts = tuple(to_pixels(ln.polygon, size))
                travel = unit((b[0] - a[0], b[1] - a[1]))
                out.append(
                    _Zone(ln.id, BoxedPolygon(pts), pts, travel, ln.number, ap.direction or None)
                )
    for z in cfg.zones:
        a, b = to_pixels(z.travel, size)
        pts = tuple(to_pixels(z.polygon, size))
        travel = unit((b[0] - a[0], b[1] - a[1]))
        out.append(_Zone(z.id, BoxedPolygon(pts), pts, travel, None, None))
    return out


def _inside(z: _Zone, p: Vec, quarter: float) -> bool:
    """Whether the middle half of the wheel line (``quarter`` = a quarter of the box width
    either side of the anchor) lies in the zone: a vehicle straddling the zone's edge — an
    oncoming car hugging the centre line — is in neither zone."""
    poly = z.polygon
    return (
        poly.contains(p)
        and poly.contains((p[0] - quarter, p[1]))
        and poly.contains((p[0] + quarter, p[1]))
    )


def _pos(z: _Zone, p: Vec) -> float:
    return p[0] * z.travel[0] + p[1] * z.travel[1]


class WrongWayRule(BlockRule[_Run, WrongWayConfig]):
    """Wrong-way driving in the calibrated lanes and travel zones of one stream."""

    name = NAME

    def __init__(
        self, stream_id: str, calib: IntersectionCalibration, frame_size: tuple[int, int]
    ) -> None:
        cfg = needed(calib.wrong_way, "WrongWayRule", "wrong_way")
        super().__init__(
            stream_id, calib, frame_size, cfg, lambda tid, kind: _Run(TrackHistory(tid, kind))
        )
        self._zones = _zones(calib, self.cfg, frame_size)
        self._region = region_of((z.points for z in self._zones), 1.0)
        self._dist = self.cfg.min_distance * math.hypot(*frame_size)
        self._cos = math.cos(math.radians(self.cfg.max_angle_deg))

    def update(
        self, frame: Frame, tracks: Tracks, signals: Mapping[str, SignalState]
    ) -> list[Event]:
        rows, skipped = frame_rows(
            frame, tracks, self._kinds, self.calib.anchor, region=self._region
        )
        for tid in skipped:  # outside every zone: the run ends
            if (gone := self._tracks.states.get(tid)) is not None:
                gone.zone = None
        return step_open(self._tracks, rows, frame.pts, lambda _t, _k, st, raw: self._step(st, raw))

    def _zone_of(self, p: Vec, quarter: float) -> _Zone | None:
        for z in self._zones:
            if _inside(z, p, quarter):
                return z
        return None

    def _step(self, st: _Run, raw: Raw) -> Event | None:
        p = raw[2]
        quarter = (raw[3][2] - raw[3][0]) / 4.0
        zone = st.zone if st.zone is not None and _inside(st.zone, p, quarter) else None
        zone = zone or self._zone_of(p, quarter)
        if zone is None or zone is not st.zone:
            st.zone, st.top, st.frames, st.start = zone, raw, 0, None
            st.top_pos = _pos(zone, p) if zone is not None else 0.0
            return None
        pos = _pos(zone, p)
        if st.top is None or pos >= st.top_pos:  # driving with the travel: nothing to keep
            st.top, st.top_pos, st.frames, st.start = raw, pos, 0, None
            return None
        if st.start is None:  # a run against the travel begins at the top
            st.start = observe(st.top)
            st.hist.add(st.start)
        o = observe(raw)
        st.hist.add(o)
        st.frames += 1
        back = st.top_pos - pos
        if back < self._dist or st.frames < self.calib.confirm_frames:
            return None
        dx, dy = p[0] - st.start.anchor[0], p[1] - st.start.anchor[1]
        if back < self._cos * math.hypot(dx, dy):
            return None  # mostly sideways: crossing the lane, not driving against it
        st.done = True
        if self.exempt(st.hist):
            return None
        return self._charge(st, zone, st.start, o)

    def _charge(self, st: _Run, zone: _Zone, start: Observation, o: Observation) -> Event:
        mid = nearest_obs(st.hist, (start.pts + o.pts) / 2.0)
        back = (st.top_pos - _pos(zone, o.anchor)) / math.hypot(*self.frame_size)
        return self.charge(
            st.hist,
            at_pts=o.pts,
            best=mid,
            end=o,
            stages=(start.pts, mid.pts, o.pts),
            detail=f"{zone.id}: drove {back:.3f} of the frame diagonal against the travel "
            f"direction from {start.pts:.2f}s to {o.pts:.2f}s",
            lane_no=zone.lane_no,
            direction=zone.direction,
            extra=(
                ("zone_id", zone.id),
                ("travel_px", vector_text(zone.travel)),
                ("zone_px", points_text(zone.points)),
            ),
        )
