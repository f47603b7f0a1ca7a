"""Review decisions in the outbox (SQLite and PostgreSQL): a review of an event that was queued
for ``mqtt`` / ``kafka`` queues a ``review`` row for the same buses in the review's own
transaction — none when the event went to no message bus, none for GA/T 1400 destinations, and
nothing (neither the decision nor its row) when the transaction fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from sharpeyes.api.sinks.kafka import KAFKA_DESTINATION, KafkaSinkConfig
from sharpeyes.api.sinks.mqtt import MQTT_DESTINATION, MqttSinkConfig
from sharpeyes.api.store import EventStore, open_store
from sharpeyes.api.store import outbox as outbox_mod
from sharpeyes.api.store.events import ReviewConflictError
from sharpeyes.api.store.routing import (
    REVIEW_DESTINATIONS,
    REVIEW_KIND,
    parse_review_object_id,
    review_object_id,
)
from sharpeyes.pipeline.errors import StoreError
from tests._api_fixtures import make_event
from tests._pg_fixtures import db_url, pg_server  # noqa: F401


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[EventStore]:  # noqa: F811
    s = open_store(db_url, tmp_path / "files")
    yield s
    s.close()


def rows(store: EventStore) -> list[tuple[str, str, str]]:
    """``(destination, object_id, kind)`` of every outbox row, in id order."""
    with store.db.transaction(readonly=True) as tx:
        got = tx.fetchall("SELECT destination, object_id, kind FROM outbox ORDER BY id")
    return [(str(r[0]), str(r[1]), str(r[2])) for r in got]


def reviews(store: EventStore) -> list[tuple[str, str, str]]:
    return [r for r in rows(store) if r[2] == REVIEW_KIND]


def add_violation(store: EventStore, i: int, destinations: tuple[str, ...]) -> str:
    ev = make_event(i, violation=True, plate="京A12345")
    store.add_events([ev], outbox_destinations=destinations, feed=True)
    return ev.event_id


def test_a_review_goes_to_the_buses_its_event_went_to(store: EventStore) -> None:
    both = add_violation(store, 0, ("viid", "kafka", "mqtt"))
    mqtt_only = add_violation(store, 1, ("mqtt",))
    _, seq = store.review_logged(both, "zhangsan", "confirm", corrected_plate="京A54321")
    store.review(mqtt_only, "zhangsan", "reject", reason="no violation")
    (action,) = store.audit_trail(both)
    got = reviews(store)
    want_id = review_object_id(action.id, seq)
    assert got[:2] == [("mqtt", want_id, "review"), ("kafka", want_id, "review")]
    assert [d for d, _, _ in got[2:]] == ["mqtt"], "only where the event went"
    assert parse_review_object_id(want_id) == (action.id, seq)
    logged = store.logged_review(action.id)
    assert logged is not None and logged.action == action and logged.number == 1


def test_no_review_row_without_a_message_bus(store: EventStore) -> None:
    """No MQTT / Kafka configured: the event has no such rows, its review queues none (not
    even for the GA/T 1400 destinations it went to)."""
    plain = add_violation(store, 0, ())
    viid = add_violation(store, 1, ("viid", "sub:S1"))
    before = rows(store)
    store.review(plain, "zhangsan", "confirm")
    store.review(viid, "zhangsan", "reject", reason="wrong lane")
    assert rows(store) == before and not reviews(store)
    assert len(store.audit_trail(plain)) == len(store.audit_trail(viid)) == 1


def test_each_decision_gets_its_own_row_numbered_in_order(store: EventStore) -> None:
    eid = add_violation(store, 0, ("kafka",))
    store.review(eid, "a", "reject", reason="blurred")
    store.review(eid, "b", "confirm", corrected_plate="京A12346")
    with pytest.raises(ReviewConflictError):  # refused: no audit line, no row
        store.review(eid, "c", "confirm")
    got = reviews(store)
    assert len(got) == 2 and len({oid for _, oid, _ in got}) == 2
    numbers = []
    for _, oid, _ in got:
        action_id, _ = parse_review_object_id(oid)
        logged = store.logged_review(action_id)
        assert logged is not None
        numbers.append((logged.number, logged.action.action, logged.action.actor))
    assert numbers == [(1, "reject", "a"), (2, "confirm", "b")]
    assert store.logged_review(10_000) is None


def test_a_failed_review_transaction_leaves_neither_the_decision_nor_its_row(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    eid = add_violation(store, 0, ("mqtt",))

    def broken(*args: object, **kwargs: object) -> int:
        raise StoreError("disk full (simulated)")

    monkeypatch.setattr(outbox_mod, "enqueue_many", broken)
    with pytest.raises(StoreError, match="disk full"):
        store.review(eid, "zhangsan", "reject", reason="no violation")
    monkeypatch.undo()
    assert not reviews(store) and store.audit_trail(eid) == []
    stored = store.get_event(eid)
    assert stored is not None and stored.review_state == "pending"


def test_review_object_ids_and_destination_names() -> None:
    assert parse_review_object_id(review_object_id(7, None)) == (7, None)
    for bad in ("0123abcd", "review:", "review:x:1", "review:3:y"):
        with pytest.raises(ValueError, match="not a review"):
            parse_review_object_id(bad)
    assert set(REVIEW_DESTINATIONS) == {MQTT_DESTINATION, KAFKA_DESTINATION}


def test_review_topic_templates_are_checked_like_the_event_topic() -> None:
    with pytest.raises(ValidationError, match="unknown field"):
        MqttSinkConfig(host="h", review_topic="r/{camera}")
    with pytest.raises(ValidationError, match="wildcards"):
        MqttSinkConfig(host="h", review_topic="r/#")
    with pytest.raises(ValidationError, match="Kafka does not allow"):
        KafkaSinkConfig(bootstrap_servers="h:9092", review_topic="se/reviews")
    assert MqttSinkConfig(host="h").review_topic is None
    ok = KafkaSinkConfig(bootstrap_servers="h:9092", review_topic="se.reviews.{stream_id}")
    assert ok.review_topic == "se.reviews.{stream_id}"
