"""`coursecrafter login` keeps the server's device cookie between runs, so a machine that has
logged in before still gets in while strangers guess the account's password from elsewhere."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
from livesupport import run_cli, start_live_server

PASSWORD = "lecture hall 42"


def test_a_machine_that_logged_in_before_gets_in_during_an_attack(tmp_path: Path):
    server = start_live_server(tmp_path / "home", {
        "COURSECRAFTER_TRUSTED_PROXIES": "127.0.0.1",  # so the stranger can vary its address
        "COURSECRAFTER_LOGIN_RATE_LIMIT_ACCOUNT": "3/hour",
        "COURSECRAFTER_TRANSCODE_CONCURRENCY": "0",
    })
    try:
        def env(config: str) -> dict[str, str]:
            return {**{k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")},
                    "COURSECRAFTER_API_URL": server.url, "NO_COLOR": "1",
                    "COURSECRAFTER_CONFIG_DIR": str(tmp_path / config),
                    "COURSECRAFTER_CREDENTIAL_STORE": "file"}

        laptop, new_machine = env("laptop"), env("new-machine")
        assert run_cli(laptop, "register", "-u", "ada", "--email", "ada@example.edu",
                       "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
        first = run_cli(laptop, "login", "-u", "ada", "--password-stdin", stdin=PASSWORD + "\n")
        assert first.returncode == 0, first.stderr
        saved = tmp_path / "laptop" / "device_cookies.json"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert run_cli(laptop, "logout").returncode == 0  # the device stays known

        for i in range(3):  # guessing from three addresses reaches the per-account limit
            answer = httpx.post(f"{server.url}/api/v1/auth/login",
                                json={"username": "ada", "password": "summer 2026"},
                                headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
            assert answer.status_code == 401

        blocked = run_cli(new_machine, "login", "-u", "ada", "--password-stdin",
                          stdin=PASSWORD + "\n")
        assert blocked.returncode != 0 and "try again" in blocked.stderr, blocked.stderr
        again = run_cli(laptop, "login", "-u", "ada", "--password-stdin", stdin=PASSWORD + "\n")
        assert again.returncode == 0, again.stderr
        assert PASSWORD not in server.log()
    finally:
        server.stop()
