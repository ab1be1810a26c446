"""The installed ``coursecrafter`` command in real processes, against the fake API over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_fakes import FakeAuthAPI, serve_fake

from coursecrafter_cli import Client

PASSWORD = "s3cret-pass!"


def command() -> list[str]:
    exe = shutil.which("coursecrafter", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "coursecrafter_cli"]


@pytest.fixture
def env(config_dir: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")}
    e.update(COURSECRAFTER_CONFIG_DIR=str(config_dir), COURSECRAFTER_CREDENTIAL_STORE="file",
             NO_COLOR="1")
    return e


@pytest.fixture
def served(fake: FakeAuthAPI):
    server, url = serve_fake(fake)
    yield url
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_concurrent_processes_never_replay_a_refresh_token(
    fake: FakeAuthAPI, served: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURSECRAFTER_CREDENTIAL_STORE", "file")  # visible to the children
    with Client(served) as cc:
        cc.login("alice", PASSWORD)

    fake.expire_access_tokens()  # every process will get a 401 and want to refresh
    fake.refresh_delay = 0.2
    procs = [
        subprocess.Popen([*command(), "whoami", "--json"], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=30) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert json.loads(out)["username"] == "alice"
        for secret in fake.issued:
            assert secret not in out + err
    assert fake.refresh_count == 1
    assert fake.reuse_detected == 0


def test_login_then_whoami(fake: FakeAuthAPI, served: str, env: dict[str, str]) -> None:
    login = subprocess.run(
        [*command(), "login", "--username", "alice", "--password-stdin", "--json",
         "--api-url", served],
        input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=30,
    )
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout) == {"username": "alice", "api_url": served,
                                        "profile": "default"}
    who = subprocess.run([*command(), "whoami"], env=env, capture_output=True, text=True,
                         timeout=30)
    assert (who.returncode, who.stdout) == (0, f"alice <alice@example.com> (instructor) on {served} (profile default)\n")
    for secret in [PASSWORD, *fake.issued]:
        assert secret not in login.stdout + login.stderr + who.stdout + who.stderr


def test_unreachable_server_exit_code_and_message(env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [*command(), "login", "-u", "alice", "--password-stdin", "--api-url", url],
        input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: cannot reach the CourseCrafter server at {url}: ")
    assert PASSWORD not in result.stderr


def test_sdk_over_real_http(fake: FakeAuthAPI, served: str) -> None:
    with Client(served) as cc:
        cc.login("alice", PASSWORD)
        fake.expire_access_tokens()
        assert cc.whoami()["username"] == "alice"
        assert cc.logout() is True


def test_cli_imports_nothing_server_side() -> None:
    code = (
        "import sys, coursecrafter_cli, coursecrafter_cli.main;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'pydantic', 'pydantic_settings', 'coursecrafter_server', "
        "'coursecrafter_worker', 'jwt', 'argon2', 'pymongo', 'boto3', 'pika', 'redis'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
