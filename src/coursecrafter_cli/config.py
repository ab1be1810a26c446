"""Where the CLI keeps its state, and which server it talks to.

* Config dir: ``$COURSECRAFTER_CONFIG_DIR``, else the platformdirs user config dir
  ``coursecrafter`` (``~/.config/coursecrafter`` on Linux).  Created with mode 0700.
* API url: the explicit argument (``--api-url``), else ``$COURSECRAFTER_API_URL``, else the
  url saved at login, else :data:`DEFAULT_API_URL`.  Trailing slashes are dropped.
* Profile (which saved login: a server and an account): the explicit argument (``--profile``),
  else ``$COURSECRAFTER_PROFILE``, else ``default``.  A name is 1 to 64 letters, digits, ``.``,
  ``_`` or ``-``, starting with a letter or digit (it names a directory).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_PROFILE",
    "ENV_PROFILE",
    "check_profile_name",
    "is_profile_name",
    "resolve_profile",
    "ENV_API_URL",
    "ENV_CONFIG_DIR",
    "ENV_CREDENTIAL_STORE",
    "ENV_TOKEN",
    "config_dir",
    "ensure_config_dir",
    "normalize_api_url",
    "resolve_api_url",
]

DEFAULT_API_URL = "http://127.0.0.1:8000"
ENV_API_URL = "COURSECRAFTER_API_URL"
ENV_CONFIG_DIR = "COURSECRAFTER_CONFIG_DIR"
ENV_CREDENTIAL_STORE = "COURSECRAFTER_CREDENTIAL_STORE"
#: An automation token (``cct_...``): used instead of the stored session when set.
ENV_TOKEN = "COURSECRAFTER_TOKEN"
#: Which saved login (server + account) to use.
ENV_PROFILE = "COURSECRAFTER_PROFILE"
DEFAULT_PROFILE = "default"

_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

APP_NAME = "coursecrafter"


def config_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config dir: ``explicit``, else ``$COURSECRAFTER_CONFIG_DIR``, else the user config dir.

    Does not create it (see :func:`ensure_config_dir`).
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_CONFIG_DIR)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def ensure_config_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700, parents as needed) if missing; return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def normalize_api_url(url: str) -> str:
    """Strip whitespace and trailing slashes; require an http(s) scheme."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"API url must start with http:// or https://, got {url!r}")
    return url


def resolve_api_url(explicit: str | None = None, saved: str | None = None) -> str:
    """Pick the API url: ``explicit``, else ``$COURSECRAFTER_API_URL``, else ``saved``
    (the url recorded at login), else :data:`DEFAULT_API_URL`."""
    for candidate in (explicit, os.environ.get(ENV_API_URL), saved):
        if candidate:
            return normalize_api_url(candidate)
    return DEFAULT_API_URL


def is_profile_name(name: str) -> bool:
    """Whether ``name`` can name a profile (it becomes a directory name)."""
    return bool(_PROFILE_NAME.fullmatch(name))


def check_profile_name(name: str) -> str:
    """``name`` if it can name a profile, else :class:`ValueError` saying what a name may be."""
    if not is_profile_name(name):
        raise ValueError(
            f"invalid profile name {name!r}: use 1 to 64 letters, digits, dots, underscores or "
            "hyphens, starting with a letter or digit"
        )
    return name


def resolve_profile(explicit: str | None = None) -> str:
    """The profile in use: ``explicit``, else ``$COURSECRAFTER_PROFILE``, else ``default``."""
    for candidate in (explicit, os.environ.get(ENV_PROFILE)):
        if candidate and candidate.strip():
            return check_profile_name(candidate.strip())
    return DEFAULT_PROFILE
