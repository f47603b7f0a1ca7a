"""The hand-labelled hanoi_b list is consistent, and the benchmark matcher scores it right."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.redlight_eval import match_labels

REPO = Path(__file__).resolve().parents[1]
LABELS = json.loads((REPO / "sample_videos" / "hanoi_b_labels.json").read_text(encoding="utf-8"))


def test_labels_are_consistent() -> None:
    v = LABELS["violations"]
    assert LABELS["count"] == len(v) == LABELS["vehicle_count"] + LABELS["pedestrian_count"]
    assert len({x["id"] for x in v}) == len(v)
    red_lo, red_hi = LABELS["signal_phases"]["red"]
    for x in v:
        lo, hi = x["cross_frames"]
        assert red_lo <= lo <= hi <= red_hi, x["id"]
        assert x["frames"][0] <= lo and hi <= x["frames"][1] + 6, x["id"]
        assert 0 <= x["x_px"] < 640 and x["lane_id"] in {"s0", "s1", "s2"}


def _record(frame: float, x: float) -> dict[str, object]:
    return {
        "type": "red_light_violation",
        "violation": {"crossed_stop_line_pts": frame * LABELS["frame_duration_s"]},
        "best_box": {"x1": x - 10, "x2": x + 10},
    }


def test_matcher_perfect_and_one_off() -> None:
    perfect = [_record(sum(x["cross_frames"]) / 2, x["x_px"]) for x in LABELS["violations"]]
    m = match_labels(perfect, LABELS)
    assert (m.precision, m.recall) == (1.0, 1.0)
    m = match_labels([*perfect[1:], _record(300, 320), {"type": "vehicle_pass"}], LABELS)
    assert len(m.misses) == 1 and len(m.false_alarms) == 1
    assert m.recall == (len(perfect) - 1) / len(perfect)


def test_suite_charges_are_not_red_light_runners() -> None:
    """A wrong-way charge (a red_light_violation event of another violation type) is neither a
    match nor a red-light false alarm."""
    perfect = [_record(sum(x["cross_frames"]) / 2, x["x_px"]) for x in LABELS["violations"]]
    wrong_way = {**_record(300, 320), "extra": {"violation_type": "wrong_way"}}
    m = match_labels([*perfect, wrong_way], LABELS)
    assert (m.precision, m.recall) == (1.0, 1.0) and not m.false_alarms
