"""Issue 14 item 4: fields that pass the template but say the wrong thing — asserted against the
event and the pictures, not only the template.

Old code: HasPlate "false" on every unread plate even with a plate picture; the red-light scene
(01) carried the best frame's ImageID/ShotTime, reusing one ImageID for different pictures;
SourceID named a frame never sent; red-light records had no VehicleClass; PlateClass came from
the colour alone (yellow motorcycle → 01); the motorcycle code M11 is a three-wheeler; the sample
config's UnRegister body failed the MEGVII template.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from sharpeyes.api.viid import ids
from sharpeyes.api.viid.codes import VehicleClass
from sharpeyes.api.viid.config import ViidPlatform
from sharpeyes.api.viid.conformance import load_default_template
from sharpeyes.api.viid.delivery import load_delivery_config, record_times
from sharpeyes.api.viid.mapping import EventImages, EventMapper, ImageRef
from sharpeyes.api.viid.resources import COLLECTIONS
from sharpeyes.pipeline.types import Event, EventType, Plate
from tests._viid_fixtures import DEVICE, T0_MS, jpeg, make_event, mapping_config

REPO = Path(__file__).resolve().parents[1]
M = EventMapper(mapping_config())


def _subs(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(payload["SubImageList"]["SubImageInfoObject"])


def _map(ev: Event, imgs: EventImages | None = None) -> dict[str, Any]:
    obj = M.map(ev, imgs)
    assert obj is not None
    spec = COLLECTIONS[obj.collection]
    report = load_default_template().validate(spec.interface, spec.envelope([obj.payload]))
    assert report.ok, report.summary()
    return obj.payload


# -- HasPlate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plate", "plate_picture", "status", "has", "plate_no"),
    [
        (Plate("京A12345", "blue", 0.9), False, "read", "true", "京A12345"),
        (Plate(None, "yellow", 0.4), False, "unreadable", "true", None),  # seen, not read
        (Plate(None, None, 0.0), True, None, "true", None),  # a plate picture is attached
        (None, True, None, "true", None),
        (None, False, "no_plate_visible", "false", None),  # read, no plate visible at all
        # the evidence's read located none: not proof there is none (a small, blurred plate)
        (Plate(None, None, 0.0), False, None, None, None),
        # no plate found, but the plate end was cut by the frame in every read
        (None, False, "plate_out_of_view", None, None),
        (None, False, None, None, None),  # no plate read ran (no structuring): not known
        (None, False, "not_read", None, None),  # structuring never read this track
    ],
)
def test_has_plate_says_whether_a_plate_is_visible(
    plate: Plate | None,
    plate_picture: bool,
    status: str | None,
    has: str | None,
    plate_no: str | None,
) -> None:
    ev = make_event(EventType.VEHICLE_PASS, plate=plate, crop=jpeg())
    if status is not None:
        ev = ev.with_(extra=(*ev.extra, ("plate_status", status)))
    imgs = EventImages(
        closeup=ImageRef(data=jpeg()),
        plate=ImageRef(data=jpeg(60, 20, seed=5)) if plate_picture else None,
    )
    p = _map(ev, imgs)
    assert p.get("HasPlate") == has  # None: omitted (optional on a MotorVehicleObject)
    assert p.get("PlateNo") == plate_no
    types = [s["Type"] for s in _subs(p)]
    assert ("02" in types) == plate_picture
    if has == "false":
        assert "02" not in types and "PlateNo" not in p


def test_a_two_wheeler_nobody_read_a_plate_on_has_plate_unknown_not_false() -> None:
    """Plates are read on motor-vehicle tracks; a non-motor record's HasPlate (required by
    MEGVII) is its "" (unknown) unless a plate was seen."""
    p = _map(make_event(EventType.NON_MOTOR_PASS, crop=jpeg()))
    assert p["HasPlate"] == ""
    seen = _map(make_event(EventType.NON_MOTOR_PASS, plate=Plate(None, "yellow", 0.4)))
    assert seen["HasPlate"] == "true"


@pytest.mark.parametrize(("style", "true_", "false_"), [("json", True, False), ("digit", "1", "0")])
def test_has_plate_in_a_platforms_boolean_style_and_unknown_omitted(
    style: str, true_: object, false_: object
) -> None:
    mapper = EventMapper(mapping_config(), ViidPlatform(bool_style=style))

    def has(ev: Event) -> object:
        obj = mapper.map(ev)
        assert obj is not None
        return obj.payload.get("HasPlate", "omitted")

    seen = make_event(EventType.VEHICLE_PASS, plate=Plate("京A12345", "blue", 0.9))
    none_seen = make_event(EventType.VEHICLE_PASS).with_(
        extra=(("plate_status", "no_plate_visible"),)
    )
    assert has(seen) == true_ and has(none_seen) == false_
    assert has(make_event(EventType.VEHICLE_PASS)) == "omitted"
    assert has(make_event(EventType.NON_MOTOR_PASS)) == "omitted"  # "" has no boolean form


# -- per-picture ImageID / ShotTime, SourceID ---------------------------------------------


def _red_light(track: int, t_ms: int, evidence_pts: tuple[float, ...] = ()) -> Event:
    ev = make_event(EventType.RED_LIGHT_VIOLATION, track_id=track, t_ms=t_ms, crop=jpeg())
    assert ev.violation is not None
    return dataclasses.replace(
        ev, violation=dataclasses.replace(ev.violation, evidence_pts=evidence_pts)
    )


def test_red_light_scene_carries_its_own_frame_time_and_id() -> None:
    ev = _red_light(3, T0_MS, evidence_pts=(1.1, 1.5, 2.0))
    scene_ms = T0_MS + 3_700  # record.json time_ms of 1.jpg: not the best frame
    imgs = EventImages(
        scene=ImageRef(data=jpeg(320, 180, seed=1), time_ms=scene_ms),
        plate=ImageRef(data=jpeg(60, 20, seed=2), pts=1.5),
        composite=ImageRef(data=jpeg(640, 360, seed=3)),
    )
    p = _map(ev, imgs)
    scene, plate, comp = _subs(p)
    assert scene["Type"] == "01"
    assert scene["ShotTime"] == M.t14(scene_ms) != M.t14(M.best_ms(ev))
    assert scene["ImageID"][22:36] == M.t14(scene_ms)
    assert plate["ShotTime"] == M.t14(ev.first_seen_ms + 500)  # pts 1.5 on the event clock
    crossed = ev.first_seen_ms + 500  # composite falls back to the stop-line crossing
    assert comp["ShotTime"] == M.t14(crossed)
    assert len({scene["ImageID"], plate["ImageID"], comp["ImageID"]}) == 3
    # SourceID names the scene picture that is actually sent
    assert p["SourceID"] == scene["ImageID"]
    assert p["MotorVehicleID"].startswith(scene["ImageID"])


def test_scene_time_falls_back_to_evidence_image_1_not_the_best_frame() -> None:
    ev = _red_light(4, T0_MS, evidence_pts=(2.2, 2.5, 3.0))  # first_pts 1.0
    p = _map(ev, EventImages(scene=ImageRef(data=jpeg(seed=9))))
    (scene,) = _subs(p)
    assert scene["ShotTime"] == M.t14(T0_MS + 1200)


def test_no_image_id_names_two_different_pictures_in_a_run() -> None:
    """65 red-light records, several sharing frames: every distinct picture gets its own id."""
    picture_of: dict[str, bytes] = {}
    for i in range(65):
        t = T0_MS + (i // 3) * 40  # three vehicles per frame time
        ev = _red_light(i, t, evidence_pts=(1.1, 1.4, 1.9))
        imgs = EventImages(
            scene=ImageRef(data=jpeg(64, 48, seed=1000 + i)),  # annotated per event
            plate=ImageRef(data=jpeg(60, 20, seed=2000 + i)),
            composite=ImageRef(data=jpeg(96, 48, seed=3000 + i)),
        )
        pass_ev = make_event(EventType.VEHICLE_PASS, track_id=i, t_ms=t, crop=jpeg(seed=4000 + i))
        for e, im in ((ev, imgs), (pass_ev, None)):
            p = _map(e, im)
            sent = {s["ImageID"] for s in _subs(p)}
            assert p["SourceID"] in sent  # never a frame that is not sent
            for s in _subs(p):
                data = __import__("base64").b64decode(s["Data"])
                assert picture_of.setdefault(s["ImageID"], data) == data, s["ImageID"]
    assert len(picture_of) == 65 * 4


def test_source_id_of_a_crop_only_record_is_the_crop() -> None:
    for et in (EventType.VEHICLE_PASS, EventType.NON_MOTOR_PASS, EventType.PERSON_SEEN):
        p = _map(make_event(et, crop=jpeg()))
        (only,) = _subs(p)
        assert p["SourceID"] == only["ImageID"]


# -- VehicleClass / PlateClass -------------------------------------------------------------


def test_red_light_record_keeps_its_vehicle_class() -> None:
    ev = dataclasses.replace(_red_light(5, T0_MS), class_name=None, class_id=2)  # COCO car
    assert _map(ev)["VehicleClass"] == "K30"
    moto = dataclasses.replace(ev, class_id=3)
    assert _map(moto)["VehicleClass"] == "M21"
    rider = dataclasses.replace(ev, class_id=0, extra=(("detected_as", "person"),))
    assert _map(rider)["VehicleClass"] == "M21"


@pytest.mark.parametrize(
    ("class_name", "color", "plate_class"),
    [
        ("motorcycle", "yellow", "07"),  # old code: 01 (large vehicle)
        ("motorcycle", "blue", "08"),
        ("car", "yellow", "01"),
        ("car", "blue", "02"),
        ("truck", "yellow", "01"),
    ],
)
def test_plate_class_uses_vehicle_class_and_colour(
    class_name: str, color: str, plate_class: str
) -> None:
    ev = dataclasses.replace(
        make_event(EventType.VEHICLE_PASS, plate=Plate("粤B12345", color, 0.9), crop=jpeg()),
        class_name=class_name,
    )
    p = _map(ev)
    assert p["PlateClass"] == plate_class


@pytest.mark.parametrize(
    ("text", "color", "plate_class"),
    [
        ("京A1234学", "yellow", "16"),  # a coach car: not 01, whatever its yellow says
        ("京A1234挂", "yellow", "15"),
        ("京A1234警", "white", "23"),
        ("粤Z1234港", "black", "26"),
        ("粤Z1234澳", "black", "27"),
        ("沪A1234领", "black", "04"),
        ("京A12345", "yellow", "01"),
    ],
)
def test_the_plates_last_character_names_its_kind(text: str, color: str, plate_class: str) -> None:
    ev = dataclasses.replace(
        make_event(EventType.VEHICLE_PASS, plate=Plate(text, color, 0.9), crop=jpeg()),
        class_name="car",
    )
    p = _map(ev)
    assert p["PlateClass"] == plate_class and p["PlateNo"] == text


def test_a_new_energy_plate_has_no_plate_class_megvii_knows() -> None:
    """An electric bus's yellow-green plate read as yellow (粤B12345D) is not a 01 大型汽车号牌:
    new-energy plates have codes 51 / 52 that MEGVII's list lacks, so none is stated — for a
    green one too — while the plate itself (number, colour) goes out."""
    for text, color in (("粤B12345D", "yellow"), ("皖AD07098", "green")):
        ev = dataclasses.replace(
            make_event(EventType.VEHICLE_PASS, plate=Plate(text, color, 0.9), crop=jpeg()),
            class_name="bus",
        )
        p = _map(ev)
        assert p.get("PlateClass") in (None, "") and p["PlateNo"] == text
        assert p["PlateColor"] == ("6" if color == "yellow" else "9")


def test_motorcycle_code_is_the_two_wheeler() -> None:
    assert VehicleClass.MOTORCYCLE.value == "M21"  # GA 24.4 普通二轮摩托车
    assert VehicleClass.THREE_WHEELER.value == "M11"
    ev = dataclasses.replace(
        make_event(EventType.VEHICLE_PASS, crop=jpeg()), class_name="motorcycle"
    )
    assert _map(ev)["VehicleClass"] == "M21"


@pytest.mark.parametrize(
    ("event_type", "speed_kmh", "speed"),
    [
        (EventType.VEHICLE_PASS, "42.46", 42.5),
        (EventType.NON_MOTOR_PASS, "18.0", 18.0),
        (EventType.VEHICLE_PASS, None, None),  # no ground plane: no speed is stated
        (EventType.VEHICLE_PASS, "420", None),  # outside GA/T's 0–300 km/h: not sent
        (EventType.VEHICLE_PASS, "fast", None),
    ],
)
def test_speed_is_the_measured_one_or_absent(
    event_type: EventType, speed_kmh: str | None, speed: float | None
) -> None:
    extra = (("lane_no", "2"),) + ((("speed_kmh", speed_kmh),) if speed_kmh else ())
    ev = dataclasses.replace(make_event(event_type, crop=jpeg()), extra=extra)
    p = _map(ev)
    assert p.get("Speed") == speed
    if event_type is EventType.VEHICLE_PASS:
        assert p["LaneNo"] == 2


# -- evidence record times / sample config --------------------------------------------------


def test_record_times_reads_time_ms_pts_and_the_plate_frame(tmp_path: Path) -> None:
    rec = tmp_path / "record.json"
    rec.write_text(
        json.dumps(
            {
                "images": [
                    {"file": "1.jpg", "time_ms": T0_MS + 100, "pts": 1.1},
                    {"file": "2.jpg", "wall_time_ms": T0_MS + 500, "pts": 1.5},
                ],
                "plate": {"image": 2},
            }
        )
    )
    times, plate_file = record_times(rec)
    assert times["1.jpg"] == (T0_MS + 100, 1.1)
    assert times["2.jpg"] == (T0_MS + 500, 1.5)
    assert plate_file == "2.jpg"
    assert record_times(tmp_path / "missing.json") == ({}, None)


def test_sample_config_unregister_body_passes_the_template(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = load_delivery_config(REPO / "sample_videos" / "viid_delivery.yaml")
    body = {cfg.platform.unregister_key: {"DeviceID": cfg.device_id}}
    assert load_default_template().validate("UnRegister", body).ok
    assert ids.is_device_id(DEVICE)


# -- DeviceID ------------------------------------------------------------------------------


def test_objects_go_out_under_the_cameras_own_device_id() -> None:
    """A camera not listed in the delivery's ``device_ids`` is still its own device: its
    objects carry the camera's configured device id (stored with each event), not the
    delivering system's — that only stands in for a camera without one."""
    mapper = EventMapper(mapping_config(device_ids={}, default_device_id="34020000001190000001"))
    camera = "34020000001190000071"
    ev = make_event()
    for stored, want in ((camera, camera), (None, "34020000001190000001")):
        obj = mapper.map(ev, None, stored)
        assert obj is not None
        assert obj.payload["DeviceID"] == want
