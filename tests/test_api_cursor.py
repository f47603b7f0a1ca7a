"""Ingest-ordered cursor (issue 15) on SQLite and PostgreSQL: a poller that passes ``after`` back
receives every event exactly once, however old its ``first_seen`` when it is stored; naive
datetimes are local time in the configured zone; an unencoded ``+`` offset works."""

from __future__ import annotations

import random
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpeyes.api.store import EventFilter, EventStore, open_database, open_store
from sharpeyes.api.store.events import IngestPage
from sharpeyes.api.store.migrate import load_migrations, migrate
from sharpeyes.api.store.records import EVENT_COLUMNS, event_row
from sharpeyes.pipeline.types import Event
from tests._api_fixtures import T0, Seeded, make_app, make_event, seed_service
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[EventStore]:  # noqa: F811
    st = open_store(db_url, tmp_path / "files")
    yield st
    st.db.close()


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> Iterator[Seeded]:  # noqa: F811
    s = seed_service(db_url, tmp_path, violations=3, passes=4)
    yield s
    s.service.db.close()


def _late_event(n: int, rng: random.Random, *, violation: bool = False) -> Event:
    """An event whose track started up to 45 s before "now" (stored when the track ended)."""
    now = T0 + 600_000 + n * 100
    return make_event(
        10_000 + n, camera=f"cam{n % 3}", violation=violation, t_ms=now - rng.randint(0, 45_000)
    )


def _drain(store: EventStore, after: int, flt: EventFilter | None = None) -> tuple[list[str], int]:
    got: list[str] = []
    while True:
        page: IngestPage = store.list_ingested(flt, after, limit=7)
        got += [s.event_id for s in page.items]
        assert list(page.seqs) == sorted(page.seqs) and all(q > after for q in page.seqs)
        if page.next_after == after:
            return got, after
        after = page.next_after


# --- store ---------------------------------------------------------------------------------


def test_poller_gets_every_event_once_while_writers_store_late_events(store: EventStore) -> None:
    """Three writer threads store events whose first_seen lies up to 45 s in the past while a
    poller pages with the ingest cursor (7 a page): it receives each exactly once, in ingest
    order."""
    per_writer, writers = 60, 3
    written: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def write(w: int) -> None:
        rng = random.Random(w)
        for i in range(0, per_writer, 3):
            batch = [_late_event(w * 1000 + i + k, rng, violation=k == 0) for k in range(3)]
            store.add_events(batch)
            with lock:
                written.extend(e.event_id for e in batch)
            time.sleep(rng.uniform(0, 0.01))

    seen: list[str] = []

    def poll() -> None:
        after = 0
        while not stop.is_set():
            page = store.list_ingested(None, after, limit=7)
            seen.extend(s.event_id for s in page.items)
            after = page.next_after
            time.sleep(0.002)
        rest, _ = _drain(store, after)
        seen.extend(rest)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    poller = threading.Thread(target=poll)
    poller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    poller.join(60)
    counts = Counter(seen)
    assert len(written) == per_writer * writers
    assert set(counts) == set(written), "the cursor poller lost events"
    assert max(counts.values()) == 1, "the cursor poller got an event twice"


def test_since_polling_misses_what_the_cursor_gets(store: EventStore) -> None:
    """The bug: a poller on ``since`` (first_seen) never sees an event stored after a newer one
    whose track started earlier; the ingest cursor does."""
    rng = random.Random(4)
    short = _late_event(1, rng)
    long_track = make_event(2, t_ms=short.first_seen_ms - 40_000)
    store.add_events([short])
    since_ms = short.first_seen_ms + 1  # "since my last poll"
    after = store.list_ingested(None, 0, 10).next_after
    store.add_events([long_track])  # its track ended later: stored later, first_seen older
    assert store.list_events(EventFilter(since_ms=since_ms), None, 100).items == ()
    assert [s.event_id for s in store.list_ingested(None, after, 10).items] == [long_track.event_id]


def test_filtered_polling_and_high_water(store: EventStore) -> None:
    rng = random.Random(1)
    assert store.ingest_high_water() == 0
    events = [_late_event(i, rng, violation=i % 4 == 0) for i in range(20)]
    store.add_events(events[:10])
    high = store.ingest_high_water()
    assert high == 10
    violations = EventFilter(violations_only=True)
    got, after = _drain(store, 0, violations)
    assert got == [e.event_id for e in events[:10] if e.violation]
    assert after == high  # filtered-out rows are skipped for good, not rescanned
    assert store.add_events(events[:10]) == 0  # duplicates: no new sequence is visible
    store.add_events(events[10:])
    more, _ = _drain(store, after, violations)
    assert more == [e.event_id for e in events[10:] if e.violation]
    assert store.list_ingested(None, 10**9, 5).next_after == store.ingest_high_water()


def test_migration_numbers_existing_events_in_stored_order(db_url: str) -> None:  # noqa: F811
    db = open_database(db_url)
    try:
        migrate(db, [m for m in load_migrations() if m.version < 415])
        rng = random.Random(2)
        events = [_late_event(i, rng) for i in range(5)]
        # the columns of the schema before 0415 (later migrations add some)
        later = ("vehicle_color", "coat_color", "trousers_color")
        keep = [i for i, c in enumerate(EVENT_COLUMNS) if c not in later]
        cols = ", ".join(EVENT_COLUMNS[i] for i in keep)
        insert = f"INSERT INTO events ({cols}) VALUES ({', '.join('?' for _ in keep)})"
        with db.transaction() as conn:
            for k, e in enumerate(reversed(events)):  # stored in reverse id order
                row = event_row(e, None, None, 1_000 + k)
                conn.execute(insert, tuple(row[i] for i in keep))
        assert 415 in migrate(db)
        store = EventStore(db, Path("/nonexistent"), ensure_schema=False)
        got, high = _drain(store, 0)
        assert got == [e.event_id for e in reversed(events)] and high == 5
        store.add_events([_late_event(99, rng)], now_ms=T0)
        assert store.list_ingested(None, high, 10).seqs == (6,)
    finally:
        db.close()


# --- API -----------------------------------------------------------------------------------


def test_api_poller_with_after_gets_late_events_exactly_once(seeded: Seeded) -> None:
    client = TestClient(make_app(seeded))
    auth = seeded.auth("viewer")
    rng = random.Random(3)
    first = client.get("/api/v1/events?limit=2", headers=auth).json()
    assert first["next_after"] == 7  # the high-water mark: 7 seeded events
    seen: list[str] = []
    seen_violations: list[str] = []
    after = after_v = 0
    late: list[Event] = []
    for round_ in range(12):
        batch = [_late_event(round_ * 10 + k, rng, violation=k == 1) for k in range(3)]
        late += batch
        seeded.service.ingest(batch)
        page = client.get(f"/api/v1/events?after={after}&limit=4", headers=auth).json()
        seen += [i["event_id"] for i in page["items"]]
        assert page["next_cursor"] is None
        after = page["next_after"]
        vpage = client.get(f"/api/v1/violations?after={after_v}&limit=2", headers=auth).json()
        seen_violations += [i["event_id"] for i in vpage["items"]]
        after_v = vpage["next_after"]
    while True:
        page = client.get(f"/api/v1/events?after={after}&limit=4", headers=auth).json()
        seen += [i["event_id"] for i in page["items"]]
        if page["next_after"] == after:
            break
        after = page["next_after"]
    while True:
        vpage = client.get(f"/api/v1/violations?after={after_v}", headers=auth).json()
        seen_violations += [i["event_id"] for i in vpage["items"]]
        if vpage["next_after"] == after_v:
            break
        after_v = vpage["next_after"]
    everything = [e.event_id for e in seeded.violations + seeded.passes + late]
    assert sorted(seen) == sorted(everything) and len(seen) == len(set(seen))
    assert seen[7:] == [e.event_id for e in late]  # ingest order, not first_seen order
    want_v = [e.event_id for e in seeded.violations + late if e.violation]
    assert seen_violations == want_v


def test_api_after_refuses_cursor_and_bad_values(seeded: Seeded) -> None:
    client = TestClient(make_app(seeded))
    auth = seeded.auth("viewer")
    cursor = client.get("/api/v1/events?limit=1", headers=auth).json()["next_cursor"]
    assert client.get(f"/api/v1/events?after=0&cursor={cursor}", headers=auth).status_code == 400
    assert client.get("/api/v1/events?after=-1", headers=auth).status_code == 422
    assert client.get("/api/v1/events?after=x", headers=auth).status_code == 422


def _ids(client: TestClient, seeded: Seeded, query: str) -> set[str]:
    r = client.get(f"/api/v1/events?limit=100&{query}", headers=seeded.auth("viewer"))
    assert r.status_code == 200, r.text
    return {i["event_id"] for i in r.json()["items"]}


def test_naive_times_are_local_and_plus_offsets_work(seeded: Seeded) -> None:
    # T0 = 2025-11-29 02:40:00 UTC = 10:40:00 in Asia/Shanghai; violation i is at T0 + i s.
    v = seeded.violations
    client = TestClient(make_app(seeded))
    window = {v[1].event_id, v[2].event_id}
    assert _ids(client, seeded, "since=2025-11-29T10:40:01&until=2025-11-29T10:40:03") == window
    assert _ids(client, seeded, "since=2025-11-29T02:40:01Z&until=2025-11-29T02:40:03Z") == window
    encoded = "since=2025-11-29T10:40:01%2B08:00&until=2025-11-29T10:40:03%2B08:00"
    assert _ids(client, seeded, encoded) == window
    raw = "since=2025-11-29T10:40:01+08:00&until=2025-11-29T10:40:03+08:00"  # '+' → space
    assert _ids(client, seeded, raw) == window
    assert _ids(client, seeded, "since=2025-11-29T10:40:01+0800&until=2025-11-29T10:40:03+08") == (
        window
    )
    spaced = "since=2025-11-29%2010:40:01&until=2025-11-29 10:40:03"  # date-time space: local
    assert _ids(client, seeded, spaced) == window
    bad = client.get("/api/v1/events?since=yesterday", headers=seeded.auth("viewer"))
    assert bad.status_code == 422
    utc_client = TestClient(make_app(seeded, time_zone="UTC"))
    assert _ids(utc_client, seeded, "since=2025-11-29T02:40:01&until=2025-11-29T02:40:03") == (
        window
    )


def test_openapi_states_the_zone_and_the_cursor(seeded: Seeded) -> None:
    client = TestClient(make_app(seeded))
    spec = client.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/api/v1/events"]["get"]["parameters"]}
    assert "Asia/Shanghai" in params["since"]["description"]
    assert "next_after" in params["after"]["description"]
    assert "after" in {p["name"] for p in spec["paths"]["/api/v1/violations"]["get"]["parameters"]}
    page = spec["components"]["schemas"]["EventPage"]["properties"]
    assert "next_after" in page
