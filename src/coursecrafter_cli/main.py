"""The ``coursecrafter`` command (entry point :func:`run`).

Commands live in :mod:`coursecrafter_cli.commands`, one module per area; each module
exposes ``add_to(app)`` (plain commands) or a ``typer.Typer`` sub-app added here with
``app.add_typer(module.app, name="courses")``.  Every command:

* takes ``--api-url URL`` and, when it prints a result, ``--json`` (placed after the
  command name); with ``--json`` stdout carries exactly one JSON document;
* writes messages, warnings and errors (``error: <message>``) on stderr; honours ``NO_COLOR``;
* never takes a password in argv (``--password-stdin`` or a hidden prompt);
* takes ``--profile NAME`` (also before the command name; or ``$COURSECRAFTER_PROFILE``);
* exits 0 ok, 1 error (including an unreachable server: ``error: cannot reach the
  CourseCrafter server at <url>: <reason>`` and rate limiting: ``error: <message> (rate
  limited); retry after <n> s``), 2 usage, 4 not logged in / auth failed, 5 video failed.

See :mod:`coursecrafter_cli.commands.auth`, :mod:`~coursecrafter_cli.commands.courses`,
:mod:`~coursecrafter_cli.commands.upload` and :mod:`~coursecrafter_cli.commands.videos` for the
exact output of each command.  Ctrl-C exits 130 (an interrupted upload resumes when the same
command is run again).

A bad command line (unknown option, missing argument, a file that is missing, a directory or
unreadable) is one ``error: <message> (see 'coursecrafter <command> --help')`` line on stderr
and exit 2, like every other error (:mod:`.commands.root` handles click's exceptions itself
instead of typer's boxed rendering).  ``--help`` is plain text with examples (:mod:`.commands.help`);
``--install-completion`` / ``--show-completion [SHELL]`` are typer's shell completion.
"""

from typing import Annotated

import typer

import coursecrafter_cli
from coursecrafter_cli import log
from coursecrafter_cli.commands import auth, common, courses, manage, tokens, upload, videos
from coursecrafter_cli.commands.root import ProfileOption, RootGroup

app = typer.Typer(
    name="coursecrafter",
    cls=RootGroup,
    help="Turn lecture recordings into streamable course videos.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, pwsh)
    rich_markup_mode=None,  # plain help: no boxes, no raw type tags
    pretty_exceptions_enable=False,  # tracebacks with locals could show a password
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"coursecrafter {coursecrafter_cli.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
    profile: ProfileOption = None,
) -> None:
    """CourseCrafter command-line client."""
    # The SDK logs its warnings; the command shows them as `warning:` lines on stderr.
    ctx.with_resource(log.forward_warnings(common.warn))


auth.add_to(app)
app.add_typer(courses.app, name="courses")
app.command("upload")(upload.upload)
videos.add_to(app)  # videos list, status, wait, retry
manage.add_to(app)  # videos rename, videos delete, open
app.add_typer(tokens.app, name="token")  # automation tokens


def run() -> None:
    """Console-script entry point."""
    app(prog_name="coursecrafter")


if __name__ == "__main__":  # pragma: no cover
    run()
