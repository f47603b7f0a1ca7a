"""The node runtime: one detector behind one cross-camera batcher, a supervisor of per-camera
runners, one event store and its sinks — the composition root of ``sharpeyes run``.

Per camera: a live source (:class:`streams.rtsp_source.RtspSource` for RTSP URLs, a paced
:class:`streams.file_source.FileSource` behind a latest-frame queue for files played as live),
a :class:`pipeline.batcher.StreamDetector` view of the shared batcher, its own ByteTrack tracker
and event builder, and the shared sinks. Cameras can be added, updated and removed at run time;
:meth:`NodeRuntime.health` combines the source's health with the runner's counters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from api.settings import RtspConfig, ServiceConfig, is_live_url
from api.store.db import open_database
from api.store.events import EventStore
from api.store.sink import JsonlSink, StoreSink
from pipeline.batcher import Batcher, BatcherStats, StreamDetector
from pipeline.config import CameraConfig
from pipeline.protocols import Detector, FrameSource, Rule, Sink, SourceInfo
from pipeline.runner import EvidenceHook, SignalBoardLike, StreamRunner
from pipeline.stages import StageTimes
from pipeline.supervisor import RestartPolicy, Supervisor, WorkerState, WorkerStatus
from pipeline.types import Detections, Event, Frame, SignalState, Tracks
from streams.decode import EncodedPacket
from streams.file_source import FileSource
from streams.health import DropCounter, DropReason, RateMeter, StreamHealth, StreamState, mask_url
from streams.latest import LatestQueue
from streams.packet_ring import PacketRing
from streams.rtsp_source import RtspSource

if TYPE_CHECKING:
    from api.viid.delivery import Delivery

logger = logging.getLogger(__name__)

PERMANENT_ERRORS = ("401", "403", "404", "unauthorized", "forbidden", "not found", "no video")
FILE_STALL_S = 5.0


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """One camera's health: source state and counters plus the runner's (URL masked).

    ``state``: connecting / live / stalled / backoff / failed, or stopped / finished.
    ``drops`` counts frames not analysed, by reason (``backlog`` = analysis slower than the
    stream, ``sampling`` = not picked by the analysis rate, ``decode_error``).
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


class LiveFileSource:
    """A file paced in real time, decoded on its own thread into a latest-frame queue.

    It behaves like a camera: when analysis is slower than the stream the oldest frames are
    dropped (counted as ``backlog``) instead of building up latency. Ends at end of file; an
    error of the file (nothing decodable) is raised to the consumer.
    """

    def __init__(
        self, inner: FileSource, queue_size: int = 2, drops: DropCounter | None = None
    ) -> None:
        self.inner = inner
        self.drops = drops if drops is not None else DropCounter()
        self.input = RateMeter()
        self.last_frame_mono: float | None = None
        self.skew_ms: float | None = None
        self._queue: LatestQueue[Frame] = LatestQueue(queue_size, self.drops)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._decode, name="file-live", daemon=True)
        self._started = False
        self._counted = False

    @property
    def info(self) -> SourceInfo:
        return self.inner.info

    def _decode(self) -> None:
        try:
            for frame in self.inner.frames():
                now = time.monotonic()
                self.input.tick(now)
                self.last_frame_mono = now
                self.skew_ms = time.time() * 1000.0 - frame.wall_time_ms
                self._queue.put(frame)
        except BaseException as e:  # handed to the consumer
            self._error = e
        finally:
            self._queue.close()
            self._count_run()

    def _count_run(self) -> None:
        """Move this run's sampling and decode-error counts into the (shared) counter."""
        inner = self.inner
        self.drops.add(DropReason.SAMPLING, inner.frames_decoded - inner.frames_yielded)
        self.drops.add(DropReason.DECODE_ERROR, inner.decode_errors)
        self._counted = True

    def frames(self) -> Iterator[Frame]:
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            frame = self._queue.get(timeout=0.5)
            if frame is not None:
                yield frame
            elif self._queue.closed and len(self._queue) == 0:
                break
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self.inner.close()
        self._queue.close()
        if self._started and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def drop_counts(self) -> dict[str, int]:
        counts = self.drops.snapshot()
        if not self._counted:  # add the running file's counts
            inner = self.inner
            counts[str(DropReason.SAMPLING)] += inner.frames_decoded - inner.frames_yielded
            counts[str(DropReason.DECODE_ERROR)] += inner.decode_errors
        return counts


@dataclass
class _Camera:
    config: CameraConfig
    stats: CameraStats = field(default_factory=CameraStats)
    runner: StreamRunner | None = None


def make_source(
    cam: CameraConfig,
    rtsp: RtspConfig,
    drops: DropCounter | None = None,
    ring: PacketRing | None = None,
) -> RtspSource | LiveFileSource | FileSource:
    """The camera's source: RTSP (and other stream URLs), a file as live, or a plain file.

    ``ring`` (red-light cameras) receives the encoded packets for evidence clips.
    """
    assert cam.url is not None
    packet_sink = None if ring is None else ring.push
    if is_live_url(cam.url):
        return RtspSource(
            cam.url,
            cam.id,
            transport=rtsp.transport,
            open_timeout_s=rtsp.open_timeout_s,
            read_timeout_s=rtsp.read_timeout_s,
            stall_timeout_s=rtsp.stall_timeout_s,
            analysis_fps=cam.analysis_fps,
            queue_size=rtsp.queue_size,
            backoff_initial_s=rtsp.backoff_initial_s,
            backoff_max_s=rtsp.backoff_max_s,
            restart_budget=rtsp.restart_budget,
            restart_window_s=rtsp.restart_window_s,
            failed_retry_s=rtsp.failed_retry_s,
            packet_sink=packet_sink,
            params_sink=None if ring is None else ring.set_stream_params,
        )
    source = _file_source(cam, rtsp, drops, packet_sink)
    if ring is not None:
        inner = source.inner if isinstance(source, LiveFileSource) else source
        ring.set_stream_params(inner.video_stream_params())
    return source


def _file_source(
    cam: CameraConfig,
    rtsp: RtspConfig,
    drops: DropCounter | None,
    packet_sink: Callable[[EncodedPacket], None] | None,
) -> LiveFileSource | FileSource:
    assert cam.url is not None
    if cam.live:  # capture time = now: the clip stands in for a camera filming right now
        inner = FileSource(
            cam.url,
            cam.id,
            realtime=True,
            analysis_fps=cam.analysis_fps,
            start_wall_ms=round(time.time() * 1000),
            packet_sink=packet_sink,
            decode_threads=1,  # one decode thread per camera, like RTSP: no frame-thread lag
        )
        return LiveFileSource(inner, rtsp.queue_size, drops)
    return FileSource(cam.url, cam.id, analysis_fps=cam.analysis_fps, packet_sink=packet_sink)


@dataclass
class RedLightParts:
    rules: list[Rule] = field(default_factory=list)
    board: SignalBoardLike | None = None
    evidence: EvidenceHook | None = None


def red_light_parts(
    cam: CameraConfig, source: FrameSource, out: Path, ring: PacketRing | None
) -> RedLightParts:
    """Signal board, red-light rules and evidence builder of an intersection camera.

    The calibration is relative, so the frame size must be known: a file source knows it at
    once; an RTSP camera only after connecting — the node does not run rules on those yet.
    """
    if cam.intersection is None:
        return RedLightParts()
    if source.info.width <= 0:
        logger.warning(
            "camera %s: red-light rules need the frame size; not run on RTSP yet", cam.id
        )
        return RedLightParts()
    from api.pipeline_factory import _red_light_parts

    rules, board, evidence = _red_light_parts(cam, source, out, ring)
    return RedLightParts([r for r in rules if isinstance(r, Rule)], board, evidence)


def build_node_detector(config: ServiceConfig) -> Detector:
    """The node's one detector, from ``config.detector``."""
    from models.factory import create_detector

    d = config.detector
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
    )


class NodeRuntime:
    """Runs every camera of a :class:`ServiceConfig` until :meth:`stop` (see module docstring).

    ``detector`` overrides the configured one (tests, benchmarks); ``extra_sinks`` receive every
    camera's events after the store (e.g. the live feed). ``policy`` is the restart budget of a
    camera whose pipeline crashes (an RTSP source reconnects by itself and does not crash).
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        detector: Detector | None = None,
        extra_sinks: Sequence[Sink] = (),
        policy: RestartPolicy | None = None,
    ) -> None:
        self.config = config
        self.times = StageTimes(2_000)
        self._detector = detector
        self._extra_sinks = list(extra_sinks)
        self._policy = policy
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()
        self._batcher: Batcher | None = None
        self._supervisor: Supervisor | None = None
        self._store: EventStore | None = None
        self._jsonl: JsonlSink | None = None
        self._delivery: Delivery | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def store(self) -> EventStore:
        if self._store is None:
            raise RuntimeError("the runtime is not started")
        return self._store

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            raise RuntimeError("the runtime is not started")
        return self._detector

    def start(self) -> NodeRuntime:
        """Open the store, load the detector, start delivery and every configured camera.

        Raises:
            StoreError, ModelError, ConfigError: what failed; anything opened is closed again.
        """
        try:
            self._open()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "node runtime: %d cameras, detector %s", len(self.config.cameras), self.describe()
        )
        return self

    def _open(self) -> None:
        cfg = self.config
        cfg.store.files_root.mkdir(parents=True, exist_ok=True)
        self._store = EventStore(open_database(cfg.store.url), cfg.store.files_root)
        if cfg.store.jsonl:
            self._jsonl = JsonlSink(cfg.store.files_root / "events.jsonl", cfg.store.files_root)
        if self._detector is None:
            self._detector = build_node_detector(cfg)
        self._batcher = Batcher(
            self._detector,
            max_batch=cfg.batch.max_batch,
            max_wait_ms=cfg.batch.max_wait_ms,
            times=self.times,
        )
        self._supervisor = Supervisor(
            self._build_runner,
            loop_files=cfg.loop_files,
            policy=self._policy,
            on_exit=self._on_runner_exit,
        )
        self._start_delivery()
        self._started = True
        for cam in cfg.cameras:
            self.add_camera(cam)

    def _start_delivery(self) -> None:
        if self.config.delivery is None:
            return
        from api.viid.delivery import start_delivery

        self._delivery = start_delivery(
            self.store, self.config.delivery, files_root=self.config.store.files_root
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop every camera (each flushes its open tracks as events), then close everything."""
        if self._supervisor is not None:
            self._supervisor.stop_all(timeout_s)
        if self._batcher is not None:
            self._batcher.close()
        if self._jsonl is not None:
            self._jsonl.close()
        if self._delivery is not None:
            self._delivery.stop(drain_timeout_s=5.0)
        if self._store is not None:
            self._store.close()
        self._started = False

    def __enter__(self) -> NodeRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> str:
        i = self.detector.info
        return f"{i.model} {i.input_size[0]}x{i.input_size[1]} on {','.join(i.providers)}"

    # -- cameras ---------------------------------------------------------------------------

    def add_camera(self, cam: CameraConfig) -> None:
        """Start a camera.

        Raises:
            KeyError: the id already runs.  ValueError: the camera has no url.
        """
        if cam.url is None:
            raise ValueError(f"camera {cam.id!r} has no url")
        assert self._supervisor is not None, "start() first"
        with self._lock:
            if cam.id in self._cameras:
                raise KeyError(f"camera {cam.id!r} already runs")
            self._cameras[cam.id] = _Camera(cam)
        self._supervisor.add(cam)

    def update_camera(self, cam: CameraConfig) -> None:
        """Restart a camera with a new config (its counters start again)."""
        self.remove_camera(cam.id)
        self.add_camera(cam)

    def remove_camera(self, camera_id: str) -> bool:
        """Stop a camera (its open tracks are flushed as events); False when unknown."""
        assert self._supervisor is not None, "start() first"
        removed = self._supervisor.remove(camera_id)
        with self._lock:
            self._cameras.pop(camera_id, None)
        return removed

    def camera_configs(self) -> list[CameraConfig]:
        with self._lock:
            return [c.config for c in self._cameras.values()]

    def all_finished(self) -> bool:
        """True when every camera ended by itself (files without looping)."""
        return self._supervisor is not None and self._supervisor.all_done()

    def _build_runner(self, cam: CameraConfig) -> StreamRunner:
        from models.classes import COCO80_NAMES, VEHICLE_CLASS_CODES
        from pipeline.events import TrackEventBuilder
        from pipeline.tracking.bytetrack import ByteTracker

        with self._lock:
            entry = self._cameras.get(cam.id)
        if entry is None or self._batcher is None:
            raise RuntimeError(f"camera {cam.id!r} was removed")
        ring = None
        if cam.intersection is not None:
            ring = PacketRing(max_seconds=60.0, max_bytes=64 * 1024 * 1024)
        source: FrameSource = make_source(cam, self.config.rtsp, entry.stats.drops, ring)
        red = red_light_parts(cam, source, self.config.store.files_root, ring)
        destinations = ("viid",) if self.config.delivery is not None else ()
        store_sink = StoreSink(self.store, destinations, device_id=cam.device_id)
        sinks: list[Sink] = [MeteredStoreSink(store_sink, entry.stats)]
        sinks += [self._jsonl] if self._jsonl is not None else []
        events = TrackEventBuilder(
            cam.id,
            cam.events,
            class_names=COCO80_NAMES,
            class_codes=VEHICLE_CLASS_CODES,
            image_up_bearing_deg=cam.image_up_bearing_deg,
        )
        runner = StreamRunner(
            source=source,
            detector=self._batcher.for_stream(cam.id),
            tracker=ByteTracker(cam.tracker),
            events=events,
            sinks=sinks + self._extra_sinks,
            rules=red.rules,
            signal_board=red.board,
            evidence=red.evidence,
            observer=entry.stats.on_frame,
            prefetch_depth=0 if isinstance(source, RtspSource | LiveFileSource) else 4,
            stage_samples=2_000,
        )
        entry.runner = runner
        return runner

    def _on_runner_exit(self, cam: CameraConfig, runner: StreamRunner) -> None:
        if isinstance(runner.detector, StreamDetector):
            runner.detector.close()

    # -- health ----------------------------------------------------------------------------

    def runners(self) -> dict[str, StreamRunner]:
        """The current runner of every camera (stage timings live on ``runner.summary``)."""
        with self._lock:
            return {k: c.runner for k, c in self._cameras.items() if c.runner is not None}

    def batcher_stats(self) -> BatcherStats:
        return self._batcher.stats if self._batcher is not None else BatcherStats()

    def latencies_ms(self) -> dict[str, list[float]]:
        """Frame-capture → event-stored latency samples per camera (newest few thousand)."""
        with self._lock:
            return {k: list(c.stats.latency_ms) for k, c in self._cameras.items()}

    def health(self) -> dict[str, CameraHealth]:
        """Health of every camera (URLs masked)."""
        statuses = self._supervisor.statuses() if self._supervisor is not None else {}
        with self._lock:
            cams = list(self._cameras.values())
        out: dict[str, CameraHealth] = {}
        for cam in cams:
            status = statuses.get(cam.config.id)
            if status is not None:
                out[cam.config.id] = camera_health(cam, status, self.config.rtsp.failed_after)
        return out


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


def camera_health(cam: _Camera, status: WorkerStatus, failed_after: int) -> CameraHealth:
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
        last_error=status.last_error,
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
    return replace(
        base,
        state=forced or state,
        input_fps=src.input.rate(),
        drops=src.drop_counts(),
        last_frame_age_s=age,
        decode_errors=src.drop_counts()[str(DropReason.DECODE_ERROR)],
        skew_ms=src.skew_ms,
        width=info.width,
        height=info.height,
        decoder="pyav-cpu",
    )
