"""Occupants (pipeline/occupants.py): a person seen inside a car through its windscreen is not a
pedestrian — no person_seen event; a pedestrian in front of a bus still is one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.occupants import OccupantMemory, inside, vehicle_boxes
from sharpeyes.pipeline.types import Detections, ObjectKind, Tracks
from tests.conftest import need

PERSON, MV, NM = int(ObjectKind.PERSON), int(ObjectKind.MOTOR_VEHICLE), int(ObjectKind.NON_MOTOR)
CAR, BUS, MOTORCYCLE, BICYCLE = 2, 5, 3, 1


def _tracks(*rows: tuple[int, int, int, tuple[float, float, float, float]]) -> Tracks:
    """Rows of (track id, kind, class, box)."""
    return Tracks(
        xyxy=np.array([r[3] for r in rows], np.float32).reshape(-1, 4),
        confidence=np.full(len(rows), 0.8, np.float32),
        class_id=np.array([r[2] for r in rows], np.int64),
        kind=np.array([r[1] for r in rows], np.int8),
        track_id=np.array([r[0] for r in rows], np.int64),
        detected=np.ones(len(rows), np.bool_),
        class_votes=np.zeros((len(rows), 8), np.float32),
    )


CAR_FRONT = (100.0, 50.0, 500.0, 360.0)  # a checkpoint car filling the picture
DRIVER = (300.0, 80.0, 400.0, 200.0)  # behind the windscreen, chest up
WALKER_IN_FRONT_OF_BUS = (250.0, 150.0, 290.0, 355.0)  # feet at the bus box's bottom


def test_a_driver_behind_the_windscreen_is_inside_a_walker_in_front_of_a_bus_is_not() -> None:
    t = _tracks(
        (1, MV, CAR, CAR_FRONT),
        (2, PERSON, 0, DRIVER),
        (3, MV, BUS, (200.0, 60.0, 600.0, 360.0)),
        (4, PERSON, 0, WALKER_IN_FRONT_OF_BUS),
        (5, PERSON, 0, (520.0, 10.0, 560.0, 120.0)),  # outside every vehicle
    )
    assert inside(t, vehicle_boxes(t), 480).tolist() == [False, True, False, False, False]
    # the car leaving at the picture's bottom edge, its driver at the edge with it: no ground
    # band to see, the box test alone decides
    leaving = _tracks(
        (1, MV, CAR, (0.0, 133.0, 452.0, 359.0)), (2, PERSON, 0, (248, 263, 367, 360))
    )
    assert inside(leaving, vehicle_boxes(leaving), 360).tolist() == [False, True]
    assert inside(leaving, vehicle_boxes(leaving), 480).tolist() == [False, False]


def test_a_car_only_detected_still_holds_its_driver() -> None:
    """The tracker has not confirmed the car (scored 0.3): its detection in the picture is
    enough."""
    memory = OccupantMemory()
    car = Detections.create(np.array([CAR_FRONT], np.float32), [0.3], [CAR], [MV])
    for i in range(3):
        memory.update(_tracks((2, PERSON, 0, DRIVER)), car, i * 0.2, 480)
    assert memory.is_occupant(2)


def test_a_rider_on_a_motorbike_is_not_an_occupant() -> None:
    """A person inside a two-wheeler's box is a rider (pipeline/riders.py), not an occupant."""
    t = _tracks((1, NM, MOTORCYCLE, (90, 60, 210, 330)), (2, PERSON, 0, (110, 70, 190, 250)))
    assert not inside(t, vehicle_boxes(t), 360).any()
    t = _tracks((1, MV, MOTORCYCLE, (90, 60, 210, 330)), (2, PERSON, 0, (110, 70, 190, 250)))
    assert not inside(t, vehicle_boxes(t), 360).any()


def test_a_person_partly_outside_the_car_is_not_inside() -> None:
    half_out = (450.0, 80.0, 560.0, 200.0)  # half of it right of the car
    assert not inside(
        _tracks((1, MV, CAR, CAR_FRONT), (2, PERSON, 0, half_out)),
        np.array([CAR_FRONT], np.float32),
        360,
    ).any()


def test_the_decision_is_the_tracks_whole_life() -> None:
    """Inside in half its pictures: an occupant. A walker passing a parked car, inside its box
    in one picture of six, is a pedestrian; so is a driver who got out and walked away for
    longer than she sat in the car."""
    memory = OccupantMemory()
    for i in range(6):
        driver_box = DRIVER if i % 2 == 0 else (450.0, 80.0, 560.0, 200.0)
        walker = (460.0 + 60 * i, 100.0, 500.0 + 60 * i, 200.0)  # in the car's box once
        memory.update(
            _tracks((1, MV, CAR, CAR_FRONT), (2, PERSON, 0, driver_box), (3, PERSON, 0, walker)),
            Detections.empty(),
            i * 0.2,
            480,
        )
    assert memory.is_occupant(2)
    assert not memory.is_occupant(3)
    assert not memory.is_occupant(99)  # never seen
    for i in range(6, 20):  # gets out and walks away
        memory.update(
            _tracks((2, PERSON, 0, (600.0, 80.0, 640.0, 200.0))), Detections.empty(), i * 0.2, 480
        )
    assert not memory.is_occupant(2)


def test_the_drivers_of_the_checkpoint_clip_are_not_reported_as_pedestrians(
    sample_videos: Path, tmp_path: Path
) -> None:
    """plates_closeup_beijing frames 560–660 (the van, then the green-over-yellow taxi, their
    drivers behind the glass), the camera with structuring only: the drivers make no person_seen
    event — counted as occupants — and with ``suppress_occupants: false`` they would."""
    from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
    from tests.test_structuring_eval import _segment

    src = sample_videos / "plates_closeup_beijing_640x360.mp4"
    need(src.is_file(), f"{src} not found")
    seg = tmp_path / "seg.mp4"
    _segment(src, seg, 560, 660)
    counts = {}
    for suppress in (True, False):
        cam = CameraConfig.model_validate(
            {
                "id": "kakou",
                "url": str(seg),
                "near_field": "on",
                "structuring": {"enabled": True},
                "events": {"suppress_occupants": suppress},
            }
        )
        out = tmp_path / str(suppress)
        result = analyze_video(AnalyzeOptions(video=seg, out=out, progress=False, camera=cam))
        persons = result.summary.events_by_type.get("person_seen", 0)
        counts[suppress] = (persons, result.summary.occupants)
    (kept, counted), (unfiltered, zero) = counts[True], counts[False]
    assert kept == 0 and counted >= 1 and zero == 0
    assert unfiltered == counted
