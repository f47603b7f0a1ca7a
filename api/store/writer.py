"""One store writer per node: camera threads enqueue, one thread commits in batches.

A camera thread's :meth:`WriterSink.emit` puts the event on a bounded queue and returns (a few
microseconds); the writer thread takes up to ``max_batch`` events (waiting at most
``max_delay_ms`` for a batch to fill), writes their crops, then commits the events, their outbox
rows and their feed rows in ONE transaction through
:func:`~sharpeyes.api.store.events.write_groups` — the same write path as :class:`StoreSink` and
the cluster's lease commits. After the commit ``on_committed`` gets the new events (live feed
fan-out, latency metrics).

Back-pressure, never a silent drop: a full queue blocks the producer for at most
``put_timeout_s`` (counted in ``backpressure_waits``/``backpressure_ms``); past that the emit
raises :class:`WriterFullError` (counted in ``rejected``). A failing commit (database gone,
disk full) is retried with exponential backoff until it succeeds; meanwhile :meth:`healthy` is
False and ``last_error`` says why. Only a constraint violation (:class:`StoreIntegrityError`) —
which no retry can fix — is isolated to its event, which is logged and counted in ``failed``.

Usage::

    writer = StoreWriter(store, on_committed=hub_publisher)
    sink = writer.sink(device_id="3402…", destinations=("viid",))   # one per camera
    sink.emit(event)                                                  # camera thread
    writer.close()                                                    # drains
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sharpeyes.api.store.db import StoreIntegrityError
from sharpeyes.api.store.events import EventStore, WriteGroup, Written, write_groups
from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.types import Event

log = logging.getLogger(__name__)

OnCommitted = Callable[[Sequence[Written]], None]

DEFAULT_QUEUE_SIZE = 4096
DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_DELAY_MS = 20.0
DEFAULT_PUT_TIMEOUT_S = 10.0
RETRY_INITIAL_S = 0.05
RETRY_MAX_S = 5.0


class WriterFullError(StoreError):
    """The writer's queue stayed full for the whole bounded wait; the event was not accepted."""


class WriterClosedError(StoreError):
    """An event was emitted after :meth:`StoreWriter.close`."""


@dataclass(frozen=True, slots=True)
class SinkKey:
    """What a sink's events are written with (events of one key share a write group)."""

    device_id: str | None
    destinations: tuple[str, ...]
    feed: bool
    on_committed: OnCommitted | None = None  # compared by identity: one group per callback


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of the writer's counters (monotonic since start, except ``queued``)."""

    queued: int  # events waiting in the queue now
    accepted: int  # events put on the queue
    committed: int  # events whose transaction committed (new + duplicates)
    new: int  # of those, inserted (not duplicates)
    duplicates: int
    batches: int  # committed transactions
    backpressure_waits: int  # emits that found the queue full and had to wait
    backpressure_ms: float  # total time producers spent waiting
    rejected: int  # emits refused after the bounded wait (WriterFullError)
    retries: int  # failed commit attempts that were retried
    failed: int  # events given up on (constraint violation; or left undrained by close)
    last_error: str | None
    healthy: bool


_STOP = object()


class WriterSink:
    """The :class:`~sharpeyes.pipeline.protocols.Sink` of one camera (:meth:`StoreWriter.sink`)."""

    def __init__(self, writer: StoreWriter, key: SinkKey) -> None:
        self.writer = writer
        self.key = key

    def emit(self, event: Event) -> None:
        """Enqueue ``event``; returns at once unless the queue is full (bounded wait).

        Raises:
            WriterFullError: the queue stayed full for ``put_timeout_s``.
            WriterClosedError: the writer was closed.
        """
        self.writer.put(event, self.key)

    def close(self) -> None:
        """Wait (bounded) until what this node's writer holds now is committed; the writer
        itself stays open (it is shared by every camera; the node closes it)."""
        self.writer.flush(timeout=self.writer.put_timeout_s)


class StoreWriter:
    """The node's single event writer thread over an :class:`EventStore`."""

    def __init__(
        self,
        store: EventStore,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay_ms: float = DEFAULT_MAX_DELAY_MS,
        put_timeout_s: float = DEFAULT_PUT_TIMEOUT_S,
        on_committed: OnCommitted | None = None,
        retry_initial_s: float = RETRY_INITIAL_S,
        retry_max_s: float = RETRY_MAX_S,
        name: str = "store-writer",
    ) -> None:
        if queue_size < 1 or max_batch < 1 or max_delay_ms < 0 or put_timeout_s < 0:
            raise ValueError("queue_size and max_batch must be >= 1, delays >= 0")
        self.store = store
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self.put_timeout_s = put_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._on_committed = on_committed
        self._queue: queue.Queue[tuple[Event, SinkKey] | object] = queue.Queue(queue_size)
        self._cond = threading.Condition()
        self._closed = False
        self._failing = False
        self._accepted = 0
        self._done = 0  # committed + failed: what flush() waits for
        self._committed = 0
        self._new = 0
        self._batches = 0
        self._bp_waits = 0
        self._bp_s = 0.0
        self._rejected = 0
        self._retries = 0
        self._failed = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- producers -----------------------------------------------------------------------

    def sink(
        self,
        *,
        device_id: str | None = None,
        destinations: Sequence[str] = (),
        feed: bool = True,
        on_committed: OnCommitted | None = None,
    ) -> WriterSink:
        """A sink for one camera: its events get ``device_id``, one outbox row per
        destination and (``feed``) a feed row, all in the batch's transaction.

        ``on_committed`` (optional, on the writer thread, after the writer-wide one) gets this
        sink's new events of each committed batch — e.g. a camera's stored-latency metric.
        """
        key = SinkKey(device_id, tuple(destinations), feed, on_committed)
        return WriterSink(self, key)

    def put(self, event: Event, key: SinkKey) -> None:
        """Enqueue one event (see :meth:`WriterSink.emit`)."""
        if self._closed:
            raise WriterClosedError(f"store writer closed; event {event.event_id} not accepted")
        item = (event, key)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._put_waiting(item, event)
        with self._cond:
            self._accepted += 1

    def _put_waiting(self, item: tuple[Event, SinkKey], event: Event) -> None:
        t0 = time.monotonic()
        try:
            self._queue.put(item, timeout=self.put_timeout_s)
        except queue.Full:
            waited = time.monotonic() - t0
            with self._cond:
                self._bp_waits += 1
                self._bp_s += waited
                self._rejected += 1
                last = self._last_error
            raise WriterFullError(
                f"store writer queue full for {waited:.1f}s; event {event.event_id} not stored"
                + (f" (last store error: {last})" if last else "")
            ) from None
        with self._cond:
            self._bp_waits += 1
            self._bp_s += time.monotonic() - t0

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event accepted so far is committed (or failed); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            while self._done < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if not self._thread.is_alive():
                    return False
                self._cond.wait(left if left is not None else 0.5)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting, commit everything queued, stop the thread. Returns False when the
        drain did not finish in ``timeout`` (the events left are counted in ``failed``)."""
        with self._cond:
            if self._closed:
                already = True
            else:
                self._closed = True
                already = False
        if not already:
            self._queue.put(_STOP)  # blocks while full: the thread is draining
        self._thread.join(timeout)
        with self._cond:
            left = max(0, self._accepted - self._done)
            self._failed += left
            self._done += left
        if left:
            log.error("store writer: closed with %d events not committed", left)
        return not self._thread.is_alive() and left == 0

    # --- health --------------------------------------------------------------------------

    def healthy(self) -> bool:
        """True while the thread runs and its last commit attempt succeeded."""
        with self._cond:
            failing = self._failing
        return not failing and (self._thread.is_alive() or self._closed)

    @property
    def last_error(self) -> str | None:
        with self._cond:
            return self._last_error

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(
                queued=self._queue.qsize(),
                accepted=self._accepted,
                committed=self._committed,
                new=self._new,
                duplicates=self._committed - self._new,
                batches=self._batches,
                backpressure_waits=self._bp_waits,
                backpressure_ms=self._bp_s * 1000.0,
                rejected=self._rejected,
                retries=self._retries,
                failed=self._failed,
                last_error=self._last_error,
                healthy=not self._failing and (self._thread.is_alive() or self._closed),
            )

    # --- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[tuple[Event, SinkKey]] = [first]  # type: ignore[list-item]
            deadline = time.monotonic() + self.max_delay_s
            while len(batch) < self.max_batch:
                try:
                    left = deadline - time.monotonic()
                    item = self._queue.get_nowait() if left <= 0 else self._queue.get(True, left)
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._commit_with_retry(batch)
        # an emit racing close() may have queued behind the stop marker: commit it too
        late: list[tuple[Event, SinkKey]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                late.append(item)  # type: ignore[arg-type]
        for start in range(0, len(late), self.max_batch):
            self._commit_with_retry(late[start : start + self.max_batch])

    def _commit_with_retry(self, batch: list[tuple[Event, SinkKey]]) -> None:
        delay = self.retry_initial_s
        while True:
            try:
                written, groups = self._commit(batch)
            except StoreIntegrityError as e:
                self._note_error(e)
                if len(batch) > 1:  # isolate the offending event; the others commit
                    for one in batch:
                        self._commit_with_retry([one])
                    return
                self._give_up(batch[0][0], e)
                return
            except Exception as e:  # database gone, disk full, …: retry until it works
                self._note_error(e)
                with self._cond:
                    self._retries += 1
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            self._committed_ok(len(batch), written, groups)
            return

    def _commit(
        self, batch: list[tuple[Event, SinkKey]]
    ) -> tuple[list[Written], dict[SinkKey, list[Event]]]:
        groups: dict[SinkKey, list[Event]] = {}
        for event, key in batch:
            groups.setdefault(key, []).append(event)
        written = write_groups(
            self.store.db,
            self.store.files_root,
            [
                WriteGroup(tuple(evs), k.destinations, k.device_id, k.feed)
                for k, evs in groups.items()
            ],
        )
        return written, groups

    def _note_error(self, e: BaseException) -> None:
        text = f"{type(e).__name__}: {e}"
        with self._cond:
            first = not self._failing
            self._failing = True
            self._last_error = text
        if first:
            log.error("store writer: commit failed, retrying: %s", text)

    def _give_up(self, event: Event, e: BaseException) -> None:
        log.error("store writer: event %s cannot be stored, dropped: %s", event.event_id, e)
        with self._cond:
            self._failed += 1
            self._done += 1
            self._cond.notify_all()

    def _committed_ok(
        self, n: int, written: list[Written], groups: dict[SinkKey, list[Event]]
    ) -> None:
        with self._cond:
            if self._failing:
                log.warning("store writer: commits succeed again")
            self._failing = False
            self._committed += n
            self._new += len(written)
            self._batches += 1
            self._done += n
            self._cond.notify_all()
        if not written:
            return
        if self._on_committed is not None:
            try:
                self._on_committed(written)
            except Exception:
                log.exception("store writer: on_committed callback failed")
        for key, events in groups.items():
            if key.on_committed is None:
                continue
            ids = {e.event_id for e in events}
            mine = [w for w in written if w.event_id in ids]
            if not mine:
                continue
            try:
                key.on_committed(mine)
            except Exception:
                log.exception("store writer: a sink's on_committed callback failed")
