"""``sharpeyes analyze``: one video file end to end — the composition root for a single stream.

Builds source → detector → tracker → events (+ signal board and red-light rules when the camera
has an intersection calibration, + evidence) → sinks (events.jsonl, SQLite store with crops,
optional GA/T 1400 outbox), runs it with a progress bar and reports what was written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sharpeyes.api.node.camera import PipelineParts, build_stream_pipeline
from sharpeyes.pipeline.config import CameraConfig, load_camera_config
from sharpeyes.pipeline.errors import StreamOpenError
from sharpeyes.pipeline.runner import RunSummary
from sharpeyes.pipeline.types import Detections, Event, Frame, SignalState, Tracks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalyzeOptions:
    video: Path
    config: Path | None = None
    out: Path | None = None
    annotate: bool = False
    model: str | None = None
    analysis_fps: float | None = None
    progress: bool = True
    deliver: str | None = None
    deliver_timeout_s: float = 60.0


@dataclass
class AnalyzeResult:
    out_dir: Path
    camera: CameraConfig
    summary: RunSummary
    files: dict[str, Path] = field(default_factory=dict)
    detector_desc: str = ""
    delivery_note: str = ""

    def summary_lines(self) -> list[str]:
        s = self.summary
        by_type = ", ".join(f"{k}={v}" for k, v in sorted(s.events_by_type.items())) or "none"
        lines = [
            f"analysed {s.frames_analysed} frames of {self.camera.url} in {s.wall_s:.1f} s "
            f"({s.analysed_fps:.1f} fps) with {self.detector_desc}",
            f"events: {s.events_total} ({by_type})",
        ]
        lines += [f"{name}: {path}" for name, path in self.files.items()]
        if self.delivery_note:
            lines.append(self.delivery_note)
        return lines


def apply_overrides(cam: CameraConfig, opts: AnalyzeOptions) -> CameraConfig:
    cam = cam.model_copy(deep=True)
    cam.url = str(opts.video)
    if opts.analysis_fps is not None:
        cam.analysis_fps = opts.analysis_fps
    if opts.model is not None:
        if opts.model.endswith(".onnx"):
            cam.detector.model_path = Path(opts.model)
        else:
            cam.detector.model = opts.model
    return cam


class _Progress:
    """A tqdm bar on stderr over frames, advanced by frame sequence numbers."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self._bar = None
        self._last = -1
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, frame: Frame) -> None:
        if self._bar is not None:
            self._bar.update(frame.seq - self._last)
            self._last = frame.seq

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _Annotator:
    def __init__(self, path: Path, fps: float) -> None:
        from sharpeyes.streams.video_writer import Mp4Writer

        self.writer = Mp4Writer(path, fps)

    def __call__(
        self,
        frame: Frame,
        dets: Detections,
        tracks: Tracks,
        signals: Mapping[str, SignalState],
        events: Sequence[Event],
    ) -> None:
        from sharpeyes.pipeline.annotate import annotate

        self.writer.write(annotate(frame, dets, tracks, signals, events))


def analyze_video(opts: AnalyzeOptions) -> AnalyzeResult:
    if not opts.video.is_file():
        raise StreamOpenError(f"video file not found: {opts.video}")
    cam = apply_overrides(load_camera_config(opts.config), opts)
    delivery_cfg = None
    if opts.deliver:
        from sharpeyes.api.viid.delivery import load_delivery_config

        delivery_cfg = load_delivery_config(Path(opts.deliver))
    out = opts.out or Path("out") / opts.video.stem
    out.mkdir(parents=True, exist_ok=True)
    parts: PipelineParts = build_stream_pipeline(cam, out, deliver=opts.deliver)
    info = parts.source.info
    annotator: _Annotator | None = None
    if opts.annotate:
        fps = cam.analysis_fps or info.fps or 25.0
        annotator = _Annotator(out / "annotated.mp4", min(fps, info.fps or fps))
        parts.runner.observer = annotator
    delivery = None
    if delivery_cfg is not None and parts.store is not None:
        from sharpeyes.api.viid.delivery import start_delivery

        delivery = start_delivery(parts.store, delivery_cfg, files_root=out)
    progress = _Progress(info.frame_count, opts.progress)
    delivery_note = ""
    try:
        summary = parts.runner.run(progress=progress)
    finally:
        progress.close()
        if annotator is not None:
            annotator.writer.close()
        if delivery is not None:
            drained = delivery.drain(opts.deliver_timeout_s)
            stats = delivery.backlog()
            delivery.stop()
            delivery_note = (
                f"GA/T 1400 delivery: {stats.delivered} delivered, {stats.backlog} pending"
                + ("" if drained else " (not drained: they stay in the outbox and are sent later)")
            )
        parts.close()
    result = AnalyzeResult(out, cam, summary, dict(parts.files), parts.detector_desc)
    result.delivery_note = delivery_note
    if annotator is not None and annotator.writer.frames:
        result.files["annotated video"] = out / "annotated.mp4"
    return result
