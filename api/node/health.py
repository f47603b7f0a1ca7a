"""Per-camera counters and health of the node runtime.

:class:`CameraStats` holds the counters of one camera that outlive its runner restarts;
:func:`camera_health` combines them with the supervisor's worker status and the live source's
own health (RTSP, or a file/GPU-decoded stream played as live) into one :class:`CameraHealth`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from sharpeyes.api.store.sink import StoreSink
from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.runner import StreamRunner
from sharpeyes.pipeline.supervisor import WorkerState, WorkerStatus
from sharpeyes.pipeline.types import Detections, Event, Frame, SignalState, Tracks
from sharpeyes.streams.factory import LiveFileSource, source_decoder
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
    events: int = 0
    restarts: int = 0
    width: int = 0
    height: int = 0
    decoder: str | None = None
    last_error: str | None = None
    detector_backend: str | None = None

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["drops"] = dict(self.drops)
        return out


class CameraStats:
    """Counters of one camera that outlive its runner restarts (fed on its runner thread)."""

    def __init__(self, latency_samples: int = 4096) -> None:
        self.analysed = RateMeter()
        self.drops = DropCounter()  # of files played as live, over all loops
        self.frames_analysed = 0
        self.events = 0
        self.frame_wall_ms: int | None = None  # capture time of the frame being analysed
        self.latency_ms: deque[float] = deque(maxlen=latency_samples)

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

    def stored(self) -> None:
        """An event was committed: count it and its frame-capture → stored latency."""
        self.events += 1
        if self.frame_wall_ms is not None:
            self.latency_ms.append(time.time() * 1000.0 - self.frame_wall_ms)


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
        events=stats.events,
        restarts=status.restarts,
        decoder=None if source is None else source_decoder(source),
        last_error=status.last_error,
        detector_backend=detector_backend,
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
        last_error=h.last_error or base.last_error,
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


class MeteredStoreSink:
    """A :class:`StoreSink` that records capture → committed latency per event."""

    def __init__(self, inner: StoreSink, stats: CameraStats) -> None:
        self.inner = inner
        self.stats = stats

    def emit(self, event: Event) -> None:
        self.inner.emit(event)
        self.stats.stored()

    def close(self) -> None:
        self.inner.close()
