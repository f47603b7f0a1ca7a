"""The per-camera detection filter: one two-wheeler detected as both a bicycle and a motorcycle
is one box (the higher scoring), never two tracks of different kinds; everything else the
detector's per-class NMS kept stays (two motorbikes side by side in a queue, a bicycle beside a
motorbike)."""

from __future__ import annotations

import numpy as np

from sharpeyes.models.classes import COCO80_NAMES
from sharpeyes.pipeline.detection_filter import CameraDetectionFilter, DetectionPolicy
from sharpeyes.pipeline.types import Detections, ObjectKind

BICYCLE, CAR, MOTORCYCLE = 1, 2, 3


def dets(*rows: tuple[int, float, tuple[float, float, float, float]]) -> Detections:
    return Detections(
        xyxy=np.array([r[2] for r in rows], np.float32),
        confidence=np.array([r[1] for r in rows], np.float32),
        class_id=np.array([r[0] for r in rows], np.int64),
        kind=np.zeros(len(rows), np.int8),
    )


def hanoi() -> CameraDetectionFilter:  # motorbikes are motor vehicles there
    return CameraDetectionFilter.for_names(
        DetectionPolicy(motorcycle_is_non_motor=False), COCO80_NAMES
    )


def test_one_two_wheeler_seen_as_both_classes_is_one_box() -> None:
    out = hanoi()(
        dets(
            (MOTORCYCLE, 0.62, (100, 100, 140, 180)),
            (BICYCLE, 0.48, (102, 104, 141, 181)),  # IoU ≈ 0.87 with the motorcycle
        )
    )
    assert out.class_id.tolist() == [MOTORCYCLE]
    assert out.kind.tolist() == [int(ObjectKind.MOTOR_VEHICLE)]
    # the higher score wins whichever class it is
    out = hanoi()(
        dets((MOTORCYCLE, 0.40, (100, 100, 140, 180)), (BICYCLE, 0.70, (101, 101, 140, 181)))
    )
    assert out.class_id.tolist() == [BICYCLE]


def test_boxes_that_are_different_objects_all_stay() -> None:
    out = hanoi()(
        dets(
            (MOTORCYCLE, 0.8, (100, 100, 140, 180)),
            (MOTORCYCLE, 0.7, (104, 100, 144, 180)),  # same class: the detector's NMS decided
            (BICYCLE, 0.6, (125, 100, 165, 180)),  # beside it: IoU ≈ 0.27 with the first
            (CAR, 0.9, (100, 100, 140, 180)),  # not a two-wheeler
        )
    )
    assert sorted(out.class_id.tolist()) == [BICYCLE, CAR, MOTORCYCLE, MOTORCYCLE]


def test_a_model_without_the_two_classes_is_unaffected() -> None:
    f = CameraDetectionFilter.for_names(DetectionPolicy(), ("person", "car", "truck"))
    out = f(dets((1, 0.9, (0, 0, 10, 10)), (1, 0.8, (0, 0, 10, 10))))
    assert len(out) == 2
