"""Traffic flow per lane (``pipeline/flow.py``) on synthetic tracks with known counts, speeds,
headways and queues, seen through a perspective camera (a real homography, not a scale)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from sharpeyes.pipeline.flow import FlowConfig, FlowMeter, FlowRecord
from sharpeyes.pipeline.types import ObjectKind, Tracks

W, H = 1000, 800
# the road: x 0–8 m across (two 4 m lanes), y 0–80 m along, seen in perspective
IMAGE = [(0.40, 0.10), (0.60, 0.10), (0.95, 0.95), (0.05, 0.95)]
WORLD = [(0.0, 80.0), (8.0, 80.0), (8.0, 0.0), (0.0, 0.0)]
_HW2I = cv2.getPerspectiveTransform(
    np.asarray(WORLD, np.float32), np.asarray([(x * W, y * H) for x, y in IMAGE], np.float32)
)


def to_image(x: float, y: float) -> tuple[float, float]:
    v = _HW2I @ np.array([x, y, 1.0])
    return float(v[0] / v[2]), float(v[1] / v[2])


def rel(x: float, y: float) -> tuple[float, float]:
    px, py = to_image(x, y)
    return (round(px / W, 5), round(py / H, 5))


def lane(no: int, x0: float, x1: float, *, stop: bool = False) -> dict[str, object]:
    zone = [rel(x0, 5.0), rel(x1, 5.0), rel(x1, 60.0), rel(x0, 60.0)]
    out: dict[str, object] = {"id": f"L{no}", "number": no, "zone": zone}
    if stop:  # traffic drives towards y = 0 here; the stop line at y = 5 m
        out["travel"] = [rel((x0 + x1) / 2, 50.0), rel((x0 + x1) / 2, 10.0)]
        out["stop_line"] = [rel(x0, 5.0), rel(x1, 5.0)]
    return out


def config(**kw: object) -> FlowConfig:
    base: dict[str, object] = {
        "interval_s": 10.0,
        "lanes": [lane(1, 0.0, 4.0), lane(2, 4.0, 8.0)],
        "ground_plane": {"image": IMAGE, "world_m": WORLD},
    }
    base.update(kw)
    return FlowConfig.model_validate(base)


def tracks(objs: list[tuple[int, float, float, ObjectKind]]) -> Tracks:
    """Boxes whose bottom-centre is each object's ground point (x, y in metres)."""
    boxes = []
    for _, x, y, _ in objs:
        bx, by = to_image(x, y)
        h = 40.0 * (by / H + 0.2)
        boxes.append([bx - h * 0.6, by - h, bx + h * 0.6, by])
    n = len(objs)
    return Tracks(
        xyxy=np.asarray(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.full(n, 2, np.int64),
        kind=np.asarray([k for *_, k in objs], np.int8),
        track_id=np.asarray([t for t, *_ in objs], np.int64),
        detected=np.ones(n, np.bool_),
    )


def run(
    meter: FlowMeter,
    world: list[tuple[int, float, float, float, float, ObjectKind]],
    seconds: float,
    fps: float = 10.0,
) -> list[FlowRecord]:
    """``world``: (track id, lane x, y at t0, speed m/s towards y=0, t0); an object is visible
    while 0 < y < 80."""
    out: list[FlowRecord] = []
    t0_ms = 1_700_000_000_000 - 1_700_000_000_000 % 10_000  # an interval boundary
    for i in range(int(seconds * fps)):
        t = i / fps
        objs = []
        for tid, x, y0, v, start, kind in world:
            if t < start:
                continue
            y = y0 - v * (t - start)
            if 0.0 < y < 80.0:
                objs.append((tid, x, y, kind))
        out += meter.update(t, t0_ms + round(t * 1000), tracks(objs))
    return out + meter.end_of_stream()


def by_lane(records: list[FlowRecord], lane_no: int) -> list[FlowRecord]:
    return [r for r in records if r.lane_no == lane_no]


def test_an_interval_the_stream_did_not_cover_is_not_complete() -> None:
    """A stream starting 7 s into a 10 s interval, and frames stopping for 5 s in a later one:
    both intervals say ``complete=False`` and the time they covered, and the occupancy is a
    share of that time (a car standing in lane 1 the whole time: 100 %, not 30 %)."""
    meter = FlowMeter("cam", config(), (W, H), class_names=["person", "bicycle", "car"])
    t0_ms = 1_700_000_000_000 - 1_700_000_000_000 % 10_000 + 7_000
    parked = tracks([(1, 2.0, 30.0, ObjectKind.MOTOR_VEHICLE)])
    out: list[FlowRecord] = []
    for i in range(330):  # 33 s at 10 fps, none from 15 to 20 s
        t = i / 10
        if not 15.0 <= t < 20.0:
            out += meter.update(t, t0_ms + round(t * 1000), parked)
    out += meter.end_of_stream()
    lane1 = by_lane(out, 1)  # intervals at t -7–3, 3–13, 13–23 (the gap), 23–33 (the end)
    assert [r.complete for r in lane1] == [False, True, False, False]
    assert lane1[0].observed_s == pytest.approx(2.9, abs=0.05)  # t 0–2.9 s
    assert lane1[0].occupancy == pytest.approx(1.0)
    assert lane1[1].observed_s == 10.0 and lane1[1].occupancy == pytest.approx(1.0, abs=0.02)
    assert lane1[2].observed_s == pytest.approx(2.0 + 2.0 + 2.9, abs=0.05)  # the gap: 2 s
    assert lane1[2].occupancy == pytest.approx(1.0, abs=0.02)
    assert [r.count for r in lane1] == [1, 0, 0, 0]


def test_a_standing_vehicle_seen_again_under_its_id_is_counted_once() -> None:
    """A queued car hidden for 4 s (the meter forgets a track after 1.5 s) comes back under its
    id (``pipeline/tracking/parked.py``): one count in its lane, as its one event says; another
    car in the lane meanwhile is counted."""
    meter = FlowMeter("cam", config(), (W, H), class_names=["person", "bicycle", "car"])
    t0_ms = 1_700_000_000_000 - 1_700_000_000_000 % 10_000
    car = ObjectKind.MOTOR_VEHICLE
    out: list[FlowRecord] = []
    for i in range(90):
        t = i / 10
        objs = [] if 2.0 <= t < 6.0 else [(7, 2.0, 30.0, car)]
        if 3.0 <= t < 5.0:
            objs.append((8, 2.0, 50.0 - 10.0 * (t - 3.0), car))
        out += meter.update(t, t0_ms + round(t * 1000), tracks(objs))
    out += meter.end_of_stream()
    assert [r.count for r in by_lane(out, 1)] == [2]
    assert meter.lane_of(7) == 1 and meter.lane_of(8) == 1


def test_counts_speeds_and_headways_per_lane_and_interval() -> None:
    car, bike = ObjectKind.MOTOR_VEHICLE, ObjectKind.NON_MOTOR
    world = [(i + 1, 2.0, 79.0, 10.0, 4.0 * i, car) for i in range(5)]  # 36 km/h, every 4 s
    world += [(100 + i, 6.0, 79.0, 20.0, 1.0 + 6.0 * i, car) for i in range(3)]  # 72 km/h
    world += [(200, 6.5, 79.0, 5.0, 2.0, bike)]  # 18 km/h
    world += [(300, 2.0, 79.0, 10.0, 0.0, ObjectKind.PERSON)]  # never counted
    meter = FlowMeter("cam", config(), (W, H), class_names=["person", "bicycle", "car"])
    records = run(meter, world, 30.0)
    assert [r.start_ms % 10_000 for r in records] == [0] * len(records)
    assert [r.complete for r in by_lane(records, 1)] == [True, True, False]
    # zone entries (y = 60 m): lane 1 at 1.9, 5.9, 9.9 | 13.9, 17.9 s
    assert [r.count for r in by_lane(records, 1)] == [3, 2, 0]
    # lane 2: cars at 1.95, 7.95 | 13.95 s, the bike at 5.8 s
    assert [r.count for r in by_lane(records, 2)] == [3, 1, 0]
    assert by_lane(records, 2)[0].by_kind == {"motor_vehicle": 2, "non_motor": 1}
    assert by_lane(records, 1)[0].by_class == {"car": 3}
    speeds1 = [r.mean_speed_kmh for r in by_lane(records, 1) if r.mean_speed_kmh is not None]
    assert speeds1 and all(abs(s - 36.0) / 36.0 < 0.05 for s in speeds1), speeds1
    # lane 2, first interval: only the first car left the zone (at 4.7 s); the second interval
    # has the two other cars (72) and the bike (18) leaving: a time-mean of 54 km/h
    first, second = by_lane(records, 2)[:2]
    assert first.mean_speed_kmh is not None and abs(first.mean_speed_kmh - 72.0) / 72.0 < 0.05
    assert second.speeds_measured == 3 and second.mean_speed_kmh is not None
    assert abs(second.mean_speed_kmh - 54.0) / 54.0 < 0.05
    h1 = by_lane(records, 1)[0].mean_headway_s
    assert h1 is not None and abs(h1 - 4.0) < 0.11
    assert meter.lane_of(1) == 1 and meter.lane_of(100) == 2 and meter.lane_of(300) is None
    # occupancy: lane 1 has a car in its 55 m zone for 5.5 s of every 4 s from 1.9 s on
    occ = by_lane(records, 1)[1].occupancy
    assert occ == pytest.approx(1.0, abs=0.02)
    assert 0.0 < by_lane(records, 2)[0].occupancy < 1.0


def test_no_ground_plane_no_speed_and_counts_unchanged() -> None:
    world = [(i + 1, 2.0, 79.0, 10.0, 4.0 * i, ObjectKind.MOTOR_VEHICLE) for i in range(5)]
    meter = FlowMeter("cam", config(ground_plane=None), (W, H))
    records = run(meter, world, 30.0)
    assert [r.count for r in by_lane(records, 1)] == [3, 2, 0]
    assert all(r.mean_speed_kmh is None and r.queue_max_length_m is None for r in records)


def test_queue_behind_the_stop_line() -> None:
    cfg = config(lanes=[lane(1, 0.0, 4.0, stop=True), lane(2, 4.0, 8.0)])
    car = ObjectKind.MOTOR_VEHICLE
    # three cars standing at 7, 14 and 21 m from the origin (the stop line is at 5 m)
    world = [(i + 1, 2.0, y, 0.0, 0.0, car) for i, y in enumerate((7.0, 14.0, 21.0))]
    world += [(9, 6.0, 79.0, 10.0, 0.0, car)]  # moving in the other lane: no queue there
    meter = FlowMeter("cam", cfg, (W, H))
    records = run(meter, world, 5.0)
    q = by_lane(records, 1)[0]
    assert q.queue_max_vehicles == 3
    assert q.queue_max_length_m is not None and abs(q.queue_max_length_m - 16.0) < 0.5
    assert by_lane(records, 2)[0].queue_max_vehicles is None  # no stop line configured


def test_empty_intervals_are_reported_and_bad_configs_refused() -> None:
    meter = FlowMeter("cam", config(), (W, H))
    assert meter.update(0.0, 10_000, tracks([])) == []
    out = meter.update(35.0, 45_000, tracks([]))
    assert [(r.start_ms, r.lane_no, r.count) for r in out] == [
        (10_000, 1, 0),
        (10_000, 2, 0),
        (20_000, 1, 0),
        (20_000, 2, 0),
        (30_000, 1, 0),
        (30_000, 2, 0),
    ]
    with pytest.raises(ValidationError, match="unique"):
        config(lanes=[lane(1, 0.0, 4.0), lane(1, 4.0, 8.0)])
    with pytest.raises(ValidationError, match="one line"):
        config(
            ground_plane={
                "image": [(0.1, 0.1), (0.2, 0.2), (0.3, 0.3), (0.1, 0.9)],
                "world_m": WORLD,
            }
        )


def test_flow_events_and_pass_events_share_one_lane() -> None:
    """The camera stage: records become ``traffic_flow`` events (fields readable back), and the
    pass event of a counted track carries the lane it was counted in."""
    from sharpeyes.pipeline.flow import FlowEvents, flow_from_extra
    from sharpeyes.pipeline.types import Event, EventType, Frame

    class Inner:
        def __init__(self) -> None:
            self.ended: list[int] = []

        def update(self, frame: Frame, tracks: Tracks) -> list[Event]:
            return []

        def finish(self, track_ids: Sequence[int]) -> list[Event]:
            return [pass_event(t) for t in track_ids]

        def flush(self) -> list[Event]:
            return [pass_event(7)]

    def pass_event(tid: int) -> Event:
        return Event(f"e{tid}", EventType.VEHICLE_PASS, "cam", 0, 0, 0.0, 0.0, track_id=tid)

    stage = FlowEvents(Inner(), "cam", config(interval_s=5.0))
    image = np.zeros((H, W, 3), np.uint8)
    out: list[Event] = []
    for i in range(80):  # 8 s at 10 fps; car 1 in lane 1, car 2 in lane 2
        t = i / 10
        objs = [(1, 2.0, 70.0 - 5 * t, ObjectKind.MOTOR_VEHICLE)]
        objs.append((2, 6.0, 70.0 - 6 * t, ObjectKind.MOTOR_VEHICLE))
        frame = Frame("cam", i, t, 1_000_000_000_000 + round(t * 1000), image)
        out += stage.update(frame, tracks(objs))
    out += stage.finish([1, 2]) + stage.flush()
    flows = [e for e in out if e.type == EventType.TRAFFIC_FLOW]
    assert [
        (flow_from_extra(e.extra)["lane_no"], flow_from_extra(e.extra)["count"]) for e in flows
    ] == [(1, 1), (2, 1), (1, 0), (2, 0)]
    assert flow_from_extra(flows[2].extra)["complete"] is False
    assert len({e.event_id for e in flows}) == 4
    passes = {e.track_id: dict(e.extra) for e in out if e.type == EventType.VEHICLE_PASS}
    lanes = {tid: extra.get("lane_no") for tid, extra in passes.items()}
    assert lanes == {1: "1", 2: "2", 7: None}  # track 7 was never in a zone
    # each car's own ground speed (still inside its zone when its event is built): 5 and 6 m/s
    speeds = {tid: extra.get("speed_kmh") for tid, extra in passes.items()}
    assert speeds[7] is None
    assert float(speeds[1] or 0) == pytest.approx(18.0, rel=0.05)
    assert float(speeds[2] or 0) == pytest.approx(21.6, rel=0.05)


def test_a_vehicles_speed_is_the_one_its_interval_averaged() -> None:
    """``speed_of`` after a track left its zone is the number the interval's mean was made of;
    without a ground plane there is none."""
    world = [(1, 2.0, 79.0, 10.0, 0.0, ObjectKind.MOTOR_VEHICLE)]  # 36 km/h
    world += [(2, 6.0, 79.0, 15.0, 0.0, ObjectKind.MOTOR_VEHICLE)]  # 54 km/h
    meter = FlowMeter("cam", config(), (W, H))
    records = run(meter, world, 12.0)
    s1, s2 = meter.speed_of(1), meter.speed_of(2)
    assert s1 is not None and s1 == pytest.approx(36.0, rel=0.05)
    assert s2 is not None and s2 == pytest.approx(54.0, rel=0.05)
    means = [r.mean_speed_kmh for r in records if r.speeds_measured]
    assert sorted(m for m in means if m is not None) == sorted([round(s1, 2), round(s2, 2)])
    assert meter.speed_of(99) is None
    flat = FlowMeter("cam", config(ground_plane=None), (W, H))
    run(flat, world, 12.0)
    assert flat.lane_of(1) == 1 and flat.speed_of(1) is None


def test_every_event_type_is_an_api_event_type() -> None:
    """The REST schema's event-type names are the pipeline's (a type missing there would make
    the list routes fail to validate their own responses)."""
    from typing import get_args

    from sharpeyes.api.rest.schemas import EventTypeName
    from sharpeyes.pipeline.types import EventType

    assert set(get_args(EventTypeName)) == {t.value for t in EventType}
