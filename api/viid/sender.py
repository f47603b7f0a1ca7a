"""Drains the durable outbox to the upper platform (GAT1400.md §9, issue item 5).

Rows are claimed in id order (``api.store.outbox``), mapped from the stored events *at send time*
(ids are deterministic, so a retry carries the same ids), grouped per collection into batches
bounded by object count and JSON bytes, and posted through :class:`ViidClient`. Answers are
classified by :mod:`sharpeyes.api.viid.outcomes`: OK or an explicit duplicate id → delivered;
transient → retried with jittered exponential back-off (after ``max_attempts`` such answers the
row becomes a dead letter); permanent → dead letter at once, with the platform's reason
(``Outbox.list_dead`` / ``retry_dead``). A whole request refused with a 4xx is re-sent one object
per request so one bad object never takes its siblings down. A sender killed at any point
loses nothing: claimed rows come back when their lease runs out, and the receiver treats known
ids as delivered. While the client waits out its Register back-off (the platform is down or
refuses us) nothing is claimed, so rows do not pile up back-off and go as soon as it registers
again; failures that still happen are logged once per cause, then at most once a minute with how
many more there were (:class:`RepeatedWarning`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sharpeyes.api.store import (
    EventStore,
    Outbox,
    OutboxItem,
    OutboxStats,
    StoredEvent,
    retry_delay_s,
)
from sharpeyes.api.store.files import plate_path, scene_path
from sharpeyes.api.viid.client import PermanentRequestError, ViidClient
from sharpeyes.api.viid.mapping import EventImages, EventMapper, ImageRef, MappedObject
from sharpeyes.api.viid.resources import COLLECTIONS, Collection
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import DeliveryError

log = logging.getLogger(__name__)

ImagesFor = Callable[[StoredEvent], EventImages]

REPEAT_LOG_S = 60.0
"""A batch failure with the same cause is logged once, then at most once per this many seconds
with how many were not logged (an outage fails every batch: thousands of lines an hour)."""


class RepeatedWarning:
    """Warn about a cause once, then at most once per ``every_s`` with a count of the rest."""

    def __init__(
        self, every_s: float = REPEAT_LOG_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[str, tuple[float, int]] = {}

    def warn(self, key: str, message: str) -> bool:
        """Log ``message`` unless ``key`` was logged less than ``every_s`` ago; True if logged."""
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.every_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if len(self._seen) > 256:  # causes carry ids and sizes rarely; keep the table small
            self._seen.clear()
        more = f" ({last[1]} more like it in the last {now - last[0]:.0f} s)" if last else ""
        log.warning("%s%s", message, more if last and last[1] else "")
        self._seen[key] = (now, 0)
        return True


@dataclass(frozen=True, slots=True)
class SenderOptions:
    destination: str = "viid"
    claim_limit: int = 100
    lease_ms: int = 60_000
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 300.0
    idle_sleep_s: float = 0.5
    max_attempts: int = 20  # transient answers for one object before a dead letter (0: none)


@dataclass
class SendReport:
    claimed: int = 0
    delivered: int = 0
    duplicates: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)


class OutboxSender:
    """One sender loop for one destination."""

    def __init__(
        self,
        store: EventStore,
        client: ViidClient,
        mapper: EventMapper,
        *,
        options: SenderOptions | None = None,
        images_for: ImagesFor | None = None,
    ) -> None:
        self.store = store
        self.outbox = Outbox(store.db)
        self.client = client
        self.mapper = mapper
        self.options = options or SenderOptions()
        self.images_for = images_for or self._default_images
        self.totals = SendReport()
        self.repeated = RepeatedWarning()

    def _default_images(self, stored: StoredEvent) -> EventImages:
        crop = self.store.crop_file(stored)
        if crop is not None and crop.is_file():
            plate, scene = plate_path(crop), scene_path(crop)
            return EventImages(
                scene=ImageRef(path=scene) if scene.is_file() else None,
                closeup=ImageRef(path=crop),
                plate=ImageRef(path=plate) if plate.is_file() else None,
            )
        return EventImages.from_event(stored.event)

    def _backoff_ms(self, attempts: int) -> int:
        o = self.options
        return int(retry_delay_s(attempts, o.backoff_initial_s, o.backoff_max_s) * 1000)

    def backlog(self) -> OutboxStats:
        """Backlog size and age, delivered and failed counts (the sender's metrics)."""
        return self.outbox.stats(self.options.destination)

    # -- one round ------------------------------------------------------------------------

    def run_once(self) -> SendReport:
        """Claim one batch of due rows and try to deliver it."""
        report = SendReport()
        if self.client.register_wait_s() > 0:
            # the platform refused or did not answer our Register: a claimed row could only fail
            # and back off further, so rows stay due and go as soon as a Register succeeds
            return report
        now = clock.now_ms()
        o = self.options
        items = self.outbox.claim_batch(o.destination, o.claim_limit, now, lease_ms=o.lease_ms)
        report.claimed = len(items)
        if not items:
            return report
        mapped = self._map(items, report)
        for spec_key, batch in self._batches(mapped):
            self._deliver(spec_key, batch, report)
        self._accumulate(report)
        return report

    def _map(
        self, items: Sequence[OutboxItem], report: SendReport
    ) -> list[tuple[OutboxItem, MappedObject]]:
        out: list[tuple[OutboxItem, MappedObject]] = []
        now = clock.now_ms()
        for item in items:
            try:
                stored = self.store.get_event(item.object_id)
                if stored is None:
                    self.outbox.mark_dead([item.id], "event not in store", now)
                    report.dead += 1
                    continue
                obj = self.mapper.map(stored.event, self.images_for(stored), stored.device_id)
            except DeliveryError as e:
                self.outbox.mark_failed(
                    [item.id], str(e), now, now + self._backoff_ms(item.attempts)
                )
                report.failed += 1
                report.errors.append(str(e))
                continue
            if obj is None:  # not a GA/T 1400 record (e.g. stream health)
                self.outbox.mark_delivered([item.id], now)
                report.skipped += 1
                continue
            out.append((item, obj))
        return out

    def _batches(
        self, mapped: list[tuple[OutboxItem, MappedObject]]
    ) -> list[tuple[Collection, list[tuple[OutboxItem, MappedObject]]]]:
        cfg = self.client.config
        groups: dict[Collection, list[tuple[OutboxItem, MappedObject]]] = {}
        for pair in mapped:
            groups.setdefault(pair[1].collection, []).append(pair)
        batches: list[tuple[Collection, list[tuple[OutboxItem, MappedObject]]]] = []
        for coll, pairs in groups.items():
            current: list[tuple[OutboxItem, MappedObject]] = []
            size = 0
            for pair in pairs:
                full = len(current) >= cfg.batch_max_objects
                if current and (full or size + pair[1].size_bytes > cfg.batch_max_bytes):
                    batches.append((coll, current))
                    current, size = [], 0
                current.append(pair)
                size += pair[1].size_bytes
            if current:
                batches.append((coll, current))
        return batches

    def _deliver(
        self, coll: Collection, batch: list[tuple[OutboxItem, MappedObject]], report: SendReport
    ) -> None:
        spec = COLLECTIONS[coll]
        report.requests += 1
        try:
            result = self.client.post_objects(spec, [m.payload for _, m in batch])
        except PermanentRequestError as e:
            if len(batch) > 1:
                log.warning(
                    "%s refused a batch of %d as a whole (%s); sending one by one",
                    coll.value,
                    len(batch),
                    e,
                )
                for pair in batch:
                    self._deliver(coll, [pair], report)
                return
            item, mapped = batch[0]
            self._dead(item, mapped.object_id, f"permanent: {e}", report)
            return
        except DeliveryError as e:
            now = clock.now_ms()
            for item, _ in batch:
                self.outbox.mark_failed(
                    [item.id], str(e), now, now + self._backoff_ms(item.attempts)
                )
            report.failed += len(batch)
            report.errors.append(str(e))
            self.repeated.warn(
                f"{coll.value}: {e}", f"batch of {len(batch)} {coll.value} failed: {e}"
            )
            return
        now = clock.now_ms()
        row_of = {m.object_id: item for item, m in batch}
        ok = [row_of[i].id for i in result.ok_ids if i in row_of]
        self.outbox.mark_delivered(ok, now)
        report.delivered += len(result.delivered)
        report.duplicates += len(result.duplicates)
        for oid, reason in result.rejected.items():
            row = row_of.get(oid)
            if row is not None:
                self._dead(row, oid, f"permanent: {reason}", report)
        limit = self.options.max_attempts
        for oid, reason in result.failed.items():
            row = row_of.get(oid)
            if row is None:
                continue
            if limit and row.rejections + 1 >= limit:
                why = f"gave up after {row.rejections + 1} transient answers: {reason}"
                self._dead(row, oid, why, report)
                continue
            self.outbox.mark_failed(
                [row.id], reason, now, now + self._backoff_ms(row.attempts), rejected=True
            )
            report.failed += 1
            report.errors.append(reason)

    def _dead(self, item: OutboxItem, object_id: str, reason: str, report: SendReport) -> None:
        # the GA/T object id is what the platform's operator sees: keep it with the reason
        self.outbox.mark_dead([item.id], f"{reason} (object {object_id})", clock.now_ms())
        report.dead += 1
        report.errors.append(reason)
        log.warning(
            "dead letter: %s %s (event %s): %s",
            self.options.destination,
            object_id,
            item.object_id,
            reason,
        )

    def _accumulate(self, r: SendReport) -> None:
        t = self.totals
        t.claimed += r.claimed
        t.delivered += r.delivered
        t.duplicates += r.duplicates
        t.failed += r.failed
        t.dead += r.dead
        t.skipped += r.skipped
        t.requests += r.requests

    # -- loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; sleeps when there is nothing due."""
        while not stop.is_set():
            self.client.tick()
            try:
                report = self.run_once()
            except Exception:  # the loop must survive a bad round; the rows stay pending
                log.exception("sender round failed")
                stop.wait(self.options.idle_sleep_s)
                continue
            if report.claimed in (0, report.failed + report.dead):
                stop.wait(self.options.idle_sleep_s)
