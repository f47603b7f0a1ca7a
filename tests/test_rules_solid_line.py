"""Solid-line rule (压实线): event fields, polyline geometry, calibration."""

from __future__ import annotations

import pydantic
import pytest

from sharpeyes.pipeline.rules import violation_type
from sharpeyes.pipeline.rules.geometry import Polyline
from sharpeyes.pipeline.types import EventType
from tests.scenarios import run_pure
from tests.scenarios.violations import FAMILIES, solid_line_calib

CASES = {c.scenario.name: c for c in FAMILIES["solid_line"]}


def test_event_fields_and_stages() -> None:
    case = CASES["sl_change_over_solid"]
    (ev,) = run_pure(case.scenario, case.calib)
    v = ev.violation
    assert v is not None and ev.type is EventType.RED_LIGHT_VIOLATION
    assert violation_type(ev) == "solid_line" and v.code == "1345"
    assert dict(ev.extra)["line_id"] == "l1_l2"
    e1, e2, e3 = v.evidence_pts
    assert e1 < e2 < e3 and v.crossed_stop_line_pts == e2 == ev.best_pts
    # the wheel-line centre is on the line (x = 0.4333 → 277 px) in image 2
    assert ev.best_box is not None
    assert abs((ev.best_box.x1 + ev.best_box.x2) / 2 - 0.4333 * 640) < 12


def test_polyline_sides_and_extent() -> None:
    line = Polyline([(100.0, 0.0), (100.0, 100.0), (200.0, 200.0)])
    left, right = line.side_distance((90.0, 50.0)), line.side_distance((110.0, 50.0))
    assert left is not None and right is not None
    assert left * right < 0 and abs(left) == pytest.approx(10.0)
    assert line.side_distance((100.0, -5.0)) is None  # beyond the first end
    d = line.side_distance((160.0, 150.0))  # near the second segment
    assert d is not None and abs(d) == pytest.approx(10.0 / 2**0.5, abs=1e-6)


def test_wider_margin_ignores_a_shallow_change() -> None:
    case = CASES["sl_change_over_solid"]
    assert run_pure(case.scenario, solid_line_calib(margin=0.1)) == []


def test_calibration_rejects_bad_lines() -> None:
    with pytest.raises(pydantic.ValidationError, match="points"):
        solid_line_calib(lines=[{"id": "a", "points": [[0.1, 0.1]]}])
    with pytest.raises(pydantic.ValidationError, match="outside the frame"):
        solid_line_calib(lines=[{"id": "a", "points": [[0.1, 0.1], [1.2, 0.5]]}])
    with pytest.raises(pydantic.ValidationError, match="lines"):
        solid_line_calib(lines=[])
