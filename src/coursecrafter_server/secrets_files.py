"""Generated-on-first-start secrets in COURSECRAFTER_HOME, written with mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the start (no window where it is world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    # Atomic, and link() semantics mean a concurrent first start by another process wins cleanly.
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create(path: Path, make: callable) -> bytes:  # type: ignore[valid-type]
    if not path.exists():
        write_private(path, make())
    return path.read_bytes()


def random_secret() -> bytes:
    return secrets.token_hex(32).encode()
