"""Yield-to-pedestrians rule (不礼让斑马线行人): event fields, stages, calibration."""

from __future__ import annotations

import pydantic
import pytest

from sharpeyes.pipeline.rules import violation_type
from sharpeyes.pipeline.types import EventType, LampColor
from tests.scenarios import run_pure
from tests.scenarios.violations import FAMILIES, yield_calib

CASES = {c.scenario.name: c for c in FAMILIES["yield_pedestrian"]}


def test_event_fields_and_stages() -> None:
    case = CASES["yp_passes_in_front"]
    (ev,) = run_pure(case.scenario, case.calib)
    v = ev.violation
    assert v is not None and ev.type is EventType.RED_LIGHT_VIOLATION
    assert violation_type(ev) == "yield_pedestrian" and v.code == "1357"
    assert (v.signal_group, v.signal_color, v.approach) == ("ped", LampColor.GREEN, None)
    extra = dict(ev.extra)
    assert (extra["crosswalk_id"], extra["pedestrian_track_id"]) == ("cw", "1")
    e1, e2, e3 = v.evidence_pts
    assert e1 < e2 < e3 and ev.best_pts == e2 == v.crossed_stop_line_pts
    # image 2 has the car's anchor on the zebra (y 0.58–0.68 of 360 px)
    assert ev.best_box is not None and 0.58 * 360 <= ev.best_box.y2 <= 0.68 * 360


def test_watched_crosswalks_only() -> None:
    case = CASES["yp_passes_in_front"]
    assert len(run_pure(case.scenario, yield_calib(crosswalks=["cw"]))) == 1
    with pytest.raises(pydantic.ValidationError, match="unknown crosswalk 'x'"):
        yield_calib(crosswalks=["x"])
    with pytest.raises(pydantic.ValidationError, match="unknown crosswalk 'y'"):
        yield_calib(unsignalised=["y"])


def test_a_slow_creep_is_yielding_not_passing() -> None:
    case = CASES["yp_passes_in_front"]
    assert run_pure(case.scenario, yield_calib(min_speed=1.0)) == []


def test_a_conflict_while_the_pedestrian_head_reads_dark_waits_for_what_it_showed() -> None:
    """The pedestrian head reads dark from half a second before the conflict: the green is only
    held (``dark_since``). Charged once the green is back (same event as with no dark reading);
    not charged when the dark run becomes a fault — it might have been red for pedestrians."""
    from sharpeyes.pipeline.rules.yield_pedestrian import YieldToPedestriansRule
    from sharpeyes.pipeline.types import SignalState
    from tests.scenarios import FRAME_SIZE
    from tests.scenarios.feed import frame_at, tracks_at

    case = CASES["yp_passes_in_front"]
    s = case.scenario

    def run(dark_from: float | None, fault: bool) -> list[tuple[float | None, str]]:
        rule = YieldToPedestriansRule(s.name, case.calib, FRAME_SIZE)
        rng, out = s.rng(), []
        for i in range(s.n_frames):
            t = s.pts(i)
            ped = SignalState("ped", LampColor.GREEN, 1.0, 0.0, t)
            if dark_from is not None and t >= dark_from:
                if fault and t >= dark_from + 2.0:
                    ped = SignalState("ped", LampColor.OFF, 0.5, dark_from, t, fault="dark")
                elif fault or t < dark_from + 1.5:
                    ped = SignalState("ped", LampColor.GREEN, 1.0, 0.0, t, dark_since=dark_from)
            signals = {"ped": ped, "main": SignalState("main", LampColor.RED, 1.0, 0.0, t)}
            out.extend(rule.update(frame_at(s, i), tracks_at(s, i, rng), signals))
        out.extend(rule.end_of_stream())
        return [(e.best_pts, e.event_id) for e in out]

    (clear,) = run(None, fault=False)
    conflict = clear[0]
    assert conflict is not None
    assert run(conflict - 0.5, fault=False) == [clear], "green again: the same charge, later"
    assert run(conflict - 0.5, fault=True) == [], "a fault: what it showed is not known"
