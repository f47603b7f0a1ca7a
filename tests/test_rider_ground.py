"""A rider's road point learned from the video: the camera's horizon and the rider's height."""

from __future__ import annotations

import numpy as np
import pytest

from sharpeyes.pipeline.riders import RiderParams
from sharpeyes.pipeline.rules.rider_fusion import RiderFeed
from sharpeyes.pipeline.rules.rider_ground import Horizon, RiderGround
from sharpeyes.pipeline.types import Anchor, Frame, ObjectKind, Tracks

FRAME_H = 480.0
Y_H = 40.0  # the horizon of the synthetic camera: heights grow as 0.2 · (y − 40)
BLANK = np.zeros((1, 1, 3), np.uint8)


def _walk(horizon: Horizon, tid: int, start_pts: float, rng: np.random.Generator) -> None:
    """One upright person walking from y 250 to 450 px, its height 0.2·(y − Y_H) ± 2 %."""
    for k, y in enumerate(np.linspace(250.0, 450.0, 12)):
        h = 0.2 * (y - Y_H) * (1.0 + rng.normal(0.0, 0.02))
        horizon.add(tid, float(y), float(h), start_pts + k * 0.2)


def test_the_horizon_is_learned_from_finished_person_tracks() -> None:
    rng = np.random.default_rng(7)
    horizon = Horizon(FRAME_H, prior=0.0)
    for tid in range(4):
        _walk(horizon, tid, tid * 0.5, rng)
    horizon.close_stale(100.0)
    assert horizon.value == 0.0  # four tracks: still the prior
    _walk(horizon, 9, 100.0, rng)
    assert horizon.value == 0.0  # a track still open does not count
    horizon.close_stale(200.0)
    assert horizon.value == pytest.approx(Y_H, abs=15.0)


def test_boxes_cut_by_the_bottom_edge_and_static_tracks_give_no_horizon() -> None:
    horizon = Horizon(FRAME_H, min_tracks=1)
    for k in range(10):
        horizon.add(1, FRAME_H, 50.0 + k, k * 0.2)  # entering: cut by the frame's bottom
        horizon.add(2, 300.0 + 0.5 * k, 60.0, k * 0.2)  # standing: no depth change
    horizon.close_stale(100.0)
    assert horizon.value == horizon.prior


def _rider(y_wheel: float, a: float = 0.25, y_h: float = Y_H) -> float:
    """Top of a rider whose height over the road is ``a · (wheel − y_h)``."""
    return y_wheel - a * (y_wheel - y_h)


def test_the_rider_height_carries_the_wheel_to_a_new_place() -> None:
    """Learned where the bike is seen (feet down in the queue, box bottom near the wheel), the
    road point is found 100 px further on with the legs hidden (box bottom 30 % up; hb10 of
    hanoi_b: the wheel 0.47 box heights under the box)."""
    ground = RiderGround()
    for y in (440.0, 438.0, 436.0):
        top = _rider(y)
        ground.add_pair(top, y - 5.0, y, Y_H)
    y_new = 336.0
    top = _rider(y_new)
    h_seen = 0.7 * (y_new - top)  # legs hidden: the box ends well above the wheel
    got = ground.road_y(top, top + h_seen, Y_H)
    assert got == pytest.approx(y_new, abs=1.0)
    fixed = top + h_seen + RiderParams().ground_offset * h_seen
    assert abs(fixed - y_new) > 9.0  # what the fixed share gave: 1.5 frames of motion at 6 fps


def test_a_wheel_that_is_not_under_the_rider_teaches_nothing() -> None:
    ground = RiderGround()
    ground.add_pair(300.0, 380.0, 470.0, Y_H)  # 1.1 box heights below the feet: another bike
    assert ground.road_y(300.0, 380.0, Y_H) is None


def _tracks(rows: list[tuple[int, ObjectKind, list[float], bool]]) -> Tracks:
    return Tracks(
        xyxy=np.array([b for _, _, b, _ in rows], np.float32).reshape(-1, 4),
        confidence=np.full(len(rows), 0.8, np.float32),
        class_id=np.array([0 if k is ObjectKind.PERSON else 3 for _, k, _, _ in rows], np.int64),
        kind=np.array([int(k) for _, k, _, _ in rows], np.int8),
        track_id=np.array([t for t, _, _, _ in rows], np.int64),
        detected=np.array([d for _, _, _, d in rows], np.bool_),
    )


def test_the_feed_places_a_rider_at_its_wheel_after_the_bike_is_lost() -> None:
    """Through :class:`RiderFeed`: while the bike (track 2) is detected under the rider (1) the
    road point is the wheel; once only the person is found — its box shorter, the legs hidden
    behind the bike — the road point stays on the wheel's path instead of following the box."""
    feed = RiderFeed(RiderParams(), [int(ObjectKind.MOTOR_VEHICLE)], Anchor.BOTTOM_CENTER, 480)
    y_h = feed.horizon.value  # no person track has finished yet: the prior
    wheels = np.linspace(450.0, 330.0, 13)
    got: list[tuple[float, float]] = []
    for i, y in enumerate(wheels):
        top = _rider(float(y), y_h=y_h)
        h_full = y - top
        person = [300.0, top, 340.0, top + 0.85 * h_full]
        bike = [295.0, top + 0.5 * h_full, 345.0, float(y)]
        seen = i < 6
        rows = [(1, ObjectKind.PERSON, person, True)]
        if seen:
            rows.append((2, ObjectKind.MOTOR_VEHICLE, bike, True))
        else:
            person[3] = top + 0.7 * h_full  # legs hidden once the bike is not found
        frame = Frame("cam", i, i / 6, 1_700_000_000_000 + i * 167, BLANK)
        (row,) = feed.rows(frame, _tracks(rows))
        got.append((row.obs.anchor[1], float(y)))
        assert row.obs.own_y2 == pytest.approx(person[3])
    for anchor_y, wheel_y in got:
        assert anchor_y == pytest.approx(wheel_y, abs=3.0)
