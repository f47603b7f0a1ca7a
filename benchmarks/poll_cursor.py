"""Ingest-cursor polling against a running pipeline (issue 15): does a poller miss anything?

Starts ``sharpeyes serve`` on a service config (default: the demo's sample clips played as live
cameras) with a fresh SQLite store, then polls ``GET /api/v1/events?after=…`` every
``--interval`` seconds for ``--minutes``, and, side by side, the naive poller that asks for
``since=<start of my last poll>``. After stopping the service it reads the store directly and
checks the cursor poller against every event stored up to its last ``next_after``: each one
received exactly once. Reported: events stored, received, missed, duplicates, events whose track
lasted > 40 s, how many the ``since`` poller missed, and the store→poller lag.

    python -m benchmarks.poll_cursor --minutes 10 --cameras 1 \
        --camera-config sample_videos/intersection_hanoi_b.yaml \
        --out benchmarks/results/DATE_poll_cursor.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
ID_HEX = 12  # token id length of sharpeyes.api.rest.auth.tokens (se_<id>.<secret>)
DEMO = REPO / "sample_videos" / "service_demo.yaml"


@dataclass
class Report:
    minutes: float
    cameras: int
    polls: int = 0
    stored: int = 0  # events in the store with ingest_seq <= the poller's last next_after
    stored_total: int = 0  # every event in the store after stop (flushed tracks included)
    received: int = 0
    missed: int = 0
    duplicates: int = 0
    long_tracks: int = 0  # stored events whose track lasted > 40 s
    long_tracks_received: int = 0
    late_stored: int = 0  # stored > 40 s after first_seen
    since_poller_received: int = 0
    since_poller_missed: int = 0
    lag_ms: dict[str, float] = field(default_factory=dict)  # created_ms -> received
    store_delay_s: dict[str, float] = field(default_factory=dict)  # first_seen -> stored
    per_camera: dict[str, int] = field(default_factory=dict)
    errors: int = 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _absolute_url(cam: dict[str, object], folder: Path) -> dict[str, object]:
    """A file camera's path made absolute (the copy of the config lives elsewhere): relative to
    its config file's folder, else to the repository (as the sample camera configs write it)."""
    url = str(cam["url"])
    if "://" not in url and not url.startswith("/"):
        found = [p for p in (folder / url, REPO / url) if p.is_file()]
        cam["url"] = str((found[0] if found else folder / url).resolve())
    return cam


def _config(src: Path, tmp: Path, cameras: int, extra: list[str]) -> Path:
    cfg = yaml.safe_load(src.read_text(encoding="utf-8"))
    cfg["cameras"] = [_absolute_url(c, src.parent) for c in cfg["cameras"][:cameras]]
    for path in map(Path, extra):  # e.g. the Hanoi red-light camera: tracks waiting > 40 s
        cam = _absolute_url(yaml.safe_load(path.read_text(encoding="utf-8")), path.parent)
        cam["live"] = True
        cfg["cameras"].append(cam)
    cfg["store"] = {"url": str(tmp / "events.db"), "files_root": str(tmp / "files")}
    cfg["metrics"] = {"port": None, "log_every_s": 60}
    out = tmp / "service.yaml"
    out.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return out


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "p99": values[0], "max": values[0]}
    q = statistics.quantiles(values, n=100, method="inclusive")  # never beyond the max
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": max(values)}


class Pollers:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.after = 0
        self.received: list[tuple[str, int]] = []  # (event_id, received wall ms)
        self.since_ids: set[str] = set()
        self.since_ms = int(time.time() * 1000)
        self.polls = 0
        self.errors = 0

    def poll(self) -> None:
        self.polls += 1
        start_ms = int(time.time() * 1000)
        try:
            while True:  # the cursor poller: page until caught up
                page = self.client.get("/api/v1/events", params={"after": self.after, "limit": 500})
                page.raise_for_status()
                body = page.json()
                now = int(time.time() * 1000)
                self.received += [(str(i["event_id"]), now) for i in body["items"]]
                self.after = int(body["next_after"])
                if len(body["items"]) < 500:
                    break
            cursor: str | None = None
            while True:  # the naive poller: first_seen since the start of its last poll
                params: dict[str, str | int] = {"since": _iso(self.since_ms), "limit": 1000}
                if cursor:
                    params["cursor"] = cursor
                body = self.client.get("/api/v1/events", params=params).json()
                self.since_ids.update(str(i["event_id"]) for i in body["items"])
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            self.since_ms = start_ms
        except httpx.HTTPError:
            self.errors += 1


def run(args: argparse.Namespace) -> Report:
    report = Report(minutes=args.minutes, cameras=args.cameras + len(args.camera_config))
    with tempfile.TemporaryDirectory(prefix="poll-cursor-") as tmp_name:
        tmp = Path(tmp_name)
        config = _config(Path(args.config), tmp, args.cameras, args.camera_config)
        port = _free_port()
        token = f"se_{secrets.token_hex(ID_HEX // 2)}.{secrets.token_urlsafe(24)}"
        env = {**os.environ, "SHARPEYES_DEMO_TOKEN": token}
        cmd = [sys.executable, "-m", "sharpeyes.api.commands.cli", "serve"]
        cmd += ["--config", str(config), "--port", str(port)]
        log = (tmp / "serve.log").open("wb")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"serve exited: {(tmp / 'serve.log').read_text()[-2000:]}"
                        )
                    time.sleep(1)
                pollers = Pollers(client)
                end = time.monotonic() + args.minutes * 60
                while time.monotonic() < end:
                    pollers.poll()
                    time.sleep(args.interval)
                pollers.poll()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        db = sqlite3.connect(tmp / "events.db")
        rows = db.execute(
            "SELECT event_id, ingest_seq, first_seen_ms, last_seen_ms, created_ms, stream_id "
            "FROM events"
        ).fetchall()
        db.close()
    report.polls, report.errors = pollers.polls, pollers.errors
    report.stored_total = len(rows)
    upto = [r for r in rows if r[1] <= pollers.after]
    report.stored = len(upto)
    counts = Counter(eid for eid, _ in pollers.received)
    report.received = len(counts)
    report.duplicates = sum(n - 1 for n in counts.values())
    want = {r[0] for r in upto}
    report.missed = len(want - set(counts))
    long_ids = {r[0] for r in upto if r[3] - r[2] > 40_000}
    report.long_tracks = len(long_ids)
    report.long_tracks_received = len(long_ids & set(counts))
    report.late_stored = sum(1 for r in upto if r[4] - r[2] > 40_000)
    report.since_poller_received = len(pollers.since_ids & want)
    report.since_poller_missed = len(want - pollers.since_ids)
    created = {r[0]: r[4] for r in upto}
    first_rx: dict[str, int] = {}
    for eid, at in pollers.received:
        first_rx.setdefault(eid, at)
    report.store_delay_s = _pct([(r[4] - r[2]) / 1000 for r in upto])
    report.per_camera = dict(Counter(str(r[5]) for r in upto))
    report.lag_ms = _pct([float(first_rx[e] - created[e]) for e in created if e in first_rx])
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(DEMO), help="service YAML (default: the demo)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    ap.add_argument("--cameras", type=int, default=4, help="use the first N cameras")
    ap.add_argument(
        "--camera-config",
        action="append",
        default=[],
        help="add a camera config file (repeatable), e.g. sample_videos/intersection_hanoi_b.yaml",
    )
    ap.add_argument("--out", help="write the JSON report here")
    args = ap.parse_args(argv)
    report = run(args)
    data = asdict(report)
    for key, value in data.items():
        sys.stdout.write(f"{key:24s} {value}\n")
    if args.out:
        Path(args.out).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    ok = report.missed == 0 and report.duplicates == 0 and report.errors == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
