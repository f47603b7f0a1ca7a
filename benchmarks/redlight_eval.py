"""Red-light precision/recall: on the synthetic scenario suite, and on hanoi_b labels.

    python -m benchmarks.redlight_eval scenarios [--json out.json]
    python -m benchmarks.redlight_eval hanoi OUT/events.jsonl [--labels LABELS.json] [--json F]

``events.jsonl``: the file ``sharpeyes analyze`` writes (``api.store.serialize.event_to_json``:
``type``, ``box``, ``violation.crossed_stop_line_pts``, ``trajectory``); records with ``best_box``
instead of ``box`` are read too. Matching: a violation matches a label when its stop-line
crossing frame lies within the label's ``cross_frames`` widened by ``FRAME_TOL`` and its box
centre within ``X_TOL_PX`` of ``x_px``; one event per label, greedy on the closest pairs.

Every match, miss and false alarm is printed with the reason: for a miss, the nearest violation
(and how far off it was) or the tracks that were at the stop line then and what they raised
instead; for a false alarm, the nearest label and the event's own detail.

Seconds since red: for every matched violation, ``violation.seconds_since_red`` is compared with
the label-derived value, the labelled crossing (``cross_frames``) minus the labelled red onset
(the first frame of ``signal_phases.red``), both as frame times read from the video (``--video``;
without it, frame n is at n × ``frame_duration_s``). A label with ``cross_frame`` (a fractional
frame: the mean of two independent readings of the rear ground contact, see the labels'
``method``) is compared with that instant; one with only ``cross_frames`` (a span) gives a
delta of 0 inside the span and the distance to its nearer end outside. Also printed: the delta
against the event's own crossing (``crossed_stop_line_pts`` − labelled onset), which isolates
the red-onset error. The run fails (exit 1) when any onset delta is outside ±``SINCE_RED_TOL_S``;
with ``--strict`` also when any delta against the labelled crossing is (that delta adds the
rule's crossing-time error, e.g. riders' feet estimated 1–2 frames late, to the red-age error).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import _cli

REPO = Path(__file__).resolve().parents[1]
FRAME_TOL = 4
X_TOL_PX = 70.0
SINCE_RED_TOL_S = 0.2
DEFAULT_VIDEO = REPO.parent / "shared" / "sample_videos" / "intersection_hanoi_b_640x480.mp4"


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


Record = dict[str, Any]


def _event_facts(
    rec: dict[str, Any], frame_s: float, label_w: float | None = None
) -> tuple[float, float] | None:
    """(crossing frame, box centre x in the labels' pixels) of a red-light violation record; a
    record of a resized copy of the clip (``box.frame_w`` ≠ the labels' width) is scaled."""
    if rec.get("type") != "red_light_violation" or not rec.get("violation"):
        return None
    if (rec.get("extra") or {}).get("violation_type") not in (None, "red_light_violation"):
        return None  # a charge of the e-police suite (wrong-way …), not a red-light runner
    box = rec.get("box") or rec.get("best_box") or {}
    x = (float(box.get("x1", 0.0)) + float(box.get("x2", 0.0))) / 2
    if label_w and box.get("frame_w"):
        x *= label_w / float(box["frame_w"])
    return float(rec["violation"]["crossed_stop_line_pts"]) / frame_s, x


def _label_width(labels: dict[str, Any]) -> float | None:
    size = labels.get("frame_size")
    return float(size[0]) if size else None


def match_labels(records: list[dict[str, Any]], labels: dict[str, Any]) -> Match:
    """Greedy one-to-one matching of violation records to labelled runners."""
    frame_s = float(labels["frame_duration_s"])
    lw = _label_width(labels)
    events = [(i, f) for i, r in enumerate(records) if (f := _event_facts(r, frame_s, lw))]
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


def _violations(
    records: list[Record], frame_s: float, label_w: float | None = None
) -> list[tuple[int, float, float]]:
    return [
        (i, f[0], f[1]) for i, r in enumerate(records) if (f := _event_facts(r, frame_s, label_w))
    ]


def _at_line(records: list[Record], t: float, x: float, keep: int = 4) -> list[str]:
    """The ``keep`` tracks nearest to x within 1 s of ``t``: what they raised, where they were."""
    near = []
    for r in records:
        pts = [p for p in r.get("trajectory") or [] if abs(p[0] - t) <= 1.0]
        if not pts:
            continue
        p = min(pts, key=lambda q: abs(q[0] - t))
        if abs(p[1] - x) <= X_TOL_PX:
            where = f"at ({p[1]:.0f},{p[2]:.0f})"
            near.append((abs(p[1] - x), f"{r['type']} track {r.get('track_id')} {where}"))
    return [d for _, d in sorted(near)[:keep]]


def explain_miss(
    lab: Record, records: list[Record], frame_s: float, label_w: float | None = None
) -> str:
    """Why a labelled runner has no matching violation."""
    mid = sum(lab["cross_frames"]) / 2
    near = [
        (abs(fr - mid), i, fr, x)
        for i, fr, x in _violations(records, frame_s, label_w)
        if abs(fr - mid) <= 30 and abs(x - lab["x_px"]) <= 2 * X_TOL_PX
    ]
    if near:
        _, i, fr, x = min(near)
        r = records[i]
        return (
            f"nearest violation: track {r.get('track_id')} crossing f{fr:.1f} x={x:.0f} "
            f"(label f{lab['cross_frames']} x={lab['x_px']}); {r.get('detail')}"
        )
    seen = _at_line(records, mid * frame_s, float(lab["x_px"]))
    return "no violation near; at the line then: " + ("; ".join(seen) or "no track at all")


def explain_false_alarm(rec: Record, fr: float, x: float, labels: Record) -> str:
    """What a violation that matches no label is closest to."""
    best = min(
        labels["violations"],
        key=lambda lab: abs(sum(lab["cross_frames"]) / 2 - fr) + abs(lab["x_px"] - x) / 50,
    )
    return (
        f"track {rec.get('track_id')} ({rec.get('kind')}) crossing f{fr:.1f} x={x:.0f}: "
        f"{rec.get('detail')}; nearest label {best['id']} f{best['cross_frames']} "
        f"x={best['x_px']}"
    )


def hanoi_report(records: list[Record], labels: Record) -> dict[str, Any]:
    """Precision, recall, and every match, miss and false alarm with its reason."""
    frame_s = float(labels["frame_duration_s"])
    m = match_labels(records, labels)
    facts = {i: (fr, x) for i, fr, x in _violations(records, frame_s, _label_width(labels))}
    matched = []
    for lid, i in sorted(m.tp):
        r = records[i]
        extra = r.get("extra") or {}
        how = "rider (person track)" if extra.get("detected_as") == "person" else str(r["kind"])
        fr, x = facts[i]
        matched.append(f"{lid}: track {r.get('track_id')} {how} f{fr:.1f} x={x:.0f}")
    return {
        "labelled": len(labels["violations"]),
        "violations": len(facts),
        "tp": len(m.tp),
        "precision": round(m.precision, 4),
        "recall": round(m.recall, 4),
        "matched": matched,
        "misses": {
            lab["id"]: explain_miss(lab, records, frame_s, _label_width(labels)) for lab in m.misses
        },
        "false_alarms": [
            explain_false_alarm(records[fa["record"]], *facts[fa["record"]], labels)
            for fa in m.false_alarms
        ],
    }


def frame_times(video: Path | None, labels: Record) -> list[float]:
    """Presentation time (s, from the first frame) of every frame of the labelled clip, on the
    timeline the file sources give frames (one that continues where timestamps start again)."""
    n = int(labels["frames"])
    if video is None or not video.is_file():
        return [i * float(labels["frame_duration_s"]) for i in range(n)]
    import av

    from sharpeyes.streams.timing import FileTimeline

    with av.open(str(video)) as c:
        s = c.streams.video[0]
        tb = s.time_base
        assert tb is not None
        rate = float(s.average_rate or 0) or 1 / float(labels["frame_duration_s"])
        timeline = FileTimeline(float(tb), None, frame_s=1 / rate)
        rel = (timeline.packet(p.pts, bool(p.is_keyframe)) for p in c.demux(s) if p.size)
        pts = sorted(t for t in rel if t is not None)
    return [t - pts[0] for t in pts]


def _time_at(times: list[float], frame: float) -> float:
    """Time of a fractional frame index, linear between the frames around it."""
    i = min(max(int(frame), 0), len(times) - 2)
    return times[i] + (frame - i) * (times[i + 1] - times[i])


def since_red_check(records: list[Record], labels: Record, times: list[float]) -> dict[str, Any]:
    """Per matched violation: ``seconds_since_red`` against the label-derived value."""
    onset = times[int(labels["signal_phases"]["red"][0])]
    by_id = {lab["id"]: lab for lab in labels["violations"]}
    rows = []
    for lid, i in sorted(match_labels(records, labels).tp):
        v = records[i]["violation"]
        got = float(v["seconds_since_red"])
        lab = by_id[lid]
        if "cross_frame" in lab:  # one reading, to a fraction of a frame
            lo = hi = _time_at(times, float(lab["cross_frame"])) - onset
        else:
            lo, hi = (times[int(f)] - onset for f in lab["cross_frames"])
        delta = got - hi if got > hi else got - lo if got < lo else 0.0
        own = got - (float(v["crossed_stop_line_pts"]) - onset)
        rows.append(
            {
                "label": lid,
                "seconds_since_red": got,
                "label_range": [round(lo, 3), round(hi, 3)],
                "delta_s": round(delta, 3),
                "onset_delta_s": round(own, 3),
                "ok": abs(own) <= SINCE_RED_TOL_S,
                "label_ok": abs(delta) <= SINCE_RED_TOL_S,
            }
        )
    return {
        "red_onset_s": round(onset, 4),
        "tolerance_s": SINCE_RED_TOL_S,
        "rows": rows,
        "ok": all(r["ok"] for r in rows),
        "label_ok": all(r["label_ok"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("scenarios", help="precision/recall on the synthetic suite")
    sc.add_argument("--json", type=Path)
    hn = sub.add_parser("hanoi", help="precision/recall of pipeline events on hanoi_b labels")
    hn.add_argument(
        "events", type=_cli.existing_file, help="events.jsonl written by sharpeyes analyze"
    )
    hn.add_argument(
        "--labels", type=_cli.existing_file, default=REPO / "sample_videos" / "hanoi_b_labels.json"
    )
    hn.add_argument("--json", type=Path, help="also write the report here")
    hn.add_argument(
        "--video", type=_cli.existing_file, default=DEFAULT_VIDEO, help="the labelled clip"
    )
    hn.add_argument(
        "--strict",
        action="store_true",
        help="also fail when seconds since red is off the labelled crossing by more than 0.2 s",
    )
    args = ap.parse_args(argv)
    if args.cmd == "scenarios":
        res = run_scenarios()
        _print_scenarios(res)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
        return 0
    labels = json.loads(args.labels.read_text(encoding="utf-8"))
    records = _load_records(args.events)
    out = hanoi_report(records, labels)
    out["seconds_since_red"] = since_red_check(records, labels, frame_times(args.video, labels))
    _print_hanoi(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
    sr = out["seconds_since_red"]
    return 0 if sr["ok"] and (sr["label_ok"] or not args.strict) else 1


def _print_hanoi(out: dict[str, Any]) -> None:
    w = sys.stdout.write
    w(
        f"labelled {out['labelled']}  violations {out['violations']}  tp {out['tp']}  "
        f"precision {out['precision']:.4f}  recall {out['recall']:.4f}\n"
    )
    for line in out["matched"]:
        w(f"  match  {line}\n")
    for lid, why in out["misses"].items():
        w(f"  MISS   {lid}: {why}\n")
    for why in out["false_alarms"]:
        w(f"  FALSE  {why}\n")
    sr = out.get("seconds_since_red")
    if sr is None:
        return
    w(f"seconds since red (red onset {sr['red_onset_s']:.3f}s, tolerance ±{sr['tolerance_s']}s)\n")
    for r in sr["rows"]:
        lo, hi = r["label_range"]
        flag = "ok  " if r["ok"] else "FAIL"
        off = "" if r["label_ok"] else "  (crossing off the label by more than the tolerance)"
        w(
            f"  {flag}   {r['label']}: {r['seconds_since_red']:.3f}s, onset delta "
            f"{r['onset_delta_s']:+.3f}s; label {lo:.3f}-{hi:.3f}s, "
            f"delta {r['delta_s']:+.3f}s{off}\n"
        )
    n_label = sum(not r["label_ok"] for r in sr["rows"])
    w(
        f"seconds since red: onset deltas {'all' if sr['ok'] else 'NOT all'} within "
        f"±{sr['tolerance_s']}s; {n_label} of {len(sr['rows'])} off the labelled crossing by more\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
