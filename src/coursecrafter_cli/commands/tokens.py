"""``coursecrafter token create | list | revoke``: automation tokens for machines that upload
without a password (a lecture-capture box, a CI job). Use one with ``COURSECRAFTER_TOKEN=cct_...``
(or ``Client(token=...)``): it goes before any stored login and is never refreshed.

Stable output (stdout):

============  ================================================  =====================================
command       human                                             ``--json``
============  ================================================  =====================================
token create  the token (``cct_...``) alone on one line; what   ``{id, name, scope, created_at,
              it is, and that it is shown only once, on stderr  expires_at, last_used_at, token}``
token list    one line per token: ``<id>  <name>  <scope>       a JSON array of token records (never
              created <date>  expires <date|never>  last used   the secrets)
              <date|never>``; none: ``No tokens yet.`` on
              stderr
token revoke  ``Revoked token <id>.``                           ``{"id": <id>, "revoked": true}``
============  ================================================  =====================================

Making, listing and revoking tokens takes a normal login (``coursecrafter login``).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

import typer

from coursecrafter_cli.commands.common import (
    ApiUrlOption,
    ProfileOption,
    JsonOption,
    emit,
    emit_json,
    handle_errors,
    info,
    make_client,
    usage_error,
)

app = typer.Typer(
    name="token",
    help="Automation tokens: upload from a machine or CI job without a password.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdwy])\s*$", re.IGNORECASE)


class Scope(str, Enum):
    upload = "upload"
    read = "read"


def parse_expires(value: str) -> int | None:
    """``90d``, ``12h``, ``30m``, ``2w``, ``1y`` -> seconds; ``never`` -> None."""
    if value.strip().lower() == "never":
        return None
    match = _DURATION.match(value)
    if not match or int(match[1]) == 0:
        usage_error(f"--expires: {value!r} is not a duration like 90d, 12h, 2w, 1y or never")
    return int(match[1]) * _UNITS[match[2].lower()]


def _day(value: Any) -> str:
    return str(value)[:10] if value else "never"


def token_line(token: dict[str, Any]) -> str:
    return (f"{token.get('id')}  {token.get('name')}  {token.get('scope')}  "
            f"created {_day(token.get('created_at'))}  expires {_day(token.get('expires_at'))}  "
            f"last used {_day(token.get('last_used_at'))}")


@app.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="What the token is for.",
                                      show_default=False)],
    expires: Annotated[str, typer.Option(
        "--expires", metavar="DURATION", help="Lifetime: 90d, 12h, 2w, 1y, or never.")] = "90d",
    scope: Annotated[Scope, typer.Option(
        "--scope", help="upload: upload and read; read: read only.")] = Scope.upload,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make an automation token and print it (this once only)."""
    seconds = parse_expires(expires)
    with make_client(api_url) as client:
        token = client.create_token(name, scope=scope.value, expires_in=seconds)
    if json_output:
        emit_json(token)
        return
    info(f"Created token {token.get('id')} ({token.get('name')}, scope {token.get('scope')}, "
         f"expires {_day(token.get('expires_at'))}). Copy it now: it is not shown again. "
         "Use it as COURSECRAFTER_TOKEN=<token>.")
    emit(str(token.get("token")))


@app.command("list")
@handle_errors
def list_tokens(api_url: ApiUrlOption = None, profile: ProfileOption = None,
                json_output: JsonOption = False) -> None:
    """List your automation tokens (never their secrets) and when each was last used."""
    with make_client(api_url) as client:
        tokens = client.list_tokens()
    if json_output:
        emit_json(tokens)
        return
    if not tokens:
        info("No tokens yet.")
    for token in tokens:
        emit(token_line(token))


@app.command("revoke")
@handle_errors
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="The token's id.",
                                            show_default=False)],
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke an automation token: the server refuses it from now on."""
    with make_client(api_url) as client:
        client.revoke_token(token_id)
    if json_output:
        emit_json({"id": token_id, "revoked": True})
    else:
        emit(f"Revoked token {token_id}.")
