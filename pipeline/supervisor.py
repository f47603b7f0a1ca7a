"""Per-camera workers under one supervisor: many streams in one process.

Each camera runs a :class:`StreamRunner` on its own thread, built by a factory from its config.
A runner that crashes is restarted with exponential backoff inside a restart budget; a camera
that exhausts its budget is marked ``failed`` and retried at a slow rate — it never blocks or
crashes the other cameras. Cameras can be added, changed and removed while running.

A live source (RTSP) reconnects by itself and never ends its runner; a file played as live ends
at end of file and, with ``loop_files``, is started again (a fresh runner: new tracker state).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sharpeyes.pipeline.config import CameraConfig
from sharpeyes.pipeline.restart import RestartBudget, RetryPolicy
from sharpeyes.pipeline.runner import RunSummary, StreamRunner

logger = logging.getLogger(__name__)


class WorkerState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    FAILED = "failed"
    FINISHED = "finished"
    STOPPED = "stopped"


DONE_STATES = (WorkerState.FINISHED, WorkerState.STOPPED)


@dataclass
class WorkerStatus:
    """One camera worker's state; written by its thread, read by anyone (plain values)."""

    camera_id: str
    state: WorkerState = WorkerState.STARTING
    runs: int = 0
    restarts: int = 0
    last_error: str | None = None
    frames_analysed: int = 0  # of finished runs; the live run's count is on its runner
    events: int = 0
    started_at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a crashed camera pipeline is restarted."""

    restart_budget: int = 5  # crashes allowed per window before the camera is ``failed``
    budget_window_s: float = 300.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    failed_retry_s: float = 300.0  # slow retry period once failed
    min_run_s: float = 1.0  # a looped file run shorter than this waits the difference first


RunnerFactory = Callable[[CameraConfig], StreamRunner]
RunnerExit = Callable[[CameraConfig, StreamRunner], None]


def halt_runner(runner: StreamRunner) -> None:
    """Ask a runner to stop and wake it even when its source has no frame to give."""
    runner.stop()
    try:
        runner.source.close()
    except Exception:  # closing twice or from another thread must not break a shutdown
        logger.debug("closing the source of %s failed", runner.source.info.stream_id)


class CameraWorker:
    """Runs one camera's pipeline on a thread with a restart budget.

    ``on_exit`` is called on the worker thread after every run (successful or not), e.g. to
    release the camera's batcher view or close its sinks.
    """

    def __init__(
        self,
        cam: CameraConfig,
        factory: RunnerFactory,
        *,
        policy: RestartPolicy | None = None,
        loop_files: bool = False,
        on_exit: RunnerExit | None = None,
    ) -> None:
        self.cam = cam
        self.factory = factory
        self.policy = policy or RestartPolicy()
        self.status = WorkerStatus(cam.id)
        self.loop_files = loop_files
        self.on_exit = on_exit
        self._stop = threading.Event()
        self._runner: StreamRunner | None = None
        p = self.policy
        self._budget = RestartBudget(
            RetryPolicy(
                backoff_initial_s=p.backoff_initial_s,
                backoff_max_s=p.backoff_max_s,
                jitter=0.0,
                restart_budget=p.restart_budget,
                restart_window_s=p.budget_window_s,
                failed_retry_s=p.failed_retry_s,
            )
        )
        self._thread = threading.Thread(target=self._loop, name=f"camera-{cam.id}", daemon=True)

    @property
    def runner(self) -> StreamRunner | None:
        return self._runner

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Signal the worker to stop without waiting (see :meth:`join`)."""
        self._stop.set()
        runner = self._runner
        if runner is not None:
            halt_runner(runner)

    def join(self, timeout: float = 10.0) -> bool:
        """Wait for the worker thread; True when it ended."""
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        ended = not self._thread.is_alive()
        if not ended:
            logger.warning("camera %s did not stop within %.1fs", self.cam.id, timeout)
        self.status.state = WorkerState.STOPPED
        return ended

    def stop(self, timeout: float = 10.0) -> bool:
        self.request_stop()
        return self.join(timeout)

    def _run_once(self) -> RunSummary:
        self.status.state = WorkerState.STARTING
        runner = self.factory(self.cam)
        self._runner = runner
        if self._stop.is_set():  # stopped while the factory was building
            halt_runner(runner)
        self.status.state = WorkerState.RUNNING
        self.status.runs += 1
        try:
            summary = runner.run()
        finally:
            if self.on_exit is not None:
                self.on_exit(self.cam, runner)
        self.status.frames_analysed += summary.frames_analysed
        self.status.events += summary.events_total
        return summary

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._run_once()
            except Exception as e:  # a camera's failure must not reach other cameras
                if not self._sleep(self._on_crash(e)):
                    return
                continue
            self._budget.success()
            if self._stop.is_set() or not self.loop_files:
                self.status.state = WorkerState.FINISHED
                return
            if not self._sleep(self.policy.min_run_s - (time.monotonic() - began)):
                return

    def _on_crash(self, e: Exception) -> float:
        """Record a crash; return the seconds to wait before the next run."""
        self.status.last_error = f"{type(e).__name__}: {e}"
        logger.warning("camera %s failed: %s", self.cam.id, self.status.last_error)
        self.status.restarts += 1
        wait, spent = self._budget.failure(time.monotonic())
        self.status.state = WorkerState.FAILED if spent else WorkerState.BACKOFF
        return wait

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True when the worker should go on."""
        return not self._stop.wait(max(0.0, seconds))


class Supervisor:
    """Owns every camera worker; the node runtime and ``sharpeyes run`` drive it."""

    def __init__(
        self,
        factory: RunnerFactory,
        *,
        loop_files: bool = False,
        policy: RestartPolicy | None = None,
        on_exit: RunnerExit | None = None,
    ) -> None:
        self.factory = factory
        self.loop_files = loop_files
        self.policy = policy or RestartPolicy()
        self.on_exit = on_exit
        self._workers: dict[str, CameraWorker] = {}
        self._lock = threading.Lock()

    def add(self, cam: CameraConfig) -> None:
        """Start a camera.

        Raises:
            KeyError: a camera with this id already runs.
        """
        with self._lock:
            if cam.id in self._workers:
                raise KeyError(f"camera {cam.id!r} already runs")
            worker = CameraWorker(
                cam,
                self.factory,
                policy=self.policy,
                loop_files=self.loop_files,
                on_exit=self.on_exit,
            )
            self._workers[cam.id] = worker
        worker.start()

    def update(self, cam: CameraConfig) -> None:
        """Restart a camera with a new config (or start it when it is not running)."""
        self.remove(cam.id)
        self.add(cam)

    def remove(self, camera_id: str, timeout: float = 10.0) -> bool:
        """Stop and forget a camera; False when it was not running."""
        with self._lock:
            worker = self._workers.pop(camera_id, None)
        if worker is None:
            return False
        worker.stop(timeout)
        return True

    def camera_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._workers)

    def worker(self, camera_id: str) -> CameraWorker | None:
        with self._lock:
            return self._workers.get(camera_id)

    def workers(self) -> dict[str, CameraWorker]:
        with self._lock:
            return dict(self._workers)

    def statuses(self) -> dict[str, WorkerStatus]:
        with self._lock:
            return {k: w.status for k, w in self._workers.items()}

    def stop_all(self, timeout: float = 15.0) -> None:
        """Stop every camera at once (they flush their events), then wait for all."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        # closing a source can block for its read timeout: stop all cameras in parallel
        stoppers = [
            threading.Thread(target=w.stop, args=(timeout,), name=f"stop-{w.cam.id}")
            for w in workers
        ]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(timeout + 1.0)

    def all_done(self) -> bool:
        """True when every worker ended by itself (finite files without looping)."""
        sts = self.statuses().values()
        return all(s.state in DONE_STATES for s in sts)

    def wait(self, poll_s: float = 0.5, stop: threading.Event | None = None) -> None:
        """Block until every worker finished (file cameras) or ``stop`` is set."""
        while not (stop is not None and stop.is_set()):
            if self.all_done():
                return
            if stop is not None:
                stop.wait(poll_s)
            else:
                time.sleep(poll_s)
