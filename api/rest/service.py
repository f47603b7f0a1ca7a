"""The service facade: everything the HTTP layer may ask of the running system.

Routes talk only to :class:`ServiceFacade`; :class:`StoreService` implements it over the event
store (SQLite or PostgreSQL), the camera registry, the live feed hub and the providers the
runner plugs in (stream health, model status). Methods are synchronous (FastAPI runs them in
its thread pool) and return public schemas, never store rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sharpeyes.api.rest.auth import AuthAuditLog, TokenService
from sharpeyes.api.rest.auth.sql import SqlAuthAuditLog, SqlTokenRepository
from sharpeyes.api.rest.cameras import CameraRegistry, mask_url
from sharpeyes.api.rest.convert import (
    ReviewOutcome,
    audit_public,
    event_public,
    feed_payload,
    review_payload,
)
from sharpeyes.api.rest.errors import ConflictError, InvalidRequestError, NotFoundError
from sharpeyes.api.rest.evidence import EvidenceFile, EvidenceLocator, UrlSigner
from sharpeyes.api.rest.feed import FeedHub, FeedItem, publish_written
from sharpeyes.api.rest.schemas import (
    AuditEntryPublic,
    EventPage,
    EventPublic,
    FlowPage,
    FlowPublic,
    IncompletePartPublic,
    Readiness,
    ReviewAction,
    StreamHealthPublic,
)
from sharpeyes.api.store.db import Database, open_database
from sharpeyes.api.store.events import (
    REVIEW_FEED_TYPE,
    EventNotFoundError,
    EventStore,
    ReviewConflictError,
    ReviewError,
)
from sharpeyes.api.store.migrate import migrate
from sharpeyes.api.store.records import EventFilter, StoredEvent
from sharpeyes.api.store.records import ReviewAction as StoreReviewAction
from sharpeyes.pipeline.errors import StoreError
from sharpeyes.pipeline.signal_input import PhaseRouter
from sharpeyes.pipeline.types import Event, EventType, Frame

logger = logging.getLogger(__name__)

HealthProvider = Callable[[], Mapping[str, StreamHealthPublic]]
DEFAULT_MIN_FREE_BYTES = 512 * 1024 * 1024
NO_EVIDENCE = IncompletePartPublic(
    part="evidence", reason="no evidence record was stored for this violation"
)


def derive_key(key: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, so one installation secret never serves two."""
    return hmac.new(key, f"sharpeyes/{purpose}".encode(), hashlib.sha256).digest()


def harden_permissions(files_root: Path, db: Database) -> None:
    """Make the data directory 0700 and a SQLite store (with its WAL files) 0600."""
    try:
        files_root.mkdir(parents=True, exist_ok=True)
        os.chmod(files_root, 0o700)
    except OSError as e:
        logger.warning("cannot restrict %s: %s", files_root, e.strerror or e)
    options = getattr(db, "options", None)
    path = getattr(options, "path", None)
    if isinstance(path, Path):
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            try:
                if p.exists():
                    os.chmod(p, 0o600)
            except OSError as e:
                logger.warning("cannot restrict %s: %s", p, e.strerror or e)


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """What the runner reports about inference for ``/readyz``."""

    loaded: bool
    provider: str | None = None
    detail: str | None = None


ModelStatusProvider = Callable[[], ModelStatus]


class ServiceFacade(Protocol):
    """The API's only view of the system."""

    tokens: TokenService
    auth_audit: AuthAuditLog
    cameras: CameraRegistry
    feed: FeedHub
    signer: UrlSigner

    def readiness(self) -> Readiness: ...

    def list_events(
        self, flt: EventFilter, cursor: str | None, limit: int, *, after: int | None = None
    ) -> EventPage: ...

    def get_event(self, event_id: str, *, violation: bool = False) -> EventPublic: ...

    def list_flow(self, flt: EventFilter, cursor: str | None, limit: int) -> FlowPage: ...

    def review(
        self,
        event_id: str,
        actor: str,
        action: ReviewAction,
        reason: str | None,
        corrected_plate: str | None,
    ) -> ReviewOutcome: ...

    def audit_trail(self, event_id: str) -> list[AuditEntryPublic]: ...

    def evidence_file(self, event_id: str, name: str) -> EvidenceFile: ...

    def stream_health(self) -> Mapping[str, StreamHealthPublic]: ...

    def ingest(self, events: Sequence[Event]) -> list[FeedItem]: ...

    def phase_hub(self) -> PhaseRouter | None: ...

    def delivery_status(self) -> dict[str, object] | None: ...


class StoreService:
    """:class:`ServiceFacade` over the store. Build it with :func:`build_store_service`."""

    def __init__(
        self,
        db: Database,
        events: EventStore,
        *,
        files_root: Path,
        evidence_roots: Sequence[Path] = (),
        token_key: bytes | None = None,
        url_key: bytes | None = None,
        cameras: CameraRegistry | None = None,
        health: HealthProvider | None = None,
        model_status: ModelStatusProvider | None = None,
        feed_capacity: int = 4096,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        token_ttl_s: float | None = None,
    ) -> None:
        self.db = db
        self.events = events
        self._writer_health: Callable[[], tuple[bool, str | None]] | None = None
        self._phase_hub: PhaseRouter | None = None
        self._delivery_status: Callable[[], dict[str, object] | None] | None = None
        self._frames: Callable[[str], Frame | None] | None = None
        self.files_root = files_root
        self.min_free_bytes = min_free_bytes
        harden_permissions(files_root, db)
        self.tokens = TokenService(SqlTokenRepository(db), token_key, default_ttl_s=token_ttl_s)
        self.auth_audit: AuthAuditLog = SqlAuthAuditLog(db)
        self.cameras = cameras or CameraRegistry(db=db)
        if token_key:  # camera credentials at rest: encrypted with a key derived from it
            self.cameras.set_secret_key(derive_key(token_key, "camera-credentials"))
        # URL signing never uses the token-hashing key itself; signed URLs name their token
        self.signer = UrlSigner(
            derive_key(url_key, "evidence-url") if url_key else None,
            token_active=self.tokens.is_active,
        )
        self.locator = EvidenceLocator([files_root, *evidence_roots])
        self._health = health
        self._model_status = model_status
        self.feed = FeedHub(feed_capacity, backfill=self._backfill, start_seq=self._max_seq())

    # -- providers the runner plugs in ---------------------------------------------------------

    def set_health_provider(self, provider: HealthProvider | None) -> None:
        self._health = provider

    def set_model_status(self, provider: ModelStatusProvider | None) -> None:
        self._model_status = provider

    def set_writer_health(self, provider: Callable[[], tuple[bool, str | None]] | None) -> None:
        """The node's store writer: (healthy, last error) — a failing writer is not ready."""
        self._writer_health = provider

    def set_phase_hub(self, hub: PhaseRouter | None) -> None:
        """Where ``POST /cameras/{id}/signal-phases`` delivers external signal phases."""
        self._phase_hub = hub

    def phase_hub(self) -> PhaseRouter | None:
        return self._phase_hub

    def set_delivery_status(self, provider: Callable[[], dict[str, object] | None] | None) -> None:
        """GA/T 1400 delivery: session state, last handshake failure, backlog, dead letters."""
        self._delivery_status = provider

    def delivery_status(self) -> dict[str, object] | None:
        return self._delivery_status() if self._delivery_status is not None else None

    def set_frame_provider(self, provider: Callable[[str], Frame | None] | None) -> None:
        """The runtime's last analysed frame per camera (the operator screen's live tiles)."""
        self._frames = provider

    def latest_frame(self, camera_id: str) -> Frame | None:
        return self._frames(camera_id) if self._frames is not None else None

    def stream_health(self) -> Mapping[str, StreamHealthPublic]:
        if self._health is None:
            return {}
        return {k: h.model_copy(update={"url": mask_url(h.url)}) for k, h in self._health().items()}

    def readiness(self) -> Readiness:
        store_ok, detail = True, None
        try:
            with self.db.transaction(readonly=True) as tx:
                tx.fetchone("SELECT 1")
        except StoreError as e:
            store_ok, detail = False, f"store: {e}"
        disk_ok, free = self.disk_ok()
        if not disk_ok:
            detail = detail or (
                f"disk: {free // (1024 * 1024)} MiB free in the data directory "
                f"(need {self.min_free_bytes // (1024 * 1024)} MiB)"
            )
        writer_ok, writer_error = self._writer_health() if self._writer_health else (True, None)
        if not writer_ok:
            store_ok = False
            detail = detail or f"store writer: {writer_error or 'failing'}"
        ms = self._model_status() if self._model_status else ModelStatus(False, None, "no model")
        return Readiness(
            ready=store_ok and disk_ok and ms.loaded,
            store=store_ok,
            model_loaded=ms.loaded,
            provider=ms.provider,
            detail=detail or ms.detail,
        )

    def disk_ok(self) -> tuple[bool, int]:
        """(enough free space for evidence and the store, free bytes) in the data directory."""
        try:
            free = shutil.disk_usage(self.files_root).free
        except OSError:
            return False, 0
        return free >= self.min_free_bytes, free

    # -- events ------------------------------------------------------------------------------------

    def _stored(self, event_id: str) -> StoredEvent:
        stored = self.events.get_event(event_id)
        if stored is None:
            raise NotFoundError(f"event {event_id!r} not found")
        return stored

    def list_flow(self, flt: EventFilter, cursor: str | None, limit: int) -> FlowPage:
        """Traffic-flow records (``traffic_flow`` events), newest interval first."""
        from sharpeyes.pipeline.flow import flow_from_extra

        flt = dataclasses.replace(flt, types=(EventType.TRAFFIC_FLOW,))
        try:
            page = self.events.list_events(flt, cursor, limit)
        except (ValueError, OverflowError) as e:
            raise InvalidRequestError("invalid cursor") from e
        items = [
            FlowPublic.model_validate(
                {
                    **flow_from_extra(s.event.extra),
                    "camera_id": s.event.stream_id,
                    "start_ms": s.event.first_seen_ms,
                }
            )
            for s in page.items
        ]
        return FlowPage(items=items, next_cursor=page.next_cursor)

    def list_events(
        self, flt: EventFilter, cursor: str | None, limit: int, *, after: int | None = None
    ) -> EventPage:
        """Newest first with ``cursor``; in ingest order after sequence ``after`` (issue 15)."""
        if after is not None:
            if cursor is not None:
                raise InvalidRequestError("pass either cursor or after, not both")
            ingested = self.events.list_ingested(flt, after, limit)
            return EventPage(
                items=[event_public(s, self.signer, None) for s in ingested.items],
                next_cursor=None,
                next_after=ingested.next_after,
            )
        high_water = self.events.ingest_high_water()  # before the page: see EventPage
        try:
            page = self.events.list_events(flt, cursor, limit)
        except ValueError as e:
            raise InvalidRequestError(str(e)) from e
        except OverflowError as e:  # a forged cursor with integers out of the store's range
            raise InvalidRequestError("invalid cursor") from e
        return EventPage(
            items=[event_public(s, self.signer, None) for s in page.items],
            next_cursor=page.next_cursor,
            next_after=high_water,
        )

    def get_event(self, event_id: str, *, violation: bool = False) -> EventPublic:
        stored = self._stored(event_id)
        if violation and stored.event.violation is None:
            raise NotFoundError(f"event {event_id!r} is not a violation")
        trail = self.events.audit_trail(event_id) if stored.review_state else []
        return _flag_missing(event_public(stored, self.signer, self.locator.files(stored), trail))

    def review(
        self,
        event_id: str,
        actor: str,
        action: ReviewAction,
        reason: str | None,
        corrected_plate: str | None,
    ) -> ReviewOutcome:
        stored = self._stored(event_id)
        if stored.event.violation is None:
            raise NotFoundError(f"event {event_id!r} is not a violation")
        if action == "reject" and not (reason and reason.strip()):
            raise InvalidRequestError("a reason is required to reject a violation")
        if action == "confirm" and not (corrected_plate and corrected_plate.strip()):
            self._plate_for_confirm(stored)
        try:
            after, seq = self.events.review_logged(event_id, actor, action, reason, corrected_plate)
        except EventNotFoundError as e:
            raise NotFoundError(str(e)) from e
        except ReviewConflictError as e:
            raise ConflictError(str(e)) from e
        except ReviewError as e:
            raise InvalidRequestError(str(e)) from e
        trail = self.events.audit_trail(event_id)
        if not trail:
            raise ConflictError(f"review of {event_id} left no audit entry")
        self.feed.publish(
            REVIEW_FEED_TYPE, after.event.stream_id, review_payload(after, trail[-1]), seq
        )
        # the decision is saved: a cluster's evidence storage that cannot be read now leaves
        # the files out of the answer (evidence_complete unknown), it does not fail it
        files = self.locator.files_if_readable(after)
        view = event_public(after, self.signer, files, trail)
        return ReviewOutcome(
            event=view if files is None else _flag_missing(view), audit=audit_public(trail[-1])
        )

    def _plate_for_confirm(self, stored: StoredEvent) -> None:
        """Refuse to confirm a record whose plate nobody has read: GA/T 496 practice
        (RED_LIGHT.md) holds a record invalid when the plate is unreadable, so the reviewer
        enters the plate read from the pictures or the clip, or rejects the record. A plate
        read on the track (not in the evidence images) or corrected in an earlier review
        counts; records that need no plate (a pedestrian's) list no plate part."""
        trail = self.events.audit_trail(stored.event.event_id) if stored.review_state else []
        view = event_public(stored, self.signer, self.locator.files(stored), trail)
        if view.review is not None and view.review.corrected_plate:
            return
        if view.plate is not None and view.plate.text:
            return  # read on the track, if not in the evidence images: the reviewer checks it
        if any(p.part == "plate" for p in view.incomplete):
            raise InvalidRequestError(
                "the plate is unreadable in the evidence: enter the plate read from the "
                "pictures or the clip as corrected_plate, or reject the record (a record "
                "without a readable plate is invalid)"
            )

    def audit_trail(self, event_id: str) -> list[AuditEntryPublic]:
        self._stored(event_id)
        return [audit_public(a) for a in self.events.audit_trail(event_id)]

    def evidence_file(self, event_id: str, name: str) -> EvidenceFile:
        return self.locator.resolve(self._stored(event_id), name)

    # -- live feed -------------------------------------------------------------------------------

    def ingest(self, events: Sequence[Event]) -> list[FeedItem]:
        """Store events (idempotent by id) with their feed rows in one transaction, and publish
        the new ones to the live feed."""
        if not events:
            return []
        written = self.events.write_batch(events, destinations=(), device_id=None, feed=True)
        return publish_written(self.feed, written, self.feed_payload)

    def feed_payload(self, stored: StoredEvent) -> str:
        """The live feed's JSON of ``stored``: the public event and its evidence files (API
        paths, downloaded with the consumer's bearer token), live and on replay alike."""
        return feed_payload(stored, self.locator.files_if_readable(stored))

    def _max_seq(self) -> int:
        with self.db.transaction(readonly=True) as tx:
            row = tx.fetchone("SELECT MAX(seq) FROM feed_log")
        return int(row[0]) if row and row[0] is not None else 0

    def _backfill(self, after_seq: int, limit: int) -> list[FeedItem]:
        with self.db.transaction(readonly=True) as tx:
            rows = tx.fetchall(
                "SELECT seq, event_id, type, at_ms FROM feed_log WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        items = []
        for seq, event_id, kind, at_ms in rows:
            stored = self.events.get_event(str(event_id))
            if stored is None:
                continue
            if kind == REVIEW_FEED_TYPE:  # the decision as it was taken (its audit entry)
                entry = self._review_entry(stored.event_id, int(seq), int(at_ms))
                if entry is not None:
                    payload = review_payload(stored, entry)
                    items.append(
                        FeedItem(int(seq), REVIEW_FEED_TYPE, stored.event.stream_id, payload)
                    )
                continue
            items.append(
                FeedItem(
                    int(seq),
                    str(stored.event.type),
                    stored.event.stream_id,
                    self.feed_payload(stored),
                )
            )
        return items

    def _review_entry(self, event_id: str, seq: int, at_ms: int) -> StoreReviewAction | None:
        """The audit entry a ``review`` feed row was written with (same transaction, same
        time; among entries of the same millisecond, the same rank)."""
        same = [a for a in self.events.audit_trail(event_id) if a.at_ms == at_ms]
        with self.db.transaction(readonly=True) as tx:
            rank = tx.fetchone(
                "SELECT COUNT(*) FROM feed_log WHERE event_id = ? AND type = ? AND at_ms = ? "
                "AND seq < ?",
                (event_id, REVIEW_FEED_TYPE, at_ms, seq),
            )
        k = int(rank[0]) if rank else 0
        return same[k] if k < len(same) else None


def _flag_missing(event: EventPublic) -> EventPublic:
    """A violation whose evidence record is missing is flagged incomplete (not "unknown")."""
    files = event.evidence or ()
    if event.violation is None or any(f.name == "record.json" for f in files):
        return event
    return event.model_copy(
        update={"evidence_complete": False, "incomplete": [*event.incomplete, NO_EVIDENCE]}
    )


def build_store_service(db_url: str | Path, files_root: Path, **options: Any) -> StoreService:
    """Open (and migrate) the store at ``db_url`` and build a :class:`StoreService` on it."""
    db = open_database(db_url)
    migrate(db)
    return StoreService(db, EventStore(db, files_root), files_root=files_root, **options)
