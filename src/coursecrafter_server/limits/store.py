"""Revocation list kept in the store: the embedded default (no Redis), so a logout survives a
server restart. One indexed lookup per authenticated request, like the user lookup beside it."""

from __future__ import annotations

from datetime import datetime, timezone

from coursecrafter_server.store.base import RevocationStore


class StoreRevocationList:
    def __init__(self, store: RevocationStore) -> None:
        self._store = store

    def revoke(self, jti: str, expires_at: int) -> None:
        now = datetime.now(timezone.utc)
        # Revocations are rare (logout, reuse): purging dead entries here keeps the table the
        # size of the live-token window without a sweeper step.
        self._store.delete_expired_revocations(now)
        self._store.add_revocation(jti, datetime.fromtimestamp(expires_at, timezone.utc))

    def is_revoked(self, *ids: str) -> bool:
        return self._store.any_revoked(list(ids), datetime.now(timezone.utc))

    def ping(self) -> None:
        return None
