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
