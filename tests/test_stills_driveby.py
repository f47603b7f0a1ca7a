"""Checkpoint plates on cars nothing was tuned on: the labelled stills driven past a camera
(``benchmarks/stills_driveby.py``), through ``sharpeyes analyze`` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import _cli
from benchmarks.eval_plates import evaluate, load_events, load_labels
from benchmarks.stills_driveby import PLATELESS, STILLS, plate_attributes, plateless_said, render
from tests._models_fixtures import require_shared

CONFIG = Path(__file__).resolve().parents[1] / "sample_videos" / "plates_closeup_beijing.yaml"


def test_stills_driven_past_a_checkpoint_camera_are_read_with_their_plate_kinds(
    tmp_path: Path,
) -> None:
    """Twelve cars, six of them with green new-energy plates (eight characters) and one with a
    double-layer yellow plate — kinds the Beijing clip does not hold. Each car gets one event;
    11 of 12 plates are read exactly (ccpd_08's 皖AD5D13 the recogniser reads 皖AD5013 on the
    still itself at 70–100 px with plate_det_640 and at 100 px and more with plate_det_320:
    one false plate at most is its limit, not the pipeline's); every plate read states its
    colour and layers as labelled. Before round 27 the double-layer plate went out as one
    layer, HyperLPR's car (box cut by the picture's edge) was left unreadable and ccpd_06 had
    too few reads. The thirteenth car is ccpd_09's with its plate painted out: after twelve
    plated cars the camera says it has none (无牌)."""
    stills = require_shared("images/plates/labels.csv").parent
    labels = render(tmp_path / "driveby.mp4", stills)
    (tmp_path / "labels.json").write_text(json.dumps(labels, ensure_ascii=False))
    start = ("--start-time", "2026-12-01T10:00:00")
    events = _cli.analyze(tmp_path / "driveby.mp4", CONFIG, tmp_path / "out", *start)
    fps, vehicles = load_labels(tmp_path / "labels.json")
    report = evaluate(vehicles, load_events(events, fps))
    assert report.vehicles == len(STILLS) + len(PLATELESS) == 13
    assert report.missed == [] and report.duplicates == 0 and report.unmatched_events == 0
    assert report.plates_exact >= 11, report.to_json()
    assert len(report.false_plates) <= 1, report.false_plates
    attributes = plate_attributes(events, labels)
    assert len(attributes) >= 11 and set(attributes.values()) == {"ok"}, attributes
    assert attributes.get("京EA5331") == "ok"  # yellow, two layers
    # what analyze tells its user: the events that state a plate, and why the others do not
    summary = (tmp_path / "out" / "analyze.txt").read_text(encoding="utf-8")
    stated = sum(e.plate is not None for e in load_events(events, fps))
    assert f"vehicle plates: {stated} of 13 stated" in summary, summary
    assert plateless_said(events, labels) == ["no_plate_visible"]
    assert report.has_plate_ok == report.has_plate_total == 1
    green = [s.plate for s in STILLS if s.plate_colour == "green"]
    assert sum(p in attributes for p in green) >= 5  # new-energy plates: 8 characters, green


def test_a_plateless_car_on_a_camera_that_has_found_no_plate_yet_is_not_said_plateless(
    tmp_path: Path,
) -> None:
    """The same plateless car as the first car a camera sees: nothing tells it yet that a plate
    there would have been found, so it does not say 无牌 (``plate_not_found``, HasPlate not
    stated) — round 28: a highway camera with plates too small to find said it of 8 of its 44
    plated cars, the top-view camera of 12 of 25."""
    stills = require_shared("images/plates/labels.csv").parent
    labels = render(tmp_path / "driveby.mp4", stills, PLATELESS)
    start = ("--start-time", "2026-12-01T10:00:00")
    events = _cli.analyze(tmp_path / "driveby.mp4", CONFIG, tmp_path / "out", *start)
    assert plateless_said(events, labels) == ["plate_not_found"]
