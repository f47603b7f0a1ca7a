"""Builds one stream's pipeline from a camera config — the table of contents of sharpeyes.

source → detector → ByteTrack → track events (+ signal board, red-light rules, evidence) → sinks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sharpeyes.pipeline.config import CameraConfig, DetectorConfig
from sharpeyes.pipeline.protocols import Detector, FrameSource, Sink
from sharpeyes.pipeline.runner import EvidenceHook, SignalBoardLike, StreamRunner
from sharpeyes.pipeline.types import ObjectKind

if TYPE_CHECKING:
    from sharpeyes.api.store.events import EventStore
    from sharpeyes.streams.packet_ring import PacketRing

logger = logging.getLogger(__name__)


@dataclass
class PipelineParts:
    runner: StreamRunner
    source: FrameSource
    detector: Detector
    sinks: list[Sink]
    store: EventStore | None = None
    files: dict[str, Path] = field(default_factory=dict)
    detector_desc: str = ""
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        if self.store is not None:
            self.store.close()
        for c in self.closers:
            c()


def build_detector(cam: CameraConfig) -> Detector:
    """The detector a camera config asks for."""
    return detector_from_config(cam.detector)


def detector_from_config(d: DetectorConfig) -> Detector:
    """Build a detector from a :class:`DetectorConfig` (model, providers, threads, thresholds)."""
    from sharpeyes.models.factory import create_detector

    return create_detector(
        d.model,
        model_path=d.model_path,
        providers=d.providers,
        intra_op_threads=d.intra_op_threads,
        inter_op_threads=d.inter_op_threads,
        input_size=d.input_size,
        confidence_threshold=d.confidence_threshold,
        iou_threshold=d.iou_threshold,
        motorcycle_is_non_motor=d.motorcycle_is_non_motor,
        allow_spinning=d.allow_spinning,
    )


def describe_detector(det: Detector) -> str:
    i = det.info
    shape = "dynamic ≤" if i.batch is None else ""
    threads = i.intra_op_threads or "default"
    return (
        f"{i.model} {shape}{i.input_size[0]}x{i.input_size[1]} on {','.join(i.providers)} "
        f"({threads} threads)"
    )


def _event_kinds(cam: CameraConfig) -> set[ObjectKind]:
    names = {"motor_vehicle": ObjectKind.MOTOR_VEHICLE, "non_motor": ObjectKind.NON_MOTOR}
    names["person"] = ObjectKind.PERSON
    return {names[k] for k in cam.events.kinds}


def evidence_key() -> bytes:
    """The HMAC key for evidence: env ``SHARPEYES_EVIDENCE_KEY`` (a demo key otherwise, logged)."""
    key = os.environ.get("SHARPEYES_EVIDENCE_KEY")
    if key:
        return key.encode()
    logger.warning("SHARPEYES_EVIDENCE_KEY is not set: evidence is signed with the demo key")
    return b"sharpeyes-demo-key"


def build_stream_pipeline(
    cam: CameraConfig,
    out: Path,
    *,
    deliver: str | None = None,
    detector: Detector | None = None,
) -> PipelineParts:
    """Wire one camera's pipeline writing into ``out`` (events.jsonl, events.db, crops)."""
    from sharpeyes.api.store.db import open_database
    from sharpeyes.api.store.events import EventStore
    from sharpeyes.api.store.sink import JsonlSink, StoreSink
    from sharpeyes.models.classes import COCO80_NAMES, VEHICLE_CLASS_CODES
    from sharpeyes.pipeline.events import TrackEventBuilder
    from sharpeyes.pipeline.riders import RiderMemory
    from sharpeyes.pipeline.tracking.bytetrack import ByteTracker
    from sharpeyes.streams.file_source import FileSource

    if cam.url is None:
        raise ValueError("camera has no url")
    det = detector or build_detector(cam)
    ring: PacketRing | None = None
    rules: list[object] = []
    board: SignalBoardLike | None = None
    evidence: EvidenceHook | None = None
    if cam.intersection is not None:
        from sharpeyes.streams.packet_ring import PacketRing as _Ring

        ring = _Ring(max_seconds=60.0, max_bytes=64 * 1024 * 1024)
    source = FileSource(
        cam.url,
        cam.id,
        realtime=cam.live,
        analysis_fps=cam.analysis_fps,
        packet_sink=ring.push if ring is not None else None,
        decode_threads=1,  # decoding runs ahead on its own thread; FFmpeg threads would contend
    )
    if ring is not None:
        params = source.video_stream_params()
        if params is not None:
            ring.set_stream_params(params)
    if cam.intersection is not None:
        rules, board, evidence = red_light_parts(cam, source, out, ring)
    store = EventStore(open_database(str(out / "events.db")), out)
    destinations: tuple[str, ...] = ("viid",) if deliver else ()
    sinks: list[Sink] = [
        JsonlSink(out / "events.jsonl", files_root=out),
        StoreSink(store, destinations, device_id=cam.device_id),
    ]
    events = TrackEventBuilder(
        cam.id,
        cam.events,
        class_names=COCO80_NAMES,
        class_codes=VEHICLE_CLASS_CODES,
        image_up_bearing_deg=cam.image_up_bearing_deg,
    )
    runner = StreamRunner(
        source=source,
        detector=det,
        tracker=ByteTracker(cam.tracker),
        events=events,
        sinks=sinks,
        rules=rules,  # type: ignore[arg-type]
        signal_board=board,
        evidence=evidence,
        riders=RiderMemory() if cam.events.suppress_riders else None,
    )
    files = {"events": out / "events.jsonl", "store": out / "events.db", "crops": out / "crops"}
    if cam.intersection is not None:
        files["evidence"] = out / "evidence"
    return PipelineParts(runner, source, det, sinks, store, files, describe_detector(det))


def red_light_parts(
    cam: CameraConfig, source: FrameSource, out: Path, ring: PacketRing | None
) -> tuple[list[object], SignalBoardLike, EvidenceHook]:
    from sharpeyes.models.plate import PlateReader
    from sharpeyes.pipeline.evidence.builder import EvidenceBuilder
    from sharpeyes.pipeline.rules import build_rules
    from sharpeyes.pipeline.signal import build_signal_board

    assert cam.intersection is not None
    size = (source.info.width, source.info.height)
    rules: list[object] = list(build_rules(cam.id, cam.intersection, size))
    board = build_signal_board(cam.intersection, size, None)
    builder = EvidenceBuilder(
        out,
        camera=cam,
        plate_reader=PlateReader("plate_det_640"),
        hmac_key=evidence_key(),
        clip_pre_roll_s=2.0,
        clip_post_roll_s=2.0,
        ring=ring,
        video_path=Path(cam.url) if cam.url else None,
    )
    return rules, board, builder


_red_light_parts = red_light_parts  # old private name, kept for callers not yet updated
