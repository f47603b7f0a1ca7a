"""A bounded latest-frame queue: when full, the oldest item is dropped (and counted), so a slow
consumer always gets recent frames and latency never grows."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

from sharpeyes.streams.health import DropCounter, DropReason

T = TypeVar("T")


class LatestQueue(Generic[T]):
    """Thread-safe bounded FIFO with a drop-oldest policy.

    ``put`` never blocks; when ``maxsize`` items are waiting, the oldest is discarded and counted
    as :attr:`DropReason.BACKLOG` on ``drops``. ``get`` waits up to ``timeout`` seconds and
    returns None on timeout or once the queue is closed and empty.
    """

    def __init__(self, maxsize: int = 2, drops: DropCounter | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._closed = False
        self.drops = drops if drops is not None else DropCounter()

    def put(self, item: T) -> bool:
        """Add ``item``; return False when an older item had to be dropped to make room."""
        with self._cond:
            if self._closed:
                return True
            dropped = False
            while len(self._items) >= self._maxsize:
                self._items.popleft()
                self.drops.add(DropReason.BACKLOG)
                dropped = True
            self._items.append(item)
            self._cond.notify()
            return not dropped

    def get(self, timeout: float | None = None) -> T | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._items.popleft()

    def close(self) -> None:
        """Wake every waiting ``get``; items already queued can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
