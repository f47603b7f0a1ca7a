"""``/healthz`` (process alive), ``/readyz`` (store, model, provider) and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sharpeyes.api.rest.deps import Ctx
from sharpeyes.api.rest.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Store reachable, model loaded, provider in use",
    responses={503: {"model": Readiness, "description": "Not ready."}},
)
def readyz(ctx: Ctx, response: Response) -> Readiness:
    ready = ctx.service.readiness()
    if not ready.ready:
        response.status_code = 503
    return ready


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(ctx: Ctx) -> Response:
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
