"""The worker backend protocol and the worker runtime shared by every backend.

A *backend* creates workers (one per GPU) and tells the coordinator when one dies:
:class:`WorkerBackend` ``spawn/adopt/slots`` and, per worker, :class:`WorkerHandle`
``assign/unassign/poll/kill``. ``api.cluster.local`` runs workers in this process (the embedded
default, nothing to install); ``sharpeyes.api.cluster.ray_backend`` runs them as Ray actors.

Inside every worker, whatever the backend, a :class:`WorkerCore` runs one
:class:`CameraProgram` per assigned camera. A program holds a :class:`~api.cluster.leases.Lease`
and commits through :meth:`~api.cluster.leases.LeaseStore.commit`, so a stale owner is rejected
by the database and stops that camera. Program kinds are a registry
(:func:`register_program`); ``synthetic`` (a deterministic fake camera) and ``pipeline`` (a real
sharpeyes camera, :mod:`sharpeyes.api.cluster.pipeline_program`) are built in.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sharpeyes.api.cluster.health import CameraStatus, WorkerReport
from sharpeyes.api.cluster.leases import CameraSpec, Lease, LeaseStore
from sharpeyes.api.cluster.storage import EvidenceStorage
from sharpeyes.pipeline.clock import now_ms
from sharpeyes.pipeline.errors import ConfigError
from sharpeyes.pipeline.signal_input import PhaseHub, PhaseMessage

log = logging.getLogger(__name__)

_EARLY_PHASES_KEPT = 32  # per camera, phases that came before its assignment


class Liveness(enum.StrEnum):
    PENDING = "pending"  # created, not answering yet (scheduling, starting up)
    READY = "ready"
    DEAD = "dead"  # died, unreachable, or its node was declared dead


@dataclass(frozen=True, slots=True)
class Slot:
    """Room for ``count`` workers on ``node``, each declaring ``capacity`` cost units;
    ``resources`` are the node's custom resources cameras may require (``zone_a``)."""

    node: str
    count: int
    capacity: float
    resources: frozenset[str] = frozenset()


class WorkerHandle(Protocol):
    """The coordinator's handle on one worker."""

    @property
    def name(self) -> str: ...

    @property
    def node(self) -> str: ...

    @property
    def capacity(self) -> float: ...

    def assign(self, spec: CameraSpec, epoch: int) -> None:
        """Ask the worker to run ``spec`` under ``epoch`` (already granted in the database)."""
        ...

    def unassign(self, camera_id: str) -> None: ...

    def tell_phase(self, camera_id: str, message: PhaseMessage) -> None:
        """Hand an external signal phase to the camera's program (without blocking)."""
        ...

    def poll(self) -> tuple[Liveness, WorkerReport | None]:
        """Liveness and the latest health report, without blocking."""
        ...

    def kill(self) -> None: ...


class WorkerBackend(Protocol):
    """Creates workers where there is room and finds existing ones after a restart."""

    def slots(self) -> list[Slot]: ...

    def spawn(self, name: str, slot: Slot) -> WorkerHandle: ...

    def adopt(self) -> list[WorkerHandle]:
        """Workers that already exist (a coordinator restart), pending ones included."""
        ...

    def close(self) -> None: ...


class CameraProgram(Protocol):
    """One camera running inside a worker under one lease."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> CameraStatus: ...


@dataclass(frozen=True, slots=True)
class ProgramOptions:
    """Tuning shared by the camera programs of a worker (picklable, for Ray workers too).

    ``commit_every_s``: the longest a program batches frames before a fenced commit (0: every
    analysed frame). ``replay_s``: how much video before the committed position a new owner
    re-analyses with emission suppressed to rebuild track state (None: from the start of a
    file, which reproduces the previous owner's event ids exactly). ``files_root``: where crops
    and red-light evidence folders are written (a mount every node shares, in a cluster).
    """

    commit_every_s: float = 0.5
    replay_s: float | None = None
    files_root: str | None = None


@dataclass(frozen=True, slots=True)
class ProgramContext:
    worker: str
    leases: LeaseStore
    storage: EvidenceStorage | None = None
    outbox_destinations: tuple[str, ...] = ()
    options: ProgramOptions = field(default_factory=ProgramOptions)
    phases: PhaseHub = field(default_factory=PhaseHub)  # external signal phases, per camera


ProgramFactory = Callable[[CameraSpec, Lease, ProgramContext], CameraProgram]

_PROGRAMS: dict[str, ProgramFactory] = {}


def register_program(kind: str, factory: ProgramFactory) -> None:
    """Make camera ``kind`` runnable in workers (register it at import of your module)."""
    _PROGRAMS[kind] = factory


def program_factory(kind: str) -> ProgramFactory:
    """The factory for ``kind``.

    Raises:
        ConfigError: no program of that kind is registered.
    """
    if kind == "synthetic" and kind not in _PROGRAMS:
        from sharpeyes.api.cluster.synthetic import SyntheticCamera

        register_program("synthetic", SyntheticCamera)
    if kind == "pipeline" and kind not in _PROGRAMS:
        from sharpeyes.api.cluster.pipeline_program import PipelineCamera

        register_program("pipeline", PipelineCamera)
    try:
        return _PROGRAMS[kind]
    except KeyError as e:
        raise ConfigError(f"camera kind {kind!r} is not one of {sorted(_PROGRAMS)}") from e


@dataclass
class WorkerCore:
    """The cameras of one worker (one GPU): programs started and stopped on lease grants."""

    name: str
    node: str
    capacity: float
    context: ProgramContext
    _programs: dict[str, CameraProgram] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # phases that arrived before their camera's program (Ray calls may overtake an assign)
    _early: dict[str, list[PhaseMessage]] = field(default_factory=dict)

    def assign(self, spec: CameraSpec, epoch: int) -> bool:
        """Start ``spec`` if the database says this worker holds ``epoch``; False otherwise."""
        lease = self.context.leases.current(spec.camera_id)
        if lease is None or lease.epoch != epoch or lease.owner != self.name:
            log.warning("%s: stale assign of %s@%d ignored", self.name, spec.camera_id, epoch)
            return False
        program = program_factory(spec.kind)(spec, lease, self.context)
        with self._lock:
            old = self._programs.pop(spec.camera_id, None)
            self._programs[spec.camera_id] = program
        if old is not None:
            old.stop()
        with self._lock:
            early = self._early.pop(spec.camera_id, [])
        for message in early:
            self.tell_phase(spec.camera_id, message)
        program.start()
        log.info(
            "%s: running %s at epoch %d from position %d",
            self.name,
            spec.camera_id,
            epoch,
            lease.pos,
        )
        return True

    def unassign(self, camera_id: str) -> None:
        with self._lock:
            program = self._programs.pop(camera_id, None)
        if program is not None:
            program.stop()
        with self._lock:
            self._early.pop(camera_id, None)
        self.context.phases.remove(camera_id)

    def tell_phase(self, camera_id: str, message: PhaseMessage) -> bool:
        """Give a phase to the camera's external input (created by its program when it was
        assigned). One that comes before the assignment is kept for it (False)."""
        if not self.context.phases.takes(camera_id):
            with self._lock:
                kept = self._early.setdefault(camera_id, [])
                kept.append(message)
                del kept[:-_EARLY_PHASES_KEPT]
            return False
        try:
            self.context.phases.apply(message, camera_id)
        except ConfigError as e:  # the coordinator checked the group; a config race
            log.warning("%s: phase for %s refused: %s", self.name, camera_id, e)
            return False
        return True

    def health(self) -> WorkerReport:
        with self._lock:
            programs = list(self._programs.values())
        return WorkerReport(
            name=self.name,
            node=self.node,
            capacity=self.capacity,
            cameras=tuple(p.status() for p in programs),
            at_ms=now_ms(),
        )

    def stop(self) -> None:
        with self._lock:
            programs, self._programs = list(self._programs.values()), {}
        for p in programs:
            p.stop()
