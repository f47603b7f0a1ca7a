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
)

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
    return service.list_events(flt, cursor, limit, after=after)


@router.get("/{event_id}", response_model=EventPublic, summary="One violation", responses=NOT_FOUND)
def get_violation(event_id: EventId, _: Viewer, service: Service) -> EventPublic:
    return service.get_event(event_id, violation=True)


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
