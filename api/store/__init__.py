"""Persistence: one schema on SQLite (embedded) and PostgreSQL (production).

``open_store(url, files_root)`` opens the database, applies migrations and returns an
:class:`EventStore`; :class:`Outbox` serves the GA/T 1400 sender; :class:`StoreSink` and
:class:`JsonlSink` plug into the pipeline; :class:`StoreWriter` is a node's one writer thread
(camera threads enqueue; events, outbox rows and feed rows commit together in batches).
"""

from __future__ import annotations

from pathlib import Path

from sharpeyes.api.store.db import (
    Connection,
    Database,
    StoreIntegrityError,
    StoreUnavailableError,
    open_database,
)
from sharpeyes.api.store.events import (
    EventNotFoundError,
    EventStore,
    FencedError,
    InvalidCursorError,
    ReviewError,
    WriteGroup,
    Written,
    write_groups,
)
from sharpeyes.api.store.migrate import migrate
from sharpeyes.api.store.outbox import Outbox, OutboxItem, OutboxStats, retry_delay_s
from sharpeyes.api.store.records import (
    EventFilter,
    Page,
    ReviewAction,
    ReviewState,
    StoredEvent,
    StreamPosition,
)
from sharpeyes.api.store.serialize import event_to_json
from sharpeyes.api.store.sink import JsonlSink, StoreSink
from sharpeyes.api.store.writer import (
    StoreWriter,
    WriterClosedError,
    WriterFullError,
    WriterSink,
    WriterStats,
)


def open_store(url: str | Path, files_root: Path) -> EventStore:
    """Open (and migrate) the database at ``url`` and return an :class:`EventStore`.

    Raises:
        StoreError: the store cannot be opened, or its schema is newer than this sharpeyes.
    """
    db = open_database(url)
    try:
        return EventStore(db, files_root)  # applies pending migrations
    except BaseException:
        db.close()
        raise


__all__ = [
    "Connection",
    "Database",
    "EventFilter",
    "EventNotFoundError",
    "EventStore",
    "FencedError",
    "InvalidCursorError",
    "JsonlSink",
    "Outbox",
    "OutboxItem",
    "OutboxStats",
    "Page",
    "ReviewAction",
    "ReviewError",
    "ReviewState",
    "StoreIntegrityError",
    "StoreSink",
    "StoreUnavailableError",
    "StoreWriter",
    "StoredEvent",
    "StreamPosition",
    "WriteGroup",
    "WriterClosedError",
    "WriterFullError",
    "WriterSink",
    "WriterStats",
    "Written",
    "event_to_json",
    "migrate",
    "open_database",
    "open_store",
    "retry_delay_s",
    "write_groups",
]
