"""Rider attribute accuracy: does sharpeyes call a person a two-wheeler's rider when it is one?

    python -m benchmarks.rider_eval [--labels PATH] [--videos DIR] [--json]

The persons of ``tests/data/colour_labels.json`` carry ``rider`` (by eye: sitting on a bicycle,
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

Printed: per clip and overall, the confusion of labelled rider / walker against decided rider /
walker, and the rider decision's precision and recall; ``--json`` adds one JSON line.
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

import numpy as np

from sharpeyes.api.node.camera import CameraEnv, build_camera, build_detector
from sharpeyes.pipeline.config import ALL_EVENT_KINDS, CameraConfig, load_camera_config
from sharpeyes.pipeline.riders import RiderMemory
from sharpeyes.pipeline.types import Detections, Event, Frame, ObjectKind, SignalState, Tracks

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = ROOT / "tests" / "data" / "colour_labels.json"
DEFAULT_VIDEOS = ROOT.parent / "shared" / "sample_videos"
MIN_IOU = 0.5


@dataclass
class Recorder:
    """The observer: person boxes per frame index and track, and the replayed rider memory."""

    memory: RiderMemory = field(default_factory=lambda: RiderMemory(stale_s=math.inf))
    boxes: dict[int, dict[int, tuple[float, float, float, float]]] = field(default_factory=dict)

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
        self.boxes[frame.seq] = {
            int(tracks.track_id[i]): tuple(float(v) for v in tracks.xyxy[i])  # type: ignore[misc]
            for i in people
        }


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


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
    with tempfile.TemporaryDirectory(prefix="rider_eval_") as tmp:
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


def evaluate(labels: Path, videos: Path) -> dict[str, Confusion]:
    doc = json.loads(labels.read_text())
    scores: dict[str, Confusion] = {"all": Confusion()}
    for clip, info in doc["clips"].items():
        persons = [p for p in doc["persons"] if p["clip"] == clip]
        if not persons:
            continue
        config = ROOT / info["config"] if info.get("config") else None
        rec = run_clip(videos / clip, config)
        scores[clip] = score_clip(persons, rec, clip)
        scores["all"].merge(scores[clip])
    return scores


def report(scores: Mapping[str, Confusion]) -> str:
    lines = []
    for clip, c in sorted(scores.items(), key=lambda kv: kv[0] == "all"):
        s = c.summary()
        lines.append(
            f"{clip:<38} riders {s['rider_as_rider']}/{s['riders']} decided riders, "
            f"others {s['walker_as_walker']}/{s['walkers']} decided not riders, "
            f"precision {s['precision']}, recall {s['recall']}, unmatched {s['unmatched']}"
        )
    lines += [f"  miss: {m}" for m in scores["all"].misses]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    args = ap.parse_args(argv)
    scores = evaluate(args.labels, args.videos)
    sys.stdout.write(report(scores) + "\n")
    if args.json:
        sys.stdout.write(
            json.dumps({k: v.summary() for k, v in scores.items()}, sort_keys=True) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
