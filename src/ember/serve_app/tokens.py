"""``/tokens``: a workspace's ``admin`` manages its workspace's API tokens over HTTP.

Every route needs ``admin``. An admin sees, creates and revokes only its own workspace's
tokens (another workspace's token is 404 ``token_not_found``); ``cluster:admin`` reaches every
workspace, and only it may grant ``cluster:admin``. A created token's secret is in the 201
answer, once. Creates and revokes are audited, in the caller's workspace.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ember.auth import Principal, Scope, TokenRepository
from ember.errors import Forbidden, NotFound, TokenNotFound, ValidationFailed
from ember.serve_app.auth import require
from ember.serve_app.openapi import problem_responses
from ember.storage import AuditLog, TokenRecord, audited

__all__ = ["tokens_router"]

Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="What the token is for.")
    principal: str | None = Field(
        None, min_length=1, max_length=128, description="Who it acts as (default: `name`)."
    )
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_at: datetime | None = Field(None, description="Aware time; default: never.")
    workspace: str | None = Field(
        None, max_length=64, description="Default: the caller's (another needs cluster:admin)."
    )


class TokenOut(BaseModel):
    id: str
    name: str
    principal: str
    workspace: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, record: TokenRecord) -> TokenOut:
        return cls(
            id=record.id,
            name=record.name,
            principal=record.principal,
            workspace=record.workspace,
            scopes=list(record.scopes),
            created_at=record.created_at,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
            last_used_at=record.last_used_at,
        )


class CreatedToken(TokenOut):
    token: str = Field(description="The secret, shown this once; ember keeps only its hash.")


class TokenList(BaseModel):
    tokens: list[TokenOut]


def _visible(caller: Principal, record: TokenRecord) -> TokenRecord:
    if not caller.sees(record.workspace):
        raise TokenNotFound(f"no API token has the id {record.id!r}")
    return record


def tokens_router(tokens: TokenRepository, audit: AuditLog) -> APIRouter:
    """Routes over ``tokens``; creates and revokes are written to ``audit``."""
    router = APIRouter(prefix="/tokens", tags=["tokens"])

    @router.post(
        "",
        status_code=201,
        response_model=CreatedToken,
        responses=problem_responses(Forbidden, NotFound, ValidationFailed),
    )
    def create_token(body: TokenIn, caller: Admin, request: Request) -> CreatedToken:
        """Create a token in the caller's workspace; its secret is in this answer only."""
        workspace = body.workspace or caller.workspace
        rid = getattr(request.state, "request_id", None)
        with audited(
            audit, caller.name, "token.create", "token", request_id=rid, workspace=workspace
        ) as draft:
            if not caller.sees(workspace):
                raise NotFound(f"no workspace named {workspace!r}")
            if Scope.CLUSTER_ADMIN in body.scopes and not caller.allows(Scope.CLUSTER_ADMIN):
                raise Forbidden(
                    "only a cluster:admin may grant cluster:admin",
                    extra={"required_scope": Scope.CLUSTER_ADMIN.value},
                )
            principal = body.principal or body.name
            draft.detail.update(name=body.name, principal=principal, scopes=sorted(body.scopes))
            record, secret = tokens.create(
                body.name, principal, body.scopes, body.expires_at, workspace
            )
            draft.resource = f"token:{record.id}"
        return CreatedToken(**TokenOut.of(record).model_dump(), token=secret)

    @router.get("", response_model=TokenList)
    def list_tokens(caller: Admin) -> TokenList:
        """The tokens of the caller's workspace (every workspace's for ``cluster:admin``),
        revoked and expired ones too; never a secret."""
        records = tokens.list(caller.visible_workspace)
        return TokenList(tokens=[TokenOut.of(record) for record in records])

    @router.delete(
        "/{token_id}", response_model=TokenOut, responses=problem_responses(TokenNotFound)
    )
    def revoke_token(token_id: str, caller: Admin, request: Request) -> TokenOut:
        """Revoke a token of the caller's workspace; it stops working at once."""
        rid = getattr(request.state, "request_id", None)
        with audited(
            audit,
            caller.name,
            "token.revoke",
            f"token:{token_id}",
            request_id=rid,
            workspace=caller.workspace,
        ):
            _visible(caller, tokens.get(token_id))
            record = tokens.revoke(token_id)
        return TokenOut.of(record)

    return router
