"""The store port: what the application needs from a database, and nothing more.

Two adapters implement it (`sqlite.SQLiteStore`, `mongo.MongoStore`); `memory.MemoryStore` is the
in-memory fake for unit tests. All run the same contract tests (tests/test_store_contract.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from coursecrafter_server.domain import RefreshToken, User


class Store(Protocol):
    def ping(self) -> None:
        """Raise if the database cannot be reached."""

    def close(self) -> None: ...

    # Users -------------------------------------------------------------------------------
    def add_user(self, user: User) -> None:
        """Insert; raise `AlreadyExists` naming the field when username or email is taken
        (case-insensitive)."""

    def get_user(self, user_id: str) -> User | None: ...

    def get_user_by_username(self, username: str) -> User | None:
        """Case-insensitive."""

    def count_users(self) -> int: ...

    # Refresh tokens ---------------------------------------------------------------------
    def add_refresh_token(self, token: RefreshToken) -> None: ...

    def get_refresh_token(self, token_hash: str) -> RefreshToken | None: ...

    def mark_refresh_token_used(self, token_hash: str, when: datetime) -> bool:
        """Atomically set `used_at` if it is unset. True when this call used it; False when it
        was already used (or does not exist): the caller treats that as reuse."""

    def revoke_refresh_family(self, family_id: str, when: datetime) -> int:
        """Revoke every token of the family; return how many were newly revoked."""

    def is_refresh_family_revoked(self, family_id: str) -> bool: ...

    def delete_expired_refresh_tokens(self, now: datetime) -> int: ...
