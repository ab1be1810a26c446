"""`coursecrafter-server create-admin`: the way to the first admin account."""

from __future__ import annotations

import io
import sys

import pytest

from coursecrafter_server.main import run

PASSWORD = "a long admin passphrase"


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in ("HOME", "ARGON2_TIME_COST", "ARGON2_MEMORY_KIB", "ARGON2_PARALLELISM"):
        monkeypatch.delenv(f"COURSECRAFTER_{name}", raising=False)
    monkeypatch.setenv("COURSECRAFTER_HOME", str(tmp_path))
    monkeypatch.setenv("COURSECRAFTER_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("COURSECRAFTER_ARGON2_MEMORY_KIB", "8192")
    monkeypatch.setenv("COURSECRAFTER_ARGON2_PARALLELISM", "1")
    return tmp_path


def create(monkeypatch, *args: str, password: str = PASSWORD) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    with pytest.raises(SystemExit) as exc:
        run(["create-admin", *args, "--password-stdin"])
    return exc.value.code


def test_the_admin_can_log_in_and_create_admins(home, monkeypatch, capsys, settings_factory,
                                                app_factory):
    assert create(monkeypatch, "root", "--email", "root@school.example") == 0
    out = capsys.readouterr()
    assert out.out.startswith("created admin root (") and PASSWORD not in out.out + out.err
    api = app_factory(database_url=f"sqlite:///{home / 'coursecrafter.sqlite3'}", home=home)
    login = api.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert api.get("/api/v1/auth/me", headers=headers).json()["role"] == "admin"
    second = api.post("/api/v1/auth/register", headers=headers, json={
        "username": "root2", "email": "root2@school.example", "password": PASSWORD,
        "role": "admin"})
    assert second.status_code == 201, second.text


def test_bad_input_is_refused_clearly(home, monkeypatch, capsys):
    assert create(monkeypatch, "root", "--email", "not-an-email") == 1
    assert "email" in capsys.readouterr().err
    assert create(monkeypatch, "root", "--email", "root@school.example", password="short") == 1
    assert "error:" in capsys.readouterr().err
    assert create(monkeypatch, "root", "--email", "root@school.example") == 0
    capsys.readouterr()
    assert create(monkeypatch, "root", "--email", "other@school.example") == 1
    assert "already taken" in capsys.readouterr().err


def test_several_api_processes_without_redis_and_a_broker_are_refused(home, monkeypatch, capsys):
    # Each process would keep its own revocation list: a logout would not reach the others.
    monkeypatch.delenv("COURSECRAFTER_REDIS_URL", raising=False)
    monkeypatch.delenv("COURSECRAFTER_BROKER_URL", raising=False)
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("must not start"))
    with pytest.raises(SystemExit) as exc:
        run(["--workers", "2"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "COURSECRAFTER_REDIS_URL and COURSECRAFTER_BROKER_URL" in err
    started = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.append(k["workers"]))
    run(["--workers", "1"])
    assert started == [1]
