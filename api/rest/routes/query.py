"""Query parameters shared by the events and violations lists.

Times: a datetime with an offset (``Z``, ``+08:00``) is taken as given; a naive one is local
time in the service's configured zone (:attr:`ApiSettings.time_zone`, Asia/Shanghai by
default). A ``+`` left unencoded in a query string arrives as a space (form encoding); an
offset written that way (``2026-03-01T08:00:00 08:00``) is read as ``+08:00``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, HTTPException, Query, Request
from pydantic import BeforeValidator

from sharpeyes.api.rest.deps import Ctx
from sharpeyes.api.rest.schemas import EventTypeName, ReviewState
from sharpeyes.api.store.records import EventFilter
from sharpeyes.pipeline.errors import ConfigError
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
    Query(max_length=512, description="`next_cursor` of the previous page (newest first)."),
]
After = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="Ingest cursor: only events stored after this sequence, in the order they "
        "were stored (oldest stored first). Pass each page's `next_after` back to poll without "
        "loss or repeats; `0` = from the beginning. Not combinable with `cursor`.",
    ),
]
PlateText = Annotated[str | None, Query(min_length=1, max_length=16)]
PlateColorName = Literal["blue", "yellow", "green", "white", "black"]
ColourName = Literal[
    "black",
    "white",
    "grey",
    "red",
    "blue",
    "yellow",
    "orange",
    "brown",
    "green",
    "purple",
    "cyan",
    "pink",
]
"""The GA/T 1400 ColorType names the structuring stage states (an unknown name is a 422)."""

# date, time (with seconds and fraction optional), one space, then an offset without its sign
_SPACE_OFFSET = re.compile(
    r"^(\d{4}-?\d{2}-?\d{2}[T ]\d{2}:?\d{2}(?::?\d{2}(?:[.,]\d+)?)?) (\d{2}(?::?\d{2})?)$"
)
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


def _plus_offset(value: object) -> object:
    """``2026-03-01T08:00:00 08:00`` (an unencoded ``+`` read as a space) → ``…+08:00``."""
    if isinstance(value, str):
        m = _SPACE_OFFSET.match(value.strip())
        if m:
            hh, mm = m.group(2)[:2], m.group(2)[-2:] if len(m.group(2)) > 2 else "00"
            return f"{m.group(1)}+{hh}:{mm}"
    return value


QueryTime = Annotated[datetime | None, BeforeValidator(_plus_offset)]
_TIME_HELP = (
    "ISO 8601, e.g. `2026-03-01T08:00:00+08:00` or `…Z`; without an offset the time is local "
    "time in the service's zone (Asia/Shanghai unless configured). Encode `+` as `%2B`; an "
    "unencoded `+` (read as a space) before the offset is accepted too."
)


@lru_cache(maxsize=8)
def local_zone(name: str) -> tzinfo:
    """The zone called ``name``; Asia/Shanghai works without a tz database (no DST since 1991).

    Raises:
        ConfigError: ``name`` is not a known zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        if name == "Asia/Shanghai":
            return CHINA_STANDARD_TIME
        raise ConfigError(f"unknown time zone {name!r}") from e


def ms_in(value: datetime | None, zone: tzinfo) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return int(value.timestamp() * 1000)


DECIDED_STATES = frozenset({"confirmed", "rejected"})
"""Review states a record reaches after it is stored (it is stored ``pending``)."""
DECIDED_WITH_AFTER = (
    "review_state={state} cannot be combined with after: the ingest cursor walks events in "
    "the order they were stored, and a violation is {state} later, usually after the cursor "
    "has passed it, so such a poll would miss it. Poll without review_state and look up the "
    "violations still pending (GET /api/v1/violations/{{id}}) until they are decided."
)


def refuse_decided_with_after(request: Request, review_state: str | None) -> None:
    """A 400 for ``after`` with a state reached after storage (the poll would lose records).

    Raises:
        HTTPException: 400 naming the problem and the way to poll instead.
    """
    if review_state in DECIDED_STATES and request.query_params.get("after") is not None:
        raise HTTPException(400, DECIDED_WITH_AFTER.format(state=review_state))


def event_filter(
    *,
    ctx: Ctx,
    request: Request,
    camera: Annotated[
        list[str] | None, Query(max_length=64, description="Camera id(s); repeat for several.")
    ] = None,
    type: Annotated[list[EventTypeName] | None, Query(description="Event type(s).")] = None,
    kind: KindName = None,
    since: Annotated[QueryTime, Query(description=f"First seen at or after. {_TIME_HELP}")] = None,
    until: Annotated[QueryTime, Query(description=f"First seen before. {_TIME_HELP}")] = None,
    plate: Annotated[PlateText, Query(description="Exact plate, e.g. 京A12345.")] = None,
    plate_contains: Annotated[
        PlateText, Query(description="Partial plate, case-insensitive, e.g. A123.")
    ] = None,
    review_state: Annotated[ReviewState | None, Query(description="Review state.")] = None,
    plate_pattern: Annotated[
        PlateText,
        Query(
            description="Plate with wildcards for characters that could not be read: `?` one "
            "character, `*` any run, e.g. 京A1?345 or *12345 (case-insensitive).",
        ),
    ] = None,
    plate_color: Annotated[
        PlateColorName | None, Query(description="Plate colour (checkpoint reads).")
    ] = None,
    vehicle_color: Annotated[
        ColourName | None, Query(description="Vehicle body colour (checkpoint reads).")
    ] = None,
    coat_color: Annotated[
        ColourName | None, Query(description="Upper-garment colour of a person or rider.")
    ] = None,
    trousers_color: Annotated[
        ColourName | None, Query(description="Lower-garment colour of a person.")
    ] = None,
    class_name: Annotated[
        str | None,
        Query(min_length=1, max_length=32, description="Model class name, e.g. car, bus."),
    ] = None,
) -> EventFilter:
    refuse_decided_with_after(request, review_state)
    zone = local_zone(ctx.settings.time_zone)
    return EventFilter(
        stream_ids=tuple(camera or ()),
        types=tuple(EventType(t) for t in type or ()),
        kind=None if kind is None else ObjectKind[kind.upper()],
        since_ms=ms_in(since, zone),
        until_ms=ms_in(until, zone),
        plate=plate.upper() if plate else plate,  # plate letters are capitals
        plate_contains=plate_contains,
        review_state=review_state,
        plate_pattern=plate_pattern,
        plate_color=plate_color,
        vehicle_color=vehicle_color,
        coat_color=coat_color,
        trousers_color=trousers_color,
        class_name=class_name,
    )


Filter = Annotated[EventFilter, Depends(event_filter)]
