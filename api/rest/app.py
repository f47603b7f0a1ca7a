"""The FastAPI application factory: ``create_app(settings, service)``; no import-time config.

Routers are thin; the :class:`api.rest.service.ServiceFacade` does the work. Service errors map to
HTTP statuses here (404, 409, 422, 503), the review console is served under ``/console/``, and
an ASGI middleware records request metrics and audits state-changing calls made with a token.
Outermost, :mod:`api.rest.guard` limits request bodies, authenticates before any body is read,
and adds security headers (CSP, nosniff, no framing, no referrer).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sharpeyes.api.cluster.routes import make_cluster_router
from sharpeyes.api.cluster.service import ClusterHandle
from sharpeyes.api.rest.auth import FailureLimiter, Principal
from sharpeyes.api.rest.auth.audit import AuthAction, AuthAuditRecord
from sharpeyes.api.rest.context import ApiSettings, AppContext, client_address
from sharpeyes.api.rest.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UnavailableError,
)
from sharpeyes.api.rest.guard import (
    RequestGuardMiddleware,
    SecurityHeadersMiddleware,
    bearer_token,
)
from sharpeyes.api.rest.metrics import ApiMetrics
from sharpeyes.api.rest.routes import (
    auth,
    cameras,
    delivery,
    events,
    feed,
    flow,
    health,
    signals,
    streams,
    tokens,
    violations,
)
from sharpeyes.api.rest.routes.console import ConsoleConfig, make_console_router
from sharpeyes.api.rest.routes.export import DeidProvider, make_export_router
from sharpeyes.api.rest.routes.watch import make_watch_router
from sharpeyes.api.rest.service import ServiceFacade, StoreService
from sharpeyes.pipeline import clock
from sharpeyes.pipeline.errors import SharpeyesError, StoreError

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
VIID_PUBLIC_PREFIXES = ("/VIID/",)
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_STATUS: list[tuple[type[Exception], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidRequestError, 400),
    (UnavailableError, 503),
    (StoreError, 503),
]

DESCRIPTION = """
sharpeyes service API: events and violations of Sharp Eyes (雪亮) / e-police cameras, the
violation review workflow (with an append-only audit trail, 行为留痕), evidence downloads,
a live Server-Sent Events feed, cameras and stream health.

Every endpoint except `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer <token>`.
Roles: **viewer** (read) < **reviewer** (review actions) < **admin** (cameras, tokens).

Times in query parameters are ISO 8601; **without an offset they are local time in the service's
zone (Asia/Shanghai, UTC+8, unless configured)**; encode `+` as `%2B` (an unencoded `+` before an
offset is accepted too). To poll without loss, page the lists with the ingest cursor
(`after` / `next_after`), not with `since`: events are stored when their track ends.
"""


class SafeJSONResponse(JSONResponse):
    """JSON that never fails to encode: lone surrogates become ``\\udXXX`` escapes."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False).encode()


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return SafeJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _bad_text(request: Request, exc: Exception) -> JSONResponse:
    # e.g. a lone surrogate in JSON that the store cannot encode
    logger.info("%s %s: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse({"detail": "the request contains invalid text"}, status_code=400)


def _error_handler(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, type(exc).__name__)
            return JSONResponse({"detail": "service temporarily unavailable"}, status_code=status)
        return SafeJSONResponse({"detail": str(exc)}, status_code=status)

    return handle


async def _sharpeyes_error(request: Request, exc: Exception) -> JSONResponse:
    # Messages of other errors may carry URLs with credentials: log the type, answer generic.
    logger.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse({"detail": "service error"}, status_code=503)


class ObserveMiddleware:
    """Request metrics for every call; auth audit (``token_use``) for state-changing calls."""

    def __init__(self, app: ASGIApp, ctx: AppContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self._observe(scope, status, time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            await self._audit(scope, status)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        m = self.ctx.metrics
        m.requests.labels(scope["method"], path, str(status)).inc()
        m.latency.labels(path).observe(seconds)

    async def _audit(self, scope: Scope, status: int) -> None:
        state: MutableMapping[str, Any] = scope.get("state") or {}
        principal = state.get("principal")
        if not isinstance(principal, Principal):
            return
        if scope["method"] not in _MUTATING and not self.ctx.settings.audit_reads:
            return
        request = Request(scope)
        record = AuthAuditRecord(
            at_ms=clock.now_ms(),
            action=AuthAction.TOKEN_USE,
            token_id=principal.token_id,
            name=principal.name,
            role=principal.role.label,
            client=client_address(request, self.ctx.settings),
            method=scope["method"],
            path=scope["path"],
            status=status,
        )
        try:
            await anyio.to_thread.run_sync(self.ctx.service.auth_audit.append, record)
        except Exception:
            logger.exception("auth audit write failed for %s", scope["path"])


def _token_checker(service: ServiceFacade) -> Callable[[Scope], Awaitable[bool]]:
    """Pre-body auth for :class:`RequestGuardMiddleware`: is the bearer token valid?"""

    async def check(scope: Scope) -> bool:
        token = bearer_token(scope)
        if token is None:
            return False
        try:
            await anyio.to_thread.run_sync(service.tokens.authenticate, token)
        except SharpeyesError:
            return False
        return True

    return check


def _mount_offline_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from assets bundled in the pinned
    ``fastapi-offline`` package (MIT), served under ``/docs/static``: no CDN, so the pages work
    on networks without internet (public-security networks are offline)."""
    app.mount("/docs/static", StaticFiles(directory=DOCS_ASSETS), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to validator.swagger.io
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url="/docs/static/redoc.standalone.js",
            redoc_favicon_url="/docs/static/favicon.png",
            with_google_fonts=False,
        )


def create_app(
    settings: ApiSettings,
    service: ServiceFacade,
    *,
    export_provider: DeidProvider | None = None,
    cluster: Callable[[], ClusterHandle | None] | None = None,
    extra_routers: Sequence[APIRouter] = (),
    console: ConsoleConfig | None = None,
) -> FastAPI:
    """Build the application around a ready service facade.

    ``export_provider`` loads the de-identification models for violation exports (default:
    YuNet + the plate detector, loaded on first use)."""
    metrics = ApiMetrics()
    metrics.attach_live(
        service.stream_health,
        lambda: (service.feed.subscribers, service.feed.last_seq),
        lambda: None if (hub := service.phase_hub()) is None else hub.counts.snapshot(),
    )
    ctx = AppContext(
        settings=settings,
        service=service,
        limiter=FailureLimiter(settings.auth_failure_limit, settings.auth_failure_window_s),
        metrics=metrics,
    )
    app = FastAPI(
        title=f"{settings.title} API",
        version="1",
        description=DESCRIPTION,
        default_response_class=SafeJSONResponse,
        docs_url=None,  # served by _mount_offline_docs: no CDN
        redoc_url=None,
        openapi_tags=[
            {"name": "violations", "description": "Review queue and review actions."},
            {"name": "events", "description": "All events and evidence downloads."},
            {"name": "feed", "description": "Live Server-Sent Events."},
        ],
    )
    app.state.ctx = ctx
    _mount_offline_docs(app)
    routers = (
        health,
        auth,
        tokens,
        events,
        violations,
        feed,
        cameras,
        streams,
        signals,
        delivery,
        flow,
    )
    for router in routers:
        app.include_router(router.router)
    app.include_router(make_export_router(export_provider))
    count = service.events.count_events if isinstance(service, StoreService) else None
    app.include_router(make_console_router(console, count_events=count))
    frames = service.latest_frame if isinstance(service, StoreService) else None
    tile_url = console.map_tile_url if console is not None else None
    app.include_router(make_watch_router(frames, tile_url))  # the operator's watch screen
    for extra in extra_routers:  # e.g. /VIID/Subscribes when GA/T subscriptions are enabled
        app.include_router(extra)
    if cluster is not None:  # the cluster routes exist only on a node that runs a cluster
        app.include_router(make_cluster_router(cluster))
    for exc_type, status in _STATUS:
        app.add_exception_handler(exc_type, _error_handler(status))
    app.add_exception_handler(SharpeyesError, _sharpeyes_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UnicodeError, _bad_text)
    app.add_middleware(ObserveMiddleware, ctx=ctx)
    app.add_middleware(
        RequestGuardMiddleware,
        default_limit=settings.max_body_bytes,
        limits=settings.body_limits,
        authenticate=_token_checker(service),
        # GA/T 1400 callers (upper platforms) carry no bearer token: the /VIID routes check
        # them on their own (User-Identify allow-list, Digest); body limits still apply
        public_prefixes=VIID_PUBLIC_PREFIXES,
    )
    if settings.security_headers:
        app.add_middleware(SecurityHeadersMiddleware)
    if settings.console and (WEB_DIR / "index.html").is_file():
        app.mount("/console", StaticFiles(directory=WEB_DIR, html=True), name="console")

        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse("/console/")

    return app
