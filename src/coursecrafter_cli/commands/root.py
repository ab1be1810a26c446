"""The root ``coursecrafter`` command group: every command gets plain help with examples
(:mod:`.help`), and click's usage errors become one ``error: <message> (see '<command>
--help')`` line with exit 2 instead of typer's boxed rendering."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from coursecrafter_cli.commands import help as cli_help
from coursecrafter_cli.commands.common import ExitCode, ProfileOption, error, select_profile

__all__ = ["ProfileOption", "RootGroup"]

# typer >= 0.25 carries its own copy of click: its exception classes, through public names.
_UsageError: Any = typer.BadParameter.__mro__[1]
_ClickException: Any = _UsageError.__mro__[1]


class RootGroup(TyperGroup):
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
