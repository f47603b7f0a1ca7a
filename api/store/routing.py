"""Outbox rows for the GA/T 1400 subscriptions an event matches, in the event's transaction.

Every writer of events (the node's store writer in ``run``/``serve``, worker processes, the
cluster's lease commits, :class:`~sharpeyes.api.store.sink.StoreSink`) goes through
:func:`~sharpeyes.api.store.events.write_groups`, which calls :func:`subscription_destinations`:
so a stored event that an active subscription wants always gets its ``sub:<SubscribeID>`` row,
whichever process wrote it, and never without the event.

A subscription's ResourceURI and SubscribeDetail are resolved against the delivery config when
it is stored (:meth:`sharpeyes.api.viid.subscriptions.SubscriptionRegistry.put`) into
``match_types`` (event types) and ``match_keys`` (``*`` for the platform id, ``device:<id>``,
``stream:<camera id>``); here an event's keys are ``*``, ``stream:<its camera>`` and
``device:<the device id it was stored with>``.

Review decisions go to the message buses their event was queued for
(:func:`review_destinations`, in the review's transaction: see the section below).
"""

from __future__ import annotations

from collections.abc import Sequence

from sharpeyes.api.store.db import Connection
from sharpeyes.pipeline.types import Event

SUBSCRIPTION_PREFIX = "sub:"
ALL = "*"
ACTIVE = 0  # SubscribeStatus.ACTIVE


def event_keys(event: Event, device_id: str | None) -> frozenset[str]:
    """The resource keys of an event stored with ``device_id``."""
    return frozenset({ALL, f"stream:{event.stream_id}", f"device:{device_id or ''}"})


def _split(text: object) -> frozenset[str]:
    return frozenset(p for p in str(text or "").split(",") if p)


def subscription_destinations(
    conn: Connection, items: Sequence[tuple[Event, str | None]], now_ms: int
) -> list[tuple[str, ...]]:
    """For each (event, device id): the ``sub:<id>`` destinations of the active subscriptions
    that want it (type, resources, BeginTime ≤ capture time, EndTime not passed)."""
    if not items:
        return []
    rows = conn.fetchall(
        "SELECT subscribe_id, match_types, match_keys, begin_ms, end_ms FROM viid_subscriptions "
        "WHERE status = ? AND match_keys <> ''",
        (ACTIVE,),
    )
    live = [
        (str(r[0]), _split(r[1]), _split(r[2]), r[3])
        for r in rows
        if r[4] is None or now_ms <= int(r[4])
    ]
    if not live:
        return [() for _ in items]
    out: list[tuple[str, ...]] = []
    for event, device_id in items:
        keys = event_keys(event, device_id)
        out.append(
            tuple(
                SUBSCRIPTION_PREFIX + sid
                for sid, types, wanted, begin in sorted(live)
                if event.type.value in types
                and keys & wanted
                and (begin is None or event.first_seen_ms >= int(begin))
            )
        )
    return out


# -- review decisions on message buses -----------------------------------------------------------
#
# A review goes where its event went: the message-bus destinations for which the event has an
# outbox row (whatever its state) get a review row in the review's own transaction. So the node's
# configuration is consulted once, when the event is written (the node adds ``mqtt`` / ``kafka``
# to every camera's destinations; a cluster commit does the same in the cluster database), and
# the process that records the review (the REST API of a single node, of ``run --workers N`` or
# of a cluster) needs no sink config of its own. A consumer that never got the event (the sink
# was configured later) gets no decision on it either. Outbox rows are never pruned, so the
# event's row is there when the review comes (however long after).

REVIEW_KIND = "review"  # outbox.kind of a review row (event rows carry the event type)
# sinks.mqtt.MQTT_DESTINATION, sinks.kafka.KAFKA_DESTINATION (the store does not import sinks)
REVIEW_DESTINATIONS = ("mqtt", "kafka")
_REVIEW_PREFIX = "review:"


def review_destinations(conn: Connection, event_id: str) -> tuple[str, ...]:
    """The message-bus destinations a review of ``event_id`` is queued for: those of
    :data:`REVIEW_DESTINATIONS` its event was queued for (see above)."""
    marks = ", ".join("?" for _ in REVIEW_DESTINATIONS)
    rows = conn.fetchall(
        f"SELECT destination FROM outbox WHERE destination IN ({marks}) AND object_id = ?",
        (*REVIEW_DESTINATIONS, event_id),
    )
    found = {str(r[0]) for r in rows}
    return tuple(d for d in REVIEW_DESTINATIONS if d in found)


def review_object_id(action_id: int, feed_seq: int | None) -> str:
    """The outbox ``object_id`` of a review row: its audit entry's id and, when it has one, the
    seq of its ``review`` row in the feed log (the live feed's SSE id)."""
    return f"{_REVIEW_PREFIX}{action_id}" + ("" if feed_seq is None else f":{feed_seq}")


def parse_review_object_id(object_id: str) -> tuple[int, int | None]:
    """``(audit entry id, feed seq or None)`` of a review row's ``object_id``.

    Raises:
        ValueError: ``object_id`` was not made by :func:`review_object_id`.
    """
    if not object_id.startswith(_REVIEW_PREFIX):
        raise ValueError(f"outbox object id {object_id!r} is not a review's")
    action, _, seq = object_id.removeprefix(_REVIEW_PREFIX).partition(":")
    try:
        return int(action), None if not seq else int(seq)
    except ValueError as e:
        raise ValueError(f"outbox object id {object_id!r} is not a review's") from e
