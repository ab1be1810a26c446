"""In-process revocation list and rate limiter (embedded default; one server process)."""

from __future__ import annotations

import threading
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class MemoryRevocationList:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked: dict[str, int] = {}

    def revoke(self, jti: str, expires_at: int) -> None:
        with self._lock:
            now = time.time()
            # Drop dead entries as we go so the dict stays the size of the live-token window.
            for key in [k for k, exp in self._revoked.items() if exp < now]:
                del self._revoked[key]
            self._revoked[jti] = expires_at

    def is_revoked(self, *ids: str) -> bool:
        now = time.time()
        return any((exp := self._revoked.get(i)) is not None and exp >= now for i in ids)

    def ping(self) -> None:
        return None


class LimitsRateLimiter:
    """Adapter over the `limits` library; the storage decides memory or Redis."""

    def __init__(self, storage: object | None = None) -> None:
        self._limiter = MovingWindowRateLimiter(storage or MemoryStorage())

    def hit(self, limit: str, key: str) -> int | None:
        item = parse(limit)
        if self._limiter.hit(item, key):
            return None
        return self._retry_after(item, key)

    def check(self, limit: str, key: str) -> int | None:
        item = parse(limit)
        if self._limiter.test(item, key):
            return None
        return self._retry_after(item, key)

    def _retry_after(self, item: object, key: str) -> int:
        stats = self._limiter.get_window_stats(item, key)  # type: ignore[arg-type]
        return max(1, int(stats.reset_time - time.time()) + 1)
