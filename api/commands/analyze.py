"""``sharpeyes analyze``: one video file end to end — the composition root for a single stream.

Builds source → detector → tracker → events (+ signal board and red-light rules when the camera
has an intersection calibration, + evidence) → sinks (events.jsonl, SQLite store with crops,
optional GA/T 1400 outbox), runs it with a progress bar and reports what was written.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sharpeyes.api.node.camera import (
    CameraEnv,
    CameraWiring,
    build_camera,
    build_detector,
    describe_detector,
    external_groups,
)
from sharpeyes.api.store.events import EventStore
from sharpeyes.pipeline.config import CameraConfig, load_camera_config
from sharpeyes.pipeline.errors import ConfigError, StreamOpenError
from sharpeyes.pipeline.protocols import DetectorInfo, Sink
from sharpeyes.pipeline.runner import RunSummary
from sharpeyes.pipeline.signal_input import PhaseHub, UdpPhaseListener
from sharpeyes.pipeline.structuring.face_stats import describe_faces
from sharpeyes.pipeline.structuring.plate_fusion import (
    REASON_DISAGREE,
    REASON_NONE_VISIBLE,
    REASON_TOO_FEW,
    REASON_UNREADABLE,
)
from sharpeyes.pipeline.structuring.plate_tally import describe as describe_plates
from sharpeyes.pipeline.structuring.vehicle import (
    STATUS_NOT_FOUND,
    STATUS_NOT_READ,
    STATUS_OUT_OF_VIEW,
)
from sharpeyes.pipeline.types import Detections, Event, Frame, SignalState, Tracks
from sharpeyes.streams.factory import frames_deinterlaced

if TYPE_CHECKING:
    from sharpeyes.api.viid.delivery import Delivery, DeliveryConfig

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
    phase_udp: str | None = None  # "[HOST:]PORT" for external signal phases over UDP
    camera: CameraConfig | None = None  # a camera config object instead of ``config`` (benchmarks)
    overwrite: bool = False  # replace the results of an earlier run in ``out``
    start_time_ms: int | None = None  # the recording's start (UTC ms); None: the file's tag or now
    structuring: bool = False  # read plates and colours whatever the config says (卡口)
    faces: bool = False  # capture faces whatever the config says (人脸抓拍)


RESULTS = (
    "events.jsonl",
    "events.db",
    "events.db-wal",
    "events.db-shm",
    "crops",
    "evidence",
    "annotated.mp4",
)
"""What ``analyze`` writes into its output directory."""


def earlier_results(out: Path) -> list[str]:
    """Names of an earlier run's results present in ``out``."""
    return [name for name in RESULTS if (out / name).exists()]


def output_dir(opts: AnalyzeOptions) -> Path:
    """Where this run writes, never mixed with an earlier run's results.

    Without ``--out``: ``out/<video name>``, or ``out/<video name>-2``, ``-3``… when that one
    already holds results. With ``--out`` holding results: an error, unless ``overwrite``
    (then the earlier results are removed first; other files in the folder are left alone).
    """
    if opts.out is None:
        base = Path("out") / opts.video.stem
        out, n = base, 2
        while earlier_results(out):
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
        return out
    found = earlier_results(opts.out)
    if found and not opts.overwrite:
        raise ConfigError(
            f"{opts.out} already holds the results of an earlier run ({', '.join(found)}); "
            "pass --overwrite to replace them, or choose another --out"
        )
    for name in found:
        path = opts.out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return opts.out


@dataclass
class AnalyzeResult:
    out_dir: Path
    camera: CameraConfig
    summary: RunSummary
    files: dict[str, Path] = field(default_factory=dict)
    detector_desc: str = ""
    delivery_note: str = ""
    detector_info: DetectorInfo | None = None
    wiring: CameraWiring | None = None
    signal_problems: dict[str, str] = field(default_factory=dict)
    source_notes: list[str] = field(default_factory=list)  # truncated file, undecodable data
    clock_note: str = ""  # where the stamped times come from
    phase_notes: list[str] = field(default_factory=list)  # external signal phases: what came
    frames_deinterlaced: int = 0  # interlaced frames whose combs were undone (streams/fields.py)

    def summary_lines(self) -> list[str]:
        s = self.summary
        by_type = ", ".join(f"{k}={v}" for k, v in sorted(s.events_by_type.items())) or "none"
        lines = [
            f"analysed {s.frames_analysed} frames of {self.camera.url} in {s.wall_s:.1f} s "
            f"({s.analysed_fps:.1f} fps) with {self.detector_desc}"
            + (f"; {s.frames_repeated} repeated pictures not analysed" if s.frames_repeated else "")
            + (
                f"; sensor noise σ {s.noise_sigma:.1f}: {s.frames_denoised} pictures filtered "
                "for the detector"
                if s.frames_denoised and s.noise_sigma is not None
                else ""
            )
            + (
                f"; washed-out picture (grey range {s.tonal_range:.0f} levels): "
                f"{s.frames_stretched} pictures stretched for the detector"
                if s.frames_stretched and s.tonal_range is not None
                else ""
            )
            + (
                f"; objects filling the picture: {s.frames_near_field} pictures shown to the "
                "detector shrunk to half (near field)"
                if s.frames_near_field
                else ""
            )
            + (
                f"; {s.occupants} persons inside vehicles (drivers, passengers) not reported "
                "as pedestrians"
                if s.occupants
                else ""
            )
            + (
                f"; {s.parked_seen_again} standing vehicles hidden by traffic and seen again "
                "kept their track (one event each)"
                if s.parked_seen_again
                else ""
            )
            + "".join(
                f"; {kind.replace('_', '-')} tracks open at {score:.2f} (the detector scores "
                "this camera's lower)"
                for kind, score in sorted(s.track_open_scores.items())
            )
            + (
                f"; interlaced video: {self.frames_deinterlaced} pictures deinterlaced"
                if self.frames_deinterlaced
                else ""
            ),
            f"events: {s.events_total} ({by_type})",
        ]
        if s.plate_statuses:
            lines.append(describe_statuses(s.plate_statuses))
        elif s.events_by_type.get("vehicle_pass") and not self.camera.structuring.enabled:
            lines.append(NOT_STRUCTURED)
        if s.plates is not None and s.plates.seen:
            lines.append(describe_plates(s.plates))
        if s.faces is not None:
            lines.append(describe_faces(s.faces))
        pf = s.plate_first
        if pf is not None and pf.tracks:
            lines.append(
                f"plate-first: {pf.tracks} vehicles found by their plates where no vehicle track "
                f"held them ({pf.handed} handed to a track opened later); {pf.searches} "
                "whole-picture plate searches"
            )
        lines += [f"warning: {note}" for note in self.source_notes]
        if self.clock_note:
            lines.append(self.clock_note)
        lines += self.phase_notes
        lines += [f"signal problem ({k}): {v}" for k, v in self.signal_problems.items()]
        lines += [f"{name}: {path}" for name, path in self.files.items()]
        if self.delivery_note:
            lines.append(self.delivery_note)
        return lines


PLATE_STATUS_WORDS: dict[str, str] = {
    REASON_UNREADABLE: "seen, not readable",
    REASON_TOO_FEW: "read too few times",
    REASON_DISAGREE: "reads disagree",
    STATUS_OUT_OF_VIEW: "plate out of view",
    REASON_NONE_VISIBLE: "no plate (无牌)",
    STATUS_NOT_FOUND: "no plate found, too small or turned away to tell",
    STATUS_NOT_READ: "never read (too small or too short)",
}
"""What each ``plate_status`` of a vehicle_pass event means, for the summary line."""


def describe_statuses(statuses: dict[str, int]) -> str:
    """One line for ``analyze``: of the vehicle_pass events, how many state a plate, and why the
    others do not (their ``plate_status``)."""
    total = sum(statuses.values())
    read = statuses.get("read", 0)
    rest = ", ".join(
        f"{n} {PLATE_STATUS_WORDS.get(k, k)}" for k, n in sorted(statuses.items()) if k != "read"
    )
    return f"vehicle plates: {read} of {total} stated" + (f" ({rest})" if rest else "")


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
    if opts.structuring:
        cam.structuring.enabled = True
    if opts.faces:
        cam.faces.enabled = True
    return cam


NOT_STRUCTURED = (
    "vehicle plates and colours: not read — structuring is off for this camera "
    "(--structuring, or `structuring: {enabled: true}` in --config: "
    "sample_videos/plates_closeup_beijing.yaml is a checkpoint's)"
)
"""What ``analyze`` says after a run with vehicle passes and structuring off: a new user who
analyses a checkpoint clip with the defaults is told why no event has a plate, and how to
get them."""


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

        self.writer.write(annotate(frame, dets, tracks, signals, events), frame.pts)


@dataclass
class _Outputs:
    """The store and sinks ``analyze`` writes into (``out``: events.jsonl, events.db, crops)."""

    store: EventStore
    sinks: list[Sink]

    @classmethod
    def open(cls, out: Path, cam: CameraConfig, deliver: bool) -> _Outputs:
        from sharpeyes.api.store.db import open_database
        from sharpeyes.api.store.sink import JsonlSink, StoreSink

        store = EventStore(open_database(str(out / "events.db")), out)
        destinations: tuple[str, ...] = ("viid",) if deliver else ()
        sinks: list[Sink] = [
            JsonlSink(out / "events.jsonl", files_root=out),
            StoreSink(store, destinations, device_id=cam.device_id),
        ]
        return cls(store, sinks)

    def files(self, out: Path, cam: CameraConfig) -> dict[str, Path]:
        files = {"events": out / "events.jsonl", "store": out / "events.db", "crops": out / "crops"}
        if cam.intersection is not None:
            files["evidence"] = out / "evidence"
        return files

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.store.close()


def _phase_listener(spec: str | None, hub: PhaseHub | None) -> UdpPhaseListener | None:
    if spec is None or hub is None:
        return None
    host, _, port = spec.rpartition(":")
    try:
        return UdpPhaseListener(hub, host or "127.0.0.1", int(port)).start()
    except ValueError as e:
        raise ConfigError(f"--phase-udp: {spec!r} is not [HOST:]PORT") from e


def analyze_video(opts: AnalyzeOptions) -> AnalyzeResult:
    """``sharpeyes analyze``: the camera from the one composition root, over one file."""
    if not opts.video.is_file():
        if opts.video.is_dir():
            raise StreamOpenError(f"{opts.video} is a folder; analyze takes one video file")
        raise StreamOpenError(f"video file not found: {opts.video}")
    base = opts.camera if opts.camera is not None else load_camera_config(opts.config)
    cam = apply_overrides(base, opts)
    delivery_cfg = _delivery_config(opts)
    out = output_dir(opts)
    out.mkdir(parents=True, exist_ok=True)
    outputs = _Outputs.open(out, cam, bool(opts.deliver))
    phases = _phase_hub(cam, opts)
    try:
        detector = build_detector(cam)
        camera = build_camera(
            cam,
            CameraEnv(files_root=out, phases=phases, start_wall_ms=opts.start_time_ms),
            detector=detector,
            sinks=outputs.sinks,
        )
        listener = _phase_listener(opts.phase_udp, phases)
    except BaseException:
        outputs.close()
        raise
    info = camera.source.info
    annotator: _Annotator | None = None
    if opts.annotate:
        fps = cam.analysis_fps or info.fps or 25.0
        annotator = _Annotator(out / "annotated.mp4", min(fps, info.fps or fps))
        camera.runner.observer = annotator
    delivery = None
    if delivery_cfg is not None:
        from sharpeyes.api.viid.delivery import start_delivery

        delivery = start_delivery(outputs.store, delivery_cfg, files_root=out)
    progress = _Progress(info.frame_count, opts.progress)
    delivery_note = ""
    problems: dict[str, str] = {}
    try:
        summary = camera.runner.run(progress=progress)
        board = camera.runner.signal_board
        problems = dict(board.problems()) if board is not None else {}
    finally:
        progress.close()
        if listener is not None:
            listener.close()
        if annotator is not None:
            annotator.writer.close()
        if delivery is not None:
            delivery_note = _finish_delivery(delivery, opts.deliver_timeout_s)
        camera.close()
        outputs.close()
    result = AnalyzeResult(out, cam, summary, outputs.files(out, cam), describe_detector(detector))
    result.delivery_note = delivery_note
    result.detector_info = detector.info
    result.wiring = camera.wiring
    result.signal_problems = problems
    result.source_notes, result.clock_note = source_report(camera.source)
    result.frames_deinterlaced = frames_deinterlaced(camera.source)
    result.phase_notes = phase_report(phases, cam, udp=opts.phase_udp is not None)
    for note in result.source_notes:
        logger.warning("%s", note)
    if annotator is not None and annotator.writer.frames:
        result.files["annotated video"] = out / "annotated.mp4"
    return result


def _phase_hub(cam: CameraConfig, opts: AnalyzeOptions) -> PhaseHub | None:
    """The phase hub of an analysis with ``--phase-udp`` or external signal groups (to report
    what they got). A file's clock may be years old: its phases are not checked against this
    host's clock (``live=False``)."""
    return PhaseHub(live=False) if opts.phase_udp is not None or external_groups(cam) else None


def phase_report(hub: PhaseHub | None, cam: CameraConfig, *, udp: bool) -> list[str]:
    """What became of the external signal phases: messages received / applied / ignored (dated
    where no analysed frame could use them) / rejected, and each external group that got none
    (its red-light rule did not run)."""
    lines: list[str] = []
    if hub is None:
        return lines
    ext = hub.get(cam.id)
    usage = ext.usage() if ext is not None else None
    counts = hub.counts.snapshot()
    if udp:
        received, applied = counts.total("received"), counts.total("applied")
        rejected = counts.total("rejected")
        ignored = usage.ignored if usage is not None else 0
        line = f"phase messages: {received} received, {applied} applied"
        line += f", {ignored} ignored (dated outside the recording)"
        if rejected:
            reasons = ", ".join(f"{r} {n}" for (_, r), n in sorted(counts.rejected.items()))
            line += f", {rejected} rejected ({reasons})"
        lines.append(line)
        if ignored:
            lines.append(
                "phase messages without wall_ms/pts are dated on arrival (this host's clock); "
                "for a recording send pts (seconds into the file) or wall_ms on its clock"
            )
    for group in usage.silent_groups if usage is not None else external_groups(cam):
        lines.append(
            f"group {group} (external): no phase received — its red-light rule did not run"
            + ("" if udp else " (send phases with --phase-udp)")
        )
    for group in usage.unused_groups if usage is not None else ():
        lines.append(
            f"group {group} (external): no phase received was in force on any analysed frame "
            "— its red-light rule did not run"
        )
    return lines


CLOCK_NOTES = {
    "creation_time": "times: from the file's creation_time tag (the recording's start)",
    "given": "times: from the given --start-time",
    "opened": "times: stamped from the analysis start (the file has no creation_time tag; "
    "--start-time gives the recording's start)",
}


def _delivery_config(opts: AnalyzeOptions) -> DeliveryConfig | None:
    """``--deliver``'s config, or None; refused when the records' times would be wrong."""
    if not opts.deliver:
        return None
    from sharpeyes.api.viid.delivery import load_delivery_config

    cfg = load_delivery_config(Path(opts.deliver))
    if opts.start_time_ms is None:
        _refuse_analysis_time(opts.video)
    return cfg


def _refuse_analysis_time(video: Path) -> None:
    """``--deliver`` on a file whose times would be the analysis time (no ``creation_time``
    tag, no ``--start-time``): a view library would file every record at the wrong moment — a
    violation notice with a wrong time is thrown out — so nothing is analysed (checked before
    anything is written). A file that cannot be opened is left to the source to report.

    Raises:
        ConfigError: the file's recording time is unknown.
    """
    import av

    from sharpeyes.streams.file_source import creation_time_ms

    try:
        with av.open(str(video)) as container:
            tagged = creation_time_ms(dict(container.metadata)) is not None
    except (av.FFmpegError, OSError, ValueError):
        return
    if not tagged:
        raise ConfigError(
            f"--deliver: {video.name} has no creation_time tag, so its records would carry the "
            "time of this analysis, not of the recording; give the recording's start with "
            "--start-time (e.g. --start-time 2026-12-01T08:00:00, Beijing time)"
        )


def source_report(source: object) -> tuple[list[str], str]:
    """A file source's ending notes (:meth:`FileSource.ending_notes`) and where its times come
    from, for the summary; nothing for sources that do not say."""
    notes = getattr(source, "ending_notes", None)
    origin = getattr(source, "clock_origin", None)
    return (
        list(notes()) if callable(notes) else [],
        CLOCK_NOTES.get(origin, "") if isinstance(origin, str) else "",
    )


def _finish_delivery(delivery: Delivery, timeout_s: float) -> str:
    drained = delivery.drain(timeout_s)
    stats = delivery.backlog()
    delivery.stop()
    return (
        f"GA/T 1400 delivery: {stats.delivered} delivered, {stats.backlog} pending"
        + (f" ({stats.retrying} after retries)" if stats.retrying else "")
        + (f", {stats.failed} dead letters" if stats.failed else "")
        + (
            ""
            if drained
            else " (not drained: they stay in the outbox; send them with "
            "'sharpeyes deliver OUT --deliver DELIVERY.yaml')"
        )
    )
