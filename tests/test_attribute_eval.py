"""benchmarks/attribute_eval.py: labels are matched to tracks by box and scored on the decision."""

from __future__ import annotations

import numpy as np

from benchmarks.attribute_eval import Recorder, iou, score_clip, score_types
from sharpeyes.pipeline.types import Frame, ObjectKind, Tracks

RIDER = (100.0, 60.0, 140.0, 160.0)
BIKE = (95.0, 110.0, 145.0, 190.0)
WALKER = (300.0, 60.0, 330.0, 160.0)


def tracks(*rows: tuple[int, ObjectKind, tuple[float, float, float, float]]) -> Tracks:
    return Tracks(
        xyxy=np.array([b for _, _, b in rows], np.float32).reshape(-1, 4),
        confidence=np.full(len(rows), 0.9, np.float32),
        class_id=np.array([0 if k is ObjectKind.PERSON else 3 for _, k, _ in rows], np.int64),
        kind=np.array([int(k) for _, k, _ in rows], np.int8),
        track_id=np.array([t for t, _, _ in rows], np.int64),
        detected=np.ones(len(rows), np.bool_),
    )


def frame(seq: int) -> Frame:
    return Frame("cam", seq, seq / 6, 0, np.zeros((240, 400, 3), np.uint8))


def test_persons_are_matched_by_box_and_scored_on_the_rider_decision() -> None:
    rec = Recorder()
    for seq in range(4):
        rows = [(1, ObjectKind.PERSON, RIDER), (2, ObjectKind.MOTOR_VEHICLE, BIKE)]
        rows.append((3, ObjectKind.PERSON, WALKER))
        rec(frame(seq), None, tracks(*rows), {}, [])  # type: ignore[arg-type]
    assert rec.memory.is_rider(1) and not rec.memory.is_rider(3)
    assert set(rec.boxes[2]) == {1, 3}  # persons only
    persons = [
        {"track": 10, "rider": True, "views": [{"frame": 1, "box": list(RIDER)}]},
        {"track": 11, "rider": True, "views": [{"frame": 2, "box": list(WALKER)}]},  # missed
        {"track": 12, "rider": False, "views": [{"frame": 3, "box": list(WALKER)}]},
        {"track": 13, "rider": False, "views": [{"frame": 3, "box": [0.0, 0.0, 20.0, 20.0]}]},
    ]
    c = score_clip(persons, rec, "clip")
    s = c.summary()
    assert (s["rider_as_rider"], s["rider_as_walker"], s["walker_as_walker"]) == (1, 1, 1)
    assert s["walker_as_rider"] == 0 and s["unmatched"] == 1
    assert s["recall"] == 0.5 and s["precision"] == 1.0
    assert c.misses == ["clip track 11 → 3: labelled rider=True"]
    assert iou(RIDER, RIDER) == 1.0 and iou(RIDER, WALKER) == 0.0


def test_two_wheelers_are_typed_by_their_tracks_class_votes() -> None:
    rec = Recorder()
    bicycle = Tracks(
        xyxy=np.array([BIKE, BIKE], np.float32),
        confidence=np.full(2, 0.9, np.float32),
        class_id=np.array([1, 3], np.int64),  # bicycle then motorcycle
        kind=np.array([int(ObjectKind.NON_MOTOR)] * 2, np.int8),
        track_id=np.array([5, 6], np.int64),
        detected=np.array([True, False]),  # track 6 only predicted here
    )
    rec(frame(0), None, bicycle, {}, [])  # type: ignore[arg-type]
    rec(frame(1), None, tracks((5, ObjectKind.MOTOR_VEHICLE, BIKE)), {}, [])  # type: ignore[arg-type]
    assert rec.votes == {5: {1: 1, 3: 1}}  # predicted rows do not vote
    assert rec.class_name(5) == "bicycle"  # a tie goes to the lower class id, as in events
    assert rec.class_name(99) == "none"
    wheels = [
        {"type": "motorcycle", "view": {"frame": 1, "box": list(BIKE)}},
        {"type": "none", "view": {"frame": 0, "box": list(BIKE)}},
        {"type": "bicycle", "view": {"frame": 1, "box": list(WALKER)}},  # no track there
    ]
    t = score_types(wheels, rec).summary()
    assert (t["typed"], t["correct"], t["not_two_wheelers"], t["unmatched"]) == (1, 0, 1, 1)
    assert t["confusion"] == {"motorcycle": {"bicycle": 1}, "none": {"bicycle": 1}}
