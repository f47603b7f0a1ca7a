"""Person and non-motor attributes: is a person riding, and what kind of two-wheeler is it?

    python -m benchmarks.attribute_eval [--labels PATH] [--two-wheelers PATH] [--videos DIR]
                                        [--json]

**Riding.** The persons of ``tests/data/colour_labels.json`` carry ``rider`` (by eye: sitting on a
scooter or motorbike in its views). For every clip with labelled persons the camera is built by
the one composition root (:func:`sharpeyes.api.node.camera.build_camera`; the clip's config from
the label file, ``events.kinds`` all three — as the labels were recorded) and run over the file.
An observer replays :class:`~sharpeyes.pipeline.riders.RiderMemory` — the sticky per-track
decision the runner makes to suppress a rider's own ``person_seen`` event (a rider's colours go
on its two-wheeler's ``non_motor_pass`` instead, and its trousers are not stated) — on every
analysed frame's tracks, without forgetting stale tracks, so the decision read at the end is the
one the track's event got. Each labelled person is matched to the person track whose box
overlaps its labelled boxes most (mean IoU over its views, at least ``MIN_IOU``); persons no
track matches are counted, not scored.

**Two-wheeler type.** ``tests/data/two_wheeler_labels.json`` gives, per two-wheeler track of
the clips that have them, one view (frame, box) and its type by eye (``motorcycle`` — motorbike,
scooter, e-scooter —, ``bicycle``; ``none`` where the box holds no two-wheeler, ``unknown``).
The same run records every two-wheeler-class track's boxes and its class votes as the event
builder counts them (one per detected frame; ties to the lower class id): the event's
``class_name`` (GA/T 1400 ``VehicleType`` of a NonMotorVehicleObject). Each label is matched to
the track whose box at its frame overlaps it most (IoU ≥ ``MIN_IOU``).

**What the track's own evidence says** (a what-if, not what the event states): for every
labelled two-wheeler the run also records (1) the tracker's score-weighted class votes over the
whole track (``Tracks.class_votes``) — the share on the other two-wheeler class; (2) the
two-wheeler tracks of the other class that are the same object — detected in one frame with it,
boxes at IoU ≥ ``SAME_OBJECT_IOU`` (the detector gave one bike two classes, and the tracker,
which never lets a class of another kind continue a track, kept two); (3) its riders — person
tracks that sat on it (:func:`sharpeyes.pipeline.riders.carrier_ids`) — and the frames they sat
on two-wheelers of each class. "Pooled" is the class with most per-frame votes over the track,
its same-object tracks and its riders' frames on other two-wheeler tracks.

Printed: per clip and overall, the confusion of labelled rider / not a rider against the
decision, the rider decision's precision and recall; the two-wheeler type confusion (rows label,
columns the event's class) and its accuracy over the labelled types, then each wrong one's
evidence and the pooled class's accuracy; ``--json`` adds one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _cli
from sharpeyes.api.node.camera import CameraEnv, build_camera, build_detector
from sharpeyes.pipeline.config import ALL_EVENT_KINDS, CameraConfig, load_camera_config
from sharpeyes.pipeline.geometry import iou_matrix
from sharpeyes.pipeline.riders import RiderMemory, carrier_ids
from sharpeyes.pipeline.types import Detections, Event, Frame, ObjectKind, SignalState, Tracks

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = ROOT / "tests" / "data" / "colour_labels.json"
DEFAULT_TWO_WHEELERS = ROOT / "tests" / "data" / "two_wheeler_labels.json"
DEFAULT_VIDEOS = ROOT.parent / "shared" / "sample_videos"
MIN_IOU = 0.5
SAME_OBJECT_IOU = 0.5
"""Two two-wheeler tracks detected in one frame with boxes at this IoU are one object (the usual
non-maximum-suppression overlap; two bikes side by side overlap far less)."""
TWO_WHEELER_CLASSES = {1: "bicycle", 3: "motorcycle"}  # COCO ids of the shipped detectors
Xyxy = tuple[float, float, float, float]


@dataclass
class Recorder:
    """The observer: person and two-wheeler boxes per frame index and track, the replayed rider
    memory and the two-wheeler tracks' class votes."""

    memory: RiderMemory = field(default_factory=lambda: RiderMemory(stale_s=math.inf))
    boxes: dict[int, dict[int, Xyxy]] = field(default_factory=dict)
    wheels: dict[int, dict[int, Xyxy]] = field(default_factory=dict)
    votes: dict[int, dict[int, int]] = field(default_factory=dict)
    scores: dict[int, dict[int, float]] = field(default_factory=dict)  # Tracks.class_votes
    rides: dict[int, dict[int, int]] = field(default_factory=dict)  # person → wheel → frames

    def __call__(
        self,
        frame: Frame,
        dets: Detections,
        tracks: Tracks,
        signals: Mapping[str, SignalState],
        events: Sequence[Event],
    ) -> None:
        self.memory.update(tracks, frame.pts)
        people = np.flatnonzero(tracks.kind == int(ObjectKind.PERSON))
        self.boxes[frame.seq] = {int(tracks.track_id[i]): _xyxy(tracks, i) for i in people}
        wheels: dict[int, Xyxy] = {}
        for i in np.flatnonzero(np.isin(tracks.class_id, list(TWO_WHEELER_CLASSES))):
            if not tracks.detected[i]:
                continue
            tid = int(tracks.track_id[i])
            wheels[tid] = _xyxy(tracks, i)
            votes = self.votes.setdefault(tid, {})
            votes[int(tracks.class_id[i])] = votes.get(int(tracks.class_id[i]), 0) + 1
            self.scores[tid] = tracks.votes_of(int(i))
        self.wheels[frame.seq] = wheels
        seen = tracks[tracks.detected]
        for row, wheel in enumerate(carrier_ids(seen).tolist()):
            if wheel >= 0:
                ridden = self.rides.setdefault(int(seen.track_id[row]), {})
                ridden[wheel] = ridden.get(wheel, 0) + 1

    def class_name(self, track_id: int) -> str:
        """The track's class as its event states it (most votes; ties to the lower id)."""
        votes = self.votes.get(track_id, {})
        if not votes:
            return "none"
        cls = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]
        return TWO_WHEELER_CLASSES.get(cls, str(cls))

    def evidence(self, track_id: int) -> Evidence:
        """What the track's own evidence says of its type (see the module docstring)."""
        stated = self.class_name(track_id)
        scores = self.scores.get(track_id, {})
        total = sum(scores.values())
        other = sum(w for c, w in scores.items() if TWO_WHEELER_CLASSES.get(c, stated) != stated)
        same = self._same_object(track_id)
        riders: dict[str, int] = {}
        pooled = dict(self.votes.get(track_id, {}))
        for t in same:
            for c, n in self.votes.get(t, {}).items():
                pooled[c] = pooled.get(c, 0) + n
        for ridden in self.rides.values():
            if track_id not in ridden:
                continue
            for t, n in ridden.items():
                name = self.class_name(t)
                riders[name] = riders.get(name, 0) + n
                if t != track_id and t not in same:
                    c = max(self.votes.get(t, {0: 0}).items(), key=lambda kv: (kv[1], -kv[0]))[0]
                    pooled[c] = pooled.get(c, 0) + n
        best = max(pooled.items(), key=lambda kv: (kv[1], -kv[0]))[0] if pooled else -1
        return Evidence(
            track_id,
            stated,
            round(other / total, 3) if total else 0.0,
            tuple(sorted((t, self.class_name(t)) for t in same)),
            riders,
            TWO_WHEELER_CLASSES.get(best, "none"),
        )

    def _same_object(self, track_id: int) -> set[int]:
        """Two-wheeler tracks of another class detected in a frame with this one, boxes at IoU
        ≥ :data:`SAME_OBJECT_IOU`."""
        out: set[int] = set()
        mine = self.class_name(track_id)
        for wheels in self.wheels.values():
            box = wheels.get(track_id)
            if box is None:
                continue
            for t, other in wheels.items():
                if (
                    t != track_id
                    and self.class_name(t) != mine
                    and iou(box, other) >= SAME_OBJECT_IOU
                ):
                    out.add(t)
        return out


@dataclass(frozen=True)
class Evidence:
    """A two-wheeler track's evidence of its type beyond its event's class."""

    track_id: int
    stated: str
    other_class_share: float  # of the tracker's score-weighted votes, on the other class
    same_object: tuple[tuple[int, str], ...]  # (track, its class) of the other class
    rider_frames: dict[str, int]  # its riders' frames on two-wheelers, by class
    pooled: str


def _xyxy(tracks: Tracks, i: int | np.integer[Any]) -> Xyxy:
    x1, y1, x2, y2 = (float(v) for v in tracks.xyxy[i])
    return x1, y1, x2, y2


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two x1, y1, x2, y2 boxes (:func:`sharpeyes.pipeline.geometry.iou_matrix`)."""
    return float(iou_matrix(np.asarray([a], np.float32), np.asarray([b], np.float32))[0, 0])


@dataclass
class Confusion:
    """Labelled (rider / walker) × decided (rider / walker), and the unmatched persons."""

    counts: dict[tuple[bool, bool], int] = field(default_factory=dict)
    unmatched: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, label: bool, decided: bool) -> None:
        self.counts[(label, decided)] = self.counts.get((label, decided), 0) + 1

    def n(self, label: bool, decided: bool) -> int:
        return self.counts.get((label, decided), 0)

    def merge(self, other: Confusion) -> None:
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        self.unmatched += other.unmatched
        self.misses += other.misses

    def summary(self) -> dict[str, object]:
        tp, fn = self.n(True, True), self.n(True, False)
        fp, tn = self.n(False, True), self.n(False, False)
        total = tp + fn + fp + tn
        return {
            "riders": tp + fn,
            "walkers": fp + tn,
            "rider_as_rider": tp,
            "rider_as_walker": fn,
            "walker_as_rider": fp,
            "walker_as_walker": tn,
            "accuracy": round((tp + tn) / total, 4) if total else None,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
            "unmatched": self.unmatched,
        }


def run_clip(video: Path, config: Path | None) -> Recorder:
    """The clip through the composition root, recording person tracks and rider decisions."""
    base: CameraConfig = load_camera_config(config)
    cam = base.model_copy(deep=True)
    cam.url = str(video)
    cam.events.kinds = list(ALL_EVENT_KINDS)
    recorder = Recorder()
    with tempfile.TemporaryDirectory(prefix="attribute_eval_") as tmp:
        camera = build_camera(
            cam, CameraEnv(files_root=Path(tmp)), detector=build_detector(cam), sinks=[]
        )
        camera.runner.observer = recorder
        try:
            camera.runner.run()
        finally:
            camera.close()
    return recorder


def score_clip(persons: Sequence[Mapping[str, object]], rec: Recorder, clip: str) -> Confusion:
    out = Confusion()
    for p in persons:
        views = p["views"]
        assert isinstance(views, list)
        overlap: dict[int, float] = {}
        for v in views:
            for tid, box in rec.boxes.get(int(v["frame"]), {}).items():
                overlap[tid] = overlap.get(tid, 0.0) + iou(box, v["box"]) / len(views)
        best = max(overlap, key=overlap.__getitem__, default=None)
        if best is None or overlap[best] < MIN_IOU:
            out.unmatched += 1
            continue
        label, decided = bool(p.get("rider", False)), rec.memory.is_rider(best)
        out.add(label, decided)
        if label != decided:
            out.misses.append(f"{clip} track {p['track']} → {best}: labelled rider={label}")
    return out


@dataclass
class TypeScore:
    """Two-wheeler type: (label, the event's class) pairs and the labels no track matched."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    unmatched: int = 0
    evidence: list[tuple[str, Evidence]] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        typed = [(a, b) for a, b in self.pairs if a in TWO_WHEELER_CLASSES.values()]
        hits = sum(a == b for a, b in typed)
        confusion: dict[str, dict[str, int]] = {}
        for a, b in self.pairs:
            row = confusion.setdefault(a, {})
            row[b] = row.get(b, 0) + 1
        pooled = [(a, e.pooled) for a, e in self.evidence if a in TWO_WHEELER_CLASSES.values()]
        return {
            "typed": len(typed),
            "correct": hits,
            "pooled_correct": sum(a == b for a, b in pooled),
            "accuracy": round(hits / len(typed), 4) if typed else None,
            "not_two_wheelers": sum(a == "none" for a, _ in self.pairs),
            "confusion": confusion,
            "unmatched": self.unmatched,
        }


def score_types(wheels: Sequence[Mapping[str, object]], rec: Recorder) -> TypeScore:
    out = TypeScore()
    for w in wheels:
        view = w["view"]
        assert isinstance(view, dict)
        boxes = rec.wheels.get(int(view["frame"]), {})
        overlap = {tid: iou(box, view["box"]) for tid, box in boxes.items()}
        best = max(overlap, key=overlap.__getitem__, default=None)
        if best is None or overlap[best] < MIN_IOU:
            out.unmatched += 1
            continue
        out.pairs.append((str(w["type"]), rec.class_name(best)))
        out.evidence.append((str(w["type"]), rec.evidence(best)))
    return out


@dataclass
class Scores:
    riding: dict[str, Confusion]
    types: TypeScore


def evaluate(labels: Path, videos: Path, two_wheelers: Path = DEFAULT_TWO_WHEELERS) -> Scores:
    doc = json.loads(labels.read_text())
    wdoc = json.loads(two_wheelers.read_text())
    configs: dict[str, str | None] = {
        clip: info.get("config") for clip, info in {**doc["clips"], **wdoc["clips"]}.items()
    }
    riding: dict[str, Confusion] = {"all": Confusion()}
    types = TypeScore()
    for clip, config in configs.items():
        persons = [p for p in doc["persons"] if p["clip"] == clip]
        wheels = [w for w in wdoc["two_wheelers"] if w["clip"] == clip]
        if not persons and not wheels:
            continue
        rec = run_clip(videos / clip, ROOT / config if config else None)
        if persons:
            riding[clip] = score_clip(persons, rec, clip)
            riding["all"].merge(riding[clip])
        t = score_types(wheels, rec)
        types.pairs += t.pairs
        types.unmatched += t.unmatched
        types.evidence += t.evidence
    return Scores(riding, types)


def report(scores: Scores) -> str:
    lines = ["riding (person on a two-wheeler):"]
    for clip, c in sorted(scores.riding.items(), key=lambda kv: kv[0] == "all"):
        s = c.summary()
        lines.append(
            f"  {clip:<36} riders {s['rider_as_rider']}/{s['riders']} decided riders, "
            f"others {s['walker_as_walker']}/{s['walkers']} decided not riders, "
            f"precision {s['precision']}, recall {s['recall']}, unmatched {s['unmatched']}"
        )
    lines += [f"    miss: {m}" for m in scores.riding["all"].misses]
    t = scores.types.summary()
    lines.append(
        f"two-wheeler type (the event's class_name): {t['correct']}/{t['typed']} typed ones "
        f"right ({t['accuracy']}), {t['not_two_wheelers']} boxes with no two-wheeler, "
        f"unmatched {t['unmatched']}"
    )
    confusion = t["confusion"]
    assert isinstance(confusion, dict)
    for label, row in sorted(confusion.items()):
        cells = ", ".join(f"{k} {v}" for k, v in sorted(row.items()))
        lines.append(f"  label {label:<10} → {cells}")
    lines.append("  the wrong ones' own evidence (other-class vote share, same object, riders):")
    for label, e in scores.types.evidence:
        if label in TWO_WHEELER_CLASSES.values() and label != e.stated:
            lines.append(
                f"    track {e.track_id} {label} stated {e.stated}: votes {e.other_class_share}, "
                f"same object {list(e.same_object)}, riders {e.rider_frames} → pooled {e.pooled}"
            )
    lines.append(
        f"  pooled (track + same-object tracks + riders' other two-wheelers, a what-if): "
        f"{t['pooled_correct']}/{t['typed']} right"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=_cli.existing_file, default=DEFAULT_LABELS)
    ap.add_argument("--two-wheelers", type=_cli.existing_file, default=DEFAULT_TWO_WHEELERS)
    ap.add_argument("--videos", type=_cli.existing_dir, default=DEFAULT_VIDEOS)
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    args = ap.parse_args(argv)
    scores = evaluate(args.labels, args.videos, args.two_wheelers)
    sys.stdout.write(report(scores) + "\n")
    if args.json:
        doc = {
            "riding": {k: v.summary() for k, v in scores.riding.items()},
            "two_wheeler_type": scores.types.summary(),
        }
        sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
