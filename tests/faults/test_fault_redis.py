"""Fault 6: Redis (revocation list, rate limits) goes away and comes back. The server reaches the
real Redis through a TCP proxy that we switch to "reset" (connection refused/reset: Redis down) or
"blackhole" (accepted, never answered: a partition), never touching the shared Redis server.

Expected (src/coursecrafter_server/limits/redis.py): revocation checks fail closed (503, never
200 for a revoked token); login keeps working with the rate limits counted in-process; /readyz
says redis is down; everything is back to normal when Redis returns."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from faultkit import PASSWORD, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.redis]


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def test_redis_outage_fails_closed_and_recovers(lab):
    if not _redis_reachable():
        pytest.skip("Redis is not reachable at 127.0.0.1:6379")
    proxy = lab.tcp_proxy(("127.0.0.1", 6379))
    server = lab.server(env={
        "COURSECRAFTER_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0",
        # Failed logins per account: small enough to see the in-process fallback at work.
        "COURSECRAFTER_LOGIN_RATE_LIMIT_ACCOUNT": "3/minute",
        # This client has logged in before (device cookie): its failures count per device.
        "COURSECRAFTER_LOGIN_FAILURE_LIMIT_DEVICE": "3/minute",
    })
    api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
    user = f"ada{int(time.time() * 1000) % 10**8}"  # rate-limit keys in the shared Redis
    assert api.post("/auth/register", json={"username": user, "email": f"{user}@example.edu",
                                            "password": PASSWORD}).status_code == 201

    def login(password: str = PASSWORD) -> httpx.Response:
        return api.post("/auth/login", json={"username": user, "password": password})

    def me(token: str) -> int:
        return api.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code

    revoked, live = login().json(), login().json()
    assert api.post("/auth/logout", json={"refresh_token": revoked["refresh_token"]},
                    headers={"Authorization": f"Bearer {revoked['access_token']}"}
                    ).status_code == 204
    assert me(revoked["access_token"]) == 401
    assert me(live["access_token"]) == 200
    assert server.readyz()[0] == 200

    # Redis down --------------------------------------------------------------------------
    proxy.pause("reset")
    answers = {me(revoked["access_token"]) for _ in range(5)}
    assert answers == {503}, answers  # never 200: fail closed
    response = api.get("/auth/me", headers={"Authorization": f"Bearer {live['access_token']}"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] and response.headers.get("Retry-After")
    status, ready = server.readyz()
    assert status == 503 and ready["checks"]["redis"].startswith("error"), ready
    assert ready["checks"]["store"] == "ok"

    # Login still works, limited in this process: 3 wrong passwords, then 429 even for the
    # right one.
    during = login()
    assert during.status_code == 200, during.text
    assert [login("wrong password!").status_code for _ in range(3)] == [401, 401, 401]
    limited = login()
    assert limited.status_code == 429 and limited.headers.get("Retry-After"), limited.text
    # Logging out cannot put the token on the revocation list: it says so instead of 204.
    assert api.post("/auth/logout", json={"refresh_token": during.json()["refresh_token"]},
                    headers={"Authorization": f"Bearer {during.json()['access_token']}"}
                    ).status_code == 503

    # A partition (connections hang) must not hang requests: the 0.5 s Redis timeouts apply.
    proxy.pause("blackhole")
    began = time.monotonic()
    assert me(revoked["access_token"]) == 503
    assert me(live["access_token"]) == 503
    hung = (time.monotonic() - began) / 2
    assert hung < 3, hung

    # Redis back ---------------------------------------------------------------------------
    proxy.resume()
    back = time.monotonic()
    wait_for(lambda: me(live["access_token"]) == 200, 15, interval=0.1, what="/auth/me 200")
    recovered = time.monotonic() - back
    assert me(revoked["access_token"]) == 401  # still revoked: it lived in Redis all along
    wait_for(lambda: server.readyz()[0] == 200, 15, interval=0.2, what="/readyz ok")
    assert server.readyz()[1]["checks"]["redis"] == "ok"
    assert "rate limit" in server.log() and "counted in this process only" in server.log()
    api.close()
    print(f"\nredis down: /auth/me 503 (revoked token never 200), login 200 with in-process "
          f"limits (429 after 3 failures), /readyz 503; blackhole answered in {hung:.2f}s; "
          f"/auth/me back to 200 {recovered:.2f}s after Redis returned")
