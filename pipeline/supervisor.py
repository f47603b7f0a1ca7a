"""Per-camera workers under one supervisor: many streams in one process.

Each camera runs a :class:`StreamRunner` on its own thread, built by a factory from its config.
A runner that crashes is restarted with exponential backoff inside a restart budget; a camera
that exhausts its budget is marked ``failed`` and retried at a slow rate — it never blocks or
crashes the other cameras. Cameras can be added, changed and removed while running.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.config import CameraConfig
from pipeline.runner import RunSummary, StreamRunner

logger = logging.getLogger(__name__)


class WorkerState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    FAILED = "failed"
    FINISHED = "finished"
    STOPPED = "stopped"


@dataclass
class WorkerStatus:
    camera_id: str
    state: WorkerState = WorkerState.STARTING
    restarts: int = 0
    last_error: str | None = None
    frames_analysed: int = 0
    events: int = 0
    started_at: float = field(default_factory=time.time)


RunnerFactory = Callable[[CameraConfig], StreamRunner]


class CameraWorker:
    """Runs one camera's pipeline on a thread with a restart budget."""

    def __init__(
        self,
        cam: CameraConfig,
        factory: RunnerFactory,
        *,
        restart_budget: int = 5,
        budget_window_s: float = 300.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        failed_retry_s: float = 300.0,
        loop_files: bool = False,
    ) -> None:
        self.cam = cam
        self.factory = factory
        self.status = WorkerStatus(cam.id)
        self.restart_budget = restart_budget
        self.budget_window_s = budget_window_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.failed_retry_s = failed_retry_s
        self.loop_files = loop_files
        self._stop = threading.Event()
        self._runner: StreamRunner | None = None
        self._failures: deque[float] = deque()
        self._thread = threading.Thread(target=self._loop, name=f"camera-{cam.id}", daemon=True)

    @property
    def runner(self) -> StreamRunner | None:
        return self._runner

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._runner is not None:
            self._runner.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.status.state = WorkerState.STOPPED

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True when the worker should go on."""
        return not self._stop.wait(seconds)

    def _run_once(self) -> RunSummary:
        self.status.state = WorkerState.STARTING
        self._runner = self.factory(self.cam)
        self.status.state = WorkerState.RUNNING
        summary = self._runner.run()
        self.status.frames_analysed += summary.frames_analysed
        self.status.events += summary.events_total
        return summary

    def _loop(self) -> None:
        backoff = self.backoff_initial_s
        while not self._stop.is_set():
            try:
                self._run_once()
                backoff = self.backoff_initial_s
                if self._stop.is_set() or not self.loop_files:
                    self.status.state = WorkerState.FINISHED
                    return
            except Exception as e:  # a camera's failure must not reach other cameras
                self.status.last_error = f"{type(e).__name__}: {e}"
                logger.warning("camera %s failed: %s", self.cam.id, self.status.last_error)
                now = time.monotonic()
                self._failures.append(now)
                while self._failures and now - self._failures[0] > self.budget_window_s:
                    self._failures.popleft()
                self.status.restarts += 1
                if len(self._failures) > self.restart_budget:
                    self.status.state = WorkerState.FAILED
                    wait = self.failed_retry_s
                else:
                    self.status.state = WorkerState.BACKOFF
                    wait = backoff
                    backoff = min(self.backoff_max_s, backoff * 2)
                if not self._sleep(wait):
                    return


class Supervisor:
    """Owns every camera worker; the service facade and ``sharpeyes run`` drive it."""

    def __init__(self, factory: RunnerFactory, *, loop_files: bool = False) -> None:
        self.factory = factory
        self.loop_files = loop_files
        self._workers: dict[str, CameraWorker] = {}
        self._lock = threading.Lock()

    def add(self, cam: CameraConfig) -> None:
        with self._lock:
            if cam.id in self._workers:
                raise KeyError(f"camera {cam.id!r} already runs")
            worker = CameraWorker(cam, self.factory, loop_files=self.loop_files)
            self._workers[cam.id] = worker
        worker.start()

    def update(self, cam: CameraConfig) -> None:
        self.remove(cam.id)
        self.add(cam)

    def remove(self, camera_id: str) -> None:
        with self._lock:
            worker = self._workers.pop(camera_id, None)
        if worker is not None:
            worker.stop()

    def camera_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._workers)

    def worker(self, camera_id: str) -> CameraWorker | None:
        with self._lock:
            return self._workers.get(camera_id)

    def statuses(self) -> dict[str, WorkerStatus]:
        with self._lock:
            return {k: w.status for k, w in self._workers.items()}

    def stop_all(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            if w.runner is not None:
                w.runner.stop()
        for w in workers:
            w.stop()

    def wait(self, poll_s: float = 0.5, stop: threading.Event | None = None) -> None:
        """Block until every worker finished (file cameras) or ``stop`` is set."""
        while not (stop is not None and stop.is_set()):
            sts = self.statuses().values()
            if all(s.state in (WorkerState.FINISHED, WorkerState.STOPPED) for s in sts):
                return
            time.sleep(poll_s)
