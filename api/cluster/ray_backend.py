"""The Ray backend: one detached ``GpuWorker`` actor per GPU slot, a detached coordinator actor.

Imported only when the Ray backend is selected (``pip install sharpeyes[cluster]``); nothing
else in sharpeyes imports Ray. Design and measurements: ``docs/SCALE_OUT.md``.

* Workers: detached (they survive a coordinator crash: an actor shares fate with its owner),
  ``max_restarts=0`` (the coordinator replaces them, not Ray), ``num_cpus=0``, one unit of the
  slot resource (``GPU`` in production, ``gpu_slot`` in tests), hard node affinity, uuid names
  carrying the node id (never reused). ``block()`` never returns: its ObjectRef is the death
  signal (``ActorDiedError``: declared dead; ``ActorUnavailableError``: connection broken — we
  move on both, the database fences a still-alive old owner).
* Coordinator: detached, named, ``max_restarts=-1``, pinned by a custom resource (the head).
  After a restart it re-adopts every worker by name, pending ones included.
* Uploader: detached, ``max_restarts=-1``; Ray restarts it elsewhere, its DB lease fences the
  zombie.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sharpeyes.api.cluster.backend import (
    Liveness,
    ProgramContext,
    ProgramOptions,
    Slot,
    WorkerCore,
    WorkerHandle,
)
from sharpeyes.api.cluster.coordinator import Coordinator, CoordinatorOptions
from sharpeyes.api.cluster.health import ClusterHealth, WorkerReport
from sharpeyes.api.cluster.leases import CameraSpec, LeaseStore
from sharpeyes.api.cluster.storage import open_storage
from sharpeyes.api.cluster.uploader import LeasedUploader
from sharpeyes.api.store.db import open_database
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.signal_input import GroupPhase, PhaseMessage, PhaseRejectedError

log = logging.getLogger(__name__)

NAMESPACE = "sharpeyes"
COORDINATOR_NAME = "sharpeyes-coordinator"
WORKER_PREFIX = "sharpeyes-w"
_STANDARD = {"CPU", "GPU", "memory", "object_store_memory", "accelerator_type"}


@dataclass(frozen=True, slots=True)
class RayOptions:
    """Everything the coordinator and workers need; picklable."""

    db_url: str
    slot_resource: str = "GPU"  # one worker per unit; "gpu_slot" in the simulated CI cluster
    capacity: float = 4.0  # cost units per worker (from the GPU benchmark)
    storage_url: str | None = None
    outbox_destinations: tuple[str, ...] = ()
    coordinator_resource: str | None = "head"  # custom resource pinning it to the head
    coordinator: CoordinatorOptions = field(default_factory=CoordinatorOptions)
    program: ProgramOptions = field(default_factory=ProgramOptions)


def _node_resources(node: dict[str, Any]) -> frozenset[str]:
    res: dict[str, float] = node.get("Resources", {})
    return frozenset(k for k in res if k not in _STANDARD and not k.startswith("node:"))


def _nodes() -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return nodes


class GpuWorker:
    """The actor body: a :class:`WorkerCore` with its own database connection."""

    def __init__(self, name: str, node: str, capacity: float, options: RayOptions) -> None:
        leases = LeaseStore(open_database(options.db_url), ensure_schema=False)
        storage = open_storage(options.storage_url) if options.storage_url else None
        ctx = ProgramContext(name, leases, storage, options.outbox_destinations, options.program)
        self.core = WorkerCore(name, node, capacity, ctx)

    def assign(self, spec: CameraSpec, epoch: int) -> bool:
        return self.core.assign(spec, epoch)

    def unassign(self, camera_id: str) -> None:
        self.core.unassign(camera_id)

    def tell_phase(self, camera_id: str, message: PhaseMessage) -> bool:
        return self.core.tell_phase(camera_id, message)

    def health(self) -> WorkerReport:
        return self.core.health()

    def block(self) -> None:
        threading.Event().wait()  # never returns; its failure is the death signal


class RayWorkerHandle:
    """The coordinator's side of one ``GpuWorker`` actor; :meth:`poll` never blocks."""

    def __init__(self, actor: Any, name: str, node: str, capacity: float) -> None:
        self.actor = actor
        self._name, self._node, self._capacity = name, node, capacity
        self._block = actor.block.remote()
        self._health = actor.health.remote()
        self._report: WorkerReport | None = None
        self._dead = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def node(self) -> str:
        return self._node

    @property
    def capacity(self) -> float:
        return self._capacity

    def assign(self, spec: CameraSpec, epoch: int) -> None:
        self.actor.assign.remote(spec, epoch)  # failures surface through block()

    def unassign(self, camera_id: str) -> None:
        self.actor.unassign.remote(camera_id)

    def tell_phase(self, camera_id: str, message: PhaseMessage) -> None:
        self.actor.tell_phase.remote(camera_id, message)  # in order after assign (one caller)

    def poll(self) -> tuple[Liveness, WorkerReport | None]:
        if self._dead:
            return Liveness.DEAD, self._report
        try:
            done, _ = ray.wait([self._block], timeout=0)
            if done:
                ray.get(self._block)
            done, _ = ray.wait([self._health], timeout=0)
            if done:
                self._report = ray.get(self._health)
                self._health = self.actor.health.remote()
        except RayError as e:  # ActorDiedError, ActorUnavailableError, scheduling failures
            log.warning("worker %s: %s", self._name, type(e).__name__)
            self._dead = True
            return Liveness.DEAD, self._report
        return (Liveness.READY if self._report else Liveness.PENDING), self._report

    def kill(self) -> None:
        self._dead = True
        try:
            ray.kill(self.actor, no_restart=True)
        except RayError as e:
            log.debug("kill %s: %s", self._name, e)


class RayBackend:
    """Spawns and finds ``GpuWorker`` actors; slots are the live nodes' slot resources."""

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self._remote = ray.remote(GpuWorker)

    def slots(self) -> list[Slot]:
        out = []
        for node in _nodes():
            count = int(node.get("Resources", {}).get(self.options.slot_resource, 0))
            if node.get("Alive") and count > 0:
                resources = _node_resources(node)
                out.append(Slot(str(node["NodeID"]), count, self.options.capacity, resources))
        return out

    def spawn(self, name: str, slot: Slot) -> WorkerHandle:
        actor = self._remote.options(
            name=name,
            namespace=NAMESPACE,
            lifetime="detached",
            max_restarts=0,
            max_concurrency=8,
            num_cpus=0,
            resources={self.options.slot_resource: 1},
            scheduling_strategy=NodeAffinitySchedulingStrategy(slot.node, soft=False),
        ).remote(name, slot.node, slot.capacity, self.options)
        return RayWorkerHandle(actor, name, slot.node, slot.capacity)

    def adopt(self) -> list[WorkerHandle]:
        alive = {str(n["NodeID"]) for n in _nodes() if n.get("Alive")}
        handles: list[WorkerHandle] = []
        for entry in ray.util.list_named_actors(all_namespaces=True):
            name = str(entry["name"])
            if entry["namespace"] != NAMESPACE or not name.startswith(WORKER_PREFIX + "-"):
                continue
            short = name.removeprefix(WORKER_PREFIX + "-").rsplit("-", 1)[0]
            node = next((n for n in alive if n.startswith(short)), short)
            try:
                actor = ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                continue  # died between the listing and the lookup
            handles.append(RayWorkerHandle(actor, name, node, self.options.capacity))
        log.info("adopted %d workers", len(handles))
        return handles

    def close(self) -> None:
        pass


class CoordinatorActor:
    """The actor body: a :class:`Coordinator` ticking in a thread, plus the public API."""

    def __init__(self, options: RayOptions) -> None:
        leases = LeaseStore(open_database(options.db_url))
        self.coordinator = Coordinator(leases, RayBackend(options), options.coordinator)
        self.coordinator.adopt()
        self._stop = threading.Event()
        threading.Thread(target=self.coordinator.run, args=(self._stop,), daemon=True).start()

    def ping(self) -> bool:
        return True

    def add_camera(self, spec: CameraSpec) -> None:
        self.coordinator.add_camera(spec)

    def remove_camera(self, camera_id: str) -> int:
        return self.coordinator.remove_camera(camera_id)

    def drain(self, node: str) -> int:
        return self.coordinator.drain(node)

    def tell_phase(
        self, message: PhaseMessage, camera_id: str | None, transport: str = "api"
    ) -> tuple[str | None, str | None, str | None]:
        """The coordinator's :meth:`~Coordinator.tell_phase`: (camera, None, None), or (None,
        the refusal's reason, its text)."""
        try:
            return self.coordinator.tell_phase(message, camera_id, transport), None, None
        except PhaseRejectedError as e:
            return None, e.reason, str(e)
        except ConfigError as e:
            return None, "refused", str(e)

    def phase_status(self, camera_id: str, now: int | None = None) -> list[GroupPhase] | None:
        return self.coordinator.phase_status(camera_id, now)

    def takes_phases(self, camera_id: str) -> bool:
        return bool(self.coordinator.phase_groups(camera_id))

    def health(self) -> ClusterHealth:
        return self.coordinator.health()


def start_coordinator(options: RayOptions) -> Any:
    """Create (or find) the detached coordinator actor; Ray must be initialised."""
    resources = {options.coordinator_resource: 0.01} if options.coordinator_resource else {}
    return (
        ray.remote(CoordinatorActor)
        .options(
            name=COORDINATOR_NAME,
            namespace=NAMESPACE,
            lifetime="detached",
            max_restarts=-1,
            max_task_retries=-1,
            max_concurrency=8,
            num_cpus=0,
            resources=resources,
            get_if_exists=True,
        )
        .remote(options)
    )


def connect(address: str = "auto", timeout_s: float = 30.0) -> Any:
    """From an API process: join the cluster and return the coordinator handle."""
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    actor = ray.get_actor(COORDINATOR_NAME, namespace=NAMESPACE)
    try:
        ray.get(actor.ping.remote(), timeout=timeout_s)
    except GetTimeoutError as e:
        raise TimeoutError(f"coordinator did not answer within {timeout_s} s") from e
    return actor


class RayPoster:
    """Posts to a named receiver actor (tests, benchmark; production posts over HTTP)."""

    def __init__(self, receiver_name: str, timeout_s: float = 10.0) -> None:
        self.receiver = ray.get_actor(receiver_name, namespace=NAMESPACE)
        self.timeout_s = timeout_s

    def post(self, object_ids: list[str]) -> None:
        ray.get(self.receiver.post.remote(object_ids), timeout=self.timeout_s)


class UploaderActor:
    """A fenced uploader (:class:`LeasedUploader`) running in a thread of a detached actor."""

    def __init__(self, db_url: str, receiver_name: str, shard: str = "viid-0") -> None:
        holder = f"uploader@{ray.get_runtime_context().get_node_id()[:12]}"
        db = open_database(db_url)
        self.uploader = LeasedUploader(
            db, RayPoster(receiver_name), shard=shard, holder=holder, batch=20
        )
        self._stop = threading.Event()
        threading.Thread(target=self.uploader.run, args=(self._stop,), daemon=True).start()

    def node(self) -> str:
        return str(ray.get_runtime_context().get_node_id())

    def stats(self) -> tuple[int, bool]:
        return self.uploader.posted, self.uploader.fenced
