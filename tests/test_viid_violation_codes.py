"""GA/T 1400 (issue 17): every violation type's record carries its own code in the configured
``violation_code_field`` — the suite's charges as the rules raise them (pure suite scenes), with
default and province-configured codes — and stays a conformant motor-vehicle object."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sharpeyes.api.viid.conformance import load_default_template
from sharpeyes.api.viid.mapping import EventImages, EventMapper, ImageRef
from sharpeyes.api.viid.resources import COLLECTIONS, Collection
from sharpeyes.pipeline.calibration import IntersectionCalibration
from sharpeyes.pipeline.rules import violation_type
from sharpeyes.pipeline.types import Event, Plate
from tests._viid_fixtures import jpeg, mapping_config
from tests.scenarios import run_pure
from tests.scenarios.violations import FAMILIES, Case

DEFAULT_CODES = {
    "wrong_way": "1301",
    "lane_direction": "1208",
    "no_turn": "1344",
    "solid_line": "1345",
    "illegal_parking": "1039",
    "yield_pedestrian": "1357",
}
BLOCK = {  # the calibration block that holds each rule's code
    "wrong_way": "wrong_way",
    "lane_direction": "lane_direction",
    "no_turn": "no_turn",
    "solid_line": "solid_lines",
    "illegal_parking": "parking",
    "yield_pedestrian": "yield_to_pedestrians",
}


def first_charge(rule: str, calib: IntersectionCalibration | None = None) -> Event:
    case: Case = next(c for c in FAMILIES[rule] if c.charges)
    (ev,) = [e for e in run_pure(case.scenario, calib or case.calib) if violation_type(e) == rule]
    return replace(ev, stream_id="cam1", plate=Plate("京A12345", "blue", 0.9))


def images() -> EventImages:
    return EventImages(
        scene=ImageRef(data=jpeg(320, 180, 1)),
        closeup=ImageRef(data=jpeg(96, 64, 2)),
        plate=ImageRef(data=jpeg(40, 12, 3)),
        composite=ImageRef(data=jpeg(640, 360, 4), url="http://img.local/c.jpg"),
    )


@pytest.mark.parametrize("rule", sorted(DEFAULT_CODES))
def test_default_code_in_the_configured_field(rule: str) -> None:
    ev = first_charge(rule)
    obj = EventMapper(mapping_config(violation_code_field="IllegalCode")).map(ev, images())
    assert obj is not None and obj.collection is Collection.MOTOR_VEHICLE
    assert obj.payload["IllegalCode"] == DEFAULT_CODES[rule]
    envelope = COLLECTIONS[obj.collection].envelope([obj.payload])
    assert load_default_template().validate("motorvehicles", envelope).ok


@pytest.mark.parametrize("rule", sorted(DEFAULT_CODES))
def test_province_code_from_the_calibration(rule: str) -> None:
    case = next(c for c in FAMILIES[rule] if c.charges)
    block = getattr(case.calib, BLOCK[rule])
    calib = case.calib.model_copy(update={BLOCK[rule]: block.model_copy(update={"code": "99999"})})
    obj = EventMapper(mapping_config(violation_code_field="WFDM")).map(
        first_charge(rule, calib), images()
    )
    assert obj is not None and obj.payload["WFDM"] == "99999"


def test_no_field_configured_no_code() -> None:
    obj = EventMapper(mapping_config()).map(first_charge("wrong_way"), images())
    assert obj is not None and "IllegalCode" not in obj.payload
