"""A simulated multi-node Ray cluster on one machine, for the failover tests and benchmark.

``ray.cluster_utils.Cluster`` with a head (``{"head": 1}``) and worker nodes
(``{"gpu_slot": 2, "svc": 1}``), the tuned health check of ``docs/SCALE_OUT.md`` §6, a fake
GA/T 1400 receiver, the coordinator, a fenced uploader and synthetic cameras on a SQLite store.
Crash = ``remove_node(allow_graceful=False)`` (SIGKILL); hang = SIGSTOP of the node's raylet and
all its children (psutil), SIGCONT later. Imports Ray: use only where Ray is installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import ray
from ray.cluster_utils import Cluster

from sharpeyes.api.cluster.coordinator import CoordinatorOptions
from sharpeyes.api.cluster.leases import LeaseStore
from sharpeyes.api.cluster.ray_backend import (
    NAMESPACE,
    RayOptions,
    UploaderActor,
    start_coordinator,
)
from sharpeyes.api.cluster.synthetic import CountingReceiver, synthetic_spec
from sharpeyes.api.store.db import Database, open_database

log = logging.getLogger(__name__)

RECEIVER_NAME = "sharpeyes-receiver"
UPLOADER_NAME = "sharpeyes-uploader"
REPO = Path(__file__).resolve().parents[2]
TUNED_HEALTH_CHECK = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05) -> float:
    """Poll ``cond`` until true; returns the seconds it took. Raises TimeoutError."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if cond():
            return time.monotonic() - t0
        time.sleep(poll_s)
    raise TimeoutError(f"{what}: not within {timeout_s} s")


def ensure_auth_token(workdir: Path) -> Path:
    """Point Ray's token auth at a token file, creating one in ``workdir`` if needed.

    Ray caches the token inside a process once it has read it, so every Ray cluster a process
    starts must use the same token: an existing ``RAY_AUTH_TOKEN_PATH`` is kept.
    """
    existing = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if existing and Path(existing).is_file():
        return Path(existing)
    token = workdir / "ray_auth_token"
    if not token.is_file():
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    return token


@dataclass
class SimCluster:
    """Head + worker nodes + coordinator + uploader + receiver + synthetic cameras."""

    workdir: Path
    cadence_s: float = 0.5
    rate: float = 10.0
    capacity: float = 2.0
    cluster: Any = None
    nodes: list[Any] = field(default_factory=list)
    coordinator: Any = None
    receiver: Any = None
    uploader: Any = None
    db: Database | None = None

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.workdir / 'cluster.db'}"

    @property
    def leases(self) -> LeaseStore:
        assert self.db is not None
        return LeaseStore(self.db, ensure_schema=False)

    def start(self, worker_nodes: int = 2) -> SimCluster:
        os.environ.pop("RAY_ADDRESS", None)
        ensure_auth_token(self.workdir)
        path = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{path}" if path else str(REPO)
        self.db = open_database(self.db_url)
        LeaseStore(self.db)  # migrate once, before the actors open it
        head = {"num_cpus": 1, "resources": {"head": 1}, "include_dashboard": False}
        self.cluster = Cluster(
            initialize_head=True, head_node_args={**head, "_system_config": TUNED_HEALTH_CHECK}
        )
        for _ in range(worker_nodes):
            self.add_node()
        ray.init(address=self.cluster.address, namespace=NAMESPACE, log_to_driver=False)
        self.receiver = (
            ray.remote(CountingReceiver)
            .options(name=RECEIVER_NAME, lifetime="detached", num_cpus=0, resources={"head": 0.01})
            .remote()
        )
        ray.get(self.receiver.stats.remote())
        options = RayOptions(
            db_url=self.db_url,
            slot_resource="gpu_slot",
            capacity=self.capacity,
            outbox_destinations=("viid",),
            coordinator=CoordinatorOptions(tick_s=0.2),
        )
        self.coordinator = start_coordinator(options)
        ray.get(self.coordinator.ping.remote(), timeout=60)
        self.uploader = (
            ray.remote(UploaderActor)
            .options(
                name=UPLOADER_NAME,
                lifetime="detached",
                max_restarts=-1,
                max_task_retries=-1,
                num_cpus=0,
                resources={"svc": 0.01},
            )
            .remote(self.db_url, RECEIVER_NAME)
        )
        return self

    def add_node(self) -> Any:
        node = self.cluster.add_node(num_cpus=1, resources={"gpu_slot": 2, "svc": 1})
        self.nodes.append(node)
        return node

    def nodes_ready(self) -> bool:
        """Whether every worker node has a worker the coordinator reports ready (cameras added
        before then all go to the nodes that are: placement does not rebalance later)."""
        ready = {w.node for w in self.leases.workers() if w.state == "ready"}
        return all(n.node_id in ready for n in self.nodes)

    def add_cameras(self, n: int, prefix: str = "cam") -> list[str]:
        ids = [f"{prefix}{i}" for i in range(n)]
        for cam in ids:
            spec = synthetic_spec(cam, rate=self.rate, cadence_s=self.cadence_s)
            ray.get(self.coordinator.add_camera.remote(spec), timeout=30)
        return ids

    def running(self, cams: list[str]) -> bool:
        rows = {r.spec.camera_id: r for r in self.leases.cameras()}
        return all(c in rows and self.resumed(c, rows[c].epoch) for c in cams)

    def resumed(self, cam: str, min_epoch: int) -> bool:
        """Whether ``cam`` has a commit at epoch >= ``min_epoch``."""
        with self.leases.db.transaction(readonly=True) as conn:
            row = conn.fetchone(
                "SELECT COUNT(*) FROM cluster_commits WHERE camera_id = ? AND epoch >= ?",
                (cam, min_epoch),
            )
        return row is not None and int(row[0]) > 0

    def owners(self) -> dict[str, tuple[str | None, int]]:
        return {r.spec.camera_id: (r.owner, r.epoch) for r in self.leases.cameras() if r.desired}

    def node_of_worker(self, worker: str) -> Any:
        return next(n for n in self.nodes if worker.startswith(f"sharpeyes-w-{n.node_id[:12]}"))

    def uploader_node(self) -> Any:
        node_id = ray.get(self.uploader.node.remote(), timeout=30)
        return next(n for n in self.nodes if n.node_id == node_id)

    def crash(self, node: Any) -> None:
        self.cluster.remove_node(node, allow_graceful=False)
        self.nodes.remove(node)

    def node_processes(self, node: Any) -> list[psutil.Process]:
        raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
        return [raylet, *raylet.children(recursive=True)]

    def suspend(self, node: Any, attempts: int = 50) -> list[psutil.Process]:
        """SIGSTOP the node at a moment when none of its processes holds the SQLite write lock.

        SQLite stands in for PostgreSQL here; a writer frozen inside its transaction would stall
        every node (pitfall 12), which PostgreSQL bounds with ``lock_timeout`` and
        ``idle_in_transaction_session_timeout`` instead.
        """
        for _ in range(attempts):
            procs = self.node_processes(node)
            for p in procs:
                p.suspend()
            if self._write_lock_free():
                return procs
            self.resume(procs)
            time.sleep(0.05)
        raise TimeoutError("could not suspend the node outside a write transaction")

    def _write_lock_free(self) -> bool:
        conn = sqlite3.connect(self.workdir / "cluster.db", timeout=0.5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()

    @staticmethod
    def resume(procs: list[psutil.Process]) -> None:
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.resume()

    def check_contiguous(self) -> dict[str, int]:
        """Per camera, the last position; raises AssertionError on a gap or an overlap."""
        last: dict[str, int] = {}
        for c in self.leases.commits():
            prev = last.get(c.camera_id, 0)
            if c.from_pos != prev + 1:
                raise AssertionError(f"{c.camera_id}: commit {c} does not follow {prev}")
            last[c.camera_id] = c.to_pos
        return last

    def event_counts(self) -> tuple[int, int]:
        with self.leases.db.transaction(readonly=True) as conn:
            row = conn.fetchone("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events")
        assert row is not None
        return int(row[0]), int(row[1])

    def receiver_stats(self) -> tuple[int, int]:
        unique, dups = ray.get(self.receiver.stats.remote(), timeout=30)
        return int(unique), int(dups)

    def shutdown(self) -> None:
        try:
            ray.shutdown()
        finally:
            if self.cluster is not None:
                self.cluster.shutdown()
            if self.db is not None:
                self.db.close()
