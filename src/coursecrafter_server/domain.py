"""Domain records and errors. Knows nothing of FastAPI, SQLite, MongoDB or Redis."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Role(str, enum.Enum):
    INSTRUCTOR = "instructor"
    STUDENT = "student"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    id: str
    username: str
    email: str
    password_hash: str
    role: Role
    created_at: datetime


@dataclass(frozen=True)
class RefreshToken:
    """A refresh token as stored: only the SHA-256 of the secret, never the secret itself."""

    token_hash: str
    user_id: str
    family_id: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class DomainError(Exception):
    """Base of errors the API turns into `{"error": {"code", "message"}}` responses."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class AlreadyExists(DomainError):
    status_code = 409
    code = "conflict"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class InvalidCredentials(DomainError):
    status_code = 401
    code = "invalid_credentials"


class InvalidToken(DomainError):
    status_code = 401
    code = "invalid_token"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class WeakPassword(DomainError):
    status_code = 422
    code = "weak_password"


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "service_unavailable"
