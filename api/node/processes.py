"""The process layout of a node: one worker process per GPU (or per group of cameras), each
owning its cameras end to end, under a parent that aggregates and restarts them.

Start-up: plan the workers (:mod:`api.node.plan`) → apply the store's migrations once → spawn
one process per plan (:func:`sharpeyes.api.node.worker.worker_main`: its own NodeRuntime — decoder,
detector, batcher, trackers, rules, evidence — writing into the shared store) → the parent
serves the aggregated Prometheus metrics and runs delivery → wait → SIGTERM every worker
(each flushes its open tracks) → stop.

:class:`NodeFacade` is what the parent shows: ``health()`` (camera → CameraHealth of every
worker, the last known values marked ``backoff``/``failed`` while a worker is down),
``batcher_stats()`` and ``latencies_ms()`` summed over workers (so :func:`prom.build_registry`
exports it like a single runtime) plus per-worker gauges. A monitor thread drains the workers'
pipes (one per worker: a killed worker cannot wedge the others) and restarts a dead worker with
exponential backoff inside ``node.restart_budget`` per 5 minutes; beyond it its cameras are
``failed`` and it is retried every minute. Workers are spawned, not forked (no threads or CUDA
state are inherited), and stop by themselves when the parent dies.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from sharpeyes.api.node.camera import external_groups
from sharpeyes.api.node.health import CameraHealth
from sharpeyes.api.node.plan import (
    WorkerPlan,
    WorkersArg,
    count_gpus,
    phase_routes,
    plan_workers,
)
from sharpeyes.api.node.process_metrics import node_registry, sum_batcher_stats
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.api.node.worker import WorkerReport, WorkerSpec, worker_main
from sharpeyes.api.sinks.started import EventSinks
from sharpeyes.pipeline.batcher import BatcherStats
from sharpeyes.pipeline.restart import RestartBudget, RetryPolicy
from sharpeyes.pipeline.signal_input import PhaseCountsSnapshot, PhaseRelay, UdpPhaseListener

if TYPE_CHECKING:
    from sharpeyes.api.node.prom import MetricsServer
    from sharpeyes.api.store.events import EventStore
    from sharpeyes.api.viid.delivery import Delivery

logger = logging.getLogger(__name__)

BUDGET_WINDOW_S = 300.0
BACKOFF_MAX_S = 60.0
FAILED_RETRY_S = 60.0
MONITOR_PERIOD_S = 0.2
DOWN_STATES = {"starting": "connecting", "backoff": "backoff", "failed": "failed"}


@dataclass
class WorkerHandle:
    """The parent's view of one worker slot (its process changes on every restart)."""

    plan: WorkerPlan
    generation: int = 0
    process: BaseProcess | None = None
    conn: Connection | None = None
    state: str = "starting"  # starting / running / backoff / failed / finished / stopped
    report: WorkerReport | None = None  # newest of the current generation
    last_health: dict[str, CameraHealth] = field(default_factory=dict)
    restarts: int = 0
    budget: RestartBudget | None = None  # created by the facade from the node's policy
    next_start: float | None = None
    last_error: str | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid


class NodeFacade:
    """Worker processes of one node, and their aggregated health (see module docstring)."""

    def __init__(self, config: ServiceConfig, plans: Sequence[WorkerPlan]) -> None:
        self.config = config
        node = config.node
        policy = RetryPolicy(
            backoff_initial_s=node.restart_backoff_s,
            backoff_max_s=BACKOFF_MAX_S,
            jitter=0.0,
            restart_budget=node.restart_budget,
            restart_window_s=BUDGET_WINDOW_S,
            failed_retry_s=FAILED_RETRY_S,
        )
        self.handles = [WorkerHandle(p, budget=RestartBudget(policy)) for p in plans]
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self._stopping = False
        self._monitor: threading.Thread | None = None
        self._log_level = logging.getLogger().getEffectiveLevel()
        self._relay: PhaseRelay | None = None
        self._relay_listener: UdpPhaseListener | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> NodeFacade:
        """Spawn every worker and the monitor thread (and the phase relay when configured)."""
        phase = self.config.phase_input
        if phase.udp_port is not None:
            plans = [h.plan for h in self.handles]
            groups = {c.id: external_groups(c) for p in plans for c in p.config.cameras}
            self._relay = PhaseRelay(phase_routes(plans), groups)
            self._relay_listener = UdpPhaseListener(self._relay, phase.udp_host, phase.udp_port)
            self._relay_listener.start()
        with self._lock:
            for h in self.handles:
                self._spawn(h)
        self._monitor = threading.Thread(target=self._watch, name="node-monitor", daemon=True)
        self._monitor.start()
        return self

    def _spawn(self, h: WorkerHandle) -> None:
        h.generation += 1
        spec = WorkerSpec(
            h.plan.index, h.generation, h.plan.gpu, h.plan.config, os.getpid(), self._log_level
        )
        receive, send = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=worker_main, args=(spec, send), name=f"sharpeyes-worker-{h.plan.index}"
        )
        process.start()
        send.close()  # the child holds its copy; EOF here once the child is gone
        h.process, h.conn, h.report = process, receive, None
        h.state, h.next_start = "starting", None
        logger.info(
            "worker %d (gen %d, pid %s, gpu %s): %s",
            h.plan.index,
            h.generation,
            process.pid,
            h.plan.gpu,
            ",".join(h.plan.camera_ids),
        )

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM every worker, wait for them to flush, kill the ones that do not stop."""
        timeout = self.config.node.stop_timeout_s if timeout_s is None else timeout_s
        if self._relay_listener is not None:
            self._relay_listener.close()
        if self._relay is not None:
            self._relay.close()
        with self._lock:
            self._stopping = True
            running = [h for h in self.handles if h.process is not None]
            for h in running:
                assert h.process is not None
                h.process.terminate()
        deadline = time.monotonic() + timeout
        for h in running:
            assert h.process is not None
            h.process.join(max(0.1, deadline - time.monotonic()))
            if h.process.is_alive():
                logger.warning("worker %d did not stop in %.0f s; killing", h.plan.index, timeout)
                h.process.kill()
                h.process.join(5)
        if self._monitor is not None:
            self._monitor.join(5)
        with self._lock:
            for h in self.handles:
                self._reap(h, time.monotonic())
                if h.state in ("starting", "backoff"):  # was waiting for its (re)start
                    h.state = "stopped"

    def phase_counts(self) -> PhaseCountsSnapshot | None:
        """The phase messages the parent's relay took (None: no UDP phase input)."""
        return None if self._relay is None else self._relay.counts.snapshot()

    def __enter__(self) -> NodeFacade:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- monitor ---------------------------------------------------------------------------

    def _watch(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                conns = [h.conn for h in self.handles if h.conn is not None]
            if conns:
                wait(conns, timeout=MONITOR_PERIOD_S)
            else:
                time.sleep(MONITOR_PERIOD_S)
            with self._lock:
                if self._stopping:
                    return
                now = time.monotonic()
                for h in self.handles:
                    self._tend(h, now)

    def _drain(self, h: WorkerHandle) -> None:
        """Read every report waiting on the worker's pipe (its conn is dropped at EOF)."""
        conn = h.conn
        try:
            while conn is not None and conn.poll():
                self._accept(h, conn.recv())
        except (EOFError, OSError):
            if conn is not None:
                conn.close()
            h.conn = None

    def _accept(self, h: WorkerHandle, report: object) -> None:
        if not isinstance(report, WorkerReport) or report.generation != h.generation:
            return
        h.report = report
        if report.error is not None:
            h.last_error = report.error
        if report.health:
            h.last_health = dict(report.health)
        if h.state == "starting" and not report.final and report.error is None:
            h.state = "running"

    def _tend(self, h: WorkerHandle, now: float) -> None:
        self._drain(h)
        if h.process is None:
            if h.next_start is not None and now >= h.next_start:
                self._spawn(h)
            return
        if not h.process.is_alive():
            self._reap(h, now)

    def _reap(self, h: WorkerHandle, now: float) -> None:
        """A worker process ended: note why, and plan its restart unless it was meant to end."""
        if h.process is None:
            return
        h.process.join(1)
        self._drain(h)
        code = h.process.exitcode
        h.process = None
        if h.conn is not None:
            h.conn.close()
            h.conn = None
        report = h.report
        if report is not None and report.final and report.finished:
            h.state = "finished"
        elif self._stopping:
            h.state = "stopped"
        else:
            h.report = None  # its cameras show the last known values, state forced
            self._crashed(h, code, now, None if report is None else report.error)

    def _crashed(
        self, h: WorkerHandle, code: int | None, now: float, error: str | None = None
    ) -> None:
        exited = f"worker {h.plan.index} (gen {h.generation}) exited with code {code}"
        h.last_error = exited if error is None else f"{exited}: {error}"
        h.restarts += 1
        assert h.budget is not None
        wait, spent = h.budget.failure(now)
        h.state, h.next_start = ("failed" if spent else "backoff"), now + wait
        logger.warning("%s; %s, next start in %.1f s", h.last_error, h.state, h.next_start - now)

    # -- aggregated view -------------------------------------------------------------------

    def health(self) -> dict[str, CameraHealth]:
        """Every camera of every worker (a down worker's cameras: last known, state forced)."""
        out: dict[str, CameraHealth] = {}
        with self._lock:
            for h in self.handles:
                out.update(_worker_health(h))
        return dict(sorted(out.items()))

    def batcher_stats(self) -> BatcherStats:
        """The workers' batcher counters summed (current processes only)."""
        with self._lock:
            stats = [h.report.batcher for h in self.handles if h.report is not None]
        return sum_batcher_stats(stats)

    def latencies_ms(self) -> dict[str, list[float]]:
        with self._lock:
            reports = [h.report for h in self.handles if h.report is not None]
        return {k: list(v) for r in reports for k, v in r.latencies_ms.items()}

    def event_counts(self) -> dict[str, dict[tuple[str, str], int]]:
        """Events stored per camera by (type, code), from the workers' latest reports.

        A restarted worker starts from zero again: the counts of a camera are its current
        worker process's (Prometheus ``rate()`` handles the reset)."""
        with self._lock:
            reports = [h.report for h in self.handles if h.report is not None]
        return {k: dict(v) for r in reports for k, v in r.event_counts.items()}

    def flow_latest(self) -> dict[str, dict[int, dict[str, object]]]:
        with self._lock:
            reports = [h.report for h in self.handles if h.report is not None]
        return {k: dict(v) for r in reports for k, v in r.flow.items()}

    def camera_ids(self) -> list[str]:
        return [cid for h in self.handles for cid in h.plan.camera_ids]

    def all_finished(self) -> bool:
        """True when every worker ended because all its cameras ended (files, no looping)."""
        with self._lock:
            return bool(self.handles) and all(h.state == "finished" for h in self.handles)

    def workers(self) -> list[WorkerHandle]:
        """The worker slots (read-only use; their fields change on the monitor thread)."""
        return list(self.handles)


def _worker_health(h: WorkerHandle) -> dict[str, CameraHealth]:
    report = h.report
    if report is not None and report.health:
        current = report.health
    else:
        forced = DOWN_STATES.get(h.state, h.state)
        current = {
            cid: replace(
                h.last_health.get(cid) or _empty_health(h.plan, cid),
                state=forced,
                input_fps=0.0,
                analysed_fps=0.0,
                last_error=h.last_error,
            )
            for cid in h.plan.camera_ids
        }
    return {k: replace(v, restarts=v.restarts + h.restarts) for k, v in current.items()}


def _empty_health(plan: WorkerPlan, camera_id: str) -> CameraHealth:
    from sharpeyes.streams.health import mask_url

    cam = next(c for c in plan.config.cameras if c.id == camera_id)
    return CameraHealth(
        camera_id=camera_id,
        url=mask_url(cam.url or ""),
        state="connecting",
        input_fps=0.0,
        analysed_fps=0.0,
        drops={},
        reconnects=0,
        last_frame_age_s=None,
        decode_errors=0,
        skew_ms=None,
    )


def _prepare_store(config: ServiceConfig) -> EventStore:
    """Open the shared store once in the parent (applies migrations before workers race)."""
    from sharpeyes.api.store.db import open_database
    from sharpeyes.api.store.events import EventStore

    config.store.files_root.mkdir(parents=True, exist_ok=True)
    return EventStore(open_database(config.store.url), config.store.files_root)


def _start_delivery(config: ServiceConfig, store: EventStore) -> Delivery | None:
    if config.delivery is None:
        return None
    from sharpeyes.api.viid.delivery import start_delivery

    return start_delivery(store, config.delivery, files_root=config.store.files_root)


def run_node(
    config: ServiceConfig,
    *,
    workers: WorkersArg | None = None,
    stop: threading.Event | None = None,
    gpus: int | None = None,
) -> int:
    """Run the node's cameras in worker processes until SIGTERM/SIGINT or ``stop``; exit code.

    ``workers`` overrides ``config.node.workers``; ``gpus`` overrides the GPU count (tests).
    Returns when stopped, or when every camera ended by itself (files without looping).

    Raises:
        ConfigError: bad worker count, or the metrics port is taken.
        StoreError: the shared store cannot be opened.
    """
    from sharpeyes.api.commands.run import say, started_line, stop_on_signals, summary_line
    from sharpeyes.api.node.runtime import DRAIN_AT_STOP_S, report_undelivered

    n_gpus = count_gpus() if gpus is None else gpus
    plans = plan_workers(config, workers or config.node.workers, n_gpus)
    stop = stop or threading.Event()
    facade = NodeFacade(config, plans)
    delivery: Delivery | None = None
    sinks = EventSinks()
    with stop_on_signals(stop):
        metrics = _serve_metrics(config, facade)
        store: EventStore | None = None
        try:
            store = _prepare_store(config)
            facade.start()
            ids = [c.id for c in config.cameras]
            say(started_line(ids, config.metrics.log_every_s, f" in {len(plans)} worker processes"))
            delivery = _start_delivery(config, store)
            sinks = EventSinks.start(store, config.mqtt, config.kafka)  # what workers queue
            _wait(facade, stop, config.metrics.log_every_s)
        finally:
            logger.info("stopping %d workers", len(plans))
            last = facade.health()
            facade.stop()  # each worker commits its cameras' last events before it exits
            undelivered: dict[str, int] = {}
            if delivery is not None:  # then what they committed is drained
                delivery.stop(drain_timeout_s=DRAIN_AT_STOP_S)
                undelivered["GA/T 1400"] = delivery.pending()
            sinks.stop(DRAIN_AT_STOP_S, undelivered)
            report_undelivered(undelivered)
            if store is not None:
                store.close()
            if metrics is not None:
                metrics.close()
    say(f"stopped: {summary_line(last)}")
    return 0


def _serve_metrics(config: ServiceConfig, facade: NodeFacade) -> MetricsServer | None:
    from sharpeyes.api.node.prom import MetricsServer, PhaseCollector
    from sharpeyes.pipeline.errors import ConfigError

    m = config.metrics
    if m.port is None:
        return None
    try:
        registry = node_registry(facade)
        registry.register(PhaseCollector(facade.phase_counts))  # the parent's phase relay
        return MetricsServer(registry, m.host, m.port)
    except OSError as e:
        raise ConfigError(f"metrics: cannot listen on {m.host}:{m.port}: {e.strerror or e}") from e


def _wait(facade: NodeFacade, stop: threading.Event, log_every_s: float) -> None:
    from sharpeyes.api.commands.run import say, summary_line

    last_log = time.monotonic()
    while not stop.wait(0.5):
        if facade.all_finished():
            say("every camera finished")
            return
        if log_every_s > 0 and time.monotonic() - last_log >= log_every_s:
            last_log = time.monotonic()
            say(f"health: {summary_line(facade.health())}")
