"""/tokens: automation tokens (`cct_...`) of the signed-in user. Making, listing and revoking
them takes a normal login; an automation token is refused (403)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field

from coursecrafter_server.api.deps import ContainerDep, LoginUser
from coursecrafter_server.api.schemas import ErrorResponse
from coursecrafter_server.auth.api_tokens import ApiTokenService
from coursecrafter_server.domain import ApiToken, TokenScope

router = APIRouter(prefix="/tokens", tags=["tokens"])
_errors = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422)}
MAX_EXPIRES_IN = 5 * 366 * 24 * 3600


async def get_tokens(container: ContainerDep) -> ApiTokenService:  # no I/O: no threadpool hop
    return container.api_tokens


Tokens = Annotated[ApiTokenService, Depends(get_tokens)]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="what the token is for")
    scope: TokenScope = Field(default=TokenScope.UPLOAD,
                              description="upload: uploads and reads; read: reads only")
    expires_in: int | None = Field(default=90 * 24 * 3600, ge=60, le=MAX_EXPIRES_IN,
                                   description="seconds until it expires; null: never")


class TokenOut(BaseModel):
    id: str
    name: str
    scope: TokenScope
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> "TokenOut":
        return cls(id=token.id, name=token.name, scope=token.scope, created_at=token.created_at,
                   expires_at=token.expires_at, last_used_at=token.last_used_at)


class CreatedTokenOut(TokenOut):
    token: str = Field(description="the secret: shown this once, never again")


@router.post("", status_code=status.HTTP_201_CREATED, responses=_errors)
def create_token(body: TokenIn, user: LoginUser, tokens: Tokens) -> CreatedTokenOut:
    token, secret = tokens.create(user, body.name, body.scope, body.expires_in)
    return CreatedTokenOut(**TokenOut.of(token).model_dump(), token=secret)


@router.get("", responses=_errors)
def list_tokens(user: LoginUser, tokens: Tokens) -> list[TokenOut]:
    """Your tokens (never their secrets), with when each was last used."""
    return [TokenOut.of(t) for t in tokens.list(user)]


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_errors)
def revoke_token(token_id: str, user: LoginUser, tokens: Tokens) -> Response:
    tokens.revoke(user, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
