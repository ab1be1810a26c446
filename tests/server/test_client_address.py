"""Which address the rate limits count against, through a real `coursecrafter-server` (uvicorn's
own proxy-header handling is what decides it)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from livesupport import start_live_server

LIMIT = {"COURSECRAFTER_LOGIN_RATE_LIMIT_ADDRESS": "3/hour"}  # no window ends mid-test


def _attempt(url: str, forwarded_for: str) -> int:
    response = httpx.post(f"{url}/api/v1/auth/login", json={"username": "x", "password": "y"},
                          headers={"X-Forwarded-For": forwarded_for}, timeout=30)
    return response.status_code


@pytest.fixture
def server(tmp_path: Path, request):
    live = start_live_server(tmp_path / "home", {**LIMIT, **getattr(request, "param", {})})
    yield live
    live.stop()


def test_forwarded_for_from_loopback_is_ignored_by_default(server):
    # A client on loopback naming a new address each time still counts as itself.
    statuses = [_attempt(server.url, f"203.0.113.{i}") for i in range(4)]
    assert statuses == [401, 401, 401, 429]


@pytest.mark.parametrize("server", [{"COURSECRAFTER_TRUSTED_PROXIES": "10.9.0.0/16, 127.0.0.1"}],
                         indirect=True)
def test_forwarded_for_from_a_trusted_proxy_names_the_client(server):
    # Behind a trusted proxy, each forwarded client has its own budget...
    assert [_attempt(server.url, f"203.0.113.{i}") for i in range(4)] == [401] * 4
    # ...and one client is still limited whatever the proxy adds on its own side.
    statuses = [_attempt(server.url, "198.51.100.7") for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_a_bad_trusted_proxy_entry_stops_the_start(tmp_path: Path):
    with pytest.raises(RuntimeError, match="TRUSTED_PROXIES"):
        start_live_server(tmp_path / "home", {"COURSECRAFTER_TRUSTED_PROXIES": "not-an-address"})
