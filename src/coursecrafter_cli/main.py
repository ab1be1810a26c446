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
and exit 2, like every other error: :class:`_Group` handles click's exceptions itself instead
of typer's boxed rendering.  ``--help`` is plain text with examples (:mod:`.commands.help`);
``--install-completion`` / ``--show-completion [SHELL]`` are typer's shell completion.
"""

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import coursecrafter_cli
from coursecrafter_cli.commands import auth, courses, manage, tokens, upload, videos
from coursecrafter_cli.commands import help as cli_help
from coursecrafter_cli.commands.common import ExitCode, ProfileOption, error, select_profile


# typer >= 0.25 carries its own copy of click: its exception classes, through public names.
_UsageError: Any = typer.BadParameter.__mro__[1]
_ClickException: Any = _UsageError.__mro__[1]


class _Group(TyperGroup):
    """The root command: plain help with examples, and usage errors as one ``error:`` line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cli_help.finish(self)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        select_profile(None)  # a fresh run (tests invoke the app many times in one process)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `coursecrafter`, `... courses`
                typer.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
            else:
                where = exc.ctx.command_path if exc.ctx else "coursecrafter"
                error(f"{exc.format_message()} (see '{where} --help')")
            code = int(ExitCode.USAGE)
        except _ClickException as exc:
            error(exc.format_message())
            code = exc.exit_code
        except typer.Abort:  # Ctrl-C or end of input at a prompt
            error("aborted")
            code = int(ExitCode.INTERRUPTED)
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    name="coursecrafter",
    cls=_Group,
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
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
    profile: ProfileOption = None,
) -> None:
    """CourseCrafter command-line client."""


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
