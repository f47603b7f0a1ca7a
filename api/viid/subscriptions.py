"""Subscriptions from upper platforms and the SubscribeNotifications we push (GAT1400.md §7).

We are the lower platform (data owner). An upper platform ``POST``s a SubscribeObject naming
what it wants (SubscribeDetail 11 persons, 12 faces, 13 motor vehicles, 14 non-motor vehicles),
from which resources (ResourceURI: our device / tollgate / platform ids) and where to push
(ReceiveAddr). Subscriptions live in the ``viid_subscriptions`` table (migration 0201).

Delivery is durable and uses the same outbox as the upper-platform push: each stored event that
matches an active subscription gets a row with destination ``sub:<SubscribeID>``, enqueued in
the event's own transaction by the one write path of every writer
(:func:`sharpeyes.api.store.events.write_groups`, :mod:`sharpeyes.api.store.routing`), from the
``match_types`` / ``match_keys`` that :meth:`SubscriptionRegistry.put` resolves when the
subscription is stored (:meth:`SubscriptionRegistry.destinations_for` gives the same answer from
the registry); :class:`sharpeyes.api.viid.notifier.SubscriptionNotifier` drains them into
SubscribeNotifications, re-checking each row against its subscription at send time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sharpeyes.api.store import routing
from sharpeyes.api.store.db import Connection, Database, Row
from sharpeyes.api.viid.codes import SubscribeStatus
from sharpeyes.api.viid.config import ViidMappingConfig
from sharpeyes.api.viid.resources import BY_DETAIL, Collection
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.types import Event, EventType

log = logging.getLogger(__name__)

PREFIX = "sub:"
SUPPORTED_DETAILS = frozenset(BY_DETAIL)  # 11, 12, 13, 14
COLLECTION_OF: dict[EventType, Collection] = {
    EventType.VEHICLE_PASS: Collection.MOTOR_VEHICLE,
    EventType.RED_LIGHT_VIOLATION: Collection.MOTOR_VEHICLE,
    EventType.NON_MOTOR_PASS: Collection.NON_MOTOR_VEHICLE,
    EventType.PERSON_SEEN: Collection.PERSON,
    EventType.PEDESTRIAN_RED_LIGHT: Collection.PERSON,
    EventType.FACE_CAPTURE: Collection.FACE,
}


CameraDeviceIds = Callable[[], Iterable[str]]
"""The device ids of the cameras the service has *now* (asked at every check, never copied)."""


def no_cameras() -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True, slots=True)
class ResourceResolver:
    """Which ids name our resources: the platform id, capture devices and tollgates.

    ``cameras`` is the live source of the cameras' own device ids (the service's camera
    registry, the cluster's desired set): a camera added or removed while the service runs is
    named, or no longer, by the next subscription — no copy is taken at start-up."""

    platform_id: str
    mapping: ViidMappingConfig
    extra_ids: frozenset[str] = frozenset()
    cameras: CameraDeviceIds = no_cameras

    @property
    def tz(self) -> dt.tzinfo:
        return dt.timezone(dt.timedelta(hours=self.mapping.utc_offset_hours))

    def known_ids(self) -> frozenset[str]:
        out = {self.platform_id, *self.extra_ids, *self.cameras()}
        out.update(self.mapping.device_ids.values())
        out.update(self.mapping.tollgate_ids.values())
        if self.mapping.default_device_id:
            out.add(self.mapping.default_device_id)
        return frozenset(out)

    def match_keys(self, resource_ids: frozenset[str]) -> frozenset[str]:
        """The store's routing keys (:mod:`sharpeyes.api.store.routing`) of a ResourceURI: the
        same events as :meth:`ids_of` and :meth:`Subscription.wants` select."""
        m = self.mapping
        keys: set[str] = set()
        for rid in resource_ids:
            if rid == self.platform_id:
                keys.add(routing.ALL)
            keys.add(f"device:{rid}")
            if rid == m.default_device_id:
                keys.add("device:")  # events stored without a device id of their own
            keys.update(f"stream:{s}" for s, d in m.device_ids.items() if d == rid)
            keys.update(f"stream:{s}" for s, t in m.tollgate_ids.items() if t == rid)
        return frozenset(keys)

    def ids_of(self, stream_id: str, stored_device_id: str | None) -> frozenset[str]:
        """The resource ids an event of ``stream_id`` belongs to (the platform id included)."""
        out = {self.platform_id}
        for rid in (
            self.mapping.device_for(stream_id, stored_device_id),
            stored_device_id,
            self.mapping.tollgate_ids.get(stream_id),
        ):
            if rid:
                out.add(rid)
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One stored subscription."""

    subscribe_id: str
    details: frozenset[int]
    resource_ids: frozenset[str]
    receive_addr: str
    title: str | None = None
    begin_ms: int | None = None
    end_ms: int | None = None
    report_interval_s: int = 0
    image_declare: str | None = None
    status: SubscribeStatus = SubscribeStatus.ACTIVE
    subscriber: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0
    updated_ms: int = 0
    cancelled_ms: int | None = None
    cancel_reason: str | None = None

    @property
    def destination(self) -> str:
        return PREFIX + self.subscribe_id

    @property
    def collections(self) -> frozenset[Collection]:
        return frozenset(BY_DETAIL[d].collection for d in self.details if d in BY_DETAIL)

    @property
    def event_types(self) -> frozenset[EventType]:
        """The event types whose records this subscription wants."""
        wanted = self.collections
        return frozenset(t for t, c in COLLECTION_OF.items() if c in wanted)

    def is_active(self, now_ms: int) -> bool:
        live = self.status is SubscribeStatus.ACTIVE
        return live and (self.end_ms is None or now_ms <= self.end_ms)

    def wants(self, collection: Collection | None, resources: frozenset[str], at_ms: int) -> bool:
        """Does a record of ``collection`` from ``resources`` captured at ``at_ms`` match?"""
        if collection is None or collection not in self.collections:
            return False
        if self.begin_ms is not None and at_ms < self.begin_ms:
            return False
        return bool(self.resource_ids & resources)

    def image_types(self) -> frozenset[str] | None:
        """ResultImageDeclare: None = every picture, empty = none ("-1"), else Type codes."""
        raw = (self.image_declare or "").strip()
        if not raw:
            return None
        if raw == "-1":
            return frozenset()
        return frozenset(p.strip() for p in raw.split(",") if p.strip())

    def public(self) -> dict[str, Any]:
        """The SubscribeObject as received, with its current SubscribeStatus."""
        out = dict(self.body)
        out["SubscribeID"] = self.subscribe_id
        out["SubscribeStatus"] = int(self.status)
        if self.cancel_reason and self.status is SubscribeStatus.CANCELLED:
            out.setdefault("CancelReason", self.cancel_reason[:64])
        return out


_COLS = (
    "subscribe_id, title, details, resource_uri, receive_addr, begin_ms, end_ms, "
    "report_interval_s, image_declare, status, subscriber, body, created_ms, updated_ms, "
    "cancelled_ms, cancel_reason"
)


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _opt_int(v: object) -> int | None:
    return None if v is None else int(str(v))


def _row(r: Row) -> Subscription:
    body = r[11]
    return Subscription(
        subscribe_id=str(r[0]),
        title=r[1],
        details=frozenset(int(d) for d in _split(str(r[2]))),
        resource_ids=frozenset(_split(str(r[3]))),
        receive_addr=str(r[4]),
        begin_ms=_opt_int(r[5]),
        end_ms=_opt_int(r[6]),
        report_interval_s=int(r[7]),
        image_declare=r[8],
        status=SubscribeStatus(int(r[9])),
        subscriber=r[10],
        body=json.loads(body) if isinstance(body, str) else dict(body or {}),
        created_ms=int(r[12]),
        updated_ms=int(r[13]),
        cancelled_ms=_opt_int(r[14]),
        cancel_reason=r[15],
    )


class SubscriptionRegistry:
    """Subscriptions in the store's database; thread-safe, active ones cached ``cache_s``."""

    def __init__(self, db: Database, resolver: ResourceResolver, *, cache_s: float = 1.0) -> None:
        self.db = db
        self.resolver = resolver
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cache: tuple[float, list[Subscription]] | None = None

    def _invalidate(self) -> None:
        with self._lock:
            self._cache = None

    @staticmethod
    def _log(
        conn: Connection, sid: str, action: str, *, actor: str | None, detail: str, now: int
    ) -> None:
        conn.execute(
            "INSERT INTO viid_subscription_log (subscribe_id, action, actor, detail, at_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (sid, action, actor, detail[:1000], now),
        )

    def _routing(self, sub: Subscription) -> tuple[str, str]:
        """``match_types`` and ``match_keys`` of a subscription (see :mod:`..store.routing`)."""
        types = ",".join(sorted(t.value for t in sub.event_types))
        keys = ",".join(sorted(self.resolver.match_keys(sub.resource_ids)))
        return types, keys

    def refresh_routing(self) -> int:
        """Resolve the routing of every active subscription again against this node's config
        (device and tollgate ids may have changed since it was stored); how many changed."""
        changed = 0
        with self.db.transaction() as conn:
            rows = conn.fetchall(
                f"SELECT {_COLS}, match_types, match_keys FROM viid_subscriptions WHERE status = ?",
                (int(SubscribeStatus.ACTIVE),),
            )
            for r in rows:
                types, keys = self._routing(_row(r))
                if (r[16], r[17]) != (types, keys):
                    changed += conn.execute(
                        "UPDATE viid_subscriptions SET match_types = ?, match_keys = ? "
                        "WHERE subscribe_id = ?",
                        (types, keys, str(r[0])),
                    )
        return changed

    def put(self, sub: Subscription, *, actor: str | None = None) -> bool:
        """Create or replace (re-activate) a subscription; True when it was new."""
        body = json.dumps(sub.body, ensure_ascii=False)
        match_types, match_keys = self._routing(sub)
        with self.db.transaction() as conn:
            existed = conn.fetchone(
                "SELECT 1 FROM viid_subscriptions WHERE subscribe_id = ?", (sub.subscribe_id,)
            )
            conn.execute(
                f"INSERT INTO viid_subscriptions ({_COLS}, match_types, match_keys) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?) "
                "ON CONFLICT (subscribe_id) DO UPDATE SET title = excluded.title, "
                "details = excluded.details, resource_uri = excluded.resource_uri, "
                "receive_addr = excluded.receive_addr, begin_ms = excluded.begin_ms, "
                "end_ms = excluded.end_ms, report_interval_s = excluded.report_interval_s, "
                "image_declare = excluded.image_declare, status = excluded.status, "
                "subscriber = excluded.subscriber, body = excluded.body, "
                "updated_ms = excluded.updated_ms, cancelled_ms = NULL, cancel_reason = NULL, "
                "match_types = excluded.match_types, match_keys = excluded.match_keys",
                (
                    sub.subscribe_id,
                    sub.title,
                    ",".join(str(d) for d in sorted(sub.details)),
                    ",".join(sorted(sub.resource_ids)),
                    sub.receive_addr,
                    sub.begin_ms,
                    sub.end_ms,
                    sub.report_interval_s,
                    sub.image_declare,
                    int(sub.status),
                    sub.subscriber,
                    body,
                    sub.created_ms,
                    sub.updated_ms,
                    match_types,
                    match_keys,
                ),
            )
            action = "update" if existed else "create"
            self._log(
                conn,
                sub.subscribe_id,
                action,
                actor=actor,
                detail=sub.receive_addr,
                now=sub.updated_ms,
            )
        self._invalidate()
        log.info("subscription %s %sd by %s", sub.subscribe_id, action, actor or "?")
        return existed is None

    def get(self, subscribe_id: str) -> Subscription | None:
        with self.db.transaction(readonly=True) as conn:
            r = conn.fetchone(
                f"SELECT {_COLS} FROM viid_subscriptions WHERE subscribe_id = ?", (subscribe_id,)
            )
        return None if r is None else _row(r)

    def list_all(self) -> list[Subscription]:
        with self.db.transaction(readonly=True) as conn:
            rows = conn.fetchall(f"SELECT {_COLS} FROM viid_subscriptions ORDER BY created_ms")
        return [_row(r) for r in rows]

    def cancel(
        self,
        subscribe_id: str,
        *,
        actor: str | None = None,
        reason: str = "cancelled",
        action: str = "cancel",
        now_ms: int | None = None,
    ) -> bool:
        """Cancel (idempotent); False when no such subscription exists."""
        now = clock.now_ms() if now_ms is None else now_ms
        with self.db.transaction() as conn:
            if not conn.fetchone(
                "SELECT 1 FROM viid_subscriptions WHERE subscribe_id = ?", (subscribe_id,)
            ):
                return False
            conn.execute(
                "UPDATE viid_subscriptions SET status = ?, cancelled_ms = ?, cancel_reason = ?, "
                "updated_ms = ? WHERE subscribe_id = ? AND status = ?",
                (int(SubscribeStatus.CANCELLED), now, reason[:256], now, subscribe_id, 0),
            )
            self._log(conn, subscribe_id, action, actor=actor, detail=reason, now=now)
        self._invalidate()
        log.info("subscription %s %s by %s: %s", subscribe_id, action, actor or "?", reason)
        return True

    def expire(self, now_ms: int | None = None) -> list[str]:
        """Mark active subscriptions whose EndTime has passed as expired; their ids."""
        now = clock.now_ms() if now_ms is None else now_ms
        with self.db.transaction() as conn:
            rows = conn.fetchall(
                "SELECT subscribe_id FROM viid_subscriptions WHERE status = ? "
                "AND end_ms IS NOT NULL AND end_ms < ?",
                (int(SubscribeStatus.ACTIVE), now),
            )
            gone = [str(r[0]) for r in rows]
            for sid in gone:
                conn.execute(
                    "UPDATE viid_subscriptions SET status = ?, updated_ms = ? "
                    "WHERE subscribe_id = ?",
                    (int(SubscribeStatus.EXPIRED), now, sid),
                )
                self._log(conn, sid, "expire", actor=None, detail="EndTime passed", now=now)
        if gone:
            self._invalidate()
            log.info("subscriptions expired: %s", ", ".join(gone))
        return gone

    def active(self, now_ms: int | None = None) -> list[Subscription]:
        now = clock.now_ms() if now_ms is None else now_ms
        mono = time.monotonic()
        with self._lock:
            cached = self._cache
        if cached is None or mono - cached[0] > self.cache_s:
            with self.db.transaction(readonly=True) as conn:
                rows = conn.fetchall(
                    f"SELECT {_COLS} FROM viid_subscriptions WHERE status = ?",
                    (int(SubscribeStatus.ACTIVE),),
                )
            cached = (mono, [_row(r) for r in rows])
            with self._lock:
                self._cache = cached
        return [s for s in cached[1] if s.is_active(now)]

    def destinations_for(
        self, event: Event, device_id: str | None = None, now_ms: int | None = None
    ) -> list[str]:
        """Outbox destinations (``sub:<id>``) of the active subscriptions ``event`` matches."""
        coll = COLLECTION_OF.get(event.type)
        if coll is None:
            return []
        resources = self.resolver.ids_of(event.stream_id, device_id)
        return [
            s.destination
            for s in self.active(now_ms)
            if s.wants(coll, resources, event.first_seen_ms)
        ]
