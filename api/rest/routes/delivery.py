"""GA/T 1400 delivery dead letters: list, retry one, retry all (admin), Prometheus counts.

Mount with ``app.include_router(delivery.router)``. The store's database is taken from the
service (``StoreService.db``); a service without one answers 503.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response

from sharpeyes.api.rest.deps import AUTH_RESPONSES, Admin, Ctx, Service
from sharpeyes.api.store.db import Database
from sharpeyes.api.viid.dead_letters import (
    DESTINATION,
    delivery_metrics,
    list_dead_letters,
    retry_all_dead_letters,
    retry_dead_letter,
)
from sharpeyes.pipeline import clock

router = APIRouter(prefix="/api/v1/delivery", tags=["delivery"], responses=AUTH_RESPONSES)


def _db(ctx: Ctx) -> Database:
    db = getattr(ctx.service, "db", None)
    if not isinstance(db, Database):
        raise HTTPException(503, "delivery store not available")
    return db


@router.get("/dead-letters", summary="Records the platform refused for good (admin)")
def dead_letters(
    _: Admin,
    ctx: Ctx,
    destination: str = DESTINATION,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> dict[str, Any]:
    items = list_dead_letters(_db(ctx), destination, limit=limit, after_id=after_id)
    return {
        "items": [i.as_dict() for i in items],
        "next_after_id": items[-1].row_id if len(items) == limit else None,
    }


@router.post("/dead-letters/{row_id}/retry", summary="Queue one dead letter again (admin)")
def retry_one(
    _: Admin,
    ctx: Ctx,
    row_id: Annotated[int, Path(ge=0, le=2**63 - 1)],
    destination: str = DESTINATION,
) -> dict[str, Any]:
    if not retry_dead_letter(_db(ctx), row_id, clock.now_ms(), destination):
        raise HTTPException(404, f"row {row_id} is not a dead letter of {destination}")
    return {"requeued": 1}


@router.post("/dead-letters/retry", summary="Queue every dead letter again (admin)")
def retry_all(_: Admin, ctx: Ctx, destination: str = DESTINATION) -> dict[str, Any]:
    return {"requeued": retry_all_dead_letters(_db(ctx), clock.now_ms(), destination)}


@router.get("/status", summary="GA/T 1400 delivery health: session, last failure, backlog")
def status(_: Admin, service: Service) -> dict[str, Any]:
    """Whether the node is registered with the upper platform, the cause of the last failed
    handshake (and when), the backlog and the dead letters — what to look at when records do
    not arrive. 404 when this node does not deliver."""
    got = service.delivery_status()
    if got is None:
        raise HTTPException(404, "this node has no GA/T 1400 delivery configured")
    return dict(got)


@router.get(
    "/metrics",
    summary="Outbox and dead-letter counts, Prometheus text (admin)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(_: Admin, ctx: Ctx, destination: str = DESTINATION) -> Response:
    return Response(
        delivery_metrics(_db(ctx), destination),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
