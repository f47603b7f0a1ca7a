"""The event sinks a node runs over its store: MQTT and Kafka senders started and stopped in one
place, for ``run``/``serve`` in one process and for the parent of ``run --workers N`` alike.

Before, the worker-process parent started only the MQTT sender: with ``kafka:`` the workers
queued ``kafka`` outbox rows that no process ever sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from sharpeyes.api.rest.evidence import RemoteEvidence
from sharpeyes.api.sinks.kafka import KafkaDelivery, KafkaSinkConfig, start_kafka_sender
from sharpeyes.api.sinks.mqtt import MqttDelivery, MqttSinkConfig, start_mqtt_sender
from sharpeyes.api.store import EventStore


@dataclass(slots=True)
class EventSinks:
    """The started senders (None where not configured)."""

    mqtt: MqttDelivery | None = None
    kafka: KafkaDelivery | None = None

    @classmethod
    def start(
        cls,
        store: EventStore,
        mqtt: MqttSinkConfig | None,
        kafka: KafkaSinkConfig | None,
        remote: RemoteEvidence | None = None,
    ) -> EventSinks:
        """Start the configured senders (``remote``: a cluster's evidence storage, for the
        evidence files their messages list that are not under the store's files root)."""
        started = cls()
        if mqtt is not None:
            started.mqtt = start_mqtt_sender(store, mqtt, remote=remote)
        if kafka is not None:
            started.kafka = start_kafka_sender(store, kafka, remote=remote)
        return started

    def stop(self, drain_timeout_s: float, undelivered: dict[str, int]) -> None:
        """Drain for up to ``drain_timeout_s`` each and stop; what is still pending is added
        to ``undelivered`` (by sink name)."""
        if self.mqtt is not None:
            self.mqtt.stop(drain_timeout_s=drain_timeout_s)
            undelivered["MQTT"] = self.mqtt.sender.backlog().backlog
        if self.kafka is not None:
            self.kafka.stop(drain_timeout_s=drain_timeout_s)
            undelivered["Kafka"] = self.kafka.sender.backlog().backlog
        self.mqtt = self.kafka = None
