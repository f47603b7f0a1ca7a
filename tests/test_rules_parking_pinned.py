"""Illegal parking pins its evidence times (issue 17): while a stop is under watch the rule
names the start of the stop and, once reached, the half-way point of its dwell — the frames a
runner must keep beyond its short history for evidence images 1 and 2 — and nothing once
charged."""

from __future__ import annotations

from sharpeyes.pipeline.rules import IllegalParkingRule, build_rules
from tests.scenarios import FRAME_SIZE, signal_stream
from tests.scenarios.feed import frame_at, tracks_at
from tests.scenarios.violations import FAMILIES


def test_pinned_times_follow_the_dwell_timeline() -> None:
    case = next(c for c in FAMILIES["illegal_parking"] if c.scenario.name == "pk_parked")
    s = case.scenario
    (rule,) = [
        r for r in build_rules(s.name, case.calib, FRAME_SIZE) if isinstance(r, IllegalParkingRule)
    ]
    rng = s.rng()
    seen: list[list[float]] = []
    charge = None
    for i, signals in enumerate(signal_stream(s)):
        events = rule.update(frame_at(s, i), tracks_at(s, i, rng), signals)
        if events:
            charge = events[0]
            assert rule.pinned_pts() == []  # charged: nothing left to keep
            break
        seen.append(rule.pinned_pts())
    assert charge is not None and charge.violation is not None
    start, half, _ = charge.violation.evidence_pts
    assert [start] in seen and [start, half] == seen[-1]
    assert seen[0] == []  # before the car stops, nothing is pinned
