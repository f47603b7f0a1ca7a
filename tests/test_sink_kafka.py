"""Kafka sink (issue 15) through the durable outbox (destination ``kafka``).

No Kafka broker can be installed here (no Kafka distribution on PyPI or Debian), so these tests
run the sender against a **broker double** (``tests/kafka_double.py``) injected through the
sender's ``producer_factory``; only the last tests touch the real ``confluent_kafka.Producer``
(built with settings, never producing). Faults: broker down for a while, lost delivery reports
(duplicates), and a sender killed mid-batch (the next sender delivers the rest).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
from pydantic import ValidationError

from sharpeyes.api.node.settings import ServiceConfig, load_service_config
from sharpeyes.api.sinks.kafka import (
    KAFKA_DESTINATION,
    KafkaSender,
    KafkaSinkConfig,
    build_producer,
    kafka_topic_for,
    producer_config,
    start_kafka_sender,
)
from sharpeyes.api.sinks.payload import event_message
from sharpeyes.api.store import EventStore, open_store
from sharpeyes.api.store.serialize import dumps
from sharpeyes.pipeline.errors import ConfigError
from tests._api_fixtures import make_event
from tests.kafka_double import FakeBroker, Record

log = logging.getLogger(__name__)
CAMERAS = ("cam0", "cam1", "cam2")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "files")
    yield s
    s.close()


def _config(**over: object) -> KafkaSinkConfig:
    base: dict[str, object] = {
        "bootstrap_servers": "127.0.0.1:9092",
        "topic": "se.{stream_id}",
        "claim_limit": 20,
        "publish_timeout_s": 1.0,
        "probe_timeout_s": 0.1,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "idle_sleep_s": 0.02,
        "lease_s": 2.1,
    }
    return KafkaSinkConfig.model_validate({**base, **over})


def _store_events(store: EventStore, start: int, n: int) -> list[str]:
    """``n`` events round-robin over the cameras; their ids in store order."""
    events = [
        make_event(i, camera=CAMERAS[i % 3], violation=i % 4 == 0) for i in range(start, start + n)
    ]
    store.add_events(
        events, outbox_destinations=[KAFKA_DESTINATION], device_id="34020000001320000001"
    )
    return [e.event_id for e in events]


def _event_id(r: Record) -> str:
    return str(json.loads(r.value or b"{}")["event_id"])


def _check(broker: FakeBroker, stored: list[str], store: EventStore) -> int:
    """Every stored event arrived, first arrivals keep each camera's store order; duplicates."""
    records = broker.records()
    got = Counter(_event_id(r) for r in records)
    lost = set(stored) - set(got)
    assert not lost, f"{len(lost)} of {len(stored)} events lost"
    for cam in CAMERAS:
        recs = broker.records(f"se.{cam}")
        assert {r.key for r in recs} == {cam.encode()}, "key = stream_id"
        assert len({r.partition for r in recs}) == 1, "one camera, one partition"
        first: list[str] = []
        for r in sorted(recs, key=lambda r: r.offset):
            eid = _event_id(r)
            assert dict(r.headers)["event_id"] == eid.encode()
            if eid not in first:
                first.append(eid)
        want = [e for e in stored if (s := store.get_event(e)) and s.event.stream_id == cam]
        assert first == want, f"{cam}: first arrivals out of store order"
    return sum(n - 1 for n in got.values())


def _run_until_drained(sender: KafkaSender, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sender.backlog().backlog and time.monotonic() < deadline:
        if sender.run_once().claimed == 0:
            time.sleep(0.01)
    assert sender.backlog().backlog == 0, sender.health()


def test_every_event_arrives_in_camera_order_with_the_mqtt_payload(store: EventStore) -> None:
    broker = FakeBroker()
    sender = KafkaSender(store, _config(), producer_factory=broker.factory)
    stored = _store_events(store, 0, 95)
    _run_until_drained(sender)
    assert _check(broker, stored, store) == 0
    assert sender.totals.delivered == 95 and sender.totals.failed == 0
    assert broker.topics() == ["se.cam0", "se.cam1", "se.cam2"]
    first = broker.records("se.cam0")[0]
    s = store.get_event(_event_id(first))
    assert s is not None  # byte for byte what the MQTT sink publishes
    message = event_message(s, KAFKA_DESTINATION, store.files_root)
    assert first.value == dumps(message).encode()
    assert message["destination"] == KAFKA_DESTINATION and message["time_ms"] is not None
    conf = broker.producers[0].conf
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"


def test_broker_down_for_a_while_then_back_loses_nothing(store: EventStore) -> None:
    broker = FakeBroker()
    broker.down_after(30)  # goes down in the middle of the second round
    delivery = start_kafka_sender(store, _config(), producer_factory=broker.factory)
    stored: list[str] = []
    try:
        stored += _store_events(store, 0, 60)
        deadline = time.monotonic() + 5
        while not broker.down and time.monotonic() < deadline:
            time.sleep(0.01)
        assert broker.down
        while delivery.sender.totals.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the round that met the outage settles
        claimed, probes = delivery.sender.totals.claimed, broker.probes
        for b in range(10):  # stored during the outage: they wait in the outbox
            stored += _store_events(store, 60 + b * 6, 6)
            time.sleep(0.1)
        assert delivery.sender.totals.claimed == claimed, "nothing claimed while down"
        assert delivery.sender.backlog().backlog >= 90
        assert not delivery.sender.connected
        outage_probes = broker.probes - probes
        assert 1 <= outage_probes <= 40, f"{outage_probes} probes in 1 s: a busy loop?"
        broker.down = False
        assert delivery.drain(20), delivery.health()
    finally:
        delivery.stop()
    duplicates = _check(broker, stored, store)
    log.info(
        "kafka down/up: %d stored, %d duplicates, %s",
        len(stored),
        duplicates,
        delivery.sender.totals,
    )
    assert delivery.sender.totals.not_connected >= 1 and delivery.sender.totals.failed >= 1


def test_lost_acknowledgements_give_duplicates_not_losses(store: EventStore) -> None:
    broker = FakeBroker()
    sender = KafkaSender(store, _config(), producer_factory=broker.factory)
    stored = _store_events(store, 0, 40)
    broker.lose_acks(5)  # the first 5 messages are stored but reported as timed out
    _run_until_drained(sender)
    assert _check(broker, stored, store) == 5
    assert sender.totals.failed == 5
    assert len(broker.records()) == 45


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_killed_sender_leaves_the_rest_to_the_next_sender(store: EventStore) -> None:
    broker = FakeBroker()
    stored = _store_events(store, 0, 60)
    cfg = _config()
    broker.kill_after(30)  # round 1: 20 delivered; round 2: 10 stored, then the process dies
    first = start_kafka_sender(store, cfg, producer_factory=broker.factory)
    deadline = time.monotonic() + 10
    while first.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not first.alive and broker.killed
    first.stop()  # no drain: the rows of the killed round are still leased
    assert first.sender.totals.delivered == 20
    assert first.sender.backlog().backlog == 40
    stored += _store_events(store, 60, 9)  # stored while no sender runs
    time.sleep(cfg.lease_s + 0.1)  # leases run out: every row is due, claimed in id order
    second = start_kafka_sender(store, cfg, producer_factory=broker.factory)
    try:
        assert second.drain(20), second.health()
    finally:
        second.stop()
    duplicates = _check(broker, stored, store)
    assert duplicates == 10, "rows the broker had stored before the kill arrive twice"
    assert second.sender.totals.delivered == 49


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"bootstrap_servers": "kafka1"}, "kafka.bootstrap_servers: .*not host:port"),
        ({"bootstrap_servers": "k:9092", "topic": "se.{camera}"}, "kafka.topic: .*unknown field"),
        ({"bootstrap_servers": "k:9092", "topic": "se/{type}"}, "kafka.topic: .*does not allow"),
        (
            {"bootstrap_servers": "k:9092", "security_protocol": "SASL_SSL"},
            "kafka: .*SASL_SSL needs sasl_mechanism",
        ),
        ({"bootstrap_servers": "k:9092", "sasl_username": "u"}, "kafka: .*needs SASL_SSL"),
        ({"bootstrap_servers": "k:9092", "ca_file": "/ca.pem"}, "kafka: .*ca_file needs"),
        ({"bootstrap_servers": "k:9092", "lease_s": 5}, "kafka: .*lease_s 5.0 must exceed publish"),
        ({"bootstrap_servers": "k:9092", "acks": 1}, "kafka.acks: Extra inputs"),
        (
            {"bootstrap_servers": "k:9092", "security_protocol": "SASL_PLAINTEXT"},
            "kafka.security_protocol",
        ),
    ],
)
def test_bad_kafka_sections_are_one_line_config_errors(
    tmp_path: Path, section: dict[str, object], match: str
) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(json.dumps({"kafka": section}))  # JSON is YAML
    with pytest.raises(ConfigError, match=match) as info:
        load_service_config(path)
    assert "\n" not in str(info.value)


def test_sasl_password_comes_from_the_environment() -> None:
    cfg = _config(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="sharpeyes",
        sasl_password_env="KAFKA_PW",
    )
    conf = producer_config(cfg, {"KAFKA_PW": "s3cret"})
    assert conf["sasl.password"] == "s3cret" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    with pytest.raises(ConfigError, match="KAFKA_PW") as info:
        producer_config(cfg, {})
    assert "\n" not in str(info.value)
    assert "s3cret" not in repr(_config(**{**cfg.model_dump(), "sasl_password": "s3cret"}))


def test_topic_values_are_sanitised_to_kafka_characters(store: EventStore) -> None:
    ev = make_event(1, camera="gate/+#1 路口", violation=True)
    store.add_events([ev], device_id="3402:0000")
    stored = store.get_event(ev.event_id)
    assert stored is not None
    topic = kafka_topic_for("se.{device_id}.{stream_id}.{type}-{kind}", stored)
    assert topic == "se.3402_0000.gate___1___.red_light_violation-motor_vehicle"
    ev2 = make_event(2, camera="x" * 300)
    store.add_events([ev2])
    stored2 = store.get_event(ev2.event_id)
    assert stored2 is not None
    assert kafka_topic_for("{device_id}", stored2) == "_"  # no device id: never an empty topic
    assert len(kafka_topic_for("se.{stream_id}", stored2)) == 249


def test_the_real_producer_takes_the_idempotent_settings() -> None:
    cfg = KafkaSinkConfig(bootstrap_servers="127.0.0.1:1", client_id="sharpeyes-test")
    conf = producer_config(cfg)
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["bootstrap.servers"] == "127.0.0.1:1" and conf["client.id"] == "sharpeyes-test"
    assert conf["delivery.timeout.ms"] == 10_000 and "sasl.password" not in conf
    errors: list[str] = []
    producer = build_producer(
        {**conf, "error_cb": lambda e: errors.append(e.str()), "log_level": 0}
    )
    assert isinstance(producer, confluent_kafka.Producer)
    assert producer.flush(0) == 0  # nothing produced
    bad = KafkaSinkConfig(
        bootstrap_servers="127.0.0.1:1",
        security_protocol="SSL",
        ca_file=Path("/nonexistent/ca.pem"),
    )
    with pytest.raises(ConfigError, match="kafka: producer settings refused"):
        build_producer(dict(producer_config(bad)))


def test_service_config_takes_an_optional_kafka_section() -> None:
    assert ServiceConfig().kafka is None
    cfg = ServiceConfig.model_validate(
        {"kafka": {"bootstrap_servers": "10.1.2.3:9092, 10.1.2.4:9092"}}
    )
    assert cfg.kafka is not None and cfg.kafka.bootstrap_servers == "10.1.2.3:9092,10.1.2.4:9092"
    assert cfg.kafka.security_protocol == "PLAINTEXT" and cfg.kafka.topic == "sharpeyes.events"
    with pytest.raises(ValidationError):
        ServiceConfig.model_validate({"kafka": {"bootstrap_servers": "h:1", "bogus": 1}})


def test_no_busy_loop_while_the_cluster_is_unreachable(store: EventStore) -> None:
    broker = FakeBroker()
    broker.down = True
    _store_events(store, 0, 10)
    delivery = start_kafka_sender(
        store, _config(backoff_max_s=0.5), producer_factory=broker.factory
    )
    stop = threading.Event()
    stop.wait(1.5)
    delivery.stop()
    assert delivery.sender.totals.claimed == 0 and broker.produced == 0
    assert 2 <= broker.probes <= 15, broker.probes


def test_real_producer_without_a_broker_claims_nothing(store: EventStore) -> None:
    """The probe against real librdkafka: no broker on 127.0.0.1:1 → KafkaException, no claims."""
    _store_events(store, 0, 3)
    sender = KafkaSender(store, _config(bootstrap_servers="127.0.0.1:1", probe_timeout_s=0.3))
    try:
        report = sender.run_once()
    finally:
        sender.close()
    assert report.not_connected == 1 and report.claimed == 0, report
    assert sender.backlog().backlog == 3 and not sender.connected
