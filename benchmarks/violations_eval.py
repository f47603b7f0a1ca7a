"""Violation-suite precision/recall per type on labelled real clips (issue 17).

    python -m benchmarks.violations_eval LABELS.json EVENTS.jsonl [--json OUT]
    python -m benchmarks.violations_eval LABELS.json --analyze [--out DIR] [--json OUT]

``LABELS.json`` (``sample_videos/*_violations_labels.json``): the clip, its calibration, the
types its calibration enables with their labelled counts (``types``; zero is a count), and the
labelled violations (``type``, ``t_s``, ``x_px``, ``ambiguous``). ``EVENTS.jsonl``: what
``sharpeyes analyze`` writes; ``--analyze`` runs it first on the label file's video and
calibration. A charge is an event with ``extra.violation_type``; red-light charges (no type) are
left to ``benchmarks.redlight_eval``.

Matching: a charge of type T matches a label of type T when its violation time
(``violation.crossed_stop_line_pts``) lies in the label's ``t_s`` widened by ``T_TOL_S`` and its
box-bottom-centre x in the label's ``x_px`` widened by ``X_TOL_PX``; one charge per label,
greedy on the smallest time gap. A charge matching only an ambiguous label counts neither way;
an ambiguous label is never a miss. Every false alarm and miss is printed with its detail.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import _cli

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "sample_videos"
T_TOL_S = 1.0
X_TOL_PX = 60.0

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Charge:
    """One charged violation as the evaluation sees it."""

    index: int
    type: str
    t: float
    x: float
    track_id: int | None
    detail: str


@dataclass(slots=True)
class TypeScore:
    """Matches of one violation type on one clip."""

    type: str
    labelled: int
    ambiguous: int = 0
    tp: list[tuple[str, Charge]] = field(default_factory=list)
    ambiguous_hits: list[tuple[str, Charge]] = field(default_factory=list)
    false_alarms: list[Charge] = field(default_factory=list)
    misses: list[Record] = field(default_factory=list)

    @property
    def charges(self) -> int:
        return len(self.tp) + len(self.false_alarms) + len(self.ambiguous_hits)

    @property
    def precision(self) -> float | None:
        n = len(self.tp) + len(self.false_alarms)
        return len(self.tp) / n if n else None

    @property
    def recall(self) -> float | None:
        n = len(self.tp) + len(self.misses)
        return len(self.tp) / n if n else None


def charges(records: list[Record]) -> list[Charge]:
    """The suite's charges among ``records`` (red-light violations have no type: skipped)."""
    out = []
    for i, r in enumerate(records):
        vtype = (r.get("extra") or {}).get("violation_type")
        v = r.get("violation")
        if not vtype or not v:
            continue
        box = r.get("box") or r.get("best_box") or {}
        x = (float(box.get("x1", 0.0)) + float(box.get("x2", 0.0))) / 2.0
        t = float(v["crossed_stop_line_pts"])
        out.append(Charge(i, str(vtype), t, x, r.get("track_id"), str(r.get("detail", ""))))
    return out


def _fits(c: Charge, lab: Record) -> float | None:
    """The time gap between a charge and a label when they match, else None."""
    t0, t1 = (float(v) for v in lab["t_s"])
    x0, x1 = (float(v) for v in lab["x_px"])
    if not (t0 - T_TOL_S <= c.t <= t1 + T_TOL_S and x0 - X_TOL_PX <= c.x <= x1 + X_TOL_PX):
        return None
    return 0.0 if t0 <= c.t <= t1 else min(abs(c.t - t0), abs(c.t - t1))


def score_type(vtype: str, labelled: int, labels: list[Record], found: list[Charge]) -> TypeScore:
    """Greedy one-to-one matching of one type's charges to its labels."""
    sc = TypeScore(vtype, labelled, ambiguous=sum(1 for lab in labels if lab.get("ambiguous")))
    pairs = sorted(
        (gap, li, ci)
        for li, lab in enumerate(labels)
        for ci, c in enumerate(found)
        if (gap := _fits(c, lab)) is not None
    )
    used_l: set[int] = set()
    used_c: set[int] = set()
    for _, li, ci in pairs:
        if li in used_l or ci in used_c:
            continue
        used_l.add(li)
        used_c.add(ci)
        hit = (str(labels[li]["id"]), found[ci])
        (sc.ambiguous_hits if labels[li].get("ambiguous") else sc.tp).append(hit)
    sc.false_alarms = [c for ci, c in enumerate(found) if ci not in used_c]
    sc.misses = [
        lab for li, lab in enumerate(labels) if li not in used_l and not lab.get("ambiguous")
    ]
    return sc


def evaluate(records: list[Record], labels: Record) -> list[TypeScore]:
    """One :class:`TypeScore` per type the labels enable, plus any other type charged."""
    found = charges(records)
    types = dict(labels["types"])
    for c in found:
        types.setdefault(c.type, 0)  # charged but not enabled: every charge a false alarm
    out = []
    for vtype, count in types.items():
        labs = [lab for lab in labels["violations"] if lab["type"] == vtype]
        clear = sum(1 for lab in labs if not lab.get("ambiguous"))
        if clear != int(count):
            raise ValueError(f"{vtype}: types says {count} but {clear} unambiguous labels")
        out.append(score_type(vtype, int(count), labs, [c for c in found if c.type == vtype]))
    return out


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(clip: str, scores: list[TypeScore]) -> list[str]:
    """The per-type table of one clip, then every false alarm, miss and ambiguous hit."""
    head = f"{'clip':28} {'type':17} {'lab':>3} {'amb':>3} {'chg':>3} {'tp':>3} {'fp':>3}"
    lines = [head + f" {'fn':>3} {'prec':>6} {'recall':>6}"]
    for s in scores:
        counts = f"{s.labelled:>3} {s.ambiguous:>3} {s.charges:>3} {len(s.tp):>3}"
        tail = f" {len(s.false_alarms):>3} {len(s.misses):>3}"
        lines.append(
            f"{clip:28} {s.type:17} {counts}{tail} {_ratio(s.precision):>6} {_ratio(s.recall):>6}"
        )
    for s in scores:
        for lid, c in s.tp:
            lines.append(f"  match  {s.type} {lid}: track {c.track_id} at {c.t:.2f}s x={c.x:.0f}")
        for lid, c in s.ambiguous_hits:
            lines.append(f"  AMBIG  {s.type} {lid}: track {c.track_id} at {c.t:.2f}s x={c.x:.0f}")
        for c in s.false_alarms:
            lines.append(
                f"  FALSE  {s.type} track {c.track_id} at {c.t:.2f}s x={c.x:.0f}: {c.detail}"
            )
        for lab in s.misses:
            lines.append(f"  MISS   {s.type} {lab['id']} t {lab['t_s']}: {lab['track']}")
    return lines


def as_json(clip: str, scores: list[TypeScore]) -> Record:
    return {
        "clip": clip,
        "types": {
            s.type: {
                "labelled": s.labelled,
                "ambiguous": s.ambiguous,
                "charges": s.charges,
                "tp": len(s.tp),
                "fp": len(s.false_alarms),
                "fn": len(s.misses),
                "precision": s.precision,
                "recall": s.recall,
                "false_alarms": [f"track {c.track_id} at {c.t:.2f}s" for c in s.false_alarms],
                "misses": [str(lab["id"]) for lab in s.misses],
            }
            for s in scores
        },
    }


def load_records(path: Path) -> list[Record]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def analyze(labels: Record, out: Path) -> Path:
    """Run ``sharpeyes analyze`` on the labels' clip and calibration; the events file."""
    cmd = [
        sys.executable,
        "-c",
        "from sharpeyes.api.commands.cli import main; raise SystemExit(main())",
        "analyze",
        str(VIDEOS / str(labels["video"])),
        "--config",
        str(REPO / str(labels["calibration"])),
        "--out",
        str(out),
        "--no-progress",
    ]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return out / "events.jsonl"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("labels", type=_cli.existing_file)
    ap.add_argument(
        "events", type=_cli.existing_file, nargs="?", help="events.jsonl of sharpeyes analyze"
    )
    ap.add_argument("--analyze", action="store_true", help="run sharpeyes analyze first")
    ap.add_argument("--out", type=Path, help="analyze output folder (default: a temp folder)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    labels = json.loads(args.labels.read_text(encoding="utf-8"))
    if args.analyze:
        out = args.out or Path(tempfile.mkdtemp(prefix="violations_eval_"))
        events = analyze(labels, out)
    elif args.events is None:
        ap.error("give EVENTS.jsonl or --analyze")
    else:
        events = args.events
    clip = Path(str(labels["video"])).stem
    scores = evaluate(load_records(events), labels)
    sys.stdout.write("\n".join(table(clip, scores)) + "\n")
    if args.json:
        args.json.write_text(json.dumps(as_json(clip, scores), indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
