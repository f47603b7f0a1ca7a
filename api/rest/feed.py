"""Live feed hub: Server-Sent Events of new events, with resume from ``Last-Event-ID``.

The durable feed is the ``feed_log`` table: its row is written in the same transaction as the
event (:func:`sharpeyes.api.store.events.write_groups`), so a committed event always has its feed
row and its SSE id is that row's ``seq``. Live items reach the hub after the commit, from the
store writer's ``on_committed`` callback (:func:`committed_publisher`), on the writer thread;
each SSE subscriber is an async generator on the server's event loop. Items live in a bounded
ring; a subscriber that resumes with ``Last-Event-ID`` reads from the feed table through the
``backfill`` callable (items with ``seq`` greater than the given one, oldest first) until it has
caught up with the ring, so a client that reconnects with its last event id loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sharpeyes.api.store.events import Written
    from sharpeyes.api.store.records import StoredEvent

logger = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
RESUME_PAGE = 1000
Backfill = Callable[[int, int], Sequence["FeedItem"]]


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One feed message: ``seq`` is the SSE id (monotonic), ``data`` the JSON payload."""

    seq: int
    type: str
    camera_id: str
    data: str

    def to_sse(self) -> str:
        lines = "".join(f"data: {line}\n" for line in self.data.splitlines() or [""])
        return f"id: {self.seq}\nevent: {self.type}\n{lines}\n"


@dataclass(frozen=True, slots=True)
class FeedFilter:
    cameras: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    def matches(self, item: FeedItem) -> bool:
        return (not self.cameras or item.camera_id in self.cameras) and (
            not self.types or item.type in self.types
        )


class _Waiter:
    __slots__ = ("event", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: the subscriber is gone
            self.loop.call_soon_threadsafe(self.event.set)


class FeedHub:
    """Thread-safe fan-out of :class:`FeedItem` with a bounded replay ring."""

    def __init__(
        self, capacity: int = 4096, backfill: Backfill | None = None, start_seq: int = 0
    ) -> None:
        if capacity < 1:
            raise ValueError(f"feed capacity must be >= 1, got {capacity}")
        self._ring: deque[FeedItem] = deque(maxlen=capacity)
        # items published after one with a higher seq (two publishers: the store writer and a
        # review); numbered by arrival so a live subscriber takes the ones behind its cursor
        self._late: deque[tuple[int, FeedItem]] = deque(maxlen=capacity)
        self._late_count = 0
        self._lock = threading.Lock()
        self._waiters: set[_Waiter] = set()
        self._last_seq = start_seq
        self._backfill = backfill
        self._closed = False
        self.published = 0

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._waiters)

    def set_backfill(self, backfill: Backfill | None) -> None:
        self._backfill = backfill

    def close(self) -> None:
        """End every subscription (the service is stopping): each stream returns after what it
        has sent, so the server's graceful shutdown finds no open response to cancel — a
        client reconnects with its Last-Event-ID and resumes there."""
        with self._lock:
            self._closed = True
            waiters = list(self._waiters)
        for w in waiters:
            w.wake()

    def publish(self, type_: str, camera_id: str, data: str, seq: int | None = None) -> FeedItem:
        """Add an item (``seq`` from the store when known, else the next number) and wake all.

        A store seq at or below the last one published is a late arrival — another thread
        committed it first and published second (the store writer and a review). It keeps its
        durable seq (renumbering it made the ids it was sent with disagree with the feed log,
        so a resume skipped or repeated one), goes into the ring in order, and live subscribers
        whose cursor passed it receive it as well (at least once)."""
        with self._lock:
            if seq is None:
                seq = self._last_seq + 1
            item = FeedItem(seq=seq, type=type_, camera_id=camera_id, data=data)
            if seq > self._last_seq:
                self._ring.append(item)
                self._last_seq = seq
            else:
                ring = sorted([*self._ring, item], key=lambda i: i.seq)
                self._ring = deque(ring[-(self._ring.maxlen or len(ring)) :], self._ring.maxlen)
                self._late_count += 1
                self._late.append((self._late_count, item))
            self.published += 1
            waiters = list(self._waiters)
        for w in waiters:
            w.wake()
        return item

    def after(self, seq: int, limit: int = 1000) -> list[FeedItem]:
        """Items with ``seq`` above the given one, oldest first (store backfill, then ring)."""
        with self._lock:
            ring = list(self._ring)
            last = self._last_seq
        if seq >= last:
            return []
        oldest = ring[0].seq if ring else last + 1
        newer = [i for i in ring if i.seq > seq]
        if seq + 1 >= oldest:
            return newer[:limit]
        if self._backfill is None:
            logger.info("feed resume from %s is older than the ring start %s", seq, oldest)
            return newer[:limit]
        older = [i for i in self._backfill(seq, limit) if i.seq < oldest]
        return (older + newer)[:limit]

    async def subscribe(
        self,
        after_seq: int | None,
        flt: FeedFilter,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> AsyncIterator[FeedItem | None]:
        """Yield matching items after ``after_seq`` (None = only new ones), then live items.

        Yields ``None`` when ``heartbeat_s`` passes without an item, so the caller can send a
        keep-alive comment (and notice a gone client).
        """
        waiter = _Waiter()
        with self._lock:
            self._waiters.add(waiter)
            cursor = self._last_seq if after_seq is None else after_seq
            late_mark = self._late_count
        # a resume reads the durable feed table until it comes back short (caught up)
        resuming = after_seq is not None and self._backfill is not None
        try:
            while not self._closed:
                waiter.event.clear()
                late: list[FeedItem] = []
                if resuming and self._backfill is not None:
                    items = list(await asyncio.to_thread(self._backfill, cursor, RESUME_PAGE))
                    resuming = len(items) >= RESUME_PAGE
                elif self._backfill is not None and cursor + 1 < self._oldest_seq():
                    items = await asyncio.to_thread(self.after, cursor)
                else:  # the ring and the late arrivals read together: each item once
                    items, late, late_mark = self._live(cursor, late_mark)
                for item in late:  # published after the cursor had passed its seq
                    if flt.matches(item):
                        yield item
                for item in items:
                    cursor = item.seq
                    if flt.matches(item):
                        yield item
                if items or late:
                    continue
                try:
                    await asyncio.wait_for(waiter.event.wait(), heartbeat_s)
                except TimeoutError:
                    if not self._closed:
                        yield None
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def _live(self, cursor: int, mark: int) -> tuple[list[FeedItem], list[FeedItem], int]:
        """Under one lock: the ring's items after ``cursor``, the late arrivals numbered above
        ``mark`` whose seq the cursor had already passed (a late item is in exactly one of the
        two), and the new mark."""
        with self._lock:
            items = [i for i in self._ring if i.seq > cursor]
            late = [i for n, i in self._late if n > mark and i.seq <= cursor]
            return items, late, self._late_count

    def _oldest_seq(self) -> int:
        with self._lock:
            return self._ring[0].seq if self._ring else self._last_seq + 1


def committed_publisher(
    hub: FeedHub, payload: Callable[[StoredEvent], str] | None = None
) -> Callable[[Sequence[Written]], None]:
    """An ``on_committed`` callback for :class:`~sharpeyes.api.store.writer.StoreWriter`:
    publishes each committed event that has a feed row, with its ``feed_log.seq`` as SSE id.

    ``payload`` renders the JSON (default: :func:`sharpeyes.api.rest.convert.feed_payload`, the
    same as the store backfill uses).
    """
    if payload is None:
        from sharpeyes.api.rest.convert import feed_payload

        payload = feed_payload
    render = payload

    def publish(written: Sequence[Written]) -> None:
        publish_written(hub, written, render)

    return publish


def publish_written(
    hub: FeedHub, written: Sequence[Written], render: Callable[[StoredEvent], str]
) -> list[FeedItem]:
    """Publish committed events that have a feed row, in ``feed_log.seq`` order (the SSE id)."""
    fed = sorted((w for w in written if w.feed_seq is not None), key=lambda w: w.feed_seq or 0)
    return [
        hub.publish(
            str(w.stored.event.type), w.stored.event.stream_id, render(w.stored), w.feed_seq
        )
        for w in fed
    ]
