"""The checkpoint stage: best-view candidates only, fused plate and colour on vehicle_pass
events, and the GA/T 1400 MotorVehicleObject it maps to (MEGVII template, 0 violations)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from sharpeyes.api.rest.convert import event_public
from sharpeyes.api.rest.evidence import UrlSigner
from sharpeyes.api.store.records import StoredEvent
from sharpeyes.api.viid.conformance import load_default_template
from sharpeyes.api.viid.mapping import EventImages, EventMapper
from sharpeyes.api.viid.resources import COLLECTIONS
from sharpeyes.pipeline.config import EventsConfig, StructuringConfig
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.picture import picture_has_colour
from sharpeyes.pipeline.structuring.vehicle import VehicleStructuring
from sharpeyes.pipeline.types import Box, Event, EventType, Frame, ImageBGR, ObjectKind, Tracks
from tests._viid_fixtures import mapping_config

W, H = 640, 360
SIGNER = UrlSigner(b"k" * 32)


@dataclass(frozen=True)
class FakeReading:
    text: str | None
    color: str | None
    confidence: float
    det_confidence: float
    box: Box
    layers: int = 1


class FakeReader:
    """Returns scripted readings, one list per call; records the regions it was asked for."""

    def __init__(self, script: Sequence[Sequence[FakeReading]]) -> None:
        self.script = list(script)
        self.rois: list[Box | None] = []

    def read(
        self,
        image_bgr: ImageBGR,
        roi: Box | None = None,
        *,
        max_plates: int | None = None,
        retry_padded: bool = True,
        balance: NDArray[np.float32] | None = None,
        noise: float | None = None,
    ) -> Sequence[FakeReading]:
        self.rois.append(roi)
        return self.script.pop(0) if self.script else []


def reading(text: str | None, conf: float = 0.9, color: str = "blue") -> FakeReading:
    return FakeReading(text, color, conf, 0.8, Box(280, 250, 360, 275, W, H))


def white_frame(seq: int, *, colour: bool = True, caption: bool = False) -> Frame:
    """A white scene; with ``colour`` a yellow lane marking at its left edge, away from the car
    (a colour camera's picture — one without any colour is a camera in night mode); with
    ``caption`` the camera's yellow on-screen text in the top and bottom quarters."""
    img = np.full((H, W, 3), 235, np.uint8)
    if colour:
        img[:, :40] = (40, 200, 230)
    if caption:
        img[8:28, 10:330] = (0, 220, 240)  # 2026-12-06 01:02:03 人民路
        img[H - 28 : H - 8, W - 200 : W - 10] = (0, 220, 240)  # camera name
    return Frame("cam1", seq, seq / 25, 1_700_000_000_000 + seq * 40, img)


def car(tid: int, y1: float, conf: float = 0.9) -> Tracks:
    return Tracks(
        xyxy=np.array([[150, y1, 490, y1 + 200]], np.float32),
        confidence=np.array([conf], np.float32),
        class_id=np.array([2], np.int64),
        kind=np.array([int(ObjectKind.MOTOR_VEHICLE)], np.int8),
        track_id=np.array([tid], np.int64),
        detected=np.array([True]),
    )


def stage(reader: FakeReader, **cfg: object) -> VehicleStructuring:
    inner = TrackEventBuilder(
        "cam1", EventsConfig(), class_names=("person", "bicycle", "car"), class_codes={2: "K33"}
    )
    return VehicleStructuring(
        inner, reader, StructuringConfig.model_validate({"enabled": True, **cfg})
    )


def run_track(st: VehicleStructuring, frames: int = 25) -> list[Event]:
    events: list[Event] = []
    for i in range(frames):
        events += st.update(white_frame(i), car(1, 20 + i * 4))
    return events + st.finish([1])


def test_reads_only_candidates_and_fuses() -> None:
    reader = FakeReader([[reading("京A12345")], [reading("京A12845", 0.4)], [reading("京A12345")]])
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=3)
    (event,) = run_track(st)
    assert len(reader.rois) == 3  # capped, and at most one read per 0.2 s (5 frames)
    assert event.plate is not None and event.plate.text == "京A12345"
    assert event.plate.color == "blue"
    extra = dict(event.extra)
    assert extra["plate_status"] == "read" and extra["plate_reads"] == "3"
    assert extra["vehicle_color"] == "white"
    assert event.plate_jpeg is not None and event.plate_jpeg[:2] == b"\xff\xd8"
    assert len(st) == 0  # state dropped with the event


def test_read_interval_spaces_reads() -> None:
    reader = FakeReader([])
    run_track(stage(reader, read_interval_s=0.2, max_reads_per_track=100), frames=25)
    assert len(reader.rois) == 5  # frames 0, 5, 10, 15, 20 at 25 fps


def found_plates(st: VehicleStructuring, reader: FakeReader, plate: FakeReading) -> None:
    """Three vehicles (tracks 101–103, the same box as :func:`car`'s) on which ``st``'s camera
    found ``plate`` — what it needs before it says of a vehicle that it has no plate."""
    for tid in (101, 102, 103):
        reader.script = [[plate]] * 4
        events: list[Event] = []
        for i in range(25):
            events += st.update(white_frame(i), car(tid, 20 + i * 4))
        (event,) = events + st.finish([tid])
        assert event.plate is not None
    reader.script = []


def test_no_plate_visible_means_no_plate() -> None:
    """A camera that found readable plates on vehicles like this one, and none on this one in
    every read that saw its plate end whole: no plate (无牌, GA/T HasPlate "false")."""
    reader = FakeReader([])
    st = stage(reader)
    found_plates(st, reader, reading("京A12345"))
    (event,) = run_track(st)
    assert event.plate is None
    assert dict(event.extra)["plate_status"] == "no_plate_visible"
    assert event.plate_jpeg is None


def test_no_plate_found_by_a_camera_that_found_none_readable_is_not_no_plate() -> None:
    """The highway overpass: plates about 15 px wide, found now and then and never read — 8 of
    its 44 cars, each with its plate in the picture, went out as 无牌. A camera that has not
    found plates of a readable width (here: none at all, or only 20 px ones) cannot tell a
    vehicle without a plate from one whose plate it cannot see: ``plate_not_found``, and GA/T
    HasPlate is not stated."""
    from sharpeyes.pipeline.structuring.vehicle import STATUS_NOT_FOUND

    (event,) = run_track(stage(FakeReader([])))
    assert event.plate is None and dict(event.extra)["plate_status"] == STATUS_NOT_FOUND
    obj = EventMapper(mapping_config()).map(event, EventImages.from_event(event))
    assert obj is not None and obj.payload.get("HasPlate") in (None, "")
    reader = FakeReader([])
    st = stage(reader)
    found_plates(st, reader, FakeReading(None, "blue", 0.2, 0.8, Box(300, 250, 320, 256, W, H)))
    (event,) = run_track(st)
    assert dict(event.extra)["plate_status"] == STATUS_NOT_FOUND


def test_no_plate_is_said_only_of_vehicles_the_size_and_shape_of_those_with_plates_found() -> None:
    """After plates 80 px wide were found on 340 × 200 px fronts: a vehicle half as wide (its
    plate would be about 40 px: under the readable width's 0.8), seen from its flank (as wide
    as those fronts but half as tall: twice the width for its height) or half as wide for its
    height (a motorcycle's front) is not said plateless."""
    from sharpeyes.pipeline.structuring.vehicle import STATUS_NOT_FOUND

    def boxed(x1: float, x2: float, y1: float, h: float) -> Tracks:
        t = car(1, y1)
        t.xyxy[0] = (x1, y1, x2, y1 + h)
        return t

    for box, status in (
        ((150.0, 490.0, 200.0), "no_plate_visible"),  # a front like the others
        ((240.0, 400.0, 100.0), STATUS_NOT_FOUND),  # 160 px wide: a plate of ~38 px
        ((150.0, 490.0, 100.0), STATUS_NOT_FOUND),  # 340 × 100: a flank
        ((220.0, 420.0, 220.0), STATUS_NOT_FOUND),  # 200 × 220: half as wide for its height
    ):
        reader = FakeReader([])
        st = stage(reader)
        found_plates(st, reader, reading("京A12345"))
        x1, x2, h = box
        events: list[Event] = []
        for i in range(25):
            events += st.update(white_frame(i), boxed(x1, x2, 20 + i * 4, h))
        (event,) = events + st.finish([1])
        assert dict(event.extra)["plate_status"] == status, box


def test_unreadable_plate_is_null_with_reason() -> None:
    reader = FakeReader([[reading(None, 0.2, "yellow")]] * 12)
    (event,) = run_track(stage(reader))
    assert event.plate is not None and event.plate.text is None
    assert event.plate.color == "yellow"
    assert dict(event.extra)["plate_status"] == "unreadable"


def test_a_plate_too_small_to_read_states_no_colour_but_a_plate() -> None:
    """The highway's white Texas plates, 15 px wide, found and not read: the recogniser's colour
    head called 14 of them blue and 4 two-layer. A plate found under 0.8 of the readable width
    and not read says a plate is there (GA/T HasPlate "true") and nothing of its colour or
    layers; at a readable width its colour is stated though its text could not be read."""
    small = FakeReading(None, "blue", 0.2, 0.8, Box(300, 250, 320, 256, W, H), layers=2)
    (event,) = run_track(stage(FakeReader([[small]] * 12)))
    assert dict(event.extra)["plate_status"] == "unreadable"
    assert event.plate is not None and event.plate.color is None and event.plate.layers == 1
    obj = EventMapper(mapping_config()).map(event, EventImages.from_event(event))
    assert obj is not None and obj.payload["HasPlate"] == "true"
    assert obj.payload.get("PlateColor") in (None, "")
    spec = COLLECTIONS[obj.collection]
    report = load_default_template().validate(spec.interface, spec.envelope([obj.payload]))
    assert report.ok, report.summary()
    large = FakeReading(None, "yellow", 0.2, 0.8, Box(280, 250, 330, 265, W, H), layers=2)
    (event,) = run_track(stage(FakeReader([[large]] * 12)))
    assert event.plate is not None and event.plate.color == "yellow" and event.plate.layers == 2


def test_small_boxes_are_not_read() -> None:
    reader = FakeReader([])
    (event,) = run_track(stage(reader, min_box_px=400))
    assert reader.rois == [] and dict(event.extra)["plate_status"] == "not_read"


def test_other_kinds_pass_through() -> None:
    st = stage(FakeReader([]))
    tr = car(1, 20)
    person = Tracks(
        tr.xyxy,
        tr.confidence,
        np.array([0]),
        np.array([int(ObjectKind.PERSON)], np.int8),
        tr.track_id,
        tr.detected,
    )
    events: list[Event] = []
    for i in range(10):
        events += st.update(white_frame(i), person)
    events += st.finish([1])
    assert [e.type for e in events] == [EventType.PERSON_SEEN]
    assert "plate_status" not in dict(events[0].extra)


@pytest.mark.parametrize("readable", [True, False])
def test_motor_vehicle_object_passes_megvii_template(readable: bool) -> None:
    text = "京A12345" if readable else None
    reader = FakeReader([[reading(text, 0.93, "blue")]] * 12)
    (event,) = run_track(stage(reader))
    obj = EventMapper(mapping_config()).map(event, EventImages.from_event(event))
    assert obj is not None
    p = obj.payload
    assert p["HasPlate"] == "true" and p["PlateColor"] == "5" and p["VehicleColor"] == "2"
    assert p.get("PlateNo") == text
    types = sorted(s["Type"] for s in p["SubImageList"]["SubImageInfoObject"])
    assert types == (["02", "09"] if readable else ["09"])
    spec = COLLECTIONS[obj.collection]
    report = load_default_template().validate(spec.interface, spec.envelope([p]))
    assert report.ok, report.summary()
    assert report.unknown_fields == ()


def test_state_is_dropped_when_a_track_ends_without_an_event() -> None:
    st = stage(FakeReader([]))
    st.update(white_frame(0), car(5, 20))
    assert len(st) == 1
    st.finish([5])
    assert len(st) == 0


def test_two_clear_views_without_a_plate_do_not_make_a_car_plateless() -> None:
    """Seen whole in only two reads (a car ahead that was not yet tracked hid the plate in the
    others, as the Beijing clip's taxi behind the van): not enough to say "no plate"."""
    from sharpeyes.pipeline.structuring.vehicle import MIN_WHOLE_READS, STATUS_OUT_OF_VIEW

    assert MIN_WHOLE_READS == 3
    for reads, status in ((2, STATUS_OUT_OF_VIEW), (3, "no_plate_visible")):
        reader = FakeReader([])
        st = stage(reader, read_interval_s=0.04, max_reads_per_track=reads)
        found_plates(st, reader, reading("京A12345"))
        (event,) = run_track(st)
        assert dict(event.extra)["plate_reads"] == str(reads)
        assert dict(event.extra)["plate_status"] == status, reads


def test_no_plate_found_with_the_plate_end_cut_off_is_not_no_plate() -> None:
    """A car whose lower edge (where plates sit) was cut by the frame in every read: no plate
    found says nothing about whether it has one (``plate_out_of_view``, GA/T HasPlate unknown);
    seen whole it is ``no_plate_visible`` (``test_no_plate_visible_means_no_plate``)."""
    from sharpeyes.pipeline.structuring.vehicle import STATUS_OUT_OF_VIEW

    st = stage(FakeReader([]))
    events: list[Event] = []
    for i in range(25):  # the box runs from y 170 + 4i to the frame's bottom edge and beyond
        events += st.update(white_frame(i), car(1, 170 + i * 4))
    (event,) = events + st.finish([1])
    assert event.plate is None
    assert dict(event.extra)["plate_status"] == STATUS_OUT_OF_VIEW


def test_a_plate_end_covered_by_the_car_ahead_is_not_in_view() -> None:
    from sharpeyes.pipeline.structuring.vehicle import plate_end_in_view

    car_box = np.array([100.0, 50.0, 400.0, 250.0], np.float32)
    none = np.zeros((0, 4), np.float32)
    ahead = np.array([[80.0, 200.0, 420.0, 340.0]], np.float32)  # covers the box's lower band
    beside = np.array([[420.0, 60.0, 600.0, 240.0]], np.float32)
    assert plate_end_in_view(car_box, none, 360)
    assert plate_end_in_view(car_box, beside, 360)
    assert not plate_end_in_view(car_box, ahead, 360)
    cut = np.array([100.0, 150.0, 400.0, 356.0], np.float32)
    assert not plate_end_in_view(cut, none, 360)  # within 2 % of the bottom edge


def test_a_picture_without_colour_states_no_body_or_plate_colour() -> None:
    """A camera in monochrome / infrared night mode: the plate text is still read, but neither
    the body's colour nor the plate's is stated (the recogniser's plate colour on a grey
    picture is a guess) — the event says why."""
    reader = FakeReader([[reading("京A12345", color="yellow")]] * 3)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=3)
    events: list[Event] = []
    for i in range(25):
        events += st.update(white_frame(i, colour=False), car(1, 20 + i * 4))
    (event,) = events + st.finish([1])
    assert event.plate is not None and event.plate.text == "京A12345"
    assert event.plate.color is None
    extra = dict(event.extra)
    assert "vehicle_color" not in extra and extra["color_status"] == "monochrome"
    obj = EventMapper(mapping_config()).map(event, EventImages.from_event(event))
    assert obj is not None
    assert obj.payload.get("PlateColor") is None and obj.payload.get("VehicleColor") is None
    assert obj.payload["PlateNo"] == "京A12345"
    # the REST API says why no colour is given
    pub = event_public(StoredEvent(event, None, None, "pending", None, None, 0), SIGNER, None)
    assert pub.attributes is not None and pub.attributes.color_status == "monochrome"
    assert pub.attributes.vehicle_color is None
    assert pub.plate is not None and pub.plate.color is None
    # the same track on a colour picture states both (what the night mode suppressed)
    reader = FakeReader([[reading("京A12345", color="yellow")]] * 3)
    (day,) = run_track(stage(reader, read_interval_s=0.2, max_reads_per_track=3))
    assert day.plate is not None and day.plate.color == "yellow"
    assert dict(day.extra)["vehicle_color"] == "white" and "color_status" not in dict(day.extra)


def test_a_coloured_caption_on_a_grey_picture_does_not_make_it_a_colour_picture() -> None:
    """Cameras draw their on-screen text (time, place, name) in colour even in infrared night
    mode: a yellow caption in the top and bottom quarters of a grey picture is no evidence that
    the car's colour can be seen (the signal board, which reads lamps near the top, still
    counts the whole picture)."""
    grey_captioned = white_frame(0, colour=False, caption=True)
    assert picture_has_colour(grey_captioned.image)  # the whole picture: the caption counts
    assert not picture_has_colour(grey_captioned.image, middle_only=True)
    reader = FakeReader([[reading("京A12345", color="yellow")]] * 3)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=3)
    events: list[Event] = []
    for i in range(25):
        events += st.update(white_frame(i, colour=False, caption=True), car(1, 20 + i * 4))
    (event,) = events + st.finish([1])
    assert event.plate is not None and event.plate.color is None
    assert dict(event.extra)["color_status"] == "monochrome"


def test_a_track_seen_in_colour_in_some_frames_votes_only_those() -> None:
    """A camera switching between night and day mode mid-track: the colour comes from the frames
    that had colour, and the event does not say monochrome."""
    reader = FakeReader([[reading("京A12345", color="blue")]] * 4)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=4)
    events: list[Event] = []
    for i in range(25):
        events += st.update(white_frame(i, colour=i >= 12), car(1, 20 + i * 4))
    (event,) = events + st.finish([1])
    assert event.plate is not None and event.plate.color == "blue"
    extra = dict(event.extra)
    assert extra["vehicle_color"] == "white" and "color_status" not in extra


def run_still(st: VehicleStructuring, frames: int) -> list[Event]:
    """A car standing in the middle of the picture for ``frames`` pictures (25 a second)."""
    events: list[Event] = []
    for i in range(frames):
        events += st.update(white_frame(i), car(1, 80))
    return events + st.finish([1])


def small_reading(width: float) -> FakeReading:
    """A plate seen ``width`` px wide, too narrow for its text (``MIN_TEXT_PX`` 50)."""
    return FakeReading(None, "blue", 0.3, 0.8, Box(300, 250, 300 + width, 262, W, H))


def test_a_plate_seen_too_small_is_read_again_once_it_can_have_grown_readable() -> None:
    """A plate seen 30 px wide on a car that keeps its size is not read again until
    ``SMALL_RECHECK_S`` (3.2 s) passed — far cars at an intersection camera were read at the
    backoff's pace for nothing; a car whose box grows is read again as soon as its plate, at
    the share of the box it had, would be 0.8 × 50 px wide; a plate of readable width, or
    none seen, does not hold reads back."""
    reader = FakeReader([[small_reading(30)]] * 30)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=30, read_backoff_max_s=0.8)
    (event,) = run_still(st, frames=100)  # 4 s: reads at 0 and 3.2 s only
    assert len(reader.rois) == 2
    assert event.plate is not None and event.plate.text is None  # seen: HasPlate still true
    assert dict(event.extra)["plate_status"] == "unreadable"

    def growing(i: int) -> Tracks:  # 100 px wide at first, 4 px wider every picture
        t = car(1, 80)
        t.xyxy[0] = (200, 80, 300 + 4 * i, 280)
        return t

    reader = FakeReader([[small_reading(20)]] + [[reading("京A12345")]] * 30)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=30)
    for i in range(60):
        st.update(white_frame(i), growing(i))
    # the plate was 20 % of a 100 px box: 40 px once the box is 200 px wide (picture 25)
    assert len(reader.rois) >= 2
    assert reader.rois[1] is not None and reader.rois[1].x2 - reader.rois[1].x1 >= 200 * 1.2 - 1
    assert reader.rois[1].x2 - reader.rois[1].x1 <= 210 * 1.2

    reader = FakeReader([[reading(None, 0.2)]] * 30)  # 80 px: its text just was not read
    run_still(stage(reader, read_interval_s=0.2, max_reads_per_track=30), frames=100)
    assert len(reader.rois) > 2


def test_a_plate_four_sure_reads_agree_on_is_not_read_again() -> None:
    """Four reads at confidence ≥ 0.9 name the same plate: the track's later pictures are not
    read (fusion would state it whatever they say), its body colour is still voted on them."""
    reader = FakeReader([[reading("京A12345", 0.95)]] * 20)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=20)
    (event,) = run_still(st, frames=50)  # 2 s: ten reads without settling
    assert len(reader.rois) == 4
    extra = dict(event.extra)
    assert extra["plate_reads"] == "4" and event.plate is not None
    assert event.plate.text == "京A12345" and extra["vehicle_color"] == "white"
    # a weak or disagreeing read does not settle it; settle_reads 0 never settles
    reader = FakeReader([[reading("京A12345", 0.95)], [reading("京A12845", 0.95)]] * 10)
    run_still(stage(reader, read_interval_s=0.2, max_reads_per_track=20), frames=50)
    assert len(reader.rois) == 7  # 京A12345 for the fourth time on the 7th read
    reader = FakeReader([[reading("京A12345", 0.95)]] * 20)
    run_still(stage(reader, read_interval_s=0.2, max_reads_per_track=20, settle_reads=0), 50)
    assert len(reader.rois) == 10


def test_a_plate_seen_but_unreadable_is_read_less_and_less_often() -> None:
    """Each read that finds a plate it cannot read doubles the wait for the next, up to
    ``read_backoff_max_s``; a read that finds no plate at all does not (the plate of an
    approaching vehicle comes into view later)."""
    reader = FakeReader([[reading(None, 0.2)]] * 30)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=30, read_backoff_max_s=0.8)
    run_still(st, frames=100)  # 4 s: reads at 0, 0.4, 1.2, 2.0, 2.8, 3.6 s
    assert len(reader.rois) == 6
    st = stage(reader := FakeReader([]), read_interval_s=0.2, max_reads_per_track=30)
    run_still(st, frames=100)  # no plate found: every 0.2 s
    assert len(reader.rois) == 20
    reader = FakeReader([[reading(None, 0.2)]] * 30)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=30, read_backoff_max_s=0.2)
    run_still(st, frames=100)  # backoff off
    assert len(reader.rois) == 20


def test_a_plate_near_the_readable_size_that_grows_is_not_backed_off_further() -> None:
    """A checkpoint camera sees a plate readable for a second or less: a plate found and not
    read at 50–75 px (``NEAR_LIMIT`` × ``MIN_TEXT_PX``) that is 15 % wider than at the last such
    read belongs to a car coming nearer, and the next read does not wait longer. One that
    stays the same width, or is unreadable at 77 px and more, backs off as before."""

    def timeline(widths: Sequence[float]) -> list[float]:
        reader = FakeReader([[small_reading(w)] for w in widths])
        st = stage(reader, read_interval_s=0.2, max_reads_per_track=30, read_backoff_max_s=1.6)
        times: list[float] = []
        for i in range(100):  # 4 s of a car standing still; the plate's width is scripted
            before = len(reader.rois)
            st.update(white_frame(i), car(1, 80))
            if len(reader.rois) > before:
                times.append(round(i / 25, 2))
        return times

    # 50, 58, 67 px: nearing, the first read's backoff (0.4 s) holds; 77 px and 89 px do not
    assert timeline([50, 58, 67, 77, 89, 102]) == [0.0, 0.4, 0.8, 1.2, 2.0, 3.6]
    assert timeline([58] * 8) == [0.0, 0.4, 1.2, 2.8]  # the same width: doubling each time
    assert timeline([80, 93, 107, 123]) == [0.0, 0.4, 1.2, 2.8]  # readable size, not read


def test_a_double_layer_plate_goes_out_double_layer() -> None:
    """The plate detector's layers reach the event (and so the store and the REST API)."""

    def two(text: str | None) -> FakeReading:
        return FakeReading(text, "yellow", 0.95, 0.8, Box(280, 230, 340, 275, W, H), 2)

    reader = FakeReader([[two("京EA5331")]] * 4)
    (event,) = run_still(stage(reader, read_interval_s=0.2), frames=50)
    assert event.plate is not None and event.plate.text == "京EA5331"
    assert event.plate.layers == 2 and event.plate.color == "yellow"
    reader = FakeReader([[two(None)]] * 4)  # seen, not read: its layers are still what it is
    (event,) = run_still(stage(reader, read_interval_s=0.2), frames=50)
    assert event.plate is not None and event.plate.text is None and event.plate.layers == 2


def test_a_plate_seen_small_on_a_box_cut_by_the_side_of_the_picture_is_read_as_it_nears() -> None:
    """A vehicle box the picture's left edge cuts does not widen as the car comes nearer (its
    plate at the right end of its bumper, its front wider than the picture): its height says
    how much nearer it is. A box cut both ways is read again at once (nothing to measure)."""

    def cut(i: int) -> Tracks:  # 0 px to 400 px wide throughout, 100 px tall, +4 px a picture
        t = car(1, 80)
        t.xyxy[0] = (0, 80, 400, 180 + 4 * i)
        return t

    reader = FakeReader([[small_reading(25)]] + [[reading("京A12345")]] * 30)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=30)
    for i in range(60):
        st.update(white_frame(i), cut(i))
    # 25 px on a 100 px tall box: 40 px once the box is 160 px tall (picture 15)
    assert len(reader.rois) >= 2
    assert reader.rois[1] is not None
    assert 160 * 1.2 - 1 <= reader.rois[1].y2 - reader.rois[1].y1 <= 170 * 1.2

    def corner(i: int) -> Tracks:  # cut by the left and the top edges
        t = car(1, 0)
        t.xyxy[0] = (0, 0, 400, 100)
        return t

    reader = FakeReader([[small_reading(25)]] * 30)
    st = stage(reader, read_interval_s=0.2, max_reads_per_track=30, read_backoff_max_s=0.8)
    for i in range(30):
        st.update(white_frame(i), corner(i))
    assert len(reader.rois) >= 2  # within 1.2 s, not after SMALL_RECHECK_S


def test_a_motorcycle_is_not_said_plateless() -> None:
    """A motorcycle carries its plate at the rear only (GA 36-2018): one coming towards a
    checkpoint that reads cars' plates shows none, and that says nothing."""
    from sharpeyes.pipeline.structuring.vehicle import STATUS_NOT_FOUND

    reader = FakeReader([])
    inner = TrackEventBuilder(
        "cam1",
        EventsConfig(),
        class_names=("person", "bicycle", "car", "motorcycle"),
        class_codes={2: "K33", 3: "M22"},
    )
    st = VehicleStructuring(
        inner,
        reader,
        StructuringConfig.model_validate({"enabled": True}),
        class_names=("person", "bicycle", "car", "motorcycle"),
    )
    found_plates(st, reader, reading("京A12345"))
    events: list[Event] = []
    for i in range(25):
        t = car(1, 20 + i * 4)
        t.class_id[0] = 3
        events += st.update(white_frame(i), t)
    (event,) = events + st.finish([1])
    assert event.class_name == "motorcycle"
    assert dict(event.extra)["plate_status"] == STATUS_NOT_FOUND
