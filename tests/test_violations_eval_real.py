"""The violation suite on real footage (issue 17), opt-in (``-m slow``, ~1 min of CPU):
``benchmarks/violations_eval.py`` runs ``sharpeyes analyze`` on hanoi_b with its suite
calibration and scores the charges against the labels made by eye.

Floors are the measured values (docs/VIOLATIONS.md, "Real footage"): every wrong-way charge a
labelled (or ambiguous) wrong-way driver, at least 4 of the 6 labelled ones caught (the two
missed are riders whose motorbike the detector never found), and no charge of any other type —
the clip has none of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.violations_eval import REPO, analyze, evaluate, load_records, table

pytestmark = [pytest.mark.slow, pytest.mark.integration]
LABELS = REPO / "sample_videos" / "hanoi_b_violations_labels.json"


def test_hanoi_b_per_type(tmp_path: Path) -> None:
    labels = json.loads(LABELS.read_text(encoding="utf-8"))
    scores = {s.type: s for s in evaluate(load_records(analyze(labels, tmp_path)), labels)}
    report = "\n".join(table("hanoi_b", list(scores.values())))
    assert set(scores) == set(labels["types"]), report  # nothing charged outside the calibration
    ww = scores.pop("wrong_way")
    assert ww.precision == 1.0 and ww.recall is not None and ww.recall >= 4 / 6, report
    for s in scores.values():
        assert not s.false_alarms and not s.misses, report
