"""The node's store writer: batching, back-pressure, failure and recovery, draining, duplicates,
one write path for events + outbox + feed rows, and a SIGKILL mid-batch (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sharpeyes.api.cluster.leases import CameraSpec, LeaseStore
from sharpeyes.api.rest.feed import FeedFilter, FeedHub, FeedItem, committed_publisher
from sharpeyes.api.rest.service import build_store_service
from sharpeyes.api.store import EventStore, StoreSink, StoreUnavailableError, open_store
from sharpeyes.api.store.db import Connection, Database
from sharpeyes.api.store.events import Written
from sharpeyes.api.store.writer import StoreWriter, WriterClosedError, WriterFullError
from tests._pg_fixtures import db_url, pg_server  # noqa: F401
from tests.test_store import make_event

REPO = Path(__file__).resolve().parents[1]
DESTS = ("viid", "mq")


class ControlledDatabase(Database):
    """A real database whose write transactions can be slowed down or made to fail."""

    def __init__(self, inner: Database) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.url = inner.url
        self.delay_s = 0.0
        self.down = False
        self.gate = threading.Event()
        self.gate.set()
        self.attempts = 0

    @contextlib.contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Connection]:
        if not readonly:
            self.attempts += 1
            self.gate.wait(30)
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.down:
                raise StoreUnavailableError("store connection failed: server closed the connection")
        with self.inner.transaction(readonly=readonly) as conn:
            yield conn

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[EventStore]:  # noqa: F811
    s = open_store(db_url, tmp_path / "files")
    yield s
    s.close()


def controlled(store: EventStore) -> tuple[EventStore, ControlledDatabase]:
    db = ControlledDatabase(store.db)
    return EventStore(db, store.files_root, ensure_schema=False), db


def counts(store: EventStore) -> tuple[int, int, int]:
    with store.db.transaction(readonly=True) as c:
        rows = [c.fetchone(f"SELECT COUNT(*) FROM {t}") for t in ("events", "outbox", "feed_log")]
    return tuple(int(r[0]) if r else 0 for r in rows)  # type: ignore[return-value]


def assert_whole(store: EventStore, destinations: Sequence[str] = DESTS) -> int:
    """Every event has exactly one feed row and one outbox row per destination; no row points
    at a missing event. Returns the number of events."""
    with store.db.transaction(readonly=True) as c:
        bad = c.fetchone(
            "SELECT COUNT(*) FROM events e WHERE "
            "(SELECT COUNT(*) FROM feed_log f WHERE f.event_id = e.event_id) <> 1 OR "
            "(SELECT COUNT(*) FROM outbox o WHERE o.object_id = e.event_id) <> ?",
            (len(destinations),),
        )
        orphans = c.fetchone(
            "SELECT (SELECT COUNT(*) FROM feed_log f WHERE NOT EXISTS "
            "(SELECT 1 FROM events e WHERE e.event_id = f.event_id)) + "
            "(SELECT COUNT(*) FROM outbox o WHERE NOT EXISTS "
            "(SELECT 1 FROM events e WHERE e.event_id = o.object_id))"
        )
        n = c.fetchone("SELECT COUNT(*) FROM events")
    assert bad == (0,) and orphans == (0,)
    assert n is not None
    return int(n[0])


def test_batches_events_outbox_and_feed_in_one_transaction(store: EventStore) -> None:
    got: list[Written] = []
    writer = StoreWriter(store, max_batch=64, max_delay_ms=50, on_committed=got.extend)
    per_cam: list[list[Written]] = [[], []]
    sinks = [
        writer.sink(device_id=f"dev{k}", destinations=DESTS, on_committed=per_cam[k].extend)
        for k in range(2)
    ]

    def camera(k: int) -> None:
        for i in range(100):
            sinks[k].emit(make_event(i, stream=f"cam{k}"))

    threads = [threading.Thread(target=camera, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.flush(30)
    stats = writer.stats()
    assert writer.close()
    assert (stats.accepted, stats.committed, stats.new, stats.failed) == (200, 200, 200, 0)
    assert 1 <= stats.batches < 100  # batched, not one transaction per event
    assert stats.healthy and stats.last_error is None and stats.queued == 0
    assert counts(store) == (200, 400, 200)
    assert assert_whole(store) == 200
    for k in range(2):  # each camera's own callback gets exactly its events
        assert len(per_cam[k]) == 100
        assert {w.stored.event.stream_id for w in per_cam[k]} == {f"cam{k}"}
    seqs = [w.feed_seq or 0 for w in got]
    assert 0 not in seqs and seqs == sorted(seqs) and len(set(seqs)) == 200
    # what on_committed hands over is what a reader gets back
    w = got[0]
    back = store.get_event(w.event_id)
    assert back is not None and back.to_json() == w.stored.to_json()
    assert w.stored.device_id in ("dev0", "dev1") and w.stored.crop_path is not None
    crop = store.crop_file(w.stored)
    original = make_event(int(w.stored.event.track_id or 0), stream=w.stored.event.stream_id)
    assert crop is not None and crop.read_bytes() == original.crop_jpeg


def test_backpressure_is_counted_never_a_drop(store: EventStore) -> None:
    slow_store, db = controlled(store)
    db.delay_s = 0.05
    writer = StoreWriter(slow_store, queue_size=2, max_batch=2, max_delay_ms=0)
    sink = writer.sink(destinations=DESTS)
    t0 = time.monotonic()
    for i in range(20):
        sink.emit(make_event(i))
    waited = time.monotonic() - t0
    assert writer.close()
    stats = writer.stats()
    assert stats.backpressure_waits > 0 and stats.backpressure_ms > 50
    assert waited >= 0.2  # the producer was slowed down to the database's pace
    assert (stats.committed, stats.rejected, stats.failed) == (20, 0, 0)
    assert counts(store) == (20, 40, 20)

    # the wait is bounded: a database that does not answer makes emit fail loudly
    db.gate.clear()
    stuck = StoreWriter(slow_store, queue_size=1, max_batch=1, put_timeout_s=0.1)
    s = stuck.sink()
    s.emit(make_event(100))  # taken by the thread, which blocks in the database
    time.sleep(0.05)
    s.emit(make_event(101))  # fills the queue
    with pytest.raises(WriterFullError, match="queue full"):
        s.emit(make_event(102))
    assert stuck.stats().rejected == 1 and stuck.stats().backpressure_waits == 1
    db.gate.set()
    assert stuck.close(10)
    assert counts(store)[0] == 22


def test_failure_is_surfaced_retried_and_recovered(store: EventStore) -> None:
    flaky, db = controlled(store)
    db.down = True
    writer = StoreWriter(flaky, max_delay_ms=0, retry_initial_s=0.01, retry_max_s=0.05)
    sink = writer.sink(destinations=DESTS)
    for i in range(10):
        sink.emit(make_event(i))
    deadline = time.monotonic() + 5
    while writer.healthy() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not writer.healthy()
    assert writer.last_error is not None and "server closed" in writer.last_error
    assert not writer.flush(0.2)
    time.sleep(0.2)
    assert writer.stats().retries >= 2 and writer.stats().committed == 0
    db.down = False
    assert writer.flush(10)
    stats = writer.stats()
    assert writer.healthy() and stats.committed == 10 and stats.failed == 0
    assert stats.last_error is not None  # kept for diagnosis; healthy says it is over
    assert writer.close()
    assert assert_whole(store) == 10


def test_close_drains_and_refuses_later_events(store: EventStore) -> None:
    slow_store, db = controlled(store)
    db.delay_s = 0.01
    writer = StoreWriter(slow_store, max_batch=16, max_delay_ms=1000)
    sink = writer.sink(destinations=DESTS)
    for i in range(300):
        sink.emit(make_event(i))
    assert writer.stats().committed < 300
    assert writer.close(30)
    assert writer.stats().committed == 300 and counts(store) == (300, 600, 300)
    with pytest.raises(WriterClosedError):
        sink.emit(make_event(999))
    assert writer.close()  # idempotent


def test_duplicates_get_no_outbox_or_feed_rows(store: EventStore, tmp_path: Path) -> None:
    first = StoreSink(store, DESTS, feed=True)
    first.emit(make_event(0))
    writer = StoreWriter(store, max_delay_ms=20)
    sink = writer.sink(destinations=DESTS)
    for i in (0, 1, 1, 2, 0, 2):  # replays: stored earlier, and twice in one batch
        sink.emit(make_event(i))
    assert writer.close()
    stats = writer.stats()
    assert (stats.committed, stats.new, stats.duplicates) == (6, 2, 4)
    assert counts(store) == (3, 6, 3)
    assert assert_whole(store) == 3
    again = store.write_batch(
        [make_event(1), make_event(3)], destinations=DESTS, device_id=None, feed=True
    )
    assert [w.event_id for w in again] == [make_event(3).event_id]
    assert counts(store) == (4, 8, 4)


def test_lease_commit_uses_the_one_write_path(store: EventStore) -> None:
    leases = LeaseStore(store.db)
    leases.put_camera(CameraSpec("cam1"))
    lease = leases.grant("cam1", "w1")
    root = store.files_root
    evidence = root / "evidence" / "cam1" / "x"
    ev = dataclasses.replace(make_event(1), evidence_path=str(evidence))
    lease = leases.commit(lease, 1, [ev], files_root=root, outbox_destinations=DESTS)
    # a replay by the next owner: the duplicate gets no second outbox row
    lease = leases.commit(lease, 2, [ev, make_event(2)], files_root=root, outbox_destinations=DESTS)
    assert counts(store) == (2, 4, 0)
    stored = store.get_event(ev.event_id)
    assert stored is not None and stored.evidence_dir == "evidence/cam1/x"  # relative
    assert stored.crop_path is not None and store.crop_file(stored).is_file()  # type: ignore[union-attr]
    pos = store.get_position("cam1")
    assert pos is not None and pos.seq == 2 and lease.pos == 2


def test_on_committed_feeds_the_hub_with_feed_table_ids(store: EventStore) -> None:
    hub = FeedHub(capacity=8)
    writer = StoreWriter(
        store, max_delay_ms=5, on_committed=committed_publisher(hub, lambda s: s.event_id)
    )
    sink = writer.sink(destinations=())
    events = [make_event(i) for i in range(5)]
    for ev in events:
        sink.emit(ev)
    assert writer.close()
    with store.db.transaction(readonly=True) as c:
        rows = c.fetchall("SELECT seq, event_id FROM feed_log ORDER BY seq")
    assert [(i.seq, i.data) for i in hub.after(0)] == [(int(s), str(e)) for s, e in rows]


def _feed_resume(url: str, root: Path, after_seq: int, want: int) -> list[FeedItem]:
    """A client resuming with ``Last-Event-ID: after_seq`` on a freshly started service."""
    service = build_store_service(url, root)

    async def collect() -> list[FeedItem]:
        out: list[FeedItem] = []
        async for item in service.feed.subscribe(after_seq, FeedFilter(), heartbeat_s=2):
            if item is None:
                break
            out.append(item)
            if len(out) >= want:
                break
        return out

    try:
        return asyncio.run(asyncio.wait_for(collect(), 60))
    finally:
        service.db.close()


WRITER = textwrap.dedent(
    """
    import hashlib, sys, threading
    from pathlib import Path
    from sharpeyes.api.store import open_store
    from sharpeyes.api.store.writer import StoreWriter
    from sharpeyes.pipeline.types import Event, EventType, ObjectKind

    url, root, run = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    store = open_store(url, root)
    lock = threading.Lock()

    def committed(written):
        with lock:
            print(len(written), flush=True)

    writer = StoreWriter(store, max_batch=32, max_delay_ms=2, on_committed=committed)
    print("start", flush=True)

    def camera(cam):
        sink = writer.sink(device_id=f"dev{cam}", destinations=("viid", "mq"))
        i = 0
        while True:
            # a replay of the previous run's last ids, then new ones
            eid = f"r{run}c{cam}e{i:06d}" if i >= 20 else f"r{max(run - 1, 0)}c{cam}e{i:06d}"
            sink.emit(Event(
                event_id=eid, type=EventType.VEHICLE_PASS, stream_id=f"cam{cam}",
                first_seen_ms=1_763_000_000_000 + i, last_seen_ms=1_763_000_000_000 + i,
                first_pts=i * 0.04, last_pts=i * 0.04, kind=ObjectKind.MOTOR_VEHICLE,
                crop_jpeg=hashlib.sha256(eid.encode()).digest() * 256,
            ))
            i += 1

    for cam in range(3):
        threading.Thread(target=camera, args=(cam,), daemon=True).start()
    threading.Event().wait()
    """
)


def _run_and_kill(script: Path, url: str, root: Path, run: int, rng: random.Random) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(script), url, str(root), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "start", proc.stderr.read() if proc.stderr else ""
        committed, deadline = 0, time.monotonic() + 60
        while committed < 200 + 100 * run and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "writer exited"
            committed += int(line)
        time.sleep(rng.uniform(0.0, 0.02))  # land the kill anywhere inside a batch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.integration
def test_sigkill_mid_batch_leaves_every_event_whole_and_in_the_feed(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = tmp_path / "files"
    rng = random.Random(12)
    for run in range(3):
        _run_and_kill(script, db_url, root, run, rng)

    store = open_store(db_url, root)
    try:
        n = assert_whole(store)  # no event without its outbox/feed rows, nor the reverse
        assert n >= 500
        with store.db.transaction(readonly=True) as c:
            ids = [str(r[0]) for r in c.fetchall("SELECT event_id FROM feed_log ORDER BY seq")]
            mid = c.fetchone("SELECT seq FROM feed_log ORDER BY seq LIMIT 1 OFFSET 99")
        for event_id in ids[:: max(1, len(ids) // 50)]:  # committed rows point at whole crops
            stored = store.get_event(event_id)
            assert stored is not None and store.crop_file(stored).stat().st_size == 32 * 256  # type: ignore[union-attr]
    finally:
        store.close()
    # after the restart a feed client gets every stored event: from the start, and resuming
    items = _feed_resume(db_url, root, 0, n)
    assert [i.data for i in items] and [i.seq for i in items] == sorted(i.seq for i in items)
    assert len(items) == n and {i.camera_id for i in items} <= {"cam0", "cam1", "cam2"}
    got_ids = [i.data.split('"event_id":"', 1)[1].split('"', 1)[0] for i in items]
    assert got_ids == ids
    assert mid is not None
    resumed = _feed_resume(db_url, root, int(mid[0]), n - 100)
    assert [i.seq for i in resumed] == [i.seq for i in items[100:]]
