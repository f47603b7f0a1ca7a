"""MQTT and Kafka in cluster mode: every commit of a cluster camera gets its ``mqtt`` /
``kafka`` outbox rows (as on a single node) and the process that runs the cluster publishes
them (``api/cluster/delivery.start_cluster_sinks``). Before, ``cluster:`` silently ignored
``mqtt:`` and ``kafka:``: nothing was queued and nothing sent.

MQTT against a real mosquitto (durable QoS 1 subscriber); Kafka against the broker double of
tests/kafka_double.py (no Kafka broker can run here).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sharpeyes.api.cluster.service import ClusterSettings, start_cluster
from sharpeyes.api.cluster.synthetic import synthetic_spec
from sharpeyes.api.sinks import kafka as kafka_mod
from sharpeyes.api.sinks import started
from sharpeyes.api.sinks.kafka import KafkaSinkConfig
from tests._wait import wait_for
from tests.kafka_double import FakeBroker
from tests.test_mqtt_sink import Broker, Subscriber, _config, broker  # noqa: F401

pytestmark = pytest.mark.integration


def committed(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {str(r[0]) for r in conn.execute("SELECT event_id FROM events")}


def pending(db: Path, destination: str) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE destination = ? AND state != 'delivered'",
            (destination,),
        ).fetchone()
    return int(row[0])


def settings(tmp_path: Path) -> tuple[ClusterSettings, Path]:
    db = tmp_path / "cluster.db"
    cfg = {"db_url": str(db), "workers": 1, "tick_s": 0.05, "files_root": str(tmp_path)}
    return ClusterSettings.model_validate(cfg), db


def test_the_cluster_publishes_its_events_over_mqtt(tmp_path: Path, broker: Broker) -> None:  # noqa: F811
    sub = Subscriber(broker.port)
    try:
        assert sub.subscribed.wait(10)
        cfg, db = settings(tmp_path)
        handle = start_cluster(cfg, [synthetic_spec("s1", rate=20)], mqtt=_config(broker.port))
        try:
            wait_for(lambda: len(sub.ids()) >= 20, 30, "20 events over MQTT")
            handle.remove_camera("s1")
            wait_for(lambda: pending(db, "mqtt") == 0, 30, "the mqtt rows delivered")
        finally:
            handle.stop()
        events = committed(db)
        wait_for(lambda: set(sub.ids()) >= events, 10, "every committed event")
        assert events and set(sub.ids()) == events
    finally:
        sub.close()


def test_the_cluster_publishes_its_events_to_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    double = FakeBroker()

    def start_with_double(store: Any, config: Any, **kw: Any) -> Any:
        return kafka_mod.start_kafka_sender(store, config, producer_factory=double.factory, **kw)

    monkeypatch.setattr(started, "start_kafka_sender", start_with_double)
    kafka = KafkaSinkConfig.model_validate(
        {"bootstrap_servers": "127.0.0.1:9092", "topic": "se.{stream_id}", "idle_sleep_s": 0.02}
    )
    cfg, db = settings(tmp_path)
    handle = start_cluster(cfg, [synthetic_spec("s1", rate=20)], kafka=kafka)
    try:
        wait_for(lambda: len(double.records()) >= 20, 30, "20 events to Kafka")
        handle.remove_camera("s1")
        wait_for(lambda: pending(db, "kafka") == 0, 30, "the kafka rows delivered")
    finally:
        handle.stop()
    got = {json.loads(r.value or b"{}")["event_id"] for r in double.records()}
    assert got == committed(db) and got
