"""Per-camera counters and health of the node runtime.

:class:`CameraStats` holds the counters of one camera that outlive its runner restarts;
:func:`camera_health` combines them with the supervisor's worker status and the live source's
own health (RTSP, or a file/GPU-decoded stream played as live) into one :class:`CameraHealth`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.protocols import Sink
from sharpeyes.pipeline.runner import StreamRunner
from sharpeyes.pipeline.structuring.face_stats import FaceStats
from sharpeyes.pipeline.structuring.plate_tally import PlateSizes
from sharpeyes.pipeline.supervisor import WorkerState, WorkerStatus
from sharpeyes.pipeline.types import Detections, Event, EventType, Frame, SignalState, Tracks
from sharpeyes.streams.factory import LiveFileSource, frames_deinterlaced, source_decoder
from sharpeyes.streams.health import (
    DropCounter,
    DropReason,
    RateMeter,
    StreamHealth,
    StreamState,
    mask_url,
)
from sharpeyes.streams.rtsp_source import RtspSource

PERMANENT_ERRORS = ("401", "403", "404", "unauthorized", "forbidden", "not found", "no video")
FILE_STALL_S = 5.0

if TYPE_CHECKING:
    from sharpeyes.api.node.camera import CameraWiring


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """One camera's health: source state and counters plus the runner's (URL masked).

    ``state``: connecting / live / stalled / backoff / failed, or stopped / finished.
    ``drops`` counts frames not analysed, by reason (``backlog`` = analysis slower than the
    stream, ``sampling`` = not picked by the analysis rate, ``decode_error``).
    ``decoder`` is the decoder actually in use (after any CPU fallback) and
    ``detector_backend`` the node's detector runtime and providers actually in use.
    ``plates``: a checkpoint camera's plates found, read and too small to read, and their
    median width (``pipeline/structuring/plate_tally.py``), since its pipeline started; None
    for a camera that reads no plates. ``faces``: a face camera's person tracks with a face
    captured, too small, blurred or without one (``pipeline/structuring/face_stats.py``); None
    for a camera without face capture.
    """

    camera_id: str
    url: str
    state: str
    input_fps: float
    analysed_fps: float
    drops: Mapping[str, int]
    reconnects: int
    last_frame_age_s: float | None
    decode_errors: int
    skew_ms: float | None
    pts_resets: int = 0
    frames_analysed: int = 0
    frames_repeated: int = 0  # not analysed: repeats of the last analysed picture (this run)
    events: int = 0
    restarts: int = 0
    width: int = 0
    height: int = 0
    decoder: str | None = None
    last_error: str | None = None
    detector_backend: str | None = None
    signal_problems: Mapping[str, str] = field(default_factory=dict)  # calibration / faults
    corrupt_frames: int = 0  # flagged corrupt by FFmpeg or missing in short gaps
    corruption_rate: float = 0.0  # over the recent window; above the threshold: ``degraded``
    resync_frames: int = 0  # missing while the decoder waited for a keyframe
    timing_faults: int = 0  # frames whose pts did not advance (timed by arrival instead)
    noise_sigma: float | None = None  # the picture's sensor noise, grey levels (pipeline.denoise)
    noise_filtered: bool = False  # the detector is shown a filtered picture (noise that high)
    tonal_range: float | None = None  # grey levels the picture spans (pipeline.contrast)
    contrast_stretched: bool = False  # the detector is shown the picture stretched (a veil)
    near_field: bool = False  # the detector is shown the picture shrunk (objects fill it)
    frames_deinterlaced: int = 0  # interlaced pictures whose combs were undone (streams.fields)
    plates: PlateSizes | None = None  # plates a checkpoint camera's reads found (structuring)
    faces: FaceStats | None = None  # a face camera's captures, and why not (faces enabled)

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["drops"] = dict(self.drops)
        out["signal_problems"] = dict(self.signal_problems)
        return out


class CameraStats:
    """Counters of one camera that outlive its runner restarts (fed on its runner thread)."""

    def __init__(self, latency_samples: int = 4096) -> None:
        self.analysed = RateMeter()
        self.drops = DropCounter()  # of files played as live, over all loops
        self.frames_analysed = 0
        self.events = 0
        self.frame_wall_ms: int | None = None  # capture time of the frame being analysed
        self.latest: Frame | None = None  # the last analysed frame (host image only)
        self.latency_ms: deque[float] = deque(maxlen=latency_samples)
        self._lock = threading.Lock()
        self._emitted: dict[str, int | None] = {}
        # events handed to the writer by (type, violation code or ""), and the latest
        # traffic-flow record per lane number (for Prometheus)
        self.by_type: dict[tuple[str, str], int] = {}
        self.flow: dict[int, dict[str, object]] = {}

    def on_frame(
        self,
        frame: Frame,
        _dets: Detections,
        _tracks: Tracks,
        _signals: Mapping[str, SignalState],
        _events: Sequence[Event],
    ) -> None:
        self.analysed.tick()
        self.frames_analysed += 1
        self.frame_wall_ms = frame.wall_time_ms
        # the operator screen's tile; a GPU buffer is not held (decoder pools reuse them)
        self.latest = frame if frame.device_image is None else replace(frame, device_image=None)

    def typed(self, event: Event) -> None:
        """Count ``event`` by type (and violation code); keep the latest flow per lane."""
        code = event.violation.code if event.violation is not None else ""
        # violations of the e-police suite share the event type; their name is in extra
        name = next((v for k, v in event.extra if k == "violation_type"), event.type.value)
        key = (name, code)
        with self._lock:
            self.by_type[key] = self.by_type.get(key, 0) + 1
        if event.type is EventType.TRAFFIC_FLOW:
            from sharpeyes.pipeline.flow import flow_from_extra

            fields = flow_from_extra(event.extra)
            lane = fields.get("lane_no")
            if isinstance(lane, int) and fields.get("complete") is True:
                with self._lock:
                    self.flow[lane] = fields

    def emitted(self, event_id: str) -> None:
        """The runner handed an event to the writer while analysing the current frame."""
        with self._lock:
            if len(self._emitted) < 100_000:  # bounded: a stuck writer must not grow this
                self._emitted[event_id] = self.frame_wall_ms

    def committed(self, event_ids: Sequence[str]) -> None:
        """The writer committed these events (its thread): count them, and their latency from
        the capture of the frame they were emitted on to the commit."""
        now = time.time() * 1000.0
        with self._lock:
            stamps = [self._emitted.pop(e, None) for e in event_ids]
            self.events += len(event_ids)
            self.latency_ms.extend(now - w for w in stamps if w is not None)


@dataclass
class CameraEntry:
    """A camera of the runtime: its config, counters and current runner."""

    config: CameraConfig
    stats: CameraStats = field(default_factory=CameraStats)
    runner: StreamRunner | None = None
    wiring: CameraWiring | None = None  # what the composition root wired (for tests, health)


def _worker_state(status: WorkerStatus) -> str | None:
    """The state the worker imposes (a crashed or ended pipeline), or None while running."""
    mapping = {
        WorkerState.BACKOFF: "backoff",
        WorkerState.FAILED: "failed",
        WorkerState.STOPPED: "stopped",
        WorkerState.FINISHED: "finished",
    }
    return mapping.get(status.state)


def rtsp_state(h: StreamHealth, failed_after: int) -> str:
    """The source's state, with a camera that cannot work reported ``failed``.

    Failed: the source spent its restart budget; or it is retrying after an error that will
    not go away by itself (401/403/404, no video stream); or it never delivered a frame in
    ``failed_after`` attempts. It keeps retrying at its backoff rate either way.
    """
    if h.state in (StreamState.BACKOFF, StreamState.CONNECTING) and h.last_error is not None:
        error = h.last_error.lower()
        if any(word in error for word in PERMANENT_ERRORS):
            return "failed"
        if h.frames_decoded == 0 and h.failures_in_window >= failed_after:
            return "failed"
    if h.state is StreamState.CLOSED:
        return "stopped"
    return str(h.state)


def _signal_problems(runner: StreamRunner | None) -> dict[str, str]:
    """Calibration problems and faults the camera's signal board reports (none without one)."""
    board = runner.signal_board if runner is not None else None
    problems = getattr(board, "problems", None)
    if problems is None:
        return {}
    try:
        return {str(k): str(v) for k, v in problems().items()}
    except RuntimeError:  # read from another thread while the board updates: next time
        return {}


def _noise(runner: StreamRunner | None) -> float | None:
    """The camera's measured sensor noise (σ, grey levels), rounded; None before a measurement
    or with the filter off."""
    if runner is None or runner.denoise is None or runner.denoise.level is None:
        return None
    return round(runner.denoise.level, 1)


def _tonal_range(runner: StreamRunner | None) -> float | None:
    """The camera's running grey range (levels), rounded; None before a measurement or with
    the stretch off."""
    if runner is None or runner.contrast is None or runner.contrast.span is None:
        return None
    return round(runner.contrast.span)


def face_counts(runner: StreamRunner | None) -> FaceStats | None:
    """The camera's face-capture counts so far (a copy: its runner thread counts while this
    reads); None for a camera without face capture."""
    stats = runner.faces if runner is not None else None
    return None if stats is None else replace(stats)


def plate_sizes(runner: StreamRunner | None) -> PlateSizes | None:
    """The camera's plate sizes so far (its runner thread counts them while this reads);
    None for a camera without plate reading."""
    tally = runner.plates if runner is not None else None
    if tally is None:
        return None
    try:
        return tally.sizes()
    except RuntimeError:  # the widths changed while they were read: next time
        return None


def camera_health(
    cam: CameraEntry,
    status: WorkerStatus,
    failed_after: int,
    detector_backend: str | None = None,
) -> CameraHealth:
    cfg, stats = cam.config, cam.stats
    runner = cam.runner
    source = runner.source if runner is not None else None
    base = CameraHealth(
        camera_id=cfg.id,
        url=mask_url(cfg.url or ""),
        state=_worker_state(status) or "connecting",
        input_fps=0.0,
        analysed_fps=stats.analysed.rate(),
        drops={},
        reconnects=0,
        last_frame_age_s=None,
        decode_errors=0,
        skew_ms=None,
        frames_analysed=stats.frames_analysed,
        frames_repeated=runner.summary.frames_repeated if runner is not None else 0,
        noise_sigma=_noise(runner),
        noise_filtered=runner is not None and runner.denoise is not None and runner.denoise.active,
        tonal_range=_tonal_range(runner),
        contrast_stretched=(
            runner is not None and runner.contrast is not None and runner.contrast.active
        ),
        near_field=(
            runner is not None and runner.near_field is not None and runner.near_field.near
        ),
        frames_deinterlaced=0 if source is None else frames_deinterlaced(source),
        events=stats.events,
        restarts=status.restarts,
        decoder=None if source is None else source_decoder(source),
        last_error=status.last_error,
        detector_backend=detector_backend,
        signal_problems=_signal_problems(runner),
        plates=plate_sizes(runner),
        faces=face_counts(runner),
    )
    forced = _worker_state(status)
    if isinstance(source, RtspSource):
        return _with_rtsp(base, source.health(), forced, failed_after)
    if isinstance(source, LiveFileSource):
        return _with_file(base, source, forced)
    return base


def _with_rtsp(
    base: CameraHealth, h: StreamHealth, forced: str | None, failed_after: int
) -> CameraHealth:
    return replace(
        base,
        state=forced or rtsp_state(h, failed_after),
        input_fps=h.input_fps,
        drops=dict(h.drops),
        reconnects=h.reconnects,
        last_frame_age_s=h.last_frame_age_s,
        decode_errors=h.decode_errors,
        skew_ms=h.pts_skew_ms,
        pts_resets=h.pts_resets,
        width=h.width,
        height=h.height,
        decoder=h.decoder,
        # a source that recovered clears its error; a stale crash text must not come back
        last_error=h.last_error if h.frames_decoded else (h.last_error or base.last_error),
        corrupt_frames=h.corrupt_frames,
        corruption_rate=h.corruption_rate,
        resync_frames=h.resync_frames,
        timing_faults=h.timing_faults,
    )


def _with_file(base: CameraHealth, src: LiveFileSource, forced: str | None) -> CameraHealth:
    age = None if src.last_frame_mono is None else time.monotonic() - src.last_frame_mono
    state = "connecting" if age is None else ("live" if age < FILE_STALL_S else "stalled")
    info = src.info
    drops = src.drop_counts()
    return replace(
        base,
        state=forced or state,
        input_fps=src.input.rate(),
        drops=drops,
        last_frame_age_s=age,
        decode_errors=drops[str(DropReason.DECODE_ERROR)],
        skew_ms=src.skew_ms,
        width=info.width,
        height=info.height,
    )


class MeteredSink:
    """A sink in front of the node's writer that notes when each event was handed over, so
    the writer's commit callback can record capture → committed latency."""

    def __init__(self, inner: Sink, stats: CameraStats) -> None:
        self.inner = inner
        self.stats = stats

    def emit(self, event: Event) -> None:
        self.stats.emitted(event.event_id)
        self.stats.typed(event)
        self.inner.emit(event)

    def close(self) -> None:
        self.inner.close()
