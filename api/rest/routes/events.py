"""Events: query with filters and cursor pagination, one event, evidence downloads."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse

from sharpeyes.api.rest.auth import Role
from sharpeyes.api.rest.deps import AUTH_RESPONSES, Credentials, Service, Viewer, authenticate
from sharpeyes.api.rest.routes.query import After, Cursor, Filter, Limit
from sharpeyes.api.rest.routes.violation_types import ViolationTypes, violation_types
from sharpeyes.api.rest.schemas import EVIDENCE_NAMES, ErrorBody, EventPage, EventPublic

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=AUTH_RESPONSES)
EventId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such event."}
}


@router.get(
    "",
    response_model=EventPage,
    summary="Query events (newest first, or in ingest order with after=N)",
)
def list_events(
    *,
    _: Viewer,
    service: Service,
    flt: Filter,
    cursor: Cursor = None,
    after: After = None,
    limit: Limit = 50,
    violation_type: ViolationTypes = None,
) -> EventPage:
    flt = replace(flt, violation_types=violation_types(violation_type))
    return service.list_events(flt, cursor, limit, after=after)


@router.get("/{event_id}", response_model=EventPublic, summary="One event", responses=NOT_FOUND)
def get_event(event_id: EventId, _: Viewer, service: Service) -> EventPublic:
    return service.get_event(event_id)


@router.get(
    "/{event_id}/evidence/{name}",
    summary="Download an evidence file (Range supported)",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}, "video/mp4": {}, "application/json": {}}},
        206: {"description": "Partial content (Range)."},
        404: {"model": ErrorBody, "description": "No such event or file."},
        416: {"description": "Range not satisfiable."},
    },
)
def evidence(
    *,
    event_id: EventId,
    name: Annotated[str, Path(max_length=64, description=f"One of {', '.join(EVIDENCE_NAMES)}")],
    request: Request,
    creds: Credentials,
    service: Service,
    exp: Annotated[int | None, Query(ge=0, le=2**40, description="Signed URL expiry")] = None,
    sig: Annotated[str | None, Query(max_length=64, description="Signed URL MAC")] = None,
) -> FileResponse:
    if exp is None or sig is None or creds is not None:
        authenticate(request, creds, Role.VIEWER)
    elif not service.signer.verify(event_id, name, exp, sig):
        raise HTTPException(403, "the signed URL is invalid or expired")
    f = service.evidence_file(event_id, name)
    return FileResponse(
        f.path,
        media_type=f.media_type,
        filename=f"{event_id}_{f.name}",
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=300"},
    )
