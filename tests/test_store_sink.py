"""Sinks (store + events.jsonl), the shared JSON shape, and PostgreSQL reconnects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sharpeyes.api.store import (
    JsonlSink,
    Outbox,
    StoreSink,
    event_to_json,
    open_database,
    open_store,
)
from sharpeyes.api.store.db import qmark_to_pyformat, split_sqlite_script
from sharpeyes.api.store.serialize import event_to_json_line
from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.protocols import Sink
from tests._pg_fixtures import db_url, pg_server  # noqa: F401
from tests.test_store import make_event


def test_event_to_json_shape() -> None:
    ev = make_event(3, plate="京A12345", violation=True)
    obj = event_to_json(ev, "crops/cam1/20251113/x.jpg")
    assert obj["event_id"] == ev.event_id and obj["crop"] == "crops/cam1/20251113/x.jpg"
    assert obj["confidence"] == 0.8765  # rounded
    assert obj["box"] == {"x1": 10.5, "y1": 20.25, "x2": 110.0, "y2": 220.0,
                          "frame_w": 1920, "frame_h": 1080}  # fmt: skip
    assert obj["plate"] == {"text": "京A12345", "color": "blue", "confidence": 0.93, "layers": 1}
    violation = obj["violation"]
    assert isinstance(violation, dict) and violation["signal_color"] == "red"
    line = event_to_json_line(ev, None)
    assert "\n" not in line and "京A12345" in line and "crop_jpeg" not in line
    assert json.loads(line)["crop"] is None


def test_jsonl_sink_appends_lines_and_writes_crops(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sink = JsonlSink(out / "events.jsonl", files_root=out)
    assert isinstance(sink, Sink)
    events = [make_event(i) for i in range(3)]
    for ev in events:
        sink.emit(ev)
    # a kill now would lose nothing: every line is already in the file
    lines = (out / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    sink.close()
    sink.close()  # idempotent
    again = JsonlSink(out / "events.jsonl", files_root=out)  # appends, never truncates
    again.emit(make_event(4, crop=None))
    again.close()
    rows = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert [r["event_id"] for r in rows] == [e.event_id for e in [*events, make_event(4)]]
    for row, ev in zip(rows, events, strict=False):
        assert (out / row["crop"]).read_bytes() == ev.crop_jpeg
    assert rows[3]["crop"] is None
    with pytest.raises(StoreError, match="cannot write"):
        again.emit(make_event(5))


def test_store_sink_and_jsonl_share_crop_paths(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    store = open_store(db_url, tmp_path)
    try:
        sink = StoreSink(store, outbox_destinations=["viid"], device_id="34020000001320000001")
        jsonl = JsonlSink(tmp_path / "events.jsonl", files_root=tmp_path)
        assert isinstance(sink, Sink)
        ev = make_event(1, violation=True)
        for s in (sink, jsonl):
            s.emit(ev)
            s.emit(ev)  # replayed: ignored by the store, no second outbox row
            s.close()
        assert (sink.added, sink.duplicates) == (1, 1)
        stored = store.get_event(ev.event_id)
        assert stored is not None and stored.device_id == "34020000001320000001"
        line = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[0])
        assert line["crop"] == stored.crop_path
        assert stored.to_json()["review_state"] == "pending"
        assert Outbox(store.db).stats("viid").backlog == 1
    finally:
        store.db.close()


def test_qmark_translation() -> None:
    sql = "SELECT '?', \"a?\", x % 2 FROM t WHERE a = ? AND b LIKE '%?' -- what?\n AND c = ?"
    assert qmark_to_pyformat(sql) == (
        "SELECT '?', \"a?\", x %% 2 FROM t WHERE a = %s AND b LIKE '%%?' -- what?\n AND c = %s"
    )


def test_sqlite_script_split_keeps_trigger_bodies() -> None:
    script = "CREATE TABLE a (x INT);\nCREATE TRIGGER t BEFORE DELETE ON a\nBEGIN\n"
    script += "  SELECT RAISE(ABORT, 'no; really');\nEND;\n-- trailing comment\n"
    parts = split_sqlite_script(script)
    assert len(parts) == 2 and parts[1].endswith("END;")
    with pytest.raises(StoreError, match="incomplete"):
        split_sqlite_script("CREATE TABLE b (x INT)")


@pytest.mark.postgres
def test_postgres_reconnects_after_a_dropped_connection(pg_server: str) -> None:  # noqa: F811
    import psycopg

    from tests._pg_fixtures import fresh_pg_database

    with fresh_pg_database(pg_server) as url:
        db = open_database(url)
        try:
            with db.transaction() as conn:
                conn.execute("CREATE TABLE t (x INTEGER)")
            with psycopg.connect(pg_server, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'sharpeyes' AND datname = %s",
                    (url.rsplit("/", 1)[1],),
                )
            with db.transaction() as conn:  # the dropped connection is replaced transparently
                conn.execute("INSERT INTO t (x) VALUES (?)", (1,))
            with db.transaction(readonly=True) as conn:
                assert conn.fetchone("SELECT COUNT(*) FROM t") == (1,)
                with pytest.raises(StoreError, match="read-only"):
                    conn.execute("INSERT INTO t (x) VALUES (2)")
        finally:
            db.close()
