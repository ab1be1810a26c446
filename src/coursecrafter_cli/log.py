"""The SDK's one logger, ``coursecrafter_cli``: its warnings are logged, never printed.

A library must not write to a program's stderr, so the SDK reports what a user should know
but need not stop for (e.g. "no OS keyring available; storing the refresh token in <file>")
as ``WARNING`` records of this logger.  It has a ``NullHandler``: they show once the program
configures logging (``logging.basicConfig()``).  The ``coursecrafter`` command shows them as
``warning: <message>`` lines on stderr through :func:`forward_warnings`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["LOGGER_NAME", "logger", "warn", "forward_warnings"]

LOGGER_NAME = "coursecrafter_cli"
logger = logging.getLogger(LOGGER_NAME)
logger.addHandler(logging.NullHandler())


def warn(message: str) -> None:
    """Log one warning (a leading ``warning: `` is dropped: the level says it)."""
    logger.warning("%s", message.removeprefix("warning: "))


class _Forward(logging.Handler):
    def __init__(self, show: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._show = show

    def emit(self, record: logging.LogRecord) -> None:
        self._show(record.getMessage())


@contextmanager
def forward_warnings(show: Callable[[str], None]) -> Iterator[None]:
    """While inside, hand each warning of the SDK's logger to ``show`` (the CLI's
    ``warning:`` line)."""
    handler = _Forward(show)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
