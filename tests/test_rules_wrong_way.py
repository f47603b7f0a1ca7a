"""Wrong-way rule (逆行): event fields, evidence stages, calibration, state lifecycle."""

from __future__ import annotations

import pydantic
import pytest

from sharpeyes.pipeline.rules import WrongWayRule, violation_type
from sharpeyes.pipeline.types import EventType, Tracks
from tests.scenarios import FRAME_SIZE, run_pure, scene_calibration
from tests.scenarios.feed import frame_at, tracks_at
from tests.scenarios.violations import FAMILIES, wrong_way_calib

CASES = {c.scenario.name: c for c in FAMILIES["wrong_way"]}


def test_event_fields_and_stages() -> None:
    case = CASES["ww_lane"]
    (ev,) = run_pure(case.scenario, case.calib)
    v = ev.violation
    assert v is not None and ev.type is EventType.RED_LIGHT_VIOLATION
    assert violation_type(ev) == "wrong_way" and v.code == "1301"
    assert (v.lane_no, v.approach, ev.direction) == (2, None, "northbound")
    e1, e2, e3 = v.evidence_pts
    assert e1 < e2 < e3 == v.crossed_stop_line_pts
    analysed = {round(case.scenario.pts(i), 6) for i in range(case.scenario.n_frames)}
    assert all(round(p, 6) in analysed for p in v.evidence_pts)
    # car 1 drives down from y 0.72 at 1.0 s at 0.1 h/s; 0.06 of the 734 px diagonal = 44 px
    # = 0.122 h → reached at ~2.2 s (plus the confirm frame)
    assert 2.1 <= v.crossed_stop_line_pts <= 2.5
    assert dict(ev.extra)["zone_id"] == "l2"


def test_code_is_configurable_and_ids_are_deterministic() -> None:
    case = CASES["ww_lane"]
    a = run_pure(case.scenario, wrong_way_calib(code="13010"))
    b = run_pure(case.scenario, wrong_way_calib(code="13010"))
    assert [e.violation.code for e in a if e.violation] == ["13010"]
    assert [e.event_id for e in a] == [e.event_id for e in b]


def test_calibration_rejects_bad_values() -> None:
    with pytest.raises(pydantic.ValidationError, match="code"):
        wrong_way_calib(code="13A1")
    with pytest.raises(pydantic.ValidationError, match="max_angle_deg"):
        wrong_way_calib(max_angle_deg=95)
    zone = {"id": "z", "polygon": [[0, 0], [1, 0], [1, 1]], "travel": [[0.5, 0.5], [0.5, 0.5]]}
    with pytest.raises(pydantic.ValidationError, match="two equal end points"):
        scene_calibration(wrong_way={"zones": [zone]})
    with pytest.raises(pydantic.ValidationError, match="used twice"):
        good = {**zone, "travel": [[0.5, 0.9], [0.5, 0.1]]}
        scene_calibration(wrong_way={"zones": [good, good]})


def test_state_is_evicted_and_dropped_at_end_of_stream() -> None:
    case = CASES["ww_exit_zone"]
    s = case.scenario
    rule = WrongWayRule("s", case.calib, FRAME_SIZE)
    rng = s.rng()
    for i in range(40):
        rule.update(frame_at(s, i), tracks_at(s, i, rng), {})
    assert rule.live_tracks == 2
    for i in range(40, 40 + 35):  # 3.5 s of empty frames > stale_track_s
        rule.update(frame_at(s, i), Tracks.empty(), {})
    assert rule.live_tracks == 0
    rule.update(frame_at(s, 80), tracks_at(s, 20, rng), {})
    assert rule.live_tracks > 0
    assert rule.end_of_stream() == [] and rule.live_tracks == 0
