"""Events: query with filters and cursor pagination, one event, evidence downloads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse

from sharpeyes.api.rest.auth import Role
from sharpeyes.api.rest.deps import AUTH_RESPONSES, Credentials, Service, Viewer, authenticate
from sharpeyes.api.rest.evidence import EvidenceFile, EvidenceUnavailableError
from sharpeyes.api.rest.routes.query import After, Cursor, Filter, Limit
from sharpeyes.api.rest.routes.violation_types import ViolationTypes, violation_types
from sharpeyes.api.rest.schemas import EVIDENCE_NAMES, ErrorBody, EventPage, EventPublic

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=AUTH_RESPONSES)
EventId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
STORAGE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "The evidence storage cannot be read now."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such event."},
    **STORAGE_DOWN,
}
RETRY_AFTER_S = 5


@contextmanager
def storage_answers() -> Iterator[None]:
    """A cluster's evidence storage that cannot be read now: 503 with ``Retry-After`` and a
    detail that says so (the file may exist: never a 404)."""
    try:
        yield
    except EvidenceUnavailableError as e:
        raise HTTPException(
            503,
            "the evidence storage cannot be read now; try again later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from e


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
    with storage_answers():
        return service.get_event(event_id)


@router.get(
    "/{event_id}/evidence/{name}",
    summary="Download an evidence file (Range supported)",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}, "video/mp4": {}, "application/json": {}}},
        206: {"description": "Partial content (Range)."},
        404: {"model": ErrorBody, "description": "No such event or file."},
        400: {"model": ErrorBody, "description": "Malformed Range header."},
        416: {"model": ErrorBody, "description": "Range not satisfiable."},
        **STORAGE_DOWN,
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
    with storage_answers():
        f = service.evidence_file(event_id, name)
    header = request.headers.get("range")
    problem = None if header is None or "if-range" in request.headers else range_problem(header, f)
    if problem is not None:
        status, detail = problem
        extra = {"Content-Range": f"bytes */{f.path.stat().st_size}"} if status == 416 else None
        raise HTTPException(status, detail, headers=extra)
    return FileResponse(
        f.path,
        media_type=f.media_type,
        filename=f"{event_id}_{f.name}",
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=300"},
    )


MAX_RANGES = 100  # more parts than this: the whole file is sent (as Starlette's FileResponse does)


def range_problem(header: str, file: EvidenceFile) -> tuple[int, str] | None:
    """Why a ``Range`` header cannot be served from ``file``, as (status, detail)
    — 400 malformed, 416 not satisfiable — or None when it can (or is ignored).

    The same reading as the ``FileResponse`` that serves the file (RFC 9110 §14.1.2: parts that
    are not ``first-last``, ``first-`` or ``-suffix`` are skipped), checked here so that a bad
    range is answered with the API's JSON error body instead of a bare text line.
    """
    size = file.path.stat().st_size
    unit, sep, spec = header.partition("=")
    if not sep:
        return 400, "the Range header must look like 'bytes=first-last'"
    if unit.strip().lower() != "bytes":
        return 400, f"only byte ranges are served, not {unit.strip()[:16]!r}"
    parts = spec.split(",")
    if len(parts) > MAX_RANGES:
        return None
    starts: list[tuple[int, int]] = []
    for raw in parts:
        first, dash, last = raw.strip().partition("-")
        if not dash or not (first.strip() or last.strip()):
            continue
        try:
            if first.strip():
                start = int(first)
                end = int(last) + 1 if last.strip() and int(last) < size else size
            else:
                start, end = max(size - int(last), 0), size
        except ValueError:
            continue
        starts.append((start, end))
    if not starts:
        return 400, "the Range header names no byte range ('bytes=first-last')"
    if any(not 0 <= start < size for start, _ in starts):
        return 416, f"the range starts beyond the end of the file ({size} bytes)"
    if any(start >= end for start, end in starts):
        return 400, "a byte range ends before it starts"
    return None
