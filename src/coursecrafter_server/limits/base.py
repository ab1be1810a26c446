"""Ports for the revocation list and rate limits: in-process by default, Redis when configured."""

from __future__ import annotations

from typing import Protocol


class RevocationList(Protocol):
    def revoke(self, jti: str, expires_at: int) -> None:
        """Remember `jti` (a token id, or a `fam:<family id>` marker) as revoked until the unix
        time `expires_at` (when the tokens it covers die anyway)."""

    def is_revoked(self, *ids: str) -> bool:
        """Whether any of `ids` is revoked (one round trip for a token's jti and family).
        Raise `ServiceUnavailable` when the list cannot be consulted: never answer False blind."""

    def ping(self) -> None: ...


class RateLimiter(Protocol):
    def hit(self, limit: str, key: str) -> int | None:
        """Count one event under `key`; return None when within `limit`, else seconds to wait."""

    def check(self, limit: str, key: str) -> int | None:
        """Like hit, without counting."""
