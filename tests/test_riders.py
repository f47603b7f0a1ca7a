"""Rider ↔ two-wheeler association helpers (pipeline.riders) with tiny builders."""

from __future__ import annotations

import numpy as np

from sharpeyes.pipeline.riders import (
    RiderMemory,
    RiderParams,
    along_and_lateral,
    carrier_ids,
    cover_matrix,
    rides_along,
    suppress_riders,
    two_wheeler_mask,
)
from sharpeyes.pipeline.types import ObjectKind, Tracks

P, M, N = ObjectKind.PERSON, ObjectKind.MOTOR_VEHICLE, ObjectKind.NON_MOTOR
CLASS = {P: 0, N: 1, M: 3}


def tracks(
    *rows: tuple[int, ObjectKind, tuple[float, float, float, float]], car: bool = False
) -> Tracks:
    """Rows of (track id, kind, box); motor vehicles are motorcycles unless ``car``."""
    n = len(rows)
    cls = [2 if (k is M and car) else CLASS[k] for _, k, _ in rows]
    return Tracks(
        xyxy=np.array([b for *_, b in rows], np.float32).reshape(-1, 4),
        confidence=np.full(n, 0.8, np.float32),
        class_id=np.array(cls, np.int64),
        kind=np.array([int(k) for _, k, _ in rows], np.int8),
        track_id=np.array([t for t, _, _ in rows], np.int64),
        detected=np.ones(n, np.bool_),
    )


RIDER = (100.0, 100.0, 130.0, 170.0)  # a person sitting on...
BIKE = (95.0, 130.0, 135.0, 185.0)  # ...this motorbike (seen from behind)
FAR = (300.0, 100.0, 330.0, 170.0)


def test_cover_matrix_is_share_of_the_smaller_box() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    b = np.array([[5, 0, 25, 10]], np.float32)
    np.testing.assert_allclose(cover_matrix(a, b), [[0.5], [0.0]])
    assert cover_matrix(a[:0], b).shape == (0, 1)


def test_rider_on_a_motorbike_gets_its_carrier_id() -> None:
    t = tracks((1, P, RIDER), (2, M, BIKE), (3, P, FAR))
    assert carrier_ids(t).tolist() == [2, -1, -1]
    assert suppress_riders(t).tolist() == [True, False, False]
    assert two_wheeler_mask(t).tolist() == [False, True, False]


def test_bicycles_carry_riders_but_cars_do_not() -> None:
    assert carrier_ids(tracks((1, P, RIDER), (5, N, BIKE))).tolist() == [5, -1]
    assert carrier_ids(tracks((1, P, RIDER), (6, M, BIKE), car=True)).tolist() == [-1, -1]


def test_walker_behind_a_bike_is_not_a_rider() -> None:
    below = (100.0, 150.0, 130.0, 220.0)  # standing lower than the bike: top below its top
    beside = (128.0, 100.0, 158.0, 170.0)  # centre outside the bike's width
    assert carrier_ids(tracks((1, P, below), (2, M, BIKE))).tolist() == [-1, -1]
    assert carrier_ids(tracks((1, P, beside), (2, M, BIKE))).tolist() == [-1, -1]


def test_best_covering_two_wheeler_wins() -> None:
    other = (60.0, 150.0, 120.0, 200.0)
    assert carrier_ids(tracks((1, P, RIDER), (7, M, other), (2, M, BIKE)))[0] == 2


def test_rider_memory_is_sticky_and_evicts() -> None:
    mem = RiderMemory(RiderParams(min_rider_frames=2, rider_share=0.3), stale_s=1.0)
    on = tracks((1, P, RIDER), (2, M, BIKE))
    off = tracks((1, P, RIDER))
    assert mem.update(on, 0.0).tolist() == [False, False]  # one frame is not enough
    assert mem.update(on, 0.1).tolist() == [True, False]
    assert mem.update(off, 0.2).tolist() == [True]  # bike lost: still a rider
    assert mem.is_rider(1)
    mem.update(tracks(), 5.0)
    assert not mem.is_rider(1)


def test_a_track_fragment_on_a_bike_in_every_frame_is_a_rider() -> None:
    """A 1-frame piece of a rider's broken track can never reach ``min_rider_frames``; sat on a
    bike in every frame it was seen, it is a rider. A longer track still needs the count."""
    mem = RiderMemory(RiderParams(min_rider_frames=2, rider_share=0.3))
    mem.update(tracks((1, P, RIDER), (2, M, BIKE)), 0.0)
    assert mem.is_rider(1)
    mem.update(tracks((1, P, RIDER)), 0.1)  # seen again without the bike: 1 of 2 frames
    assert not mem.is_rider(1)
    walker = RiderMemory(RiderParams(min_rider_frames=2, rider_share=0.3))
    walker.update(tracks((3, P, (300.0, 100.0, 330.0, 170.0)), (2, M, BIKE)), 0.0)
    assert not walker.is_rider(3)  # seen once, not on the bike
    assert not walker.is_rider(99)  # never seen


def test_rides_along_needs_speed_along_travel_not_sideways() -> None:
    up = (0.0, -1.0)
    diag = 800.0  # min speed 0.025 * 800 = 20 px/s
    assert along_and_lateral((0, 100), (3, 60), up) == (40.0, 3.0)
    assert rides_along((0, 100), 0.0, (0, 60), 1.0, travel=up, diag=diag)  # 40 px/s up the lane
    assert not rides_along((0, 100), 0.0, (0, 90), 1.0, travel=up, diag=diag)  # walking: 10 px/s
    assert not rides_along((0, 100), 0.0, (80, 60), 1.0, travel=up, diag=diag)  # mostly across
    assert not rides_along((0, 100), 0.0, (0, 140), 1.0, travel=up, diag=diag)  # backwards
    assert not rides_along((0, 100), 1.0, (0, 60), 1.0, travel=up, diag=diag)  # no time
