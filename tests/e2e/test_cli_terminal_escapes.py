"""Server text reaches a terminal as text: no ESC/OSC/CSI sequence the CLI prints can act."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from livesupport import run_cli

from coursecrafter_cli.commands import common
from coursecrafter_cli.main import app

PASSWORD = "lecture hall 42"
# Set the window title, write the clipboard (OSC 52), an 8-bit CSI, a forged second line, a
# bidi override, and rich markup for a hyperlink.
HOSTILE = ("Algo\x1b]0;pwned\x07rithms\x1b]52;c;cm0gLXJmIH4K\x07 \x9b2J\x1b[31m"
           "\nFAKE LINE\r\u202e[link=https://evil.example]x[/link]")
DANGEROUS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]")


def assert_inert(text: str) -> None:
    assert not DANGEROUS.search(text), repr(text)


def test_course_titles_reach_the_terminal_as_text(cli_env, live_server):
    assert run_cli(cli_env, "register", "--username", "ada", "--email", "ada@example.edu",
                   "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    assert run_cli(cli_env, "login", "--username", "ada", "--password-stdin",
                   stdin=PASSWORD + "\n").returncode == 0
    created = run_cli(cli_env, "courses", "create", HOSTILE)
    assert created.returncode == 0, created.stderr
    assert_inert(created.stdout + created.stderr)

    listed = run_cli(cli_env, "courses", "list")
    assert listed.returncode == 0, listed.stderr
    assert_inert(listed.stdout + listed.stderr)
    assert len(listed.stdout.splitlines()) == 1  # the newline in the title forged no line
    assert "Algo]0;pwnedrithms" in listed.stdout

    # --json stays exact: the title comes back byte for byte, as JSON escapes.
    exact = run_cli(cli_env, "courses", "list", "--json")
    assert exact.returncode == 0
    assert "\x1b" not in exact.stdout
    assert [c["title"] for c in json.loads(exact.stdout)] == [HOSTILE]


def test_server_error_messages_reach_the_terminal_as_text(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"error": {"code": "conflict\x1b[2J",
                                                   "message": f"no: {HOSTILE}"}})

    monkeypatch.setattr(common, "transport_factory", lambda: httpx.MockTransport(handler))
    monkeypatch.setenv("COURSECRAFTER_CONFIG_DIR", str(tmp_path / "config"))
    result = CliRunner().invoke(app, ["register", "--username", "x", "--email", "x@example.edu",
                                      "--password-stdin", "--api-url", "http://api.test"],
                                input=PASSWORD + "\n")
    assert result.exit_code == 1
    assert "error: no: Algo]0;pwned" in result.stderr
    assert_inert(result.stdout + result.stderr)


@pytest.mark.parametrize("multiline", [False, True])
def test_printable_keeps_plain_text_as_it_is(multiline):
    from coursecrafter_cli.terminal import printable

    plain = "Vorlesung 3: Ähnlichkeit — 日本語 [slides] 100%"
    assert printable(plain, multiline=multiline) == plain
