"""Resume state: which upload a file (unchanged, same server and user) belongs to, kept in
``<config dir>/uploads/<key>.json`` (0600) under a per-file lock (see the package docstring)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from coursecrafter_cli import config
from coursecrafter_cli.credentials import write_private_file
from coursecrafter_cli.errors import UploadError

STATE_DIR = "uploads"
STATE_VERSION = 1
#: Resume states older than this are deleted (the server aborts uploads after a day).
STATE_MAX_AGE = 7 * 24 * 3600.0



@dataclass(frozen=True)
class FileIdentity:
    path: str  #: absolute, symlinks resolved
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileIdentity:
        real = Path(path).expanduser().resolve()
        try:
            st = real.stat()
        except FileNotFoundError:
            raise UploadError(f"{path}: no such file") from None
        except OSError as exc:
            raise UploadError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise UploadError(f"{path} is not a regular file")
        return cls(str(real), st.st_size, st.st_mtime_ns, st.st_ino)

    def key(self, api_url: str, username: str) -> str:
        material = json.dumps(
            {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "inode": self.inode,
             "api_url": api_url, "username": username},
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:40]


class ResumeStore:
    """The resume state files: ``<dir>/<key>.json`` (0600) and their ``<key>.lock``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path(key).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable or corrupt: start over
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return None
        if not isinstance(data.get("upload_id"), str) or not isinstance(data.get("video_id"), str):
            return None
        return data

    def save(self, key: str, state: Mapping[str, Any]) -> None:
        config.ensure_config_dir(self.directory)
        write_private_file(self.path(key), json.dumps(dict(state), indent=1).encode())

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def prune(self, older_than: float = STATE_MAX_AGE) -> int:
        """Delete state files older than ``older_than`` seconds (their uploads expired on the
        server long ago; e.g. the file was edited after an interrupted upload)."""
        removed = 0
        cutoff = time.time() - older_than
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.directory):
                if entry.name.endswith(".json"):
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime < cutoff:
                            os.unlink(entry.path)
                            removed += 1
        return removed

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold ``<key>.lock``; :class:`UploadError` at once if another process holds it."""
        config.ensure_config_dir(self.directory)
        lock_path = self.directory / f"{key}.lock"
        lock = filelock.FileLock(str(lock_path), timeout=0, mode=0o600)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise UploadError(
                "another coursecrafter upload of this file is running (lock "
                f"{lock_path}); wait for it to finish"
            ) from None
        try:
            yield
        finally:
            # Unlinked while still held, so no lock files pile up (one per file ever uploaded).
            with contextlib.suppress(OSError):
                lock_path.unlink()
            lock.release()
