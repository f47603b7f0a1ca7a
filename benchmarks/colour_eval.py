"""Vehicle body and clothing colour accuracy on the labelled tracks (tests/data/colour_labels.json)

    python -m benchmarks.colour_eval [--labels PATH] [--videos DIR] [--method model|rules]
                                     [--cv clip] [--json]

For every labelled track the frames of its views are decoded from the sample clip (``--videos``,
default ``../shared/sample_videos``), each view's region is classified with the same functions
the structuring stage uses (:mod:`sharpeyes.pipeline.structuring.lab_colour`: backdrop from the
ring around the box, vehicle / coat / trousers region; vehicles with the shipped hybrid model
:func:`~sharpeyes.pipeline.structuring.lab_colour.vehicle_classifier`, persons with
``CLOTHING_RULES``) and the views are voted into one colour per track. Tracks labelled
``unknown`` are not scored (they are counted), nor are the trousers of riders (``rider`` in the
labels), whose colour the structuring stage does not state (``person.RIDER_TROUSERS``; counted
as "not stated"). Accuracy and the confusion matrix (rows label,
columns predicted) are printed per task (vehicle, coat, trousers) for the clips of the ``tune``
split and of the ``held_out`` split separately (and of any other split the label file names:
``--labels tests/data/colour_labels_pets.json`` is one ``unseen`` clip, fetched by
:mod:`benchmarks.fetch_clips` when it is not in ``--videos``); ``--json`` adds one JSON line with
the numbers.
The time per classified crop is reported too.

``--exposure G`` scales every frame's pixel values by G before anything is measured: the same
views as a darker (G < 1) or brighter camera would record them. ``--cast R,G,B`` scales the red,
green and blue channels by those gains (after ``--exposure``): a camera whose white balance is
off (``1.15,1,0.8``: a warm cast — sodium lamps, low sun, a badly set white balance).
``--method rules`` scores the hand-written rules (``ColourRules()``) on vehicles instead.
``--cv clip``: leave-one-clip-out — for every clip, the vehicle model is fitted
(:func:`~sharpeyes.pipeline.structuring.lab_colour.fit_colour_model`, same settings as
``scripts/fit_colour_model.py``) on the labelled vehicle views of all *other* clips and scored on
that clip; the rows are per clip plus ``all``. Persons use rules (nothing is fitted), so their
cross-validation rows are their plain per-clip scores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from benchmarks import _cli, fetch_clips
from sharpeyes.pipeline.picture import picture_balance
from sharpeyes.pipeline.structuring.lab_colour import (
    Backdrop,
    ColourClassifier,
    ColourModel,
    ColourRules,
    ColourVote,
    _clip_box,
    backdrop,
    coat_region,
    colour_features,
    fit_colour_model,
    trousers_region,
    vehicle_classifier,
    vehicle_region,
    vote,
)
from sharpeyes.pipeline.structuring.person import CLOTHING_RULES, RIDER_TROUSERS
from sharpeyes.pipeline.types import Box, ImageBGR

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = ROOT / "tests" / "data" / "colour_labels.json"
DEFAULT_VIDEOS = ROOT.parent / "shared" / "sample_videos"
UNKNOWN = "unknown"
MIN_PIXELS = 16  # classify_box's default
TASKS: dict[str, tuple[str, str, Callable[[Box], Box]]] = {
    # task → (labels list, label key, region of the object's box)
    "vehicle": ("vehicles", "color", vehicle_region),
    "coat": ("persons", "coat", coat_region),
    "trousers": ("persons", "trousers", trousers_region),
}


def classifiers(method: str = "model") -> dict[str, ColourClassifier]:
    """The classifier per task: what the structuring stage uses (``model``) or plain rules."""
    vehicle: ColourClassifier = vehicle_classifier() if method == "model" else ColourRules()
    return {"vehicle": vehicle, "coat": CLOTHING_RULES, "trousers": CLOTHING_RULES}


@dataclass
class Score:
    """Labels and predictions of one task on one split."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    unknown: int = 0
    not_stated: int = 0  # labelled, but the product states nothing (a rider's trousers)

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


@dataclass
class View:
    """One labelled view: its region's pixels (None when under ``MIN_PIXELS``) and backdrop."""

    task: str
    clip: str
    split: str
    track: int  # index of the labelled object in the file
    label: str
    region: ImageBGR | None
    scene: Backdrop
    rider: bool = False  # a person on a two-wheeler (the label file's ``rider``)


@dataclass
class Timer:
    crops: int = 0
    seconds: float = 0.0


Cast = tuple[float, float, float]
"""Gains of the red, green and blue channels (1, 1, 1: as recorded)."""
NO_CAST: Cast = (1.0, 1.0, 1.0)


def _frames(
    video: Path, wanted: set[int], exposure: float = 1.0, cast: Cast = NO_CAST
) -> dict[int, ImageBGR]:
    """The ``wanted`` frames (decode indices), each ×``exposure`` and × ``cast`` per channel
    (1 and (1, 1, 1): as recorded)."""
    gain = np.asarray(cast[::-1], np.float32) * exposure  # BGR
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
                    if exposure != 1.0 or cast != NO_CAST:
                        img = np.clip(img.astype(np.float32) * gain, 0, 255)
                    out[index] = np.asarray(img, np.uint8)
            index += 1
    finally:
        cap.release()
    return out


def _box(xyxy: Sequence[float], image: ImageBGR) -> Box:
    h, w = image.shape[:2]
    return Box(float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]), w, h)


READERS = ("a", "b", "agreed")


def label_of(obj: Mapping[str, object], field_name: str, reader: str = "a") -> str:
    """The label of ``obj`` as reader ``a`` (the first labeller), ``b`` (the second, blind one)
    or both (``agreed``: the label where both named the same colour, else unknown)."""
    a = str(obj.get(field_name) or UNKNOWN)
    if reader == "a":
        return a
    b = str(obj.get(f"{field_name}_b") or UNKNOWN)
    if reader == "b":
        return b
    return a if a == b else UNKNOWN


def agreement(labels_path: Path) -> dict[str, tuple[int, int]]:
    """Per task: (objects both readers named the same colour, objects both named a colour)."""
    doc = json.loads(labels_path.read_text())
    out: dict[str, tuple[int, int]] = {}
    for task, (key, field_name, _) in TASKS.items():
        pairs = [(label_of(o, field_name, "a"), label_of(o, field_name, "b")) for o in doc[key]]
        known = [(a, b) for a, b in pairs if UNKNOWN not in (a, b)]
        out[task] = (sum(a == b for a, b in known), len(known))
    return out


def collect(
    labels_path: Path,
    videos: Path,
    timer: Timer | None = None,
    reader: str = "a",
    *,
    exposure: float = 1.0,
    cast: Cast = NO_CAST,
) -> list[View]:
    """Every labelled view of every task (unknown ones too), with its region and backdrop;
    ``exposure`` scales every frame first (a darker or brighter camera), ``cast`` each channel
    (a white balance that is off)."""
    doc = json.loads(labels_path.read_text())
    out: list[View] = []
    for clip, info in doc["clips"].items():
        items = {key: [o for o in doc[key] if o["clip"] == clip] for key in ("vehicles", "persons")}
        wanted = {int(v["frame"]) for objs in items.values() for o in objs for v in o["views"]}
        if not wanted:
            continue
        frames = _frames(clip_path(videos, clip), wanted, exposure, cast)
        pictures = {i: picture_balance(img) for i, img in frames.items()}  # as the stages do
        for task, (key, field_name, region_of) in TASKS.items():
            for obj in items[key]:
                index = doc[key].index(obj)
                for v in obj["views"]:
                    image = frames[int(v["frame"])]
                    box = _box(v["box"], image)
                    t0 = time.perf_counter()
                    picture = pictures[int(v["frame"])]
                    scene = backdrop(image, box, exposure=picture.exposure, balance=picture.gains)
                    if timer is not None:
                        timer.seconds += time.perf_counter() - t0
                    r = region_of(box)
                    h, w = image.shape[:2]
                    x1, y1, x2, y2 = _clip_box((r.x1, r.y1, r.x2, r.y2), w, h)
                    ok = (x2 - x1) * (y2 - y1) >= MIN_PIXELS and x2 > x1 and y2 > y1
                    crop = image[y1:y2, x1:x2].copy() if ok else None
                    label = label_of(obj, field_name, reader)
                    rider = bool(obj.get("rider", False))
                    out.append(
                        View(task, clip, str(info["split"]), index, label, crop, scene, rider)
                    )
    return out


def clip_path(videos: Path, clip: str) -> Path:
    """``videos/clip``, else a clip :mod:`benchmarks.fetch_clips` knows, found or fetched (the
    footage of ``tests/data/colour_labels_pets.json`` is not in the shared folder)."""
    path = videos / clip
    if path.is_file() or clip not in fetch_clips.CLIPS:
        return path
    return fetch_clips.fetch(clip)


SPLIT_ORDER = ("tune", "held_out")


def splits_of(labels_path: Path) -> list[str]:
    """The label file's splits: ``tune`` and ``held_out`` first, then any other (``unseen``)."""
    doc = json.loads(labels_path.read_text())
    named = {str(info["split"]) for info in doc["clips"].values()}
    return [s for s in SPLIT_ORDER if s in named] + sorted(named - set(SPLIT_ORDER))


def _tracks(views: Sequence[View]) -> dict[tuple[str, int], list[View]]:
    out: dict[tuple[str, int], list[View]] = {}
    for v in views:
        out.setdefault((v.clip, v.track), []).append(v)
    return out


def score(views: Sequence[View], clf: ColourClassifier, timer: Timer | None = None) -> Score:
    """One task's views voted per track (:func:`vote`, as the structuring stage does)."""
    result = Score()
    for track in _tracks(views).values():
        if track[0].label == UNKNOWN:
            result.unknown += 1
            continue
        if track[0].task == "trousers" and track[0].rider and not RIDER_TROUSERS:
            result.not_stated += 1  # as the structuring stage: a rider's legs are the bike
            continue
        reads: list[ColourVote | None] = []
        for v in track:
            t0 = time.perf_counter()
            reads.append(clf.classify(v.region, v.scene) if v.region is not None else None)
            if timer is not None:
                timer.seconds += time.perf_counter() - t0
                timer.crops += 1
        fused = vote(reads)
        result.pairs.append((track[0].label, fused.color if fused is not None else "none"))
    return result


def fit_views(views: Sequence[View]) -> ColourModel:
    """The vehicle model fitted on these views (labelled, with a region), as the script does."""
    used = [v for v in views if v.label != UNKNOWN and v.region is not None]
    feats = np.stack([colour_features(v.region, v.scene) for v in used if v.region is not None])
    return fit_colour_model(feats, [v.label for v in used])


def evaluate(
    labels_path: Path,
    videos: Path,
    method: str = "model",
    reader: str = "a",
    *,
    exposure: float = 1.0,
    cast: Cast = NO_CAST,
) -> tuple[dict[str, dict[str, Score]], Timer]:
    """Scores per split (:func:`splits_of`: ``tune`` / ``held_out`` / others) and task, and the
    classification time."""
    timer = Timer()
    views = collect(labels_path, videos, timer, reader, exposure=exposure, cast=cast)
    clfs = classifiers(method)
    scores: dict[str, dict[str, Score]] = {}
    for split in splits_of(labels_path):
        for task in TASKS:
            sel = [v for v in views if v.split == split and v.task == task]
            scores.setdefault(split, {})[task] = score(sel, clfs[task], timer)
    return scores, timer


def _relabel(views: Sequence[View], labels_path: Path, reader: str) -> list[View]:
    """``views`` (reader ``a``'s labels) with ``reader``'s labels, without decoding again."""
    if reader == "a":
        return list(views)
    doc = json.loads(labels_path.read_text())
    out = []
    for v in views:
        key, field_name, _ = TASKS[v.task]
        out.append(dataclasses.replace(v, label=label_of(doc[key][v.track], field_name, reader)))
    return out


def cross_validate(
    labels_path: Path, videos: Path, reader: str = "a"
) -> dict[str, dict[str, Score]]:
    """Leave-one-clip-out: scores per held-out clip (and ``all``) and task (see module doc).
    The vehicle model is always fitted on reader ``a``'s labels (as the shipped one is)."""
    views = collect(labels_path, videos)
    scored = _relabel(views, labels_path, reader)
    clfs = classifiers("rules")
    scores: dict[str, dict[str, Score]] = {"all": {t: Score() for t in TASKS}}
    for clip in dict.fromkeys(v.clip for v in views):
        for task in TASKS:
            test = [v for v in scored if v.clip == clip and v.task == task]
            if not test:
                continue
            clf = clfs[task]
            if task == "vehicle":
                clf = fit_views([v for v in views if v.clip != clip and v.task == task])
            s = score(test, clf)
            scores.setdefault(clip, {})[task] = s
            scores["all"][task].pairs += s.pairs
            scores["all"][task].unknown += s.unknown
            scores["all"][task].not_stated += s.not_stated
    return scores


def report(scores: dict[str, dict[str, Score]], timer: Timer | None = None) -> str:
    lines: list[str] = []
    for split, tasks in scores.items():
        for task, sc in tasks.items():
            n = len(sc.pairs)
            if not n and not sc.unknown and not sc.not_stated:
                continue  # nothing of this task labelled on these clips
            hits = sum(a == b for a, b in sc.pairs)
            lines.append(
                f"[{split}] {task:<9} accuracy {hits}/{n} = {100 * sc.accuracy:.1f} %"
                f"  (unknown, not scored: {sc.unknown}"
                + (f"; riders, not stated: {sc.not_stated}" if sc.not_stated else "")
                + ")"
            )
            if n:
                lines.append(sc.table())
    if timer is not None:
        ms = 1000 * timer.seconds / max(timer.crops, 1)
        lines.append(f"classified crops {timer.crops}, {ms:.3f} ms per crop (backdrop + region)")
    return "\n".join(lines)


def summary(scores: dict[str, dict[str, Score]], timer: Timer | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        split: {
            task: {
                "n": len(s.pairs),
                "accuracy": round(s.accuracy, 4),
                "unknown": s.unknown,
                "not_stated": s.not_stated,
            }
            for task, s in tasks.items()
        }
        for split, tasks in scores.items()
    }
    if timer is not None:
        out["ms_per_crop"] = round(1000 * timer.seconds / max(timer.crops, 1), 4)
    return out


def _cast(text: str) -> Cast:
    try:
        r, g, b = (float(x) for x in text.split(","))
    except ValueError as exc:
        msg = f"expected R,G,B gains such as 1.15,1,0.8: {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if min(r, g, b) <= 0.0:
        raise argparse.ArgumentTypeError(f"gains must be positive: {text!r}")
    return (r, g, b)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=_cli.existing_file, default=DEFAULT_LABELS)
    ap.add_argument("--videos", type=_cli.existing_dir, default=DEFAULT_VIDEOS)
    ap.add_argument("--method", choices=("model", "rules"), default="model")
    ap.add_argument("--cv", choices=("clip",), help="leave-one-clip-out cross-validation")
    ap.add_argument(
        "--reader",
        choices=READERS,
        default="a",
        help="score against the first labeller (a), the second (b) or what both agree on",
    )
    ap.add_argument(
        "--exposure",
        type=float,
        default=1.0,
        help="scale every frame's pixel values first (0.5: a camera two stops darker); "
        "not with --cv",
    )
    ap.add_argument(
        "--cast",
        type=_cast,
        default=NO_CAST,
        help="R,G,B gains on the channels (1.15,1,0.8: a warm white balance); not with --cv",
    )
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    args = ap.parse_args(argv)
    if args.cv and (args.exposure != 1.0 or args.cast != NO_CAST):
        ap.error("--exposure and --cast are not used with --cv")
    timer: Timer | None = None
    if args.cv:
        scores = cross_validate(args.labels, args.videos, args.reader)
    else:
        scores, timer = evaluate(
            args.labels,
            args.videos,
            args.method,
            args.reader,
            exposure=args.exposure,
            cast=args.cast,
        )
    for task, (same, both) in agreement(args.labels).items():
        sys.stdout.write(f"readers agree: {task:<9} {same}/{both} objects both named\n")
    sys.stdout.write(f"scored against reader: {args.reader}\n")
    sys.stdout.write(report(scores, timer) + "\n")
    if args.json:
        sys.stdout.write(json.dumps(summary(scores, timer), sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
