"""Redis-backed revocation list and rate limiter, shared by every server process.

Degradation when Redis is unreachable (documented in README "Redis down"):
- revocation checks fail closed: `ServiceUnavailable` (503), so a revoked token is never let in;
- rate limits fall back to this process's in-memory limiter, so login stays limited per process.
"""

from __future__ import annotations

import logging

import redis
from limits.storage import RedisStorage

from coursecrafter_server.domain import ServiceUnavailable
from coursecrafter_server.limits.memory import LimitsRateLimiter

log = logging.getLogger(__name__)

_TIMEOUTS = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}


class RedisRevocationList:
    def __init__(self, url: str, prefix: str = "coursecrafter") -> None:
        self._redis = redis.Redis.from_url(url, **_TIMEOUTS)
        self._prefix = f"{prefix}:revoked:"

    def revoke(self, jti: str, expires_at: int) -> None:
        try:
            self._redis.set(self._prefix + jti, b"1", exat=max(expires_at, 1))
        except redis.RedisError as exc:
            raise ServiceUnavailable("revocation list unavailable; try again") from exc

    def is_revoked(self, *ids: str) -> bool:
        try:
            return bool(ids) and bool(self._redis.exists(*(self._prefix + i for i in ids)))
        except redis.RedisError as exc:
            raise ServiceUnavailable(
                "cannot check token revocation right now; try again", headers={"Retry-After": "5"}
            ) from exc

    def ping(self) -> None:
        self._redis.ping()


class RedisRateLimiter:
    def __init__(self, url: str, prefix: str = "coursecrafter") -> None:
        storage = RedisStorage(url, key_prefix=f"{prefix}:limits", **_TIMEOUTS)
        self._shared = LimitsRateLimiter(storage)
        self._local = LimitsRateLimiter()

    def hit(self, limit: str, key: str) -> int | None:
        try:
            return self._shared.hit(limit, key)
        except redis.RedisError:
            log.warning("redis unreachable: rate limit %s counted in this process only", limit)
            return self._local.hit(limit, key)

    def check(self, limit: str, key: str) -> int | None:
        try:
            return self._shared.check(limit, key)
        except redis.RedisError:
            return self._local.check(limit, key)
