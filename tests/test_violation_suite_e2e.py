"""The e-police suite through the composition root (issue 17): rendered scenes of the suite
through ``analyze`` and the local cluster backend charge the same violations — the expected
ones, of the expected type, and nothing else (red-light included, all rules run).

The suite's rules are registered in ``pipeline.rules.RULES``, so every entry point builds them
on the first frame like red-light; this test shows it on real decoded video rather than pure
tracks. (No-turn scenes depend on the Beijing wall clock of the scene and parking scenes are
45 s long: they are covered by the pure suite, not here.)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sharpeyes.api.store.db import open_database
from sharpeyes.pipeline.config import CameraConfig
from tests.equivalence import stamp_clip, via_analyze, via_cluster
from tests.scenarios import SCENARIOS, render_scenario
from tests.scenarios.violations import FAMILIES, Case

pytestmark = pytest.mark.integration

PICKS = {  # family → the case rendered
    "wrong_way": "ww_lane",
    "lane_direction": "ld_left_from_straight",
    "solid_line": "sl_change_over_solid",
    "yield_pedestrian": "yp_passes_in_front",
}


def case(family: str) -> Case:
    return next(c for c in FAMILIES[family] if c.scenario.name == PICKS[family])


def camera(c: Case, clip: Path) -> CameraConfig:
    SCENARIOS.setdefault(c.scenario.name, c.scenario)
    return CameraConfig.model_validate(
        {
            "id": "suite",
            "url": str(clip),
            "detector": {"model": f"scenario:{c.scenario.name}"},
            "tracker": {"min_hits": 2},
            "events": {"kinds": ["motor_vehicle", "person"]},
            "intersection": c.calib.model_dump(mode="json"),
        }
    )


def charged(db_path: Path) -> Counter[str]:
    db = open_database(str(db_path))
    try:
        with db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                "SELECT extra FROM events WHERE stream_id = 'suite' AND violation_code IS NOT NULL"
            )
    finally:
        db.close()
    out: Counter[str] = Counter()
    for (raw,) in rows:
        extra = raw if isinstance(raw, dict) else json.loads(raw or "{}")
        out[extra.get("violation_type", "red_light")] += 1
    return out


@pytest.mark.parametrize("family", sorted(PICKS))
def test_suite_violation_through_analyze_and_cluster(family: str, tmp_path: Path) -> None:
    c = case(family)
    SCENARIOS.setdefault(c.scenario.name, c.scenario)
    gt = render_scenario(c.scenario.name, tmp_path / "raw.mp4")
    clip = tmp_path / "clip.mp4"
    stamp_clip(gt.path, clip, c.scenario.fps)
    cam = camera(c, clip)
    via_analyze(cam, tmp_path / "a")
    via_cluster(cam, tmp_path / "c", 120)
    expected = Counter({family: len(c.charges)})
    assert charged(tmp_path / "a" / "events.db") == expected
    assert charged(tmp_path / "c" / "cluster.db") == expected
    # The signed record says what was charged and against which geometry, not just a code.
    records = [json.loads(p.read_text()) for p in (tmp_path / "a").rglob("record.json")]
    assert len(records) == len(c.charges)
    for rec in records:
        assert rec["violation"]["type"] == family
        assert rec["violation"]["judged"], rec["violation"]


def test_parking_evidence_spans_the_dwell_through_analyze(tmp_path: Path) -> None:
    """Illegal parking through ``analyze``: images 1–3 are the frames of the stop's start, its
    half-way point and the charge (the runner pins them beyond its 12 s history), so the
    per-type evidence check finds nothing missing but the (rendered, plate-less) plate."""
    c = next(x for x in FAMILIES["illegal_parking"] if x.scenario.name == "pk_parked")
    SCENARIOS.setdefault(c.scenario.name, c.scenario)
    gt = render_scenario(c.scenario.name, tmp_path / "raw.mp4")
    clip = tmp_path / "clip.mp4"
    stamp_clip(gt.path, clip, c.scenario.fps)
    via_analyze(camera(c, clip), tmp_path / "a")
    assert charged(tmp_path / "a" / "events.db") == Counter({"illegal_parking": 1})
    (path,) = list((tmp_path / "a").rglob("record.json"))
    rec = json.loads(path.read_text())
    wanted = rec["violation"]["evidence_pts"]
    got = [im["pts"] for im in rec["images"]]
    assert wanted[-1] - wanted[0] > 12.0
    assert all(abs(g - w) <= 0.5 for g, w in zip(got, wanted, strict=True)), (got, wanted)
    # the rendered car has no plate to read; nothing else may be missing
    assert [x["part"] for x in rec.get("incomplete", [])] == ["plate"], rec.get("incomplete")
