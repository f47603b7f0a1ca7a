"""The embedded default backend: workers are threads in this process, no Ray, nothing to install.

One :class:`~api.cluster.backend.WorkerCore` per configured GPU slot, all on node ``local``.
The coordinator, the lease/epoch SQL and the outbox are the same as in the Ray mode; only
where workers live differs. :class:`LocalCluster` wires a coordinator loop onto it.
"""

from __future__ import annotations

import logging
import threading

from sharpeyes.api.cluster.backend import (
    Liveness,
    ProgramContext,
    ProgramOptions,
    Slot,
    WorkerCore,
    WorkerHandle,
)
from sharpeyes.api.cluster.coordinator import Coordinator, CoordinatorOptions
from sharpeyes.api.cluster.health import WorkerReport
from sharpeyes.api.cluster.leases import CameraSpec, LeaseStore
from sharpeyes.api.cluster.storage import EvidenceStorage
from sharpeyes.pipeline.signal_input import PhaseMessage

log = logging.getLogger(__name__)

LOCAL_NODE = "local"


class LocalWorkerHandle:
    """A worker running in this process; dead only once killed."""

    def __init__(self, core: WorkerCore) -> None:
        self.core = core
        self._dead = False

    @property
    def name(self) -> str:
        return self.core.name

    @property
    def node(self) -> str:
        return self.core.node

    @property
    def capacity(self) -> float:
        return self.core.capacity

    def assign(self, spec: CameraSpec, epoch: int) -> None:
        if not self._dead:
            self.core.assign(spec, epoch)

    def unassign(self, camera_id: str) -> None:
        if not self._dead:
            self.core.unassign(camera_id)

    def tell_phase(self, camera_id: str, message: PhaseMessage) -> None:
        if not self._dead:
            self.core.tell_phase(camera_id, message)

    def poll(self) -> tuple[Liveness, WorkerReport | None]:
        if self._dead:
            return Liveness.DEAD, None
        return Liveness.READY, self.core.health()

    def kill(self) -> None:
        if not self._dead:
            self._dead = True
            self.core.stop()


class LocalBackend:
    """``workers`` in-process workers (one per GPU) of ``capacity`` cost units each."""

    def __init__(
        self,
        leases: LeaseStore,
        *,
        workers: int = 1,
        capacity: float = 4.0,
        storage: EvidenceStorage | None = None,
        outbox_destinations: tuple[str, ...] = (),
        resources: frozenset[str] = frozenset(),
        program_options: ProgramOptions | None = None,
    ) -> None:
        self.leases = leases
        self.program_options = program_options or ProgramOptions()
        self.workers = workers
        self.capacity = capacity
        self.storage = storage
        self.outbox_destinations = outbox_destinations
        self.resources = resources
        self.handles: list[LocalWorkerHandle] = []

    def slots(self) -> list[Slot]:
        return [Slot(LOCAL_NODE, self.workers, self.capacity, self.resources)]

    def spawn(self, name: str, slot: Slot) -> LocalWorkerHandle:
        ctx = ProgramContext(
            name, self.leases, self.storage, self.outbox_destinations, self.program_options
        )
        handle = LocalWorkerHandle(WorkerCore(name, slot.node, slot.capacity, ctx))
        self.handles.append(handle)
        return handle

    def adopt(self) -> list[WorkerHandle]:
        return []  # workers die with this process; the DB epochs fence anything left over

    def close(self) -> None:
        for h in self.handles:
            h.kill()


class LocalCluster:
    """Coordinator + local backend + the coordinator loop thread (the one-machine setup)."""

    def __init__(
        self,
        leases: LeaseStore,
        backend: LocalBackend,
        options: CoordinatorOptions | None = None,
    ) -> None:
        self.backend = backend
        self.coordinator = Coordinator(leases, backend, options)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.coordinator.run, args=(self._stop,), name="coordinator", daemon=True
        )

    def start(self) -> LocalCluster:
        self.coordinator.adopt()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        self.backend.close()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
