"""CourseCrafter SDK and command-line client.

>>> from coursecrafter_cli import Client, NotLoggedIn
>>> with Client() as cc:                       # doctest: +SKIP
...     cc.login("alice", password)
...     print(cc.whoami()["role"])

See :mod:`coursecrafter_cli.client` for the client, :mod:`coursecrafter_cli.errors` for the
exception tree, :mod:`coursecrafter_cli.credentials` for where tokens are kept and
:mod:`coursecrafter_cli.uploads` for resumable direct-to-storage uploads (``Client.upload``).
This package imports nothing server-side.
"""

from __future__ import annotations

from coursecrafter_cli.client import Client
from coursecrafter_cli.credentials import (
    CredentialStore,
    Credentials,
    LocalCredentialStore,
    MemoryCredentialStore,
)
from coursecrafter_cli.errors import (
    APIError,
    AuthenticationError,
    Conflict,
    CourseCrafterError,
    CredentialStoreError,
    NotFound,
    NotLoggedIn,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    UploadError,
    ValidationError,
)

__all__ = [
    "__version__",
    "Client",
    "Credentials",
    "CredentialStore",
    "LocalCredentialStore",
    "MemoryCredentialStore",
    "CourseCrafterError",
    "TransportError",
    "CredentialStoreError",
    "APIError",
    "AuthenticationError",
    "NotLoggedIn",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "ValidationError",
    "RateLimited",
    "ServerError",
    "UploadError",
]


def __getattr__(name: str) -> str:
    # Looked up lazily: scanning installed distributions costs start-up time.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("coursecrafter")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
