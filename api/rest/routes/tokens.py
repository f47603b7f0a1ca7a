"""API tokens (admin): list, issue (secret shown once), revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response

from sharpeyes.api.rest.auth import Role, TokenRecord
from sharpeyes.api.rest.auth.audit import AuthAction
from sharpeyes.api.rest.deps import AUTH_RESPONSES, Admin, Ctx, audit
from sharpeyes.api.rest.schemas import ErrorBody, TokenCreate, TokenIssued, TokenPage, TokenPublic

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], responses=AUTH_RESPONSES)
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]


def _public(r: TokenRecord) -> TokenPublic:
    return TokenPublic(
        token_id=r.token_id,
        name=r.name,
        role=r.role.label,
        created_ms=r.created_ms,
        revoked_ms=r.revoked_ms,
        last_used_ms=r.last_used_ms,
    )


@router.get("", response_model=TokenPage, summary="All tokens (never their secrets)")
def list_tokens(_: Admin, ctx: Ctx) -> TokenPage:
    return TokenPage(items=[_public(r) for r in ctx.service.tokens.list()])


@router.post("", response_model=TokenIssued, status_code=201, summary="Issue a token")
def create_token(body: TokenCreate, admin: Admin, ctx: Ctx, request: Request) -> TokenIssued:
    record, secret = ctx.service.tokens.issue(body.name, Role.parse(body.role))
    audit(
        ctx,
        request,
        AuthAction.TOKEN_CREATED,
        201,
        principal=admin,
        detail=f"{record.token_id} {body.role}",
    )
    return TokenIssued(**_public(record).model_dump(), token=secret)


@router.delete(
    "/{token_id}",
    status_code=204,
    summary="Revoke a token",
    responses={404: {"model": ErrorBody, "description": "No such active token."}},
)
def revoke_token(token_id: TokenId, admin: Admin, ctx: Ctx, request: Request) -> Response:
    if not ctx.service.tokens.revoke(token_id):
        raise HTTPException(404, f"no active token {token_id}")
    audit(ctx, request, AuthAction.TOKEN_REVOKED, 204, principal=admin, detail=token_id)
    return Response(status_code=204)
