"""The durable outbox: rows enqueued in the same transaction as their events, delivered in id order.

A sender loop::

    items = outbox.claim_batch("viid", limit=10, now_ms=now)
    ... POST them ...
    outbox.mark_delivered([i.id for i in ok], now_ms=now)
    outbox.mark_failed([i.id for i in bad], "HTTP 503", now_ms=now, next_attempt_ms=now + backoff)

Claiming moves ``next_attempt_ms`` forward by ``lease_ms``, so a claimed row is invisible to other
claimers until it is marked or the lease runs out (a sender killed mid-batch loses nothing: its rows
become due again). On PostgreSQL the claim uses ``FOR UPDATE SKIP LOCKED`` so two senders never
wait on or claim the same rows; on SQLite the single writer serialises claims. Delivery is
at-least-once: the receiver treats a known object id as success (GA/T 1400 §9).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sharpeyes.api.store.db import Connection, Database, Param, Row

DEFAULT_LEASE_MS = 60_000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    destination: str
    object_id: str
    kind: str
    created_ms: int
    attempts: int
    next_attempt_ms: int
    last_error: str | None
    rejections: int = 0  # per-object transient answers (migration 0402), not transport failures


def retry_delay_s(attempts: int, initial_s: float, max_s: float) -> float:
    """When to try a failed row again: exponential back-off from ``initial_s`` (doubling per
    attempt so far, capped at ``max_s``), jittered to 50–100 % so senders do not retry in step."""
    return min(max_s, initial_s * 2.0 ** min(attempts, 20)) * random.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    destination: str
    backlog: int  # pending rows (due or not)
    oldest_pending_age_ms: int | None  # now - created_ms of the oldest pending row
    retrying: int  # pending rows that failed at least once
    delivered: int
    failed: int  # given up on (mark_dead)


_ITEM_COLS = ", ".join(
    (
        "id",
        "destination",
        "object_id",
        "kind",
        "created_ms",
        "attempts",
        "next_attempt_ms",
        "last_error",
        "rejections",
    )
)


def _item(row: Row) -> OutboxItem:
    return OutboxItem(
        id=int(row[0]),
        destination=str(row[1]),
        object_id=str(row[2]),
        kind=str(row[3]),
        created_ms=int(row[4]),
        attempts=int(row[5]),
        next_attempt_ms=int(row[6]),
        last_error=None if row[7] is None else str(row[7]),
        rejections=int(row[8]),
    )


def enqueue(
    conn: Connection,
    destination: str,
    object_ids: Sequence[str],
    *,
    kind: str,
    now_ms: int,
) -> int:
    """Add rows inside the caller's transaction; ids already queued for ``destination`` are
    ignored. Returns the number of rows added."""
    added = 0
    for object_id in object_ids:
        added += max(
            0,
            conn.execute(
                "INSERT INTO outbox (destination, object_id, kind, created_ms, next_attempt_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (destination, object_id) DO NOTHING",
                (destination, object_id, kind, now_ms, now_ms),
            ),
        )
    return added


def enqueue_many(
    conn: Connection, rows: Sequence[tuple[str, str, str]], *, now_ms: int, chunk: int = _CHUNK
) -> int:
    """Add ``(destination, object_id, kind)`` rows with multi-row INSERTs (one round trip per
    ``chunk`` rows) inside the caller's transaction; rows already queued are ignored."""
    added = 0
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        params: list[Param] = []
        for destination, object_id, kind in part:
            params += [destination, object_id, kind, now_ms, now_ms]
        values = ", ".join("(?, ?, ?, ?, ?)" for _ in part)
        added += max(
            0,
            conn.execute(
                "INSERT INTO outbox (destination, object_id, kind, created_ms, next_attempt_ms) "
                f"VALUES {values} ON CONFLICT (destination, object_id) DO NOTHING",
                params,
            ),
        )
    return added


def _in_list(ids: Sequence[int]) -> str:
    return ", ".join("?" for _ in ids)


class Outbox:
    """Claim, mark and count outbox rows of a :class:`~sharpeyes.api.store.db.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(
        self, destination: str, object_ids: Sequence[str], *, kind: str, now_ms: int
    ) -> int:
        """Enqueue in a transaction of its own (use :func:`enqueue` inside another one)."""
        with self.db.transaction() as conn:
            return enqueue(conn, destination, object_ids, kind=kind, now_ms=now_ms)

    def claim_batch(
        self, destination: str, limit: int, now_ms: int, *, lease_ms: int = DEFAULT_LEASE_MS
    ) -> list[OutboxItem]:
        """Pending, due rows of ``destination``, oldest id first, leased for ``lease_ms``."""
        if limit <= 0:
            return []
        lock = " FOR UPDATE SKIP LOCKED" if self.db.backend == "postgres" else ""
        with self.db.transaction() as conn:
            rows = conn.fetchall(
                f"SELECT {_ITEM_COLS} FROM outbox WHERE destination = ? AND state = 'pending' "
                f"AND next_attempt_ms <= ? ORDER BY id LIMIT ?{lock}",
                (destination, now_ms, limit),
            )
            items = [_item(r) for r in rows]
            if items:
                ids = [i.id for i in items]
                conn.execute(
                    f"UPDATE outbox SET next_attempt_ms = ? WHERE id IN ({_in_list(ids)})",
                    (now_ms + lease_ms, *ids),
                )
        return items

    def _update(self, set_sql: str, params: Sequence[Param], ids: Sequence[int]) -> int:
        changed = 0
        with self.db.transaction() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = list(ids[start : start + _CHUNK])
                changed += conn.execute(
                    f"UPDATE outbox SET {set_sql} WHERE state = 'pending' "
                    f"AND id IN ({_in_list(chunk)})",
                    (*params, *chunk),
                )
        return changed

    def mark_delivered(self, ids: Sequence[int], now_ms: int) -> int:
        """Mark rows delivered; returns how many pending rows changed."""
        return self._update("state = 'delivered', delivered_ms = ?", (now_ms,), ids)

    def mark_failed(
        self,
        ids: Sequence[int],
        error: str,
        now_ms: int,
        next_attempt_ms: int,
        *,
        rejected: bool = False,
    ) -> int:
        """Record a failed attempt; the rows stay pending and become due at ``next_attempt_ms``.
        ``rejected``: the destination answered this object with a transient refusal (counted in
        ``rejections``, unlike transport failures)."""
        del now_ms  # kept for symmetry with the other marks and for future audit columns
        extra = ", rejections = rejections + 1" if rejected else ""
        return self._update(
            f"attempts = attempts + 1{extra}, last_error = ?, next_attempt_ms = ?",
            (error[:1000], next_attempt_ms),
            ids,
        )

    def mark_dead(self, ids: Sequence[int], error: str, now_ms: int) -> int:
        """Give up on rows (state ``failed``); an operator can :meth:`requeue` them."""
        return self._update(
            "state = 'failed', attempts = attempts + 1, last_error = ?, next_attempt_ms = ?",
            (error[:1000], now_ms),
            ids,
        )

    def make_due(self, destination: str, now_ms: int) -> int:
        """Bring every pending row of ``destination`` waiting out a retry back-off forward to
        ``now_ms`` (a person re-sending by hand is not a busy service); returns how many."""
        with self.db.transaction() as conn:
            return conn.execute(
                "UPDATE outbox SET next_attempt_ms = ? "
                "WHERE destination = ? AND state = 'pending' AND next_attempt_ms > ?",
                (now_ms, destination, now_ms),
            )

    def requeue(self, destination: str, now_ms: int) -> int:
        """Put every ``failed`` row of ``destination`` back to pending, due now."""
        return self.retry_dead(destination, None, now_ms)

    # -- dead letters: rows given up on (state ``failed``), ``last_error`` is the reason -------

    def list_dead(
        self, destination: str, *, limit: int = 100, after_id: int = 0
    ) -> list[OutboxItem]:
        """Dead letters of ``destination`` in id order (page with ``after_id``); each row's
        ``last_error`` is the reason and ``next_attempt_ms`` the time it was given up on."""
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                f"SELECT {_ITEM_COLS} FROM outbox WHERE destination = ? AND state = 'failed' "
                "AND id > ? ORDER BY id LIMIT ?",
                (destination, after_id, max(0, limit)),
            )
        return [_item(r) for r in rows]

    def dead_reasons(self, destination: str) -> dict[str, int]:
        """Dead letters per reason (for metrics / the status page)."""
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(
                "SELECT last_error, COUNT(*) FROM outbox WHERE destination = ? "
                "AND state = 'failed' GROUP BY last_error",
                (destination,),
            )
        return {str(r[0] or ""): int(r[1]) for r in rows}

    def retry_dead(self, destination: str, ids: Sequence[int] | None, now_ms: int) -> int:
        """Put dead letters back to pending, due now, with a fresh attempt count: the rows
        ``ids`` (rows not dead are left alone) or, with ``ids=None``, all of ``destination``."""
        with self.db.transaction() as conn:
            if ids is None:
                return conn.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, rejections = 0, "
                    "next_attempt_ms = ? WHERE destination = ? AND state = 'failed'",
                    (now_ms, destination),
                )
            changed = 0
            for start in range(0, len(ids), _CHUNK):
                chunk = list(ids[start : start + _CHUNK])
                changed += conn.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, rejections = 0, "
                    "next_attempt_ms = ? "
                    f"WHERE destination = ? AND state = 'failed' AND id IN ({_in_list(chunk)})",
                    (now_ms, destination, *chunk),
                )
            return changed

    def stats(self, destination: str, now_ms: int | None = None) -> OutboxStats:
        """Counts for one destination; ages relative to ``now_ms`` (default: the wall clock)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self.db.transaction(readonly=True) as conn:
            row = conn.fetchone(
                "SELECT "
                "COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0), "
                "MIN(CASE WHEN state = 'pending' THEN created_ms END), "
                "COALESCE(SUM(CASE WHEN state = 'pending' AND attempts > 0 THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) "
                "FROM outbox WHERE destination = ?",
                (destination,),
            )
        assert row is not None
        oldest = None if row[1] is None else max(0, now_ms - int(row[1]))
        return OutboxStats(
            destination=destination,
            backlog=int(row[0]),
            oldest_pending_age_ms=oldest,
            retrying=int(row[2]),
            delivered=int(row[3]),
            failed=int(row[4]),
        )

    def destinations(self) -> list[str]:
        with self.db.transaction(readonly=True) as conn:
            return [str(r[0]) for r in conn.fetchall("SELECT DISTINCT destination FROM outbox")]
