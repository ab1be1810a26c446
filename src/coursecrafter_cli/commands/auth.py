"""``coursecrafter register | login | logout | whoami``.

Stable output (stdout; ``<url>`` is the api url in use, without a trailing slash):

=========  ==========================================================  ==================================================
command    human                                                       ``--json``
=========  ==========================================================  ==================================================
register   ``Registered <username> <<email>> as <role> on <url>.``     the user record ``{id, username, email, role}``
login      ``Logged in as <username> on <url>.``                       ``{"username": ..., "api_url": ...}``
logout     ``Logged out of <url>.`` / ``Not logged in to <url>.``      ``{"api_url", "username" (or null),
                                                                       "logged_out": bool, "revoked": bool}``
whoami     ``<username> <<email>> (<role>) on <url>``                  the user record ``{id, username, email, role}``
=========  ==========================================================  ==================================================

``logout`` always removes the local credentials; when the server could not be told it also
prints ``warning: could not revoke the session on the server ...; local credentials
removed`` on stderr and still exits 0.  Tokens and passwords are never printed.
"""

from typing import Annotated

import typer

from coursecrafter_cli.commands.common import (
    ApiUrlOption,
    JsonOption,
    PasswordStdinOption,
    ask,
    emit,
    emit_json,
    handle_errors,
    make_client,
    read_password,
    warn,
)

UsernameOption = Annotated[
    str | None,
    typer.Option("--username", "-u", help="Account name (prompted for when omitted on a terminal)."),
]
EmailOption = Annotated[
    str | None,
    typer.Option("--email", help="E-mail address (prompted for when omitted on a terminal)."),
]


@handle_errors
def register(
    username: UsernameOption = None,
    email: EmailOption = None,
    password_stdin: PasswordStdinOption = False,
    api_url: ApiUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create an account. The password is prompted for twice, or read from stdin."""
    username = ask(username, "--username", "Username")
    email = ask(email, "--email", "E-mail")
    password = read_password(password_stdin, confirm=True)
    with make_client(api_url) as client:
        user = client.register(username, email, password)
        url = client.api_url
    if json_output:
        emit_json(user)
    else:
        emit(
            f"Registered {user.get('username', username)} <{user.get('email', email)}> "
            f"as {user.get('role', 'user')} on {url}."
        )


@handle_errors
def login(
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
    api_url: ApiUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Log in and keep the session (refresh token in the OS keyring when there is one)."""
    username = ask(username, "--username", "Username")
    password = read_password(password_stdin)
    with make_client(api_url) as client:
        result = client.login(username, password)
    if json_output:
        emit_json(result)
    else:
        emit(f"Logged in as {result['username']} on {result['api_url']}.")


@handle_errors
def logout(
    api_url: ApiUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke the session on the server and remove the local credentials."""
    with make_client(api_url) as client:
        url = client.api_url
        try:
            username = client.username
        except Exception:  # unreadable store: logout still wipes it
            username = None
        revoked = client.logout()
    logged_out = username is not None
    if logged_out and not revoked:
        warn("could not revoke the session on the server (unreachable or refused); "
             "local credentials removed")
    if json_output:
        emit_json({"api_url": url, "username": username, "logged_out": logged_out, "revoked": revoked})
    elif logged_out:
        emit(f"Logged out of {url}.")
    else:
        emit(f"Not logged in to {url}.")


@handle_errors
def whoami(
    api_url: ApiUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the logged-in user (exit 4 when not logged in)."""
    with make_client(api_url) as client:
        me = client.whoami()
        url = client.api_url
    if json_output:
        emit_json(me)
    else:
        emit(f"{me.get('username')} <{me.get('email')}> ({me.get('role')}) on {url}")


def add_to(app: typer.Typer) -> None:
    """Register the auth commands on ``app``."""
    app.command("register")(register)
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
