"""Search latency over 1 M stored objects on PostgreSQL (issue 13: p95 < 200 ms).

    SHARPEYES_PG_URL=$(scripts/start-postgres.sh | tail -n1) \\
        .venv/bin/python -m benchmarks.search_1m [--rows 1000000] [--reps 40] [--json OUT]

Creates a fresh database on the server, migrates it (the product's own migrations, including
the optional trigram index), fills ``--rows`` synthetic checkpoint records in one
``INSERT … SELECT generate_series`` (plates from a realistic alphabet, 5 plate colours, 12 body
colours, 4 classes, 50 cameras, 30 days), ANALYZEs, and then times each kind of search through
:meth:`EventStore.list_events` — the code path of ``GET /api/v1/events`` — with ``--reps``
random values each, page size 50. Reports p50/p95 per kind and over all. Drops the database.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg

from sharpeyes.api.store.db import open_database
from sharpeyes.api.store.events import EventStore
from sharpeyes.api.store.migrate import migrate
from sharpeyes.api.store.records import EventFilter

LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"
PROVINCES = "京沪粤苏浙鲁川豫鄂湘"
COLORS = ("black", "white", "grey", "red", "blue", "yellow", "orange", "brown", "green")
PLATE_COLORS = ("blue", "yellow", "green", "white", "black")
CLASSES = ("car", "bus", "truck", "motorcycle")
DAY_MS = 86_400_000
T0 = 1_764_547_200_000


def fill_sql(rows: int) -> str:
    """One statement generating ``rows`` events (deterministic by row number)."""
    prov = ",".join(f"'{p}'" for p in PROVINCES)
    letters = ",".join(f"'{c}'" for c in LETTERS)
    colors = ",".join(f"'{c}'" for c in COLORS)
    pcolors = ",".join(f"'{c}'" for c in PLATE_COLORS)
    classes = ",".join(f"'{c}'" for c in CLASSES)
    return f"""
INSERT INTO events (event_id, type, stream_id, kind, class_name, first_seen_ms, last_seen_ms,
    first_pts, last_pts, confidence, plate_text, plate_color, vehicle_color, created_ms,
    ingest_seq)
SELECT 'bench-' || g, 'vehicle_pass', 'cam' || (g % 50), 'motor_vehicle',
    (ARRAY[{classes}])[1 + (g::bigint * 7) % {len(CLASSES)}],
    {T0} + (g::bigint * {30 * DAY_MS // rows}), {T0} + (g::bigint * {30 * DAY_MS // rows}) + 2000,
    0, 2, 0.9,
    CASE WHEN g % 10 = 0 THEN NULL ELSE
        (ARRAY[{prov}])[1 + (g::bigint * 13) % {len(PROVINCES)}]
        || (ARRAY[{letters}])[1 + (g::bigint * 31) % {len(LETTERS)}]
        || lpad(((g::bigint * 7919) % 100000)::text, 5, '0') END,
    (ARRAY[{pcolors}])[1 + (g::bigint * 3) % {len(PLATE_COLORS)}],
    (ARRAY[{colors}])[1 + (g::bigint * 11) % {len(COLORS)}],
    {T0}, g
FROM generate_series(1, {rows}) AS g
"""


def plate(rng: random.Random) -> str:
    digits = "".join(rng.choice(DIGITS) for _ in range(5))
    return rng.choice(PROVINCES) + rng.choice(LETTERS) + digits


def queries(rng: random.Random) -> dict[str, EventFilter]:
    p = plate(rng)
    day = T0 + rng.randrange(29) * DAY_MS
    return {
        "plate_exact": EventFilter(plate=p),
        "plate_contains": EventFilter(plate_contains=p[2:6]),
        "plate_pattern": EventFilter(plate_pattern=p[:3] + "?" + p[4:]),
        "plate_color_day": EventFilter(
            plate_color=rng.choice(PLATE_COLORS), since_ms=day, until_ms=day + DAY_MS
        ),
        "vehicle_color_camera": EventFilter(
            vehicle_color=rng.choice(COLORS), stream_ids=(f"cam{rng.randrange(50)}",)
        ),
        "class_hour": EventFilter(
            class_name=rng.choice(CLASSES), since_ms=day, until_ms=day + 3_600_000
        ),
        "camera_day": EventFilter(
            stream_ids=(f"cam{rng.randrange(50)}",), since_ms=day, until_ms=day + DAY_MS
        ),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    base = os.environ.get("SHARPEYES_PG_URL")
    if not base:
        raise SystemExit("set SHARPEYES_PG_URL (scripts/start-postgres.sh prints one)")
    name = f"bench_search_{os.getpid()}"
    admin = psycopg.connect(base, autocommit=True)  # CREATE DATABASE: outside a transaction
    admin.execute(f"CREATE DATABASE {name}")
    url = base.rsplit("/", 1)[0] + "/" + name
    db = open_database(url)
    try:
        migrate(db)
        t = time.perf_counter()
        with db.transaction() as conn:
            conn.execute(fill_sql(args.rows))
            conn.execute(f"UPDATE ingest_counter SET seq = {args.rows}")
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("VACUUM ANALYZE events")
        fill_s = time.perf_counter() - t
        with db.transaction(readonly=True) as conn:
            row = conn.fetchone(
                "SELECT COUNT(*) FROM pg_indexes WHERE indexname = ?", ("events_plate_trgm",)
            )
        trigram = bool(row and row[0])
        store = EventStore(db, Path("/nonexistent"), ensure_schema=False)
        rng = random.Random(7)
        times: dict[str, list[float]] = {}
        hits: dict[str, list[int]] = {}
        for _ in range(args.reps):
            for kind, flt in queries(rng).items():
                t = time.perf_counter()
                page = store.list_events(flt, None, 50)
                times.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
                hits.setdefault(kind, []).append(len(page.items))
        report: dict[str, Any] = {
            "benchmark": "search_1m",
            "rows": args.rows,
            "reps": args.reps,
            "page_size": 50,
            "fill_s": round(fill_s, 1),
            "trigram_index": trigram,
            "machine": platform.node(),
            "cpus": os.cpu_count(),
            "kinds": {},
        }
        every: list[float] = []
        for kind, ms in times.items():
            q = statistics.quantiles(ms, n=20, method="inclusive")
            report["kinds"][kind] = {
                "p50_ms": round(statistics.median(ms), 2),
                "p95_ms": round(q[18], 2),
                "mean_hits": round(statistics.mean(hits[kind]), 1),
            }
            every += ms
        q = statistics.quantiles(every, n=20, method="inclusive")
        report["all"] = {"p50_ms": round(statistics.median(every), 2), "p95_ms": round(q[18], 2)}
        text = json.dumps(report, indent=2, ensure_ascii=False)
        if args.json:
            args.json.write_text(text + "\n")
        print(text)
    finally:
        db.close()
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
