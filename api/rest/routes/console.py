"""What the review console needs beyond the resource routes: its settings and the queue count.

* ``GET /api/v1/console/config`` — the preset reject reasons (废片理由) offered on the violation
  page, and the plate grammar (:data:`sharpeyes.models.plate.PLATE_RE`) a corrected plate is
  checked against, and the operator map's tile server (``map_tile_url``, none by default: the
  networks are offline). The reasons are configurable per unit: build the router with a
  :class:`ConsoleConfig` (e.g. the ``console:`` section of the service config); without one the
  defaults below are served (号牌不清, 非违法, 重复, 设备故障, 其他 — 其他 needs free text).
* ``GET /api/v1/console/queue-summary`` — how many violations are pending review under the
  queue's filters (camera, time range, type, plate). With ``count_events`` (the store's
  ``COUNT(*)``) it is one query; without, it pages through the facade's list (capped).

Mount with ``app.include_router(make_console_router(config))``. The console works without
these routes too (built-in reasons, a count of the loaded rows).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sharpeyes.api.rest.deps import AUTH_RESPONSES, Service, Viewer
from sharpeyes.api.rest.routes.query import Filter
from sharpeyes.api.rest.routes.violation_types import ViolationTypes, violation_types
from sharpeyes.api.rest.service import ServiceFacade
from sharpeyes.api.store.records import EventFilter
from sharpeyes.models.plate import PLATE_RE

__all__ = [
    "DEFAULT_REJECT_REASONS",
    "ConsoleConfig",
    "ConsolePublic",
    "QueueSummary",
    "RejectReason",
    "make_console_router",
]

CountEvents = Callable[[EventFilter], int]
COUNT_CAP = 10_000  # paging fallback: stop counting here (reported as capped)
_PAGE = 1000
TILE_URL_RE = re.compile(r"^(/(?!/)|https?://[^/?#\s]+/)[^\s]*$")


class RejectReason(BaseModel):
    """One preset reason to reject a violation (a 废片 reason)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(
        pattern=r"^[a-z0-9_]{1,32}$", description="Stable key, e.g. plate_unreadable."
    )
    zh: str = Field(min_length=1, max_length=64, description="Label in Chinese (written to audit).")
    en: str = Field(min_length=1, max_length=64, description="Label in English.")
    needs_text: bool = Field(
        False, description="The reviewer must add free text with this reason (其他)."
    )


DEFAULT_REJECT_REASONS: tuple[RejectReason, ...] = (
    RejectReason(code="plate_unreadable", zh="号牌不清", en="Plate unreadable"),
    RejectReason(code="not_violation", zh="非违法", en="Not a violation"),
    RejectReason(code="duplicate", zh="重复", en="Duplicate"),
    RejectReason(code="device_fault", zh="设备故障", en="Device fault"),
    RejectReason(code="other", zh="其他", en="Other", needs_text=True),
)


class ConsoleConfig(BaseModel):
    """Per-unit settings of the review console (the ``console:`` section of a service config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reject_reasons: tuple[RejectReason, ...] = Field(
        DEFAULT_REJECT_REASONS,
        min_length=1,
        max_length=32,
        description="Preset reject reasons, in the order the console lists them.",
    )

    map_tile_url: str | None = Field(
        None,
        max_length=512,
        description="Tile server of the operator's camera map (GIS 一张图), a z/x/y template such "
        "as /tiles/{z}/{x}/{y}.png (same origin, e.g. behind the reverse proxy) or "
        "http://10.1.2.3/tiles/{z}/{x}/{y}.png (a host on the private network; its origin must "
        "be allowed in the CSP img-src). Public-security networks are offline, so there is no "
        "default: None draws the cameras on a plain coordinate canvas.",
    )

    @field_validator("map_tile_url")
    @classmethod
    def _tile_template(cls, v: str | None) -> str | None:
        if v is None:
            return v
        missing = [k for k in ("{z}", "{x}", "{y}") if k not in v]
        if missing:
            raise ValueError(f"map_tile_url {v!r} lacks {', '.join(missing)}")
        if not TILE_URL_RE.match(v):
            raise ValueError(f"map_tile_url {v!r} must start with /, http:// or https://")
        return v

    @model_validator(mode="after")
    def _unique_codes(self) -> ConsoleConfig:
        codes = [r.code for r in self.reject_reasons]
        dup = sorted({c for c in codes if codes.count(c) > 1})
        if dup:
            raise ValueError(f"reject reason code(s) used twice: {', '.join(dup)}")
        return self


class ConsolePublic(BaseModel):
    reject_reasons: tuple[RejectReason, ...]
    plate_pattern: str = Field(
        description="Regular expression (JavaScript-compatible) of a valid Chinese plate: a "
        "corrected plate must match it."
    )
    map_tile_url: str | None = Field(
        None, description="z/x/y tile template of the camera map; None = no map tiles."
    )


class QueueSummary(BaseModel):
    pending: int = Field(description="Violations pending review under the given filters.")
    capped: bool = Field(False, description="True when counting stopped at the cap (more exist).")


def _count_by_paging(service: ServiceFacade, flt: EventFilter) -> QueueSummary:
    n, cursor = 0, None
    while True:
        page = service.list_events(flt, cursor, _PAGE)
        n += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return QueueSummary(pending=n)
        if n >= COUNT_CAP:
            return QueueSummary(pending=n, capped=True)


def make_console_router(
    config: ConsoleConfig | None = None, *, count_events: CountEvents | None = None
) -> APIRouter:
    """The console's routes; ``config`` None = the default reasons."""
    cfg = config or ConsoleConfig()
    router = APIRouter(prefix="/api/v1/console", tags=["console"], responses=AUTH_RESPONSES)

    @router.get("/config", response_model=ConsolePublic, summary="Review-console settings")
    def console_config(_: Viewer) -> ConsolePublic:
        return ConsolePublic(
            reject_reasons=cfg.reject_reasons,
            plate_pattern=PLATE_RE.pattern,
            map_tile_url=cfg.map_tile_url,
        )

    @router.get(
        "/queue-summary",
        response_model=QueueSummary,
        summary="Pending violations under the queue's filters (review_state is ignored)",
    )
    def queue_summary(
        _: Viewer, service: Service, flt: Filter, violation_type: ViolationTypes = None
    ) -> QueueSummary:
        pending = replace(
            flt,
            violations_only=True,
            review_state="pending",
            violation_types=violation_types(violation_type),
        )
        if count_events is not None:
            return QueueSummary(pending=count_events(pending))
        return _count_by_paging(service, pending)

    return router
