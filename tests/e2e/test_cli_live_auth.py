"""The real `coursecrafter` command against a real server process on a loopback port."""

from __future__ import annotations

import json
import stat

from livesupport import run_cli

PASSWORD = "lecture hall 42"


def test_register_login_whoami_logout_against_a_live_server(cli_env, live_server, tmp_path):
    done = run_cli(cli_env, "register", "--username", "ada", "--email", "ada@example.edu",
                   "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["role"] == "instructor"

    again = run_cli(cli_env, "register", "--username", "ada", "--email", "x@example.edu",
                    "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "already taken" in again.stderr

    wrong = run_cli(cli_env, "login", "--username", "ada", "--password-stdin",
                    stdin="not the password\n")
    assert wrong.returncode == 4

    login = run_cli(cli_env, "login", "--username", "ada", "--password-stdin",
                    stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    config = tmp_path / "cli-config"
    for path in config.iterdir():
        if path.is_file() and path.suffix == ".json":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    me = run_cli(cli_env, "whoami", "--json")
    assert me.returncode == 0 and json.loads(me.stdout)["username"] == "ada"
    # Nothing secret on any stream, nor in the server's log.
    for text in (login.stdout, login.stderr, me.stdout, me.stderr, live_server.log()):
        assert PASSWORD not in text and "eyJ" not in text

    assert run_cli(cli_env, "logout").returncode == 0
    after = run_cli(cli_env, "whoami")
    assert after.returncode == 4 and "login" in after.stderr


def test_whoami_without_login_exits_4(cli_env):
    assert run_cli(cli_env, "whoami").returncode == 4


def test_unreachable_server_exits_1_with_a_clear_message(cli_env):
    env = {**cli_env, "COURSECRAFTER_API_URL": "http://127.0.0.1:9"}
    done = run_cli(env, "whoami")
    assert done.returncode in (1, 4)
    assert "cannot reach" in done.stderr or "not logged in" in done.stderr.lower()


def test_register_explains_a_weak_password_in_words(cli_env, live_server):
    weak = run_cli(cli_env, "register", "--username", "bob", "--email", "bob@example.edu",
                   "--password-stdin", stdin="qwerty12345\n")
    assert weak.returncode == 1 and weak.stdout == ""
    assert weak.stderr.startswith("error: password is too easy to guess: This is a very common "
                                  "password."), weak.stderr
    assert "qwerty12345" not in weak.stderr + live_server.log()
