"""The body of one worker process of a node: a :class:`NodeRuntime` over its cameras.

The parent starts :func:`worker_main` in a fresh (spawned) process with the worker's config
and the sending end of a pipe. The worker sends a :class:`WorkerReport` (health of its cameras,
batcher counters, recent latencies) every ``node.report_every_s`` and a last one, marked
``final``, after it stopped. It stops on SIGTERM/SIGINT (every camera flushes its open tracks),
when all its cameras ended by themselves (files without looping: ``finished``), or when its
parent is gone. Delivery (the outbox sender) is left to the parent; the worker writes events
and outbox rows to the shared store.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from types import FrameType

from sharpeyes.api.node.health import CameraHealth
from sharpeyes.api.node.runtime import NodeRuntime
from sharpeyes.api.node.settings import ServiceConfig
from sharpeyes.pipeline.batcher import BatcherStats

logger = logging.getLogger(__name__)

LATENCY_SAMPLES = 512  # newest latency samples per camera sent to the parent


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker process is started with (pickled to the child)."""

    index: int
    generation: int
    gpu: int | None
    config: ServiceConfig
    parent_pid: int
    log_level: int = logging.INFO


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """One snapshot of a worker, sent to the parent."""

    index: int
    generation: int
    pid: int
    health: dict[str, CameraHealth]
    batcher: BatcherStats = field(default_factory=BatcherStats)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    event_counts: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    flow: dict[str, dict[int, dict[str, object]]] = field(default_factory=dict)
    detector_backend: str | None = None
    final: bool = False
    finished: bool = False
    error: str | None = None
    sent_at: float = field(default_factory=time.time)


def _report(
    spec: WorkerSpec, runtime: NodeRuntime, *, final: bool = False, finished: bool = False
) -> WorkerReport:
    latencies = {k: v[-LATENCY_SAMPLES:] for k, v in runtime.latencies_ms().items()}
    return WorkerReport(
        index=spec.index,
        generation=spec.generation,
        pid=os.getpid(),
        health=runtime.health(),
        batcher=_copy_stats(runtime.batcher_stats()),
        latencies_ms=latencies,
        event_counts=runtime.event_counts(),
        flow=runtime.flow_latest(),
        detector_backend=runtime.detector_backend,
        final=final,
        finished=finished,
    )


def _copy_stats(stats: BatcherStats) -> BatcherStats:
    """A snapshot the batcher thread does not mutate while it is pickled."""
    return replace(stats, by_stream=dict(stats.by_stream), batch_sizes=dict(stats.batch_sizes))


def _send(conn: Connection, report: WorkerReport) -> None:
    try:
        conn.send(report)
    except (OSError, ValueError) as e:  # the parent is gone or closed its end
        logger.debug("worker %d: report not sent: %s", report.index, e)


def _on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        logger.info("worker: signal %s, stopping", signal.Signals(signum).name)
        stop.set()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, handler)


def _configure_logging(spec: WorkerSpec) -> None:
    fmt = f"%(asctime)s w{spec.index} %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=spec.log_level, format=fmt)


def _serve(spec: WorkerSpec, runtime: NodeRuntime, conn: Connection, stop: threading.Event) -> bool:
    """Report until stopped, orphaned or finished; True when every camera ended by itself."""
    every = spec.config.node.report_every_s
    while not stop.wait(every):
        if runtime.all_finished():
            return True
        if os.getppid() != spec.parent_pid:
            logger.warning("worker %d: parent process gone; stopping", spec.index)
            return False
        _send(conn, _report(spec, runtime))
    return False


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Entry point of a worker process (see module docstring).

    Raises:
        SharpeyesError: the runtime could not start (store, model, decoder); reported to the
            parent first, then the process exits with status 1.
    """
    _configure_logging(spec)
    stop = threading.Event()
    _on_signals(stop)
    runtime = NodeRuntime(spec.config, deliver=False)
    try:
        runtime.start()
    except Exception as e:
        _send(conn, WorkerReport(spec.index, spec.generation, os.getpid(), {}, error=str(e)))
        conn.close()
        raise
    logger.info(
        "worker %d (gpu %s): cameras %s on %s",
        spec.index,
        spec.gpu,
        ",".join(c.id for c in spec.config.cameras),
        runtime.detector_backend,
    )
    finished = False
    try:
        finished = _serve(spec, runtime, conn, stop)
    finally:
        runtime.stop()
        _send(conn, _report(spec, runtime, final=True, finished=finished))
        conn.close()
