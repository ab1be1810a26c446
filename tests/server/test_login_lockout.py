"""Login throttling that stops guessing without letting a stranger lock a user out (OWASP's
device cookies), through a real server behind a trusted proxy (X-Forwarded-For names the
client's address) and a real SQLite store."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
import httpx
import pytest
from livesupport import LiveServer, start_live_server

PASSWORD = "lecture hall 42"
_addresses = (f"198.51.{i // 250}.{i % 250 + 1}" for i in itertools.count())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_live_server(tmp_path_factory.mktemp("lockout"), {
        "COURSECRAFTER_TRUSTED_PROXIES": "127.0.0.1",
        "COURSECRAFTER_TRANSCODE_CONCURRENCY": "0",
        "COURSECRAFTER_LOGIN_RATE_LIMIT_ADDRESS": "1000/minute",
        "COURSECRAFTER_LOGIN_FAILURE_LIMIT_ACCOUNT_ADDRESS": "5/15 minutes",
        "COURSECRAFTER_LOGIN_FAILURE_LIMIT_ADDRESS": "8/hour",
        "COURSECRAFTER_LOGIN_RATE_LIMIT_ACCOUNT": "10/hour",
        "COURSECRAFTER_LOGIN_FAILURE_LIMIT_DEVICE": "3/15 minutes",
        "COURSECRAFTER_REGISTER_RATE_LIMIT_ADDRESS": "1000/minute",
    })
    yield live
    live.stop()


class Device:
    """One client: its own address (through the proxy) and its own cookie jar."""

    def __init__(self, server: LiveServer, address: str | None = None) -> None:
        self.http = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30,
                                 headers={"X-Forwarded-For": address or next(_addresses)})

    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        return self.http.post("/auth/login", json={"username": username, "password": password})


def register(server: LiveServer, name: str) -> None:
    response = Device(server).http.post("/auth/register", json={
        "username": name, "email": f"{name}@example.edu", "password": PASSWORD})
    assert response.status_code == 201, response.text


@pytest.fixture
def account(server: LiveServer) -> str:
    name = f"u{uuid.uuid4().hex[:12]}"  # the module shares one server and its counters
    register(server, name)
    return name


def test_a_strangers_guessing_from_one_address_is_stopped_and_does_not_lock_the_user_out(
        server, account):
    stranger = Device(server)
    statuses = [stranger.login(name, "wrong password!").status_code
                for name in [account, account.upper()] * 6]
    assert statuses == [401] * 5 + [429] * 7  # guessing stopped, whatever the case of the name
    assert stranger.login(account).status_code == 429  # the right password too, from there
    # The user, from their own address, on a client that never logged in before: unaffected.
    assert Device(server).login(account).status_code == 200


def test_a_device_that_logged_in_before_gets_in_while_the_account_is_under_attack(
        server, account):
    own = Device(server)
    first = own.login(account)
    assert first.status_code == 200 and "coursecrafter_device" in first.cookies
    # Guessing spread over many addresses reaches the per-account limit...
    statuses = [Device(server).login(account, "wrong password!").status_code for _ in range(11)]
    assert statuses == [401] * 10 + [429]
    # ...which holds every client without the device cookie back (including the owner on a new
    # device: OWASP's trade-off)...
    assert Device(server).login(account).status_code == 429
    # ...but not the device the owner logged in from before.
    again = own.login(account)
    assert again.status_code == 200, again.text
    assert own.http.get("/auth/me", headers={
        "Authorization": f"Bearer {again.json()['access_token']}"}).json()["username"] == account


def test_a_device_cookie_vouches_only_for_its_own_account(server, account):
    other = f"{account}x"
    register(server, other)
    device = Device(server)
    assert device.login(other).status_code == 200  # a cookie for `other`
    for _ in range(10):
        Device(server).login(account, "wrong password!")
    assert device.login(account).status_code == 429
    forged = Device(server)
    forged.http.cookies.set("coursecrafter_device", "made-up.0123abcd", path="/api/v1/auth")
    assert forged.login(account).status_code == 429


def test_guessing_on_a_known_device_is_limited_per_device(server, account):
    device = Device(server)
    assert device.login(account).status_code == 200
    statuses = [device.login(account, "wrong password!").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert Device(server).login(account).status_code == 200  # other clients are not held back


def test_spraying_many_accounts_from_one_address_is_stopped(server, account):
    sprayer = Device(server)
    statuses = [sprayer.login(f"{account}{i}", "Summer2026!").status_code
                for i in range(9)]
    assert statuses == [401] * 8 + [429]
    assert Device(server).login(account).status_code == 200


def test_the_reported_case_with_the_default_limits(tmp_path_factory):
    """The issue as reported: eleven wrong passwords for `bob` (and `BOB`) from somewhere else
    used to refuse bob's right password for 15 minutes."""
    live = start_live_server(tmp_path_factory.mktemp("defaults"), {
        "COURSECRAFTER_TRUSTED_PROXIES": "127.0.0.1", "COURSECRAFTER_TRANSCODE_CONCURRENCY": "0"})
    try:
        register(live, "bob")
        stranger = Device(live)
        statuses = [stranger.login(name, "wrong password!").status_code
                    for name in ["bob", "BOB"] * 6]
        assert statuses == [401] * 10 + [429] * 2
        assert Device(live).login("bob").status_code == 200
    finally:
        live.stop()
