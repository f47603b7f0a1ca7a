"""Traffic flow per lane (交通流): ``GET /api/v1/flow`` — one record per lane and interval,
newest interval first, as measured by the cameras' ``flow:`` configuration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sharpeyes.api.rest.deps import AUTH_RESPONSES, Ctx, Service, Viewer
from sharpeyes.api.rest.routes.query import Cursor, Limit, QueryTime, local_zone, ms_in
from sharpeyes.api.rest.schemas import FlowPage
from sharpeyes.api.store.records import EventFilter

router = APIRouter(prefix="/api/v1/flow", tags=["flow"], responses=AUTH_RESPONSES)
_HELP = "ISO 8601; without an offset, local time in the service's zone (Asia/Shanghai)."


@router.get("", response_model=FlowPage, summary="Traffic flow per lane and interval")
def list_flow(
    *,
    _: Viewer,
    service: Service,
    ctx: Ctx,
    camera: Annotated[
        list[str] | None, Query(max_length=64, description="Camera id(s); repeat for several.")
    ] = None,
    since: Annotated[
        QueryTime, Query(description=f"Intervals starting at or after. {_HELP}")
    ] = None,
    until: Annotated[QueryTime, Query(description=f"Intervals starting before. {_HELP}")] = None,
    lane: Annotated[int | None, Query(ge=1, le=16, description="Lane number.")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> FlowPage:
    zone = local_zone(ctx.settings.time_zone)
    flt = EventFilter(
        stream_ids=tuple(camera or ()), since_ms=ms_in(since, zone), until_ms=ms_in(until, zone)
    )
    page = service.list_flow(flt, cursor, limit)
    if lane is not None:
        page = FlowPage(
            items=[r for r in page.items if r.lane_no == lane], next_cursor=page.next_cursor
        )
    return page
