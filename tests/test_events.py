"""Unit tests of the track event builder and the direction helpers."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from sharpeyes.pipeline.config import EventsConfig
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.geometry import (
    compass_bearing,
    gat_direction_code,
    heading_deg,
    image_direction,
)
from sharpeyes.pipeline.types import Event, EventType, Frame, ObjectKind, Tracks, make_event_id

W, H = 1280, 720
T0_MS = 1_700_000_000_000
CAR, PERSON_CLS = 2, 0
NAMES = ["person", "bicycle", "car"]
CODES = {CAR: "K33"}
RED = (0, 0, 255)


def make_frame(seq: int, pts: float, boxes: Sequence[Sequence[float]] = ()) -> Frame:
    img = np.full((H, W, 3), 128, np.uint8)
    for b in boxes:
        x1, y1, x2, y2 = (round(v) for v in b)
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), RED, thickness=-1)
    return Frame("cam1", seq, pts, T0_MS + round(pts * 1000), img)


def make_tracks(
    boxes: Sequence[Sequence[float]],
    ids: Sequence[int],
    *,
    conf: float = 0.8,
    cls: int = CAR,
    kind: ObjectKind = ObjectKind.MOTOR_VEHICLE,
    detected: bool = True,
) -> Tracks:
    n = len(boxes)
    return Tracks(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.full(n, conf, np.float32),
        class_id=np.full(n, cls, np.int64),
        kind=np.full(n, int(kind), np.int8),
        track_id=np.array(ids, np.int64),
        detected=np.full(n, detected, np.bool_),
    )


def builder(**cfg: object) -> TrackEventBuilder:
    bearing = cfg.pop("bearing", None)
    return TrackEventBuilder(
        "cam1",
        EventsConfig.model_validate(cfg),
        class_names=NAMES,
        class_codes=CODES,
        image_up_bearing_deg=bearing,  # type: ignore[arg-type]
    )


def drive(
    b: TrackEventBuilder,
    path: Sequence[Sequence[float]],
    *,
    fps: float = 10.0,
    track_id: int = 1,
    **kw: object,
) -> list[Event]:
    """Feed one track along ``path`` (one box per frame); return the events of ``update``."""
    events: list[Event] = []
    for i, bx in enumerate(path):
        frame = make_frame(i, i / fps, [bx])
        events += b.update(frame, make_tracks([bx], [track_id], **kw))  # type: ignore[arg-type]
    return events


def down_path(n: int = 20) -> list[list[float]]:
    return [[600, 100 + 20 * i, 700, 170 + 20 * i] for i in range(n)]


def test_one_event_per_track_with_fields() -> None:
    b = builder()
    assert drive(b, down_path()) == []
    events = b.finish([1])
    assert len(events) == 1
    ev = events[0]
    assert ev.type is EventType.VEHICLE_PASS and ev.kind is ObjectKind.MOTOR_VEHICLE
    assert (ev.class_id, ev.class_name, ev.class_code) == (CAR, "car", "K33")
    assert ev.track_id == 1 and ev.stream_id == "cam1"
    assert ev.first_pts == 0.0 and ev.last_pts == pytest.approx(1.9)
    assert (ev.first_seen_ms, ev.last_seen_ms) == (T0_MS, T0_MS + 1900)
    assert ev.confidence == pytest.approx(0.8)
    assert ev.event_id == make_event_id("cam1", 1, T0_MS, "vehicle_pass")
    assert ev.heading_deg == pytest.approx(180.0) and ev.direction == "down"
    assert dict(ev.extra)["reason"] == "ended" and "gat_direction" not in dict(ev.extra)
    traj = ev.trajectory
    assert 2 <= len(traj) <= 16
    assert traj[0].pts == 0.0 and traj[-1].pts == pytest.approx(1.9)
    assert (traj[0].x, traj[0].y) == (650.0, 170.0)  # bottom centre
    assert b.finish([1]) == [] and b.flush() == []
    assert len(b) == 0


def test_max_age_emits_once() -> None:
    b = builder(max_age_s=1.0)
    path = [[100 + 5 * i, 300, 200 + 5 * i, 380] for i in range(30)]  # 3 s at 10 fps
    events = drive(b, path)
    assert len(events) == 1
    ev = events[0]
    assert dict(ev.extra)["reason"] == "max_age"
    assert ev.last_pts == pytest.approx(1.0)
    assert b.finish([1]) == []
    assert b.flush() == []
    assert len(b) == 0


def test_event_ids_are_deterministic() -> None:
    a, b = builder(), builder()
    drive(a, down_path())
    drive(b, down_path())
    ea, eb = a.flush(), b.flush()
    assert [e.event_id for e in ea] == [e.event_id for e in eb]
    c = TrackEventBuilder("cam2", EventsConfig(), class_names=NAMES, class_codes=CODES)
    drive(c, down_path())
    assert c.flush()[0].event_id != ea[0].event_id


def test_best_crop_is_a_jpeg_of_the_best_box() -> None:
    b = builder(crop_margin=0.1)
    path = [
        [500, 300, 540, 330],  # small
        [500, 300, 620, 390],  # 120 x 90, inside: the best
        [1120, 600, 1280, 720],  # larger but touching the border: halved
        [500, 300, 560, 345],
    ]
    drive(b, path)
    ev = b.flush()[0]
    assert ev.best_box is not None and ev.best_pts == pytest.approx(0.1)
    assert (ev.best_box.x1, ev.best_box.y1, ev.best_box.x2, ev.best_box.y2) == (500, 300, 620, 390)
    assert (ev.best_box.frame_w, ev.best_box.frame_h) == (W, H)
    assert ev.crop_jpeg is not None and ev.crop_jpeg[:2] == b"\xff\xd8"
    img = cv2.imdecode(np.frombuffer(ev.crop_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    assert img.shape[:2] == (108, 144)  # 90 x 120 box grown by 10 % on each side
    centre = img[54, 72].astype(int)
    assert centre[2] > 200 and centre[0] < 60  # red object in the middle
    corner = img[2, 2].astype(int)
    assert abs(corner[2] - 128) < 30  # grey margin around it


def test_short_tracks_and_unlisted_kinds_give_nothing() -> None:
    b = builder(min_track_s=1.0)
    drive(b, down_path(5))  # 0.4 s
    assert b.finish([1]) == []
    only_persons = builder(kinds=["person"])
    drive(only_persons, down_path(), track_id=1)
    drive(only_persons, down_path(), track_id=2, cls=PERSON_CLS, kind=ObjectKind.PERSON)
    events = only_persons.flush()
    assert [(e.track_id, e.type) for e in events] == [(2, EventType.PERSON_SEEN)]
    assert events[0].class_code is None and events[0].class_name == "person"


def test_predicted_rows_do_not_extend_a_track() -> None:
    b = builder()
    drive(b, down_path(10))
    bx = [600, 400, 700, 470]
    b.update(make_frame(10, 5.0, [bx]), make_tracks([bx], [1], detected=False))
    ev = b.flush()[0]
    assert ev.last_pts == pytest.approx(0.9)


def test_stale_tracks_are_finished_and_state_is_bounded() -> None:
    b = TrackEventBuilder(
        "cam1", EventsConfig(), class_names=NAMES, class_codes=CODES, max_tracks=3, stale_s=10.0
    )
    for tid in range(1, 6):
        bx = [100 * tid, 100, 100 * tid + 50, 150]
        b.update(make_frame(tid, 0.1 * tid, [bx]), make_tracks([bx], [tid]))
        assert len(b) <= 3
    events = b.update(make_frame(99, 20.0), make_tracks([], []))
    assert sorted(e.track_id or 0 for e in events) == [3, 4, 5]
    assert len(b) == 0


def test_long_track_trajectory_is_bounded_and_evenly_spread() -> None:
    b = builder(max_age_s=10_000.0, trajectory_points=16)
    n = 6000  # 10 minutes at 10 fps
    for i in range(n):
        bx = [100 + i * 0.1, 300, 160 + i * 0.1, 340]
        b.update(make_frame(i, i / 10, [bx]), make_tracks([bx], [1]))
    log = b._logs[1]  # white-box check of the memory bound
    assert len(log.trajectory._points) <= 4 * 16
    traj = b.flush()[0].trajectory
    assert len(traj) == 16
    gaps = np.diff([p.pts for p in traj])
    assert traj[0].pts == 0.0 and traj[-1].pts == pytest.approx(599.9)
    assert gaps.max() - gaps.min() < 0.01 * gaps.mean()


@pytest.mark.parametrize(
    ("bearing", "code"),
    [(0, "4"), (45, "5"), (90, "1"), (135, "7"), (180, "3"), (225, "6"), (270, "2"),
     (315, "8"), (350, "4"), (22, "4"), (23, "5"), (359.9, "4")],
)  # fmt: skip
def test_gat_direction_codes(bearing: float, code: str) -> None:
    assert gat_direction_code(bearing) == code


def test_heading_conventions() -> None:
    assert heading_deg(0, -5) == 0.0
    assert heading_deg(5, 0) == 90.0
    assert heading_deg(0, 5) == 180.0
    assert heading_deg(-5, 0) == 270.0
    assert heading_deg(0, 0) is None
    assert image_direction(200) == "down" and image_direction(225) == "down-left"
    assert image_direction(350) == "up" and image_direction(44) == "up-right"
    assert compass_bearing(90, 300) == 30.0


def test_events_carry_gat_direction_when_bearing_known() -> None:
    # image "up" points east: moving up the image is travelling W→E ('1')
    b = builder(bearing=90.0)
    up = [[600, 600 - 20 * i, 700, 670 - 20 * i] for i in range(20)]
    drive(b, up)
    extra = dict(b.flush()[0].extra)
    assert extra["gat_direction"] == "1" and extra["bearing_deg"] == "90.0"
    # moving right: heading 90 → bearing 180 → N→S ('3')
    b = builder(bearing=90.0)
    drive(b, [[100 + 30 * i, 300, 200 + 30 * i, 380] for i in range(20)])
    ev = b.flush()[0]
    assert ev.direction == "right" and dict(ev.extra)["gat_direction"] == "3"


def test_stationary_object_has_no_direction() -> None:
    b = builder(bearing=0.0)
    drive(b, [[600, 300 + (i % 2), 700, 380 + (i % 2)] for i in range(20)])
    ev = b.flush()[0]
    assert ev.heading_deg is None and ev.direction is None
    assert "gat_direction" not in dict(ev.extra)


def test_an_adopted_track_was_first_seen_when_the_track_it_took_over_was() -> None:
    """A plate-first track (first seen at 1.0 s) handed to the tracker's track that opens at
    2.0 s: the tracker's event says the vehicle was first seen at 1.0 s; handed before its first
    picture or after, the same; a track adopting a later one keeps its own first sight."""
    for handed_first in (True, False):
        b = builder()
        b.update(
            make_frame(25, 1.0, [(100, 100, 300, 300)]), make_tracks([(100, 100, 300, 300)], [900])
        )
        if handed_first:
            b.adopt(900, 7)
        b.update(
            make_frame(50, 2.0, [(110, 110, 310, 310)]), make_tracks([(110, 110, 310, 310)], [7])
        )
        if not handed_first:
            b.adopt(900, 7)
        b.update(
            make_frame(75, 3.0, [(120, 120, 320, 320)]), make_tracks([(120, 120, 320, 320)], [7])
        )
        (event,) = b.finish([7])
        assert event.first_pts == 1.0 and event.first_seen_ms == T0_MS + 1000, handed_first
        assert event.last_pts == 3.0
    b = builder()
    b.update(make_frame(25, 1.0, [(100, 100, 300, 300)]), make_tracks([(100, 100, 300, 300)], [7]))
    b.update(
        make_frame(50, 2.0, [(110, 110, 310, 310)]), make_tracks([(110, 110, 310, 310)], [900])
    )
    b.adopt(900, 7)
    (event,) = b.finish([7])
    assert event.first_pts == 1.0
