"""``coursecrafter register | login | logout | whoami | profiles``.

Stable output (stdout; ``<url>`` is the api url in use, without a trailing slash; ``<p>`` the
profile, see :mod:`coursecrafter_cli.credentials`; `` (profile <p>)`` is left out for
``default``):

=========  ==========================================================  ==================================================
command    human                                                       ``--json``
=========  ==========================================================  ==================================================
register   ``Registered <username> <<email>> as <role> on <url>.``     the user record ``{id, username, email, role}``
login      ``Logged in as <username> on <url> (profile <p>).``         ``{"username", "api_url", "profile"}``
logout     ``Logged out of <url> (profile <p>).`` /                    ``{"api_url", "username" (or null), "profile",
           ``Not logged in to <url> (profile <p>).``                   "logged_out": bool, "revoked": bool}``
whoami     ``<username> <<email>> (<role>) on <url> (profile <p>)``    the user record ``{id, username, email, role}``
           (with ``$COURSECRAFTER_TOKEN``: ``(automation token         plus ``api_url`` and ``profile`` (null with a
           from $COURSECRAFTER_TOKEN)``)                               token)
profiles   ``* <p>  <username> on <url>`` per saved login (``*``:       ``[{profile, username, api_url, current}]``
           the profile in use)
=========  ==========================================================  ==================================================

A profile holds one login.  ``login`` to another account or server in a profile that holds
one asks first on a terminal (``--replace`` skips the question; without a terminal it is
required, exit 2 otherwise); the replaced session is logged out on its server.

``logout`` always removes the local credentials; when the server could not be told it also
prints ``warning: could not revoke the session on the server ...; local credentials
removed`` on stderr and still exits 0.  Tokens and passwords are never printed.
"""

import contextlib
from typing import Annotated

import typer

from coursecrafter_cli.client import Client
from coursecrafter_cli.config import DEFAULT_PROFILE
from coursecrafter_cli.credentials import (
    Credentials,
    LocalCredentialStore,
    MemoryCredentialStore,
    SavedLogin,
    list_profiles,
)
from coursecrafter_cli.errors import CourseCrafterError
from coursecrafter_cli.commands import common
from coursecrafter_cli.commands.common import (
    ApiUrlOption,
    ExitCode,
    ProfileOption,
    JsonOption,
    PasswordStdinOption,
    ask,
    emit,
    emit_json,
    handle_errors,
    info,
    make_client,
    profile_name,
    read_password,
    stdin_is_tty,
    usage_error,
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
    profile: ProfileOption = None,
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


ReplaceOption = Annotated[
    bool,
    typer.Option("--replace", help="Replace the profile's login to another account or server "
                 "without asking (that session is logged out)."),
]


def _confirm_replace(saved: SavedLogin, username: str, api_url: str, replace: bool) -> None:
    """A profile holds one login: replacing it with another account or server is asked for
    on a terminal, needs ``--replace`` without one, and never happens silently."""
    if replace:
        return
    held = f"profile '{saved.profile}' is logged in as {saved.username} on {saved.api_url}"
    if not stdin_is_tty():
        usage_error(f"{held}; to keep both logins use another profile (--profile NAME), "
                    "or pass --replace to log that one out")
    info(f"{held[0].upper()}{held[1:]} (keep both with --profile NAME).")
    if not typer.confirm(f"Log that out and log in as {username} on {api_url}?", default=False,
                         err=True):
        info("aborted; nothing was changed")
        raise typer.Exit(int(ExitCode.ERROR))


def _suffix(profile: str) -> str:
    return "" if profile == DEFAULT_PROFILE else f" (profile {profile})"


@handle_errors
def login(
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
    replace: ReplaceOption = False,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Log in and keep the session in a profile (the refresh token in the OS keyring when
    there is one). A profile holds one login; keep several with --profile NAME."""
    username = ask(username, "--username", "Username")
    with make_client(api_url) as client:
        store = client.credential_store
        saved = store.saved_login() if isinstance(store, LocalCredentialStore) else None
        other = saved is not None and (saved.api_url, saved.username.lower()) != (
            client.api_url, username.lower())
        previous: Credentials | None = None
        if saved is not None and other:
            _confirm_replace(saved, username, client.api_url, replace)
            with contextlib.suppress(CourseCrafterError):
                previous = store.load()
        password = read_password(password_stdin)
        result = client.login(username, password)
    if previous is not None:  # replaced: end that session on its server too (best effort)
        with Client(previous.api_url, credential_store=MemoryCredentialStore(previous),
                    transport=common.transport_factory()) as old:
            revoked = old.logout()
        info(f"logged out {previous.username} on {previous.api_url}"
             + ("" if revoked else " here (the server could not be told)"))
    name = profile_name()
    if json_output:
        emit_json({**result, "profile": name})
    else:
        emit(f"Logged in as {result['username']} on {result['api_url']}{_suffix(name)}.")


@handle_errors
def logout(
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
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
        emit_json({"api_url": url, "username": username, "profile": profile_name(),
                   "logged_out": logged_out, "revoked": revoked})
    elif logged_out:
        emit(f"Logged out of {url}{_suffix(profile_name())}.")
    else:
        emit(f"Not logged in to {url}{_suffix(profile_name())}.")


@handle_errors
def whoami(
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the logged-in user (exit 4 when not logged in)."""
    with make_client(api_url) as client:
        me = client.whoami()
        url = client.api_url
        by_token = client.uses_token
    # With an automation token no saved login is used: say so instead of naming a profile.
    name = None if by_token else profile_name()
    if json_output:
        emit_json({**me, "api_url": url, "profile": name})
    else:
        how = "automation token from $COURSECRAFTER_TOKEN" if by_token else f"profile {name}"
        emit(f"{me.get('username')} <{me.get('email')}> ({me.get('role')}) on {url} ({how})")


@handle_errors
def profiles(profile: ProfileOption = None, json_output: JsonOption = False) -> None:
    """List the saved logins (profiles): name, account and server; '*' marks the one in use."""
    current = profile_name()
    logins = list_profiles()
    if json_output:
        emit_json([{"profile": p.profile, "username": p.username, "api_url": p.api_url,
                    "current": p.profile == current} for p in logins])
        return
    if not logins:
        info("No saved logins; run `coursecrafter login` (add --profile NAME for another).")
    width = max((len(p.profile) for p in logins), default=0)
    for p in logins:
        mark = "*" if p.profile == current else " "
        emit(f"{mark} {p.profile:<{width}}  {p.username} on {p.api_url}")


def add_to(app: typer.Typer) -> None:
    """Register the auth commands on ``app``."""
    app.command("register")(register)
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
    app.command("profiles")(profiles)
