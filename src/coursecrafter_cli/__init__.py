"""CourseCrafter SDK and command-line client.

>>> from coursecrafter_cli import Client, NotLoggedIn
>>> with Client() as cc:                       # doctest: +SKIP
...     cc.login("alice", password)
...     print(cc.whoami().role)

See docs/sdk.md for a guide; :mod:`coursecrafter_cli.client` (``Client``) and
:mod:`coursecrafter_cli.async_client` (``AsyncClient``, the same methods awaitable), both
built on :mod:`coursecrafter_cli.core`; :mod:`coursecrafter_cli.models` for the typed results;
:mod:`coursecrafter_cli.errors` for the exception tree; :mod:`coursecrafter_cli.credentials`
for where tokens are kept; :mod:`coursecrafter_cli.uploads` for resumable direct-to-storage
uploads (``Client.upload``); :mod:`coursecrafter_cli.log` for the SDK's warnings.  This
package imports nothing server-side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    InvalidArgument,
    NotFound,
    NotLoggedIn,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    UploadError,
    ValidationError,
    VideoFailed,
    WaitTimeout,
)
if TYPE_CHECKING:  # pragma: no cover - imported lazily, see __getattr__
    from coursecrafter_cli.async_client import AsyncClient
    from coursecrafter_cli.models import (
        Course,
        Login,
        NewToken,
        Rendition,
        Token,
        User,
        Video,
        VideoError,
    )

_MODELS = frozenset({"Course", "Login", "NewToken", "Rendition", "Token", "User", "Video",
                     "VideoError"})

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "User",
    "Login",
    "Course",
    "Video",
    "VideoError",
    "Rendition",
    "Token",
    "NewToken",
    "Credentials",
    "CredentialStore",
    "LocalCredentialStore",
    "MemoryCredentialStore",
    "CourseCrafterError",
    "InvalidArgument",
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
    "WaitTimeout",
    "VideoFailed",
]


def __getattr__(name: str) -> object:
    # Looked up lazily: the CLI's start-up needs none, and each costs time (asyncio's import,
    # making the records' dataclasses, scanning installed distributions).
    if name == "AsyncClient":
        from coursecrafter_cli.async_client import AsyncClient

        return AsyncClient
    if name in _MODELS:
        from coursecrafter_cli import models

        return getattr(models, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("coursecrafter")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
