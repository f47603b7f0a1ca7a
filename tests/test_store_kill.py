"""Kill safety: a writer process SIGKILLed mid-stream loses nothing committed and leaves no
partial batch, no row without its crop, no event without its outbox rows; it resumes from the
stored stream position."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sharpeyes.api.store import EventFilter, Outbox, StoredEvent, open_store
from sharpeyes.api.store.files import sweep_temp_files
from tests._pg_fixtures import db_url, pg_server  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
BATCH = 5
DESTINATIONS = ("viid", "mq")

WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    from sharpeyes.api.store import StreamPosition, open_store
    from sharpeyes.pipeline.types import Event, EventType, ObjectKind

    url, root, batch_size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    store = open_store(url, root)
    pos = store.get_position("cam1")
    batch = 0 if pos is None else pos.seq + 1
    print("start", batch, flush=True)
    while True:
        events = [
            Event(
                event_id=f"b{batch:06d}e{k}",
                type=EventType.VEHICLE_PASS,
                stream_id="cam1",
                first_seen_ms=1_763_000_000_000 + batch * 100 + k,
                last_seen_ms=1_763_000_000_000 + batch * 100 + k,
                first_pts=batch * 0.1,
                last_pts=batch * 0.1,
                kind=ObjectKind.MOTOR_VEHICLE,
                crop_jpeg=hashlib.sha256(f"{batch}/{k}".encode()).digest() * 512,
            )
            for k in range(batch_size)
        ]
        store.add_events(
            events,
            outbox_destinations=("viid", "mq"),
            position=StreamPosition("cam1", batch, batch * 0.1),
        )
        print(batch, flush=True)
        batch += 1
    """
)


def _expected_crop(batch: int, k: int) -> bytes:
    return hashlib.sha256(f"{batch}/{k}".encode()).digest() * 512


def _run_and_kill(script: Path, url: str, root: Path, min_batches: int, rng: random.Random) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(script), url, str(root), str(BATCH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        start = proc.stdout.readline().split()
        assert start and start[0] == "start", proc.stderr.read() if proc.stderr else ""
        done = 0
        deadline = time.monotonic() + 60
        while done < min_batches and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "writer exited"
            done += 1
        time.sleep(rng.uniform(0.0, 0.03))  # land the kill anywhere inside a batch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    return int(start[1])


@pytest.mark.integration
def test_sigkill_loses_nothing_committed(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = tmp_path / "files"
    rng = random.Random(1400)
    resumed_at = [_run_and_kill(script, db_url, root, n, rng) for n in (15, 25, 10)]

    store = open_store(db_url, root)
    try:
        pos = store.get_position("cam1")
        assert pos is not None and pos.seq >= 49
        assert resumed_at[0] == 0
        assert resumed_at[1] > 0 and resumed_at[2] > resumed_at[1]  # restarts resumed
        stored: list[StoredEvent] = []
        cursor = None
        while True:
            page = store.list_events(EventFilter(stream_ids=("cam1",)), cursor, limit=1000)
            stored.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        # exactly the batches up to the committed position, each one whole
        expected_ids = {f"b{b:06d}e{k}" for b in range(pos.seq + 1) for k in range(BATCH)}
        assert {s.event_id for s in stored} == expected_ids
        for s in stored:
            batch, k = int(s.event_id[1:7]), int(s.event_id[8:])
            path = store.crop_file(s)
            assert path is not None and path.read_bytes() == _expected_crop(batch, k)
        box = Outbox(store.db)
        for dest in DESTINATIONS:
            assert box.stats(dest).backlog == len(expected_ids)
        # a kill inside a crop write may leave a temp file; the sweep removes only those
        (root / "crops" / ".x.jpg.abc.tmp").write_bytes(b"partial")
        sweep_temp_files(root, older_than_s=0.0)
        assert list(root.rglob("*.tmp")) == []
        assert all(store.crop_file(s).is_file() for s in stored)  # type: ignore[union-attr]
        with store.db.transaction(readonly=True) as conn:
            orphans = conn.fetchone(
                "SELECT COUNT(*) FROM outbox o WHERE NOT EXISTS "
                "(SELECT 1 FROM events e WHERE e.event_id = o.object_id)"
            )
        assert orphans == (0,)
    finally:
        store.db.close()
