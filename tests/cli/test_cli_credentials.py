"""Credential storage: keyring vs 0600 file fallback, and config resolution."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import keyring
import pytest
from cli_fakes import FakeAuthAPI, MemoryKeyring
from keyring.backends import fail

from coursecrafter_cli import Client, CredentialStoreError, Credentials, LocalCredentialStore
from coursecrafter_cli.config import DEFAULT_API_URL, config_dir, resolve_api_url
from coursecrafter_cli.credentials import CREDENTIALS_FILE, REFRESH_TOKENS_FILE

PASSWORD = "s3cret-pass!"
WARNING = "warning: no OS keyring available; storing the refresh token in"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class BrokenKeyring(MemoryKeyring):
    """A keyring that is installed but fails (locked, no D-Bus session...)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("no D-Bus session")


@pytest.fixture(params=["fail-backend", "raising-backend"])
def no_keyring(request: pytest.FixtureRequest) -> None:
    keyring.set_keyring(fail.Keyring() if request.param == "fail-backend" else BrokenKeyring())


@pytest.mark.usefixtures("no_keyring")
def test_file_fallback_warns_once_and_is_private(
    fake: FakeAuthAPI, transport: httpx.MockTransport, config_dir: Path,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    fake.expires_in = 0  # every call refreshes: the file is rewritten each time
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
        cc.whoami()
        cc.whoami()
    assert fake.refresh_count == 2 and fake.reuse_detected == 0

    # The SDK logs the warning (once), never prints it; the CLI shows it as a `warning:` line.
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    warnings = [r for r in caplog.records if r.name == "coursecrafter_cli"]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    line = "warning: " + warnings[0].getMessage()
    assert line.startswith(WARNING)
    assert str(config_dir / REFRESH_TOKENS_FILE) in line and "(mode 0600)" in line

    tokens_file = config_dir / REFRESH_TOKENS_FILE
    assert mode(tokens_file) == 0o600
    assert mode(config_dir / CREDENTIALS_FILE) == 0o600
    assert json.loads(tokens_file.read_text()) == {"alice@http://127.0.0.1:8000": fake.issued[-1]}
    saved = json.loads((config_dir / CREDENTIALS_FILE).read_text())
    assert saved["refresh_token_store"] == "file"
    for secret in fake.issued:
        assert secret not in err

    with Client(transport=transport) as cc:
        assert cc.logout() is True
    assert not tokens_file.exists() and not (config_dir / CREDENTIALS_FILE).exists()


def test_forced_file_store_does_not_warn(
    fake: FakeAuthAPI, transport: httpx.MockTransport, config_dir: Path,
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COURSECRAFTER_CREDENTIAL_STORE", "file")
    with Client(transport=transport) as cc:
        cc.login("alice", PASSWORD)
    assert capsys.readouterr().err == ""
    assert memory_keyring.entries == {}
    assert mode(config_dir / REFRESH_TOKENS_FILE) == 0o600


def test_forced_keyring_without_one_is_an_error(
    fake: FakeAuthAPI, transport: httpx.MockTransport, config_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COURSECRAFTER_CREDENTIAL_STORE", "keyring")
    keyring.set_keyring(fail.Keyring())
    with Client(transport=transport) as cc, pytest.raises(CredentialStoreError, match="keyring"):
        cc.login("alice", PASSWORD)
    assert not (config_dir / REFRESH_TOKENS_FILE).exists()


def test_bad_store_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSECRAFTER_CREDENTIAL_STORE", "vault")
    with pytest.raises(CredentialStoreError, match="auto, keyring or file"):
        LocalCredentialStore()


def test_files_are_created_0600_even_with_a_permissive_umask(config_dir: Path) -> None:
    old = os.umask(0)
    try:
        store = LocalCredentialStore(backend="file", warn=lambda _: None)
        store.save(Credentials("http://h", "alice", "acc", "ref", 1.0))
    finally:
        os.umask(old)
    assert mode(config_dir) == 0o700
    assert mode(config_dir / CREDENTIALS_FILE) == 0o600
    assert mode(config_dir / REFRESH_TOKENS_FILE) == 0o600
    assert store.load() == Credentials("http://h", "alice", "acc", "ref", 1.0)


def test_login_as_someone_else_replaces_the_old_entry(memory_keyring: MemoryKeyring) -> None:
    store = LocalCredentialStore()
    store.save(Credentials("http://h", "alice", "a1", "r1", 1.0))
    store.save(Credentials("http://h", "bob", "a2", "r2", 1.0))
    assert list(memory_keyring.entries.values()) == ["r2"]
    loaded = store.load()
    assert loaded is not None and loaded.username == "bob"
    store.clear()
    assert memory_keyring.entries == {} and store.load() is None


def test_corrupt_credentials_file_is_no_session(config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / CREDENTIALS_FILE).write_text("{not json")
    assert LocalCredentialStore().load() is None


def test_config_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert config_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("COURSECRAFTER_CONFIG_DIR", str(tmp_path / "env"))
    assert config_dir() == tmp_path / "env"
    monkeypatch.delenv("COURSECRAFTER_CONFIG_DIR")
    assert config_dir().name == "coursecrafter"


def test_api_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_api_url() == DEFAULT_API_URL == "http://127.0.0.1:8000"
    assert resolve_api_url(saved="http://saved") == "http://saved"
    monkeypatch.setenv("COURSECRAFTER_API_URL", "http://env/")
    assert resolve_api_url(saved="http://saved") == "http://env"
    assert resolve_api_url("https://explicit//", saved="http://saved") == "https://explicit"
    with pytest.raises(ValueError):
        resolve_api_url("ftp://nope")


def test_env_api_url_beats_saved_session(
    fake: FakeAuthAPI, transport: httpx.MockTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Client("http://saved.example", transport=transport) as cc:
        cc.login("alice", PASSWORD)
    monkeypatch.setenv("COURSECRAFTER_API_URL", "http://env.example")
    with Client(transport=transport) as cc:
        assert cc.api_url == "http://env.example"
        assert cc.username is None


def test_profiles_keep_separate_sessions_of_the_same_account(
    memory_keyring: MemoryKeyring, config_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = LocalCredentialStore()
    laptop = LocalCredentialStore(profile="laptop")
    default.save(Credentials("http://h", "alice", "a1", "r1", 1.0))
    laptop.save(Credentials("http://h", "alice", "a2", "r2", 1.0))
    # Two keyring entries (the default profile keeps its pre-profile key), two files.
    assert memory_keyring.entries == {
        ("coursecrafter", "alice@http://h"): "r1",
        ("coursecrafter", "alice@http://h [profile laptop]"): "r2",
    }
    assert laptop.credentials_path == config_dir / "profiles" / "laptop" / CREDENTIALS_FILE
    laptop.clear()
    assert laptop.load() is None
    assert default.load() == Credentials("http://h", "alice", "a1", "r1", 1.0)
    monkeypatch.setenv("COURSECRAFTER_PROFILE", "laptop")
    assert LocalCredentialStore().profile == "laptop"
    with pytest.raises(ValueError, match="invalid profile name"):
        LocalCredentialStore(profile="../x")


def test_the_sdk_client_takes_a_profile(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coursecrafter_cli import Client

    store = LocalCredentialStore(profile="school", backend="file", warn=lambda _: None)
    store.save(Credentials("http://cc.school.edu", "bob", "acc", "ref", 1.0))
    with Client(credential_store=LocalCredentialStore(profile="school")) as cc:
        assert cc.api_url == "http://cc.school.edu"  # the url that profile logged in to
    monkeypatch.setenv("COURSECRAFTER_PROFILE", "school")
    with Client() as cc:
        assert cc.api_url == "http://cc.school.edu"
        assert cc.credential_store.profile == "school"  # type: ignore[attr-defined]
    monkeypatch.delenv("COURSECRAFTER_PROFILE")
    with Client() as cc:
        assert cc.api_url == "http://127.0.0.1:8000"  # the default profile holds no login
