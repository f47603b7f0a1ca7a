"""Live feed: Server-Sent Events of new events, filterable, resumable with Last-Event-ID."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from sharpeyes.api.rest.deps import AUTH_RESPONSES, Ctx, Viewer
from sharpeyes.api.rest.feed import FeedFilter
from sharpeyes.api.rest.schemas import FeedTypeName

router = APIRouter(prefix="/api/v1", tags=["feed"], responses=AUTH_RESPONSES)
RETRY_MS = 2000


@router.get(
    "/feed",
    summary="Live events as Server-Sent Events",
    description=(
        "Each message is `id: <seq>`, `event: <type>`, `data: <EventPublic JSON>`; a "
        "reviewer's decision on a violation is `event: review` with `{event_id, camera_id, "
        "violation_type, review_state, plate, audit}`. Reconnect "
        "with the `Last-Event-ID` header (or `last_event_id`) to resume without loss; "
        "`last_event_id=0` replays what the service still holds. The first block of every "
        "connection is `id: <seq>` without data (the position the stream starts after), so a "
        "client has a resume id before its first event."
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def feed(
    *,
    request: Request,
    _: Viewer,
    ctx: Ctx,
    camera: Annotated[list[str] | None, Query(max_length=64)] = None,
    type: Annotated[list[FeedTypeName] | None, Query()] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=32)
    ] = None,
) -> StreamingResponse:
    after = last_event_id
    header = (last_event_id_header or "").strip()
    if header.isascii() and header.isdigit() and len(header) <= 18:  # "²".isdigit() is True
        after = int(header)
    flt = FeedFilter(frozenset(camera or ()), frozenset(type or ()))
    hub = ctx.service.feed
    note = ""
    if after is None:
        after = hub.last_seq  # fixed now, so nothing published after this answer is missed
    elif after > hub.last_seq:  # an id this feed never gave (another store, a reset): say so
        note = f": resume id {after} is beyond this feed's head {hub.last_seq}; from the head\n"
        after = hub.last_seq
    heartbeat = ctx.settings.feed_heartbeat_s

    async def stream() -> AsyncIterator[str]:
        # the id gives the client its resume point before any event: an EventSource that drops
        # before its first event (a quiet feed, a filter) or that held an id beyond the head
        # reconnects from here, not from the head of that later moment
        yield f"retry: {RETRY_MS}\n{note}: connected after seq {after}\nid: {after}\n\n"
        async for item in hub.subscribe(after, flt, heartbeat):
            if item is None:
                if await request.is_disconnected():
                    return
                yield ": keep-alive\n\n"
            else:
                yield item.to_sse()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
