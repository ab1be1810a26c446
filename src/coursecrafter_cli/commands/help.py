"""What ``--help`` shows: examples under every command, the exit codes under the root, and
option/argument names without raw type placeholders (``<bool>``, ``<int range>``, ``{FILE}``).

Typer renders parameter types as ``<type>`` tags; :class:`HelpFormatter` turns them into the
conventional forms (``FILE``, ``N``, ``[a|b]``, nothing for a flag) as the help is written.
:func:`finish` walks the built click command tree once, giving every command its examples and
that formatter; ``tests/cli`` checks that no command is left without examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import typer

#: The exit codes, as the root ``--help`` and docs/cli.md list them.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (1, "error (server unreachable, not found, rate limited, upload failed...)"),
    (2, "usage: a bad command line, a missing or unreadable file"),
    (4, "not logged in, session expired or revoked, wrong password, bad token"),
    (5, "the video failed (status, wait, upload --wait, retry --wait)"),
    (130, "interrupted (Ctrl-C); run the same upload again to resume"),
)

ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("COURSECRAFTER_API_URL", "server to talk to (else the one the profile logged in to)"),
    ("COURSECRAFTER_PROFILE", "saved login to use (like --profile; default 'default')"),
    ("COURSECRAFTER_TOKEN", "automation token, used ahead of any saved login"),
    ("COURSECRAFTER_CONFIG_DIR", "where logins and upload resume state are kept"),
    ("NO_COLOR", "no colours"),
)

#: Examples by command path (without the program name).
EXAMPLES: dict[str, Sequence[str]] = {
    "": ("coursecrafter login --username ada",
         "coursecrafter upload lecture.mp4 --course COURSE_ID --wait",
         "coursecrafter --profile work whoami"),
    "register": ("coursecrafter register --username ada --email ada@example.edu",
                 "printf '%s\\n' \"$PASSWORD\" | coursecrafter register -u ada "
                 "--email ada@example.edu --password-stdin"),
    "login": ("coursecrafter login --username ada",
              "coursecrafter login --profile school --api-url https://cc.school.edu -u ada",
              "coursecrafter login -u ada --password-stdin < password.txt"),
    "logout": ("coursecrafter logout", "coursecrafter logout --profile school"),
    "whoami": ("coursecrafter whoami", "coursecrafter whoami --profile school --json"),
    "profiles": ("coursecrafter profiles", "coursecrafter profiles --json"),
    "upload": ("coursecrafter upload lecture.mp4 --course COURSE_ID --title 'Week 1'",
               "coursecrafter upload lecture.mp4 --wait --until playable",
               "coursecrafter upload slides.pdf --course COURSE_ID --attachment",
               "coursecrafter upload big.mkv --limit-rate 20M   # again after Ctrl-C: resumes"),
    "status": ("coursecrafter status VIDEO_ID", "coursecrafter status VIDEO_ID --json"),
    "wait": ("coursecrafter wait VIDEO_ID", "coursecrafter wait VIDEO_ID --until playable "
             "--timeout 600"),
    "retry": ("coursecrafter retry VIDEO_ID --wait",),
    "open": ("coursecrafter open VIDEO_ID", "coursecrafter open VIDEO_ID --no-browser"),
    "courses": ("coursecrafter courses create 'Algorithms 101'", "coursecrafter courses list"),
    "courses create": ("coursecrafter courses create 'Algorithms 101'",
                       "coursecrafter courses create 'Algorithms 101' --json"),
    "courses list": ("coursecrafter courses list", "coursecrafter courses list --json"),
    "courses show": ("coursecrafter courses show COURSE_ID",),
    "courses publish": ("coursecrafter courses publish COURSE_ID",),
    "courses unpublish": ("coursecrafter courses unpublish COURSE_ID",),
    "courses rename": ("coursecrafter courses rename COURSE_ID 'Algorithms II'",),
    "courses delete": ("coursecrafter courses delete COURSE_ID",
                       "coursecrafter courses delete COURSE_ID --yes   # in a script"),
    "videos": ("coursecrafter videos list --course COURSE_ID",),
    "videos list": ("coursecrafter videos list", "coursecrafter videos list --course COURSE_ID"),
    "videos rename": ("coursecrafter videos rename VIDEO_ID 'Week 1: sorting'",),
    "videos delete": ("coursecrafter videos delete VIDEO_ID",
                      "coursecrafter videos delete VIDEO_ID --yes   # in a script"),
    "token": ("coursecrafter token create --name 'room 101 capture' --expires 90d",),
    "token create": ("coursecrafter token create --name 'room 101 capture' --expires 90d",
                     "coursecrafter token create --name ci --scope read --json"),
    "token list": ("coursecrafter token list",),
    "token revoke": ("coursecrafter token revoke TOKEN_ID",),
}

_TYPE_TAG = re.compile(r"<([a-z][a-z ]*|[^<>|]+(?:\|[^<>|]+)+)>")
_NAMES = {"int": "N", "int range": "N", "float": "NUMBER", "float range": "NUMBER",
          "text": "TEXT", "path": "PATH", "file": "PATH", "uuid": "ID"}


def _plain_type(match: re.Match[str], *, has_metavar: bool) -> str:
    tag = match.group(1)
    if "|" in tag:
        return f"[{tag}]"
    if tag == "bool" or has_metavar:
        return ""
    return _NAMES.get(tag, tag.upper().replace(" ", "_"))


def plain_term(term: str) -> str:
    """``FILE <file>`` -> ``FILE``; ``--wait <bool>`` -> ``--wait``; ``-c <int range>`` ->
    ``-c N``; ``--until <playable|ready>`` -> ``--until [playable|ready]``."""
    has_metavar = bool(re.search(r"(?:^|\s)[A-Z][A-Z_]*(?=\s*<)", term))
    text = _TYPE_TAG.sub(lambda m: _plain_type(m, has_metavar=has_metavar), term)
    return re.sub(r"\s+", " ", text).strip()


def plain_usage(args: str) -> str:
    """``[OPTIONS] {FILE}`` -> ``[OPTIONS] FILE`` (typer braces required arguments)."""
    return re.sub(r"\{([A-Z_][A-Z0-9_]*)\}", r"\1", args)


# typer >= 0.25 carries its own copy of click: reach click's classes through typer's public ones.
_BaseFormatter: Any = typer.Context.formatter_class


class HelpFormatter(_BaseFormatter):  # type: ignore[misc]
    """click's formatter, with typer's type tags made conventional."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, plain_usage(args), prefix)

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30,
                 col_spacing: int = 2) -> None:
        super().write_dl([(plain_term(term), text) for term, text in rows], col_max, col_spacing)


class HelpContext(typer.Context):
    formatter_class = HelpFormatter


def examples_epilog(lines: Sequence[str]) -> str:
    # "\b" keeps click from re-wrapping the paragraph.
    return "\b\nExamples:\n" + "\n".join(f"  $ {line}" for line in lines)


def root_epilog() -> str:
    codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
    env = "\n".join(f"  {name:<25} {meaning}" for name, meaning in ENVIRONMENT)
    return (f"{examples_epilog(EXAMPLES[''])}\n\n\b\nExit codes:\n{codes}\n\n\b\n"
            f"Environment:\n{env}\n\nRun 'coursecrafter COMMAND --help' for a command's "
            "options and examples.")


def walk(command: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(path, command)`` for the click ``command`` and everything below it."""
    yield path, command
    if isinstance(getattr(command, "commands", None), dict):
        for name, sub in command.commands.items():
            yield from walk(sub, f"{path} {name}".strip())


def finish(root: Any) -> None:
    """Give every command its examples (the root: examples, exit codes and environment) and
    the plain help formatter."""
    for path, command in walk(root):
        command.context_class = HelpContext
        if path == "":
            command.epilog = root_epilog()
        elif path in EXAMPLES:
            command.epilog = examples_epilog(EXAMPLES[path])
