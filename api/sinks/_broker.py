"""What the MQTT and Kafka senders share: the outbox round's settings, the topic template's
fields, claiming due rows with their stored events, the payloads, the run loop and the health
report. Each sink adds how it connects, sends and settles a round.

A destination's rows are events (``kind`` = the event type) and reviewers' decisions on them
(``kind`` ``review``, queued in the review's transaction: :mod:`sharpeyes.api.store.routing`);
both are claimed in one id order and sent as :class:`Outgoing` messages."""

from __future__ import annotations

import logging
import string
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, ClassVar, Generic, Protocol, TypeVar

from pydantic import Field

from sharpeyes.api.rest.evidence import RemoteEvidence
from sharpeyes.api.sinks.common import SinkReport
from sharpeyes.api.sinks.payload import event_message, review_message
from sharpeyes.api.store import (
    EventStore,
    Outbox,
    OutboxItem,
    OutboxStats,
    StoredEvent,
    retry_delay_s,
)
from sharpeyes.api.store.events import LoggedReview
from sharpeyes.api.store.routing import REVIEW_KIND, parse_review_object_id
from sharpeyes.api.store.serialize import dumps

TOPIC_FIELDS = frozenset({"stream_id", "type", "kind", "device_id"})

BackoffInitialS = Annotated[float, Field(gt=0.0, le=600.0, description="First retry delay.")]
BackoffMaxS = Annotated[float, Field(gt=0.0, le=3600.0, description="Longest retry delay.")]
IdleSleepS = Annotated[float, Field(gt=0.0, le=60.0, description="Poll interval when idle.")]
LeaseS = Annotated[
    float,
    Field(gt=0.0, le=3600.0, description="A claimed row is invisible to others this long."),
]

TopicPart = tuple[str, str | None, str | None, str | None]
REVIEW_TOPIC_SUFFIX = "review"  # the default review topic: the event's topic + separator + this


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send for an outbox row: the event's, or (``review`` set) a reviewer's
    decision on it. ``payload`` is the UTF-8 JSON body."""

    stored: StoredEvent
    payload: bytes
    review: LoggedReview | None = None


def topic_parts(topic: str) -> list[TopicPart]:
    """The parts of a topic template (:meth:`string.Formatter.parse`).

    Raises:
        ValueError: the template names a field other than :data:`TOPIC_FIELDS`.
    """
    parsed = list(string.Formatter().parse(topic))
    names = {name for _, name, _, _ in parsed if name is not None}
    unknown = names - TOPIC_FIELDS
    if unknown:
        raise ValueError(
            f"topic {topic!r} names unknown field(s) {sorted(unknown)}; "
            f"known: {sorted(TOPIC_FIELDS)}"
        )
    return parsed


def topic_values(stored: StoredEvent) -> dict[str, str]:
    """The values of the :data:`TOPIC_FIELDS` for ``stored`` (not yet made safe for a topic)."""
    ev = stored.event
    return {
        "stream_id": ev.stream_id,
        "type": str(ev.type),
        "kind": ev.kind.label,
        "device_id": stored.device_id or "",
    }


class SenderSettings(Protocol):
    """The outbox round's settings both sinks' configs have."""

    claim_limit: int
    lease_s: float
    idle_sleep_s: float
    backoff_initial_s: float
    backoff_max_s: float


C = TypeVar("C", bound=SenderSettings)
R = TypeVar("R", bound=SinkReport)


class BrokerSender(ABC, Generic[C, R]):
    """Drains one outbox destination to a message broker; ``totals`` counts its life."""

    sink: ClassVar[str]  # "mqtt", "kafka": the prefix of its log lines
    verb: ClassVar[str]  # what a round does: "publish", "produce"
    log: ClassVar[logging.Logger]

    def __init__(
        self,
        store: EventStore,
        config: C,
        destination: str,
        totals: R,
        remote: RemoteEvidence | None = None,
    ) -> None:
        self.store = store
        self.remote = remote  # a cluster's object storage: evidence not under the files root
        self.outbox = Outbox(store.db)
        self.config = config
        self.destination = destination
        self.totals = totals

    @property
    @abstractmethod
    def connected(self) -> bool: ...

    @abstractmethod
    def run_once(self) -> R: ...

    def backlog(self) -> OutboxStats:
        return self.outbox.stats(self.destination)

    def _backoff_s(self, attempts: int) -> float:
        return retry_delay_s(attempts, self.config.backoff_initial_s, self.config.backoff_max_s)

    def _claim(self, now: int, report: R) -> Iterator[tuple[OutboxItem, Outgoing]]:
        """Claim the due rows now (``report.claimed``); the iterator gives each with its
        message, one at a time, and marks dead a row whose event (or review) is no longer in
        the store."""
        c = self.config
        items = self.outbox.claim_batch(
            self.destination, c.claim_limit, now, lease_ms=int(c.lease_s * 1000)
        )
        report.claimed = len(items)
        return self._with_messages(items, now, report)

    def _with_messages(
        self, items: list[OutboxItem], now: int, report: R
    ) -> Iterator[tuple[OutboxItem, Outgoing]]:
        for item in items:
            try:
                out = self._message(item)
            except LookupError as e:
                self.outbox.mark_dead([item.id], str(e), now)
                report.dead += 1
                continue
            yield item, out

    def _message(self, item: OutboxItem) -> Outgoing:
        """The message of one row.

        Raises:
            LookupError: its event or review is not in the store (or its id is not one).
        """
        if item.kind != REVIEW_KIND:
            stored = self._stored(item.object_id)
            body = event_message(stored, self.destination, self.store.files_root, self.remote)
            return Outgoing(stored, dumps(body).encode())
        try:
            action_id, feed_seq = parse_review_object_id(item.object_id)
        except ValueError as e:
            raise LookupError(str(e)) from e
        review = self.store.logged_review(action_id)
        if review is None:
            raise LookupError("review not in store")
        stored = self._stored(review.action.event_id)
        body = review_message(stored, review, feed_seq, self.destination)
        return Outgoing(stored, dumps(body).encode(), review)

    def _stored(self, event_id: str) -> StoredEvent:
        stored = self.store.get_event(event_id)
        if stored is None:
            raise LookupError("event not in store")
        return stored

    def _idle_wait_s(self) -> float:
        """How long to sleep after a round that claimed nothing."""
        return self.config.idle_sleep_s

    def run(self, stop: threading.Event) -> None:
        """Run rounds until ``stop`` is set; sleeps when nothing was claimed."""
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception:  # a store hiccup must not end the sender thread
                self.log.exception("%s: %s round failed", self.sink, self.verb)
                stop.wait(self.config.idle_sleep_s)
                continue
            if report.claimed == 0:
                stop.wait(self._idle_wait_s())

    def _health(self, where: tuple[str, str], **counts: int) -> dict[str, object]:
        """The health report: ``where`` (key, value) names the broker, ``counts`` are the
        sink's own totals (after the failed attempts)."""
        stats = self.backlog()
        return {
            "destination": self.destination,
            where[0]: where[1],
            "connected": self.connected,
            "backlog": stats.backlog,
            "oldest_pending_age_ms": stats.oldest_pending_age_ms,
            "retrying": stats.retrying,
            "delivered": self.totals.delivered,
            "failed_attempts": self.totals.failed,
            **counts,
            "dead": stats.failed,
            "last_errors": list(self.totals.errors[-3:]),
        }
