"""API load benchmark: N clients polling events/violations + M SSE subscribers; p50/p95/p99.

By default it starts its own service in a child process (SQLite store seeded with synthetic
events, a publisher adding one event every ``--publish-interval`` seconds, like the demo), so
the load generator does not share a GIL with the server. Point it at a running service with
``--base-url`` and ``--token`` to measure the real demo instead.

    python -m benchmarks.api_load --duration 20 --pollers 50 --subscribers 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from benchmarks import _cli

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    pollers: int
    subscribers: int
    duration_s: float
    requests: int = 0
    errors: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    sse_events: int = 0
    sse_errors: int = 0
    sse_delivery_ms: dict[str, float] = field(default_factory=dict)


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(q[49], 2),
        "p95": round(q[94], 2),
        "p99": round(q[98], 2),
        "max": round(max(values), 2),
    }


def _serve(port: int, root: str, ready: mp.synchronize.Event, interval: float) -> None:
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    import importlib
    import threading

    import uvicorn

    fx = importlib.import_module("_api_fixtures")  # the test fixtures seed the store
    make_event = fx.make_event
    seeded = fx.seed_service(f"sqlite:///{root}/store.db", Path(root), violations=200, passes=800)
    (Path(root) / "token").write_text(seeded.tokens["viewer"])
    app = fx.make_app(seeded, feed_heartbeat_s=5.0)

    def publish() -> None:
        i = 10_000
        while True:
            time.sleep(interval)
            ev = make_event(i, violation=i % 5 == 0, t_ms=int(time.time() * 1000))
            seeded.service.ingest([ev])
            i += 1

    threading.Thread(target=publish, daemon=True).start()
    ready.set()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


async def _poller(client: httpx.AsyncClient, stop: float, lat: list[float], res: Result) -> None:
    paths = ("/api/v1/events?limit=50", "/api/v1/violations?limit=20&review_state=pending")
    i = 0
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        try:
            r = await client.get(paths[i % 2])
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        lat.append((time.perf_counter() - t0) * 1000)
        res.requests += 1
        res.errors += 0 if ok else 1
        i += 1
        await asyncio.sleep(0.5)


async def _subscriber(
    client: httpx.AsyncClient, stop: float, delivery: list[float], res: Result
) -> None:
    try:
        async with client.stream("GET", "/api/v1/feed", timeout=None) as r:
            if r.status_code != 200:
                res.sse_errors += 1
                return
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    ev = json.loads(line[6:])
                    delivery.append(time.time() * 1000 - ev["first_seen_ms"])
                    res.sse_events += 1
                if time.monotonic() >= stop:
                    return
    except httpx.HTTPError:
        res.sse_errors += 1


async def _run(base: str, token: str, args: argparse.Namespace) -> Result:
    res = Result(args.pollers, args.subscribers, args.duration)
    lat: list[float] = []
    delivery: list[float] = []
    limits = httpx.Limits(max_connections=args.pollers + args.subscribers + 10)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=10
    ) as client:
        stop = time.monotonic() + args.duration
        subs = [
            asyncio.create_task(_subscriber(client, stop, delivery, res))
            for _ in range(args.subscribers)
        ]
        polls = [_poller(client, stop, lat, res) for _ in range(args.pollers)]
        await asyncio.gather(*polls)
        await asyncio.wait(subs, timeout=6)
        for s in subs:
            s.cancel()
    res.latency_ms = _pct(lat)
    res.sse_delivery_ms = _pct(delivery)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", help="measure a running service instead of starting one")
    p.add_argument("--token", help="viewer token for --base-url")
    p.add_argument("--duration", type=_cli.positive_float, default=20.0)
    p.add_argument("--pollers", type=_cli.non_negative_int, default=50)
    p.add_argument("--subscribers", type=_cli.non_negative_int, default=20)
    p.add_argument("--publish-interval", type=_cli.positive_float, default=0.1)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "api_load.json")
    args = p.parse_args(argv)
    if args.pollers + args.subscribers == 0:
        p.error("--pollers and --subscribers are both 0: nothing to measure")
    if args.base_url and not args.token:
        print("api_load: no --token: requests go unauthenticated (401s where auth is on)",
              file=sys.stderr)  # fmt: skip
    machine = _cli.machine()
    proc = None
    if args.base_url:
        base, token = args.base_url, args.token or ""
    else:
        from socket import socket

        with socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        root = tempfile.mkdtemp(prefix="sharpeyes-apiload-")
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        proc = ctx.Process(target=_serve, args=(port, root, ready, args.publish_interval))
        proc.start()
        ready.wait(120)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = (Path(root) / "token").read_text()
    try:
        res = asyncio.run(_run(base, token, args))
    finally:
        if proc is not None:
            proc.terminate()
            proc.join(10)
    target = args.base_url or "own service (child process, seeded SQLite store)"
    print(f"{'service':>22}: {target}")
    print(f"{'machine':>22}: {_cli.machine_line(machine)}")
    print(f"{'clients':>22}: {res.pollers} polling, {res.subscribers} SSE, {res.duration_s:g} s")
    print(f"{'requests / errors':>22}: {res.requests} / {res.errors}")
    print(f"{'poll latency ms':>22}: {res.latency_ms}")
    print(f"{'SSE events / errors':>22}: {res.sse_events} / {res.sse_errors}")
    print(f"{'SSE delivery ms':>22}: {res.sse_delivery_ms}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = {**asdict(res), "service": target, "machine": machine, "load_avg_after": _cli.load_avg()}
    args.out.write_text(json.dumps(data, indent=2))
    print(f"JSON: {args.out}")
    return 0 if res.errors == 0 and res.sse_errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
