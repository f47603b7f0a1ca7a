"""Checkpoint accuracy: plates and body colours of ``sharpeyes analyze`` output vs labels.

    python -m benchmarks.eval_plates OUT/events.jsonl \
        [--labels sample_videos/plates_closeup_beijing_labels.json] [--frames START END] [--json]

Events are matched to labelled vehicles by the overlap of the event's [first, last] frame with
the vehicle's ``vehicle_frames`` plus its ``plate_frames`` (frames = pts × the labels' fps, plus
``--offset`` when the analysed video is a segment starting at that frame): one-to-one first,
greedily by that score; left-over events go to their best vehicle as duplicates. Plate text is
never used for matching. Reported:

* **exact-plate accuracy** — labelled readable plates with at least one event carrying exactly
  that plate text (goal ≥ 95 %);
* **false plates** — events stating a plate text that is not their vehicle's plate (or that
  match no labelled vehicle) (goal 0);
* duplicates (extra events of one vehicle), missed vehicles, ``HasPlate`` agreement (no plate
  stated for the vehicles whose plate is never visible);
* **vehicle colour accuracy** over matched vehicles (each vehicle's best-overlap event), with
  the confusion matrix (rows = label, columns = predicted).

``--frames START END`` restricts the labels to vehicles whose plate (or, without one, vehicle)
frames lie in that range — for a short segment.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import _cli

DEFAULT_LABELS = (
    Path(__file__).resolve().parents[1] / "sample_videos" / "plates_closeup_beijing_labels.json"
)


@dataclass(frozen=True)
class Vehicle:
    id: int
    plate: str | None
    body_color: str
    frames: tuple[int, int]
    plate_frames: tuple[int, int] | None


@dataclass(frozen=True)
class Detected:
    first: int
    last: int
    plate: str | None
    plate_visible: bool
    color: str | None
    status: str | None = None  # plate_status


@dataclass
class Report:
    vehicles: int = 0
    readable_plates: int = 0
    plates_exact: int = 0
    false_plates: list[str] = field(default_factory=list)
    duplicates: int = 0
    missed: list[int] = field(default_factory=list)
    unmatched_events: int = 0
    has_plate_ok: int = 0
    has_plate_total: int = 0
    color_ok: int = 0
    color_total: int = 0
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def plate_accuracy(self) -> float:
        return self.plates_exact / self.readable_plates if self.readable_plates else 0.0

    @property
    def color_accuracy(self) -> float:
        return self.color_ok / self.color_total if self.color_total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "vehicles": self.vehicles,
            "readable_plates": self.readable_plates,
            "plates_exact": self.plates_exact,
            "plate_accuracy": round(self.plate_accuracy, 4),
            "false_plates": self.false_plates,
            "duplicates": self.duplicates,
            "missed_vehicles": self.missed,
            "unmatched_events": self.unmatched_events,
            "has_plate_ok": f"{self.has_plate_ok}/{self.has_plate_total}",
            "color_accuracy": round(self.color_accuracy, 4),
            "color_ok": f"{self.color_ok}/{self.color_total}",
            "confusion": self.confusion,
        }


def load_labels(path: Path, frames: tuple[int, int] | None = None) -> tuple[float, list[Vehicle]]:
    return labels_from(json.loads(path.read_text(encoding="utf-8")), frames)


def labels_from(
    doc: dict[str, Any], frames: tuple[int, int] | None = None
) -> tuple[float, list[Vehicle]]:
    """The frame rate and vehicles of labels already parsed (:func:`load_labels`' format)."""
    out = []
    for v in doc["vehicles"]:
        pf = tuple(v["plate_frames"]) if v.get("plate_frames") else None
        vf = (int(v["vehicle_frames"][0]), int(v["vehicle_frames"][1]))
        if frames is not None:
            span = pf or vf
            if span[0] < frames[0] or span[1] > frames[1]:
                continue
        out.append(
            Vehicle(
                int(v["id"]),
                v.get("plate"),
                v["body_color"],
                vf,
                (int(pf[0]), int(pf[1])) if pf else None,
            )
        )
    return float(doc["fps"]), out


def load_events(path: Path, fps: float, offset: int = 0) -> list[Detected]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        e = json.loads(line)
        if e["type"] != "vehicle_pass":
            continue
        plate = e.get("plate") or None
        out.append(
            Detected(
                first=round(e["first_pts"] * fps) + offset,
                last=round(e["last_pts"] * fps) + offset,
                plate=plate.get("text") if plate else None,
                plate_visible=plate is not None,
                color=(e.get("extra") or {}).get("vehicle_color"),
                status=(e.get("extra") or {}).get("plate_status"),
            )
        )
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)


def _score(ev: Detected, v: Vehicle) -> int:
    span = (ev.first, ev.last)
    return _overlap(span, v.frames) + (_overlap(span, v.plate_frames) if v.plate_frames else 0)


def match(
    vehicles: list[Vehicle], events: list[Detected]
) -> tuple[dict[int, list[Detected]], list[Detected]]:
    """One-to-one first (greedy on the overlap score), then left-over events to their best
    vehicle (duplicates); events overlapping no vehicle are returned apart."""
    matched: dict[int, list[Detected]] = {v.id: [] for v in vehicles}
    pairs = sorted(
        ((_score(e, v), i, v.id) for i, e in enumerate(events) for v in vehicles),
        key=lambda p: -p[0],
    )
    used: set[int] = set()
    for score, i, vid in pairs:
        if score > 0 and i not in used and not matched[vid]:
            matched[vid].append(events[i])
            used.add(i)
    unmatched = []
    for i, e in enumerate(events):
        if i in used:
            continue
        best = max(vehicles, key=lambda v: _score(e, v), default=None)
        if best is None or _score(e, best) == 0:
            unmatched.append(e)
        else:
            matched[best.id].append(e)
    return matched, unmatched


def evaluate(vehicles: list[Vehicle], events: list[Detected]) -> Report:
    r = Report(vehicles=len(vehicles))
    by_id = {v.id: v for v in vehicles}
    matched, unmatched = match(vehicles, events)
    r.unmatched_events = len(unmatched)
    r.false_plates = [e.plate for e in unmatched if e.plate]
    for vid, evs in matched.items():
        r.false_plates += [e.plate for e in evs if e.plate and e.plate != by_id[vid].plate]
    for vid, evs in matched.items():
        v = by_id[vid]
        if not evs:
            r.missed.append(vid)
        r.duplicates += max(0, len(evs) - 1)
        if v.plate:
            r.readable_plates += 1
            r.plates_exact += any(e.plate == v.plate for e in evs)
        elif evs:
            r.has_plate_total += 1
            r.has_plate_ok += all(e.plate is None for e in evs)
        if evs:
            main = evs[0]  # the one-to-one match
            if main.color is not None:
                r.color_total += 1
                r.color_ok += main.color == v.body_color
                row = r.confusion.setdefault(v.body_color, {})
                row[main.color] = row.get(main.color, 0) + 1
    return r


def format_report(r: Report) -> str:
    lines = [
        f"vehicles labelled        {r.vehicles}",
        f"exact-plate accuracy     {r.plates_exact}/{r.readable_plates} = {r.plate_accuracy:.1%}",
        f"false plates             {len(r.false_plates)} {r.false_plates or ''}",
        f"duplicate events         {r.duplicates}",
        f"missed vehicles          {len(r.missed)} {r.missed or ''}",
        f"unmatched events         {r.unmatched_events}",
        f"no-plate vehicles, none  {r.has_plate_ok}/{r.has_plate_total}",
        f"vehicle colour accuracy  {r.color_ok}/{r.color_total} = {r.color_accuracy:.1%}",
        "confusion (rows label, columns predicted):",
    ]
    cols = sorted({c for row in r.confusion.values() for c in row} | set(r.confusion))
    lines.append("  " + " " * 8 + "".join(f"{c:>8}" for c in cols))
    for label in sorted(r.confusion):
        row = r.confusion[label]
        lines.append(f"  {label:>8}" + "".join(f"{row.get(c, 0):>8}" for c in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "events", type=_cli.existing_file, help="events.jsonl written by sharpeyes analyze"
    )
    ap.add_argument("--labels", type=_cli.existing_file, default=DEFAULT_LABELS)
    ap.add_argument("--frames", type=int, nargs=2, metavar=("START", "END"))
    ap.add_argument("--offset", type=int, default=0, help="first frame of the analysed segment")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = ap.parse_args(argv)
    fps, vehicles = load_labels(args.labels, tuple(args.frames) if args.frames else None)
    events = load_events(args.events, fps, args.offset)
    report = evaluate(vehicles, events)
    out = json.dumps(report.to_json(), ensure_ascii=False) if args.json else format_report(report)
    sys.stdout.write(out + "\n")
    if events and report.unmatched_events == len(events):
        clip = json.loads(args.labels.read_text(encoding="utf-8")).get("clip", "the labelled clip")
        sys.stderr.write(
            f"error: none of the {len(events)} events overlaps a labelled vehicle — are they "
            f"events of {clip} (and is --offset right)?\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
