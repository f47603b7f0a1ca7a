"""Query parameters shared by the events and violations lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query

from sharpeyes.api.rest.schemas import EventTypeName, ReviewState
from sharpeyes.api.store.records import EventFilter
from sharpeyes.pipeline.types import EventType, ObjectKind

KindName = Annotated[
    str | None,
    Query(
        pattern=r"^(motor_vehicle|non_motor|person|other|traffic_light)$",
        description="Object kind.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="`next_cursor` of the previous page."),
]
PlateText = Annotated[str | None, Query(min_length=1, max_length=16)]


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def event_filter(
    *,
    camera: Annotated[
        list[str] | None, Query(max_length=64, description="Camera id(s); repeat for several.")
    ] = None,
    type: Annotated[list[EventTypeName] | None, Query(description="Event type(s).")] = None,
    kind: KindName = None,
    since: Annotated[
        datetime | None,
        Query(description="First seen at or after (ISO 8601; no offset = UTC)."),
    ] = None,
    until: Annotated[datetime | None, Query(description="First seen before.")] = None,
    plate: Annotated[PlateText, Query(description="Exact plate, e.g. 京A12345.")] = None,
    plate_contains: Annotated[
        PlateText, Query(description="Partial plate, case-insensitive, e.g. A123.")
    ] = None,
    review_state: Annotated[ReviewState | None, Query(description="Review state.")] = None,
) -> EventFilter:
    return EventFilter(
        stream_ids=tuple(camera or ()),
        types=tuple(EventType(t) for t in type or ()),
        kind=None if kind is None else ObjectKind[kind.upper()],
        since_ms=_ms(since),
        until_ms=_ms(until),
        plate=plate,
        plate_contains=plate_contains,
        review_state=review_state,
    )


Filter = Annotated[EventFilter, Depends(event_filter)]
