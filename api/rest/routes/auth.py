"""Login with a token (recorded in the audit) or as a user (a server-side session), logout,
who-am-I, the auth audit and console users for admins.

``POST /session`` takes the user name and password as ``Authorization: Basic`` (RFC 7617, UTF-8)
and the one-time code, when the user has TOTP, in header ``X-TOTP-Code``: a login has no request
body, since the pre-body guard reads bodies of authenticated callers only. Failed logins go to
the auth audit and count against the client's address *and* the user name in the failure
limiter (a blocked client or name gets 429).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from sharpeyes.api.rest.auth import Role
from sharpeyes.api.rest.auth.accounts import LoginError, LoginReason, UserError, UserRecord
from sharpeyes.api.rest.auth.audit import AuthAction
from sharpeyes.api.rest.auth.passwords import PasswordPolicyError
from sharpeyes.api.rest.auth.sessions import SessionService, is_session_id
from sharpeyes.api.rest.context import AppContext, client_address
from sharpeyes.api.rest.deps import (
    AUTH_RESPONSES,
    Admin,
    Credentials,
    Ctx,
    Viewer,
    audit,
    authenticate,
)
from sharpeyes.api.rest.schemas import (
    AuthAuditPage,
    AuthAuditPublic,
    ErrorBody,
    SessionIssued,
    UserCreate,
    UserPage,
    UserPublic,
    WhoAmI,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=AUTH_RESPONSES)
TOTP_HEADER = "X-TOTP-Code"
TOTP_REQUIRED_HEADER = "X-TOTP-Required"
UserName = Annotated[str, Path(min_length=1, max_length=64)]
_BEARER = {"WWW-Authenticate": "Bearer"}
NO_USER: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "No such user."}
}


@router.post("/login", response_model=WhoAmI, summary="Check a token and record the login")
def login(request: Request, creds: Credentials, ctx: Ctx) -> WhoAmI:
    principal = authenticate(request, creds, Role.VIEWER, AuthAction.LOGIN_FAILED)
    audit(ctx, request, AuthAction.LOGIN, 200, principal=principal)
    return WhoAmI(token_id=principal.token_id, name=principal.name, role=principal.role.label)


def _sessions(ctx: AppContext) -> SessionService:
    sessions = ctx.service.tokens.sessions
    if sessions is None:
        raise HTTPException(503, "user accounts are not available on this service")
    return sessions


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


def _login_input(request: Request) -> tuple[str, str, str | None]:
    basic = _basic(request)
    if basic is None:
        raise HTTPException(
            401, "a user name and password are required", {"WWW-Authenticate": "Bearer"}
        )
    return basic[0], basic[1], request.headers.get(TOTP_HEADER) or None


def _refuse_if_blocked(ctx: AppContext, request: Request, keys: tuple[str, ...]) -> None:
    wait = max(ctx.limiter.retry_after(k) for k in keys)
    if wait > 0:
        ctx.metrics.auth_failures.labels("rate_limited").inc()
        audit(ctx, request, AuthAction.RATE_LIMITED, 429, detail="login")
        raise HTTPException(
            429, "too many failed logins; retry later", {"Retry-After": f"{wait:.0f}"}
        )


def _login_failed(
    ctx: AppContext, request: Request, keys: tuple[str, ...], e: LoginError
) -> HTTPException:
    headers = dict(_BEARER)
    if e.reason == LoginReason.TOTP_REQUIRED:  # the password was right: not a failure
        headers[TOTP_REQUIRED_HEADER] = "1"
    else:
        for key in keys:
            ctx.limiter.record_failure(key)
        ctx.metrics.auth_failures.labels("invalid").inc()
    audit(ctx, request, AuthAction.LOGIN_FAILED, 401, detail=f"{e.reason.value}: {e.username}")
    return HTTPException(401, str(e), headers)


@router.post(
    "/session",
    response_model=SessionIssued,
    status_code=201,
    summary="Log a user in (`Authorization: Basic`, `X-TOTP-Code`): a session secret",
    responses={
        401: {
            "model": ErrorBody,
            "description": "Wrong user name, password or one-time code (one message for an "
            "unknown user, a wrong password or a disabled user). Header `X-TOTP-Required: 1` "
            "when the password was right and a one-time code is needed.",
        }
    },
)
def start_session(request: Request, ctx: Ctx) -> SessionIssued:
    sessions = _sessions(ctx)
    username, password, code = _login_input(request)
    client = client_address(request, ctx.settings)
    keys = (client, f"user:{username.strip().lower()[:64]}")
    _refuse_if_blocked(ctx, request, keys)
    try:
        issued = sessions.login(username, password, code, client=client)
    except LoginError as e:
        raise _login_failed(ctx, request, keys, e) from e
    detail = "session, password + TOTP" if issued.user.totp_enabled else "session, password"
    audit(ctx, request, AuthAction.LOGIN, 201, principal=issued.principal, detail=detail)
    return SessionIssued(
        session=issued.credential,
        session_id=issued.record.session_id,
        username=issued.user.username,
        display_name=issued.user.display_name,
        role=issued.user.role.label,
        expires_ms=issued.record.expires_ms,
        idle_timeout_s=sessions.policy.idle_s,
    )


@router.post(
    "/logout", status_code=204, summary="End the caller's session (an API token stays valid)"
)
def logout(request: Request, principal: Viewer, ctx: Ctx) -> Response:
    ended = False
    if is_session_id(principal.token_id):
        ended = _sessions(ctx).logout(principal.token_id)
    detail = "session ended" if ended else "token: not revoked"
    audit(ctx, request, AuthAction.LOGOUT, 204, principal=principal, detail=detail)
    return Response(status_code=204)


@router.get("/me", response_model=WhoAmI, summary="The caller's token name and role")
def me(principal: Viewer) -> WhoAmI:
    return WhoAmI(token_id=principal.token_id, name=principal.name, role=principal.role.label)


@router.get("/audit", response_model=AuthAuditPage, summary="Auth audit, newest first (admin)")
def auth_audit(
    _: Admin,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
) -> AuthAuditPage:
    rows = ctx.service.auth_audit.recent(limit + 1, int(cursor) if cursor else None)
    items = [
        AuthAuditPublic(
            id=r.audit_id,
            at_ms=r.at_ms,
            action=r.action.value,
            token_id=r.token_id,
            name=r.name,
            role=r.role,
            client=r.client,
            method=r.method,
            path=r.path,
            status=r.status,
            detail=r.detail,
        )
        for r in rows[:limit]
    ]
    nxt = str(items[-1].id) if len(rows) > limit and items else None
    return AuthAuditPage(items=items, next_cursor=nxt)


# -- console users (admin) ----------------------------------------------------------------------


def user_public(r: UserRecord) -> UserPublic:
    return UserPublic(
        username=r.username,
        display_name=r.display_name,
        role=r.role.label,
        created_ms=r.created_ms,
        password_ms=r.password_ms,
        disabled_ms=r.disabled_ms,
        totp_enabled=r.totp_enabled,
    )


@router.get("/users", response_model=UserPage, summary="Console users (admin)")
def list_users(_: Admin, ctx: Ctx) -> UserPage:
    return UserPage(items=[user_public(r) for r in _sessions(ctx).users.list()])


@router.post(
    "/users",
    response_model=UserPublic,
    status_code=201,
    summary="Add a console user (admin)",
    responses={409: {"model": ErrorBody, "description": "The user name is taken."}},
)
def create_user(body: UserCreate, admin: Admin, ctx: Ctx, request: Request) -> UserPublic:
    users = _sessions(ctx).users
    if users.find(body.username) is not None:
        raise HTTPException(409, "user name taken")
    try:
        record = users.add(body.username, body.password, Role.parse(body.role), body.display_name)
    except (UserError, PasswordPolicyError) as e:
        raise HTTPException(400, str(e)) from e
    detail = f"{record.username} {record.role.label}"
    audit(ctx, request, AuthAction.USER_CREATED, 201, principal=admin, detail=detail)
    return user_public(record)


def _set_enabled(
    username: str, admin: Admin, ctx: AppContext, request: Request, *, enabled: bool
) -> Response:
    users = _sessions(ctx).users
    try:
        if enabled:
            users.enable(username)
        else:
            ended = users.disable(username)
    except UserError as e:
        raise HTTPException(404, str(e)) from e
    action, detail = (
        (AuthAction.USER_ENABLED, username)
        if enabled
        else (AuthAction.USER_DISABLED, f"{username} ({ended} sessions ended)")
    )
    audit(ctx, request, action, 204, principal=admin, detail=detail)
    return Response(status_code=204)


@router.post(
    "/users/{username}/disable",
    status_code=204,
    summary="Disable a user and end the user's sessions (admin)",
    responses=NO_USER,
)
def disable_user(username: UserName, admin: Admin, ctx: Ctx, request: Request) -> Response:
    return _set_enabled(username, admin, ctx, request, enabled=False)


@router.post(
    "/users/{username}/enable", status_code=204, summary="Enable a user (admin)", responses=NO_USER
)
def enable_user(username: UserName, admin: Admin, ctx: Ctx, request: Request) -> Response:
    return _set_enabled(username, admin, ctx, request, enabled=True)
