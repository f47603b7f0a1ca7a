"""The event store: events, their crops, outbox rows, feed rows and stream positions committed
together.

Commit protocol (``docs/SCALE_OUT.md`` §2.3), in :func:`write_groups` — the ONE write path of
events, used by :meth:`EventStore.write_batch` (:class:`~sharpeyes.api.store.sink.StoreSink`,
``add_events``), the node's :class:`~sharpeyes.api.store.writer.StoreWriter` and the cluster's
:meth:`~sharpeyes.api.cluster.leases.LeaseStore.commit`: crops are written atomically *before*
the transaction, so a committed row never points at a missing file (a kill in between leaves an
orphan file that the next attempt reuses); then one transaction runs the caller's hook (stream
position, lease check — refused when the epoch is older than the stored one: a fenced, stale
owner), inserts the events (ids are deterministic, duplicates are ignored) and, for the rows
actually inserted only, one outbox row per destination and the ``feed_log`` row whose ``seq`` is
the live feed's SSE id. An event is therefore never committed without its outbox and feed rows,
nor the reverse. Each insert also takes its ``ingest_seq`` from the one-row ``ingest_counter``,
whose row lock (PostgreSQL) is held until commit: sequences become visible in increasing order,
which is what lets a poller page with ``after=<seq>`` and miss nothing (:meth:`list_ingested`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sharpeyes.api.store import outbox
from sharpeyes.api.store.db import Connection, Database, Param, Row
from sharpeyes.api.store.files import write_crops
from sharpeyes.api.store.migrate import migrate
from sharpeyes.api.store.records import (
    EVENT_COLUMNS,
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
from sharpeyes.api.store.routing import (
    REVIEW_KIND,
    review_destinations,
    review_object_id,
    subscription_destinations,
)
from sharpeyes.api.store.serialize import dumps
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.types import Event

MAX_PAGE = 1000


REVIEW_FEED_TYPE = "review"  # feed_log.type of a review decision (SSE event name)


class EventNotFoundError(StoreError, LookupError):
    """No event with that id is stored."""


class InvalidCursorError(StoreError, ValueError):
    """A pagination cursor was not produced by this store."""


class ReviewError(StoreError, ValueError):
    """A review request is not allowed (not a violation, reject without reason, bad action)."""


class ReviewConflictError(ReviewError):
    """The violation is already confirmed: a second confirm is refused (no audit line)."""


class FencedError(StoreError):
    """A stream position was written with an epoch older than the stored one."""


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
        ("plate_color = ?", f.plate_color),
        ("vehicle_color = ?", f.vehicle_color),
        ("coat_color = ?", f.coat_color),
        ("trousers_color = ?", f.trousers_color),
        ("class_name = ?", f.class_name),
    ]
    for cond, value in simple:
        if value is not None:
            conds.append(cond)
            params.append(value)
    if f.plate_contains:
        conds.append("UPPER(plate_text) LIKE ? ESCAPE '\\'")
        params.append(f"%{_like_escape(f.plate_contains.upper())}%")
    if f.plate_pattern:
        conds.append("UPPER(plate_text) LIKE ? ESCAPE '\\'")
        params.append(plate_like(f.plate_pattern))
    if f.violations_only:
        conds.append("violation_code IS NOT NULL")
    if f.violation_types:
        # the suite's charges name their type in extra; red-light ones go by their event type
        # (``pipeline.rules.violation_type``). ``->>`` reads JSON on SQLite ≥ 3.38 and JSONB.
        marks = ", ".join("?" for _ in f.violation_types)
        vtype = "COALESCE(extra ->> 'violation_type', type)"
        conds.append(f"violation_code IS NOT NULL AND {vtype} IN ({marks})")
        params.extend(f.violation_types)
    return " AND ".join(conds), params


def plate_like(pattern: str) -> str:
    """A plate pattern as SQL ``LIKE``: ``?`` is one unreadable character, ``*`` any run
    (``京A1?345``, ``*12345``); everything else is literal (case-insensitive)."""
    out = []
    for ch in pattern.upper():
        out.append("_" if ch == "?" else "%" if ch == "*" else _like_escape(ch))
    return "".join(out)


TxHook = Callable[[Connection], None]


@dataclass(frozen=True, slots=True)
class WriteGroup:
    """Events written with the same device id, outbox destinations and feed flag."""

    events: tuple[Event, ...]
    destinations: tuple[str, ...] = ()
    device_id: str | None = None
    feed: bool = False


@dataclass(frozen=True, slots=True)
class Written:
    """An event that was new (inserted) in a committed transaction.

    ``stored`` is the row as a reader would get it back; ``feed_seq`` is its ``feed_log.seq``
    (the SSE id), None when it was written without a feed row.
    """

    stored: StoredEvent
    feed_seq: int | None

    @property
    def event_id(self) -> str:
        return self.stored.event_id


_EVENT_CHUNK = 200  # rows per multi-row INSERT (x 44 columns: under SQLite's variable limit)
_FEED_CHUNK = 1000


_INSERT_COLUMNS = (*EVENT_COLUMNS, "ingest_seq")


def _insert_events_sql(n: int) -> str:
    one = f"({', '.join('?' for _ in _INSERT_COLUMNS)})"
    return (
        f"INSERT INTO events ({', '.join(_INSERT_COLUMNS)}) VALUES {', '.join([one] * n)} "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )


def _take_ingest_seqs(conn: Connection, n: int) -> int:
    """Reserve ``n`` ingest sequences in the caller's transaction; returns the first one.

    The counter row stays locked until the transaction ends (PostgreSQL), so sequences become
    visible in increasing order: a reader that sees N sees every committed sequence below N.
    """
    row = conn.fetchone("UPDATE ingest_counter SET seq = seq + ? WHERE id = 1 RETURNING seq", (n,))
    if row is None:
        raise StoreError("ingest_counter is missing (store schema older than 0415?)")
    return int(row[0]) - n + 1


def _insert_feed(conn: Connection, rows: Sequence[tuple[Param, ...]], now: int) -> dict[str, int]:
    """Feed rows for new events (``rows`` from :func:`event_row`), in order; their seqs by id."""
    seqs: dict[str, int] = {}
    for start in range(0, len(rows), _FEED_CHUNK):
        part = rows[start : start + _FEED_CHUNK]
        params: list[Param] = []
        for row in part:  # event_id, type, stream_id: the first columns of EVENT_COLUMNS
            params += [row[0], row[1], row[2], now]
        values = ", ".join("(?, ?, ?, ?)" for _ in part)
        got = conn.fetchall(
            f"INSERT INTO feed_log (event_id, type, stream_id, at_ms) VALUES {values} "
            "RETURNING seq, event_id",
            params,
        )
        if len(got) != len(part):
            raise StoreError(f"feed_log insert returned {len(got)} of {len(part)} sequences")
        seqs.update((str(r[1]), int(r[0])) for r in got)
    return seqs


def _merged(destinations: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    return destinations + tuple(d for d in more if d not in destinations)


def write_groups(
    db: Database,
    files_root: Path | None,
    groups: Sequence[WriteGroup],
    *,
    extra: TxHook | None = None,
    now_ms: int | None = None,
) -> list[Written]:
    """The one write path of events, their outbox rows and their feed rows.

    1. Crops of all events are written atomically and fsynced under ``files_root`` *before* the
       transaction (a committed row never points at a missing file). With ``files_root`` None no
       file is written and ``crop_path`` stays NULL.
    2. One transaction: ``extra(conn)`` first (a stream position, a lease check and advance —
       raising there rolls everything back), then each event is inserted with
       ``ON CONFLICT (event_id) DO NOTHING``; only rows actually inserted get one outbox row per
       destination — the group's, and ``sub:<SubscribeID>`` for every active GA/T 1400
       subscription the event matches (:mod:`sharpeyes.api.store.routing`) — and (when the
       group's ``feed``) one ``feed_log`` row. Duplicates — stored
       earlier, or twice in this call — get nothing.
    3. Evidence paths are stored relative to ``files_root`` when they lie below it.

    Returns the new events in insertion order (empty when all were duplicates).

    Raises:
        StoreError: the database or the evidence directory failed; nothing is committed (crop
            files already written stay, and are reused by the next attempt).
    """
    crops: list[list[str | None]] = [
        write_crops(files_root, g.events) if files_root is not None else [None] * len(g.events)
        for g in groups
    ]
    now = clock.now_ms() if now_ms is None else now_ms
    rows: list[tuple[WriteGroup, tuple[Param, ...]]] = [
        (group, event_row(event, crop, group.device_id, now, files_root))
        for group, group_crops in zip(groups, crops, strict=True)
        for event, crop in zip(group.events, group_crops, strict=True)
    ]
    events_by_id: dict[str, Event] = {}
    for g in groups:
        for e in g.events:
            events_by_id.setdefault(e.event_id, e)
    written: list[Written] = []
    with db.transaction() as conn:
        if extra is not None:
            extra(conn)
        inserted: set[str] = set()
        first_seq = _take_ingest_seqs(conn, len(rows)) if rows else 0
        for start in range(0, len(rows), _EVENT_CHUNK):
            part = [row for _, row in rows[start : start + _EVENT_CHUNK]]
            params = [
                value for i, row in enumerate(part, start=first_seq + start) for value in (*row, i)
            ]
            got = conn.fetchall(_insert_events_sql(len(part)), params)
            inserted.update(str(r[0]) for r in got)
        new: list[tuple[WriteGroup, tuple[Param, ...]]] = []
        for group, row in rows:  # first occurrence only (an id may repeat within a call)
            event_id = str(row[0])
            if event_id in inserted:
                inserted.discard(event_id)
                new.append((group, row))
        # the GA/T 1400 subscriptions each new event matches (api/store/routing.py)
        subs = subscription_destinations(
            conn, [(events_by_id[str(row[0])], group.device_id) for group, row in new], now
        )
        outbox.enqueue_many(
            conn,
            [
                (dest, str(row[0]), str(row[1]))
                for (group, row), sub in zip(new, subs, strict=True)
                for dest in _merged(group.destinations, sub)
            ],
            now_ms=now,
        )
        seqs = _insert_feed(conn, [row for group, row in new if group.feed], now)
        written = [(Written(row_to_stored(row), seqs.get(str(row[0])))) for _, row in new]
    return written


@dataclass(frozen=True, slots=True)
class LoggedReview:
    """One review decision as it was recorded: its audit entry and its place among the
    decisions on the same event (``number``: 1 for the first, counting in audit order)."""

    action: ReviewAction
    number: int


@dataclass(frozen=True, slots=True)
class IngestPage:
    """Events stored after a sequence, in the order they were stored (``ingest_seq`` ascending).

    ``seqs[i]`` is the ingest sequence of ``items[i]``. ``next_after`` is what to pass as
    ``after`` next time: the last item's sequence on a full page, otherwise the store's
    high-water mark read *before* the page (every sequence up to it was visible to the read,
    so rows the filter skipped are not scanned again; an ``after`` beyond it — a store that was
    replaced — comes back as the high-water mark, so the poller recovers).
    """

    items: tuple[StoredEvent, ...]
    seqs: tuple[int, ...]
    next_after: int


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
        feed: bool = False,
    ) -> int:
        """Store ``events`` with their crops, outbox rows and the stream position, atomically.

        Returns how many events were new (ids already stored are ignored, and get no new
        outbox rows). ``now_ms`` (default: wall clock) stamps ``created_ms`` and the outbox rows.
        A thin wrapper over :meth:`write_batch`.

        Raises:
            FencedError: ``position.epoch`` is older than the stored epoch; nothing is written.
            StoreError: the database or the evidence directory failed; nothing is committed.
        """

        def save_position(conn: Connection) -> None:
            if position is not None:
                self._save_position(conn, position, clock.now_ms() if now_ms is None else now_ms)

        written = self.write_batch(
            events,
            destinations=outbox_destinations,
            device_id=device_id,
            feed=feed,
            extra=save_position if position is not None else None,
            now_ms=now_ms,
        )
        return len(written)

    def write_batch(
        self,
        events: Sequence[Event],
        *,
        destinations: Sequence[str],
        device_id: str | None,
        feed: bool,
        extra: TxHook | None = None,
        now_ms: int | None = None,
    ) -> list[Written]:
        """THE write path of events: crops, events, outbox rows and feed rows, atomically.

        See :func:`write_groups` (this is one group on this store's database and files root).
        """
        group = WriteGroup(tuple(events), tuple(destinations), device_id, feed)
        return write_groups(self.db, self.files_root, [group], extra=extra, now_ms=now_ms)

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

    def ingest_high_water(self) -> int:
        """The highest ingest sequence handed out by a committed transaction (0: none).

        Every event with a sequence up to it is committed: ``after=<this>`` starts a poll
        "from now"."""
        with self.db.transaction(readonly=True) as conn:
            return self._high_water(conn)

    @staticmethod
    def _high_water(conn: Connection) -> int:
        row = conn.fetchone("SELECT seq FROM ingest_counter WHERE id = 1")
        return 0 if row is None else int(row[0])

    def list_ingested(
        self, filter: EventFilter | None = None, after: int = 0, limit: int = 50
    ) -> IngestPage:
        """Events stored after ingest sequence ``after``, oldest stored first.

        A poller that passes each page's ``next_after`` back receives every event exactly once,
        however late it was stored relative to its ``first_seen`` (see :class:`IngestPage`).
        """
        limit = max(1, min(limit, MAX_PAGE))
        where, params = where_clause(filter or EventFilter())
        with self.db.transaction(readonly=True) as conn:
            # Read the high-water mark first: on PostgreSQL each statement has its own snapshot,
            # and bounding the page by it keeps "everything up to next_after was seen" true.
            high = self._high_water(conn)
            conds = [where] if where else []
            conds.append("ingest_seq > ? AND ingest_seq <= ?")
            sql = (
                f"SELECT {', '.join(EVENT_COLUMNS)}, ingest_seq FROM events "
                f"WHERE {' AND '.join(conds)} ORDER BY ingest_seq LIMIT ?"
            )
            rows = conn.fetchall(sql, (*params, after, high, limit))
        items = tuple(row_to_stored(r[:-1]) for r in rows)
        seqs = tuple(int(r[-1]) for r in rows)
        next_after = seqs[-1] if len(rows) == limit else high
        return IngestPage(items=items, seqs=seqs, next_after=next_after)

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
        """Confirm or reject a violation (see :meth:`review_logged`)."""
        return self.review_logged(event_id, actor, action, reason, corrected_plate)[0]

    def review_logged(
        self,
        event_id: str,
        actor: str,
        action: ReviewVerb,
        reason: str | None = None,
        corrected_plate: str | None = None,
    ) -> tuple[StoredEvent, int]:
        """Confirm or reject a violation, appending to its audit trail and to the live feed's
        log (a ``review`` row, so that feed consumers learn the decision, also on replay) in
        the same transaction; returns the event after it and the feed row's seq.

        The same transaction queues a ``review`` outbox row for each message bus (``mqtt``,
        ``kafka``) the event was queued for (:func:`.routing.review_destinations`), so the
        senders publish the decision: a crash can neither lose nor invent one.

        Raises:
            EventNotFoundError: no such event.
            ReviewError: not a violation, unknown action, reject without a reason, no actor.
            ReviewConflictError: a confirm of a violation already confirmed.
        """
        new_state = _check_review(action, actor, reason)
        lock = " FOR UPDATE" if self.db.backend == "postgres" else ""
        with self.db.transaction() as conn:
            row = conn.fetchone(
                f"SELECT review_state, plate_text, stream_id FROM events WHERE event_id = ?{lock}",
                (event_id,),
            )
            if row is None:
                raise EventNotFoundError(f"no event {event_id}")
            if row[0] is None:
                raise ReviewError(f"event {event_id} is not a violation; nothing to review")
            if action == "confirm" and row[0] == "confirmed":  # read under the row lock
                raise ReviewConflictError(f"violation {event_id} is already confirmed")
            before = {"review_state": row[0], "plate_text": row[1]}
            after = {"review_state": new_state, "plate_text": corrected_plate or row[1]}
            conn.execute(
                "UPDATE events SET review_state = ?, plate_text = ? WHERE event_id = ?",
                (new_state, after["plate_text"], event_id),
            )
            at = clock.now_ms()
            # fetchall: RETURNING rows read to the end, so each INSERT has completed
            action_ids = conn.fetchall(
                "INSERT INTO review_actions (event_id, actor, action, reason, before, after, "
                "at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (event_id, actor, action, reason, dumps(before), dumps(after), at),
            )
            seqs = conn.fetchall(
                "INSERT INTO feed_log (event_id, type, stream_id, at_ms) VALUES (?, ?, ?, ?) "
                "RETURNING seq",
                (event_id, REVIEW_FEED_TYPE, str(row[2]), at),
            )
            if len(action_ids) != 1 or len(seqs) != 1:
                raise StoreError(f"review of {event_id}: an insert returned no id")
            seq = int(seqs[0][0])
            object_id = review_object_id(int(action_ids[0][0]), seq)
            outbox.enqueue_many(
                conn,
                [(d, object_id, REVIEW_KIND) for d in review_destinations(conn, event_id)],
                now_ms=at,
            )
            stored = conn.fetchone(f"{SELECT_EVENT} WHERE event_id = ?", (event_id,))
        assert stored is not None
        return row_to_stored(stored), seq

    def logged_review(self, action_id: int) -> LoggedReview | None:
        """The review decision with audit entry ``action_id`` and its number among the
        decisions on its event, or None when there is no such entry."""
        with self.db.transaction(readonly=True) as conn:
            row = conn.fetchone(f"{_SELECT_REVIEW} WHERE id = ?", (action_id,))
            if row is None:
                return None
            rank = conn.fetchone(
                "SELECT COUNT(*) FROM review_actions WHERE event_id = ? AND id <= ?",
                (row[1], action_id),
            )
        return LoggedReview(_review_action(row), int(rank[0]) if rank else 1)

    def audit_trail(self, event_id: str) -> list[ReviewAction]:
        """Every review action on an event, oldest first."""
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(f"{_SELECT_REVIEW} WHERE event_id = ? ORDER BY id", (event_id,))
        return [_review_action(r) for r in rows]


_SELECT_REVIEW = (
    "SELECT id, event_id, actor, action, reason, before, after, at_ms FROM review_actions"
)


def _review_action(r: Row) -> ReviewAction:
    return ReviewAction(
        id=int(r[0]),
        event_id=str(r[1]),
        actor=str(r[2]),
        action=str(r[3]),
        reason=r[4],
        before=json.loads(r[5]),
        after=json.loads(r[6]),
        at_ms=int(r[7]),
    )


_STATE_FOR: dict[str, ReviewState] = {"confirm": "confirmed", "reject": "rejected"}


def _check_review(action: str, actor: str, reason: str | None) -> ReviewState:
    if action not in _STATE_FOR:
        raise ReviewError(f"review action {action!r} is not one of confirm, reject")
    if not actor.strip():
        raise ReviewError("review needs an actor")
    if action == "reject" and not (reason and reason.strip()):
        raise ReviewError("rejecting a violation needs a reason")
    return _STATE_FOR[action]
