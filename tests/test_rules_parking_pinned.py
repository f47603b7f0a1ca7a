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


def test_runner_history_keeps_pinned_frames_beyond_its_window() -> None:
    """The runner's sequence (add the frame, pin what rules still need, run the rules) gives a
    parking charge frames at its own evidence times, though the window is only 12 s and the
    dwell is longer: image 1 at the stop's start, image 2 at its half-way point."""
    from sharpeyes.pipeline.runner import FrameHistory
    from sharpeyes.pipeline.types import AnalysedFrame

    case = next(c for c in FAMILIES["illegal_parking"] if c.scenario.name == "pk_parked")
    s = case.scenario
    (rule,) = [
        r for r in build_rules(s.name, case.calib, FRAME_SIZE) if isinstance(r, IllegalParkingRule)
    ]
    history = FrameHistory(12.0)
    rng = s.rng()
    charge = None
    for i, signals in enumerate(signal_stream(s)):
        frame, tracks = frame_at(s, i), tracks_at(s, i, rng)
        history.add(AnalysedFrame(frame, tracks, signals))
        history.pin(rule.pinned_pts())
        if events := rule.update(frame, tracks, signals):
            charge = events[0]
            break
    assert charge is not None and charge.violation is not None
    wanted = charge.violation.evidence_pts
    assert wanted[-1] - wanted[0] > 12.0  # the dwell reaches beyond the window
    got = [f.frame.pts for f in history.nearest(wanted)]
    assert all(abs(g - w) <= 0.5 for g, w in zip(got, wanted, strict=True)), (got, wanted)
    # once charged nothing stays pinned
    history.pin(rule.pinned_pts())
    assert history.pinned == 0


def test_without_pins_the_window_loses_image_one() -> None:
    """The same run without pinning: image 1's frame has left the 12 s window (the failure the
    pins fix — a 20 s dwell's first image taken ~12 s before the last)."""
    from sharpeyes.pipeline.runner import FrameHistory
    from sharpeyes.pipeline.types import AnalysedFrame

    case = next(c for c in FAMILIES["illegal_parking"] if c.scenario.name == "pk_parked")
    s = case.scenario
    (rule,) = [
        r for r in build_rules(s.name, case.calib, FRAME_SIZE) if isinstance(r, IllegalParkingRule)
    ]
    history = FrameHistory(12.0)
    rng = s.rng()
    for i, signals in enumerate(signal_stream(s)):
        frame, tracks = frame_at(s, i), tracks_at(s, i, rng)
        history.add(AnalysedFrame(frame, tracks, signals))
        if events := rule.update(frame, tracks, signals):
            assert events[0].violation is not None
            start = events[0].violation.evidence_pts[0]
            assert abs(history.nearest([start])[0].frame.pts - start) > 0.5
            return
    raise AssertionError("no charge")
