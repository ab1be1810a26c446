"""Revocation list and rate limits: in memory, and against the real Redis (127.0.0.1:6379)."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from coursecrafter_server.domain import ServiceUnavailable
from coursecrafter_server.limits.memory import LimitsRateLimiter, MemoryRevocationList

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


redis_required = pytest.mark.skipif(not _redis_up(), reason="Redis is not running on 127.0.0.1:6379")


@pytest.fixture(params=["memory", pytest.param("redis", marks=[pytest.mark.redis, redis_required])])
def adapters(request):
    if request.param == "memory":
        return MemoryRevocationList(), LimitsRateLimiter()
    from coursecrafter_server.limits.redis import RedisRateLimiter, RedisRevocationList

    prefix = f"test-{uuid.uuid4().hex}"  # isolates runs sharing the one Redis
    return RedisRevocationList(REDIS_URL, prefix), RedisRateLimiter(REDIS_URL, prefix)


def test_revoked_jti_is_revoked_until_it_expires(adapters):
    revocations, _ = adapters
    revocations.revoke("a", int(time.time()) + 60)
    assert revocations.is_revoked("a") and not revocations.is_revoked("b")


def test_any_of_several_ids_revoked_counts(adapters):
    # A token is checked by its jti and its session's family marker in one call.
    revocations, _ = adapters
    revocations.revoke("fam:f1", int(time.time()) + 60)
    assert revocations.is_revoked("jti-x", "fam:f1")
    assert not revocations.is_revoked("jti-x", "fam:f2")


def test_revocation_entries_die_with_the_token(adapters):
    revocations, _ = adapters
    revocations.revoke("short", int(time.time()) + 1)
    time.sleep(2.1)
    assert not revocations.is_revoked("short")


def test_rate_limiter_counts_per_key_and_says_how_long_to_wait(adapters):
    _, limiter = adapters
    assert [limiter.hit("3/minute", "k1") for _ in range(3)] == [None, None, None]
    wait = limiter.hit("3/minute", "k1")
    assert wait is not None and 1 <= wait <= 61
    assert limiter.check("3/minute", "k1") is not None
    assert limiter.hit("3/minute", "k2") is None


@pytest.mark.redis
@redis_required
def test_revocation_is_shared_between_server_processes(home, app_factory):
    """Two API instances on one Redis: a logout on one is honoured by the other."""
    # One SQLite file and one Redis, as two processes of one deployment would share.
    shared = {"redis_url": REDIS_URL, "database_url": f"sqlite:///{home}/shared.sqlite3"}
    first, second = app_factory(**shared), app_factory(**shared)
    first.post("/api/v1/auth/register",
               json={"username": "ann", "email": "ann@example.edu", "password": "lecture hall 9"})
    tokens = first.post("/api/v1/auth/login",
                        json={"username": "ann", "password": "lecture hall 9"}).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert second.get("/api/v1/auth/me", headers=auth).status_code == 200
    assert first.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]},
                      headers=auth).status_code == 204
    assert second.get("/api/v1/auth/me", headers=auth).status_code == 401


def test_redis_down_fails_closed_for_revocation():
    from coursecrafter_server.limits.redis import RedisRevocationList

    revocations = RedisRevocationList(f"redis://127.0.0.1:{_closed_port()}/0")
    with pytest.raises(ServiceUnavailable):
        revocations.is_revoked("any")


def test_redis_down_keeps_limiting_in_process():
    from coursecrafter_server.limits.redis import RedisRateLimiter

    limiter = RedisRateLimiter(f"redis://127.0.0.1:{_closed_port()}/0")
    assert [limiter.hit("2/minute", "k") is None for _ in range(3)] == [True, True, False]


def test_api_with_redis_down_answers_503_not_200(app_factory):
    api = app_factory(redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    api.post("/api/v1/auth/register",
             json={"username": "ann", "email": "ann@example.edu", "password": "lecture hall 9"})
    tokens = api.post("/api/v1/auth/login",
                      json={"username": "ann", "password": "lecture hall 9"}).json()
    response = api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    ready = api.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("error")


def test_store_revocation_list_purges_dead_entries(tmp_path):
    """The embedded list lives in SQLite; each revoke drops entries whose tokens are dead."""
    import sqlite3

    from coursecrafter_server.limits.store import StoreRevocationList
    from coursecrafter_server.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "store.sqlite3")
    try:
        revocations = StoreRevocationList(store)
        now = int(time.time())
        revocations.revoke("dead", now - 10)
        revocations.revoke("live", now + 60)
        assert revocations.is_revoked("live") and not revocations.is_revoked("dead")
        with sqlite3.connect(tmp_path / "store.sqlite3") as raw:
            rows = raw.execute("SELECT token_id FROM revoked_tokens").fetchall()
        assert rows == [("live",)]
    finally:
        store.close()
