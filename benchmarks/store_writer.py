"""Store writes on the camera thread: synchronous ``StoreSink.emit`` vs ``StoreWriter`` sinks.

Usage: ``python -m benchmarks.store_writer [--events 2000] [--cameras 4] [--crop-kb 20]``.

For each backend (SQLite in a temp dir with the default ``synchronous=FULL``; PostgreSQL too when
``SHARPEYES_PG_URL`` is set — a fresh database is created and dropped on that server) it measures:

* ``sync``: ``StoreSink.emit`` per event (crop fsync + one transaction per event, on the caller);
* ``writer``: ``StoreWriter.sink().emit`` from ``--cameras`` threads at once; the caller's cost per
  event (median, p95, max), then the committed rate (events/s from the first emit until
  ``flush`` returns) and the batches and back-pressure the writer counted.

Every event carries a crop and gets two outbox rows and (writer) a feed row. Prints a table and
writes JSON to ``benchmarks/out/store_writer.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks import _cli
from sharpeyes.api.store import StoreSink, open_store
from sharpeyes.api.store.writer import StoreWriter
from sharpeyes.pipeline.types import Event, EventType, ObjectKind

OUT = Path(__file__).resolve().parent / "out" / "store_writer.json"
DESTS = ("viid", "mq")


def _events(prefix: str, n: int, crop_kb: int, stream: str) -> list[Event]:
    crops = [os.urandom(crop_kb * 1024) for _ in range(8)]
    t0 = 1_764_000_000_000
    return [
        Event(
            event_id=f"{prefix}-{stream}-{i}",
            type=EventType.VEHICLE_PASS,
            stream_id=stream,
            first_seen_ms=t0 + i * 40,
            last_seen_ms=t0 + i * 40 + 1500,
            first_pts=i * 0.04,
            last_pts=i * 0.04 + 1.5,
            kind=ObjectKind.MOTOR_VEHICLE,
            crop_jpeg=crops[i % len(crops)],
        )
        for i in range(n)
    ]


def _pct(values_us: list[float]) -> dict[str, float]:
    s = sorted(values_us)
    return {
        "median_us": round(statistics.median(s), 1),
        "p95_us": round(s[int(0.95 * (len(s) - 1))], 1),
        "max_us": round(s[-1], 1),
    }


@contextmanager
def _pg_database(server: str) -> Iterator[str]:
    import psycopg

    name = f"sharpeyes_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_sync(url: str, root: Path, n: int, crop_kb: int) -> dict[str, Any]:
    store = open_store(url, root)
    try:
        sink = StoreSink(store, DESTS, device_id="dev", feed=True)
        events = _events("sync", n, crop_kb, "cam0")
        costs: list[float] = []
        t0 = time.perf_counter()
        for ev in events:
            t = time.perf_counter_ns()
            sink.emit(ev)
            costs.append((time.perf_counter_ns() - t) / 1000)
        wall = time.perf_counter() - t0
    finally:
        store.close()
    return {"mode": "sync StoreSink", "events": n, **_pct(costs), "events_per_s": n / wall}


def bench_writer(url: str, root: Path, n: int, cameras: int, crop_kb: int) -> dict[str, Any]:
    store = open_store(url, root)
    try:
        writer = StoreWriter(store)
        per_cam = n // cameras
        batches = [_events("w", per_cam, crop_kb, f"cam{k}") for k in range(cameras)]
        costs: list[list[float]] = [[] for _ in range(cameras)]
        start = threading.Barrier(cameras + 1)

        def camera(k: int) -> None:
            sink = writer.sink(device_id=f"dev{k}", destinations=DESTS, feed=True)
            out = costs[k]
            start.wait()
            for ev in batches[k]:
                t = time.perf_counter_ns()
                sink.emit(ev)
                out.append((time.perf_counter_ns() - t) / 1000)

        threads = [threading.Thread(target=camera, args=(k,)) for k in range(cameras)]
        for th in threads:
            th.start()
        start.wait()
        t0 = time.perf_counter()
        for th in threads:
            th.join()
        emitted = time.perf_counter() - t0
        assert writer.flush(600)
        wall = time.perf_counter() - t0
        stats = writer.stats()
        writer.close()
    finally:
        store.close()
    total = per_cam * cameras
    return {
        "mode": f"StoreWriter x{cameras} threads",
        "events": total,
        **_pct([c for cs in costs for c in cs]),
        "events_per_s": total / wall,
        "emit_phase_s": round(emitted, 3),
        "batches": stats.batches,
        "events_per_batch": round(stats.committed / max(1, stats.batches), 1),
        "backpressure_waits": stats.backpressure_waits,
        "backpressure_ms": round(stats.backpressure_ms, 1),
        "failed": stats.failed,
        "rejected": stats.rejected,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=_cli.positive_int, default=2000)
    p.add_argument("--sync-events", type=_cli.positive_int, default=500)
    p.add_argument("--cameras", type=_cli.positive_int, default=4)
    p.add_argument("--crop-kb", type=_cli.positive_int, default=20)
    a = p.parse_args(argv)
    machine = _cli.machine()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sharpeyes-bench-") as tmp:
        base = Path(tmp)
        backends: list[tuple[str, str | None]] = [("sqlite", None)]
        if os.environ.get("SHARPEYES_PG_URL"):
            backends.append(("postgres", os.environ["SHARPEYES_PG_URL"]))
        for backend, server in backends:
            for mode in ("sync", "writer"):
                root = base / f"{backend}-{mode}"
                if server is None:
                    url = f"sqlite:///{root / 'store.db'}"
                    r = (
                        bench_sync(url, root, a.sync_events, a.crop_kb)
                        if mode == "sync"
                        else bench_writer(url, root, a.events, a.cameras, a.crop_kb)
                    )
                else:
                    with _pg_database(server) as url:
                        r = (
                            bench_sync(url, root, a.sync_events, a.crop_kb)
                            if mode == "sync"
                            else bench_writer(url, root, a.events, a.cameras, a.crop_kb)
                        )
                rows.append({"backend": backend, "crop_kb": a.crop_kb, **r})
    print(f"machine: {_cli.machine_line(machine)}")
    head = f"{'backend':<9} {'mode':<22} {'events':>6} {'med_us':>8} {'p95_us':>9} {'max_us':>9}"
    print(head + f" {'ev/s':>8} {'ev/batch':>8} {'bp_waits':>8}")
    for r in rows:
        print(
            f"{r['backend']:<9} {r['mode']:<22} {r['events']:>6} {r['median_us']:>8.1f} "
            f"{r['p95_us']:>9.1f} {r['max_us']:>9.1f} {r['events_per_s']:>8.0f} "
            f"{r.get('events_per_batch', 1):>8} {r.get('backpressure_waits', 0):>8}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    data = {"rows": rows, "args": vars(a), "machine": machine, "load_avg_after": _cli.load_avg()}
    OUT.write_text(json.dumps(data, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
