from __future__ import annotations

import pytest

from sharpeyes.api.viid import ids
from sharpeyes.api.viid.codes import ImageType, ObjectTypeCode
from sharpeyes.pipeline.types import EventType
from tests._viid_fixtures import DEVICE, T0_MS


def test_layouts_and_lengths() -> None:
    src = ids.frame_image_id(DEVICE, T0_MS + 123)
    assert len(src) == 41 and src.startswith(DEVICE + "02" + "20240101120000")
    assert src.endswith("00124")
    oid = ids.object_id(src, ObjectTypeCode.MOTOR_VEHICLE, 71)
    assert len(oid) == 48 and oid[41:43] == "02" and ids.is_object_id(oid)
    sub = ids.subscription_style_id("340200000000", "03", T0_MS, 5)
    assert len(sub) == 33 and ids.is_subscribe_id(sub)
    assert ids.make_device_id("340200", "119", 1) == "34020000001190000001"


def test_validators_reject_bad_values() -> None:
    assert not ids.is_device_id("3402000000119000000")  # 19 digits
    assert not ids.is_device_id("3402000000119000000a")
    assert not ids.is_image_id(DEVICE + "02" + "20241399120000" + "00001")  # month 13
    with pytest.raises(ids.IdError, match="20 digits"):
        ids.require_device_id("123")
    with pytest.raises(ids.IdError):
        ids.object_id("1" * 40, ObjectTypeCode.PERSON, 1)


def test_serials_unique_within_a_second() -> None:
    seen: set[str] = set()
    for ms in range(0, 1000, 7):
        src = ids.frame_image_id(DEVICE, T0_MS + ms)
        for track in range(50):
            for et in (EventType.VEHICLE_PASS, EventType.RED_LIGHT_VIOLATION):
                oid = ids.object_id(
                    src, ObjectTypeCode.MOTOR_VEHICLE, ids.event_object_serial(et, track)
                )
                assert oid not in seen
                seen.add(oid)
    images = {
        ids.derived_image_serial(v, t, track)
        for track in range(500)
        for v, t in [
            (False, ImageType.PLATE),
            (True, ImageType.PLATE),
            (True, ImageType.VIOLATION_COMPOSITE),
        ]
    }
    assert len(images) == 1500 and min(images) > 1000 and max(images) <= 99_999


def test_time_parsing_both_forms() -> None:
    assert ids.parse_local_time("20240101120000") == T0_MS
    assert ids.parse_local_time(str(T0_MS)) == T0_MS
    assert ids.local_time_str(T0_MS) == "20240101120000"
    with pytest.raises(ids.IdError):
        ids.parse_local_time("2024-01-01")
