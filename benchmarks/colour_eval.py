"""Vehicle body and clothing colour accuracy on the labelled tracks (tests/data/colour_labels.json)

    python -m benchmarks.colour_eval [--labels PATH] [--videos DIR] [--json]

For every labelled track the frames of its views are decoded from the sample clip (``--videos``,
default ``../shared/sample_videos``), each view's region is classified with the same functions
the structuring stage uses (:mod:`sharpeyes.pipeline.structuring.lab_colour`: backdrop from the
ring around the box, vehicle / coat / trousers region) and the views are voted into one colour
per track. Tracks labelled ``unknown`` are not scored (they are counted). Accuracy and the
confusion matrix (rows label, columns predicted) are printed per task (vehicle, coat, trousers)
for the clips of the ``tune`` split and of the ``held_out`` split separately; ``--json`` adds one
JSON line with the numbers. The time per classified crop is reported too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sharpeyes.pipeline.structuring.lab_colour import (
    ColourRules,
    ColourVote,
    backdrop,
    classify_box,
    coat_region,
    trousers_region,
    vehicle_region,
    vote,
)
from sharpeyes.pipeline.structuring.person import CLOTHING_RULES
from sharpeyes.pipeline.types import Box, ImageBGR

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = ROOT / "tests" / "data" / "colour_labels.json"
DEFAULT_VIDEOS = ROOT.parent / "shared" / "sample_videos"
UNKNOWN = "unknown"
TASKS: dict[str, tuple[str, str, Callable[[Box], Box], ColourRules]] = {
    # task → (labels list, label key, region of the object's box, rules)
    "vehicle": ("vehicles", "color", vehicle_region, ColourRules()),
    "coat": ("persons", "coat", coat_region, CLOTHING_RULES),
    "trousers": ("persons", "trousers", trousers_region, CLOTHING_RULES),
}


@dataclass
class Score:
    """Labels and predictions of one task on one split."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    unknown: int = 0

    @property
    def accuracy(self) -> float:
        return sum(a == b for a, b in self.pairs) / len(self.pairs) if self.pairs else 0.0

    def table(self) -> str:
        labels = sorted({a for a, _ in self.pairs} | {b for _, b in self.pairs})
        counts = Counter(self.pairs)
        rows = ["label\\pred " + "".join(f"{c:>8}" for c in labels)]
        for a in labels:
            rows.append(f"{a:>10} " + "".join(f"{counts[(a, b)]:>8}" for b in labels))
        return "\n".join(rows)


def _frames(video: Path, wanted: set[int]) -> dict[int, ImageBGR]:
    cap = cv2.VideoCapture(str(video))
    out: dict[int, ImageBGR] = {}
    index, last = 0, max(wanted, default=-1)
    try:
        while index <= last:
            ok = cap.grab()
            if not ok:
                break
            if index in wanted:
                ok, img = cap.retrieve()
                if ok:
                    out[index] = np.asarray(img, np.uint8)
            index += 1
    finally:
        cap.release()
    return out


def _box(xyxy: Sequence[float], image: ImageBGR) -> Box:
    h, w = image.shape[:2]
    return Box(float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]), w, h)


@dataclass
class Timer:
    crops: int = 0
    seconds: float = 0.0


def _predict(
    views: Iterable[dict[str, object]],
    frames: dict[int, ImageBGR],
    region: Callable[[Box], Box],
    rules: ColourRules,
    timer: Timer,
) -> str:
    reads: list[ColourVote | None] = []
    for v in views:
        image = frames[int(str(v["frame"]))]
        box = _box(v["box"], image)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        reads.append(classify_box(image, region(box), backdrop(image, box), rules))
        timer.seconds += time.perf_counter() - t0
        timer.crops += 1
    fused = vote(reads)
    return fused.color if fused is not None else "none"


def evaluate(labels_path: Path, videos: Path) -> tuple[dict[str, dict[str, Score]], Timer]:
    """Scores per split (``tune`` / ``held_out``) and task, and the classification time."""
    doc = json.loads(labels_path.read_text())
    split_of = {clip: str(c["split"]) for clip, c in doc["clips"].items()}
    scores: dict[str, dict[str, Score]] = {}
    timer = Timer()
    for clip in doc["clips"]:
        items = {key: [o for o in doc[key] if o["clip"] == clip] for key in ("vehicles", "persons")}
        wanted = {int(v["frame"]) for objs in items.values() for o in objs for v in o["views"]}
        if not wanted:
            continue
        frames = _frames(videos / clip, wanted)
        for task, (key, field_name, region, rules) in TASKS.items():
            score = scores.setdefault(split_of[clip], {}).setdefault(task, Score())
            for obj in items[key]:
                label = str(obj[field_name])
                if label == UNKNOWN:
                    score.unknown += 1
                    continue
                score.pairs.append((label, _predict(obj["views"], frames, region, rules, timer)))
    return scores, timer


def report(scores: dict[str, dict[str, Score]], timer: Timer) -> str:
    lines: list[str] = []
    for split in ("tune", "held_out"):
        for task, score in scores.get(split, {}).items():
            n = len(score.pairs)
            hits = sum(a == b for a, b in score.pairs)
            lines.append(
                f"[{split}] {task:<9} accuracy {hits}/{n} = {100 * score.accuracy:.1f} %"
                f"  (unknown, not scored: {score.unknown})"
            )
            if n:
                lines.append(score.table())
    ms = 1000 * timer.seconds / max(timer.crops, 1)
    lines.append(f"classified crops {timer.crops}, {ms:.3f} ms per crop (backdrop + region)")
    return "\n".join(lines)


def summary(scores: dict[str, dict[str, Score]], timer: Timer) -> dict[str, object]:
    return {
        split: {
            task: {"n": len(s.pairs), "accuracy": round(s.accuracy, 4), "unknown": s.unknown}
            for task, s in tasks.items()
        }
        for split, tasks in scores.items()
    } | {"ms_per_crop": round(1000 * timer.seconds / max(timer.crops, 1), 4)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    args = ap.parse_args(argv)
    scores, timer = evaluate(args.labels, args.videos)
    sys.stdout.write(report(scores, timer) + "\n")
    if args.json:
        sys.stdout.write(json.dumps(summary(scores, timer), sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
