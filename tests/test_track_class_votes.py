"""A track's class evidence reaches the structuring stage (``Tracks.class_votes``), and a read
plate that rules a class out (GA 36: a blue plate is never a bus) drops it: the best class left
is taken when it is clear, and X99 stays where it is not. The Beijing votes are those the
tracker held at the end of each track in the run of docs/STRUCTURING.md (round 14)."""

from __future__ import annotations

import numpy as np
import pytest

from sharpeyes.pipeline.config import EventsConfig, StructuringConfig, TrackerConfig
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.structuring.vehicle import VehicleStructuring
from sharpeyes.pipeline.structuring.vehicle_class import (
    CLEAR_SHARE,
    MIN_REST_SHARE,
    PlateSize,
    decide_vehicle_class,
)
from sharpeyes.pipeline.tracking import ByteTracker
from sharpeyes.pipeline.types import Detections, Event, ObjectKind, Tracks
from tests.test_structuring_vehicle import FakeReader, reading, white_frame

COCO = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck")
CODES = {2: "K33", 3: "M21", 5: "K11", 7: "H11"}
CAR, BUS, TRUCK = 2, 5, 7
MV = int(ObjectKind.MOTOR_VEHICLE)
SMALL = PlateSize.SMALL


def car_dets(x: float, cls: int, score: float) -> Detections:
    return Detections.create([[x, 100, x + 80, 160]], [score], [cls], [MV])


# -- the tracker hands on the whole track's votes -------------------------------------------------


def test_the_tracker_carries_each_tracks_score_weighted_votes() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=1), output_predicted=True)
    script = [(CAR, 0.9), (BUS, 0.8), (BUS, 0.7), (CAR, 0.6), (TRUCK, 0.5)]
    out = Tracks.empty()
    for i, (cls, score) in enumerate(script):
        out = tracker.update(car_dets(100 + 2 * i, cls, score), i / 25)
    assert len(out) == 1
    assert out.class_votes.shape == (1, TRUCK + 1)
    assert out.votes_of(0) == pytest.approx({CAR: 1.5, BUS: 1.5, TRUCK: 0.5})
    assert out.class_id[0] == CAR  # the argmax (ties to the lower id), as before
    shares = out.class_shares()
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0, TRUCK] == pytest.approx(0.5 / 3.5)
    # a frame without a detection: the predicted track keeps its evidence, adds none
    lost = tracker.update(Detections.empty(), 5 / 25)
    assert not lost.detected[0] and lost.votes_of(0) == pytest.approx(out.votes_of(0))


def test_tracks_without_votes_stay_valid_for_every_existing_user() -> None:
    t = Tracks(
        xyxy=np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32),
        confidence=np.array([0.9, 0.8], np.float32),
        class_id=np.array([2, 5], np.int64),
        kind=np.array([MV, MV], np.int8),
        track_id=np.array([1, 2], np.int64),
        detected=np.array([True, False]),
    )
    assert t.class_votes.shape == (2, 0)  # no evidence kept, never a wrong width
    assert t[t.detected].class_votes.shape == (1, 0)
    assert t.within(15, 15).class_votes.shape == (2, 0)
    assert t.votes_of(1) == {} and t.class_shares().shape == (2, 0)
    assert Tracks.empty().class_votes.shape == (0, 0)
    with pytest.raises(ValueError, match="class_votes"):
        Tracks(
            t.xyxy,
            t.confidence,
            t.class_id,
            t.kind,
            t.track_id,
            t.detected,
            np.ones((3, 8), np.float32),
        )


def test_indexing_and_clipping_keep_each_rows_votes() -> None:
    votes = np.array([[0, 0, 3, 0, 0, 1], [0, 0, 0, 0, 0, 2]], np.float32)
    t = Tracks(
        np.array([[-5, 0, 10, 10], [5, 5, 20, 20]], np.float32),
        np.array([0.9, 0.8], np.float32),
        np.array([2, 5], np.int64),
        np.array([MV, MV], np.int8),
        np.array([1, 2], np.int64),
        np.array([True, True]),
        votes,
    )
    assert t[np.array([1])].votes_of(0) == {5: 2.0}
    assert t.within(15, 15).votes_of(0) == {2: 3.0, 5: 1.0}
    assert t.of_kind(ObjectKind.MOTOR_VEHICLE).class_shares()[0, 2] == pytest.approx(0.75)


# -- the plate drops the class it rules out -----------------------------------------------------

# Beijing (labels id → the tracker's votes at the track's end, 京 blue plates; all K33 by eye).
BEIJING_VOTES = {
    3: {"car": 20.6, "truck": 14.3, "bus": 29.4},  # Citroen taxi: event class truck, was X99
    8: {"car": 7.5, "truck": 3.5, "bus": 12.7},  # Citroen Fukang: event class bus, was K30
    9: {"car": 11.8, "truck": 4.0, "bus": 14.0},  # Chevrolet Aveo: event class bus, was K30
}


@pytest.mark.parametrize("vid", sorted(BEIJING_VOTES))
def test_a_blue_plate_drops_bus_and_the_beijing_cars_are_saloons(vid: int) -> None:
    votes = BEIJING_VOTES[vid]
    name = max(votes, key=votes.__getitem__)
    decision = decide_vehicle_class(name, "K11", SMALL, votes=votes)
    assert decision.code == "K30"
    assert decision.basis.startswith("small plate rules out bus; car ")


def test_split_evidence_after_the_drop_is_not_stated() -> None:
    decision = decide_vehicle_class("bus", "K11", SMALL, votes={"bus": 10, "car": 5, "truck": 5})
    assert decision.code == "X99"
    assert decision.basis.startswith("category open")


def test_a_track_the_detector_called_bus_throughout_is_a_small_passenger_vehicle() -> None:
    """A blue-plated minibus-like van: nothing but a stray vote left, the bus's category."""
    stray = MIN_REST_SHARE * 0.5 * 20
    decision = decide_vehicle_class("bus", "K11", SMALL, votes={"bus": 20, "car": stray})
    assert decision.code == "K30"
    assert decide_vehicle_class("bus", "K11", SMALL, votes={"bus": 20.0}).code == "K30"


def test_a_truck_under_a_blue_plate_is_light_goods_and_is_not_dropped() -> None:
    decision = decide_vehicle_class("truck", "H11", SMALL, votes={"truck": 8, "car": 3, "bus": 4})
    assert decision.code == "H30"


def test_a_car_is_not_made_a_saloon_on_an_even_split_with_truck() -> None:
    even = {"car": 5.0, "truck": 5.0 * (1 - CLEAR_SHARE) / CLEAR_SHARE}  # car holds exactly half
    assert decide_vehicle_class("car", "K33", SMALL, votes=even).code == "X99"


def test_votes_do_not_open_a_large_plates_size_and_no_plate_keeps_the_detectors_code() -> None:
    votes = {"bus": 9.0, "car": 1.0}
    assert decide_vehicle_class("bus", "K11", PlateSize.LARGE, votes=votes).code == "X99"
    assert decide_vehicle_class("bus", "K11", None, votes=votes).code == "K11"
    assert decide_vehicle_class("motorcycle", "M21", SMALL, votes={"motorcycle": 3}).code == "M21"


# -- through the stage ----------------------------------------------------------------------


def voted(tid: int, i: int, class_id: int, votes: dict[int, float]) -> Tracks:
    row = np.zeros((1, TRUCK + 1), np.float32)
    for c, w in votes.items():
        row[0, c] = w
    return Tracks(
        np.array([[150, 20 + i * 4, 490, 220 + i * 4]], np.float32),
        np.array([0.5], np.float32),
        np.array([class_id], np.int64),
        np.array([MV], np.int8),
        np.array([tid], np.int64),
        np.array([True]),
        row,
    )


def run(
    names: tuple[str, ...],
    given: bool,
    frame_classes: list[int],
    votes: dict[int, float] | None = None,
) -> Event:
    """The taxi: its class by frames ``frame_classes``, the tracker's final ``votes`` (default
    the Beijing taxi's, bus first), a blue plate read."""
    codes = {i: CODES[COCO.index(n)] for i, n in enumerate(names) if COCO.index(n) in CODES}
    inner = TrackEventBuilder("cam1", EventsConfig(), class_names=names, class_codes=codes)
    cfg = StructuringConfig.model_validate({"enabled": True})
    reader = FakeReader([[reading("京BF1144", 0.95)]] * 12)
    st = VehicleStructuring(inner, reader, cfg, class_names=names if given else None)
    taxi = votes or {CAR: 20.6, TRUCK: 14.3, BUS: 29.4}
    events: list[Event] = []
    for i, cls in enumerate(frame_classes):
        events += st.update(white_frame(i), voted(3, i, cls, taxi))
    (event,) = events + st.finish([3])
    return event


def test_the_stage_decides_from_the_tracks_votes_and_says_so() -> None:
    event = run(COCO, True, [TRUCK] * 15 + [BUS] * 10)
    extra = dict(event.extra)
    # the event names the class the evidence settled on (a "truck" with K33 contradicted
    # itself to a consumer); what the detector said by frames is kept beside it
    assert (event.class_name, event.class_id) == ("car", CAR)
    assert extra["detector_class"] == "truck"
    assert event.class_code == extra["vehicle_class"] == "K30"
    assert extra["vehicle_class_basis"] == (
        "small plate rules out bus; car 0.59 of the rest (votes bus 0.46, car 0.32, truck 0.22)"
    )
    # no class list given: COCO's names are used, the event's class being COCO's
    assert dict(run(COCO, False, [TRUCK] * 25).extra)["vehicle_class"] == "K30"


def test_votes_of_a_detector_whose_classes_are_not_known_are_not_read() -> None:
    """A vehicle model of its own (car 0, bus 1, truck 2), its class list not passed: the ids
    are not COCO's, so the votes are not named and the old test stands (class by frames truck,
    the tracker's class bus at the end: X99); passed, they are read."""
    own = ("car", "bus", "truck")
    votes = {0: 20.6, 2: 14.3, 1: 29.4}
    event = run(own, False, [2] * 15 + [1] * 10, votes)
    assert dict(event.extra)["vehicle_class"] == "X99"
    assert dict(run(own, True, [2] * 15 + [1] * 10, votes).extra)["vehicle_class"] == "K30"


# -- two-wheelers: what the track's own evidence says (benchmarks.attribute_eval) -------------

RIDER_BOX = (100.0, 60.0, 140.0, 160.0)
BIKE_BOX = (95.0, 110.0, 145.0, 190.0)
FAR_BIKE = (300.0, 110.0, 350.0, 190.0)
PERSON, BICYCLE, MOTORCYCLE = 0, 1, 3


def scene(*rows: tuple[int, int, tuple[float, float, float, float]]) -> Tracks:
    """Tracks of (track id, class id, box); a motorcycle is a motor vehicle (hanoi_b's config)."""
    kinds = {PERSON: ObjectKind.PERSON, BICYCLE: ObjectKind.NON_MOTOR, MOTORCYCLE: MV}
    votes = np.zeros((len(rows), MOTORCYCLE + 1), np.float32)
    for i, (_, c, _) in enumerate(rows):
        votes[i, c] = 0.9
    return Tracks(
        np.array([b for _, _, b in rows], np.float32).reshape(-1, 4),
        np.full(len(rows), 0.9, np.float32),
        np.array([c for _, c, _ in rows], np.int64),
        np.array([int(kinds[c]) for _, c, _ in rows], np.int8),
        np.array([t for t, _, _ in rows], np.int64),
        np.ones(len(rows), np.bool_),
        votes,
    )


def test_a_bicycle_duplicate_of_a_motorbike_and_its_riders_other_bikes_are_seen() -> None:
    from benchmarks.attribute_eval import Recorder
    from sharpeyes.pipeline.types import Frame

    rec = Recorder()
    frames = [
        scene((8, BICYCLE, BIKE_BOX), (2, PERSON, RIDER_BOX)),  # a bike called bicycle, ridden
        scene((7, MOTORCYCLE, BIKE_BOX), (8, BICYCLE, BIKE_BOX)),  # both classes on one bike
        scene((7, MOTORCYCLE, BIKE_BOX), (2, PERSON, RIDER_BOX)),
        scene((7, MOTORCYCLE, BIKE_BOX), (2, PERSON, RIDER_BOX), (9, BICYCLE, FAR_BIKE)),
    ]
    for seq, t in enumerate(frames):
        img = np.zeros((240, 400, 3), np.uint8)
        rec(Frame("cam", seq, seq / 6, 0, img), Detections.empty(), t, {}, [])
    dup = rec.evidence(8)
    assert dup.stated == "bicycle" and dup.other_class_share == 0.0  # votes: pure by kind
    assert dup.same_object == ((7, "motorcycle"),)
    assert dup.rider_frames == {"motorcycle": 2, "bicycle": 1}
    assert dup.pooled == "motorcycle"  # bicycle 2 frames, its same object motorcycle 3
    alone = rec.evidence(9)  # a bicycle nobody rode, alone in its box
    assert (alone.same_object, alone.rider_frames, alone.pooled) == ((), {}, "bicycle")
