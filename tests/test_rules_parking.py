"""Illegal-parking rule (违法停车): event fields, once per stop, dwell per zone, calibration."""

from __future__ import annotations

import pydantic
import pytest

from sharpeyes.pipeline.rules import violation_type
from sharpeyes.pipeline.types import EventType
from tests.scenarios import run_pure
from tests.scenarios.violations import CURB, FAMILIES, parking_calib

CASES = {c.scenario.name: c for c in FAMILIES["illegal_parking"]}


def test_event_fields_and_stages() -> None:
    case = CASES["pk_parked"]
    (ev,) = run_pure(case.scenario, case.calib)
    v = ev.violation
    assert v is not None and ev.type is EventType.RED_LIGHT_VIOLATION
    assert violation_type(ev) == "illegal_parking" and v.code == "1039"
    e1, e2, e3 = v.evidence_pts
    # arrives at y 0.60 at 1 + 0.42 / 0.2 = 3.1 s; 20 s dwell → charged at ~23.1 s
    assert e1 == pytest.approx(3.1, abs=0.25)
    assert e2 == pytest.approx(13.1, abs=0.25)
    assert e3 == pytest.approx(23.1, abs=0.25) and v.crossed_stop_line_pts == e3
    assert dict(ev.extra)["zone_id"] == "curb"


def test_two_stops_give_two_ids() -> None:
    case = CASES["pk_two_stops"]
    events = run_pure(case.scenario, case.calib)
    assert len(events) == 2 and len({e.event_id for e in events}) == 2


def test_zone_dwell_overrides_the_rule_dwell() -> None:
    case = CASES["pk_short_stop"]
    zones = [{"id": "curb", "polygon": CURB, "dwell_s": 10.0}]
    (ev,) = run_pure(case.scenario, parking_calib(zones=zones))
    assert violation_type(ev) == "illegal_parking"


def test_calibration_rejects_bad_values() -> None:
    with pytest.raises(pydantic.ValidationError, match="dwell_s"):
        parking_calib(dwell_s=0)
    with pytest.raises(pydantic.ValidationError, match="used twice"):
        parking_calib(zones=[{"id": "a", "polygon": CURB}, {"id": "a", "polygon": CURB}])
    with pytest.raises(pydantic.ValidationError, match="jam_min_stopped"):
        parking_calib(jam_min_stopped=1)
