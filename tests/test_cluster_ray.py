"""Failover on a simulated multi-node Ray cluster (head + 2 nodes, tuned health check).

One module-scoped cluster; the tests run in file order and build on each other: node crash →
hung node (SIGSTOP/SIGCONT) → coordinator crash → add/remove from a second driver process →
final audit (contiguous positions, no duplicate rows, every event delivered). Cameras are
synthetic producers (10 positions/s, a commit every 0.5 s).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from sharpeyes.api.cluster.simulate import SimCluster, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CAMERAS = 4
MOVE_BOUND_S = 10.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    sim = SimCluster(tmp_path_factory.mktemp("raycluster")).start(worker_nodes=2)
    try:
        # cameras go to the workers that are ready when they are added, and stay there: added
        # while one node's workers were still starting (a loaded CI box), all four once sat on
        # the uploader's node and the node-crash test waited 150 s for a spread that never came
        wait_for(sim.nodes_ready, 120.0, "a ready worker on every node")
        cams = sim.add_cameras(CAMERAS)
        wait_for(lambda: sim.running(cams), 60.0, "cameras running")
        yield sim
    finally:
        sim.shutdown()


def _wait_moved(
    sim: SimCluster, before: dict[str, tuple[str | None, int]], dead: set[str]
) -> float:
    moved = [c for c, (owner, _) in before.items() if owner in dead]
    assert moved, "the failed node held no camera"

    def done() -> bool:
        now = sim.owners()
        return all(now[c][0] not in dead and sim.resumed(c, before[c][1] + 1) for c in moved)

    return wait_for(done, MOVE_BOUND_S, "moved cameras producing again")


def test_node_crash_moves_cameras(sim: SimCluster) -> None:
    up_node = sim.uploader_node()

    def spread() -> bool:  # every camera owned, one of them off the uploader's node
        owners = [o for o, _ in sim.owners().values()]
        return all(owners) and any(sim.node_of_worker(str(o)) is not up_node for o in owners)

    # setup, not the measured move: under the full suite's load on two cores the first
    # assignments once took over 60 s (the move itself is bounded by MOVE_BOUND_S below)
    wait_for(spread, 150, "cameras owned on a node other than the uploader's")
    before = sim.owners()
    victim = next(
        sim.node_of_worker(str(o))
        for o, _ in before.values()
        if sim.node_of_worker(str(o)) is not up_node
    )
    dead = {str(o) for o, _ in before.values() if sim.node_of_worker(str(o)) is victim}
    t0 = time.monotonic()
    sim.crash(victim)
    took = _wait_moved(sim, before, dead)
    print(f"node crash: cameras producing again after {time.monotonic() - t0:.2f} s")
    assert took < MOVE_BOUND_S
    sim.check_contiguous()
    total, distinct = sim.event_counts()
    assert total == distinct
    sim.add_node()  # capacity back for the next test (N+1)


def test_hung_node_moves_and_stale_commits_rejected(sim: SimCluster) -> None:
    before = sim.owners()
    victim = sim.node_of_worker(str(next(iter(before.values()))[0]))
    dead = {str(o) for o, _ in before.values() if sim.node_of_worker(str(o)) is victim}
    stale = {c for c, (o, _) in before.items() if o in dead}
    rejected_before = len(sim.leases.rejections())
    procs = sim.suspend(victim)
    t0 = time.monotonic()
    try:
        took = _wait_moved(sim, before, dead)
        print(f"hung node: cameras producing again after {time.monotonic() - t0:.2f} s")
    finally:
        sim.resume(procs)
    assert took < MOVE_BOUND_S

    def rejected() -> bool:
        new = sim.leases.rejections()[rejected_before:]
        return {cam for cam, *_ in new} >= stale

    wait_for(rejected, 15.0, "stale owners' commits rejected after resume")
    sim.check_contiguous()
    total, distinct = sim.event_counts()
    assert total == distinct
    sim.nodes.remove(victim)  # its raylet exits on resume; replace the capacity
    sim.add_node()


def test_coordinator_crash_does_not_pause_commits(sim: SimCluster) -> None:
    want = 2 * len(sim.nodes)  # the node added by the previous test has its workers
    wait_for(lambda: sum(w.state == "ready" for w in sim.leases.workers()) == want, 30.0, "workers")
    workers_before = {w.name for w in sim.leases.workers()}
    t_kill_ms = int(time.time() * 1000)
    ray.kill(sim.coordinator, no_restart=False)
    wait_for(lambda: _pings(sim.coordinator), 20.0, "coordinator answering again")
    time.sleep(2.0)
    t_end_ms = int(time.time() * 1000)
    gaps = _max_gaps(sim, t_kill_ms - 1000, t_end_ms)
    print(f"coordinator crash: max inter-commit gap per camera {gaps}")
    assert gaps and max(gaps.values()) <= 2 * sim.cadence_s * 1000
    assert {w.name for w in sim.leases.workers()} == workers_before  # re-adopted, none new


def _pings(actor: Any) -> bool:
    try:
        return bool(ray.get(actor.ping.remote(), timeout=1.0))
    except (ray.exceptions.RayError, TimeoutError):
        return False


def _max_gaps(sim: SimCluster, since_ms: int, until_ms: int) -> dict[str, int]:
    times: dict[str, list[int]] = {}
    for c in sim.leases.commits():
        if since_ms <= c.committed_ms <= until_ms:
            times.setdefault(c.camera_id, []).append(c.committed_ms)
    return {
        cam: max((b - a for a, b in itertools.pairwise(ts)), default=0)
        for cam, ts in times.items()
        if cam in sim.owners()
    }


_DRIVER = """
import sys, time
from sharpeyes.api.cluster.ray_backend import connect
from sharpeyes.api.cluster.synthetic import synthetic_spec
import ray
coord = connect(sys.argv[1])
ray.get(coord.add_camera.remote(synthetic_spec("extra0", rate=10, cadence_s=0.5)))
ray.get(coord.remove_camera.remote("cam0"))
print("removed-at-ms", int(time.time() * 1000))
"""


def test_add_and_remove_from_second_driver(sim: SimCluster) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, sim.cluster.address],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    removed_ms = int(proc.stdout.split("removed-at-ms")[1].split()[0])
    wait_for(lambda: sim.running(["extra0"]), MOVE_BOUND_S, "added camera producing")
    time.sleep(1.5)
    late = [c for c in sim.leases.commits("cam0") if c.committed_ms > removed_ms]
    assert late == []


def test_final_audit(sim: SimCluster) -> None:
    last = sim.check_contiguous()
    total, distinct = sim.event_counts()
    assert total == distinct == sum(last.values())  # nothing lost, no duplicate rows
    with sim.leases.db.transaction(readonly=True) as conn:
        stored = {str(r[0]) for r in conn.fetchall("SELECT event_id FROM events")}
    wait_for(
        lambda: stored <= set(ray.get(sim.receiver.ids.remote(), timeout=30)),
        30.0,
        "receiver has every stored event",
    )
    unique, dups = sim.receiver_stats()
    print(f"audit: {total} events, receiver {unique} unique, {dups} duplicate deliveries")
    assert dups <= 20  # at most the one batch in flight when the uploader froze
