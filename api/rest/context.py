"""Per-application state: settings, the service facade, the auth limiter and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from starlette.requests import HTTPConnection

from sharpeyes.api.rest.auth import FailureLimiter
from sharpeyes.api.rest.guard import BodyLimit
from sharpeyes.api.rest.metrics import ApiMetrics

if TYPE_CHECKING:
    from sharpeyes.api.rest.service import ServiceFacade


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """HTTP-layer settings; the integrator's config builds this (no import-time config).

    Secrets (token HMAC key, URL-signing key) are not here: they belong to the service.
    ``trust_forwarded_for`` only when a reverse proxy that sets ``X-Forwarded-For`` is the sole
    way in (otherwise any client can forge its address and dodge the failure lockout).
    ``max_body_bytes`` is the default request-body limit; ``body_limits`` override it per route
    (checked before the body is read; bodies are read only after authentication).
    """

    title: str = "sharpeyes"
    auth_failure_limit: int = field(default=10)
    auth_failure_window_s: float = 60.0
    trust_forwarded_for: bool = False
    feed_heartbeat_s: float = 15.0
    console: bool = True
    audit_reads: bool = False
    max_body_bytes: int = 1024 * 1024
    body_limits: tuple[BodyLimit, ...] = ()
    security_headers: bool = True
    time_zone: str = "Asia/Shanghai"  # naive datetimes in query parameters are local time


@dataclass(slots=True)
class AppContext:
    settings: ApiSettings
    service: ServiceFacade
    limiter: FailureLimiter
    metrics: ApiMetrics


def get_context(conn: HTTPConnection) -> AppContext:
    return cast(AppContext, conn.app.state.ctx)


def client_address(conn: HTTPConnection, settings: ApiSettings) -> str:
    """The caller's address (first X-Forwarded-For hop only when the proxy is trusted)."""
    if settings.trust_forwarded_for:
        fwd = conn.headers.get("x-forwarded-for")
        if fwd:
            return fwd.split(",", 1)[0].strip()[:64]
    return conn.client.host if conn.client else "unknown"
