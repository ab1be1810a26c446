"""The synchronous CourseCrafter SDK client.

>>> from coursecrafter_cli import Client
>>> with Client("http://127.0.0.1:8000") as cc:          # doctest: +SKIP
...     cc.login("alice", "correct horse battery staple")
...     cc.whoami().role
'instructor'

Every API method is declared once in :mod:`coursecrafter_cli.core` (shared with
:class:`~coursecrafter_cli.AsyncClient`), where the session rules are described: the access
token is refreshed by itself, a refresh presents the refresh token exactly once even with
several threads and processes sharing a config dir, and a refused refresh wipes the stored
session and raises :class:`NotLoggedIn`.  This module adds what is synchronous: the
``httpx.Client``, the driver that performs the core's actions with blocking I/O, and uploads
(:meth:`Client.upload`, described in :mod:`coursecrafter_cli.uploads`).

Errors map to :mod:`coursecrafter_cli.errors`: an unreachable server raises
:class:`TransportError`, an error status the fitting :class:`APIError` subclass.  Results
are typed records (:mod:`coursecrafter_cli.models`) that are still the server's JSON dicts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from coursecrafter_cli.core import (
    API_PREFIX,
    DEFAULT_REFRESH_MARGIN,
    DEFAULT_TIMEOUT,
    TERMINAL_STATUSES,
    WAIT_UNTIL,
    BaseClient,
    Flow,
    Locked,
    Sleep,
    Steps,
    T,
    models,
)
from coursecrafter_cli.errors import CourseCrafterError

if TYPE_CHECKING:  # pragma: no cover
    from coursecrafter_cli.models import Video
    from coursecrafter_cli.uploads import RetryPolicy, UploadEvent

__all__ = ["Client", "API_PREFIX", "DEFAULT_TIMEOUT", "DEFAULT_REFRESH_MARGIN",
           "TERMINAL_STATUSES", "WAIT_UNTIL"]


class Client(BaseClient):
    """A CourseCrafter API client (synchronous, thread-safe).

    Args:
        api_url: the server, e.g. ``http://127.0.0.1:8000`` (without ``/api/v1``).  Default:
            ``$COURSECRAFTER_API_URL``, else the url saved at login, else
            ``http://127.0.0.1:8000``.
        config_dir: where the default :class:`LocalCredentialStore` keeps its files
            (default ``$COURSECRAFTER_CONFIG_DIR`` or the user config dir).
        credential_store: where the session lives; e.g. ``MemoryCredentialStore()`` for no
            persistence.  Default: ``LocalCredentialStore(config_dir)``.
        transport: an ``httpx`` transport (``httpx.MockTransport`` in tests).
        timeout: seconds, or an ``httpx.Timeout``.
        refresh_margin: refresh the access token when it expires within this many seconds
            (or within half its lifetime, if that is shorter).
        clock: the time source (``time.time``); tests may pass a fake one.
        token: an automation token (``cct_...``, from ``coursecrafter token create``); default
            ``$COURSECRAFTER_TOKEN``.  When set, it is sent instead of the stored session (which
            is neither read nor refreshed), and a 401 raises :class:`AuthenticationError`
            saying the token is expired or revoked.
        profile: which saved login the default :class:`LocalCredentialStore` uses (default
            ``$COURSECRAFTER_PROFILE``, else ``default``); ignored with ``credential_store``.

    Raises :class:`InvalidArgument` for a malformed ``api_url``.  Use as a context manager,
    or call :meth:`close`.
    """

    _http_class = httpx.Client
    _http: httpx.Client

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def http(self) -> httpx.Client:
        """The underlying ``httpx.Client`` (base url ``<api_url>/api/v1``, no auth attached):
        for unauthenticated transfers such as PUTs to pre-signed storage URLs."""
        return self._http

    @property
    def username(self) -> str | None:
        """The logged-in username for this api url, or ``None``.  With an automation token:
        its owner's (asked of the server once)."""
        if self._token is not None and self._token_user is None:
            self.whoami()
        return super().username

    # ------------------------------------------------------------------ the driver
    def _run(self, flow: Flow[T]) -> T:
        """Perform a core flow's actions with blocking I/O; return its result."""
        steps = Steps(flow)
        while (action := steps.next()) is not None:
            try:
                steps.succeeded(self._perform(action))
            except CourseCrafterError as exc:
                steps.failed(exc)
        return steps.result

    def _perform(self, action: Any) -> Any:
        if isinstance(action, Sleep):
            return (action.sleep or time.sleep)(action.seconds)
        if isinstance(action, Locked):
            with self._lock, self._store.lock():
                return self._run(action.flow)
        try:
            return self._http.send(action)
        except httpx.RequestError as exc:
            raise self._unreachable(exc) from None

    # ------------------------------------------------------------------ uploads
    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        course_id: str | None = None,
        title: str | None = None,
        kind: str = "video",
        content_type: str | None = None,
        concurrency: int = 4,
        progress: Callable[[int, int], None] | None = None,
        on_event: Callable[[UploadEvent], None] | None = None,
        checksum: bool | str = True,
        resume: bool = True,
        max_bandwidth: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Video:
        """Upload a file straight to object storage; return the video record.

        Args:
            path: the file (never read whole into memory).
            course_id, title: where it goes and what it is called (title: the file name
                without extension by default).
            kind: ``"video"`` (transcoded) or ``"attachment"`` (slides, notes: stored as is).
            content_type: default guessed from the extension
                (:func:`coursecrafter_cli.uploads.guess_content_type`).
            concurrency: parts sent at once (threads; memory ~ concurrency x 1 MiB).
            progress: ``progress(bytes_done, bytes_total)``, monotonic.
            on_event: receives :class:`~coursecrafter_cli.uploads.UploadEvent` s (resumed,
                retry...).
            checksum: ``True`` computes the SHA-256 the server records (one extra read of the
                file), ``False`` skips it, a hex string is sent as is.
            resume: keep resume state and continue an interrupted upload of the same file.
            max_bandwidth: bytes per second for all parts together (``None``: no limit).
            retry: a :class:`~coursecrafter_cli.uploads.RetryPolicy`.

        Raises :class:`InvalidArgument` (``kind``, ``concurrency``), :class:`UploadError` (file
        empty / unreadable / changed, a part refused or failing after every retry:
        ``.resumable`` tells whether running it again continues), and the usual :class:`APIError` s (415 unsupported type, 413 too large, 404 course...).
        ``KeyboardInterrupt`` leaves the resume state in place.
        """
        from coursecrafter_cli.uploads import Uploader

        self._check_upload(kind, concurrency)
        return models.Video.from_dict(Uploader(self, retry=retry).upload(
            path, course_id=course_id, title=title, kind=kind, content_type=content_type,
            concurrency=concurrency, progress=progress, on_event=on_event, checksum=checksum,
            resume=resume, max_bandwidth=max_bandwidth,
        ))
