"""The server's device cookie, kept between runs (mode 0600, beside the credentials).

A login that shows the cookie the server set at an earlier login to the same account is
trusted: a stranger guessing that account's password cannot lock this machine out. The cookie
is no credential on its own (it proves only that this machine logged in before), so it stays
after logout."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from coursecrafter_cli.credentials import write_private_file

COOKIE_NAME = "coursecrafter_device"
FILE_NAME = "device_cookies.json"
_MAX_ENTRIES = 50  # accounts x servers remembered; the oldest go first


class DeviceCookieFile:
    def __init__(self, config_dir: Path) -> None:
        self.path = Path(config_dir) / FILE_NAME

    @staticmethod
    def _key(api_url: str, username: str) -> str:
        return f"{api_url} {username.lower()}"

    def _entries(self) -> dict[str, str]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_bytes())
            if isinstance(data, dict):
                return {k: v for k, v in data.items() if isinstance(v, str)}
        return {}

    def get(self, api_url: str, username: str) -> str | None:
        return self._entries().get(self._key(api_url, username))

    def set(self, api_url: str, username: str, cookie: str) -> None:
        entries = self._entries()
        entries.pop(self._key(api_url, username), None)
        entries[self._key(api_url, username)] = cookie  # newest last
        kept = dict(list(entries.items())[-_MAX_ENTRIES:])
        # A file we cannot write only costs the trust at the next login: never fail a login.
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private_file(self.path, json.dumps(kept, indent=1).encode())
