"""Run one camera through every entry point and read back what each stored.

The entry points: ``analyze`` (one file, its own detector), the node runtime behind ``sharpeyes
run``/``serve`` with the file played once in real time as a live camera, and the cluster's
pipeline program on the local backend. Each writes to its own database; :func:`outcome` reads
the violations (kind, track, stop-line crossing time) and event counts back from it.

For rendered scenario clips, :class:`FrameCodeDetector` stands in for the ONNX model: every
frame carries its index as a block code in its top row, and the detector answers with the
scenario's ground-truth boxes of that frame — so frames dropped or skipped by any entry point
cannot shift the answers (a call-order double would).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from sharpeyes.api.cluster.backend import ProgramOptions
from sharpeyes.api.cluster.coordinator import CoordinatorOptions
from sharpeyes.api.cluster.health import CameraState
from sharpeyes.api.cluster.leases import LeaseStore
from sharpeyes.api.cluster.local import LocalBackend, LocalCluster
from sharpeyes.api.cluster.pipeline_program import pipeline_spec
from sharpeyes.api.commands.analyze import AnalyzeOptions, analyze_video
from sharpeyes.api.node.camera import register_detector
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.store.db import open_database
from sharpeyes.pipeline.config import AnyDetectorConfig, CameraConfig
from sharpeyes.pipeline.protocols import DetectorInfo
from sharpeyes.pipeline.types import Detections, ImageBGR
from tests.scenarios.catalog import SCENARIOS
from tests.scenarios.model import FRAME_SIZE, Scenario

CODE_BITS = 12
CODE_CELL = 8  # px per bit, in the top-left corner


@dataclass(frozen=True)
class Violation:
    kind: str
    track_id: int
    crossed_pts: float


@dataclass(frozen=True)
class Outcome:
    violations: tuple[Violation, ...]
    counts: dict[str, int]


def outcome(db_path: Path, stream_id: str) -> Outcome:
    db = open_database(str(db_path))
    try:
        with db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                "SELECT type, kind, track_id, crossed_stop_line_pts FROM events "
                "WHERE stream_id = ?",
                (stream_id,),
            )
    finally:
        db.close()
    violations = sorted(
        (
            Violation(str(r[1]), int(r[2]), float(r[3]))
            for r in rows
            if str(r[0]) == "red_light_violation"
        ),
        key=lambda v: (v.crossed_pts, v.track_id),
    )
    return Outcome(tuple(violations), dict(Counter(str(r[0]) for r in rows)))


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def via_analyze(cam: CameraConfig, out: Path) -> Outcome:
    assert cam.url is not None
    analyze_video(AnalyzeOptions(Path(cam.url), out=out, progress=False, camera=cam))
    return outcome(out / "events.db", cam.id)


def via_run(
    cam: CameraConfig,
    out: Path,
    timeout_s: float,
    node_detector: dict[str, Any] | None = None,
) -> Outcome:
    """The node runtime of ``sharpeyes run`` with the file played once, in real time.

    The node's detector is the camera's own unless ``node_detector`` says otherwise (then a
    camera asking for another model or input size must get its own, as on a real node)."""
    detector = cam.detector.model_dump(mode="json") if node_detector is None else node_detector
    config = ServiceConfig.model_validate(
        {
            "cameras": [cam.model_copy(update={"live": True}).model_dump(mode="json")],
            "detector": detector,
            "store": {"url": str(out / "events.db"), "files_root": str(out)},
            "loop_files": False,
            # a deeper latest-frame queue absorbs short bursts (evidence, GC) on a 2-core box;
            # the clip is still played in real time and a sustained lag still drops frames
            "rtsp": {"queue_size": 32},
        }
    )
    runtime = NodeRuntime(config).start()
    try:
        wait_for(runtime.all_finished, timeout_s, "the live camera to finish")
        drops = dict(runtime.health()[cam.id].drops)
    finally:
        runtime.stop()
    # a live camera drops frames when analysis falls behind; then it cannot see the same
    backlog = drops.get("backlog", 0)
    assert backlog == 0, f"the live run fell behind real time ({drops}): machine overloaded?"
    return outcome(out / "events.db", cam.id)


def via_cluster(cam: CameraConfig, out: Path, timeout_s: float) -> Outcome:
    """The cluster's pipeline program on the embedded local backend (one worker)."""
    store = LeaseStore(open_database(str(out / "cluster.db")))
    backend = LocalBackend(
        store,
        workers=1,
        capacity=2.0,
        program_options=ProgramOptions(commit_every_s=0.0, files_root=str(out)),
    )
    fast = CoordinatorOptions(tick_s=0.05, resync_grace_s=1.0)
    try:
        with LocalCluster(store, backend, fast) as cluster:
            cluster.coordinator.add_camera(pipeline_spec(cam))

            def finished() -> bool:
                h = cluster.coordinator.health().camera(cam.id)
                if h is not None and h.state == CameraState.FAILED:
                    raise AssertionError(f"cluster camera failed: {h}")
                return h is not None and h.state == CameraState.FINISHED

            wait_for(finished, timeout_s, "the cluster camera to finish")
    finally:
        store.db.close()
    return outcome(out / "cluster.db", cam.id)


def stream_offset(reference: Sequence[Violation], other: Sequence[Violation]) -> float:
    """The median shift of ``other``'s stream clock against ``reference``'s (an RTSP session's
    timestamps start wherever the server's RTP clock was)."""
    if not reference or not other:
        return 0.0
    theirs = np.array([o.crossed_pts for o in other])
    return float(
        np.median(
            [theirs[np.argmin(np.abs(theirs - v.crossed_pts))] - v.crossed_pts for v in reference]
        )
    )


def match(
    reference: Sequence[Violation],
    other: Sequence[Violation],
    tolerance_s: float,
    offset_s: float = 0.0,
) -> list[str]:
    """Problems, if any: a violation of one not found in the other (same kind, crossing time
    within ``tolerance_s`` after shifting ``other`` by ``offset_s``)."""
    problems: list[str] = []
    left = list(other)
    for v in reference:
        hit = next(
            (
                o
                for o in left
                if o.kind == v.kind and abs(o.crossed_pts - offset_s - v.crossed_pts) <= tolerance_s
            ),
            None,
        )
        if hit is None:
            problems.append(f"missing {v}")
        else:
            left.remove(hit)
    problems += [f"extra {o}" for o in left]
    return problems


# -- rendered scenario clips ---------------------------------------------------------------------


def stamp_code(img: ImageBGR, index: int) -> None:
    for bit in range(CODE_BITS):
        value = 255 if (index >> bit) & 1 else 0
        img[0:CODE_CELL, bit * CODE_CELL : (bit + 1) * CODE_CELL] = value


def read_code(img: ImageBGR) -> int:
    index = 0
    for bit in range(CODE_BITS):
        cell = img[2 : CODE_CELL - 2, bit * CODE_CELL + 2 : (bit + 1) * CODE_CELL - 2]
        if float(cell.mean()) > 127.0:
            index |= 1 << bit
    return index


def stamp_clip(src: Path, dst: Path, fps: float) -> int:
    """Re-encode ``src`` with each frame's index stamped in; returns the frame count."""
    n = 0
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream: Any = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = FRAME_SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast", "g": str(int(2 * fps))}
        for vf in inp.decode(video=0):
            img: ImageBGR = np.ascontiguousarray(vf.to_ndarray(format="bgr24"), dtype=np.uint8)
            stamp_code(img, n)
            for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(pkt)
            n += 1
        for pkt in stream.encode(None):
            out.mux(pkt)
    return n


class FrameCodeDetector:
    """Ground-truth boxes of a scenario for the frame whose index is stamped in the image."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.calls = 0

    @property
    def info(self) -> DetectorInfo:
        h, w = FRAME_SIZE[1], FRAME_SIZE[0]
        return DetectorInfo(f"scenario:{self.scenario.name}", (h, w), ("scripted",), 0, None)

    def detect(self, images: Sequence[ImageBGR]) -> list[Detections]:
        self.calls += len(images)
        return [self._boxes(read_code(img)) for img in images]

    def _boxes(self, i: int) -> Detections:
        w, h = FRAME_SIZE
        t = self.scenario.pts(i)
        rows = [(a, b) for a in self.scenario.actors if (b := a.box_at(t)) is not None]
        xyxy = np.array([[b[0] * w, b[1] * h, b[2] * w, b[3] * h] for _, b in rows], np.float32)
        return Detections.create(
            xyxy.reshape(-1, 4),
            [0.85] * len(rows),
            [a.class_id for a, _ in rows],
            [int(a.kind) for a, _ in rows],
        )


def _scenario_detector(config: AnyDetectorConfig) -> FrameCodeDetector:
    name = config.model.split(":", 1)[1]
    return FrameCodeDetector(SCENARIOS[name])


register_detector("scenario", _scenario_detector)
