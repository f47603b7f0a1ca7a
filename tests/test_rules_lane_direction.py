"""Lane-direction rule (不按导向车道行驶): event fields, stages, calibration, movement maths."""

from __future__ import annotations

import pydantic
import pytest

from sharpeyes.pipeline.calibration import Movement
from sharpeyes.pipeline.rules import violation_type
from sharpeyes.pipeline.rules.movement import classify
from sharpeyes.pipeline.types import EventType
from tests.scenarios import run_pure
from tests.scenarios.violations import FAMILIES, lane_direction_calib

CASES = {c.scenario.name: c for c in FAMILIES["lane_direction"]}


def test_event_fields_and_stages() -> None:
    case = CASES["ld_left_from_straight"]
    (ev,) = run_pure(case.scenario, case.calib)
    v = ev.violation
    assert v is not None and ev.type is EventType.RED_LIGHT_VIOLATION
    assert violation_type(ev) == "lane_direction" and v.code == "1208"
    assert (v.lane_no, v.movement, v.approach, v.signal_group) == (2, "left", None, "main")
    assert dict(ev.extra)["lane_id"] == "l2" and dict(ev.extra)["approach_id"] == "south"
    e1, e2, e3 = v.evidence_pts
    assert e1 < v.crossed_stop_line_pts <= e2 < e3
    # y = 1.02 - 0.25 (t - 0.5) reaches the stop line (0.70) at t = 1.78
    assert v.crossed_stop_line_pts == pytest.approx(1.78, abs=0.01)
    assert ev.best_pts == e2


def test_only_watched_lanes_are_charged() -> None:
    case = CASES["ld_left_from_straight"]
    assert run_pure(case.scenario, lane_direction_calib(lanes=["l1", "l3"])) == []
    with pytest.raises(pydantic.ValidationError, match="unknown lane 'l9'"):
        lane_direction_calib(lanes=["l9"])


@pytest.mark.parametrize(
    ("angle", "expected"),
    [
        (0.0, Movement.STRAIGHT),
        (24.9, Movement.STRAIGHT),
        (30.0, None),
        (-40.0, None),
        (45.0, Movement.RIGHT),
        (-45.0, Movement.LEFT),
        (-149.0, Movement.LEFT),
        (155.0, Movement.U_TURN),
        (-180.0, Movement.U_TURN),
    ],
)
def test_classify_leaves_a_margin_around_the_threshold(
    angle: float, expected: Movement | None
) -> None:
    assert classify(angle, 35.0, 10.0) is expected


def test_uncertain_heading_is_never_charged() -> None:
    """A car that drifts ~35 degrees (right at the turn threshold) from a straight-only lane."""
    from dataclasses import replace

    from tests.scenarios.scene import LANE_CENTRES
    from tests.scenarios.violations import car, path

    case = CASES["ld_slight_drift"]
    x = LANE_CENTRES[1]
    drift = car(1, path((x, 1.02), (x, 0.66), (x - 0.23, 0.12), t0=0.5, v=0.25))
    assert run_pure(replace(case.scenario, actors=(drift,)), case.calib) == []
    sharper = car(1, path((x, 1.02), (x, 0.66), (x - 0.45, 0.30), t0=0.5, v=0.25))
    (ev,) = run_pure(replace(case.scenario, actors=(sharper,)), case.calib)
    assert ev.violation is not None and ev.violation.movement == "left"


def _crossings_on(tilt: float) -> dict[str, float]:
    """Stop-line crossing time per rule of a car turning left from the straight-only lane on
    red, over the scene's stop line dropping ``tilt`` (relative) from its left to its right
    end (a rolled camera)."""
    from dataclasses import replace

    from sharpeyes.pipeline.types import LampColor
    from tests.scenarios.model import Phase

    cal = lane_direction_calib()
    ap = cal.approaches[0]
    (x0, y0), (x1, y1) = ap.stop_line
    line = ((x0, y0 - tilt / 2), (x1, y1 + tilt / 2))
    cal = cal.model_copy(update={"approaches": [ap.model_copy(update={"stop_line": line})]})
    red = replace(CASES["ld_left_from_straight"].scenario, phases=(Phase(0.0, LampColor.RED),))
    out: dict[str, float] = {}
    for ev in run_pure(red, cal):
        assert ev.violation is not None
        out[violation_type(ev)] = ev.violation.crossed_stop_line_pts
    assert set(out) == {"red_light_violation", "lane_direction"}, out
    return out


def test_a_car_crosses_a_tilted_stop_line_at_the_same_time_for_every_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The movement rules time a car's crossing as the red-light rule does, by the middle of
    its wheel line (:func:`~sharpeyes.pipeline.rules.common.line_contact`): on a rolled camera
    the box's bottom is the tilted wheel line's lower end and crosses first. By the box bottom
    the lane-direction charge came earlier than the red-light charge of the same car."""
    level, tilted = _crossings_on(0.0), _crossings_on(0.1)
    assert level["lane_direction"] == pytest.approx(level["red_light_violation"], abs=1e-6)
    assert tilted["lane_direction"] == pytest.approx(tilted["red_light_violation"], abs=1e-6)
    # timed by the box bottom, as before, the two charges of one car disagree
    from sharpeyes.pipeline.rules import movement

    monkeypatch.setattr(movement, "line_contact", lambda stop, o, wheel_lines: o.anchor)
    bottom = _crossings_on(0.1)
    assert abs(bottom["red_light_violation"] - bottom["lane_direction"]) > 0.02
