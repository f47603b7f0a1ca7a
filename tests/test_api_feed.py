"""Live feed (SSE) against a real uvicorn server: latency < 1 s, lossless resume, filters."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sharpeyes.api.rest.service import build_store_service
from tests._api_fixtures import Seeded, live_server, make_app, make_event, seed_service
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

pytestmark = pytest.mark.integration


@dataclass
class Message:
    id: int
    event: str
    data: dict[str, object]
    received: float


def sse_messages(resp: httpx.Response) -> Iterator[Message | None]:
    """Parse an SSE stream; yields None for comment lines (connected, keep-alive)."""
    return parse_sse(resp.iter_lines())


def parse_sse(lines: Iterator[str]) -> Iterator[Message | None]:
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            yield None
        elif line == "":
            if "data" in fields:
                yield Message(
                    int(fields["id"]), fields["event"], json.loads(fields["data"]), time.monotonic()
                )
            fields = {}
        else:
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> Iterator[Seeded]:  # noqa: F811
    s = seed_service(db_url, tmp_path, violations=2, passes=2)
    yield s
    s.service.db.close()


def _collect(
    base: str, headers: dict[str, str], n: int, params: str = "", timeout: float = 10.0
) -> list[Message]:
    out: list[Message] = []
    with (
        httpx.Client(timeout=timeout) as c,
        c.stream("GET", f"{base}/api/v1/feed{params}", headers=headers) as r,
    ):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for m in sse_messages(r):
            if m is not None:
                out.append(m)
            if len(out) >= n:
                break
    return out


def test_new_event_arrives_within_one_second(seeded: Seeded) -> None:
    with live_server(make_app(seeded)) as base:
        stored_at: dict[str, float] = {}
        got: list[Message] = []
        connected = threading.Event()

        def reader() -> None:
            with (
                httpx.Client(timeout=10) as c,
                c.stream("GET", f"{base}/api/v1/feed", headers=seeded.auth("viewer")) as r,
            ):
                for m in sse_messages(r):
                    if m is None:
                        connected.set()
                        continue
                    got.append(m)
                    if len(got) == 3:
                        return

        t = threading.Thread(target=reader)
        t.start()
        assert connected.wait(10)
        for i in range(3):
            ev = make_event(900 + i, violation=i == 1)
            seeded.service.ingest([ev])
            stored_at[ev.event_id] = time.monotonic()
            time.sleep(0.2)
        t.join(10)
        assert [m.data["event_id"] for m in got] == list(stored_at)
        latencies = [m.received - stored_at[str(m.data["event_id"])] for m in got]
        assert max(latencies) < 1.0, latencies
        assert [m.event for m in got] == ["vehicle_pass", "red_light_violation", "vehicle_pass"]
        assert got[0].id < got[1].id < got[2].id


def test_resume_with_last_event_id_loses_nothing(seeded: Seeded, tmp_path: Path) -> None:
    app = make_app(seeded)
    viewer = seeded.auth("viewer")
    with live_server(app) as base:
        first = _collect(base, viewer, 4, "?last_event_id=0")
        assert [m.data["event_id"] for m in first] == [
            e.event_id for e in [*seeded.violations, *seeded.passes]
        ]
        last = first[-1].id
        missed = [make_event(700 + i, camera="cam3") for i in range(5)]
        seeded.service.ingest(missed)  # while the client is away
        resumed = _collect(base, {**viewer, "Last-Event-ID": str(last)}, 5)
        assert [m.data["event_id"] for m in resumed] == [e.event_id for e in missed]
        assert resumed[0].id > last
    # a restarted service (new hub, same store) still resumes from the durable feed log
    url = seeded.service.db.url
    if url.startswith("sqlite"):
        restarted = build_store_service(url, seeded.files_root, token_key=b"test-pepper")
        seeded2 = Seeded(restarted, seeded.files_root, seeded.tokens)
        with live_server(make_app(seeded2)) as base:
            again = _collect(base, {**viewer, "Last-Event-ID": str(last)}, 5)
        assert [m.data["event_id"] for m in again] == [e.event_id for e in missed]
        restarted.db.close()


def test_feed_filters_by_camera_and_type(seeded: Seeded) -> None:
    with live_server(make_app(seeded)) as base:
        seeded.service.ingest(
            [
                make_event(800, camera="cam5"),
                make_event(801, camera="cam6", violation=True),
                make_event(802, camera="cam5", violation=True),
            ]
        )
        got = _collect(
            base, seeded.auth("viewer"), 1, "?last_event_id=0&camera=cam5&type=red_light_violation"
        )
        assert got[0].data["camera_id"] == "cam5" and got[0].event == "red_light_violation"
        assert got[0].data["track_id"] == 802


def test_feed_heartbeat_keeps_idle_connection(seeded: Seeded) -> None:
    with (
        live_server(make_app(seeded)) as base,
        httpx.Client(timeout=5) as c,
        c.stream("GET", f"{base}/api/v1/feed", headers=seeded.auth("viewer")) as r,
    ):
        lines = []
        start = time.monotonic()
        for line in r.iter_lines():
            lines.append(line)
            if line == ": keep-alive":
                break
        assert time.monotonic() - start < 3
        assert lines[0] == "retry: 2000"


def test_a_resume_id_beyond_the_head_is_said_and_new_events_still_come(seeded: Seeded) -> None:
    """A client resuming with an id this feed never gave (another store, a reset) is told so and
    gets what arrives from now on, instead of waiting silently until the feed catches up."""
    viewer = seeded.auth("viewer")
    with (
        live_server(make_app(seeded)) as base,
        httpx.Client(timeout=10) as c,
        c.stream("GET", f"{base}/api/v1/feed", headers={**viewer, "Last-Event-ID": "99999"}) as r,
    ):
        lines = r.iter_lines()
        head = [next(lines), next(lines)]
        assert head[1].startswith(": resume id 99999 is beyond this feed's head"), head
        seeded.service.ingest([make_event(900, camera="cam9")])
        got = next(m for m in parse_sse(lines) if m is not None)
    assert got is not None and got.data["camera_id"] == "cam9"
