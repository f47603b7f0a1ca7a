"""FastAPI dependencies as ``Annotated`` aliases: the service, the caller and role checks.

Every endpoint except health and metrics depends on one of :data:`Viewer`, :data:`Reviewer`
or :data:`Admin`: 401 without a valid credential, 403 for a role that is too low, 429 while the
client is blocked after repeated failures — a blocked address still serves callers with a valid
token (a NAT or proxy shared with an attacker must not lock out real users). Failures, logins
and every state-changing call are written to the auth audit.

A credential is either an API token (``se_…``, machines and scripts) or a console user's
session (``ss_…`` from ``POST /api/v1/auth/session``); both arrive as ``Authorization: Bearer``
and are checked by the service's :class:`~sharpeyes.api.rest.auth.tokens.TokenService`, which
hands sessions to its session service. Either way the caller is a :class:`Principal` with a
role; a session's principal id is ``ss_<id>`` and its name the user name.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from sharpeyes.api.rest.auth import AuthAuditRecord, Principal, Role
from sharpeyes.api.rest.auth.audit import AuthAction
from sharpeyes.api.rest.auth.tokens import TokenError
from sharpeyes.api.rest.context import AppContext, client_address, get_context
from sharpeyes.api.rest.evidence import CURRENT_TOKEN
from sharpeyes.api.rest.schemas import ErrorBody
from sharpeyes.api.rest.service import ServiceFacade
from sharpeyes.pipeline import clock

logger = logging.getLogger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    description="API token (`Bearer se_…`) or a user's session (`Bearer ss_…`)",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
STATE_PRINCIPAL = "principal"


def _ctx(request: Request) -> AppContext:
    return get_context(request)


Ctx = Annotated[AppContext, Depends(_ctx)]


def _service(request: Request) -> ServiceFacade:
    return get_context(request).service


Service = Annotated[ServiceFacade, Depends(_service)]


def audit(
    ctx: AppContext,
    request: Request,
    action: AuthAction,
    status: int,
    *,
    principal: Principal | None = None,
    detail: str = "",
) -> None:
    """Append one auth-audit record; a failing audit store is logged, never hides the answer."""
    record = AuthAuditRecord(
        at_ms=clock.now_ms(),
        action=action,
        token_id=principal.token_id if principal else "",
        name=principal.name if principal else "",
        role=principal.role.label if principal else "",
        client=client_address(request, ctx.settings),
        method=request.method,
        path=request.url.path,
        status=status,
        detail=detail,
    )
    try:
        ctx.service.auth_audit.append(record)
    except Exception:
        logger.exception("auth audit write failed (%s %s)", action, request.url.path)


def authenticate(
    request: Request,
    creds: HTTPAuthorizationCredentials | None,
    needed: Role,
    failure: AuthAction = AuthAction.AUTH_FAILED,
) -> Principal:
    """Check the bearer credential (token or session) and role; raise the matching HTTP error."""
    ctx = get_context(request)
    client = client_address(request, ctx.settings)
    wait = ctx.limiter.retry_after(client)

    def blocked() -> HTTPException:
        ctx.metrics.auth_failures.labels("rate_limited").inc()
        audit(ctx, request, AuthAction.RATE_LIMITED, 429)
        return HTTPException(
            429, "too many failed authentications; retry later", {"Retry-After": f"{wait:.0f}"}
        )

    if creds is None or creds.scheme.lower() != "bearer":
        if wait > 0:
            raise blocked()
        ctx.metrics.auth_failures.labels("missing").inc()
        raise HTTPException(401, "an API token or a login session is required", _UNAUTHORIZED)
    try:
        principal = ctx.service.tokens.authenticate(creds.credentials)
    except TokenError as e:
        if wait > 0:  # blocked: no further failures counted, no hint about this token
            raise blocked() from e
        ctx.limiter.record_failure(client)
        ctx.metrics.auth_failures.labels("invalid").inc()
        audit(ctx, request, failure, 401, detail=str(e))
        raise HTTPException(401, "invalid, expired or revoked credential", _UNAUTHORIZED) from e
    if not principal.allows(needed):
        ctx.metrics.auth_failures.labels("forbidden").inc()
        audit(ctx, request, AuthAction.FORBIDDEN, 403, principal=principal, detail=needed.label)
        raise HTTPException(403, f"this action needs the {needed.label} role")
    request.state.principal = principal
    return principal


async def _authenticated(request: Request, creds: Credentials, needed: Role) -> Principal:
    # async, so that the token id set here reaches the endpoint (signed URLs are bound to it)
    principal = await run_in_threadpool(authenticate, request, creds, needed)
    CURRENT_TOKEN.set(principal.token_id)
    return principal


async def _viewer(request: Request, creds: Credentials) -> Principal:
    return await _authenticated(request, creds, Role.VIEWER)


async def _reviewer(request: Request, creds: Credentials) -> Principal:
    return await _authenticated(request, creds, Role.REVIEWER)


async def _admin(request: Request, creds: Credentials) -> Principal:
    return await _authenticated(request, creds, Role.ADMIN)


Viewer = Annotated[Principal, Depends(_viewer)]
Reviewer = Annotated[Principal, Depends(_reviewer)]
Admin = Annotated[Principal, Depends(_admin)]

AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The request cannot be served as asked."},
    401: {
        "model": ErrorBody,
        "description": "No token or session, or an invalid, expired or revoked one.",
    },
    403: {"model": ErrorBody, "description": "The token's role is too low."},
    429: {"model": ErrorBody, "description": "Too many failed authentications from this client."},
    503: {"model": ErrorBody, "description": "The store or pipeline is unavailable."},
}
