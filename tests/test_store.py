"""Event store on SQLite and PostgreSQL: migrations, idempotent adds, crops, queries, review."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpeyes.api.store import (
    EventFilter,
    EventNotFoundError,
    EventStore,
    FencedError,
    InvalidCursorError,
    Outbox,
    ReviewError,
    StoreIntegrityError,
    StreamPosition,
    open_database,
    open_store,
)
from sharpeyes.api.store.migrate import latest_version, load_migrations, migrate
from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.types import (
    Box,
    Event,
    EventType,
    LampColor,
    ObjectKind,
    Plate,
    TrajectoryPoint,
    Violation,
    make_event_id,
)
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

T0 = 1_763_000_000_000  # 2025-11-13 UTC
VIOLATION = Violation(
    code="1625",
    signal_group="north_straight",
    signal_color=LampColor.RED,
    seconds_since_red=2.5,
    lane_no=2,
    movement="straight",
    approach="N",
    crossed_stop_line_pts=1.25,
    evidence_pts=(1.0, 1.25, 2.0),
)


def make_event(
    i: int,
    *,
    stream: str = "cam1",
    t_ms: int | None = None,
    plate: str | None = None,
    violation: bool = False,
    crop: bytes | None = b"\xff\xd8crop",
) -> Event:
    first = T0 + i * 1000 if t_ms is None else t_ms
    type_ = EventType.RED_LIGHT_VIOLATION if violation else EventType.VEHICLE_PASS
    return Event(
        event_id=make_event_id(stream, i, first, str(type_)),
        type=type_,
        stream_id=stream,
        first_seen_ms=first,
        last_seen_ms=first + 800,
        first_pts=i * 1.0,
        last_pts=i * 1.0 + 0.8,
        kind=ObjectKind.MOTOR_VEHICLE,
        class_id=2,
        class_name="car",
        class_code="K33",
        track_id=i,
        confidence=0.87654321,
        best_box=Box(10.5, 20.25, 110.0, 220.0, 1920, 1080),
        best_pts=i * 1.0 + 0.4,
        crop_jpeg=None if crop is None else crop + str(i).encode(),
        trajectory=(TrajectoryPoint(i * 1.0, 50.0, 60.0), TrajectoryPoint(i + 0.5, 55.0, 70.0)),
        heading_deg=91.5,
        direction="north",
        plate=None if plate is None else Plate(plate, "blue", 0.93),
        violation=VIOLATION if violation else None,
        detail="test",
        extra=(("note", "x"),),
    )


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[EventStore]:  # noqa: F811
    st = open_store(db_url, tmp_path / "files")
    yield st
    st.db.close()


# --- migrations ------------------------------------------------------------------------------


def test_migrations_apply_once_and_are_idempotent(db_url: str) -> None:  # noqa: F811
    db = open_database(db_url)
    try:
        applied = migrate(db)
        assert applied == [m.version for m in load_migrations()]
        assert 1 in applied
        assert migrate(db) == []
        with db.transaction(readonly=True) as conn:
            rows = conn.fetchall("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == applied
    finally:
        db.close()


def test_schema_too_new_is_refused(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    db = open_database(db_url)
    newest = latest_version()
    try:
        migrate(db)
        with db.transaction() as conn:
            conn.execute(
                "INSERT INTO schema_version (version, name, applied_ms) VALUES (?, ?, ?)",
                (newest + 7, "future", 0),
            )
    finally:
        db.close()
    with pytest.raises(StoreError, match=rf"store schema version {newest + 7} is newer than"):
        open_store(db_url, tmp_path)


def test_adding_a_migration_file_is_all_it_takes(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    mdir = tmp_path / "migrations"
    mdir.mkdir()
    (mdir / "0001_a.sql").write_text(
        "CREATE TABLE a (id {{AUTOINC}}, payload {{JSON}}, data {{BLOB}}, x {{REAL}});\n"
        "-- @sqlite\nCREATE TABLE only_sqlite (x INTEGER);\n"
        "-- @postgres\nCREATE TABLE only_pg (x INTEGER);\n-- @end\n"
    )
    db = open_database(db_url)
    try:
        assert migrate(db, load_migrations(mdir)) == [1]
        (mdir / "0002_b.sql").write_text("ALTER TABLE a ADD COLUMN note TEXT;\n")
        assert migrate(db, load_migrations(mdir)) == [2]
        with db.transaction() as conn:
            conn.execute("INSERT INTO a (payload, note) VALUES (?, ?)", ('{"k": 1}', "n"))
            assert conn.fetchone("SELECT id, note FROM a") == (1, "n")
            own = "only_sqlite" if db.backend == "sqlite" else "only_pg"
            conn.execute(f"INSERT INTO {own} (x) VALUES (1)")
        # a failing migration is rolled back as a whole and not recorded
        (mdir / "0003_bad.sql").write_text("CREATE TABLE c (x INTEGER);\nSELECT * FROM nope;\n")
        with pytest.raises(StoreError, match="migration 0003_bad failed"):
            migrate(db, load_migrations(mdir))
        with db.transaction() as conn:
            assert conn.fetchone("SELECT MAX(version) FROM schema_version") == (2,)
            with pytest.raises(StoreError):
                conn.execute("SELECT * FROM c")
    finally:
        db.close()


def test_migration_files_are_validated(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match="two migrations share version 0001"):
        load_migrations(tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE t (x {{NOPE}});")
    db = open_database(tmp_path / "x.db")
    try:
        with pytest.raises(StoreError, match="unknown placeholder"):
            migrate(db, load_migrations(tmp_path))
    finally:
        db.close()
    (tmp_path / "bad name.sql").write_text("")
    with pytest.raises(StoreError, match=r"not NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_open_errors_are_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open store") as e:
        open_database(blocker / "sub" / "x.db")
    assert "\n" not in str(e.value)
    with pytest.raises(StoreError, match="cannot open store"):
        open_database("mysql://localhost/x")
    with pytest.raises(StoreError, match="cannot open store") as e2:
        open_database("postgresql://postgres@127.0.0.1:1/nowhere")
    assert "\n" not in str(e2.value)


# --- writing ---------------------------------------------------------------------------------


def test_add_is_idempotent_and_round_trips(store: EventStore) -> None:
    events = [make_event(i, plate="京A12345", violation=i == 1) for i in range(3)]
    assert store.add_events(events, outbox_destinations=["viid"]) == 3
    assert store.add_events(events, outbox_destinations=["viid"]) == 0
    assert store.add_events([*events, make_event(3)], outbox_destinations=["viid"]) == 1
    assert store.count_events() == 4
    assert Outbox(store.db).stats("viid").backlog == 4  # no outbox row for a duplicate
    got = store.get_event(events[1].event_id)
    assert got is not None
    assert got.event == events[1].with_(crop_jpeg=None)
    assert got.review_state == "pending"
    assert store.get_event(events[0].event_id).review_state is None  # type: ignore[union-attr]
    assert store.get_event("nope") is None


def test_crop_files_exist_for_committed_rows(store: EventStore) -> None:
    events = [make_event(i, stream="rtsp://cam/../x") for i in range(3)] + [
        make_event(9, crop=None)
    ]
    store.add_events(events)
    for ev in events[:3]:
        stored = store.get_event(ev.event_id)
        assert stored is not None and stored.crop_path is not None
        assert stored.crop_path.startswith("crops/rtsp_cam_.._x/20251113/")
        path = store.crop_file(stored)
        assert path is not None and path.read_bytes() == ev.crop_jpeg
        assert path.resolve().is_relative_to(store.files_root.resolve())
    nocrop = store.get_event(events[3].event_id)
    assert nocrop is not None and nocrop.crop_path is None
    leftovers = [p for p in store.files_root.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_stream_position_and_epoch_fencing(store: EventStore) -> None:
    assert store.get_position("cam1") is None
    store.add_events([make_event(0)], position=StreamPosition("cam1", 10, 0.4, epoch=1))
    store.add_events([], position=StreamPosition("cam1", 20, 0.8, epoch=2))
    assert store.get_position("cam1") == StreamPosition("cam1", 20, 0.8, 2)
    with pytest.raises(FencedError, match="epoch 1 is fenced"):
        store.add_events([make_event(1)], position=StreamPosition("cam1", 30, 1.2, epoch=1))
    # the fenced batch left nothing behind
    assert store.get_event(make_event(1).event_id) is None
    assert store.get_position("cam1") == StreamPosition("cam1", 20, 0.8, 2)


def test_set_evidence(store: EventStore) -> None:
    ev = make_event(0, violation=True)
    store.add_events([ev])
    store.set_evidence(ev.event_id, "evidence/x", "evidence/x/meta.json")
    got = store.get_event(ev.event_id)
    assert got is not None and got.metadata_path == "evidence/x/meta.json"
    with pytest.raises(EventNotFoundError):
        store.set_evidence("missing", None, None)


# --- queries ---------------------------------------------------------------------------------


def _ids(store: EventStore, f: EventFilter) -> set[str]:
    return {s.event_id for s in store.list_events(f, limit=1000).items}


def test_filters(store: EventStore) -> None:
    a = [make_event(i, stream="a", plate="京A12345" if i % 2 else "沪B99X88") for i in range(6)]
    b = [make_event(i, stream="b", violation=True, plate="粤C5_%1") for i in range(3)]
    store.add_events(a, device_id="34020000001320000001")
    store.add_events(b)
    assert _ids(store, EventFilter(stream_ids=("b",))) == {e.event_id for e in b}
    assert _ids(store, EventFilter(device_id="34020000001320000001")) == {e.event_id for e in a}
    assert _ids(store, EventFilter(types=(EventType.RED_LIGHT_VIOLATION,))) == {
        e.event_id for e in b
    }
    assert store.count_events(EventFilter(kind=ObjectKind.MOTOR_VEHICLE)) == 9
    assert store.count_events(EventFilter(kind=ObjectKind.PERSON)) == 0
    assert store.count_events(EventFilter(since_ms=T0 + 1000, until_ms=T0 + 3000)) == 4
    assert store.count_events(EventFilter(plate="京A12345")) == 3
    assert store.count_events(EventFilter(plate="京A1234")) == 0
    assert store.count_events(EventFilter(plate_contains="a123")) == 3  # case-insensitive
    assert store.count_events(EventFilter(plate_contains="99x")) == 3
    assert store.count_events(EventFilter(plate_contains="5_%")) == 3  # wildcards are literal
    assert store.count_events(EventFilter(plate_contains="5%")) == 0
    assert store.count_events(EventFilter(review_state="pending")) == 3
    assert store.count_events(EventFilter(violations_only=True, stream_ids=("a",))) == 0


def test_cursor_pagination_is_stable_over_inserts(store: EventStore) -> None:
    # 25 events, several sharing a timestamp so the event_id tie-break matters
    events = [make_event(i, t_ms=T0 + (i // 3) * 1000) for i in range(25)]
    store.add_events(events)
    seen: list[str] = []
    page = store.list_events(EventFilter(), limit=10)
    seen += [s.event_id for s in page.items]
    # newer events and events in the already-read range arrive while paging
    store.add_events([make_event(100 + i, t_ms=T0 + 60_000 + i) for i in range(5)])
    cursor = page.next_cursor
    while cursor is not None:
        page = store.list_events(EventFilter(), cursor=cursor, limit=10)
        seen += [s.event_id for s in page.items]
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 25
    expected = sorted(events, key=lambda e: (-e.first_seen_ms, e.event_id))
    assert seen == [e.event_id for e in expected]


def test_invalid_cursor(store: EventStore) -> None:
    with pytest.raises(InvalidCursorError):
        store.list_events(cursor="not-a-cursor!")
    with pytest.raises(ValueError):
        store.list_events(cursor="WzEsMl0")  # [1,2]: wrong types


# --- review ----------------------------------------------------------------------------------


def test_review_and_append_only_audit(store: EventStore) -> None:
    v = make_event(0, violation=True, plate="京A12345")
    plain = make_event(1)
    store.add_events([v, plain])
    with pytest.raises(ReviewError, match="needs a reason"):
        store.review(v.event_id, "alice", "reject", reason=" ")
    with pytest.raises(ReviewError, match="not a violation"):
        store.review(plain.event_id, "alice", "confirm")
    with pytest.raises(EventNotFoundError):
        store.review("missing", "alice", "confirm")
    with pytest.raises(ReviewError, match="not one of"):
        store.review(v.event_id, "alice", "approve")  # type: ignore[arg-type]
    assert store.audit_trail(v.event_id) == []  # refused reviews left no trace

    done = store.review(v.event_id, "alice", "confirm", corrected_plate="京A12346")
    assert done.review_state == "confirmed"
    assert done.event.plate is not None and done.event.plate.text == "京A12346"
    again = store.review(v.event_id, "bob", "reject", reason="plate unreadable")
    assert again.review_state == "rejected"
    trail = store.audit_trail(v.event_id)
    assert [(a.actor, a.action) for a in trail] == [("alice", "confirm"), ("bob", "reject")]
    assert trail[0].before == {"review_state": "pending", "plate_text": "京A12345"}
    assert trail[0].after == {"review_state": "confirmed", "plate_text": "京A12346"}
    assert trail[1].reason == "plate unreadable"
    assert store.count_events(EventFilter(review_state="rejected")) == 1

    for sql in ("UPDATE review_actions SET actor = 'mallory'", "DELETE FROM review_actions"):
        with pytest.raises(StoreIntegrityError, match="append-only"), store.db.transaction() as c:
            c.execute(sql)
    assert [a.actor for a in store.audit_trail(v.event_id)] == ["alice", "bob"]


def test_nested_write_transaction_is_refused_on_sqlite(tmp_path: Path) -> None:
    store = open_store(tmp_path / "x.db", tmp_path)
    try:
        with store.db.transaction(), pytest.raises(StoreError, match="nested write"):
            store.add_events([make_event(0)])
        assert store.add_events([make_event(0)]) == 1  # the lock was released
    finally:
        store.close()


def test_concurrent_openers_migrate_once(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    import threading

    errors: list[BaseException] = []
    stores: list[EventStore] = []

    def opener() -> None:
        try:
            stores.append(open_store(db_url, tmp_path))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        with stores[0].db.transaction(readonly=True) as conn:
            rows = conn.fetchall("SELECT version FROM schema_version")
        assert sorted(r[0] for r in rows) == [m.version for m in load_migrations()]
    finally:
        for st in stores:
            st.close()


def test_event_store_on_a_fresh_database_applies_the_schema(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    db = open_database(db_url)
    try:
        store = EventStore(db, tmp_path)
        assert store.add_events([make_event(0)]) == 1
        assert migrate(db) == []
    finally:
        db.close()
