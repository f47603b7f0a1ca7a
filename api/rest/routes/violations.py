"""Violations: the review queue, one violation, confirm/reject with reason, audit trail."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter

from sharpeyes.api.rest.deps import AUTH_RESPONSES, Reviewer, Service, Viewer
from sharpeyes.api.rest.routes.events import EventId
from sharpeyes.api.rest.routes.query import After, Cursor, Filter, Limit
from sharpeyes.api.rest.routes.violation_types import ViolationTypes, violation_types
from sharpeyes.api.rest.schemas import (
    AuditEntryPublic,
    ErrorBody,
    EventPage,
    EventPublic,
    ReviewCreate,
    ReviewResult,
    TrajectoryPointPublic,
)
from sharpeyes.api.rest.service import ServiceFacade
from sharpeyes.api.store.events import EventStore
from sharpeyes.pipeline.rules import violation_type as type_of

router = APIRouter(prefix="/api/v1/violations", tags=["violations"], responses=AUTH_RESPONSES)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such violation."}
}


@router.get(
    "",
    response_model=EventPage,
    summary="Query violations (newest first, or in ingest order with after=N)",
)
def list_violations(
    *,
    _: Viewer,
    service: Service,
    flt: Filter,
    cursor: Cursor = None,
    after: After = None,
    limit: Limit = 50,
    violation_type: ViolationTypes = None,
) -> EventPage:
    flt = replace(flt, violations_only=True, violation_types=violation_types(violation_type))
    page = service.list_events(flt, cursor, limit, after=after)
    return page.model_copy(update={"items": [_typed(service, ev) for ev in page.items]})


@router.get("/{event_id}", response_model=EventPublic, summary="One violation", responses=NOT_FOUND)
def get_violation(event_id: EventId, _: Viewer, service: Service) -> EventPublic:
    return _typed(service, service.get_event(event_id, violation=True), track=True)


def _typed(service: ServiceFacade, ev: EventPublic, *, track: bool = False) -> EventPublic:
    """``ev`` with its violation type (and, with ``track``, its trajectory) from the store.

    Stop-gap for the review console (issues 15/17): :func:`api.rest.convert.event_public` is the
    place for these two fields; until it fills them they are read here from the store service's
    event store (a facade without one leaves them empty).
    """
    store = getattr(service, "events", None)
    stored = store.get_event(ev.event_id) if isinstance(store, EventStore) else None
    if stored is None:
        return ev
    update: dict[str, Any] = {"violation_type": type_of(stored.event)}
    if track:
        update["trajectory"] = [
            TrajectoryPointPublic(pts=p.pts, x=p.x, y=p.y) for p in stored.event.trajectory
        ]
    return ev.model_copy(update=update)


@router.post(
    "/{event_id}/review",
    response_model=ReviewResult,
    summary="Confirm or reject (reason required to reject)",
    responses={
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "Already confirmed: a second confirm is refused."},
    },
)
def review(
    event_id: EventId, body: ReviewCreate, reviewer: Reviewer, service: Service
) -> ReviewResult:
    return service.review(
        event_id,
        f"{reviewer.name} ({reviewer.token_id})",
        body.action,
        body.reason,
        body.corrected_plate,
    )


@router.get(
    "/{event_id}/audit",
    response_model=list[AuditEntryPublic],
    summary="Append-only review audit trail (行为留痕), oldest first",
    responses=NOT_FOUND,
)
def audit_trail(event_id: EventId, _: Viewer, service: Service) -> list[AuditEntryPublic]:
    return service.audit_trail(event_id)
