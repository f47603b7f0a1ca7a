"""The event store: events, their crops, outbox rows and stream positions committed together.

Commit protocol (``docs/SCALE_OUT.md`` §2.3): crops are written atomically *before* the
transaction, so a committed row never points at a missing file (a kill in between leaves an
orphan file that the next attempt reuses); then one transaction inserts the events (ids are
deterministic, duplicates are ignored), enqueues one outbox row per destination per new event,
and moves the stream position — refused when the position's epoch is older than the stored one
(a fenced, stale owner).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Sequence
from pathlib import Path

from sharpeyes.api.store import outbox
from sharpeyes.api.store.db import Connection, Database, Param
from sharpeyes.api.store.files import write_crops
from sharpeyes.api.store.migrate import migrate
from sharpeyes.api.store.records import (
    INSERT_EVENT,
    SELECT_EVENT,
    EventFilter,
    Page,
    ReviewAction,
    ReviewState,
    ReviewVerb,
    StoredEvent,
    StreamPosition,
    event_row,
    row_to_stored,
)
from sharpeyes.api.store.serialize import dumps
from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.types import Event

MAX_PAGE = 1000


class EventNotFoundError(StoreError, LookupError):
    """No event with that id is stored."""


class InvalidCursorError(StoreError, ValueError):
    """A pagination cursor was not produced by this store."""


class ReviewError(StoreError, ValueError):
    """A review request is not allowed (not a violation, reject without reason, bad action)."""


class FencedError(StoreError):
    """A stream position was written with an epoch older than the stored one."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def encode_cursor(first_seen_ms: int, event_id: str) -> str:
    raw = json.dumps([first_seen_ms, event_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ms, event_id = json.loads(raw)
        if not isinstance(ms, int) or not isinstance(event_id, str):
            raise TypeError("wrong cursor field types")
    except (binascii.Error, ValueError, TypeError) as e:
        raise InvalidCursorError(f"invalid cursor {cursor[:40]!r}") from e
    return ms, event_id


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def where_clause(f: EventFilter) -> tuple[str, list[Param]]:
    """SQL ``WHERE`` conditions (joined by AND, may be empty) and their parameters."""
    conds: list[str] = []
    params: list[Param] = []
    if f.stream_ids:
        conds.append(f"stream_id IN ({', '.join('?' for _ in f.stream_ids)})")
        params.extend(f.stream_ids)
    if f.device_id is not None:
        conds.append("device_id = ?")
        params.append(f.device_id)
    if f.types:
        conds.append(f"type IN ({', '.join('?' for _ in f.types)})")
        params.extend(str(t) for t in f.types)
    simple: list[tuple[str, Param]] = [
        ("kind = ?", None if f.kind is None else f.kind.label),
        ("first_seen_ms >= ?", f.since_ms),
        ("first_seen_ms < ?", f.until_ms),
        ("plate_text = ?", f.plate),
        ("review_state = ?", f.review_state),
    ]
    for cond, value in simple:
        if value is not None:
            conds.append(cond)
            params.append(value)
    if f.plate_contains:
        conds.append("UPPER(plate_text) LIKE ? ESCAPE '\\'")
        params.append(f"%{_like_escape(f.plate_contains.upper())}%")
    if f.violations_only:
        conds.append("violation_code IS NOT NULL")
    return " AND ".join(conds), params


class EventStore:
    """Events, crops, outbox and stream positions on one :class:`Database`.

    ``files_root`` holds evidence files (``crops/…``); paths stored in rows are relative to it.
    With ``ensure_schema`` (default) pending migrations are applied first (a no-op read when
    the schema is current), so a store built on a fresh database is ready to use.

    Raises:
        StoreError: the schema is newer than this sharpeyes, or a migration failed.
    """

    def __init__(self, db: Database, files_root: Path, *, ensure_schema: bool = True) -> None:
        self.db = db
        self.files_root = Path(files_root)
        if ensure_schema:
            migrate(db)

    def close(self) -> None:
        self.db.close()

    # --- writing -------------------------------------------------------------------------

    def add_events(
        self,
        events: Sequence[Event],
        *,
        outbox_destinations: Sequence[str] = (),
        position: StreamPosition | None = None,
        device_id: str | None = None,
        now_ms: int | None = None,
    ) -> int:
        """Store ``events`` with their crops, outbox rows and the stream position, atomically.

        Returns how many events were new (ids already stored are ignored, and get no new
        outbox rows). ``now_ms`` (default: wall clock) stamps ``created_ms`` and the outbox rows.

        Raises:
            FencedError: ``position.epoch`` is older than the stored epoch; nothing is written.
            StoreError: the database or the evidence directory failed; nothing is committed.
        """
        crops = write_crops(self.files_root, events)  # durable before the commit
        now = _now_ms() if now_ms is None else now_ms
        with self.db.transaction() as conn:
            new: list[Event] = []
            for event, crop in zip(events, crops, strict=True):
                if (
                    conn.execute(
                        INSERT_EVENT, event_row(event, crop, device_id, now, self.files_root)
                    )
                    > 0
                ):
                    new.append(event)
            for destination in outbox_destinations:
                for event in new:
                    outbox.enqueue(
                        conn, destination, [event.event_id], kind=str(event.type), now_ms=now
                    )
            if position is not None:
                self._save_position(conn, position, now)
        return len(new)

    @staticmethod
    def _save_position(conn: Connection, pos: StreamPosition, now_ms: int) -> None:
        changed = conn.execute(
            "INSERT INTO stream_positions (stream_id, seq, pts, epoch, updated_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream_id) DO UPDATE SET seq = excluded.seq, "
            "pts = excluded.pts, epoch = excluded.epoch, updated_ms = excluded.updated_ms "
            "WHERE stream_positions.epoch <= excluded.epoch",
            (pos.stream_id, pos.seq, pos.pts, pos.epoch, now_ms),
        )
        if changed == 0:
            raise FencedError(
                f"stream {pos.stream_id}: epoch {pos.epoch} is fenced by a newer owner"
            )

    def set_evidence(
        self, event_id: str, evidence_dir: str | None, metadata_path: str | None
    ) -> None:
        """Record where an event's evidence package lives (relative to ``files_root``)."""
        with self.db.transaction() as conn:
            n = conn.execute(
                "UPDATE events SET evidence_dir = ?, metadata_path = ? WHERE event_id = ?",
                (evidence_dir, metadata_path, event_id),
            )
        if n == 0:
            raise EventNotFoundError(f"no event {event_id}")

    # --- reading -------------------------------------------------------------------------

    def get_event(self, event_id: str) -> StoredEvent | None:
        with self.db.transaction(readonly=True) as conn:
            row = conn.fetchone(f"{SELECT_EVENT} WHERE event_id = ?", (event_id,))
        return None if row is None else row_to_stored(row)

    def crop_file(self, stored: StoredEvent) -> Path | None:
        """Absolute path of a stored event's crop, or None."""
        return None if stored.crop_path is None else self.files_root / stored.crop_path

    def get_position(self, stream_id: str) -> StreamPosition | None:
        with self.db.transaction(readonly=True) as conn:
            row = conn.fetchone(
                "SELECT seq, pts, epoch FROM stream_positions WHERE stream_id = ?", (stream_id,)
            )
        if row is None:
            return None
        return StreamPosition(stream_id, int(row[0]), float(row[1]), int(row[2]))

    def list_events(
        self, filter: EventFilter | None = None, cursor: str | None = None, limit: int = 50
    ) -> Page[StoredEvent]:
        """Newest first (``first_seen_ms`` desc, then ``event_id``), keyset-paginated.

        Pages stay stable while events are added: the cursor names the last row seen, not an
        offset.

        Raises:
            InvalidCursorError: ``cursor`` is malformed.
        """
        limit = max(1, min(limit, MAX_PAGE))
        where, params = where_clause(filter or EventFilter())
        conds = [where] if where else []
        if cursor is not None:
            ms, event_id = decode_cursor(cursor)
            conds.append("(first_seen_ms < ? OR (first_seen_ms = ? AND event_id > ?))")
            params += [ms, ms, event_id]
        sql = SELECT_EVENT + (f" WHERE {' AND '.join(conds)}" if conds else "")
        sql += " ORDER BY first_seen_ms DESC, event_id ASC LIMIT ?"
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(sql, (*params, limit + 1))
        items = tuple(row_to_stored(r) for r in rows[:limit])
        next_cursor = None
        if len(rows) > limit:
            last = items[-1].event
            next_cursor = encode_cursor(last.first_seen_ms, last.event_id)
        return Page(items=items, next_cursor=next_cursor)

    def count_events(self, filter: EventFilter | None = None) -> int:
        where, params = where_clause(filter or EventFilter())
        sql = "SELECT COUNT(*) FROM events" + (f" WHERE {where}" if where else "")
        with self.db.transaction(readonly=True) as conn:
            row = conn.fetchone(sql, params)
        return 0 if row is None else int(row[0])

    # --- review --------------------------------------------------------------------------

    def review(
        self,
        event_id: str,
        actor: str,
        action: ReviewVerb,
        reason: str | None = None,
        corrected_plate: str | None = None,
    ) -> StoredEvent:
        """Confirm or reject a violation, appending to its audit trail in the same transaction.

        Raises:
            EventNotFoundError: no such event.
            ReviewError: not a violation, unknown action, reject without a reason, no actor.
        """
        new_state = _check_review(action, actor, reason)
        lock = " FOR UPDATE" if self.db.backend == "postgres" else ""
        with self.db.transaction() as conn:
            row = conn.fetchone(
                f"SELECT review_state, plate_text FROM events WHERE event_id = ?{lock}",
                (event_id,),
            )
            if row is None:
                raise EventNotFoundError(f"no event {event_id}")
            if row[0] is None:
                raise ReviewError(f"event {event_id} is not a violation; nothing to review")
            before = {"review_state": row[0], "plate_text": row[1]}
            after = {"review_state": new_state, "plate_text": corrected_plate or row[1]}
            conn.execute(
                "UPDATE events SET review_state = ?, plate_text = ? WHERE event_id = ?",
                (new_state, after["plate_text"], event_id),
            )
            conn.execute(
                "INSERT INTO review_actions (event_id, actor, action, reason, before, after, "
                "at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, actor, action, reason, dumps(before), dumps(after), _now_ms()),
            )
            stored = conn.fetchone(f"{SELECT_EVENT} WHERE event_id = ?", (event_id,))
        assert stored is not None
        return row_to_stored(stored)

    def audit_trail(self, event_id: str) -> list[ReviewAction]:
        """Every review action on an event, oldest first."""
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                "SELECT id, event_id, actor, action, reason, before, after, at_ms "
                "FROM review_actions WHERE event_id = ? ORDER BY id",
                (event_id,),
            )
        return [
            ReviewAction(
                id=int(r[0]),
                event_id=str(r[1]),
                actor=str(r[2]),
                action=str(r[3]),
                reason=r[4],
                before=json.loads(r[5]),
                after=json.loads(r[6]),
                at_ms=int(r[7]),
            )
            for r in rows
        ]


_STATE_FOR: dict[str, ReviewState] = {"confirm": "confirmed", "reject": "rejected"}


def _check_review(action: str, actor: str, reason: str | None) -> ReviewState:
    if action not in _STATE_FOR:
        raise ReviewError(f"review action {action!r} is not one of confirm, reject")
    if not actor.strip():
        raise ReviewError("review needs an actor")
    if action == "reject" and not (reason and reason.strip()):
        raise ReviewError("rejecting a violation needs a reason")
    return _STATE_FOR[action]
