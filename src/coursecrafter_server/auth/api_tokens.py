"""Automation tokens (`cct_...`, like gh's personal access tokens): a lecture-capture machine or a
CI job uploads without a password.

The secret is 32 random bytes behind the recognisable prefix `cct_`; it is shown once, when it
is created, and only its SHA-256 is stored (a fast hash is enough for a random 256-bit secret,
as for refresh tokens). Presented as `Authorization: Bearer cct_...`, it stands for its owner
with the rights of its scope (api/deps.py enforces them): `upload` creates and completes uploads
and reads videos and courses; `read` only reads. It never makes or revokes tokens, logs in, or
changes anything else. An expired or revoked (deleted) token is refused with 401. Its last use is
recorded at most once per `LAST_USED_INTERVAL`, with one conditional write.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from datetime import datetime, timedelta, timezone
from typing import Protocol

from coursecrafter_server.domain import (
    AlreadyExists,
    ApiToken,
    InvalidToken,
    NotFound,
    TokenScope,
    User,
)
from coursecrafter_server.store.base import ApiTokenStore, UserStore

log = logging.getLogger(__name__)

PREFIX = "cct_"
LAST_USED_INTERVAL = timedelta(seconds=60)
MAX_TOKENS_PER_USER = 100
_SHAPE = re.compile(r"^cct_[A-Za-z0-9_-]{43}$")


def is_api_token(credential: str) -> bool:
    """Whether a bearer credential is meant as an automation token (by its prefix)."""
    return credential.startswith(PREFIX)


def hash_api_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class AccountTokenStore(ApiTokenStore, UserStore, Protocol):
    """Automation tokens and the accounts that own them."""


class ApiTokenService:
    def __init__(self, store: AccountTokenStore) -> None:
        self.store = store

    def create(self, user: User, name: str, scope: TokenScope,
               expires_in: int | None) -> tuple[ApiToken, str]:
        """A new token of `user`; returns the record and the secret (never stored)."""
        if len(self.store.list_api_tokens(user.id)) >= MAX_TOKENS_PER_USER:
            raise AlreadyExists(
                f"you have {MAX_TOKENS_PER_USER} tokens already; revoke some first")
        now = _now()
        secret = PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(
            id=uuid.uuid4().hex, user_id=user.id, name=name, token_hash=hash_api_token(secret),
            scope=TokenScope(scope), created_at=now,
            expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
        )
        self.store.add_api_token(token)
        log.info("user %s created automation token %s (%s)", user.id, token.id, token.scope.value)
        return token, secret

    def list(self, user: User) -> list[ApiToken]:
        return self.store.list_api_tokens(user.id)

    def revoke(self, user: User, token_id: str) -> None:
        """Delete one of `user`'s tokens; another user's (or an unknown one) is not found."""
        if not self.store.delete_api_token(token_id, user.id):
            raise NotFound("token not found")
        log.info("user %s revoked automation token %s", user.id, token_id)

    def authenticate(self, secret: str) -> tuple[User, ApiToken]:
        """The owner and the token for a presented secret; InvalidToken (401) otherwise."""
        if not _SHAPE.match(secret):
            raise InvalidToken("automation token is invalid")
        digest = hash_api_token(secret)
        token = self.store.get_api_token_by_hash(digest)
        # The lookup is by hash (an index); the comparison of what was found is constant-time.
        if token is None or not hmac.compare_digest(token.token_hash, digest):
            raise InvalidToken("automation token is invalid or has been revoked")
        now = _now()
        if token.expires_at is not None and token.expires_at <= now:
            raise InvalidToken("automation token has expired")
        user = self.store.get_user(token.user_id)
        if user is None:
            raise InvalidToken("automation token is invalid or has been revoked")
        if token.last_used_at is None or token.last_used_at <= now - LAST_USED_INTERVAL:
            self.store.touch_api_token(token.id, now, unless_after=now - LAST_USED_INTERVAL)
        return user, token
