"""Every payload we emit passes MEGVII's template; the interpreter catches broken ones."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sharpeyes.api.viid.config import ViidPlatform
from sharpeyes.api.viid.conformance import RuleTemplate, load_default_template
from sharpeyes.api.viid.mapping import EventImages, EventMapper, ImageRef
from sharpeyes.api.viid.resources import COLLECTIONS
from sharpeyes.pipeline.types import EventType, Plate
from tests._viid_fixtures import DEVICE, jpeg, make_event, mapping_config, shared_dir


@pytest.fixture(scope="module")
def tpl() -> RuleTemplate:
    return load_default_template()


def _all_images() -> EventImages:
    return EventImages(
        scene=ImageRef(data=jpeg(320, 180, 1)),
        closeup=ImageRef(data=jpeg(96, 64, 2)),
        plate=ImageRef(data=jpeg(40, 12, 3)),
        composite=ImageRef(data=jpeg(640, 360, 4), url="http://img.local/c.jpg"),
    )


CASES = [
    (EventType.VEHICLE_PASS, Plate("京A12345", "blue", 0.93)),
    (EventType.VEHICLE_PASS, None),
    (EventType.RED_LIGHT_VIOLATION, Plate("沪B99999", "yellow", 0.8)),
    (EventType.NON_MOTOR_PASS, None),
    (EventType.PERSON_SEEN, None),
    (EventType.PEDESTRIAN_RED_LIGHT, None),
]


@pytest.mark.parametrize(("etype", "plate"), CASES)
@pytest.mark.parametrize("images", ["inline", "url", "both"])
def test_emitted_objects_pass_template(
    tpl: RuleTemplate, etype: EventType, plate: Plate | None, images: str
) -> None:
    mapper = EventMapper(mapping_config(images=images, image_base_url="http://img.local"))
    obj = mapper.map(make_event(etype, plate=plate), _all_images())
    assert obj is not None
    spec = COLLECTIONS[obj.collection]
    report = tpl.validate(spec.interface, spec.envelope([obj.payload]))
    assert report.ok, report.summary()
    assert report.unknown_fields == ()
    subs = obj.payload["SubImageList"]["SubImageInfoObject"]
    assert subs, "every object carries pictures"
    assert all(len(s["ImageID"]) == 41 for s in subs)
    assert len({s["ImageID"] for s in subs}) == len(subs)


def test_system_payloads_pass(tpl: RuleTemplate) -> None:
    assert tpl.validate("Register", {"RegisterObject": {"DeviceID": DEVICE}}).ok
    assert tpl.validate("Keepalive", {"KeepaliveObject": {"DeviceID": DEVICE}}).ok
    megvii = ViidPlatform(unregister_key="UnregisterObject")
    assert tpl.validate("UnRegister", {megvii.unregister_key: {"DeviceID": DEVICE}}).ok


def test_gat1400_worked_example_passes(tpl: RuleTemplate) -> None:
    doc = (shared_dir() / "docs" / "GAT1400.md").read_text(encoding="utf-8")
    text = doc.split("### 5.9")[1].split("```json")[1].split("```")[0]
    text = text.replace('"<base64>"', '"/9j/4AAQ"').replace("<image-store>", "img")
    assert tpl.validate("motorvehicles", json.loads(text)).ok


def _motor(tpl: RuleTemplate) -> dict[str, Any]:
    obj = EventMapper(mapping_config()).map(make_event(crop=jpeg()), _all_images())
    assert obj is not None
    return COLLECTIONS[obj.collection].envelope([obj.payload])


def _item(p: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = p["MotorVehicleListObject"]["MotorVehicleObject"][0]
    return item


@pytest.mark.parametrize(
    ("breakage", "rule"),
    [
        (lambda o: o.__setitem__("HasPlate", True), "HasPlate"),
        (lambda o: o.__setitem__("MotorVehicleID", o["MotorVehicleID"][:-1]), "MotorVehicleID"),
        (lambda o: o.__setitem__("SourceID", o["SourceID"] + "1"), "SourceID"),
        (lambda o: o.pop("InfoKind"), "InfoKind"),
        (lambda o: o.pop("SubImageList"), "SubImageList"),
        (lambda o: o.__setitem__("LaneNo", "2"), "LaneNo"),
        (lambda o: o.__setitem__("PassTime", "2024-01-01 12:00:00"), "PassTime"),
        (lambda o: o.__setitem__("PlateColor", "blue"), "PlateColor"),
        (lambda o: o.pop("DeviceID"), "MotorVehicleObject"),  # InfoKind=1 dependency
        (
            lambda o: o["SubImageList"]["SubImageInfoObject"][0].__setitem__(
                "Data",
                "data:image/jpeg;base64," + o["SubImageList"]["SubImageInfoObject"][0]["Data"],
            ),
            "Data",
        ),
        (
            lambda o: o["SubImageList"]["SubImageInfoObject"][0].pop("Data"),
            "SubImageInfoObject",  # neither Data nor StoragePath
        ),
    ],
)
def test_interpreter_catches_broken_payloads(tpl: RuleTemplate, breakage: Any, rule: str) -> None:
    payload = _motor(tpl)
    assert tpl.validate("motorvehicles", payload).ok
    broken = copy.deepcopy(payload)
    breakage(_item(broken))
    report = tpl.validate("motorvehicles", broken)
    assert not report.ok
    assert any(v.rule.startswith(rule) for v in report.violations), report.summary()


def test_wrapped_base64_is_a_violation(tpl: RuleTemplate) -> None:
    payload = _motor(tpl)
    sub = _item(payload)["SubImageList"]["SubImageInfoObject"][0]
    data = sub["Data"]
    sub["Data"] = "\n".join(data[i : i + 76] for i in range(0, len(data), 76))
    assert not tpl.validate("motorvehicles", payload).ok


def test_unknown_fields_reported_not_violations(tpl: RuleTemplate) -> None:
    mapper = EventMapper(mapping_config(violation_code_field="IllegalCode"))
    obj = mapper.map(make_event(EventType.RED_LIGHT_VIOLATION), _all_images())
    assert obj is not None and obj.payload["IllegalCode"] == "1625"
    report = tpl.validate("motorvehicles", COLLECTIONS[obj.collection].envelope([obj.payload]))
    assert report.ok and any(u.endswith("IllegalCode") for u in report.unknown_fields)


def test_megvii_sample_lacks_nonmotor_required_fields(tpl: RuleTemplate) -> None:
    sample = json.loads(
        (shared_dir() / "conformance/gat1400/megvii_sample_nonmotor_l.json").read_text("utf-8")
    )
    report = tpl.validate("nonmotorvehicles", sample)
    missing = {v.rule.split("/")[0] for v in report.violations}
    assert missing == {"HasPlate", "PlateClass", "PlateColor", "PlateNo", "VehicleColor"}


def test_nested_rule_types(tpl: RuleTemplate) -> None:
    sub = {
        "SubscribeListObject": {
            "SubscribeObject": [
                {
                    "SubscribeID": "340200000000032024010112000000001",
                    "OperateType": 0,
                    "SubscribeDetail": "13,14",
                    "ReportInterval": 5,
                }
            ]
        }
    }
    assert tpl.validate("Subscribes", sub).ok
    sub["SubscribeListObject"]["SubscribeObject"][0]["SubscribeDetail"] = "13,77"
    assert not tpl.validate("Subscribes", sub).ok
