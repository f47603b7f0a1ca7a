"""MQTT sink (issue 15) against a real ``mosquitto`` broker started by the test: events go through
the durable outbox (destination ``mqtt``) with QoS 1; the broker is killed (SIGKILL) and
restarted on the same port mid-run while events keep being stored, and a subscriber still
receives every stored event (0 lost; duplicates allowed, counted)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from sharpeyes.api.sinks import MqttSinkConfig, start_mqtt_sender
from sharpeyes.api.sinks.mqtt import topic_for
from sharpeyes.api.store import EventStore, open_store
from sharpeyes.pipeline.errors import ConfigError
from tests._api_fixtures import make_event
from tests.conftest import need

log = logging.getLogger(__name__)
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A mosquitto process on 127.0.0.1:port with on-disk persistence saved on every change
    (so a durable subscriber session survives a SIGKILL)."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.conf = root / "mosquitto.conf"
        lines = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {root}/",
            "autosave_interval 1",
            "autosave_on_changes true",
            f"log_dest file {root}/mosquitto.log",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    need(Path(MOSQUITTO).is_file(), "mosquitto is not installed (apt-get install mosquitto)")
    b = Broker(tmp_path, _free_port())
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A durable QoS 1 subscription (clean_session=False) collecting event ids."""

    def __init__(self, port: int) -> None:
        self.received: list[str] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="sharpeyes-test-sub", clean_session=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        client.subscribe("sharpeyes/#", qos=1)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        with self._lock:
            self.received.append(str(body["event_id"]))

    def ids(self) -> list[str]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _config(port: int) -> MqttSinkConfig:
    return MqttSinkConfig(
        host="127.0.0.1",
        port=port,
        client_id="sharpeyes-test-pub",
        keepalive_s=5,
        publish_timeout_s=2.0,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
        idle_sleep_s=0.05,
        claim_limit=50,
    )


@pytest.mark.integration
def test_broker_killed_and_restarted_mid_run_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    store: EventStore = open_store(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "files")
    sub = Subscriber(broker.port)
    assert sub.subscribed.wait(10)
    delivery = start_mqtt_sender(store, _config(broker.port))
    stored: list[str] = []
    outage_backlog = 0
    try:
        batches, per_batch = 60, 5
        for b in range(batches):
            events = [
                make_event(b * per_batch + k, camera=f"cam{k % 2}", violation=k == 0)
                for k in range(per_batch)
            ]
            store.add_events(events, outbox_destinations=["mqtt"])
            stored += [e.event_id for e in events]
            if b == 15:  # while rows are being published: some are in flight
                assert delivery.sender.totals.delivered > 0
                broker.kill()
            if b == 35:  # 20 batches stored while the broker was down
                outage_backlog = delivery.sender.backlog().backlog
                assert not delivery.sender.connected
                broker.start()
            time.sleep(0.05)
        assert delivery.drain(60), delivery.health()
        deadline = time.monotonic() + 30
        while set(sub.ids()) != set(stored) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        delivery.stop()
        sub.close()
        store.close()
    got = Counter(sub.ids())
    lost = set(stored) - set(got)
    duplicates = sum(n - 1 for n in got.values())
    log.info(
        "mqtt: stored %d, received %d distinct, %d duplicates, backlog in outage %d, totals %s",
        len(stored),
        len(got),
        duplicates,
        outage_backlog,
        delivery.sender.totals,
    )
    assert outage_backlog >= 90, "events stored during the outage should wait in the outbox"
    assert delivery.sender.totals.not_connected > 0
    assert not lost, f"{len(lost)} of {len(stored)} events lost"
    assert set(got) == set(stored)


def test_config_checks_topic_fields_and_password_env() -> None:
    with pytest.raises(ValidationError, match="unknown field"):
        MqttSinkConfig(host="h", topic="a/{camera}")
    with pytest.raises(ValidationError, match="wildcards"):
        MqttSinkConfig(host="h", topic="a/+/{type}")
    with pytest.raises(ValidationError):
        MqttSinkConfig.model_validate({"host": "h", "qos": 0})
    cfg = MqttSinkConfig(host="h", username="u", password_env="MQTT_PW")
    assert cfg.resolved_password({"MQTT_PW": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match="MQTT_PW"):
        cfg.resolved_password({})
    assert "s3cret" not in repr(MqttSinkConfig.model_validate({"host": "h", "password": "s3cret"}))


def test_topic_fills_fields_and_neutralises_wildcards(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "files")
    try:
        ev = make_event(1, camera="gate/+#1", violation=True)
        store.add_events([ev], device_id="34020000001320000001")
        stored = store.get_event(ev.event_id)
        assert stored is not None
        topic = topic_for("se/{device_id}/{stream_id}/{type}/{kind}", stored)
        assert topic == "se/34020000001320000001/gate___1/red_light_violation/motor_vehicle"
    finally:
        store.close()


def test_service_config_takes_an_optional_mqtt_section() -> None:
    from sharpeyes.api.node.settings import ServiceConfig

    assert ServiceConfig().mqtt is None
    cfg = ServiceConfig.model_validate({"mqtt": {"host": "10.1.2.3", "password_env": "PW"}})
    assert cfg.mqtt is not None and cfg.mqtt.port == 1883 and cfg.mqtt.qos == 1
    with pytest.raises(ValidationError):
        ServiceConfig.model_validate({"mqtt": {"host": "h", "bogus": 1}})
