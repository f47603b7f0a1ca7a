"""Backend selection for the service: ``ClusterSettings`` → a running cluster behind one handle.

``start_cluster(settings, cameras)`` starts the coordinator and workers of the chosen backend
and returns a :class:`ClusterHandle` (``health``, ``add_camera``, ``remove_camera``, ``drain``,
``stop``) that the API and ``sharpeyes serve`` use the same way for both:

* ``local`` (the embedded default): workers are threads of this process, the coordinator a
  thread; nothing to install. SQLite is fine here (one machine only).
* ``ray``: joins a Ray cluster (``ray_address``) and finds or creates the detached coordinator
  actor, which spawns one ``GpuWorker`` per slot resource. Ray is imported only here and only
  for this backend (``pip install sharpeyes[cluster]``); the database must be one every node
  reaches (PostgreSQL). ``ray_address="local"`` starts a one-machine Ray head with the tuned
  health-check settings (``docs/SCALE_OUT.md`` §2.7); a real cluster's head gets them from
  its start-up (``deploy/``).

With a GA/T 1400 ``delivery`` config, ``start_cluster`` also starts the delivery of the cluster
database's outbox — the upper platform's ``viid`` rows and the ``sub:<SubscribeID>`` rows of
subscriptions — in this process (:mod:`sharpeyes.api.cluster.delivery`); ``stop`` drains it for a
few seconds and stops it. ``device_ids`` is the live set of the cluster's camera device ids, what
a subscription's ResourceURI may name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field

from sharpeyes.api.cluster.backend import ProgramOptions
from sharpeyes.api.cluster.coordinator import CoordinatorOptions
from sharpeyes.api.cluster.delivery import (
    DESTINATION,
    close_cluster_delivery,
    desired_device_ids,
    start_cluster_delivery,
    start_cluster_sinks,
)
from sharpeyes.api.cluster.health import ClusterHealth
from sharpeyes.api.cluster.leases import CameraSpec, LeaseStore
from sharpeyes.api.cluster.local import LocalBackend, LocalCluster
from sharpeyes.api.cluster.pipeline_program import pipeline_spec
from sharpeyes.api.cluster.storage import open_storage
from sharpeyes.pipeline.config import CameraConfig, StrictModel
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.signal_input import (
    GroupPhase,
    PhaseCounts,
    PhaseIntake,
    PhaseMessage,
    PhaseRejectedError,
)

if TYPE_CHECKING:
    from sharpeyes.api.sinks.kafka import KafkaSinkConfig
    from sharpeyes.api.sinks.mqtt import MqttSinkConfig
    from sharpeyes.api.sinks.started import EventSinks
    from sharpeyes.api.store import EventStore
    from sharpeyes.api.viid.delivery import Delivery, DeliveryConfig

log = logging.getLogger(__name__)

DRAIN_AT_STOP_S = 5.0  # how long a stopping cluster process keeps delivering what is pending


class HealthCheckSettings(StrictModel):
    """Ray's node health check (the defaults need ~60 s to notice a hung node)."""

    period_ms: int = Field(1000, ge=100, le=60_000, description="Health-check period.")
    timeout_ms: int = Field(1000, ge=100, le=60_000, description="Health-check timeout.")
    failure_threshold: int = Field(
        3, ge=1, le=100, description="Missed checks before a node is declared dead."
    )

    def system_config(self) -> dict[str, int]:
        """Ray ``_system_config`` keys (also settable as ``RAY_health_check_*`` env vars)."""
        return {
            "health_check_period_ms": self.period_ms,
            "health_check_timeout_ms": self.timeout_ms,
            "health_check_failure_threshold": self.failure_threshold,
        }


class ClusterSettings(StrictModel):
    """How cameras are sharded over workers (``cluster:`` in the service config)."""

    backend: Literal["local", "ray"] = Field(
        "local", description="local = workers in this process (no Ray); ray = Ray actors."
    )
    db_url: str = Field(
        "out/cluster/cluster.db",
        description="Lease/event database: a SQLite path (local only) or postgresql://…",
    )
    ray_address: str = Field(
        "auto", description="Ray cluster to join (ray backend); 'local' starts a one-node head."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Workers of the local backend (and slots of a 'local' Ray "
        "head when slot_resource is not GPU).",
    )
    capacity: float = Field(
        4.0, gt=0.0, description="Cost units one worker takes (GPU benchmark; 1080p25 = 1.0)."
    )
    camera_cost: float = Field(1.0, gt=0.0, description="Cost of a camera added from config.")
    slot_resource: str = Field("GPU", description="Ray resource: one worker per unit.")
    coordinator_resource: str | None = Field(
        "head", description="Ray custom resource pinning the coordinator (the head node)."
    )
    storage_url: str | None = Field(
        None, description="Evidence storage every node reaches: s3://bucket/prefix or a path."
    )
    files_root: str | None = Field(
        None, description="Folder (shared mount in a cluster) for crops and evidence folders."
    )
    outbox_destinations: list[str] = Field(
        default_factory=list, description="Outbox rows per event, e.g. ['viid']."
    )
    commit_every_s: float = Field(
        0.5, ge=0.0, le=60.0, description="Longest a camera batches frames before committing."
    )
    replay_s: float | None = Field(
        None,
        ge=0.0,
        description="Video a new owner re-analyses before the committed "
        "position (None = from the start of a file: exact event ids).",
    )
    tick_s: float = Field(0.25, gt=0.0, le=10.0, description="Coordinator reconcile period.")
    pending_timeout_s: float = Field(
        30.0, gt=0.0, description="A worker not answering this long after spawn is given up."
    )
    health_timeout_s: float = Field(
        5.0, gt=0.0, description="Longest wait for the coordinator's health (ray backend)."
    )
    health_check: HealthCheckSettings = Field(
        default_factory=HealthCheckSettings, description="Ray node health check (ray backend)."
    )

    def program_options(self) -> ProgramOptions:
        return ProgramOptions(self.commit_every_s, self.replay_s, self.files_root)

    def coordinator_options(self) -> CoordinatorOptions:
        return CoordinatorOptions(tick_s=self.tick_s, pending_timeout_s=self.pending_timeout_s)


class ClusterHandle(Protocol):
    """What the API and the service use, whatever the backend."""

    @property
    def backend(self) -> str: ...

    def health(self) -> ClusterHealth: ...

    def add_camera(self, camera: CameraConfig | CameraSpec) -> None: ...

    def remove_camera(self, camera_id: str) -> int:
        """Fence and stop the camera; returns its new epoch (UnknownCameraError if absent)."""
        ...

    def drain(self, node: str) -> int: ...

    counts: PhaseCounts  # the phase messages it took (REST and UDP)

    def takes(self, camera_id: str) -> bool:
        """Whether the camera takes external signal phases (a :class:`PhaseRouter`)."""
        ...

    def receive(self, message: PhaseMessage, transport: str, camera_id: str | None = None) -> str:
        """Deliver an external signal phase to the worker running the camera (counted; the
        one path of :class:`~sharpeyes.pipeline.signal_input.PhaseIntake`).

        Raises: PhaseRejectedError: an unknown camera or group, an impossible wall_ms."""
        ...

    def status(self, camera_id: str, now: int | None = None) -> list[GroupPhase] | None:
        """The latest phase told per external group of the camera; None when it takes none."""
        ...

    def receive_datagram(self, data: bytes, peer: object, transport: str = "udp") -> str | None:
        """A UDP datagram through :meth:`receive`; refusals logged and counted."""
        ...

    def device_ids(self) -> frozenset[str]:
        """The GA/T 1400 device ids of the cameras in the desired set now."""
        ...

    def attach_delivery(self, delivery: Delivery) -> None:
        """Own ``delivery`` (of the cluster's outbox): :meth:`stop` drains and stops it."""
        ...

    def attach_sinks(self, sinks: EventSinks, store: EventStore) -> None:
        """Own the MQTT / Kafka senders (over ``store``): :meth:`stop` drains and stops them."""
        ...

    def delivery_status(self) -> dict[str, object] | None:
        """GA/T 1400 delivery health (None when this process does not deliver)."""
        ...

    def stop(self) -> None: ...


class _Delivers:
    """The cluster outbox's delivery a handle owns (see :mod:`sharpeyes.api.cluster.delivery`):
    GA/T 1400 and, with ``mqtt:`` / ``kafka:``, the event sinks' senders."""

    _delivery: Delivery | None = None
    _sinks: tuple[EventSinks, EventStore] | None = None

    def attach_delivery(self, delivery: Delivery) -> None:
        self._delivery = delivery

    def attach_sinks(self, sinks: EventSinks, store: EventStore) -> None:
        """Own ``sinks`` (MQTT/Kafka senders over ``store``, the cluster database)."""
        self._sinks = (sinks, store)

    def delivery_status(self) -> dict[str, object] | None:
        return self._delivery.health() if self._delivery is not None else None

    def _stop_delivery(self) -> None:
        delivery, self._delivery = self._delivery, None
        if delivery is not None:
            close_cluster_delivery(delivery, DRAIN_AT_STOP_S)
        sinks, self._sinks = self._sinks, None
        if sinks is not None:
            undelivered: dict[str, int] = {}
            try:
                sinks[0].stop(DRAIN_AT_STOP_S, undelivered)
            finally:
                sinks[1].close()
            for name, left in undelivered.items():
                if left:
                    log.warning(
                        "cluster: %d %s messages not yet sent (kept in the outbox)", left, name
                    )


def as_spec(camera: CameraConfig | CameraSpec, cost: float) -> CameraSpec:
    return camera if isinstance(camera, CameraSpec) else pipeline_spec(camera, cost=cost)


class LocalClusterHandle(_Delivers, PhaseIntake):
    """The embedded cluster: coordinator and workers are threads of this process."""

    backend = "local"

    def __init__(self, settings: ClusterSettings, cluster: LocalCluster) -> None:
        super().__init__()
        self.settings = settings
        self.cluster = cluster

    def health(self) -> ClusterHealth:
        return self.cluster.coordinator.health()

    def add_camera(self, camera: CameraConfig | CameraSpec) -> None:
        self.cluster.coordinator.add_camera(as_spec(camera, self.settings.camera_cost))

    def remove_camera(self, camera_id: str) -> int:
        return self.cluster.coordinator.remove_camera(camera_id)

    def drain(self, node: str) -> int:
        return self.cluster.coordinator.drain(node)

    def takes(self, camera_id: str) -> bool:
        return bool(self.cluster.coordinator.phase_groups(camera_id))

    def _deliver(
        self, message: PhaseMessage, camera_id: str | None, transport: str, at: int
    ) -> str:
        return self.cluster.coordinator.tell_phase(message, camera_id, transport)

    def status(self, camera_id: str, now: int | None = None) -> list[GroupPhase] | None:
        return self.cluster.coordinator.phase_status(camera_id, now)

    def device_ids(self) -> frozenset[str]:
        return desired_device_ids(self.cluster.coordinator.leases)

    def stop(self) -> None:
        self.cluster.stop()  # the workers commit nothing more: what is left is in the outbox
        self._stop_delivery()
        self.cluster.coordinator.leases.db.close()


class RayClusterHandle(_Delivers, PhaseIntake):
    """A driver's view of the detached Ray coordinator; stopping leaves the cluster running
    (and stops this driver's delivery: the rows stay in the outbox for the next one)."""

    backend = "ray"

    def __init__(
        self, settings: ClusterSettings, actor: Any, leases: LeaseStore | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.actor = actor
        self._leases = leases  # the driver's own connection (the desired set, for device ids)

    @property
    def leases(self) -> LeaseStore:
        if self._leases is None:
            from sharpeyes.api.store.db import open_database

            self._leases = LeaseStore(open_database(self.settings.db_url), ensure_schema=False)
        return self._leases

    def _get(self, ref: Any) -> Any:
        import ray

        return ray.get(ref, timeout=self.settings.health_timeout_s)

    def health(self) -> ClusterHealth:
        health: ClusterHealth = self._get(self.actor.health.remote())
        return health

    def add_camera(self, camera: CameraConfig | CameraSpec) -> None:
        self._get(self.actor.add_camera.remote(as_spec(camera, self.settings.camera_cost)))

    def remove_camera(self, camera_id: str) -> int:
        return int(self._get(self.actor.remove_camera.remote(camera_id)))

    def drain(self, node: str) -> int:
        return int(self._get(self.actor.drain.remote(node)))

    def takes(self, camera_id: str) -> bool:
        return bool(self._get(self.actor.takes_phases.remote(camera_id)))

    def _deliver(
        self, message: PhaseMessage, camera_id: str | None, transport: str, at: int
    ) -> str:
        cam, reason, text = self._get(self.actor.tell_phase.remote(message, camera_id, transport))
        if cam is None:
            raise PhaseRejectedError(str(reason), str(text))
        return str(cam)

    def status(self, camera_id: str, now: int | None = None) -> list[GroupPhase] | None:
        got: list[GroupPhase] | None = self._get(self.actor.phase_status.remote(camera_id, now))
        return got

    def device_ids(self) -> frozenset[str]:
        return desired_device_ids(self.leases)

    def stop(self) -> None:
        import ray

        self._stop_delivery()
        ray.shutdown()  # the detached coordinator and workers keep running the cameras
        if self._leases is not None:
            self._leases.db.close()


def _local_db_url(url: str) -> str:
    if "://" not in url:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
    return url


def _start_local(settings: ClusterSettings) -> LocalClusterHandle:
    from sharpeyes.api.store.db import open_database

    leases = LeaseStore(open_database(_local_db_url(settings.db_url)))
    backend = LocalBackend(
        leases,
        workers=settings.workers,
        capacity=settings.capacity,
        storage=open_storage(settings.storage_url) if settings.storage_url else None,
        outbox_destinations=tuple(settings.outbox_destinations),
        program_options=settings.program_options(),
    )
    cluster = LocalCluster(leases, backend, settings.coordinator_options()).start()
    return LocalClusterHandle(settings, cluster)


def _local_head_resources(settings: ClusterSettings) -> dict[str, float]:
    """A one-machine head: the coordinator's resource, and ``workers`` slots unless they are
    real GPUs (which Ray detects itself)."""
    res: dict[str, float] = {}
    if settings.coordinator_resource:
        res[settings.coordinator_resource] = 1.0
    if settings.slot_resource != "GPU":
        res[settings.slot_resource] = float(settings.workers)
    return res


def _start_ray(settings: ClusterSettings) -> RayClusterHandle:
    if "://" not in settings.db_url or settings.db_url.startswith("sqlite"):
        log.warning("ray backend with SQLite %s: only safe on one machine", settings.db_url)
    try:
        import ray

        from sharpeyes.api.cluster import ray_backend
    except ImportError as e:
        raise ConfigError("cluster.backend 'ray' needs Ray: pip install sharpeyes[cluster]") from e
    from sharpeyes.api.store.db import open_database

    leases = LeaseStore(open_database(settings.db_url))  # migrate once, before any actor
    if not ray.is_initialized():
        if settings.ray_address == "local":
            ray.init(
                namespace=ray_backend.NAMESPACE,
                log_to_driver=False,
                resources=_local_head_resources(settings),
                _system_config=settings.health_check.system_config(),
            )
        else:
            ray.init(address=settings.ray_address, namespace=ray_backend.NAMESPACE)
    options = ray_backend.RayOptions(
        db_url=settings.db_url,
        slot_resource=settings.slot_resource,
        capacity=settings.capacity,
        storage_url=settings.storage_url,
        outbox_destinations=tuple(settings.outbox_destinations),
        coordinator_resource=settings.coordinator_resource,
        coordinator=settings.coordinator_options(),
        program=settings.program_options(),
    )
    try:
        actor = ray_backend.start_coordinator(options)
        ray.get(actor.ping.remote(), timeout=60.0)
    except BaseException:
        leases.db.close()
        raise
    return RayClusterHandle(settings, actor, leases)


def start_cluster(
    settings: ClusterSettings,
    cameras: Sequence[CameraConfig | CameraSpec] = (),
    *,
    delivery: DeliveryConfig | None = None,
    mqtt: MqttSinkConfig | None = None,
    kafka: KafkaSinkConfig | None = None,
) -> ClusterHandle:
    """Start (or join) the cluster of ``settings.backend`` and put ``cameras`` in its desired
    set (kept across restarts in the database; cameras already there stay). With ``delivery``
    every commit also gets its ``viid`` outbox row (as on a single node), and this process
    delivers the cluster's outbox — the upper platform's rows and, when subscriptions are
    enabled, the SubscribeNotifications (:mod:`sharpeyes.api.cluster.delivery`); with ``mqtt``
    / ``kafka`` every commit gets those rows too and this process publishes them.

    Raises:
        ConfigError: the Ray backend without Ray installed; a delivery secret not set.
        StoreError: the database cannot be opened or migrated.
    """
    wanted = [
        *([DESTINATION] if delivery is not None else []),
        *(["mqtt"] if mqtt is not None else []),  # sinks.mqtt.MQTT_DESTINATION
        *(["kafka"] if kafka is not None else []),  # sinks.kafka.KAFKA_DESTINATION
    ]
    missing = [d for d in wanted if d not in settings.outbox_destinations]
    if missing:
        both = [*settings.outbox_destinations, *missing]
        settings = settings.model_copy(update={"outbox_destinations": both})
    handle: ClusterHandle
    handle = _start_ray(settings) if settings.backend == "ray" else _start_local(settings)
    try:
        if delivery is not None:
            handle.attach_delivery(start_cluster_delivery(settings, delivery, handle.device_ids))
        if mqtt is not None or kafka is not None:
            handle.attach_sinks(*start_cluster_sinks(settings, mqtt, kafka))
        for cam in cameras:
            handle.add_camera(cam)
    except Exception:
        handle.stop()
        raise
    log.info("cluster (%s) started with %d configured cameras", settings.backend, len(cameras))
    return handle
