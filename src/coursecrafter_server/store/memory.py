"""In-memory fake of the store port, for unit tests. Same contract as the real adapters."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime

from coursecrafter_server.domain import AlreadyExists, RefreshToken, User


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self._tokens: dict[str, RefreshToken] = {}
        self._revoked_families: set[str] = set()

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None

    def add_user(self, user: User) -> None:
        with self._lock:
            if user.id in self._users:  # never silently replace another account
                raise AlreadyExists("user already exists")
            # Every username before any email, so the message is the same as the real adapters'.
            if any(o.username.lower() == user.username.lower() for o in self._users.values()):
                raise AlreadyExists("username is already taken")
            if any(o.email.lower() == user.email.lower() for o in self._users.values()):
                raise AlreadyExists("email is already registered")
            self._users[user.id] = user

    def get_user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def get_user_by_username(self, username: str) -> User | None:
        wanted = username.lower()
        # Under the lock: iterating while another thread inserts raises RuntimeError.
        with self._lock:
            return next((u for u in self._users.values() if u.username.lower() == wanted), None)

    def count_users(self) -> int:
        return len(self._users)

    def add_refresh_token(self, token: RefreshToken) -> None:
        with self._lock:
            if token.token_hash in self._tokens:  # as the real adapters' unique key does
                raise AlreadyExists("refresh token already exists")
            self._tokens[token.token_hash] = token

    def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        return self._tokens.get(token_hash)

    def mark_refresh_token_used(self, token_hash: str, when: datetime) -> bool:
        with self._lock:
            token = self._tokens.get(token_hash)
            if token is None or token.used_at is not None:
                return False
            self._tokens[token_hash] = dataclasses.replace(token, used_at=when)
            return True

    def revoke_refresh_family(self, family_id: str, when: datetime) -> int:
        with self._lock:
            self._revoked_families.add(family_id)
            count = 0
            for key, token in self._tokens.items():
                if token.family_id == family_id and token.revoked_at is None:
                    self._tokens[key] = dataclasses.replace(token, revoked_at=when)
                    count += 1
            return count

    def is_refresh_family_revoked(self, family_id: str) -> bool:
        return family_id in self._revoked_families

    def delete_expired_refresh_tokens(self, now: datetime) -> int:
        with self._lock:
            expired = [k for k, t in self._tokens.items() if t.expires_at <= now]
            for key in expired:
                del self._tokens[key]
            return len(expired)
