"""Reviewers' decisions reach MQTT and Kafka consumers.

A review of a violation that was published to a message bus queues a ``review`` outbox row for
that bus in the review's own transaction (``api/store/routing.review_destinations``), and the
sender publishes ``{"type": "review", …}`` with what the reviewer did. Before, only the live
feed (SSE) learnt of decisions: a centre that acted on a violation over Kafka never learnt it
was rejected or that its plate was corrected.

MQTT against a real ``mosquitto`` started by the test; Kafka against the broker double of
tests/kafka_double.py (no Kafka broker can run here).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from sharpeyes.api.sinks._broker import Outgoing
from sharpeyes.api.sinks.kafka import (
    KafkaDelivery,
    KafkaSinkConfig,
    kafka_message_topic,
    start_kafka_sender,
)
from sharpeyes.api.sinks.mqtt import MqttSinkConfig, message_topic, start_mqtt_sender
from sharpeyes.api.store import EventStore, open_store
from sharpeyes.pipeline.types import Event
from tests._api_fixtures import Seeded, make_app, make_event, seed_service, write_evidence
from tests._wait import wait_for
from tests.kafka_double import FakeBroker
from tests.test_mqtt_sink import Broker, broker  # noqa: F401
from tests.test_mqtt_sink import _config as mqtt_sink_config
from tests.test_sink_kafka import _config as kafka_sink_config

pytestmark = pytest.mark.integration

DEVICE = "34020000001320000001"
REVIEW_TOPIC = "sharpeyes/events/cam1/red_light_violation/review"  # the default: event's + /review


class Consumer:
    """A durable QoS 1 MQTT subscription (survives a broker restart) keeping every message."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="sharpeyes-review-sub", clean_session=False
        )
        self.client.on_connect = lambda c, *_: c.subscribe("sharpeyes/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the consumer did not subscribe"

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload)))

    def reviews(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(t, m) for t, m in self.messages if m.get("type") == "review"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_config(port: int) -> MqttSinkConfig:
    return mqtt_sink_config(port).model_copy(update={"client_id": "sharpeyes-review-pub"})


def kafka_config(**over: object) -> KafkaSinkConfig:
    return kafka_sink_config(**{"claim_limit": 100, **over})


def kafka_reviews(double: FakeBroker) -> list[dict[str, Any]]:
    out = [json.loads(r.value or b"{}") for r in double.records()]
    return [m for m in out if m.get("type") == "review"]


def store_violations(
    store: EventStore, destinations: tuple[str, ...], n: int = 2, *, first: int = 0
) -> list[Event]:
    """``n`` red-light violations on cam1 (plate 京A1234<i>) queued for ``destinations``, with
    their evidence records and feed rows, as a camera of the node stores them."""
    events = [make_event(i, violation=True, plate=f"京A1234{i}") for i in range(first, first + n)]
    store.add_events(events, outbox_destinations=destinations, device_id=DEVICE, feed=True)
    for ev in events:
        rel = write_evidence(store.files_root, ev)
        store.set_evidence(ev.event_id, rel, f"{rel}/record.json")
    return events


def feed_seq(store: EventStore, event_id: str) -> list[int]:
    """The seqs of the event's ``review`` rows in the feed log (the SSE ids), oldest first."""
    with store.db.transaction(readonly=True) as tx:
        rows = tx.fetchall(
            "SELECT seq FROM feed_log WHERE event_id = ? AND type = 'review' ORDER BY seq",
            (event_id,),
        )
    return [int(r[0]) for r in rows]


def review_rows(store: EventStore) -> list[tuple[str, str, str]]:
    with store.db.transaction(readonly=True) as tx:
        rows = tx.fetchall(
            "SELECT destination, object_id, state FROM outbox WHERE kind = 'review' ORDER BY id"
        )
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    s = seed_service(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, violations=0, passes=0)
    yield s
    s.service.db.close()


def test_rest_reviews_reach_mqtt_and_kafka_consumers_as_decided(
    seeded: Seeded,
    broker: Broker,  # noqa: F811
) -> None:
    """Confirm with a corrected plate, reject with a reason, then re-confirm: each decision
    arrives on both buses with its state, plate before/after, actor and reason, numbered in
    order on its event, with the live feed's SSE id."""
    store = seeded.service.events
    confirmed, rejected = store_violations(store, ("mqtt", "kafka"))
    consumer = Consumer(broker.port)
    double = FakeBroker()
    mqtt = start_mqtt_sender(store, mqtt_config(broker.port))
    kafka = start_kafka_sender(store, kafka_config(), producer_factory=double.factory)
    try:
        with TestClient(make_app(seeded)) as client:

            def review(eid: str, **body: object) -> dict[str, Any]:
                r = client.post(
                    f"/api/v1/violations/{eid}/review",
                    json={"reason": None, "corrected_plate": None, **body},
                    headers=seeded.auth("reviewer"),
                )
                assert r.status_code == 200, r.text
                audit: dict[str, Any] = r.json()["audit"]
                return audit

            a1 = review(confirmed.event_id, action="confirm", corrected_plate="京A99999")
            a2 = review(rejected.event_id, action="reject", reason="ambulance on duty")
            a3 = review(rejected.event_id, action="confirm", corrected_plate=None)
        wait_for(lambda: len(consumer.reviews()) >= 3, 15, "3 review messages over MQTT")
        wait_for(lambda: len(kafka_reviews(double)) >= 3, 15, "3 review messages to Kafka")
        assert mqtt.drain(10) and kafka.drain(10)
    finally:
        mqtt.stop()
        kafka.stop()
        consumer.close()

    by_id = {m["review_id"]: (t, m) for t, m in consumer.reviews()}
    assert sorted(by_id) == sorted([a1["id"], a2["id"], a3["id"]]), "one message per decision"
    topic, m1 = by_id[a1["id"]]
    assert topic == REVIEW_TOPIC
    assert m1["event_id"] == confirmed.event_id and m1["stream_id"] == "cam1"
    assert m1["device_id"] == DEVICE and m1["event_type"] == "red_light_violation"
    assert (m1["action"], m1["review_state"], m1["previous_review_state"]) == (
        "confirm",
        "confirmed",
        "pending",
    )
    assert (m1["plate_before"], m1["plate_after"]) == ("京A12340", "京A99999")
    assert m1["actor"] == a1["actor"] and "reviewer-user" in m1["actor"]
    assert m1["time_ms"] == a1["at_ms"] and m1["review_seq"] == 1
    assert m1["feed_seq"] == feed_seq(store, confirmed.event_id)[0]
    _, m2 = by_id[a2["id"]]
    _, m3 = by_id[a3["id"]]
    assert m2["event_id"] == m3["event_id"] == rejected.event_id
    assert (m2["action"], m2["review_state"], m2["reason"]) == (
        "reject",
        "rejected",
        "ambulance on duty",
    )
    assert m2["plate_before"] == m2["plate_after"] == "京A12341"  # no corrected plate
    assert (m3["review_state"], m3["previous_review_state"]) == ("confirmed", "rejected")
    assert (m2["review_seq"], m3["review_seq"]) == (1, 2), "decisions on one event in order"
    assert [m2["feed_seq"], m3["feed_seq"]] == feed_seq(store, rejected.event_id)

    # Kafka: the same decisions, on the event's topic + ".review", keyed by camera, with headers
    records = [r for r in double.records() if dict(r.headers).get("type") == b"review"]
    assert {r.topic for r in records} == {"se.cam1.review"}
    assert {r.key for r in records} == {b"cam1"}
    for r in records:
        body = json.loads(r.value or b"{}")
        assert {k: v for k, v in body.items() if k != "destination"} == {
            k: v for k, v in by_id[body["review_id"]][1].items() if k != "destination"
        }, "the same message on both buses"
        assert body["destination"] == "kafka"
        headers = dict(r.headers)
        assert headers["event_id"] == body["event_id"].encode()
        assert headers["review_id"] == str(body["review_id"]).encode()
    assert {dest for dest, _, state in review_rows(store) if state == "delivered"} == {
        "mqtt",
        "kafka",
    }
    assert len(review_rows(store)) == 6


def test_a_decision_taken_while_the_mqtt_broker_is_down_arrives_when_it_is_back(
    tmp_path: Path,
    broker: Broker,  # noqa: F811
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "files")
    consumer = Consumer(broker.port)
    mqtt = start_mqtt_sender(store, mqtt_config(broker.port))
    try:
        (ev,) = store_violations(store, ("mqtt",), n=1)
        wait_for(lambda: consumer.messages, 15, "the event over MQTT")
        broker.stop()
        wait_for(lambda: not mqtt.sender.connected, 10, "the sender to see the broker gone")
        store.review(ev.event_id, "zhangsan", "reject", reason="plate misread")
        assert [(d, state) for d, _, state in review_rows(store)] == [("mqtt", "pending")]
        wait_for(lambda: mqtt.sender.totals.not_connected > 0, 5, "a round without broker")
        assert mqtt.sender.backlog().backlog == 1 and not consumer.reviews()
        broker.start()
        got = wait_for(consumer.reviews, 20, "the review after the broker came back")
        assert mqtt.drain(10)
    finally:
        mqtt.stop()
        consumer.close()
        store.close()
    ((_, m),) = got
    assert (m["event_id"], m["action"], m["review_state"]) == (ev.event_id, "reject", "rejected")
    assert (m["actor"], m["reason"]) == ("zhangsan", "plate misread")


def test_kafka_down_during_a_review_and_a_lost_ack_lose_nothing(tmp_path: Path) -> None:
    """The decision waits in the outbox while the cluster is down; a lost delivery report
    re-sends it — byte for byte the same message (same ``review_id``: a consumer drops it)."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "files")
    double = FakeBroker()
    config = kafka_config(review_topic="se.reviews.{type}")
    kafka: KafkaDelivery = start_kafka_sender(store, config, producer_factory=double.factory)
    try:
        (ev,) = store_violations(store, ("kafka",), n=1)
        wait_for(double.records, 10, "the event to Kafka")
        double.down = True
        store.review(ev.event_id, "lisi", "confirm", corrected_plate="京B00001")
        wait_for(lambda: double.probes > 1, 10, "the sender probing the broker down")
        assert not kafka_reviews(double) and kafka.sender.backlog().backlog == 1
        double.lose_acks(1)
        double.down = False
        wait_for(lambda: len(kafka_reviews(double)) >= 2, 15, "the review, twice")
        assert kafka.drain(10)
    finally:
        kafka.stop()
        store.close()
    records = [r for r in double.records() if r.topic == "se.reviews.red_light_violation"]
    assert len(records) == 2 and records[0].value == records[1].value
    m = json.loads(records[0].value or b"{}")
    assert (m["type"], m["event_id"], m["review_state"]) == ("review", ev.event_id, "confirmed")
    assert (m["plate_before"], m["plate_after"], m["actor"]) == ("京A12340", "京B00001", "lisi")


def test_the_cluster_sinks_process_publishes_reviews(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In cluster mode the review is recorded in the cluster database (by the API over it)
    and the process running the cluster's sinks publishes it."""
    from sharpeyes.api.cluster.delivery import start_cluster_sinks
    from sharpeyes.api.cluster.service import ClusterSettings
    from sharpeyes.api.sinks import kafka as kafka_mod
    from sharpeyes.api.sinks import started

    double = FakeBroker()

    def start_with_double(store: Any, config: Any, **kw: Any) -> Any:
        return kafka_mod.start_kafka_sender(store, config, producer_factory=double.factory, **kw)

    monkeypatch.setattr(started, "start_kafka_sender", start_with_double)
    db = tmp_path / "cluster.db"
    settings = ClusterSettings.model_validate(
        {"db_url": str(db), "workers": 1, "files_root": str(tmp_path)}
    )
    api_store = open_store(settings.db_url, tmp_path)  # the REST API's store in cluster mode
    sinks, sinks_store = start_cluster_sinks(settings, None, kafka_config())
    try:
        (ev,) = store_violations(api_store, ("kafka",), n=1)  # as a cluster commit queues it
        api_store.review(ev.event_id, "wangwu", "reject", reason="duplicate")
        got = wait_for(lambda: kafka_reviews(double), 15, "the review from the cluster's sinks")
    finally:
        sinks.stop(5.0, {})
        sinks_store.close()
        api_store.close()
    assert got[0]["event_id"] == ev.event_id and got[0]["review_state"] == "rejected"


def test_review_topics_default_to_the_event_topic_with_a_suffix(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "files")
    try:
        (ev,) = store_violations(store, ("mqtt",), n=1)
        store.review(ev.event_id, "zhaoliu", "confirm")
        stored = store.get_event(ev.event_id)
        logged = store.logged_review(store.audit_trail(ev.event_id)[0].id)
    finally:
        store.close()
    assert stored is not None and logged is not None
    event, review = Outgoing(stored, b"{}"), Outgoing(stored, b"{}", logged)
    mqtt = MqttSinkConfig(host="h", topic="se/{device_id}/{type}")
    assert message_topic(mqtt, event) == f"se/{DEVICE}/red_light_violation"
    assert message_topic(mqtt, review) == f"se/{DEVICE}/red_light_violation/review"
    custom = mqtt.model_copy(update={"review_topic": "reviews/{stream_id}"})
    assert message_topic(custom, review) == "reviews/cam1"
    long = KafkaSinkConfig(bootstrap_servers="h:9092", topic="x" * 249)
    topic = kafka_message_topic(long, review)
    assert len(topic) == 249 and topic.endswith(".review") and topic != "x" * 249
    assert kafka_message_topic(KafkaSinkConfig(bootstrap_servers="h:9092"), review) == (
        "sharpeyes.events.review"
    )
