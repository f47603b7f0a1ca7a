"""The fenced uploader: drains the outbox with its own DB lease checked before every POST.

A Ray named actor is not mutual exclusion during a partition: a node declared dead can keep
calling other actors for seconds after it resumes (``docs/SCALE_OUT.md`` §3.3). So the uploader
takes an :class:`~api.cluster.leases.UploaderLease` when it starts and checks it before every
POST; a zombie sends at most the one batch that was in flight when it froze, then stops. The
receiver treats a known object id as delivered (at-least-once, deterministic ids).
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from sharpeyes.api.cluster.leases import StaleLeaseError, UploaderLease
from sharpeyes.api.store import Outbox, OutboxItem
from sharpeyes.api.store.db import Database
from sharpeyes.api.viid.mapping import MappedObject
from sharpeyes.api.viid.resources import Collection
from sharpeyes.api.viid.sender import OutboxSender, SendReport
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import DeliveryError, StoreError

log = logging.getLogger(__name__)


class Poster(Protocol):
    def post(self, object_ids: list[str]) -> None:
        """Deliver these ids (raises DeliveryError); a known id counts as delivered."""
        ...


class LeasedUploader:
    """Claim a batch, check the lease, POST, mark delivered — until fenced or stopped."""

    def __init__(
        self,
        db: Database,
        poster: Poster,
        *,
        shard: str = "viid-0",
        holder: str = "uploader",
        destination: str = "viid",
        batch: int = 50,
        claim_lease_ms: int = 5_000,
    ) -> None:
        self.outbox = Outbox(db)
        self.lease = UploaderLease(db, shard, holder)
        self.poster = poster
        self.destination = destination
        self.batch = batch
        self.claim_lease_ms = claim_lease_ms
        self.posted = 0
        self.fenced = False

    def run_once(self) -> int:
        """Deliver one batch; returns how many ids were posted.

        Raises:
            StaleLeaseError: another uploader took the shard over.
        """
        now = clock.now_ms()
        items = self.outbox.claim_batch(
            self.destination, self.batch, now, lease_ms=self.claim_lease_ms
        )
        if not items:
            return 0
        self.lease.check()  # the fence: never POST under a lost lease
        ids = [i.object_id for i in items]
        self.poster.post(ids)
        self.outbox.mark_delivered([i.id for i in items], clock.now_ms())
        self.posted += len(ids)
        return len(ids)

    def run(self, stop: threading.Event, idle_s: float = 0.2) -> None:
        """Acquire the lease, then deliver until ``stop`` is set or the lease is lost."""
        self.lease.acquire()
        while not stop.is_set():
            try:
                if self.run_once() == 0:
                    stop.wait(idle_s)
            except StaleLeaseError as e:
                self.fenced = True
                log.warning("uploader stops: %s", e)
                return
            except (DeliveryError, StoreError) as e:
                log.warning("uploader retries after: %s", e)
                stop.wait(idle_s)


class LeasedOutboxSender(OutboxSender):
    """The GA/T 1400 :class:`OutboxSender` with the uploader lease checked before every POST.

    Call ``lease.acquire()`` once before the first ``run_once``; a lost lease raises
    :class:`~sharpeyes.api.cluster.leases.StaleLeaseError` out of ``run_once``.
    """

    lease: UploaderLease

    def with_lease(self, lease: UploaderLease) -> LeasedOutboxSender:
        self.lease = lease
        return self

    def _deliver(
        self, coll: Collection, batch: list[tuple[OutboxItem, MappedObject]], report: SendReport
    ) -> None:
        self.lease.check()
        super()._deliver(coll, batch, report)
