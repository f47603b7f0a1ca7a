"""Sinks that persist events: :class:`StoreSink` (database + crops + outbox) and
:class:`JsonlSink` (``events.jsonl``). Both implement :class:`sharpeyes.pipeline.protocols.Sink`."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from sharpeyes.api.store.events import EventStore
from sharpeyes.api.store.files import write_crop
from sharpeyes.api.store.serialize import event_to_json_line
from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.types import Event

log = logging.getLogger(__name__)


class StoreSink:
    """Writes each event to an :class:`EventStore` as it arrives, on the caller's thread —
    nothing is buffered, so a kill loses at most the event being written (which the pipeline
    re-emits on replay with the same deterministic id).

    Synchronous (one transaction and its fsyncs per event): right for ``analyze`` and tests; a
    node with cameras uses :class:`~sharpeyes.api.store.writer.StoreWriter` instead. Both go
    through :meth:`EventStore.write_batch`.
    """

    def __init__(
        self,
        store: EventStore,
        outbox_destinations: Sequence[str] = (),
        *,
        device_id: str | None = None,
        feed: bool = False,
    ) -> None:
        self.store = store
        self.feed = feed
        self.outbox_destinations = tuple(outbox_destinations)
        self.device_id = device_id
        self.added = 0
        self.duplicates = 0

    def emit(self, event: Event) -> None:
        n = len(
            self.store.write_batch(
                [event],
                destinations=self.outbox_destinations,
                device_id=self.device_id,
                feed=self.feed,
            )
        )
        self.added += n
        self.duplicates += 1 - n

    def close(self) -> None:
        log.debug("store sink closed: %s added, %s duplicates", self.added, self.duplicates)


class JsonlSink:
    """Appends one JSON object per event to ``path`` (``events.jsonl``).

    With ``files_root`` the event's crop is written there (same layout and atomic write as the
    store, so both sinks may share one root) and referenced by its relative path; without it,
    ``crop`` is null. Each line is written and flushed in one call, so a kill loses at most
    the line being written; :meth:`close` also fsyncs.
    """

    def __init__(self, path: Path, files_root: Path | None = None) -> None:
        self.path = Path(path)
        self.files_root = files_root
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8", buffering=1)
        except OSError as e:
            raise StoreError(f"cannot open events file {self.path}: {e.strerror or e}") from e
        self.written = 0

    def emit(self, event: Event) -> None:
        crop = None if self.files_root is None else write_crop(self.files_root, event)
        line = event_to_json_line(event, crop) + "\n"
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
            except (OSError, ValueError) as e:
                raise StoreError(f"cannot write to {self.path}: {e}") from e
            self.written += 1

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as e:
                log.warning("could not fsync %s: %s", self.path, e)
            finally:
                self._file.close()
