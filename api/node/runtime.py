"""The node runtime: one detector behind one cross-camera batcher, a supervisor of per-camera
runners, one event store and its sinks — the composition root of ``sharpeyes run``. A camera
whose own ``detector`` section asks for another model or input size (a checkpoint camera's small
input for frame-filling vehicles) gets a detector and batcher of that kind, shared with the
cameras asking for the same (:func:`~sharpeyes.api.node.camera.detector_mismatch`), so it sees
what ``sharpeyes analyze`` sees.

Per camera: a live source (:mod:`streams.factory`: RTSP, a paced file behind a latest-frame
queue, or a GPU-decoded stream when ``config.decoder`` asks for one), a
:class:`pipeline.batcher.StreamDetector` view of the shared batcher, its own ByteTrack tracker
and event builder, and the shared sinks. The detector is the ONNX Runtime host path of
``config.detector``, or the backend of ``config.detector_backend``
(:func:`models.gpu.registry.create_backend_detector`) when set. Cameras can be added, updated
and removed at run time; :meth:`NodeRuntime.health` combines the source's health with the
runner's counters (:mod:`sharpeyes.api.node.health`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sharpeyes.api.node.camera import (
    CameraEnv,
    CameraWiring,
    asked_detector,
    build_camera,
    build_shared_detector,
    detector_mismatch,
    external_groups,
)
from sharpeyes.api.node.health import (
    CameraEntry,
    CameraHealth,
    CameraStats,
    MeteredSink,
    camera_health,
    rtsp_state,
)
from sharpeyes.api.node.process_metrics import sum_batcher_stats
from sharpeyes.api.node.settings import ServiceConfig, shared_device_ids
from sharpeyes.api.sinks.kafka import KAFKA_DESTINATION
from sharpeyes.api.sinks.mqtt import MQTT_DESTINATION
from sharpeyes.api.sinks.started import EventSinks
from sharpeyes.api.store.db import open_database
from sharpeyes.api.store.events import EventStore, Written
from sharpeyes.api.store.sink import JsonlSink
from sharpeyes.api.store.writer import StoreWriter
from sharpeyes.models.factory import backend_text
from sharpeyes.pipeline.batcher import Batcher, BatcherStats, StreamDetector
from sharpeyes.pipeline.config import AnyDetectorConfig, CameraConfig
from sharpeyes.pipeline.errors import ModelError
from sharpeyes.pipeline.protocols import Detector, Sink
from sharpeyes.pipeline.runner import StreamRunner
from sharpeyes.pipeline.signal_input import PhaseHub, UdpPhaseListener
from sharpeyes.pipeline.stages import StageTimes
from sharpeyes.pipeline.supervisor import RestartPolicy, Supervisor
from sharpeyes.pipeline.types import Frame

if TYPE_CHECKING:
    from sharpeyes.api.viid.delivery import Delivery
    from sharpeyes.api.viid.subscriptions import SubscriptionRegistry

__all__ = [
    "CameraHealth",
    "CameraStats",
    "NodeRuntime",
    "camera_health",
    "rtsp_state",
]

logger = logging.getLogger(__name__)

DRAIN_AT_STOP_S = 5.0  # how long a stopping node keeps delivering what is still pending


def report_undelivered(pending: dict[str, int]) -> str | None:
    """One warning when records are still pending at exit (per destination); the line."""
    left = {k: n for k, n in pending.items() if n > 0}
    if not left:
        return None
    total = sum(left.values())
    where = ", ".join(f"{k} {n}" for k, n in left.items())
    line = (
        f"stopped with {total} records not yet delivered ({where}): kept in the outbox, "
        "sent at the next start or by `sharpeyes deliver`"
    )
    logger.warning("%s", line)
    return line


def build_backend_detector(config: ServiceConfig) -> tuple[Detector, str]:
    """The node's one detector, shared by every camera behind the batcher, and the backend in
    use: ``config.detector_backend`` or ``config.detector``, with the lowest camera threshold
    (each camera applies its own after)."""
    return build_shared_detector(config.detector_backend or config.detector, config.cameras)


def _own_key(cam: CameraConfig) -> tuple[tuple[str, object], ...]:
    """What kind of detector a camera asks for (:func:`asked_detector`), as a key."""
    return tuple(asked_detector(cam).items())


class NodeRuntime:
    """Runs every camera of a :class:`ServiceConfig` until :meth:`stop` (see module docstring).

    ``detector`` overrides the configured one (tests, benchmarks); ``extra_sinks`` receive every
    camera's events after the store (e.g. the live feed). ``policy`` is the restart budget of a
    camera whose pipeline crashes (an RTSP source reconnects by itself and does not crash).
    ``deliver=False`` writes outbox rows for ``config.delivery`` but leaves sending them to
    another process (the node's parent when cameras run in several worker processes).
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        detector: Detector | None = None,
        extra_sinks: Sequence[Sink] = (),
        policy: RestartPolicy | None = None,
        deliver: bool = True,
        store: EventStore | None = None,
        on_committed: Callable[[Sequence[Written]], None] | None = None,
        feed: bool = False,
        subscriptions: SubscriptionRegistry | None = None,
    ) -> None:
        self.config = config
        self.detector_backend: str | None = None
        self._deliver = deliver
        self.times = StageTimes(2_000)
        self._detector = detector
        self._extra_sinks = list(extra_sinks)
        self._policy = policy
        self._cameras: dict[str, CameraEntry] = {}
        self._lock = threading.Lock()
        self._batcher: Batcher | None = None
        self._own: dict[tuple[tuple[str, object], ...], Batcher] = {}  # see _batcher_for
        self._given = detector is not None
        self._supervisor: Supervisor | None = None
        self._store: EventStore | None = store
        self._owns_store = store is None
        self._writer: StoreWriter | None = None
        self._on_committed = on_committed
        self._feed = feed
        self._subscriptions = subscriptions  # shared with the service's /VIID/Subscribes
        self._jsonl: JsonlSink | None = None
        self._delivery: Delivery | None = None
        self._sinks = EventSinks()
        self._started = False
        self.phases = PhaseHub()  # external signal phases (REST and UDP) of every camera
        self._phase_listener: UdpPhaseListener | None = None

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
        if self._store is None:
            self._store = EventStore(open_database(cfg.store.url), cfg.store.files_root)
            self._owns_store = True
        self._writer = StoreWriter(self._store, on_committed=self._on_committed)
        if cfg.store.jsonl:
            self._jsonl = JsonlSink(cfg.store.files_root / "events.jsonl", cfg.store.files_root)
        if self._detector is None:
            self._detector, self.detector_backend = build_backend_detector(cfg)
        else:
            self.detector_backend = backend_text(self._detector, "given")
        # the batch the detector can take bounds the batcher (a GPU backend sizes its graphs by it)
        detector_cfg = cfg.detector_backend or cfg.detector
        self._batcher = Batcher(
            self._detector,
            max_batch=min(cfg.batch.max_batch, detector_cfg.max_batch),
            max_wait_ms=cfg.batch.max_wait_ms,
            times=self.times,
            workers=cfg.batch.workers,
        )
        self._supervisor = Supervisor(
            self._build_runner,
            loop_files=cfg.loop_files,
            policy=self._policy,
            on_exit=self._on_runner_exit,
        )
        self._start_delivery()
        udp = cfg.phase_input
        if udp.udp_port is not None:
            self._phase_listener = UdpPhaseListener(self.phases, udp.udp_host, udp.udp_port)
            self._phase_listener.start()
        self._started = True
        for cam in cfg.cameras:
            self.add_camera(cam)

    def _start_delivery(self) -> None:
        if not self._deliver:
            return
        self._sinks = EventSinks.start(self.store, self.config.mqtt, self.config.kafka)
        if self.config.delivery is None:
            return
        from sharpeyes.api.viid.delivery import start_delivery

        self._delivery = start_delivery(
            self.store,
            self.config.delivery,
            files_root=self.config.store.files_root,
            registry=self._subscriptions,
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop every camera (each flushes its open tracks as events), then close everything."""
        if self._supervisor is not None:
            self._supervisor.stop_all(timeout_s)
        if self._phase_listener is not None:
            self._phase_listener.close()
            self._phase_listener = None
        if self._batcher is not None:
            self._batcher.close()
        for own in self._own.values():
            own.close()
        self._own.clear()
        if self._jsonl is not None:
            self._jsonl.close()
        # the cameras' last events (open tracks flushed above) are committed — with their
        # outbox rows — before delivery drains, or they would stay pending until the next start
        if self._writer is not None:
            if not self._writer.close(timeout_s):
                logger.error(
                    "store writer: events left unwritten at stop (%s)", self._writer.stats()
                )
            self._writer = None
        undelivered: dict[str, int] = {}
        if self._delivery is not None:
            self._delivery.stop(drain_timeout_s=DRAIN_AT_STOP_S)
            undelivered["GA/T 1400"] = self._delivery.pending()
        self._sinks.stop(DRAIN_AT_STOP_S, undelivered)
        self._delivery = None
        report_undelivered(undelivered)
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None
        self._started = False

    def __enter__(self) -> NodeRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _detector_config(self) -> AnyDetectorConfig:
        return self.config.detector_backend or self.config.detector

    def _batcher_for(self, cam: CameraConfig) -> Batcher:
        """The node's batcher, or — for a camera asking for another model or input size — the
        one of a detector built for that (node's runtime settings, the camera's model fields),
        shared by the cameras asking for the same."""
        assert self._batcher is not None
        node = self._detector_config
        if self._given or detector_mismatch(cam, node) is None:
            return self._batcher
        key = _own_key(cam)
        with self._lock:
            own = self._own.get(key)
        if own is not None:
            return own
        asked = dict(key)
        config = node.model_copy(update=asked)
        alike = [c for c in self.config.cameras if _own_key(c) == key] + [cam]
        detector, backend = build_shared_detector(config, alike)  # built outside the lock
        batcher = Batcher(
            detector,
            max_batch=min(self.config.batch.max_batch, config.max_batch),
            max_wait_ms=self.config.batch.max_wait_ms,
            times=self.times,
            workers=self.config.batch.workers,
        )
        with self._lock:
            own = self._own.setdefault(key, batcher)
        if own is not batcher:  # another camera of the same kind got there first
            batcher.close()
        else:
            logger.info("camera %r: a detector of its own kind %s (%s)", cam.id, asked, backend)
        return own

    def _near_view_detector(self, cam: CameraConfig) -> Detector:
        """A view of the node's detector of ``cam``'s kind (the near field's: half the input),
        shared with the other cameras asking for the same.

        Raises:
            ModelError: the node was given its detector (no other kind can be made here).
        """
        if self._given:
            raise ModelError("the node runs the detector it was given; no other input size")
        return self._batcher_for(cam).for_stream(cam.id)

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
            self._cameras[cam.id] = CameraEntry(cam)
        if self.config.delivery is not None:  # checked at load for the configured cameras
            running = [c for c in self.camera_configs() if c.id != cam.id]
            shared = shared_device_ids(self.config.delivery, [*running, cam])
            if shared:
                logger.error(
                    "camera %r: GA/T 1400 object ids are unique only per device id, and %s: "
                    "the platform keeps one of two records sent under the same id — give "
                    "the camera its own device_id",
                    cam.id,
                    "; ".join(shared),
                )
        mismatch = detector_mismatch(cam, self._detector_config)
        if mismatch is not None and self._given:
            logger.warning("%s (this node was handed its detector)", mismatch)
        groups = external_groups(cam)
        if groups:  # phases told from now on reach the camera, even before it is built
            self.phases.input_for(cam.id, groups)
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
        self.phases.remove(camera_id)
        return removed

    def camera_configs(self) -> list[CameraConfig]:
        with self._lock:
            return [c.config for c in self._cameras.values()]

    def all_finished(self) -> bool:
        """True when every camera ended by itself (files without looping)."""
        return self._supervisor is not None and self._supervisor.all_done()

    def _build_runner(self, cam: CameraConfig) -> StreamRunner:
        """The supervisor's factory: the camera from the one composition root."""
        with self._lock:
            entry = self._cameras.get(cam.id)
        if entry is None or self._batcher is None:
            raise RuntimeError(f"camera {cam.id!r} was removed")
        destinations: tuple[str, ...] = ("viid",) if self.config.delivery is not None else ()
        destinations += (MQTT_DESTINATION,) if self.config.mqtt is not None else ()
        destinations += (KAFKA_DESTINATION,) if self.config.kafka is not None else ()
        assert self._writer is not None
        stats = entry.stats
        writer_sink = self._writer.sink(
            device_id=cam.device_id,
            destinations=destinations,
            feed=self._feed,
            on_committed=lambda ws: stats.committed([w.stored.event.event_id for w in ws]),
        )
        sinks: list[Sink] = [MeteredSink(writer_sink, stats)]
        sinks += [self._jsonl] if self._jsonl is not None else []
        env = CameraEnv(
            files_root=self.config.store.files_root,
            rtsp=self.config.rtsp,
            decoder=self.config.decoder,
            phases=self.phases,
            drops=entry.stats.drops,
            stage_samples=2_000,
            key_dir=self.config.store.files_root / "keys",
            detector_for=self._near_view_detector,
        )
        camera = build_camera(
            cam,
            env,
            detector=self._batcher_for(cam).for_stream(cam.id),
            sinks=sinks + self._extra_sinks,
            observer=entry.stats.on_frame,
        )
        entry.runner = camera.runner
        entry.wiring = camera.wiring
        return camera.runner

    def _on_runner_exit(self, cam: CameraConfig, runner: StreamRunner) -> None:
        for detector in (runner.detector, runner.near_view):
            if isinstance(detector, StreamDetector):
                detector.close()

    # -- health ----------------------------------------------------------------------------

    def runners(self) -> dict[str, StreamRunner]:
        """The current runner of every camera (stage timings live on ``runner.summary``)."""
        with self._lock:
            return {k: c.runner for k, c in self._cameras.items() if c.runner is not None}

    def delivery_status(self) -> dict[str, object] | None:
        """GA/T 1400 delivery health (None when this node does not deliver)."""
        return self._delivery.health() if self._delivery is not None else None

    @property
    def writer(self) -> StoreWriter:
        if self._writer is None:
            raise RuntimeError("the runtime is not started")
        return self._writer

    def wirings(self) -> dict[str, CameraWiring]:
        """What the composition root wired for every camera that has been built."""
        with self._lock:
            return {k: c.wiring for k, c in self._cameras.items() if c.wiring is not None}

    def batcher_stats(self) -> BatcherStats:
        """The node's batcher counters, with those of the cameras' own detectors added."""
        with self._lock:
            own = [b.stats for b in self._own.values()]
        if self._batcher is None:
            return BatcherStats()
        return sum_batcher_stats([self._batcher.stats, *own]) if own else self._batcher.stats

    def event_counts(self) -> dict[str, dict[tuple[str, str], int]]:
        """Events handed to the store per camera, by (type, violation code or "")."""
        with self._lock:
            return {k: dict(c.stats.by_type) for k, c in self._cameras.items()}

    def flow_latest(self) -> dict[str, dict[int, dict[str, object]]]:
        """The latest complete traffic-flow record per camera and lane number."""
        with self._lock:
            return {k: dict(c.stats.flow) for k, c in self._cameras.items() if c.stats.flow}

    def latencies_ms(self) -> dict[str, list[float]]:
        """Frame-capture → event-stored latency samples per camera (newest few thousand)."""
        with self._lock:
            return {k: list(c.stats.latency_ms) for k, c in self._cameras.items()}

    def latest_frame(self, camera_id: str) -> Frame | None:
        """The camera's last analysed frame (the operator screen's tile), None before any."""
        with self._lock:
            entry = self._cameras.get(camera_id)
        return entry.stats.latest if entry is not None else None

    def health(self) -> dict[str, CameraHealth]:
        """Health of every camera (URLs masked)."""
        statuses = self._supervisor.statuses() if self._supervisor is not None else {}
        with self._lock:
            cams = list(self._cameras.values())
        out: dict[str, CameraHealth] = {}
        for cam in cams:
            status = statuses.get(cam.config.id)
            if status is not None:
                out[cam.config.id] = camera_health(
                    cam, status, self.config.rtsp.failed_after, self.detector_backend
                )
        return out
