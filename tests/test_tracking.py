"""Unit tests of the ByteTrack tracker, its Kalman filter, matching and geometry helpers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from sharpeyes.pipeline.config import TrackerConfig
from sharpeyes.pipeline.geometry import iou_matrix
from sharpeyes.pipeline.protocols import Tracker
from sharpeyes.pipeline.tracking import ByteTracker, kalman
from sharpeyes.pipeline.tracking.matching import BLOCKED_COST, assign, iou_cost
from sharpeyes.pipeline.types import Detections, ObjectKind, Tracks

CAR, BUS, TRUCK, PERSON_CLS = 2, 5, 7, 0
MV, PERSON = int(ObjectKind.MOTOR_VEHICLE), int(ObjectKind.PERSON)


def box(cx: float, cy: float, w: float = 60.0, h: float = 40.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def dets(
    boxes: Sequence[Sequence[float]],
    scores: Sequence[float] | float = 0.9,
    cls: Sequence[int] | int = CAR,
    kind: Sequence[int] | int = MV,
) -> Detections:
    n = len(boxes)

    def as_list(v: Sequence[float] | Sequence[int] | float) -> list[float]:
        return [float(x) for x in v] if isinstance(v, Sequence) else [float(v)] * n

    return Detections.create(
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        as_list(scores),
        as_list(cls),
        as_list(kind),
    )


def ids_of(tracks: Tracks) -> list[int]:
    return [int(i) for i in tracks.track_id]


def moving(x0: float, vx: float, pts: float, y: float = 300.0) -> list[float]:
    return box(x0 + vx * pts, y)


# -- geometry and Kalman -------------------------------------------------------------------


def test_iou_matrix_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    m = iou_matrix(a, b)
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m[0], [1.0, 50 / 150, 0.0], rtol=1e-6)
    assert (m[1] == 0).all()  # degenerate box
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)


def test_kalman_predict_uses_dt() -> None:
    mean, cov = kalman.initiate(kalman.xyxy_to_measurement(np.array([box(100, 100)])))
    mean[0, 4] = 300.0  # vx, px/s
    one, cov_one = kalman.predict(mean, cov, np.array([0.2]))
    assert one[0, 0] == pytest.approx(160.0)
    small = mean
    cov_small = cov
    for _ in range(6):
        small, cov_small = kalman.predict(small, cov_small, np.array([0.2 / 6]))
    assert small[0, 0] == pytest.approx(160.0)  # same motion whatever the step count
    # uncertainty grows with elapsed time, not with the number of steps
    _, cov_long = kalman.predict(mean, cov, np.array([1.0]))
    assert cov_long[0, 0, 0] > cov_one[0, 0, 0] > cov[0, 0, 0]
    assert cov_small[0, 0, 0] == pytest.approx(cov_one[0, 0, 0], rel=0.2)
    same, cov_same = kalman.predict(mean, cov, np.array([0.0]))
    np.testing.assert_array_equal(same, mean)
    np.testing.assert_allclose(cov_same, cov)


def test_kalman_update_pulls_towards_measurement() -> None:
    mean, cov = kalman.initiate(kalman.xyxy_to_measurement(np.array([box(100, 100)])))
    mean, cov = kalman.predict(mean, cov, np.array([0.1]))
    z = kalman.xyxy_to_measurement(np.array([box(110, 100)]))
    new, new_cov = kalman.update(mean, cov, z)
    assert 100.0 < new[0, 0] < 110.0
    assert new[0, 4] > 0.0  # velocity learned from the innovation
    assert new_cov[0, 0, 0] < cov[0, 0, 0]


def test_matching_gates_kind_and_iou() -> None:
    tracks = np.array([box(100, 100), box(300, 100)], np.float32)
    detections = np.array([box(102, 100), box(300, 100), box(500, 100)], np.float32)
    cost = iou_cost(tracks, np.array([MV, MV]), detections, np.array([MV, PERSON, MV]), min_iou=0.2)
    assert cost[1, 1] == BLOCKED_COST  # same place, other kind
    assert cost[0, 2] == BLOCKED_COST  # no overlap
    a = assign(cost, max_cost=1.0)
    assert a.rows.tolist() == [0] and a.cols.tolist() == [0]
    assert a.unmatched_rows.tolist() == [1] and a.unmatched_cols.tolist() == [1, 2]


# -- tracker -------------------------------------------------------------------------------


def test_implements_protocol() -> None:
    assert isinstance(ByteTracker(TrackerConfig()), Tracker)


def test_ids_only_for_confirmed_tracks() -> None:
    t = ByteTracker(TrackerConfig(min_hits=3))
    # a one-frame false positive must not consume an id
    assert len(t.update(dets([box(800, 500)]), 0.0)) == 0
    outs = [t.update(dets([moving(100, 200, p)]), p) for p in (0.1, 0.2, 0.3, 0.4)]
    assert [len(o) for o in outs] == [0, 0, 1, 1]
    assert ids_of(outs[2]) == [1] and ids_of(outs[3]) == [1]
    assert bool(outs[2].detected[0])
    assert t.pop_finished() == []  # the tentative false positive never had an id


def test_low_score_detections_extend_but_never_start_tracks() -> None:
    t = ByteTracker(TrackerConfig(min_hits=1))
    t.update(dets([box(100, 100)], 0.9), 0.0)
    out = t.update(dets([box(104, 100), box(600, 600)], [0.3, 0.3]), 0.1)
    assert ids_of(out) == [1]  # second stage kept the track; the lone weak box opened nothing
    assert out.confidence[0] == pytest.approx(0.3)
    assert len(t) == 1


def test_two_instances_have_their_own_ids() -> None:
    a, b = ByteTracker(TrackerConfig(min_hits=1)), ByteTracker(TrackerConfig(min_hits=1))
    a.update(dets([box(100, 100), box(400, 100)]), 0.0)
    out_b = b.update(dets([box(100, 100)]), 0.0)
    out_a = a.update(dets([box(100, 100), box(400, 100), box(700, 100)]), 0.04)
    assert ids_of(out_b) == [1]
    assert ids_of(out_a) == [1, 2, 3]


def test_crossing_objects_keep_ids() -> None:
    t = ByteTracker(TrackerConfig())
    fps, first = 30.0, None
    for f in range(90):
        p = f / fps
        # two cars in adjacent lanes pass each other head-on, boxes overlapping at the middle
        out = t.update(dets([moving(100, 300, p, 300), moving(700, -300, p, 315)]), p)
        if f == 5:
            first = dict(zip(ids_of(out), out.xyxy[:, 0].tolist(), strict=True))
    assert first is not None and len(first) == 2
    left_id = min(first, key=lambda k: first[k])
    assert ids_of(out) == sorted(first)
    final = dict(zip(ids_of(out), out.xyxy[:, 0].tolist(), strict=True))
    assert final[left_id] > 700  # the car that started left is now on the right
    assert t.stats.tracks_confirmed == 2


def run_gap(fps: float, gap_s: float, buffer_s: float = 1.5) -> tuple[list[int], list[int]]:
    """Object moving right at 150 px/s, hidden for ``gap_s`` seconds after 1 s.

    Returns the ids seen before and after the gap (one each when the id was kept).
    """
    t = ByteTracker(TrackerConfig(lost_buffer_s=buffer_s))
    before: set[int] = set()
    after: set[int] = set()
    n = round((2.0 + gap_s) * fps)
    for f in range(n):
        p = f / fps
        hidden = 1.0 <= p < 1.0 + gap_s
        out = t.update(dets([] if hidden else [moving(100, 150, p)]), p)
        (before if p < 1.0 else after).update(ids_of(out))
    return sorted(before), sorted(after)


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_occlusion_shorter_than_buffer_keeps_id(fps: float) -> None:
    before, after = run_gap(fps, gap_s=1.2)
    assert before == [1]
    assert after == [1]


@pytest.mark.parametrize("fps", [5.0, 30.0])
def test_occlusion_longer_than_buffer_gives_new_id(fps: float) -> None:
    before, after = run_gap(fps, gap_s=2.0)
    assert before == [1]
    assert after == [2]


def test_lost_track_is_finished_after_buffer_seconds() -> None:
    t = ByteTracker(TrackerConfig(lost_buffer_s=1.0, min_hits=1))
    t.update(dets([box(100, 100)]), 10.0)
    t.update(dets([]), 10.5)
    t.update(dets([]), 11.0)
    assert t.pop_finished() == [] and len(t) == 1  # exactly at the buffer: still kept
    t.update(dets([]), 11.2)
    assert t.pop_finished() == [1]
    assert len(t) == 0  # state evicted
    assert t.pop_finished() == []


def test_prediction_follows_real_time_with_skipped_frames() -> None:
    t = ByteTracker(TrackerConfig(min_hits=1), output_predicted=True)
    for f in range(10):  # 30 fps, 300 px/s
        t.update(dets([moving(100, 300, f / 30)]), f / 30)
    # the sampler skipped 11 frames: 0.4 s pass; the lost track is predicted 120 px on
    out = t.update(dets([]), 9 / 30 + 0.4, frames_skipped=11)
    assert ids_of(out) == [1] and not bool(out.detected[0])
    centre = float(out.xyxy[0, 0] + out.xyxy[0, 2]) / 2
    assert centre == pytest.approx(100 + 300 * (9 / 30 + 0.4), abs=12)
    assert t.stats.frames_skipped == 11
    # and a detection where the object really is now re-associates with the same id
    out = t.update(dets([moving(100, 300, 9 / 30 + 0.5)]), 9 / 30 + 0.5, frames_skipped=2)
    assert ids_of(out) == [1] and bool(out.detected[0])


def test_bus_truck_flip_stays_one_track_with_majority_class() -> None:
    t = ByteTracker(TrackerConfig())
    seen: set[int] = set()
    for f in range(30):
        p = f / 10
        cls = TRUCK if f % 3 == 0 else BUS  # bus 2 of 3 frames
        out = t.update(dets([moving(100, 100, p)], cls=cls), p)
        seen.update(ids_of(out))
    assert seen == {1}
    assert int(out.class_id[0]) == BUS


def test_person_never_continues_a_car_track() -> None:
    t = ByteTracker(TrackerConfig(min_hits=1))
    t.update(dets([box(100, 100)], kind=MV, cls=CAR), 0.0)
    out = t.update(dets([box(100, 100)], kind=PERSON, cls=PERSON_CLS), 0.1)
    assert ids_of(out) == [2]
    assert int(out.kind[0]) == PERSON


def test_state_is_bounded_and_lost_tracks_are_evicted_first() -> None:
    cfg = TrackerConfig(max_tracks=5, min_hits=1, lost_buffer_s=30.0)
    t = ByteTracker(cfg)
    t.update(dets([box(100 + 100 * i, 100) for i in range(3)]), 0.0)  # ids 1..3
    t.update(dets([box(100, 100)]), 0.1)  # 2 and 3 become lost
    out = t.update(dets([box(100, 100)] + [box(100 * i, 600) for i in range(1, 6)]), 0.2)
    assert len(t) <= 5
    assert t.stats.tracks_evicted == 2
    assert sorted(t.pop_finished()) == [2, 3]
    assert 1 in ids_of(out)
    assert t.stats.detections_dropped == 5 - 4  # 1 kept + 4 new fit, one left out
    many = dets([box(50 * i, 900) for i in range(40)])
    t.update(many, 0.3)
    assert len(t) <= 5


def test_reset_finishes_everything_and_keeps_counting() -> None:
    t = ByteTracker(TrackerConfig(min_hits=1))
    t.update(dets([box(100, 100), box(400, 100)]), 0.0)
    t.reset()
    assert sorted(t.pop_finished()) == [1, 2]
    assert len(t) == 0
    out = t.update(dets([box(100, 100)]), 0.0)
    assert ids_of(out) == [3]
    assert t.end_of_stream() == [3]


def test_pts_going_back_finishes_tracks() -> None:
    t = ByteTracker(TrackerConfig(min_hits=1))
    t.update(dets([box(100, 100)]), 5.0)
    out = t.update(dets([box(100, 100)]), 1.0)
    assert t.pop_finished() == [1]
    assert ids_of(out) == [2]
    assert t.stats.clock_resets == 1


def test_bad_input_is_rejected() -> None:
    t = ByteTracker(TrackerConfig())
    with pytest.raises(ValueError, match="pts"):
        t.update(dets([]), float("nan"))
    with pytest.raises(ValueError, match="frames_skipped"):
        t.update(dets([]), 0.0, frames_skipped=-1)


def test_thirty_objects_stay_thirty_tracks() -> None:
    rng = np.random.default_rng(1)
    n = 30
    start = np.stack([rng.uniform(0, 1800, n), np.arange(n) * 35.0], axis=1)
    vel = rng.uniform(-150, 150, (n, 2))
    t = ByteTracker(TrackerConfig())
    for f in range(60):
        p = f / 30
        c = start + vel * p
        xyxy = np.concatenate([c, c + np.array([60.0, 30.0])], axis=1) + rng.normal(0, 1.0, (n, 4))
        out = t.update(dets(xyxy.tolist(), rng.uniform(0.55, 0.95, n).tolist()), p)
    assert sorted(ids_of(out)) == list(range(1, n + 1))


def test_tracks_are_clipped_to_the_picture_and_unchanged_inside_it() -> None:
    """The tracker's smoothed box of a vehicle leaving at the bottom edge can stand below the
    picture (480.8 px on a 480 px frame): the runner clips it, so a zone drawn to the edge
    still holds the vehicle's road point."""
    inside = Tracks(
        xyxy=np.array([[10.0, 20.0, 110.0, 200.0]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([2]),
        kind=np.array([int(ObjectKind.MOTOR_VEHICLE)], np.int8),
        track_id=np.array([7]),
        detected=np.array([True]),
    )
    assert inside.within(640, 480) is inside
    out = Tracks(
        xyxy=np.array([[-3.0, 400.0, 120.0, 480.8], [600.0, 10.0, 652.5, 90.0]], np.float32),
        confidence=np.array([0.9, 0.5], np.float32),
        class_id=np.array([2, 3]),
        kind=np.array([int(ObjectKind.MOTOR_VEHICLE)] * 2, np.int8),
        track_id=np.array([7, 8]),
        detected=np.array([False, True]),
    )
    clipped = out.within(640, 480)
    assert clipped.xyxy.tolist() == [[0.0, 400.0, 120.0, 480.0], [600.0, 10.0, 640.0, 90.0]]
    assert clipped.track_id.tolist() == [7, 8] and clipped.detected.tolist() == [False, True]
    assert out.xyxy[0, 3] == pytest.approx(480.8)  # the tracker's own array is not changed
    assert clipped.anchors()[0].tolist() == [60.0, 480.0]
