"""Where the session (tokens) lives between commands.

A session is one :class:`Credentials`: api url, username, the short-lived access token with
its expiry, and the long-lived refresh token.  A :class:`CredentialStore` keeps at most one
session and offers a ``lock()`` that serialises token refreshes across threads and processes.

:class:`LocalCredentialStore` (what the CLI uses) splits the session in two:

* the refresh token goes to the OS keyring (service ``"coursecrafter"``, user
  ``"<username>@<api_url>"``).  Where no keyring works (headless Linux: the ``fail``
  backend, or set/get raises) it falls back to ``refresh_tokens.json`` in the config dir
  (mode 0600) and prints, the first time that file is created, one line on stderr::

      warning: no OS keyring available; storing the refresh token in <path> (mode 0600)

  ``$COURSECRAFTER_CREDENTIAL_STORE=keyring|file`` forces one side (default ``auto``);
  forcing ``keyring`` where none works raises :class:`CredentialStoreError`.
* api url, username, access token and its expiry go to ``credentials.json`` (mode 0600).
* refreshes are serialised with a :class:`filelock.FileLock` on ``credentials.lock``.

**Profiles.**  Each store keeps the session of one *profile* (a server and an account), so one
machine can stay logged in to several servers or accounts at once.  The profile is the
``profile`` argument, else ``$COURSECRAFTER_PROFILE``, else ``default``.  The ``default``
profile's files are the config dir's own (as before profiles existed, so an existing login
keeps working); profile ``NAME`` keeps the same three files in ``<config dir>/profiles/NAME/``,
and its keyring entry is ``"<username>@<api_url> [profile NAME]"`` (two profiles logged in to
the same account hold two separate sessions).  :func:`list_profiles` lists them.

Files are always created with ``os.open(..., 0o600)`` and atomically renamed into place,
never chmod-ed after the fact.  :class:`MemoryCredentialStore` keeps the session in memory
only (for SDK users who want no persistence, and for tests).

Tokens never appear in a ``repr()``, a message or a log line.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import filelock

from coursecrafter_cli import config
from coursecrafter_cli.errors import CredentialStoreError
from coursecrafter_cli.terminal import printable

__all__ = [
    "Credentials",
    "CredentialStore",
    "LocalCredentialStore",
    "MemoryCredentialStore",
    "KEYRING_SERVICE",
    "CREDENTIALS_FILE",
    "REFRESH_TOKENS_FILE",
    "LOCK_FILE",
    "PROFILES_DIR",
    "SavedLogin",
    "list_profiles",
    "profile_dir",
]

KEYRING_SERVICE = "coursecrafter"
CREDENTIALS_FILE = "credentials.json"
REFRESH_TOKENS_FILE = "refresh_tokens.json"
LOCK_FILE = "credentials.lock"
PROFILES_DIR = "profiles"

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Credentials:
    """One login session.  ``expires_at`` is the access token's expiry (Unix seconds,
    computed locally from ``expires_in`` so server clock skew does not matter);
    ``expires_in`` is the lifetime the server gave the access token, when known."""

    api_url: str
    username: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    expires_in: float | None = None

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until the access token expires (negative once expired)."""
        return self.expires_at - (time.time() if now is None else now)


@runtime_checkable
class CredentialStore(Protocol):
    """Keeps at most one session.

    ``lock()`` must be re-entrant within a thread and exclude other threads (and, for a
    persistent store, other processes) that use the same storage; the client refreshes
    tokens only while holding it, re-reading the stored session first.
    """

    def load(self) -> Credentials | None: ...

    def save(self, credentials: Credentials) -> None: ...

    def clear(self) -> None: ...

    def lock(self) -> contextlib.AbstractContextManager[Any]: ...


class MemoryCredentialStore:
    """A session kept in memory only: nothing touches the disk or the keyring."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        self._credentials = credentials
        self._lock = threading.RLock()

    def load(self) -> Credentials | None:
        return self._credentials

    def save(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def clear(self) -> None:
        self._credentials = None

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock

    def __repr__(self) -> str:
        state = "empty" if self._credentials is None else repr(self._credentials)
        return f"MemoryCredentialStore({state})"


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class SavedLogin:
    """What a profile is logged in to (read from its ``credentials.json``; no token)."""

    profile: str
    api_url: str
    username: str


def profile_dir(config_dir: Path, profile: str) -> Path:
    """Where the files of ``profile`` live: the config dir itself for ``default``, else
    ``<config dir>/profiles/<profile>``.  ``profile`` must be a valid name."""
    name = config.check_profile_name(profile)
    return config_dir if name == config.DEFAULT_PROFILE else config_dir / PROFILES_DIR / name


def _saved_login(profile: str, directory: Path) -> SavedLogin | None:
    data = _read_json(directory / CREDENTIALS_FILE)
    url = data.get("api_url") if data else None
    user = data.get("username") if data else None
    if isinstance(url, str) and url and isinstance(user, str) and user:
        return SavedLogin(profile, url, user)
    return None


def list_profiles(config_dir: str | os.PathLike[str] | None = None) -> list[SavedLogin]:
    """Every profile that holds a login, ``default`` first, then by name."""
    root = config.config_dir(config_dir)
    found = [_saved_login(config.DEFAULT_PROFILE, root)]
    with contextlib.suppress(OSError):
        for entry in sorted((root / PROFILES_DIR).iterdir()):
            if entry.is_dir() and config.is_profile_name(entry.name):
                found.append(_saved_login(entry.name, entry))
    return [login for login in found if login is not None]


# --------------------------------------------------------------------------- files


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, the new file created with mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialStoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        return None  # a corrupt file is no session
    return data if isinstance(data, dict) else None


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# --------------------------------------------------------------------------- refresh-token vaults


class _KeyringVault:
    name = "keyring"

    @staticmethod
    def usable() -> bool:
        try:
            import keyring
            from keyring.backends import fail, null
        except Exception:  # pragma: no cover - keyring is a dependency
            return False
        try:
            backend = keyring.get_keyring()
        except Exception:
            return False
        return not isinstance(backend, (fail.Keyring, null.Keyring))

    def get(self, key: str) -> str | None:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, key)

    def set(self, key: str, token: str) -> None:
        import keyring

        keyring.set_password(KEYRING_SERVICE, key, token)

    def delete(self, key: str) -> None:
        import keyring
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(KEYRING_SERVICE, key)


class _FileVault:
    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def _entries(self) -> dict[str, str]:
        data = _read_json(self.path) or {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def get(self, key: str) -> str | None:
        return self._entries().get(key)

    def set(self, key: str, token: str) -> bool:
        """Store ``token``; return True when the file had to be created."""
        created = not self.path.exists()
        entries = self._entries()
        entries[key] = token
        write_private_file(self.path, json.dumps(entries, indent=2).encode())
        return created

    def delete(self, key: str) -> None:
        entries = self._entries()
        if key not in entries:
            return
        del entries[key]
        if entries:
            write_private_file(self.path, json.dumps(entries, indent=2).encode())
        else:
            _unlink(self.path)


def _stderr_warning(message: str) -> None:
    print(printable(message, multiline=True), file=sys.stderr, flush=True)


class LocalCredentialStore:
    """The CLI's store: keyring (or 0600 file) for the refresh token, ``credentials.json``
    for the rest, ``credentials.lock`` to serialise refreshes between processes.

    Args:
        config_dir: defaults to :func:`coursecrafter_cli.config.config_dir`.
        backend: ``"auto"`` (keyring, else file), ``"keyring"`` or ``"file"``; defaults to
            ``$COURSECRAFTER_CREDENTIAL_STORE`` or ``"auto"``.
        warn: called with the one-line warning when ``auto`` falls back to the file
            (default: print it on stderr).
        lock_timeout: seconds to wait for another process's refresh before giving up.
        profile: which saved login (see the module docs); default ``$COURSECRAFTER_PROFILE``,
            else ``default``.  An invalid name raises :class:`ValueError`.
    """

    def __init__(
        self,
        config_dir: str | os.PathLike[str] | None = None,
        *,
        backend: str | None = None,
        warn: Callable[[str], None] | None = None,
        lock_timeout: float = 60.0,
        profile: str | None = None,
    ) -> None:
        self.config_dir = config.config_dir(config_dir)
        self.profile = config.resolve_profile(profile)
        #: The profile's own files (credentials, refresh tokens, lock).
        self.profile_dir = profile_dir(self.config_dir, self.profile)
        chosen = (backend or os.environ.get(config.ENV_CREDENTIAL_STORE) or "auto").strip().lower()
        if chosen not in ("auto", "keyring", "file"):
            raise CredentialStoreError(
                f"{config.ENV_CREDENTIAL_STORE} must be auto, keyring or file, not {chosen!r}"
            )
        self.backend = chosen
        self._warn = warn or _stderr_warning
        self._lock_timeout = lock_timeout
        self._filelock: filelock.BaseFileLock | None = None
        self._keyring = _KeyringVault()
        self._file = _FileVault(self.profile_dir / REFRESH_TOKENS_FILE)

    # -- paths
    @property
    def credentials_path(self) -> Path:
        return self.profile_dir / CREDENTIALS_FILE

    @property
    def refresh_tokens_path(self) -> Path:
        return self._file.path

    @property
    def lock_path(self) -> Path:
        return self.profile_dir / LOCK_FILE

    def __repr__(self) -> str:
        return (f"LocalCredentialStore(config_dir={str(self.config_dir)!r}, "
                f"profile={self.profile!r}, backend={self.backend!r})")

    def _ensure_dirs(self) -> None:
        config.ensure_config_dir(self.config_dir)
        config.ensure_config_dir(self.profile_dir)

    # -- locking
    def lock(self) -> contextlib.AbstractContextManager[Any]:
        return self._locked()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._filelock is None:
            self._ensure_dirs()
            self._filelock = filelock.FileLock(
                str(self.lock_path), timeout=self._lock_timeout, mode=0o600
            )
        try:
            self._filelock.acquire()
        except filelock.Timeout:
            raise CredentialStoreError(
                f"timed out waiting for the credential lock {self.lock_path} "
                "(is another coursecrafter process stuck?)"
            ) from None
        try:
            yield
        finally:
            self._filelock.release()

    # -- vault selection
    def _vault(self, name: str) -> _KeyringVault | _FileVault:
        return self._keyring if name == "keyring" else self._file

    def _entry_key(self, api_url: str, username: str) -> str:
        key = f"{username}@{api_url}"
        # The default profile keeps the key it had before profiles existed.
        return key if self.profile == config.DEFAULT_PROFILE else f"{key} [profile {self.profile}]"

    def _store_refresh_token(self, key: str, token: str) -> str:
        """Put ``token`` in the keyring or the file; return which one was used."""
        if self.backend in ("auto", "keyring"):
            reason = None
            if self._keyring.usable():
                try:
                    self._keyring.set(key, token)
                    return "keyring"
                except Exception as exc:  # keyring backends raise all sorts
                    reason = type(exc).__name__
            if self.backend == "keyring":
                detail = f" ({reason})" if reason else ""
                raise CredentialStoreError(
                    f"no usable OS keyring{detail}, but {config.ENV_CREDENTIAL_STORE}=keyring; "
                    f"unset it or set it to 'file'"
                )
        self._ensure_dirs()
        try:
            created = self._file.set(key, token)
        except OSError as exc:
            raise CredentialStoreError(
                f"cannot write {self._file.path}: {exc.strerror or exc}"
            ) from None
        if created and self.backend == "auto":
            self._warn(
                "warning: no OS keyring available; storing the refresh token in "
                f"{self._file.path} (mode 0600)"
            )
        return "file"

    # -- the store protocol
    def saved_api_url(self) -> str | None:
        """The api url of the stored session (reads ``credentials.json`` only)."""
        data = _read_json(self.credentials_path)
        url = data.get("api_url") if data else None
        return url if isinstance(url, str) and url else None

    def saved_login(self) -> SavedLogin | None:
        """Which server and account this profile is logged in to (no token is read)."""
        return _saved_login(self.profile, self.profile_dir)

    def load(self) -> Credentials | None:
        data = _read_json(self.credentials_path)
        if not data:
            return None
        try:
            api_url = str(data["api_url"])
            username = str(data["username"])
            access_token = str(data["access_token"])
            expires_at = float(data["expires_at"])
            expires_in = float(data["expires_in"]) if data.get("expires_in") is not None else None
            where = str(data.get("refresh_token_store", "keyring"))
        except (KeyError, TypeError, ValueError):
            return None
        key = self._entry_key(api_url, username)
        try:
            refresh_token = self._vault(where).get(key)
        except CredentialStoreError:
            raise
        except Exception as exc:
            raise CredentialStoreError(
                f"cannot read the refresh token from the {where} store ({type(exc).__name__})"
            ) from None
        if not refresh_token:
            return None
        return Credentials(
            api_url=api_url,
            username=username,
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=expires_at,
            expires_in=expires_in,
        )

    def save(self, credentials: Credentials) -> None:
        self._ensure_dirs()
        previous = _read_json(self.credentials_path)
        key = self._entry_key(credentials.api_url, credentials.username)
        # Refresh token first: if we die between the two writes, the stored refresh
        # token is the live one, and a stale access token merely triggers a refresh.
        where = self._store_refresh_token(key, credentials.refresh_token)
        doc = {
            "version": _FORMAT_VERSION,
            "api_url": credentials.api_url,
            "username": credentials.username,
            "access_token": credentials.access_token,
            "expires_at": credentials.expires_at,
            "expires_in": credentials.expires_in,
            "refresh_token_store": where,
        }
        try:
            write_private_file(self.credentials_path, (json.dumps(doc, indent=2) + "\n").encode())
        except OSError as exc:
            raise CredentialStoreError(
                f"cannot write {self.credentials_path}: {exc.strerror or exc}"
            ) from None
        if previous:
            old_key = self._entry_key(str(previous.get("api_url")), str(previous.get("username")))
            old_where = str(previous.get("refresh_token_store", "keyring"))
            if (old_key, old_where) != (key, where):
                self._forget(old_where, old_key)

    def clear(self) -> None:
        previous = _read_json(self.credentials_path)
        _unlink(self.credentials_path)
        if previous:
            key = self._entry_key(str(previous.get("api_url")), str(previous.get("username")))
            self._forget(str(previous.get("refresh_token_store", "keyring")), key)

    def _forget(self, where: str, key: str) -> None:
        """Best-effort removal of a refresh token entry."""
        with contextlib.suppress(Exception):
            self._vault(where).delete(key)
