"""Evidence facts per violation type (issue 17): the three images of every suite charge show what
the violation means — checked from each image's own tracks (pipeline.evidence.type_facts).

Each family's charged scenes of the synthetic suite are replayed frame by frame, keeping every
analysed frame (frame, tracks, signal states) as the runner does; the images are the frames
nearest the charge's evidence times. Every positive scene of every type must pass its type's
checks, and the same record built on the wrong frames (all three at image 1's time: the vehicle
has not done anything yet) must fail them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sharpeyes.pipeline.evidence.facts import (
    CameraFacts,
    image_facts,
    incomplete_parts,
    overlay_lines,
)
from sharpeyes.pipeline.evidence.type_facts import CHECKS
from sharpeyes.pipeline.rules import build_rules, violation_type
from sharpeyes.pipeline.types import AnalysedFrame, Event, Plate
from tests.scenarios import FRAME_SIZE, signal_stream
from tests.scenarios.feed import frame_at, tracks_at
from tests.scenarios.violations import FAMILIES, Case

POSITIVE = [
    pytest.param(c, id=f"{rule}/{c.scenario.name}")
    for rule, cases in FAMILIES.items()
    for c in cases
    if c.charges
]
PLATE = Plate(text="京A12345", color="blue", confidence=0.99)


def replay(case: Case) -> tuple[list[Event], list[AnalysedFrame]]:
    """The suite's charges on the case's scene and every analysed frame."""
    s = case.scenario
    rules = build_rules(s.name, case.calib, FRAME_SIZE)
    rng = s.rng()
    events: list[Event] = []
    frames: list[AnalysedFrame] = []
    for i, signals in enumerate(signal_stream(s)):
        frame, tracks = frame_at(s, i), tracks_at(s, i, rng)
        frames.append(AnalysedFrame(frame, tracks, signals))
        for r in rules:
            events.extend(r.update(frame, tracks, signals))
    for r in rules:
        events.extend(r.end_of_stream())
    return [e for e in events if violation_type(e) == case.rule], frames


def nearest(frames: list[AnalysedFrame], pts: float) -> AnalysedFrame:
    return min(frames, key=lambda af: abs(af.frame.pts - pts))


def problems(event: Event, chosen: list[AnalysedFrame]) -> list[dict[str, str]]:
    images = image_facts(event, chosen, None)
    return incomplete_parts(event, images, PLATE)


@pytest.mark.parametrize("case", POSITIVE)
def test_every_image_shows_the_violation(case: Case) -> None:
    events, frames = replay(case)
    assert events, "the scene's charge is raised"
    for ev in events:
        assert ev.violation is not None
        chosen = [nearest(frames, t) for t in ev.violation.evidence_pts]
        assert problems(ev, chosen) == [], ev.detail


@pytest.mark.parametrize("case", POSITIVE)
def test_images_of_the_wrong_moment_fail_the_checks(case: Case) -> None:
    events, frames = replay(case)
    for ev in events:
        assert ev.violation is not None
        first = nearest(frames, ev.violation.evidence_pts[0])
        parts = problems(ev, [first, first, first])
        assert parts, f"{case.rule}: three copies of image 1 pass the checks"
        assert all(p["part"].startswith("image") for p in parts)


def test_every_suite_type_has_checks() -> None:
    assert set(CHECKS) == set(FAMILIES)


def test_a_record_without_its_geometry_says_so() -> None:
    case = next(c for c in FAMILIES["wrong_way"] if c.charges)
    events, frames = replay(case)
    ev = events[0]
    assert ev.violation is not None
    bare = replace(ev, extra=tuple(kv for kv in ev.extra if kv[0] != "zone_px"))
    chosen = [nearest(frames, t) for t in ev.violation.evidence_pts]
    reasons = [p["reason"] for p in problems(bare, chosen)]
    assert reasons == ["record lacks the geometry entry 'zone_px' to check the images"]


def test_the_overlay_names_the_violation_not_a_red_age() -> None:
    case = next(c for c in FAMILIES["wrong_way"] if c.charges)
    events, frames = replay(case)
    ev = events[0]
    cam = CameraFacts(device_id="34020000001190000062", location="test", violation_code="1625")
    lines = overlay_lines(ev, frames[0].frame, cam, PLATE, index=1, total=3)
    text = " ".join(zh for line in lines for zh, _ in line.segments)
    assert "违法行为: 逆行" in text and "红灯已亮" not in text
    assert "违法代码: 1301 机动车逆向行驶" in text
