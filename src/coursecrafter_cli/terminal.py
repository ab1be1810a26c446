"""Text from a server is data, never terminal commands.

A course title, a video's error message or a server's error text may carry ESC/CSI/OSC
sequences (set the window title, write the clipboard through OSC 52, forge hyperlinks, rewrite
earlier lines). Everything the CLI prints for humans goes through `printable`; `--json` output
is exact JSON (`json.dumps` escapes control characters itself).
"""

from __future__ import annotations

import re

# C0 controls (but tab and newline), DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode
# bidirectional overrides and isolates that reorder what a line appears to say.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NEWLINES = re.compile("[\n\x0b\x0c\r\x85\u2028\u2029]")


def printable(text: object, *, multiline: bool = False) -> str:
    """`text` with every control character removed (a tab becomes a space); newlines are kept
    only with `multiline`, otherwise they become spaces, so one value cannot forge more lines."""
    value = str(text).replace("\t", " ")
    value = value.replace("\r\n", "\n") if multiline else _NEWLINES.sub(" ", value)
    return _CONTROL.sub("", value)


__all__ = ["printable"]
