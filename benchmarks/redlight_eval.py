"""Red-light precision/recall: on the synthetic scenario suite, and on hanoi_b labels.

    python -m benchmarks.redlight_eval scenarios [--json out.json]
    python -m benchmarks.redlight_eval hanoi EVENTS.jsonl [--labels LABELS.json]

``EVENTS.jsonl``: one event per line as written by the pipeline (``dataclasses.asdict`` of
:class:`pipeline.types.Event`, or any record with ``type``, ``violation.crossed_stop_line_pts``
and ``best_box.x1/x2``). Every miss and false alarm is listed so it can be explained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FRAME_TOL = 4
X_TOL_PX = 70.0


@dataclass(frozen=True, slots=True)
class Match:
    tp: list[tuple[str, int]]
    misses: list[dict[str, Any]]
    false_alarms: list[dict[str, Any]]

    @property
    def precision(self) -> float:
        n = len(self.tp) + len(self.false_alarms)
        return len(self.tp) / n if n else 1.0

    @property
    def recall(self) -> float:
        n = len(self.tp) + len(self.misses)
        return len(self.tp) / n if n else 1.0


def _event_facts(rec: dict[str, Any], frame_s: float) -> tuple[float, float] | None:
    if rec.get("type") != "red_light_violation" or not rec.get("violation"):
        return None
    box = rec.get("box") or rec.get("best_box") or {}
    x = (float(box.get("x1", 0.0)) + float(box.get("x2", 0.0))) / 2
    return float(rec["violation"]["crossed_stop_line_pts"]) / frame_s, x


def match_labels(records: list[dict[str, Any]], labels: dict[str, Any]) -> Match:
    """Greedy one-to-one matching of violation records to labelled runners."""
    frame_s = float(labels["frame_duration_s"])
    events = [(i, f) for i, r in enumerate(records) if (f := _event_facts(r, frame_s))]
    pairs = []
    for lab in labels["violations"]:
        lo, hi = lab["cross_frames"][0] - FRAME_TOL, lab["cross_frames"][1] + FRAME_TOL
        mid = (lab["cross_frames"][0] + lab["cross_frames"][1]) / 2
        for i, (fr, x) in events:
            if lo <= fr <= hi and abs(x - lab["x_px"]) <= X_TOL_PX:
                pairs.append((abs(fr - mid) + abs(x - lab["x_px"]) / 50, lab["id"], i))
    used_l: set[str] = set()
    used_e: set[int] = set()
    tp = []
    for _, lid, i in sorted(pairs):
        if lid not in used_l and i not in used_e:
            used_l.add(lid)
            used_e.add(i)
            tp.append((lid, i))
    misses = [lab for lab in labels["violations"] if lab["id"] not in used_l]
    fas = [
        {"record": i, "cross_frame": round(f[0], 1), "x": round(f[1])}
        for i, f in events
        if i not in used_e
    ]
    return Match(tp, misses, fas)


def run_scenarios() -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.scenarios import SCENARIOS, Score, run_pure, score

    rows = []
    total = Score(0, 0, 0)
    for name, s in SCENARIOS.items():
        t0 = time.perf_counter()
        sc = score(s, run_pure(s))
        ms = (time.perf_counter() - t0) * 1000
        total += sc
        rows.append(
            {
                "scenario": name,
                "tp": sc.tp,
                "fp": sc.fp,
                "fn": sc.fn,
                "frames": s.n_frames,
                "ms": round(ms, 1),
            }
        )
    return {
        "rows": rows,
        "tp": total.tp,
        "fp": total.fp,
        "fn": total.fn,
        "precision": round(total.precision, 4),
        "recall": round(total.recall, 4),
    }


def _print_scenarios(res: dict[str, Any]) -> None:
    sys.stdout.write(f"{'scenario':26} {'tp':>3} {'fp':>3} {'fn':>3} {'frames':>6} {'ms':>7}\n")
    for r in res["rows"]:
        counts = f"{r['tp']:>3} {r['fp']:>3} {r['fn']:>3} {r['frames']:>6} {r['ms']:>7}"
        sys.stdout.write(f"{r['scenario']:26} {counts}\n")
    sys.stdout.write(f"precision {res['precision']:.4f}  recall {res['recall']:.4f}\n")


def _load_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("scenarios", help="precision/recall on the synthetic suite")
    sc.add_argument("--json", type=Path)
    hn = sub.add_parser("hanoi", help="precision/recall of pipeline events on hanoi_b labels")
    hn.add_argument("events", type=Path)
    hn.add_argument("--labels", type=Path, default=REPO / "sample_videos" / "hanoi_b_labels.json")
    args = ap.parse_args(argv)
    if args.cmd == "scenarios":
        res = run_scenarios()
        _print_scenarios(res)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
        return 0
    labels = json.loads(args.labels.read_text(encoding="utf-8"))
    m = match_labels(_load_records(args.events), labels)
    out = {
        "labelled": len(labels["violations"]),
        "tp": len(m.tp),
        "precision": round(m.precision, 4),
        "recall": round(m.recall, 4),
        "misses": [x["id"] for x in m.misses],
        "false_alarms": m.false_alarms,
    }
    sys.stdout.write(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
