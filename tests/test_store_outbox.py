"""Outbox on SQLite and PostgreSQL: order, retry, dead letters, concurrent claimers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpeyes.api.store import Database, Outbox, StoreUnavailableError, open_database
from sharpeyes.api.store.migrate import migrate
from sharpeyes.api.store.outbox import enqueue
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

NOW = 1_800_000_000_000


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:  # noqa: F811
    database = open_database(db_url)
    migrate(database)
    yield database
    database.close()


def _fill(db: Database, n: int, destination: str = "viid") -> None:
    with db.transaction() as conn:
        assert enqueue(conn, destination, [f"obj{i:04d}" for i in range(n)], kind="t", now_ms=NOW)
        # enqueueing again inside another transaction is a no-op
        assert enqueue(conn, destination, ["obj0000"], kind="t", now_ms=NOW) == 0


def test_claim_order_retry_and_dead(db: Database) -> None:
    box = Outbox(db)
    _fill(db, 5)
    box.enqueue("other", ["obj0000"], kind="t", now_ms=NOW)  # same id, other destination
    assert box.claim_batch("viid", 3, NOW - 1) == []  # not yet due
    first = box.claim_batch("viid", 3, NOW)
    assert [i.object_id for i in first] == ["obj0000", "obj0001", "obj0002"]
    assert [i.id for i in first] == sorted(i.id for i in first)
    # claimed rows are leased: a second claim gets the rest, not the same rows
    second = box.claim_batch("viid", 10, NOW)
    assert [i.object_id for i in second] == ["obj0003", "obj0004"]
    assert box.mark_delivered([first[0].id, first[1].id], NOW + 10) == 2
    assert box.mark_failed([first[2].id], "HTTP 503", NOW + 10, next_attempt_ms=NOW + 5000) == 1
    box.mark_dead([second[0].id], "HTTP 400 bad object", NOW + 10)
    # the lease of second[1] runs out: it comes back, with the failed one once it is due
    later = box.claim_batch("viid", 10, NOW + 120_000)
    assert [i.object_id for i in later] == ["obj0002", "obj0004"]
    assert later[0].attempts == 1 and later[0].last_error == "HTTP 503"
    stats = box.stats("viid", now_ms=NOW + 1000)
    assert (stats.backlog, stats.delivered, stats.failed, stats.retrying) == (2, 2, 1, 1)
    assert stats.oldest_pending_age_ms == 1000
    # a delivered row is never marked again; marks apply only to pending rows
    assert box.mark_failed([first[0].id], "late", NOW, NOW) == 0
    assert box.requeue("viid", NOW + 200_000) == 1
    again = box.claim_batch("viid", 10, NOW + 200_000)
    assert [i.object_id for i in again] == ["obj0002", "obj0003", "obj0004"]
    assert box.stats("other").backlog == 1
    assert sorted(box.destinations()) == ["other", "viid"]


def test_make_due_brings_backed_off_rows_forward(db: Database) -> None:
    box = Outbox(db)
    _fill(db, 3)
    (row,) = box.claim_batch("viid", 1, NOW)
    box.mark_failed([row.id], "HTTP 503", NOW + 10, next_attempt_ms=NOW + 3_600_000)
    box.mark_delivered([i.id for i in box.claim_batch("viid", 10, NOW)], NOW + 10)
    assert box.claim_batch("viid", 10, NOW + 20) == []  # backing off for an hour
    assert box.make_due("viid", NOW + 20) == 1  # delivered rows are not touched
    assert [i.object_id for i in box.claim_batch("viid", 10, NOW + 20)] == [row.object_id]


def _drain(box: Outbox, claimed: list[str], errors: list[BaseException]) -> None:
    try:
        while True:
            try:
                items = box.claim_batch("viid", 7, NOW)
            except StoreUnavailableError:
                continue  # busy: try again
            if not items:
                return
            claimed.extend(i.object_id for i in items)
            box.mark_delivered([i.id for i in items], NOW)
    except BaseException as e:
        errors.append(e)


def test_two_concurrent_senders_never_claim_the_same_row(db: Database) -> None:
    _fill(db, 300)
    box = Outbox(db)
    got: list[list[str]] = [[], []]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_drain, args=(box, got[k], errors)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    both = got[0] + got[1]
    assert len(both) == len(set(both)) == 300
    assert box.stats("viid").delivered == 300


@pytest.mark.postgres
def test_skip_locked_on_postgres(pg_server: str, tmp_path: Path) -> None:  # noqa: F811
    from tests._pg_fixtures import fresh_pg_database

    with fresh_pg_database(pg_server) as url:
        db = open_database(url)
        try:
            migrate(db)
            _fill(db, 10)
            box = Outbox(db)
            holding = threading.Event()
            release = threading.Event()
            other: list[str] = []

            def hold_first_five() -> None:
                with db.transaction() as conn:  # another sender mid-claim, rows locked
                    rows = conn.fetchall(
                        "SELECT object_id FROM outbox ORDER BY id LIMIT 5 FOR UPDATE"
                    )
                    other.extend(str(r[0]) for r in rows)
                    holding.set()
                    release.wait(10)

            t = threading.Thread(target=hold_first_five)
            t.start()
            assert holding.wait(10)
            started = time.monotonic()
            items = box.claim_batch("viid", 10, NOW)
            waited = time.monotonic() - started
            release.set()
            t.join(10)
            assert waited < 1.0  # skipped the locked rows instead of waiting for them
            assert [i.object_id for i in items] == [f"obj{i:04d}" for i in range(5, 10)]
            assert other == [f"obj{i:04d}" for i in range(5)]
        finally:
            db.close()
