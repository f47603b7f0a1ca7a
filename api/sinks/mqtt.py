"""MQTT event sink: the outbox destination ``mqtt`` drained to a broker with QoS 1 (paho-mqtt).

Rows are enqueued in the same transaction as their events (the node adds ``mqtt`` to every
camera's outbox destinations when ``mqtt`` is configured), claimed in id order, published with
QoS 1 (or 2) and marked delivered only once the broker acknowledged them (PUBACK / PUBCOMP).
While the broker is unreachable nothing is claimed; a publish that is not acknowledged within
``publish_timeout_s`` is retried with jittered exponential back-off. A sender or broker killed
at any point loses nothing: claimed rows come back when their lease runs out. Delivery is
at-least-once — a message may arrive twice (a retry after a lost acknowledgement): consumers
deduplicate on ``event_id`` (deterministic, unique per event).

Payload: the stored event as JSON (the ``events.jsonl`` shape plus the store's fields), UTF-8.
Topic: ``topic`` with ``{stream_id}``, ``{type}``, ``{kind}`` and ``{device_id}`` filled in
(``/``, ``+``, ``#`` in values replaced by ``_``).

A reviewer's decision on a violation published here before is published too (its row is queued
in the review's transaction): ``"type": "review"`` and the decision
(:func:`~sharpeyes.api.sinks.payload.review_message`), on ``review_topic`` (the same fields, of
the reviewed event) or, without one, on the event's topic followed by ``/review``. Consumers
deduplicate it on ``review_id`` and order decisions on one event by ``review_seq``.
"""

from __future__ import annotations

import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import Field, SecretStr, field_validator

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

log = logging.getLogger(__name__)

MQTT_DESTINATION = "mqtt"
_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_"})


class MqttSinkConfig(StrictModel):
    """Where and how events are published; the password comes from the environment."""

    host: str = Field(..., min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS usually).")
    topic: str = Field(
        "sharpeyes/events/{stream_id}/{type}",
        min_length=1,
        description="Topic template; fields {stream_id}, {type}, {kind}, {device_id}.",
    )
    review_topic: str | None = Field(
        None,
        min_length=1,
        description="Topic template of reviewers' decisions (the same fields, of the reviewed "
        "event); None = the event's topic followed by /review.",
    )
    qos: Literal[1, 2] = Field(
        1,
        description="MQTT QoS: 1 = at least once (2 = exactly once "
        "to the broker; the outbox still retries, so at-least-once).",
    )
    client_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="MQTT client id; None = sharpeyes-<host>-<random> (two senders with one id "
        "would keep disconnecting each other).",
    )
    username: str | None = Field(None, description="User name, if the broker wants one.")
    password_env: str | None = Field(
        None, description="Environment variable holding the password (never logged)."
    )
    password: SecretStr | None = Field(
        None, description="Literal password (tests and demos; prefer password_env)."
    )
    tls: bool = Field(False, description="Connect with TLS (system CAs unless ca_file).")
    ca_file: Path | None = Field(None, description="CA bundle for the broker's certificate.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval.")
    claim_limit: int = Field(100, ge=1, le=1000, description="Outbox rows per publish round.")
    publish_timeout_s: float = Field(
        10.0, gt=0.0, le=300.0, description="Wait for the broker's acknowledgements of a round."
    )
    backoff_initial_s: BackoffInitialS = 1.0
    backoff_max_s: BackoffMaxS = 60.0
    idle_sleep_s: IdleSleepS = 0.2
    lease_s: LeaseS = 60.0

    @field_validator("topic", "review_topic")
    @classmethod
    def _known_fields(cls, topic: str | None) -> str | None:
        if topic is None:
            return None
        topic_parts(topic)
        if "+" in topic or "#" in topic:
            raise ValueError(f"topic {topic!r} must not contain MQTT wildcards + or #")
        return topic

    def resolved_password(self, env: Mapping[str, str] | None = None) -> str | None:
        """The password: literal, else from ``password_env``.

        Raises:
            ConfigError: ``password_env`` names a variable that is not set.
        """
        return env_secret(self.password, self.password_env, "mqtt", env)


MqttReport = SinkReport
"""Counts of one round (``not_connected``: rounds skipped because the broker was unreachable)."""


def topic_for(template: str, stored: StoredEvent) -> str:
    values = topic_values(stored)
    return template.format(**{k: v.translate(_UNSAFE) for k, v in values.items()})


def message_topic(config: MqttSinkConfig, out: Outgoing) -> str:
    """The topic of one message: the event's, or a review's (``review_topic``, else the
    event's topic followed by ``/review``)."""
    if out.review is None:
        return topic_for(config.topic, out.stored)
    if config.review_topic is not None:
        return topic_for(config.review_topic, out.stored)
    return f"{topic_for(config.topic, out.stored)}/{REVIEW_TOPIC_SUFFIX}"


class MqttSender(BrokerSender[MqttSinkConfig, MqttReport]):
    """Drains the ``mqtt`` outbox destination to one broker; one instance per node."""

    sink = "mqtt"
    verb = "publish"
    log = log

    def __init__(
        self,
        store: EventStore,
        config: MqttSinkConfig,
        *,
        destination: str = MQTT_DESTINATION,
        remote: RemoteEvidence | None = None,
    ) -> None:
        super().__init__(store, config, destination, MqttReport(), remote)
        self._connected = threading.Event()
        self._client = self._make_client()

    def _make_client(self) -> paho.Client:
        c = self.config
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=c.client_id
            or f"sharpeyes-{socket.gethostname()[:32]}-{secrets.token_hex(4)}",
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        if c.username is not None:
            client.username_pw_set(c.username, c.resolved_password())
        if c.tls:
            client.tls_set(
                ca_certs=None if c.ca_file is None else str(c.ca_file),
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.reconnect_delay_set(1, max(1, int(c.backoff_max_s)))
        client.max_inflight_messages_set(max(20, c.claim_limit))
        client.max_queued_messages_set(10 * c.claim_limit)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        if not getattr(reason, "is_failure", False):
            log.info("mqtt: connected to %s:%s", self.config.host, self.config.port)
            self._connected.set()
        else:
            log.warning("mqtt: broker refused the connection: %s", reason)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        if self._connected.is_set():
            log.warning(
                "mqtt: disconnected from %s:%s (%s)", self.config.host, self.config.port, reason
            )
        self._connected.clear()

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Start connecting in the background (paho reconnects by itself afterwards)."""
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self._client.is_connected()

    # -- one round ----------------------------------------------------------------------------

    def run_once(self) -> MqttReport:
        """Claim due rows, publish them and wait for the broker's acknowledgements."""
        report = MqttReport()
        if not self.connected:
            report.not_connected = 1
            self.totals.add(report)
            return report
        c = self.config
        sent: list[tuple[OutboxItem, paho.MQTTMessageInfo]] = []
        for item, out in self._claim(clock.now_ms(), report):
            info = self._client.publish(message_topic(c, out), out.payload, qos=c.qos)
            sent.append((item, info))
        self._settle(sent, report)
        self.totals.add(report)
        return report

    def _settle(
        self, sent: list[tuple[OutboxItem, paho.MQTTMessageInfo]], report: MqttReport
    ) -> None:
        deadline = time.monotonic() + self.config.publish_timeout_s
        ok: list[int] = []
        failed: list[tuple[OutboxItem, str]] = []
        for item, info in sent:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (ValueError, RuntimeError) as e:
                failed.append((item, str(e)))
                continue
            if info.is_published():
                ok.append(item.id)
            else:
                failed.append((item, "no acknowledgement from the broker in time"))
        now = clock.now_ms()
        if ok:
            self.outbox.mark_delivered(ok, now)
        for item, error in failed:
            retry_at = now + int(self._backoff_s(item.attempts) * 1000)
            self.outbox.mark_failed([item.id], f"mqtt: {error}", now, retry_at)
        report.delivered += len(ok)
        report.failed += len(failed)
        if failed:
            report.errors.append(failed[0][1])

    def health(self) -> dict[str, object]:
        return self._health(("broker", f"{self.config.host}:{self.config.port}"))


class MqttDelivery(SenderThread):
    """A started :class:`MqttSender` on its own thread."""

    def __init__(self, sender: MqttSender) -> None:
        super().__init__(sender, "mqtt-sender", max(5.0, sender.config.publish_timeout_s + 1))
        self.sender = sender


def start_mqtt_sender(
    store: EventStore, config: MqttSinkConfig, *, remote: RemoteEvidence | None = None
) -> MqttDelivery:
    """Connect to the broker and drain the ``mqtt`` destination on a thread (``remote``: a
    cluster's evidence storage, for the files its messages list)."""
    return MqttDelivery(MqttSender(store, config, remote=remote)).start()
