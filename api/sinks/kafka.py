"""Kafka event sink: the outbox destination ``kafka`` drained with an idempotent producer.

Rows are enqueued in the same transaction as their events (the node adds ``kafka`` to every
camera's outbox destinations when ``kafka`` is configured), claimed in id order and produced with
``enable.idempotence=true`` and ``acks=all`` (confluent-kafka / librdkafka). A row is marked
delivered only in its delivery report without an error, i.e. once every in-sync replica has it.
A failed report (or none within ``publish_timeout_s``) puts the round's failed rows back with one
jittered back-off time, the sender claims nothing until then and probes the cluster
(``list_topics``) before claiming again: while the cluster is unreachable nothing is claimed.
A sender killed at any point loses nothing: claimed rows come back when their lease runs out.

Delivery is at-least-once — a message may arrive twice (a retry after a lost report, or rows of a
killed sender that had reached the broker): consumers deduplicate on ``event_id`` (in the payload
and in the ``event_id`` header; deterministic, unique per event).

Key: the event's ``stream_id``, so one camera's events land on one partition, in store order.
That order holds for the first arrival of each event as long as a failure does not hit one
message while later ones of the same camera get through in the same round (the idempotent
producer keeps a partition gap-free, so this is the exception), and it does not hold across a
killed sender for rows stored before its leases run out (those may overtake the leased rows).

Payload: the stored event as JSON, byte for byte what the MQTT sink publishes. Topic: ``topic``
with ``{stream_id}``, ``{type}``, ``{kind}`` and ``{device_id}`` filled in; characters outside
Kafka's ``[a-zA-Z0-9._-]`` in values become ``_`` (an empty value becomes ``_``).

A reviewer's decision on a violation produced here before is produced too (its row is queued in
the review's transaction): the MQTT sink's review JSON (``"type": "review"``), with the headers
``event_id``, ``type`` (``review``) and ``review_id``, keyed by the event's ``stream_id`` (so
it follows the camera's events on their partition when it shares their topic), on
``review_topic`` or, without one, on the event's topic followed by ``.review``.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, Self

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from pydantic import Field, SecretStr, field_validator, model_validator

from sharpeyes.api.rest.evidence import RemoteEvidence
from sharpeyes.api.sinks._broker import (
    REVIEW_TOPIC_SUFFIX,
    BackoffInitialS,
    BackoffMaxS,
    BrokerSender,
    IdleSleepS,
    LeaseS,
    Outgoing,
    topic_parts,
    topic_values,
)
from sharpeyes.api.sinks.common import SinkReport, env_secret
from sharpeyes.api.sinks.thread import SenderThread
from sharpeyes.api.store import EventStore, OutboxItem, StoredEvent
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.config import StrictModel
from sharpeyes.pipeline.errors import ConfigError

log = logging.getLogger(__name__)

KAFKA_DESTINATION = "kafka"
MAX_TOPIC_LEN = 249
REPORT_GRACE_S = 1.0  # a round waits publish_timeout_s + this for its delivery reports
_ILLEGAL = re.compile(r"[^a-zA-Z0-9._-]")
_SERVER = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^\s:,\[\]]+):(\d{1,5})$")
# A message the broker will never take: retrying cannot help, the row is given up on (dead).
_PERMANENT = frozenset({KafkaError.MSG_SIZE_TOO_LARGE})

ConfValue = str | int | bool


class KafkaSinkConfig(StrictModel):
    """Where and how events are produced; the SASL password comes from the environment."""

    bootstrap_servers: str = Field(
        ..., min_length=1, description="Comma-separated host:port list of brokers to start from."
    )
    topic: str = Field(
        "sharpeyes.events",
        min_length=1,
        description="Topic template; fields {stream_id}, {type}, {kind}, {device_id}; "
        "literal text only [a-zA-Z0-9._-].",
    )
    review_topic: str | None = Field(
        None,
        min_length=1,
        description="Topic template of reviewers' decisions (the same fields, of the reviewed "
        "event, and characters); None = the event's topic followed by .review.",
    )
    client_id: str | None = Field(
        None, min_length=1, max_length=255, description="Kafka client.id; None = sharpeyes-<host>."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL (TLS) or SASL_SSL (TLS plus user/password)."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (SASL_SSL only)."
    )
    sasl_username: str | None = Field(None, min_length=1, description="SASL user (SASL_SSL only).")
    sasl_password_env: str | None = Field(
        None, min_length=1, description="Environment variable holding the SASL password."
    )
    sasl_password: SecretStr | None = Field(
        None, description="Literal SASL password (tests and demos; prefer sasl_password_env)."
    )
    ca_file: Path | None = Field(None, description="CA bundle for the brokers' certificates.")
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="Producer batch compression."
    )
    linger_ms: int = Field(5, ge=0, le=1000, description="Producer wait to fill a batch.")
    claim_limit: int = Field(100, ge=1, le=10000, description="Outbox rows per produce round.")
    publish_timeout_s: float = Field(
        10.0,
        ge=1.0,
        le=300.0,
        description="Delivery timeout of a message (librdkafka delivery.timeout.ms) and the wait "
        "for a round's delivery reports.",
    )
    probe_timeout_s: float = Field(
        5.0, gt=0.0, le=60.0, description="Wait for cluster metadata when probing the brokers."
    )
    backoff_initial_s: BackoffInitialS = 1.0
    backoff_max_s: BackoffMaxS = 60.0
    idle_sleep_s: IdleSleepS = 0.2
    lease_s: LeaseS = 60.0

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, servers: str) -> str:
        for entry in servers.split(","):
            m = _SERVER.match(entry.strip())
            if m is None or not 1 <= int(m.group(2)) <= 65535:
                raise ValueError(f"bootstrap server {entry.strip()!r} is not host:port")
        return ",".join(s.strip() for s in servers.split(","))

    @field_validator("topic", "review_topic")
    @classmethod
    def _topic_template(cls, topic: str | None) -> str | None:
        if topic is None:
            return None
        parsed = topic_parts(topic)
        literal = "".join(text for text, _, _, _ in parsed)
        bad = sorted(set(_ILLEGAL.findall(literal)))
        if bad:
            raise ValueError(f"topic {topic!r} has characters Kafka does not allow: {bad}")
        if len(literal) > MAX_TOPIC_LEN:
            raise ValueError(f"topic {topic!r} is longer than {MAX_TOPIC_LEN} characters")
        return topic

    @model_validator(mode="after")
    def _security_fits(self) -> Self:
        sasl = self.security_protocol == "SASL_SSL"
        given = [n for n in ("sasl_mechanism", "sasl_username") if getattr(self, n) is not None]
        if not sasl and (given or self.sasl_password_env or self.sasl_password):
            raise ValueError(f"{', '.join(given) or 'a SASL password'} needs SASL_SSL")
        if sasl and len(given) < 2:
            raise ValueError("SASL_SSL needs sasl_mechanism and sasl_username")
        if sasl and self.sasl_password is None and self.sasl_password_env is None:
            raise ValueError("SASL_SSL needs sasl_password_env (or sasl_password)")
        if self.ca_file is not None and self.security_protocol == "PLAINTEXT":
            raise ValueError("ca_file needs security_protocol SSL or SASL_SSL")
        return self

    @model_validator(mode="after")
    def _timing_fits(self) -> Self:
        if self.lease_s <= self.publish_timeout_s + REPORT_GRACE_S:
            raise ValueError(
                f"lease_s {self.lease_s} must exceed publish_timeout_s + {REPORT_GRACE_S:g} s "
                f"({self.publish_timeout_s + REPORT_GRACE_S:g}): a row still waiting for its "
                "delivery report would be claimed again"
            )
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s {self.backoff_max_s} is below "
                f"backoff_initial_s {self.backoff_initial_s}"
            )
        return self

    def resolved_password(self, env: Mapping[str, str] | None = None) -> str | None:
        """The SASL password: literal, else from ``sasl_password_env``.

        Raises:
            ConfigError: ``sasl_password_env`` names a variable that is not set.
        """
        return env_secret(self.sasl_password, self.sasl_password_env, "kafka", env)


def producer_config(
    config: KafkaSinkConfig, env: Mapping[str, str] | None = None
) -> dict[str, ConfValue]:
    """librdkafka settings for ``config`` (holds the SASL password: never log it).

    Raises:
        ConfigError: the SASL password's environment variable is not set.
    """
    c = config
    timeout_ms = int(c.publish_timeout_s * 1000)
    conf: dict[str, ConfValue] = {
        "bootstrap.servers": c.bootstrap_servers,
        "client.id": c.client_id or f"sharpeyes-{socket.gethostname()[:64]}",
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        "delivery.timeout.ms": timeout_ms,
        "request.timeout.ms": min(30_000, timeout_ms),
        "linger.ms": c.linger_ms,
        "compression.type": c.compression,
        "security.protocol": c.security_protocol,
        "reconnect.backoff.max.ms": int(c.backoff_max_s * 1000),
    }
    if c.ca_file is not None:
        conf["ssl.ca.location"] = str(c.ca_file)
    if c.security_protocol == "SASL_SSL":
        assert c.sasl_mechanism is not None and c.sasl_username is not None  # _security_fits
        conf["sasl.mechanism"] = c.sasl_mechanism
        conf["sasl.username"] = c.sasl_username
        conf["sasl.password"] = c.resolved_password(env) or ""
    return conf


DeliveryCallback = Callable[[KafkaError | None, Message], None]


class ProducerLike(Protocol):
    """The part of :class:`confluent_kafka.Producer` the sender uses."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None: ...

    def poll(self, timeout: float = -1) -> int: ...

    def flush(self, timeout: float = -1) -> int: ...

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> object: ...


ProducerFactory = Callable[[dict[str, object]], ProducerLike]


def build_producer(conf: dict[str, object]) -> ProducerLike:
    """The production factory: a real librdkafka producer.

    Raises:
        ConfigError: librdkafka refused the settings (bad CA path, unknown mechanism, …).
    """
    try:
        producer: ProducerLike = Producer(conf)
    except KafkaException as e:
        raise ConfigError(f"kafka: producer settings refused: {e}") from e
    return producer


def kafka_topic_for(template: str, stored: StoredEvent) -> str:
    """The topic of ``stored``: template fields filled with sanitised values."""
    values = topic_values(stored)
    topic = template.format(**{k: _ILLEGAL.sub("_", v) or "_" for k, v in values.items()})
    return "_" * len(topic) if topic in (".", "..") else topic[:MAX_TOPIC_LEN]


def kafka_message_topic(config: KafkaSinkConfig, out: Outgoing) -> str:
    """The topic of one message: the event's, or a review's (``review_topic``, else the
    event's topic followed by ``.review``, shortened to fit before the suffix)."""
    if out.review is None:
        return kafka_topic_for(config.topic, out.stored)
    if config.review_topic is not None:
        return kafka_topic_for(config.review_topic, out.stored)
    suffix = f".{REVIEW_TOPIC_SUFFIX}"
    return kafka_topic_for(config.topic, out.stored)[: MAX_TOPIC_LEN - len(suffix)] + suffix


def message_headers(out: Outgoing) -> list[tuple[str, str | bytes | None]]:
    """``event_id``; for a review also ``type`` (``review``) and ``review_id``."""
    headers: list[tuple[str, str | bytes | None]] = [
        ("event_id", out.stored.event.event_id.encode())
    ]
    if out.review is not None:
        headers += [("type", b"review"), ("review_id", str(out.review.action.id).encode())]
    return headers


@dataclass
class KafkaReport(SinkReport):
    """Counts of one round (``not_connected``: probes that found no cluster, nothing claimed)."""

    late_reports: int = 0  # delivery reports after their round had given up on them


class _Round:
    """Delivery reports of one round, by outbox row id; closed once the round is settled."""

    def __init__(self) -> None:
        self.results: dict[int, KafkaError | None] = {}
        self.closed = False


class KafkaSender(BrokerSender[KafkaSinkConfig, KafkaReport]):
    """Drains the ``kafka`` outbox destination to one cluster; one instance per node."""

    sink = "kafka"
    verb = "produce"
    log = log

    def __init__(
        self,
        store: EventStore,
        config: KafkaSinkConfig,
        *,
        destination: str = KAFKA_DESTINATION,
        producer_factory: ProducerFactory = build_producer,
        remote: RemoteEvidence | None = None,
    ) -> None:
        super().__init__(store, config, destination, KafkaReport(), remote)
        self._factory = producer_factory
        self._producer: ProducerLike | None = None
        self._reachable = False
        self._fatal = False
        self._probe_failures = 0
        self._resume_at = 0.0  # time.monotonic(): nothing is claimed before it

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Build the producer (librdkafka connects in the background)."""
        if self._producer is None or self._fatal:
            self._producer = self._factory(
                {**producer_config(self.config), "error_cb": self._on_error}
            )
            self._fatal = False

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("kafka: fatal producer error, rebuilding the producer: %s", err.str())
            self._fatal = True
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("kafka: all brokers down (%s)", self.config.bootstrap_servers)
            self._reachable = False
        else:
            log.warning("kafka: %s", err.str())

    def close(self) -> None:
        """Serve the last delivery reports briefly and drop the producer."""
        if self._producer is not None:
            self._producer.flush(min(5.0, self.config.publish_timeout_s))
            self._producer = None
        self._reachable = False

    @property
    def connected(self) -> bool:
        return self._producer is not None and self._reachable and not self._fatal

    def _probe(self, producer: ProducerLike, report: KafkaReport) -> bool:
        """True when the cluster answers a metadata request; else back off the next probe."""
        try:
            producer.list_topics(timeout=self.config.probe_timeout_s)
        except KafkaException as e:
            self._probe_failures += 1
            self._resume_at = time.monotonic() + self._backoff_s(self._probe_failures - 1)
            report.not_connected = 1
            report.errors.append(f"probe: {e}")
            if self._reachable or self._probe_failures == 1:
                log.warning("kafka: cluster %s unreachable: %s", self.config.bootstrap_servers, e)
            self._reachable = False
            return False
        if self._probe_failures:
            log.info("kafka: cluster %s reachable again", self.config.bootstrap_servers)
        self._probe_failures = 0
        self._reachable = True
        return True

    # -- one round ----------------------------------------------------------------------------

    def run_once(self) -> KafkaReport:
        """Probe if needed, claim due rows, produce them and settle their delivery reports."""
        report = KafkaReport()
        if time.monotonic() < self._resume_at:
            return report
        self.connect()
        producer = self._producer
        assert producer is not None
        if not self._reachable and not self._probe(producer, report):
            self.totals.add(report)
            return report
        rnd = _Round()
        sent: list[OutboxItem] = []
        for item, out in self._claim(clock.now_ms(), report):
            self._produce(producer, out, item, rnd)
            sent.append(item)
        if sent:
            producer.flush(self.config.publish_timeout_s + REPORT_GRACE_S)
        rnd.closed = True
        self._settle(sent, rnd, report)
        self.totals.add(report)
        return report

    def _produce(
        self, producer: ProducerLike, out: Outgoing, item: OutboxItem, rnd: _Round
    ) -> None:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if rnd.closed:
                self.totals.late_reports += 1
                log.debug("kafka: late delivery report for outbox row %d: %s", item.id, err)
                return
            rnd.results[item.id] = err

        topic = kafka_message_topic(self.config, out)
        for attempt in range(2):
            try:
                producer.produce(
                    topic,
                    value=out.payload,
                    key=out.stored.event.stream_id.encode(),
                    on_delivery=on_delivery,
                    headers=message_headers(out),
                )
                return
            except BufferError:  # the local queue is full: serve reports, then try once more
                if attempt == 0:
                    producer.poll(1.0)
                    continue
                rnd.results[item.id] = KafkaError(KafkaError._QUEUE_FULL, "local queue full")
            except KafkaException as e:  # refused locally, e.g. too large or a bad topic
                rnd.results[item.id] = e.args[0] if e.args else KafkaError(KafkaError._FAIL)

    def _settle(self, sent: list[OutboxItem], rnd: _Round, report: KafkaReport) -> None:
        ok: list[int] = []
        failed: list[tuple[OutboxItem, str]] = []
        dead: list[tuple[OutboxItem, str]] = []
        for item in sent:
            if item.id not in rnd.results:
                failed.append((item, "no delivery report in time"))
                continue
            err = rnd.results[item.id]
            if err is None:
                ok.append(item.id)
            elif err.code() in _PERMANENT:
                dead.append((item, err.str()))
            else:
                failed.append((item, err.str()))
        now = clock.now_ms()
        if ok:
            self.outbox.mark_delivered(ok, now)
        for item, error in dead:
            self.outbox.mark_dead([item.id], f"kafka: {error}", now)
        if failed:
            # one due time for the whole round, and no claims before it: the failed rows come
            # back together, in id order, ahead of rows stored since
            delay = self._backoff_s(max(item.attempts for item, _ in failed))
            self._resume_at = time.monotonic() + delay
            self._reachable = False
            for item, error in failed:
                self.outbox.mark_failed([item.id], f"kafka: {error}", now, now + int(delay * 1000))
            report.errors.append(failed[0][1])
            log.warning("kafka: %d of %d not delivered: %s", len(failed), len(sent), failed[0][1])
        report.delivered += len(ok)
        report.failed += len(failed)
        report.dead += len(dead)

    def _idle_wait_s(self) -> float:
        """Until the back-off ends (at least the idle sleep, at most the longest back-off)."""
        wait_s = max(self.config.idle_sleep_s, self._resume_at - time.monotonic())
        return min(wait_s, self.config.backoff_max_s)

    def health(self) -> dict[str, object]:
        return self._health(
            ("brokers", self.config.bootstrap_servers), late_reports=self.totals.late_reports
        )


class KafkaDelivery(SenderThread):
    """A started :class:`KafkaSender` on its own thread."""

    def __init__(self, sender: KafkaSender) -> None:
        c = sender.config
        wait_s = max(5.0, c.publish_timeout_s + REPORT_GRACE_S + c.probe_timeout_s + 1)
        super().__init__(sender, "kafka-sender", wait_s)
        self.sender = sender


def start_kafka_sender(
    store: EventStore,
    config: KafkaSinkConfig,
    *,
    producer_factory: ProducerFactory = build_producer,
    remote: RemoteEvidence | None = None,
) -> KafkaDelivery:
    """Build the producer and drain the ``kafka`` destination on a thread (``remote``: a
    cluster's evidence storage, for the files its messages list).

    Raises:
        ConfigError: the producer settings were refused or the password variable is not set.
    """
    sender = KafkaSender(store, config, producer_factory=producer_factory, remote=remote)
    return KafkaDelivery(sender).start()
