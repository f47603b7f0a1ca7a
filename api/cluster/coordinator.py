"""The coordinator: the desired camera set and leases in the store, workers from a backend.

It keeps no state of its own that matters: the desired set, epochs, owners and positions live
in the database (:class:`~api.cluster.leases.LeaseStore`), so a restarted coordinator re-adopts
the existing workers (pending ones too) and carries on. Each :meth:`Coordinator.tick`:

1. polls every worker (non-blocking); a dead or unreachable one is dropped, killed, and its
   name marked dead (names are uuid-based and never reused);
2. spawns one worker per free slot (one per GPU) the backend reports;
3. re-syncs ready workers with the database (a camera granted but missing from the worker's
   report is granted again; a camera the worker runs under an old epoch is unassigned);
4. places every desired camera without a live owner on the least-loaded ready worker with
   room (cost units, custom-resource constraints); healthy cameras are sticky;
5. moves cameras off draining workers, and optionally a few per tick to rebalance.

Every move is a database operation first (:meth:`LeaseStore.grant` bumps the epoch), then the
worker is told; any older owner is fenced by the database even if it never hears about it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from sharpeyes.api.cluster.backend import Liveness, Slot, WorkerBackend, WorkerHandle
from sharpeyes.api.cluster.health import ClusterHealth, WorkerReport, WorkerSummary, merge
from sharpeyes.api.cluster.leases import CameraRow, CameraSpec, LeaseStore, StaleLeaseError
from sharpeyes.pipeline.clock import now_ms
from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.signal_input import (
    DEFAULT_EXTERNAL_TIMEOUT_S,
    GroupPhase,
    HeardPhase,
    PhaseMessage,
    route_phase,
)
from sharpeyes.pipeline.types import LampColor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CoordinatorOptions:
    name_prefix: str = "sharpeyes-w"
    pending_timeout_s: float = 30.0  # a worker never answering is given up (pitfall 4)
    resync_grace_s: float = 2.0  # a grant younger than this may be missing from a report
    rebalance_per_tick: int = 0  # 0: off; else move at most this many cameras per tick
    rebalance_min_gap: float = 0.25  # load-fraction gap between two workers worth a move
    tick_s: float = 0.25


@dataclass
class _Worker:
    handle: WorkerHandle
    resources: frozenset[str]
    state: Liveness = Liveness.PENDING
    since: float = field(default_factory=time.monotonic)
    report: WorkerReport | None = None
    draining: bool = False


class Coordinator:
    """Reconciles the desired camera set with live workers; thread-safe."""

    def __init__(
        self, leases: LeaseStore, backend: WorkerBackend, options: CoordinatorOptions | None = None
    ) -> None:
        self.leases = leases
        self.backend = backend
        self.options = options or CoordinatorOptions()
        self._workers: dict[str, _Worker] = {}
        self._granted_at: dict[str, float] = {}
        self._drained_nodes: set[str] = set()
        self._lock = threading.RLock()
        self._health = ClusterHealth((), (), now_ms())
        # the latest external phase per (camera, group), replayed to a camera's next owner
        self._phases: dict[tuple[str, str], PhaseMessage] = {}
        self._heard: dict[tuple[str, str], HeardPhase] = {}  # how the latest came (read-back)

    # --- public API ----------------------------------------------------------------------

    def adopt(self) -> int:
        """Take over the workers that already exist (after a restart); returns how many."""
        draining = {w.name for w in self.leases.workers() if w.state == "draining"}
        with self._lock:
            for handle in self.backend.adopt():
                if handle.name not in self._workers:
                    w = _Worker(handle, frozenset(), draining=handle.name in draining)
                    self._workers[handle.name] = w
            return len(self._workers)

    def add_camera(self, spec: CameraSpec) -> None:
        """Add (or update) a camera; it is placed on the next tick."""
        self.leases.put_camera(spec)

    def remove_camera(self, camera_id: str) -> int:
        """Fence and stop a camera; no commit of it succeeds once this returns."""
        with self._lock:
            row = self.leases.camera(camera_id)
            epoch = self.leases.remove_camera(camera_id)
            for key in [k for k in self._phases if k[0] == camera_id]:
                del self._phases[key]
                self._heard.pop(key, None)
            owner = None if row is None or row.owner is None else self._workers.get(row.owner)
            if owner is not None:
                owner.handle.unassign(camera_id)
        return epoch

    def phase_groups(self, camera_id: str) -> list[str]:
        """The camera's signal groups that take external phases ([] for none or no camera)."""
        from sharpeyes.api.cluster.pipeline_program import external_phase_groups

        row = self.leases.camera(camera_id)
        if row is None or not row.desired:
            return []
        return external_phase_groups(row.spec)

    def phase_takers(self) -> dict[str, frozenset[str] | None]:
        """Camera → its external signal groups, for the cameras that take external phases."""
        takers: dict[str, frozenset[str] | None] = {}
        for row in self.leases.cameras():
            if row.desired and (groups := self.phase_groups(row.spec.camera_id)):
                takers[row.spec.camera_id] = frozenset(groups)
        return takers

    def tell_phase(
        self, message: PhaseMessage, camera_id: str | None = None, transport: str = "api"
    ) -> str:
        """Deliver an external signal phase to whichever worker runs the camera now, and keep
        it for the camera's next owner (failover, rebalance), so a moved camera does not lose
        the current phase. A message without a time is stamped with its arrival (``wall_ms``).
        Routed like every phase message (:func:`~sharpeyes.pipeline.signal_input.route_phase`);
        returns the camera.

        Raises:
            PhaseRejectedError: an unknown camera or signal group, or no camera named while the
                group is on several cameras.
        """
        cam = route_phase(message, camera_id, self.phase_takers())
        at = now_ms()
        if message.wall_ms is None and message.pts is None:
            message = message.model_copy(update={"wall_ms": at})
        message = message.model_copy(update={"camera": cam})
        with self._lock:
            self._phases[(cam, message.group)] = message
            self._heard[(cam, message.group)] = HeardPhase(
                message.color, message.wall_ms, message.pts, at, transport
            )
            row = self.leases.camera(cam)
            owner = None if row is None or row.owner is None else self._workers.get(row.owner)
            if owner is not None:
                owner.handle.tell_phase(cam, message)
        return cam

    def phase_status(self, camera_id: str, now: int | None = None) -> list[GroupPhase] | None:
        """The latest phase told per external group of the camera (what its worker was given;
        UNKNOWN once older than the group's ``external_timeout_s``); None when it takes none."""
        from sharpeyes.api.cluster.pipeline_program import parse_camera

        groups = self.phase_groups(camera_id)
        if not groups:
            return None
        row = self.leases.camera(camera_id)
        timeouts: dict[str, float] = {}
        if row is not None:
            cal = parse_camera(row.spec).intersection
            timeouts = {g.id: g.external_timeout_s for g in (cal.signal_groups if cal else [])}
        at = now_ms() if now is None else now
        out = []
        with self._lock:
            heard = {g: self._heard.get((camera_id, g)) for g in groups}
        for g in sorted(groups):
            last = heard[g]
            timeout = timeouts.get(g, DEFAULT_EXTERNAL_TIMEOUT_S)
            told = None if last is None else (last.wall_ms or last.received_ms)
            stale = told is not None and timeout > 0 and at - told > timeout * 1000
            color = LampColor.UNKNOWN if last is None or stale else last.color
            since = None if color is LampColor.UNKNOWN or last is None else last.wall_ms
            out.append(
                GroupPhase(g, color, since, stale, timeout, None, int(last is not None), last)
            )
        return out

    def _replay_phases(self, camera_id: str, handle: WorkerHandle) -> None:
        for (cam, _), message in list(self._phases.items()):
            if cam == camera_id:
                handle.tell_phase(cam, message)

    def drain(self, node: str) -> int:
        """Move every camera off ``node`` and spawn no worker there; returns workers drained."""
        with self._lock:
            self._drained_nodes.add(node)
            drained = [w for w in self._workers.values() if w.handle.node == node]
            for w in drained:
                w.draining = True
                self.leases.set_worker_state(w.handle.name, "draining")
        return len(drained)

    def health(self) -> ClusterHealth:
        return self._health

    def workers(self) -> dict[str, Liveness]:
        with self._lock:
            return {name: w.state for name, w in self._workers.items()}

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; a failing tick is logged and retried."""
        while not stop.is_set():
            try:
                self.tick()
            except StoreError as e:
                log.warning("coordinator tick failed: %s", e)
            stop.wait(self.options.tick_s)

    # --- reconcile -----------------------------------------------------------------------

    def tick(self) -> None:
        with self._lock:
            self._poll()
            self._ensure_workers()
            rows = [r for r in self.leases.cameras() if r.desired]
            self._resync(rows)
            rows = [r for r in self.leases.cameras() if r.desired]
            self._place(rows)
            if self.options.rebalance_per_tick > 0:
                self._rebalance([r for r in self.leases.cameras() if r.desired])
            self._snapshot()

    def _poll(self) -> None:
        now = time.monotonic()
        for name, w in list(self._workers.items()):
            state, report = w.handle.poll()
            if report is not None:
                w.report = report
            if state == Liveness.PENDING and now - w.since > self.options.pending_timeout_s:
                log.warning("worker %s still pending after %.0f s; giving up", name, now - w.since)
                state = Liveness.DEAD
            if state == Liveness.DEAD:
                log.warning("worker %s on %s is dead; its cameras move", name, w.handle.node)
                del self._workers[name]
                w.handle.kill()
                self.leases.set_worker_state(name, "dead")
            elif state == Liveness.READY and w.state != Liveness.READY:
                w.state = Liveness.READY
                if not w.draining:
                    self.leases.set_worker_state(name, "ready")

    def _ensure_workers(self) -> None:
        for slot in self.backend.slots():
            if slot.node in self._drained_nodes:
                continue
            here = [w for w in self._workers.values() if w.handle.node == slot.node]
            for w in here:
                w.resources = slot.resources
            for _ in range(slot.count - len(here)):
                self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        name = f"{self.options.name_prefix}-{slot.node[:12]}-{uuid.uuid4().hex[:8]}"
        while self.leases.worker_name_used(name):  # never reuse a name (pitfall 5)
            name = f"{self.options.name_prefix}-{slot.node[:12]}-{uuid.uuid4().hex[:8]}"
        self.leases.register_worker(name, slot.node, slot.capacity)
        handle = self.backend.spawn(name, slot)
        self._workers[name] = _Worker(handle, slot.resources)
        log.info("spawned worker %s on %s (capacity %.2f)", name, slot.node, slot.capacity)

    def _resync(self, rows: list[CameraRow]) -> None:
        now = time.monotonic()
        for w in self._workers.values():
            if w.state != Liveness.READY or w.report is None:
                continue
            running = {c.camera_id: c for c in w.report.cameras}
            for row in rows:
                cam = row.spec.camera_id
                if row.owner != w.handle.name:
                    continue
                status = running.get(cam)
                fresh = now - self._granted_at.get(cam, 0.0) > self.options.resync_grace_s
                if fresh and (status is None or status.epoch < row.epoch):
                    self._move(row, w, why="missing on its worker")
            owned = {r.spec.camera_id: r for r in rows if r.owner == w.handle.name}
            for cam, st in running.items():
                mine = owned.get(cam)
                if mine is None or st.epoch < mine.epoch:
                    w.handle.unassign(cam)

    def _load(self, rows: list[CameraRow]) -> dict[str, float]:
        load = dict.fromkeys(self._workers, 0.0)
        for r in rows:
            if r.owner in load:
                load[r.owner] += r.spec.cost
        return load

    def _candidates(self, spec: CameraSpec, load: dict[str, float]) -> list[_Worker]:
        ok = [
            w
            for w in self._workers.values()
            if w.state == Liveness.READY
            and not w.draining
            and load[w.handle.name] + spec.cost <= w.handle.capacity + 1e-9
            and (spec.resource is None or spec.resource in w.resources)
        ]
        return sorted(ok, key=lambda w: (load[w.handle.name] / w.handle.capacity, w.handle.name))

    def _place(self, rows: list[CameraRow]) -> None:
        load = self._load(rows)
        homeless = [
            r
            for r in rows
            if r.owner not in self._workers
            or (self._workers[r.owner].draining and self._workers[r.owner].state == Liveness.READY)
        ]
        for row in sorted(homeless, key=lambda r: (-r.spec.cost, r.spec.camera_id)):
            if row.owner in load:
                load[row.owner] -= row.spec.cost
            targets = self._candidates(row.spec, load)
            if not targets:
                if row.owner is not None and row.owner not in self._workers:
                    self._unassign_in_db(row)
                continue
            self._move(row, targets[0], why="placed")
            load[targets[0].handle.name] += row.spec.cost

    def _unassign_in_db(self, row: CameraRow) -> None:
        """No room anywhere: fence the dead owner and show the camera UNASSIGNED."""
        try:
            self.leases.grant(row.spec.camera_id, None, expect_epoch=row.epoch)
        except StaleLeaseError:
            return
        log.warning("camera %s is unassigned: no worker has room", row.spec.camera_id)

    def _move(self, row: CameraRow, target: _Worker, *, why: str) -> None:
        cam = row.spec.camera_id
        try:
            lease = self.leases.grant(cam, target.handle.name, expect_epoch=row.epoch)
        except StaleLeaseError:
            return  # someone else moved it; the next tick sees the new state
        old = self._workers.get(row.owner) if row.owner else None
        if old is not None and old is not target:
            old.handle.unassign(cam)
        target.handle.assign(row.spec, lease.epoch)
        self._replay_phases(cam, target.handle)
        self._granted_at[cam] = time.monotonic()
        log.info("camera %s -> %s at epoch %d (%s)", cam, target.handle.name, lease.epoch, why)

    def _rebalance(self, rows: list[CameraRow]) -> None:
        for _ in range(self.options.rebalance_per_tick):
            load = self._load(rows)
            ready = [
                w for w in self._workers.values() if w.state == Liveness.READY and not w.draining
            ]
            if len(ready) < 2:
                return
            ready.sort(key=lambda w: load[w.handle.name] / w.handle.capacity)
            low, high = ready[0], ready[-1]
            gap = (
                load[high.handle.name] / high.handle.capacity
                - load[low.handle.name] / low.handle.capacity
            )
            movable = [
                r
                for r in rows
                if r.owner == high.handle.name and r.spec.cost <= gap * low.handle.capacity
            ]
            fits = [r for r in movable if low in self._candidates(r.spec, load)]
            if gap < self.options.rebalance_min_gap or not fits:
                return
            self._move(fits[0], low, why="rebalance")
            rows = [r for r in self.leases.cameras() if r.desired]

    def _snapshot(self) -> None:
        rows = self.leases.cameras()
        load = self._load([r for r in rows if r.desired])
        reports = {n: w.report for n, w in self._workers.items() if w.report is not None}
        summaries = [
            WorkerSummary(
                name=n,
                node=w.handle.node,
                state="draining" if w.draining else str(w.state),
                capacity=w.handle.capacity,
                load=load.get(n, 0.0),
            )
            for n, w in sorted(self._workers.items())
        ]
        self._health = merge(rows, reports, summaries, now_ms())
