"""Event sinks to message buses, fed through the durable outbox (at-least-once delivery)."""

from sharpeyes.api.sinks.mqtt import (
    MQTT_DESTINATION,
    MqttReport,
    MqttSender,
    MqttSinkConfig,
    start_mqtt_sender,
)

__all__ = [
    "MQTT_DESTINATION",
    "MqttReport",
    "MqttSender",
    "MqttSinkConfig",
    "start_mqtt_sender",
]
