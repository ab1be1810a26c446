"""Fixtures of the CLI/SDK tests: an isolated config dir and keyring, and a fake auth API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import keyring
import pytest
from cli_fakes import FakeAuthAPI, MemoryKeyring


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own config dir and an in-memory keyring; no ambient settings."""
    config_dir = tmp_path / "config"
    monkeypatch.setenv("COURSECRAFTER_CONFIG_DIR", str(config_dir))
    for var in ("COURSECRAFTER_API_URL", "COURSECRAFTER_CREDENTIAL_STORE", "COURSECRAFTER_TOKEN",
                "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(var, raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        yield config_dir
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def config_dir(isolated_env: Path) -> Path:
    return isolated_env


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    kr = keyring.get_keyring()
    assert isinstance(kr, MemoryKeyring)
    return kr


@pytest.fixture
def fake() -> FakeAuthAPI:
    api = FakeAuthAPI()
    api.add_user("alice", "s3cret-pass!")
    return api


@pytest.fixture
def transport(fake: FakeAuthAPI) -> httpx.MockTransport:
    return httpx.MockTransport(fake.handler)
