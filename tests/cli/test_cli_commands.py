"""The ``coursecrafter`` command, run in-process with typer's CliRunner against the fake API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cli_fakes import FakeAuthAPI
from typer.testing import CliRunner, Result

from coursecrafter_cli.commands import common
from coursecrafter_cli.credentials import CREDENTIALS_FILE
from coursecrafter_cli.main import app

PASSWORD = "s3cret-pass!"
URL = "http://127.0.0.1:8000"

Invoke = Callable[..., Result]


@pytest.fixture
def cli(fake: FakeAuthAPI, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setattr(common, "transport_factory", lambda: httpx.MockTransport(fake.handler))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        result = runner.invoke(app, list(args), input=input, env=env)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


def login(cli: Invoke) -> Result:
    result = cli("login", "--username", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    return result


def assert_no_secrets(fake: FakeAuthAPI, *results: Result) -> None:
    for result in results:
        for secret in [PASSWORD, "long-enough-pw", *fake.issued]:
            assert secret not in result.stdout and secret not in result.stderr


def test_register_json(cli: Invoke, fake: FakeAuthAPI) -> None:
    result = cli("register", "--username", "bob", "--email", "bob@example.com",
                 "--password-stdin", "--json", input="long-enough-pw\n")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"id": "u-2", "username": "bob",
                                         "email": "bob@example.com", "role": "instructor"}
    assert result.stdout.count("\n") == 1
    assert fake.users["bob"]["password"] == "long-enough-pw"
    assert_no_secrets(fake, result)


def test_register_human(cli: Invoke) -> None:
    result = cli("register", "-u", "bob", "--email", "bob@example.com", "--password-stdin",
                 input="long-enough-pw\n")
    assert result.exit_code == 0
    assert result.stdout == f"Registered bob <bob@example.com> as instructor on {URL}.\n"


def test_register_errors(cli: Invoke, fake: FakeAuthAPI) -> None:
    dup = cli("register", "-u", "alice", "--email", "a@example.com", "--password-stdin", "--json",
              input="long-enough-pw\n")
    assert dup.exit_code == 1
    assert dup.stdout == ""
    assert dup.stderr.startswith("error: username already taken")
    weak = cli("register", "-u", "bob", "--email", "b@example.com", "--password-stdin",
               input="short\n")
    assert weak.exit_code == 1
    assert weak.stderr == "error: password too weak: use at least 8 characters\n"
    assert weak.stdout == ""
    bad_email = cli("register", "-u", "bob", "--email", "nope", "--password-stdin",
                    input="long-enough-pw\n")
    assert bad_email.exit_code == 1
    assert bad_email.stderr == "error: email: value is not a valid email address\n"


def test_login_whoami_logout(cli: Invoke, fake: FakeAuthAPI, config_dir: Path) -> None:
    result = cli("login", "--username", "alice", "--password-stdin", "--json",
                 input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"username": "alice", "api_url": URL, "profile": "default"}
    assert (config_dir / CREDENTIALS_FILE).exists()

    who = cli("whoami", "--json")
    assert who.exit_code == 0
    assert json.loads(who.stdout) == {"id": "u-1", "username": "alice",
                                      "email": "alice@example.com", "role": "instructor",
                                      "api_url": URL, "profile": "default"}
    who_human = cli("whoami")
    assert who_human.stdout == f"alice <alice@example.com> (instructor) on {URL} (profile default)\n"

    out = cli("logout", "--json")
    assert out.exit_code == 0
    assert json.loads(out.stdout) == {"api_url": URL, "username": "alice", "profile": "default",
                                      "logged_out": True, "revoked": True}
    assert not (config_dir / CREDENTIALS_FILE).exists()
    again = cli("logout")
    assert (again.exit_code, again.stdout) == (0, f"Not logged in to {URL}.\n")
    assert_no_secrets(fake, result, who, who_human, out, again)


def test_login_human(cli: Invoke, fake: FakeAuthAPI) -> None:
    result = login(cli)
    assert result.stdout == f"Logged in as alice on {URL}.\n"
    assert result.stderr == ""
    assert_no_secrets(fake, result)


def test_whoami_not_logged_in_exits_4(cli: Invoke) -> None:
    result = cli("whoami", "--json")
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr == f"error: not logged in to {URL}; run `coursecrafter login`\n"


def test_whoami_after_server_side_revocation_exits_4(cli: Invoke, fake: FakeAuthAPI) -> None:
    login(cli)
    fake.revoke_all_sessions()
    result = cli("whoami")
    assert result.exit_code == 4
    assert "run `coursecrafter login`" in result.stderr


def test_wrong_password_exits_4(cli: Invoke, fake: FakeAuthAPI) -> None:
    result = cli("login", "-u", "alice", "--password-stdin", input="wrong-password\n")
    assert result.exit_code == 4
    assert result.stderr == "error: authentication failed: invalid username or password\n"
    assert "wrong-password" not in result.stdout + result.stderr


def test_unreachable_server_exits_1(cli: Invoke, fake: FakeAuthAPI) -> None:
    fake.down = True
    result = cli("login", "-u", "alice", "--password-stdin", "--json",
                 "--api-url", "http://cc.example:9000/", input=PASSWORD + "\n")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "error: cannot reach the CourseCrafter server at http://cc.example:9000: ")
    assert_no_secrets(fake, result)


def test_rate_limited_exits_1_with_retry_after(cli: Invoke, fake: FakeAuthAPI) -> None:
    fake.login_retry_after = 7
    result = cli("login", "-u", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 1
    assert result.stderr == "error: too many login attempts (rate limited); retry after 7 s\n"


def test_logout_when_server_down_still_clears(
    cli: Invoke, fake: FakeAuthAPI, config_dir: Path
) -> None:
    login(cli)
    fake.down = True
    result = cli("logout")
    assert result.exit_code == 0
    assert result.stdout == f"Logged out of {URL}.\n"
    assert result.stderr.startswith("warning: could not revoke the session on the server")
    assert not (config_dir / CREDENTIALS_FILE).exists()
    fake.down = False
    assert cli("whoami").exit_code == 4


def test_api_url_option_is_used(cli: Invoke, fake: FakeAuthAPI) -> None:
    seen: list[str] = []
    handler = fake.handler

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return handler(request)

    fake.handler = spy  # type: ignore[method-assign]
    result = cli("login", "-u", "alice", "--password-stdin", "--json",
                 "--api-url", "https://cc.example/", input=PASSWORD + "\n")
    assert json.loads(result.stdout)["api_url"] == "https://cc.example"
    assert seen == ["https://cc.example/api/v1/auth/login"]
    # later commands default to the url saved at login
    assert cli("whoami").stdout.endswith("on https://cc.example (profile default)\n")


@pytest.mark.parametrize(
    "args",
    [
        ["login", "-u", "alice", "--password", PASSWORD],  # never a password in argv
        ["login", "-u", "alice"],  # no terminal to prompt on, no --password-stdin
        ["login", "--password-stdin"],  # no username, no terminal to ask on
        ["register", "-u", "bob", "--password-stdin"],  # no e-mail
        ["whoami", "--api-url", "ftp://nope"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(cli: Invoke, args: list[str], fake: FakeAuthAPI) -> None:
    result = cli(*args, input=PASSWORD + "\n")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert fake.calls == []


def test_empty_password_on_stdin_is_a_usage_error(cli: Invoke) -> None:
    result = cli("login", "-u", "alice", "--password-stdin", input="\n")
    assert result.exit_code == 2
    assert "no password on standard input" in result.stderr


def test_password_prompt_hint_without_terminal(cli: Invoke) -> None:
    result = cli("login", "-u", "alice", input="")
    assert "--password-stdin" in result.stderr


def test_no_color(cli: Invoke, fake: FakeAuthAPI) -> None:
    colored = cli("whoami", env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert "\x1b[" in colored.stderr  # sanity: styles are on when forced
    plain = cli("whoami", env={"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": "1"})
    assert plain.exit_code == 4
    assert "\x1b[" not in plain.stderr + plain.stdout
    assert plain.stderr.startswith("error: not logged in")


def test_version_and_help(cli: Invoke) -> None:
    assert cli("--version").stdout.startswith("coursecrafter ")
    help_text = cli("--help", env={"NO_COLOR": "1"}).stdout
    for command in ("register", "login", "logout", "whoami"):
        assert command in help_text


def test_whoami_when_not_logged_in_creates_nothing(cli: Invoke, config_dir: Path) -> None:
    assert cli("whoami").exit_code == 4
    assert not config_dir.exists()


def test_every_command_has_examples_and_plain_help() -> None:
    import re

    import typer

    from coursecrafter_cli.commands import help as cli_help
    from coursecrafter_cli.main import app

    root = typer.main.get_command(app)
    paths = [path for path, _ in cli_help.walk(root)]
    assert "profiles" in paths and "courses publish" in paths
    assert sorted(set(paths) - set(cli_help.EXAMPLES)) == []
    for path, command in cli_help.walk(root):
        text = command.get_help(command.context_class(command, info_name=path or "coursecrafter"))
        assert "Examples:\n" in text, path
        assert not re.search(r"<[a-z][a-z |]*>|\{[A-Z_]+\}", text.replace("<cct_", "")), text
