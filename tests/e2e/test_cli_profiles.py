"""Several servers and accounts (profiles) with the real `coursecrafter` command against two
real `coursecrafter-server` processes."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from livesupport import run_cli, start_live_server

PASSWORD = "lecture hall 42"


def register(env: dict[str, str], url: str, username: str) -> None:
    done = run_cli(env, "register", "--username", username, "--email", f"{username}@example.edu",
                   "--password-stdin", "--api-url", url, stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def login(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run_cli(env, "login", "--password-stdin", *args, stdin=PASSWORD + "\n")


@pytest.fixture
def second_server(tmp_path: Path):
    server = start_live_server(tmp_path / "second-home")
    yield server
    server.stop()


@pytest.mark.slow
def test_two_servers_and_accounts_in_two_profiles(cli_env, live_server, second_server, tmp_path):
    a, b = live_server.url, second_server.url
    # Each profile remembers its own server: no COURSECRAFTER_API_URL here.
    env = {k: v for k, v in cli_env.items() if k != "COURSECRAFTER_API_URL"}
    config = Path(env["COURSECRAFTER_CONFIG_DIR"])
    register(env, a, "ada")
    register(env, a, "carol")
    register(env, b, "bob")

    first = login(env, "-u", "ada", "--api-url", a)
    assert (first.returncode, first.stdout) == (0, f"Logged in as ada on {a}.\n"), first.stderr

    # A second account in the same profile is refused without a terminal, not silently swapped.
    refused = login(env, "-u", "bob", "--api-url", b)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: profile 'default' is logged in as ada on {a}; ")
    assert "--profile NAME" in refused.stderr and "--replace" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert run_cli(env, "whoami").stdout == f"ada <ada@example.edu> (instructor) on {a} " \
                                           "(profile default)\n"

    school = login(env, "-u", "bob", "--api-url", b, "--profile", "school")
    assert school.stdout == f"Logged in as bob on {b} (profile school).\n", school.stderr

    # Both stay logged in: the option (before or after the command) or the variable picks one.
    bob_line = f"bob <bob@example.edu> (instructor) on {b} (profile school)\n"
    assert run_cli(env, "whoami", "--profile", "school").stdout == bob_line
    assert run_cli(env, "--profile", "school", "whoami").stdout == bob_line
    assert run_cli({**env, "COURSECRAFTER_PROFILE": "school"}, "whoami").stdout == bob_line
    ada = json.loads(run_cli(env, "whoami", "--json").stdout)
    assert (ada["username"], ada["api_url"], ada["profile"]) == ("ada", a, "default")

    listed = run_cli(env, "profiles")
    assert listed.stdout == f"* default  ada on {a}\n  school   bob on {b}\n"
    assert json.loads(run_cli(env, "--profile", "school", "profiles", "--json").stdout) == [
        {"profile": "default", "username": "ada", "api_url": a, "current": False},
        {"profile": "school", "username": "bob", "api_url": b, "current": True},
    ]

    # Work goes to the profile's server and account.
    made = run_cli(env, "courses", "create", "Networks", "--profile", "school", "--json")
    course = json.loads(made.stdout)["id"]
    assert course in run_cli(env, "courses", "list", "--profile", "school").stdout
    assert course not in run_cli(env, "courses", "list").stdout

    # Separate credential files, each 0600.
    for path in (config / "credentials.json", config / "profiles" / "school" / "credentials.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for name in ("refresh_tokens.json",):
        assert (config / name).exists() and (config / "profiles" / "school" / name).exists()

    # Replacing a login is explicit, and the replaced session is ended on its server.
    before = tmp_path / "config-before"
    shutil.copytree(config, before)
    replaced = login(env, "-u", "carol", "--api-url", a, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert f"logged out ada on {a}" in replaced.stderr
    stale = run_cli({**env, "COURSECRAFTER_CONFIG_DIR": str(before)}, "whoami")
    assert stale.returncode == 4, stale.stdout
    assert run_cli(env, "whoami", "--profile", "school").stdout == bob_line

    out = run_cli(env, "logout", "--profile", "school")
    assert out.stdout == f"Logged out of {b} (profile school).\n"
    gone = run_cli(env, "whoami", "--profile", "school")
    assert gone.returncode == 4
    assert "`coursecrafter login --profile school`" in gone.stderr

    # The same account in two profiles holds two sessions: ending one leaves the other.
    assert login(env, "-u", "carol", "--profile", "laptop", "--api-url", a).returncode == 0
    assert run_cli(env, "logout", "--profile", "laptop").returncode == 0
    assert run_cli(env, "whoami").stdout.startswith("carol ")

    bad = run_cli(env, "whoami", "--profile", "../etc")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: invalid profile name '../etc': use 1 to 64 letters")
    assert bad.stderr.count("\n") == 1
