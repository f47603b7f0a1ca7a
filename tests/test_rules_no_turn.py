"""No-turn rule (违反禁令标志): event fields, windows, calibration references."""

from __future__ import annotations

import pydantic
import pytest

from sharpeyes.pipeline.rules import violation_type
from sharpeyes.pipeline.types import EventType
from tests.scenarios import run_pure, scene_calibration
from tests.scenarios.violations import FAMILIES, no_turn_calib

CASES = {c.scenario.name: c for c in FAMILIES["no_turn"]}


def test_event_fields_and_stages() -> None:
    case = CASES["nt_left_in_window"]
    (ev,) = run_pure(case.scenario, case.calib)
    v = ev.violation
    assert v is not None and ev.type is EventType.RED_LIGHT_VIOLATION
    assert violation_type(ev) == "no_turn" and v.code == "1344"
    assert (v.lane_no, v.movement, v.approach) == (1, "left", None)
    extra = dict(ev.extra)
    assert (extra["prohibited"], extra["windows"]) == ("left", "06:00-09:00")
    e1, e2, e3 = v.evidence_pts
    assert e1 < v.crossed_stop_line_pts <= e2 < e3


@pytest.mark.parametrize(
    ("window", "charged"),
    [
        (("06:00", "06:14"), True),  # the scene crosses at 06:13:21 Beijing time
        (("06:14", "09:00"), False),
        (("22:00", "06:14"), True),  # wraps midnight
        (("22:00", "06:13"), False),
    ],
)
def test_window_is_judged_at_the_crossing_in_beijing_time(
    window: tuple[str, str], charged: bool
) -> None:
    case = CASES["nt_left_in_window"]
    sign = {
        "movement": "left",
        "approach": "south",
        "windows": [{"start": window[0], "end": window[1]}],
    }
    events = run_pure(case.scenario, no_turn_calib(prohibited=[sign]))
    assert (len(events) == 1) is charged


def test_lane_restricted_sign_applies_to_its_lanes_only() -> None:
    case = CASES["nt_left_in_window"]
    sign = {"movement": "left", "approach": "south", "lanes": ["l2", "l3"]}
    assert run_pure(case.scenario, no_turn_calib(prohibited=[sign])) == []


def test_calibration_references_are_checked() -> None:
    with pytest.raises(pydantic.ValidationError, match="unknown approach 'east'"):
        no_turn_calib(prohibited=[{"movement": "left", "approach": "east"}])
    with pytest.raises(pydantic.ValidationError, match="lane of approach 'south' 'x'"):
        no_turn_calib(prohibited=[{"movement": "left", "approach": "south", "lanes": ["x"]}])
    with pytest.raises(pydantic.ValidationError, match="prohibited"):
        no_turn_calib(prohibited=[])
    with pytest.raises(pydantic.ValidationError, match="start"):
        sign = {"movement": "left", "approach": "south", "windows": [{"start": "7", "end": "9"}]}
        no_turn_calib(prohibited=[sign])


def test_both_movement_rules_share_one_tracker_and_match_the_standalone_rule() -> None:
    """A left turn from a straight-only lane under a no-left sign: two charges, two ids, from
    the one registry entry; the standalone no-turn rule raises the same no-turn event."""
    from sharpeyes.pipeline.rules import NoTurnRule, build_rules
    from tests.scenarios import FRAME_SIZE
    from tests.scenarios.feed import frame_at, tracks_at
    from tests.scenarios.violations import GUIDED, approaches_with

    case = FAMILIES["lane_direction"][1]  # ld_left_from_straight
    sign = {"movement": "left", "approach": "south"}
    calib = scene_calibration(
        approaches=approaches_with(GUIDED), lane_direction={}, no_turn={"prohibited": [sign]}
    )
    rules = build_rules("s", calib, FRAME_SIZE)
    assert [type(r).__name__ for r in rules].count("MovementRule") == 1
    events = run_pure(case.scenario, calib)
    assert sorted(violation_type(e) for e in events) == ["lane_direction", "no_turn"]
    assert len({e.event_id for e in events}) == 2
    s = case.scenario
    alone = NoTurnRule(s.name, calib, FRAME_SIZE)
    rng, solo = s.rng(), []
    for i in range(s.n_frames):
        solo += alone.update(frame_at(s, i), tracks_at(s, i, rng), {})
    solo += alone.end_of_stream()
    no_turn = [e.event_id for e in events if violation_type(e) == "no_turn"]
    assert [e.event_id for e in solo] == no_turn
