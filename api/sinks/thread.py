"""One outbox sender on its own thread: start, drain, stop — shared by the MQTT and Kafka sinks."""

from __future__ import annotations

import threading
import time
from typing import Protocol, Self

from sharpeyes.api.store import OutboxStats


class OutboxSender(Protocol):
    """What a sink's sender offers its thread."""

    def connect(self) -> None: ...

    def run(self, stop: threading.Event) -> None: ...

    def backlog(self) -> OutboxStats: ...

    def close(self) -> None: ...

    def health(self) -> dict[str, object]: ...


class SenderThread:
    """A started sender draining its outbox destination on a daemon thread.

    ``join_timeout_s`` bounds :meth:`stop`'s wait for the thread: long enough for one publish
    round (and its acknowledgements) to finish.
    """

    def __init__(self, sender: OutboxSender, name: str, join_timeout_s: float) -> None:
        self._sender = sender
        self._join_timeout_s = join_timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=sender.run, args=(self._stop,), name=name, daemon=True
        )

    def start(self) -> Self:
        self._sender.connect()
        self._thread.start()
        return self

    def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is pending for the destination; True when drained."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._sender.backlog().backlog == 0:
                return True
            time.sleep(0.1)
        return self._sender.backlog().backlog == 0

    def stop(self, drain_timeout_s: float = 0.0) -> None:
        if drain_timeout_s > 0:
            self.drain(drain_timeout_s)
        self._stop.set()
        self._thread.join(self._join_timeout_s)
        self._sender.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def health(self) -> dict[str, object]:
        return self._sender.health()
