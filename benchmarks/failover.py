"""Failover benchmark on a simulated Ray cluster (``docs/SCALE_OUT.md`` §3).

One cluster (head + 2 worker nodes, tuned health check, 4 synthetic cameras at 10 positions/s
committing every 0.5 s, SQLite store). Each round crashes a node (SIGKILL via
``remove_node(allow_graceful=False)``), then hangs one (SIGSTOP of its raylet tree, SIGCONT once
its cameras moved); a node is added back after each. Reports seconds until every moved camera
commits again, events lost, duplicate rows and duplicate deliveries, then the idle overhead of
the Ray mode against the local backend.

    .venv/bin/python -m benchmarks.failover --runs 5 --json benchmarks/out/failover.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _cli

REPO = Path(__file__).resolve().parents[1]


def _moved_in(sim: Any, dead: set[str], before: dict[str, tuple[str | None, int]]) -> float:
    from sharpeyes.api.cluster.simulate import wait_for

    moved = [c for c, (o, _) in before.items() if o in dead]

    def done() -> bool:
        now = sim.owners()
        return all(now[c][0] not in dead and sim.resumed(c, before[c][1] + 1) for c in moved)

    return wait_for(done, 60.0, "moved cameras producing again", poll_s=0.02)


def _settle(sim: Any) -> None:
    from sharpeyes.api.cluster.simulate import wait_for

    want = 2 * len(sim.nodes)
    wait_for(lambda: sum(w.state == "ready" for w in sim.leases.workers()) >= want, 60, "workers")
    wait_for(lambda: sim.running(list(sim.owners())), 60, "cameras running")


def _victim(sim: Any, before: dict[str, tuple[str | None, int]], prefer_uploader: bool) -> Any:
    holders = {
        sim.node_of_worker(str(o)).node_id: sim.node_of_worker(str(o)) for o, _ in before.values()
    }
    up = sim.uploader_node()
    if prefer_uploader and up.node_id in holders:
        return up
    return next(iter(holders.values()))


def _round(sim: Any, hang: bool) -> float:
    before = sim.owners()
    victim = _victim(sim, before, prefer_uploader=hang)
    dead = {str(o) for o, _ in before.values() if sim.node_of_worker(str(o)) is victim}
    if hang:
        procs = sim.suspend(victim)
        try:
            took = _moved_in(sim, dead, before)
        finally:
            sim.resume(procs)
        sim.nodes.remove(victim)
    else:
        sim.crash(victim)
        took = _moved_in(sim, dead, before)
    sim.add_node()
    _settle(sim)
    return took


def failover(runs: int) -> dict[str, Any]:
    from sharpeyes.api.cluster.simulate import SimCluster, wait_for

    with tempfile.TemporaryDirectory(prefix="sharpeyes-failover-") as tmp:
        sim = SimCluster(Path(tmp)).start(worker_nodes=2)
        try:
            wait_for(sim.nodes_ready, 120.0, "a ready worker on every node")  # else no spread
            sim.add_cameras(4)
            _settle(sim)
            crash = [_round(sim, hang=False) for _ in range(runs)]
            hang = [_round(sim, hang=True) for _ in range(runs)]
            last = sim.check_contiguous()
            total, distinct = sim.event_counts()
            with sim.leases.db.transaction(readonly=True) as conn:
                stored = {str(r[0]) for r in conn.fetchall("SELECT event_id FROM events")}
            import ray

            wait_for(lambda: stored <= set(ray.get(sim.receiver.ids.remote())), 60, "all delivered")
            _, dups = sim.receiver_stats()
            return {
                "crash_resume_s": crash,
                "hang_resume_s": hang,
                "events": total,
                "events_lost": sum(last.values()) - distinct,
                "duplicate_rows": total - distinct,
                "duplicate_deliveries": dups,
                "stale_commits_rejected": len(sim.leases.rejections()),
            }
        finally:
            sim.shutdown()


_IDLE = r"""
import json, sys, time, psutil
mode = sys.argv[1]
t0 = time.monotonic()
if mode == "ray":
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
else:
    from pathlib import Path
    import tempfile
    from sharpeyes.api.store.db import open_database
    from sharpeyes.api.cluster.leases import LeaseStore
    from sharpeyes.api.cluster.local import LocalBackend, LocalCluster
    leases = LeaseStore(open_database(Path(tempfile.mkdtemp()) / "idle.db"))
    cluster = LocalCluster(leases, LocalBackend(leases, workers=1)).start()
start_s = time.monotonic() - t0
time.sleep(2.0)
def tree():
    me = psutil.Process()
    return [me, *me.children(recursive=True)]
def _safe(f, p):
    try:
        return f(p)
    except psutil.Error:
        return 0.0
def cpu():
    return sum(_safe(lambda p: p.cpu_times().user + p.cpu_times().system, p) for p in tree())
c0, w0 = cpu(), time.monotonic()
time.sleep(5.0)
procs = tree()
uss = sum(_safe(lambda p: p.memory_full_info().uss, p) for p in procs) / 2**20
print(json.dumps({"start_s": start_s, "idle_cores": (cpu() - c0) / (time.monotonic() - w0),
                  "processes": len(procs), "uss_mb": uss}))
"""


def idle_overhead() -> dict[str, Any]:
    out: dict[str, Any] = {}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    for mode in ("local", "ray"):
        with tempfile.TemporaryDirectory() as tmp:
            token = Path(tmp) / "token"  # hermetic: never touch ~/.ray/auth_token
            token.write_text(secrets.token_hex(32))
            env["RAY_AUTH_TOKEN_PATH"] = str(token)
            proc = subprocess.run(
                [sys.executable, "-c", _IDLE, mode],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
        out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _row(name: str, xs: list[float]) -> str:
    return (
        f"{name:<24} n={len(xs):<3} min={min(xs):6.2f} median={statistics.median(xs):6.2f} "
        f"max={max(xs):6.2f} s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=_cli.positive_int, default=5)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks/out/failover.json")
    args = ap.parse_args(argv)
    machine = _cli.machine()
    print(f"machine: {_cli.machine_line(machine)}", flush=True)
    t0 = time.monotonic()
    result = failover(args.runs)
    print(json.dumps(result), flush=True)
    result["idle"] = idle_overhead()
    result["wall_s"] = time.monotonic() - t0
    result["machine"] = machine
    print(_row("crash -> resumed", result["crash_resume_s"]))
    print(_row("hang -> resumed", result["hang_resume_s"]))
    for key in ("events", "events_lost", "duplicate_rows", "duplicate_deliveries"):
        print(f"{key:<24} {result[key]}")
    print(f"{'stale commits rejected':<24} {result['stale_commits_rejected']}")
    for mode, m in result["idle"].items():
        print(
            f"idle {mode:<19} start={m['start_s']:.2f} s cpu={m['idle_cores']:.3f} cores "
            f"procs={m['processes']} uss={m['uss_mb']:.0f} MB"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    print(f"JSON: {args.json}")
    ok = result["events_lost"] == 0 and result["duplicate_rows"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
