"""A broker double for the Kafka sink: no Kafka distribution can be installed here, so the tests
run against this fake of the part of ``confluent_kafka.Producer`` the sender uses (``produce``
with ``on_delivery``, ``poll``, ``flush``, ``list_topics``). It keeps a log of messages per topic
and has switches for the faults the sink must survive:

- ``down``: ``list_topics`` raises ``KafkaException(_TRANSPORT)`` and every queued message gets a
  retriable ``_MSG_TIMED_OUT`` delivery report (nothing is stored);
- ``down_after(n)``: the broker goes down after ``n`` more stored messages (mid-round);
- ``lose_acks(n)``: the next ``n`` messages are stored but their report says ``_MSG_TIMED_OUT``,
  so the sender retries them — duplicates on the topic;
- ``kill_after(n)``: after ``n`` more stored messages the producer "process" dies mid-batch:
  it raises :class:`SenderKilled` (a ``BaseException``, so no ``except Exception`` in the sender
  catches it) and serves no further reports.

Delivery reports are served from ``poll``/``flush`` on the caller's thread, as librdkafka does.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message

DeliveryCallback = Callable[[KafkaError | None, Message], None]


# a BaseException: a kill, not an error the sender may handle
class SenderKilled(BaseException):
    """The producer's process died (simulated): nothing after this point runs."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, str | bytes | None], ...]


@dataclass
class _Queued:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, str | bytes | None], ...]
    on_delivery: DeliveryCallback | None


class FakeBroker:
    """Topics as in-memory logs, partitioned by a hash of the key; thread-safe."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self.down = False
        self._lock = threading.Lock()
        self._logs: dict[str, list[Record]] = {}
        self._lose_acks = 0
        self._down_after: int | None = None
        self._kill_after: int | None = None
        self.killed = False
        self.probes = 0
        self.produced = 0  # produce() calls, stored or not
        self.producers: list[FakeProducer] = []

    # -- switches -------------------------------------------------------------------------------

    def lose_acks(self, n: int) -> None:
        with self._lock:
            self._lose_acks = n

    def down_after(self, n: int) -> None:
        with self._lock:
            self._down_after = n

    def kill_after(self, n: int) -> None:
        with self._lock:
            self._kill_after = n

    # -- reading --------------------------------------------------------------------------------

    def records(self, topic: str | None = None) -> list[Record]:
        with self._lock:
            if topic is not None:
                return list(self._logs.get(topic, []))
            return [r for log in self._logs.values() for r in log]

    def topics(self) -> list[str]:
        with self._lock:
            return sorted(self._logs)

    def factory(self, conf: dict[str, object]) -> FakeProducer:
        """Use as the sender's ``producer_factory``."""
        producer = FakeProducer(self, conf)
        self.producers.append(producer)
        return producer

    # -- the broker side --------------------------------------------------------------------------

    def _store(self, q: _Queued) -> tuple[KafkaError | None, Message]:
        """Store one message (or fail it); the delivery report to hand back."""
        with self._lock:
            if self._kill_after is not None and self._kill_after <= 0:
                self._kill_after = None
                self.killed = True
                raise SenderKilled
            if self.down:
                err = KafkaError(KafkaError._MSG_TIMED_OUT, "broker down (double)", retriable=True)
                return err, Message(topic=q.topic, key=q.key, value=q.value, error=err)
            log = self._logs.setdefault(q.topic, [])
            partition = zlib.crc32(q.key or b"") % self.partitions
            offset = sum(1 for r in log if r.partition == partition)
            log.append(Record(q.topic, partition, offset, q.key, q.value, q.headers))
            for name in ("_down_after", "_kill_after"):
                left = getattr(self, name)
                if left is not None:
                    setattr(self, name, left - 1)
            if self._down_after is not None and self._down_after <= 0:
                self._down_after = None
                self.down = True
            msg = Message(
                topic=q.topic, partition=partition, offset=offset, key=q.key, value=q.value
            )
            if self._lose_acks > 0:
                self._lose_acks -= 1
                err = KafkaError(KafkaError._MSG_TIMED_OUT, "ack lost (double)", retriable=True)
                return err, msg
            return None, msg


class FakeProducer:
    """``confluent_kafka.Producer`` as far as the sink uses it."""

    def __init__(self, broker: FakeBroker, conf: dict[str, object]) -> None:
        self.broker = broker
        self.conf = dict(conf)
        self.dead = False  # this producer's process was killed (see FakeBroker.kill_after)
        self._queue: list[_Queued] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        if self.dead:
            raise SenderKilled
        self.broker.produced += 1
        self._queue.append(_Queued(topic, key, value, tuple(headers or ()), on_delivery))

    def poll(self, timeout: float = -1) -> int:
        """Send everything queued and serve the delivery reports (a killed one: nothing)."""
        if self.dead:
            return 0
        served = 0
        while self._queue:
            q = self._queue.pop(0)
            try:
                err, msg = self.broker._store(q)
            except SenderKilled:
                self.dead = True
                self._queue.clear()
                raise
            if q.on_delivery is not None:
                q.on_delivery(err, msg)
            served += 1
        return served

    def flush(self, timeout: float = -1) -> int:
        self.poll(timeout)
        return len(self._queue)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> object:
        if self.dead:
            raise SenderKilled
        self.broker.probes += 1
        if self.broker.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down (double)"))
        return self.broker.topics()
