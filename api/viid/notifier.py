"""SubscribeNotifications to upper platforms, drained from the durable outbox (GAT1400.md §7).

Every outbox destination ``sub:<SubscribeID>`` belongs to one subscription
(:mod:`sharpeyes.api.viid.subscriptions`). Rows are claimed in id order, re-checked against the
subscription (active, SubscribeDetail, ResourceURI, BeginTime), mapped with the same
:class:`EventMapper` as the upper-platform push (same object ids), grouped per collection into
notifications of at most 20 objects (``InfoIDs`` ≤ 1024 characters) and posted to ReceiveAddr.
A notification counts only when the subscriber answers StatusCode 0 for its NotificationID;
otherwise its rows are retried with back-off. NotificationIDs derive from the first outbox row,
so a retry carries the same id. Rows of a cancelled, expired or unknown subscription are given
up (state ``failed`` with the reason). ReportInterval spaces notifications per subscription.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sharpeyes.api.store import EventStore, Outbox, OutboxItem, StoredEvent, retry_delay_s
from sharpeyes.api.viid import ids
from sharpeyes.api.viid.client import SessionState, ViidClient
from sharpeyes.api.viid.mapping import EventImages, EventMapper
from sharpeyes.api.viid.resources import COLLECTIONS, Collection
from sharpeyes.api.viid.subscriptions import (
    COLLECTION_OF,
    PREFIX,
    Subscription,
    SubscriptionRegistry,
)
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import DeliveryError

log = logging.getLogger(__name__)

ImagesFor = Callable[[StoredEvent], EventImages]
ClientFactory = Callable[[str], ViidClient]


def filter_images(payload: dict[str, Any], types: frozenset[str] | None) -> dict[str, Any]:
    """Keep only the SubImageInfoObjects whose Type is in ``types`` (None: keep all)."""
    if types is None:
        return payload
    subs = payload.get("SubImageList", {}).get("SubImageInfoObject", [])
    out = dict(payload)
    out["SubImageList"] = {"SubImageInfoObject": [s for s in subs if s.get("Type") in types]}
    return out


@dataclass(frozen=True, slots=True)
class NotifierOptions:
    org_code: str
    max_objects: int = 20
    claim_limit: int = 100
    lease_ms: int = 60_000
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 300.0
    idle_sleep_s: float = 0.5
    register_with_subscriber: bool = True
    max_clients: int = 16


@dataclass
class NotifyReport:
    claimed: int = 0
    notifications: int = 0
    delivered: int = 0
    skipped: int = 0
    dropped: int = 0
    failed: int = 0


_Pair = tuple[OutboxItem, dict[str, Any]]


class SubscriptionNotifier:
    """Drains every ``sub:<id>`` outbox destination to its subscriber's ReceiveAddr."""

    def __init__(
        self,
        store: EventStore,
        registry: SubscriptionRegistry,
        mapper: EventMapper,
        *,
        images_for: ImagesFor,
        client_for: ClientFactory,
        options: NotifierOptions,
    ) -> None:
        self.store = store
        self.registry = registry
        self.mapper = mapper
        self.outbox = Outbox(store.db)
        self.images_for = images_for
        self.client_for = client_for
        self.options = options
        self.totals = NotifyReport()
        self._clients: OrderedDict[str, ViidClient] = OrderedDict()
        self._last_sent: dict[str, float] = {}
        ids.require_org_code(options.org_code)

    def destinations(self) -> list[str]:
        return [d for d in self.outbox.destinations() if d.startswith(PREFIX)]

    def backlog(self) -> int:
        return sum(self.outbox.stats(d).backlog for d in self.destinations())

    def _client(self, receive_addr: str) -> ViidClient:
        parts = urlsplit(receive_addr)
        origin = f"{parts.scheme}://{parts.netloc}"
        client = self._clients.get(origin)
        if client is None:
            client = self.client_for(origin)
            self._clients[origin] = client
            while len(self._clients) > self.options.max_clients:
                self._clients.popitem(last=False)[1].close()
        self._clients.move_to_end(origin)
        if not self.options.register_with_subscriber:
            client.state = SessionState.ONLINE  # the subscriber does not want a session
        return client

    def _backoff_ms(self, attempts: int) -> int:
        o = self.options
        return int(retry_delay_s(attempts, o.backoff_initial_s, o.backoff_max_s) * 1000)

    def _fail(self, items: Sequence[OutboxItem], reason: str, report: NotifyReport) -> None:
        now = clock.now_ms()
        for item in items:
            self.outbox.mark_failed([item.id], reason, now, now + self._backoff_ms(item.attempts))
        report.failed += len(items)

    def run_once(self, now_ms: int | None = None) -> NotifyReport:
        """One round over every subscription destination."""
        report = NotifyReport()
        now = clock.now_ms() if now_ms is None else now_ms
        self.registry.expire(now)
        for dest in self.destinations():
            self._serve(dest, now, report)
        if self.options.register_with_subscriber:
            for client in list(self._clients.values()):
                client.tick()
        for name in ("claimed", "notifications", "delivered", "skipped", "dropped", "failed"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(report, name))
        return report

    def _serve(self, dest: str, now: int, report: NotifyReport) -> None:
        sub = self.registry.get(dest[len(PREFIX) :])
        live = sub is not None and sub.is_active(now)
        if live and sub is not None and sub.report_interval_s > 0:
            last = self._last_sent.get(dest)
            if last is not None and time.monotonic() - last < sub.report_interval_s:
                return
        o = self.options
        items = self.outbox.claim_batch(dest, o.claim_limit, now, lease_ms=o.lease_ms)
        report.claimed += len(items)
        if not items:
            return
        if sub is None or not live:
            why = "unknown" if sub is None else sub.status.name.lower()
            self.outbox.mark_dead([i.id for i in items], f"subscription {why}", now)
            report.dropped += len(items)
            return
        groups = self._map(sub, items, report)
        for coll, pairs in groups.items():
            for start in range(0, len(pairs), o.max_objects):
                self._notify(sub, coll, pairs[start : start + o.max_objects], report)
        self._last_sent[dest] = time.monotonic()

    def _map(
        self, sub: Subscription, items: Sequence[OutboxItem], report: NotifyReport
    ) -> dict[Collection, list[_Pair]]:
        groups: dict[Collection, list[_Pair]] = {}
        now = clock.now_ms()
        types = sub.image_types()
        for item in items:
            stored = self.store.get_event(item.object_id)
            if stored is None:
                self.outbox.mark_dead([item.id], "event not in store", now)
                report.dropped += 1
                continue
            event = stored.event
            coll = COLLECTION_OF.get(event.type)
            resources = self.registry.resolver.ids_of(event.stream_id, stored.device_id)
            if not sub.wants(coll, resources, event.first_seen_ms):
                self.outbox.mark_delivered([item.id], now)  # not for this subscriber
                report.skipped += 1
                continue
            try:
                obj = self.mapper.map(event, self.images_for(stored), stored.device_id)
            except DeliveryError as e:
                self._fail([item], str(e), report)
                continue
            if obj is None:
                self.outbox.mark_delivered([item.id], now)
                report.skipped += 1
                continue
            groups.setdefault(obj.collection, []).append((item, filter_images(obj.payload, types)))
        return groups

    def notification(
        self, sub: Subscription, coll: Collection, pairs: Sequence[_Pair]
    ) -> tuple[str, dict[str, Any]]:
        """(NotificationID, body) of one notification; the same rows give the same id."""
        spec = COLLECTIONS[coll]
        first = pairs[0][0]
        tz = self.registry.resolver.tz
        nid = ids.notification_id(self.options.org_code, first.created_ms, first.id, tz)
        note: dict[str, Any] = {
            "NotificationID": nid,
            "SubscribeID": sub.subscribe_id,
            "Title": (sub.title or "sharpeyes")[:256],
            "TriggerTime": ids.local_time_str(first.created_ms, tz),
            "InfoIDs": ",".join(str(p[spec.id_field]) for _, p in pairs),
            "ExecuteOperation": 1,
            spec.notification_key: {spec.item_key: [p for _, p in pairs]},
        }
        return nid, {"SubscribeNotificationListObject": {"SubscribeNotificationObject": [note]}}

    def _notify(
        self, sub: Subscription, coll: Collection, pairs: list[_Pair], report: NotifyReport
    ) -> None:
        items = [i for i, _ in pairs]
        nid, body = self.notification(sub, coll, pairs)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            result = self._client(sub.receive_addr).post_json(sub.receive_addr, data, [nid])
        except DeliveryError as e:
            log.warning("notification %s to %s failed: %s", nid, sub.receive_addr, e)
            self._fail(items, str(e), report)
            return
        if nid in result.ok_ids:
            self.outbox.mark_delivered([i.id for i in items], clock.now_ms())
            report.notifications += 1
            report.delivered += len(items)
        else:
            reason = result.failed.get(nid) or result.rejected.get(nid) or "refused"
            self._fail(items, reason, report)

    def run(self, stop: threading.Event) -> None:
        """Notify until ``stop`` is set; sleeps when nothing was sent."""
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception:  # a bad round must not end the loop; rows stay pending
                log.exception("notification round failed")
                stop.wait(self.options.idle_sleep_s)
                continue
            if report.claimed in (0, report.failed):
                stop.wait(self.options.idle_sleep_s)

    def close(self) -> None:
        while self._clients:
            self._clients.popitem()[1].close()
