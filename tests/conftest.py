from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests must never read a developer's real config or data.
os.environ.pop("COURSECRAFTER_API_URL", None)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings_factory(home: Path):
    from coursecrafter_server.settings import Settings

    def make(**overrides: object) -> Settings:
        base: dict[str, object] = {
            "home": home,
            "database_url": "memory://",
            "public_url": "http://127.0.0.1:8000",
            "login_rate_limit_address": "1000/minute",
            "login_rate_limit_account": "1000/minute",
            "refresh_rate_limit_address": "1000/minute",
            # Still argon2id, at a cost that keeps the suite fast; production uses RFC 9106's.
            "argon2_time_cost": 1,
            "argon2_memory_kib": 8 * 1024,
            "argon2_parallelism": 1,
        }
        base.update(overrides)
        return Settings(_env_file=None, **base)  # type: ignore[call-arg]

    return make


@pytest.fixture
def app_factory(settings_factory):
    from fastapi.testclient import TestClient

    from coursecrafter_server.app import create_app

    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        client = TestClient(create_app(settings_factory(**overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(app_factory) -> Iterator:
    yield app_factory()
