"""Cost of checkpoint structuring relative to the detector, per analysed frame.

    python -m benchmarks.structuring_cost [VIDEO] [--config CAMERA.yaml] [--frames N]
        [--full-every N] [--json]

(default: the checkpoint clip with ``sample_videos/plates_closeup_beijing.yaml``)

Runs the camera's own parts on the CPU, one frame at a time — the detector the config asks for,
its detection policy, ByteTrack, the track-event builder wrapped by
:class:`~sharpeyes.pipeline.structuring.vehicle.VehicleStructuring` — and times the detector
(pre + inference + post) and the structuring stage (the plate reads and colour votes on
best-view candidates + fusion at emission, i.e. the wrapper's time minus the inner builder's,
and the camera's whole-picture plate searches, ``structuring.plate_first``).
Prints ms per analysed frame for both and their ratio (goal: structuring ≤ 25 % of detector),
in wall-clock time and in CPU time (``time.process_time``: every thread of the process). The two
differ where the detector runs on several threads (ONNX Runtime's default: one per core) and
the plate reader on one (``shared_plate_reader``, as in the product, where it runs on the
tracking thread beside the detector's): wall time then charges the plate reads as if they
held the whole machine.
For reference it also times a full-frame plate read (the "plate-first on every frame" option)
on every ``--full-every``-th frame. The detector's providers and threads and the machine (CPU,
cores, GPU, load) are printed and in the JSON (``--json`` prints JSON instead of the table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from benchmarks import _cli
from sharpeyes.api.node.camera import (
    build_detector,
    detection_policy,
    plate_first_search,
    shared_plate_reader,
)
from sharpeyes.models.classes import COCO80_NAMES, VEHICLE_CLASS_CODES
from sharpeyes.pipeline.config import load_camera_config
from sharpeyes.pipeline.data import shared_dir
from sharpeyes.pipeline.detection_filter import CameraDetectionFilter
from sharpeyes.pipeline.events import TrackEventBuilder
from sharpeyes.pipeline.runner import TRACKED_KINDS
from sharpeyes.pipeline.structuring.earlier import EarlierPictures
from sharpeyes.pipeline.structuring.plate_first import join_tracks
from sharpeyes.pipeline.structuring.vehicle import VehicleStructuring
from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
from sharpeyes.pipeline.types import Event, Frame, ImageBGR, ObjectKind, Tracks

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "sample_videos" / "plates_closeup_beijing.yaml"


def _now() -> NDArray[np.float64]:
    """Wall-clock and process CPU seconds (every thread of the process: ONNX Runtime's too)."""
    return np.array([time.perf_counter(), time.process_time()])


class _TimedInner:
    """The inner event builder, timed, so its own time is not charged to structuring."""

    def __init__(self, inner: TrackEventBuilder) -> None:
        self.inner = inner
        self.seconds = np.zeros(2)  # wall, CPU

    def update(self, frame: Frame, tracks: Tracks) -> list[Event]:
        t = _now()
        try:
            return self.inner.update(frame, tracks)
        finally:
            self.seconds += _now() - t

    def finish(self, track_ids: Sequence[int]) -> list[Event]:
        t = _now()
        try:
            return self.inner.finish(track_ids)
        finally:
            self.seconds += _now() - t

    def flush(self) -> list[Event]:
        return self.inner.flush()


def frames(video: Path, limit: int | None) -> Iterator[tuple[int, float, ImageBGR]]:
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    i = 0
    try:
        while limit is None or i < limit:
            ok, img = cap.read()
            if not ok:
                break
            yield i, i / fps, np.asarray(img, np.uint8)
            i += 1
    finally:
        cap.release()


def run(video: Path, config: Path, limit: int | None, full_every: int) -> dict[str, object]:
    cam = load_camera_config(config)
    cam = cam.model_copy(
        update={"structuring": cam.structuring.model_copy(update={"enabled": True})}
    )
    detector = build_detector(cam)
    post = CameraDetectionFilter.for_names(
        detection_policy(cam), detector.info.class_names or COCO80_NAMES
    )
    tracker = ByteTracker(cam.tracker)
    inner = _TimedInner(
        TrackEventBuilder(
            cam.id, cam.events, class_names=COCO80_NAMES, class_codes=VEHICLE_CLASS_CODES
        )
    )
    reader = shared_plate_reader(cam.structuring.plate_detector)
    sc = cam.structuring
    earlier = EarlierPictures(sc.earlier_s, sc.read_interval_s, sc.min_box_px)
    stage = VehicleStructuring(inner, reader, sc, earlier=earlier if sc.earlier_s > 0 else None)
    first = plate_first_search(cam, reader, post, stage)
    full_reader = shared_plate_reader("plate_det_640")
    det_s, struct_s = np.zeros(2), np.zeros(2)  # wall, CPU
    full_s = 0.0
    n = full_n = 0
    for i, pts, img in frames(video, limit):
        frame = Frame(cam.id, i, pts, int(pts * 1000), img)
        t0 = _now()
        dets = post(detector.detect([img])[0])
        t1 = _now()
        tracks = tracker.update(dets.of_kind(*TRACKED_KINDS), pts)
        finished = tracker.pop_finished()
        before = inner.seconds.copy()
        t2 = _now()
        if first is not None:  # as the runner does: plates no track holds, tracks of their own
            cars = dets.of_kind(ObjectKind.MOTOR_VEHICLE)
            found = first.update(
                frame, tracks, finished, cars.xyxy, classes=cars.class_id, scores=cars.confidence
            )
            tracks = join_tracks(tracks, found)
            finished = [*finished, *first.pop_finished()]
        stage.update(frame, tracks)
        if finished:
            stage.finish(finished)
        if sc.earlier_s > 0:  # as the runner does, after the stage
            earlier.add(frame, dets, tracks)
        t3 = _now()
        det_s += t1 - t0
        struct_s += (t3 - t2) - (inner.seconds - before)
        n += 1
        if full_every and i % full_every == 0:
            t4 = time.perf_counter()
            full_reader.read(img)
            full_s += time.perf_counter() - t4
            full_n += 1
    stage.flush()
    if n == 0:
        raise ValueError(f"{video}: no frames decoded")
    (det_ms, det_cpu), (st_ms, st_cpu) = 1000 * det_s / max(n, 1), 1000 * struct_s / max(n, 1)
    return {
        "video": video.name,
        "frames": n,
        "detector": f"{cam.detector.model} {cam.detector.input_size}",
        "providers": list(detector.info.providers),
        "intra_op_threads": detector.info.intra_op_threads or "default",
        "plate_detector": cam.structuring.plate_detector,
        "plate_reads": stage.reads_total,
        "plate_reads_earlier": stage.earlier_reads,
        "plate_first_searches": first.stats.searches if first is not None else 0,
        "plate_first_tracks": first.stats.tracks if first is not None else 0,
        "detector_ms_per_frame": round(det_ms, 2),
        "structuring_ms_per_frame": round(st_ms, 2),
        "structuring_over_detector": round(st_ms / det_ms, 4) if det_ms else None,
        "detector_cpu_ms_per_frame": round(det_cpu, 2),
        "structuring_cpu_ms_per_frame": round(st_cpu, 2),
        "structuring_over_detector_cpu": round(st_cpu / det_cpu, 4) if det_cpu else None,
        "full_frame_plate_read_ms": round(1000 * full_s / full_n, 2) if full_n else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "video",
        type=Path,
        nargs="?",
        default=shared_dir() / "sample_videos" / "plates_closeup_beijing_640x360.mp4",
    )
    ap.add_argument("--config", type=_cli.existing_file, default=DEFAULT_CONFIG)
    ap.add_argument(
        "--frames", type=_cli.positive_int, default=None, help="analyse at most this many frames"
    )
    ap.add_argument(
        "--full-every",
        type=_cli.non_negative_int,
        default=10,
        help="0 = no full-frame reference",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not Path(args.video).is_file():
        ap.error(f"{args.video}: no such video")
    try:
        res = run(args.video, args.config, args.frames, args.full_every)
    except ValueError as e:
        ap.error(str(e))
    machine = _cli.machine()
    res["machine"] = machine
    if args.json:
        sys.stdout.write(json.dumps(res) + "\n")
    else:
        rows = {k: v for k, v in res.items() if k != "machine"}
        sys.stdout.write("".join(f"{k:<28} {v}\n" for k, v in rows.items()))
        sys.stdout.write(f"{'machine':<28} {_cli.machine_line(machine)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
