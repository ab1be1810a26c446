"""Shared plumbing of the ``coursecrafter`` commands: options, output, errors, exit codes.

Output rules (every command follows them):

* a human-readable result goes to stdout as plain lines;
* with ``--json`` stdout carries exactly one JSON document (one line) and nothing else;
  on failure stdout stays empty;
* messages, warnings, prompts and progress go to stderr; errors read ``error: <message>``,
  warnings ``warning: <message>``;
* ``NO_COLOR`` (any non-empty value) disables every ANSI style.

Exit codes: see :class:`ExitCode`.

Tests (or embedders) can point every command at a fake server by replacing
:data:`transport_factory` (e.g. ``monkeypatch.setattr(common, "transport_factory",
lambda: httpx.MockTransport(handler))``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import sys
from collections.abc import Callable
from enum import IntEnum
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console
from rich.text import Text

from coursecrafter_cli import config
from coursecrafter_cli.client import Client
from coursecrafter_cli.credentials import LocalCredentialStore, list_profiles
from coursecrafter_cli.errors import (
    APIError,
    AuthenticationError,
    CourseCrafterError,
    NotLoggedIn,
    RateLimited,
    ValidationError,
)
from coursecrafter_cli.terminal import printable

__all__ = [
    "ExitCode",
    "transport_factory",
    "make_client",
    "ApiUrlOption",
    "ProfileOption",
    "profile_name",
    "select_profile",
    "JsonOption",
    "PasswordStdinOption",
    "handle_errors",
    "usage_error",
    "report",
    "emit",
    "emit_json",
    "info",
    "warn",
    "stderr_console",
    "error",
    "ask",
    "stdin_is_tty",
    "read_password",
    "confirm",
    "ensure_can_confirm",
    "YesOption",
]


class ExitCode(IntEnum):
    """Process exit codes of ``coursecrafter``."""

    OK = 0
    ERROR = 1  #: any failure not listed below (server unreachable, rate limited, 4xx/5xx...)
    USAGE = 2  #: bad command line (click/typer's own usage errors use 2 as well)
    AUTH = 4  #: not logged in, session expired/revoked, or wrong credentials
    VIDEO_FAILED = 5  #: the video ended in ``failed`` (upload --wait, wait, status)
    INTERRUPTED = 130  #: Ctrl-C (128 + SIGINT, as shells report it); an upload can be resumed


#: Returns the httpx transport for new clients (``None``: a real network transport).
transport_factory: Callable[[], httpx.BaseTransport | None] = lambda: None

#: ``--profile`` of this run (given before or after the command name); ``None``: the
#: environment's or ``default`` (see :func:`coursecrafter_cli.config.resolve_profile`).
_profile: str | None = None


def select_profile(name: str | None) -> None:
    """Record ``--profile`` (``None`` resets it: the root callback does so on every run)."""
    global _profile
    _profile = name


def profile_name() -> str:
    """The profile this run uses (a usage error for an invalid name)."""
    try:
        return config.resolve_profile(_profile)
    except ValueError as exc:
        usage_error(str(exc))


def make_client(api_url: str | None) -> Client:
    """A :class:`Client` for ``--api-url`` (or the env / saved / default url) and the profile."""
    try:
        store = LocalCredentialStore(profile=profile_name())
        return Client(api_url, transport=transport_factory(), credential_store=store)
    except ValueError as exc:
        usage_error(str(exc))


# ---------------------------------------------------------------- options

ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        metavar="URL",
        help="CourseCrafter server (default: $COURSECRAFTER_API_URL, else the one you logged "
        "in to, else http://127.0.0.1:8000).",
        show_default=False,
    ),
]


def _profile_callback(value: str | None) -> None:
    if value is not None:
        select_profile(value)


def _complete_profile(incomplete: str) -> list[str]:
    """Shell completion of ``--profile``: the saved profiles (and ``default``)."""
    names = {config.DEFAULT_PROFILE, *(p.profile for p in list_profiles())}
    return sorted(n for n in names if n.startswith(incomplete))


ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        metavar="NAME",
        help="Use this saved login (a server and an account); default: $COURSECRAFTER_PROFILE, "
        "else 'default'.",
        show_default=False,
        callback=_profile_callback,
        autocompletion=_complete_profile,
        expose_value=False,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the result as one JSON document on stdout."),
]
YesOption = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do not ask for confirmation (needed without a terminal)."),
]
PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of stdin instead of prompting.",
    ),
]


# ---------------------------------------------------------------- output


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def _stderr() -> Console:
    no_color = _no_color()
    return Console(
        stderr=True,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
        no_color=no_color,
        color_system=None if no_color else "auto",
    )


def stderr_console() -> Console:
    """The stderr console of messages and progress bars (honours ``NO_COLOR``)."""
    return _stderr()


def emit(line: str) -> None:
    """A human-readable result line on stdout (control characters removed: see `terminal`)."""
    sys.stdout.write(printable(line) + "\n")
    sys.stdout.flush()


def emit_json(document: Any) -> None:
    """The one JSON document of a ``--json`` run, on stdout."""
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    """A message on stderr."""
    _stderr().print(Text(printable(message, multiline=True)))


def warn(message: str) -> None:
    """``warning: <message>`` on stderr."""
    _stderr().print(Text(f"warning: {printable(message, multiline=True)}", style="yellow"))


def error(message: str) -> None:
    """``error: <message>`` on stderr."""
    _stderr().print(Text(f"error: {printable(message, multiline=True)}", style="bold red"))


# ---------------------------------------------------------------- errors


def usage_error(message: str) -> NoReturn:
    """``error: <message>`` on stderr, exit 2 (a bad command line)."""
    error(message)
    raise typer.Exit(int(ExitCode.USAGE))


#: What a field's pattern means, for the server's "String should match pattern '<regex>'".
FIELD_RULES = {
    "username": "use 2 to 64 letters, digits, dots, underscores or hyphens, starting with a "
                "letter or digit",
    "sha256": "must be 64 hexadecimal digits",
}
_PATTERN_MESSAGE = re.compile(r"(?:(?P<field>[\w.]+): )?String should match pattern '[^']*'")


def in_words(message: str) -> str:
    """A validation message with any regex replaced by what it asks for, in words."""
    def words(match: re.Match[str]) -> str:
        field = match.group("field")
        rule = FIELD_RULES.get((field or "").rsplit(".", 1)[-1], "is not in the accepted form")
        return f"{field}: {rule}" if field else rule
    return _PATTERN_MESSAGE.sub(words, message)


def _field_lines(fields: Any) -> list[str]:
    lines: list[str] = []
    if isinstance(fields, dict):
        for name, msg in fields.items():
            text = "; ".join(map(str, msg)) if isinstance(msg, list) else str(msg)
            lines.append(f"  {name}: {text}")
    elif isinstance(fields, list):
        for item in fields:
            if isinstance(item, dict):
                name = item.get("field") or item.get("loc") or item.get("name")
                if isinstance(name, list):
                    name = ".".join(map(str, name))
                msg = item.get("message") or item.get("msg") or ""
                lines.append(f"  {name}: {msg}" if name else f"  {msg}")
            else:
                lines.append(f"  {item}")
    return lines


def report(exc: CourseCrafterError) -> ExitCode:
    """Print ``exc`` on stderr the way the CLI does and return the exit code for it."""
    if isinstance(exc, NotLoggedIn):
        error(exc.message)
        with contextlib.suppress(ValueError):
            name = config.resolve_profile(_profile)
            if name != config.DEFAULT_PROFILE:
                info(f"this is profile '{name}': `coursecrafter login --profile {name}` logs it in")
        return ExitCode.AUTH
    if isinstance(exc, AuthenticationError):
        error(f"authentication failed: {exc.message}")
        return ExitCode.AUTH
    if isinstance(exc, RateLimited):
        if exc.retry_after is not None:
            wait = math.ceil(exc.retry_after)
            error(f"{exc.message} (rate limited); retry after {wait} s")
        else:
            error(f"{exc.message} (rate limited); retry later")
        return ExitCode.ERROR
    if isinstance(exc, ValidationError):
        message = in_words(exc.message)
        error(message)
        lines = [in_words(ln) for ln in _field_lines(exc.fields)
                 if ln.strip() not in exc.message]
        if lines:
            info("\n".join(lines))
        return ExitCode.ERROR
    if isinstance(exc, APIError):
        error(f"{exc.message} (HTTP {exc.status_code}, {exc.code})")
        return ExitCode.ERROR
    error(exc.message)
    return ExitCode.ERROR


F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Decorate a command: SDK errors become an ``error:`` line and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CourseCrafterError as exc:
            raise typer.Exit(int(report(exc))) from None

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------- input


def stdin_is_tty() -> bool:
    """Whether there is a terminal to prompt on."""
    return _stdin_is_tty()


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def ask(value: str | None, option: str, label: str) -> str:
    """``value`` if given, else prompt for it on a terminal, else a usage error."""
    if value:
        return value
    if not _stdin_is_tty():
        usage_error(f"missing option {option} (no terminal to prompt on)")
    return str(typer.prompt(label, err=True))


def read_password(password_stdin: bool, *, confirm: bool = False) -> str:
    """The password: first line of stdin with ``--password-stdin``, else a hidden prompt
    (asked twice when ``confirm``).  Never from argv."""
    if password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            usage_error("--password-stdin: no password on standard input")
        return password
    if not _stdin_is_tty():
        usage_error(
            "cannot prompt for the password without a terminal; pipe it in with --password-stdin"
        )
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm, err=True))


def confirm(question: str, yes: bool) -> None:
    """Go on when ``yes`` (``--yes``) or the user answers yes on a terminal; without a terminal
    and without ``--yes``, a usage error (exit 2); a "no" exits 1 having changed nothing."""
    if yes:
        return
    ensure_can_confirm(yes)
    if not typer.confirm(printable(question), default=False, err=True):
        info("aborted; nothing was changed")
        raise typer.Exit(int(ExitCode.ERROR))


def delete_confirmed(
    what: str, object_id: str, *, yes: bool, api_url: str | None, json_output: bool,
    fetch: Callable[[Client, str], dict[str, Any]], remove: Callable[[Client, str], object],
) -> None:
    """`courses delete` / `videos delete`: ask first (unless ``--yes``), naming the object, then
    delete it and say so (``--json``: ``{"id", "deleted": true}``)."""
    ensure_can_confirm(yes)
    with make_client(api_url) as client:
        if not yes:
            found = fetch(client, object_id)  # a clear "not found" before asking
            confirm(f"Delete {what} {object_id} ({found.get('title')})?", yes)
        remove(client, object_id)
    if json_output:
        emit_json({"id": object_id, "deleted": True})
    else:
        emit(f"Deleted {what} {object_id}.")


def ensure_can_confirm(yes: bool) -> None:
    """Without ``--yes`` there must be a terminal to ask on (usage error, exit 2, otherwise):
    checked before anything is sent, so a script without ``--yes`` fails fast."""
    if not yes and not _stdin_is_tty():
        usage_error("refusing to ask for confirmation without a terminal; pass --yes")
