"""The SDK ``Client`` against the fake auth API (through ``httpx.MockTransport``)."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import httpx
import pytest
from cli_fakes import FakeAuthAPI, MemoryKeyring

from coursecrafter_cli import (
    Client,
    Conflict,
    Credentials,
    LocalCredentialStore,
    MemoryCredentialStore,
    NotLoggedIn,
    RateLimited,
    TransportError,
    ValidationError,
)
from coursecrafter_cli.credentials import CREDENTIALS_FILE, KEYRING_SERVICE

URL = "http://127.0.0.1:8000"
PASSWORD = "s3cret-pass!"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_login_saves_credentials_privately_and_prints_nothing(
    fake: FakeAuthAPI, transport: httpx.MockTransport, config_dir: Path,
    memory_keyring: MemoryKeyring, capfd: pytest.CaptureFixture[str],
) -> None:
    with Client(transport=transport) as cc:
        assert cc.login("alice", PASSWORD) == {"username": "alice", "api_url": URL}
        assert cc.whoami()["username"] == "alice"
        assert cc.username == "alice"

    creds_file = config_dir / CREDENTIALS_FILE
    assert mode(creds_file) == 0o600
    assert mode(config_dir) == 0o700
    saved = json.loads(creds_file.read_text())
    assert saved["api_url"] == URL and saved["username"] == "alice"
    assert saved["refresh_token_store"] == "keyring"
    access, refresh = fake.issued
    assert saved["access_token"] == access
    assert refresh not in creds_file.read_text()  # the refresh token lives in the keyring
    assert memory_keyring.entries == {(KEYRING_SERVICE, f"alice@{URL}"): refresh}
    for path in config_dir.iterdir():
        assert mode(path) & 0o077 == 0, path

    out, err = capfd.readouterr()
    for secret in [PASSWORD, *fake.issued]:
        assert secret not in out + err


def test_session_survives_a_new_client_and_api_url_is_remembered(
    fake: FakeAuthAPI, transport: httpx.MockTransport
) -> None:
    with Client("http://cc.example:9000/", transport=transport) as cc:
        assert cc.api_url == "http://cc.example:9000"
        cc.login("alice", PASSWORD)
    with Client(transport=transport) as cc:  # no url: the one saved at login
        assert cc.api_url == "http://cc.example:9000"
        assert cc.whoami()["email"] == "alice@example.com"
    assert fake.endpoint_calls("POST /auth/login") == 1


def test_refreshes_before_expiry(fake: FakeAuthAPI, transport: httpx.MockTransport) -> None:
    fake.expires_in = 0  # already expiring: the next call must refresh first
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
        fake.expires_in = 900
        assert cc.whoami()["username"] == "alice"
        assert cc.whoami()["username"] == "alice"
    assert fake.calls == ["POST /auth/login", "POST /auth/refresh", "GET /auth/me", "GET /auth/me"]


def test_refreshes_when_the_clock_nears_expiry(
    fake: FakeAuthAPI, transport: httpx.MockTransport
) -> None:
    clock = Clock()
    with Client(transport=transport, clock=clock) as cc:
        cc.login("alice", PASSWORD)
        cc.whoami()
        clock.now += 830  # 70 s left: still fresh
        cc.whoami()
        assert fake.refresh_count == 0
        clock.now += 20  # 50 s left: refresh first
        cc.whoami()
    assert fake.refresh_count == 1
    assert fake.calls[-2:] == ["POST /auth/refresh", "GET /auth/me"]


def test_refreshes_once_on_401_then_retries(
    fake: FakeAuthAPI, transport: httpx.MockTransport, memory_keyring: MemoryKeyring
) -> None:
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
        first_refresh = fake.issued[1]
        fake.expire_access_tokens()
        assert cc.whoami()["username"] == "alice"
    assert fake.calls == ["POST /auth/login", "GET /auth/me", "POST /auth/refresh", "GET /auth/me"]
    # the rotated refresh token replaced the old one in the keyring
    (stored,) = memory_keyring.entries.values()
    assert stored != first_refresh and stored == fake.issued[-1]


def test_rejected_refresh_clears_the_session(
    fake: FakeAuthAPI, transport: httpx.MockTransport, config_dir: Path,
    memory_keyring: MemoryKeyring,
) -> None:
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
        fake.revoke_all_sessions()  # e.g. logged out elsewhere
        with pytest.raises(NotLoggedIn, match="run `coursecrafter login`") as info:
            cc.whoami()
        assert info.value.status_code == 401
        assert not (config_dir / CREDENTIALS_FILE).exists()
        assert memory_keyring.entries == {}
        calls = len(fake.calls)
        with pytest.raises(NotLoggedIn):
            cc.whoami()
        assert len(fake.calls) == calls  # no request without a session
    for secret in fake.issued:
        assert secret not in str(info.value) and secret not in repr(info.value)


def test_not_logged_in_without_any_request(fake: FakeAuthAPI, transport: httpx.MockTransport) -> None:
    with Client(transport=transport) as cc, pytest.raises(NotLoggedIn, match="not logged in to"):
        cc.whoami()
    assert fake.calls == []


def test_session_of_another_server_is_not_used(
    fake: FakeAuthAPI, transport: httpx.MockTransport
) -> None:
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
    with Client("http://other.example", transport=transport) as cc, pytest.raises(NotLoggedIn):
        cc.whoami()


def test_fake_api_detects_refresh_token_reuse(
    fake: FakeAuthAPI, transport: httpx.MockTransport
) -> None:
    """Control: two clients that do NOT share a lock replay the token and get logged out."""
    store_a = MemoryCredentialStore()
    with Client(transport=transport, credential_store=store_a) as a:
        a.login("alice", PASSWORD)
    copy = store_a.load()
    assert copy is not None
    store_b = MemoryCredentialStore(copy)
    fake.expire_access_tokens()
    with Client(transport=transport, credential_store=store_a) as a:
        a.whoami()
    with Client(transport=transport, credential_store=store_b) as b, pytest.raises(NotLoggedIn):
        b.whoami()
    assert fake.reuse_detected == 1


@pytest.mark.parametrize("trigger", ["expiry", "401"])
def test_concurrent_clients_sharing_a_config_dir_refresh_once(
    fake: FakeAuthAPI, transport: httpx.MockTransport, trigger: str
) -> None:
    if trigger == "expiry":
        fake.expires_in = 0
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
    fake.expires_in = 900
    fake.refresh_delay = 0.2  # keep the lock held while the others pile up
    if trigger == "401":
        fake.expire_access_tokens()

    clients = [Client(transport=transport) for _ in range(4)]  # each its own store object
    barrier = threading.Barrier(len(clients))
    results: list[object] = []

    def work(c: Client) -> None:
        barrier.wait()
        try:
            results.append(c.whoami()["username"])
        except Exception as exc:  # collected, asserted below
            results.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for c in clients:
        c.close()

    assert results == ["alice"] * 4
    assert fake.refresh_count == 1
    assert fake.reuse_detected == 0
    assert len(set(fake.refresh_presented)) == len(fake.refresh_presented)


def test_one_client_many_threads_refresh_once(
    fake: FakeAuthAPI, transport: httpx.MockTransport
) -> None:
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
        fake.expire_access_tokens()
        fake.refresh_delay = 0.1
        threads = [threading.Thread(target=cc.whoami) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert fake.refresh_count == 1 and fake.reuse_detected == 0


def test_a_client_with_stale_tokens_picks_up_another_process_rotation(
    fake: FakeAuthAPI, transport: httpx.MockTransport
) -> None:
    fake.expires_in = 0
    with Client(transport=transport) as a:
        a.login("alice", PASSWORD)
    b = Client(transport=transport)
    b.username  # B loads the session now (its access token is already expiring)
    with Client(transport=transport) as a:
        a.whoami()  # A rotates
    assert fake.refresh_count == 1
    b.whoami()  # B must not present the rotated token again
    b.close()
    assert fake.reuse_detected == 0
    assert len(set(fake.refresh_presented)) == len(fake.refresh_presented)


def test_memory_store_keeps_nothing_on_disk(
    fake: FakeAuthAPI, transport: httpx.MockTransport, config_dir: Path,
    memory_keyring: MemoryKeyring,
) -> None:
    store = MemoryCredentialStore()
    with Client(transport=transport, credential_store=store) as cc:
        cc.login("alice", PASSWORD)
        fake.expire_access_tokens()
        assert cc.whoami()["username"] == "alice"
    assert not config_dir.exists()
    assert memory_keyring.entries == {}
    creds = store.load()
    assert isinstance(creds, Credentials) and creds.refresh_token == fake.issued[-1]


def test_error_mapping_through_the_api(fake: FakeAuthAPI, transport: httpx.MockTransport) -> None:
    with Client(transport=transport) as cc:
        with pytest.raises(Conflict) as conflict:
            cc.register("alice", "a@example.com", "long-enough-pw")
        assert (conflict.value.status_code, conflict.value.code) == (409, "conflict")
        with pytest.raises(ValidationError) as weak:
            cc.register("bob", "bob@example.com", "short")
        assert (weak.value.code, weak.value.fields) == ("weak_password", None)
        with pytest.raises(ValidationError) as invalid:
            cc.register("bob", "not-an-email", "long-enough-pw")
        assert invalid.value.fields == [
            {"field": "email", "message": "value is not a valid email address"}]
        assert cc.register("bob", "bob@example.com", "long-enough-pw")["role"] == "instructor"
        fake.login_retry_after = 7
        with pytest.raises(RateLimited) as limited:
            cc.login("bob", "long-enough-pw")
        assert limited.value.retry_after == 7


def test_logout_revokes_and_clears(
    fake: FakeAuthAPI, transport: httpx.MockTransport, config_dir: Path,
    memory_keyring: MemoryKeyring,
) -> None:
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
        assert cc.logout() is True
        assert cc.username is None
        assert cc.logout() is False  # nothing left to do
    assert len(fake.revoked_families) == 1
    assert not (config_dir / CREDENTIALS_FILE).exists()
    assert memory_keyring.entries == {}


def test_logout_clears_even_when_the_server_is_down(
    fake: FakeAuthAPI, transport: httpx.MockTransport, config_dir: Path,
    memory_keyring: MemoryKeyring,
) -> None:
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
        fake.down = True
        assert cc.logout() is False
    assert not (config_dir / CREDENTIALS_FILE).exists()
    assert memory_keyring.entries == {}


def test_logout_with_expired_access_token_refreshes_first(
    fake: FakeAuthAPI, transport: httpx.MockTransport
) -> None:
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
        fake.expire_access_tokens()
        assert cc.logout() is True
    assert fake.calls[1:] == ["POST /auth/logout", "POST /auth/refresh", "POST /auth/logout"]
    assert fake.reuse_detected == 0 and len(fake.revoked_families) == 1


def test_unreachable_server(fake: FakeAuthAPI, transport: httpx.MockTransport) -> None:
    fake.down = True
    with Client(transport=transport) as cc, pytest.raises(TransportError) as info:
        cc.login("alice", PASSWORD)
    assert str(info.value).startswith(f"cannot reach the CourseCrafter server at {URL}: ")
    assert PASSWORD not in repr(info.value)


def test_unreachable_during_refresh_keeps_the_session(
    fake: FakeAuthAPI, transport: httpx.MockTransport, config_dir: Path
) -> None:
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
        fake.expire_access_tokens()
        fake.down = True
        with pytest.raises(TransportError):
            cc.whoami()
        assert (config_dir / CREDENTIALS_FILE).exists()
        fake.down = False
        assert cc.whoami()["username"] == "alice"


def test_generic_request_for_later_features(
    fake: FakeAuthAPI, transport: httpx.MockTransport
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/courses":
            seen.append(request)
            return httpx.Response(201, json={"id": "c1", "title": "Algebra"})
        return fake.handler(request)

    with Client(transport=httpx.MockTransport(handler)) as cc:
        cc.login("alice", PASSWORD)
        assert cc.request_json("POST", "/courses", json={"title": "Algebra"}) == {
            "id": "c1", "title": "Algebra"}
        assert seen[0].headers["Authorization"] == f"Bearer {fake.issued[0]}"
        anon = cc.request("POST", "/courses", authenticated=False)
        assert "Authorization" not in anon.request.headers
        with pytest.raises(ValueError, match="outside the API server"):
            cc.request("GET", "https://storage.example/bucket/key")


def test_reprs_never_show_tokens(fake: FakeAuthAPI, transport: httpx.MockTransport) -> None:
    store = LocalCredentialStore()
    with Client(transport=transport, credential_store=store) as cc:
        cc.login("alice", PASSWORD)
        creds = store.load()
        text = " ".join([repr(creds), str(creds), repr(cc), repr(store),
                         repr(MemoryCredentialStore(creds))])
    assert "alice" in text
    for secret in fake.issued:
        assert secret not in text


def test_short_lived_tokens_refresh_in_their_second_half(
    fake: FakeAuthAPI, transport: httpx.MockTransport
) -> None:
    """A 30 s token is not refreshed on every call (that would trip refresh rate limits)."""
    fake.expires_in = 30
    clock = Clock()
    with Client(transport=transport, clock=clock) as cc:
        cc.login("alice", PASSWORD)
        clock.now += 14
        cc.whoami()
        assert fake.refresh_count == 0
        clock.now += 2  # 14 s left < 15 s
        cc.whoami()
        assert fake.refresh_count == 1
