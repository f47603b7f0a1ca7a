"""Login (token check recorded in the audit), who-am-I, and the auth audit for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from sharpeyes.api.rest.auth import Role
from sharpeyes.api.rest.auth.audit import AuthAction
from sharpeyes.api.rest.deps import (
    AUTH_RESPONSES,
    Admin,
    Credentials,
    Ctx,
    Viewer,
    audit,
    authenticate,
)
from sharpeyes.api.rest.schemas import AuthAuditPage, AuthAuditPublic, WhoAmI

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=AUTH_RESPONSES)


@router.post("/login", response_model=WhoAmI, summary="Check a token and record the login")
def login(request: Request, creds: Credentials, ctx: Ctx) -> WhoAmI:
    principal = authenticate(request, creds, Role.VIEWER, AuthAction.LOGIN_FAILED)
    audit(ctx, request, AuthAction.LOGIN, 200, principal=principal)
    return WhoAmI(token_id=principal.token_id, name=principal.name, role=principal.role.label)


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
