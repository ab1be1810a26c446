"""Exceptions raised by the CourseCrafter SDK.

Every exception the SDK raises on purpose derives from :class:`CourseCrafterError`,
so ``except CourseCrafterError`` is enough for a caller that only wants to report a
failure (a server answer that is not what the API promises, e.g. not JSON, raises
:class:`CourseCrafterError` itself).  The tree::

    CourseCrafterError
    ├── InvalidArgument           a bad argument (also a ValueError): unknown ``until``, a
    │                             malformed api url, ``concurrency=0``...
    ├── TransportError            the server could not be reached (DNS, refused, timeout, TLS)
    ├── CredentialStoreError      the local credential store (keyring / files) failed
    ├── UploadError               an upload could not finish (file unreadable or changed, a
    │                             part refused by storage, retries exhausted...)
    ├── WaitTimeout               ``wait_for_video(timeout=...)`` ran out (also a TimeoutError)
    ├── VideoFailed               the video ended ``failed`` (``wait_for_video(...,
    │                             raise_on_failure=True)``): ``.code``, ``.reason``, ``.video``
    └── APIError                  the server answered with an error status
        ├── AuthenticationError   401: bad credentials, bad / expired / revoked token
        │   └── NotLoggedIn       no usable session: log in again (`coursecrafter login`)
        ├── PermissionDenied      403
        ├── NotFound              404
        ├── Conflict              409 (e.g. the username or e-mail is taken)
        ├── ValidationError       422 (``.fields`` carries per-field messages when given)
        ├── RateLimited           429 (``.retry_after``: seconds to wait, or ``None``)
        └── ServerError           5xx

An :class:`APIError` carries ``status_code``, the server's machine-readable ``code``
and its human ``message`` (from the error body ``{"error": {"code", "message"}}``).
No exception ever carries a token or a password: neither in ``str()`` nor in ``repr()``.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

__all__ = [
    "CourseCrafterError",
    "InvalidArgument",
    "TransportError",
    "CredentialStoreError",
    "UploadError",
    "WaitTimeout",
    "VideoFailed",
    "APIError",
    "AuthenticationError",
    "NotLoggedIn",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "ValidationError",
    "RateLimited",
    "ServerError",
    "error_from_response",
]


class CourseCrafterError(Exception):
    """Base class of every error raised by the SDK."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidArgument(CourseCrafterError, ValueError):
    """A bad argument to the SDK (a ``ValueError`` too, so older ``except ValueError`` code
    keeps working)."""


class TransportError(CourseCrafterError):
    """The server could not be reached, or the connection failed mid-request.

    ``api_url`` is the server that was tried.  The message reads
    ``cannot reach the CourseCrafter server at <api_url>: <reason>``.
    """

    def __init__(self, message: str, *, api_url: str | None = None) -> None:
        super().__init__(message)
        self.api_url = api_url


class CredentialStoreError(CourseCrafterError):
    """The local credential store failed (e.g. a forced keyring is unavailable)."""


class UploadError(CourseCrafterError):
    """An upload could not finish for a reason other than an API error status: the file is
    empty, unreadable or changed while uploading, storage refused a part, or a part still
    failed after every retry.  ``resumable`` tells whether running the same upload again
    continues where it stopped (the resume state was kept)."""

    def __init__(self, message: str, *, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


class WaitTimeout(CourseCrafterError, TimeoutError):
    """``wait_for_video`` gave up after ``timeout`` seconds (a ``TimeoutError`` too).

    ``video_id``; ``status``: the last status seen (``"unknown"`` if no poll succeeded);
    ``timeout``: the seconds waited; ``video``: the last record polled, or ``None``.
    """

    def __init__(self, message: str, *, video_id: str, status: str, timeout: float,
                 video: Any = None) -> None:
        super().__init__(message)
        self.video_id = video_id
        self.status = status
        self.timeout = timeout
        self.video = video


class VideoFailed(CourseCrafterError):
    """The video ended ``failed`` (raised by ``wait_for_video(..., raise_on_failure=True)``).

    ``video``: the failed record (a :class:`~coursecrafter_cli.models.Video`); ``code``: the
    machine-readable reason (``not_media``, ``truncated``, ``too_large``...; ``"unknown"`` if
    the server gave none); ``reason``: the readable one.  ``str()`` reads
    ``video <id> failed: <reason> (<code>)``.
    """

    def __init__(self, video: Any) -> None:
        error = video.get("error") if isinstance(video, dict) else None
        error = error if isinstance(error, dict) else {}
        self.video = video
        self.video_id = str(video.get("id", "")) if isinstance(video, dict) else ""
        self.code = str(error.get("code") or "unknown")
        self.reason = str(error.get("message") or "no reason given")
        super().__init__(f"video {self.video_id} failed: {self.reason} ({self.code})")


class APIError(CourseCrafterError):
    """The server answered with an error status.

    Attributes:
        status_code: the HTTP status.
        code: the machine-readable error code from the body (``"http_<status>"`` when
            the body carries none).
        message: the human-readable message from the body.
        details: any other members of the body's ``error`` object (e.g. ``fields``).
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.details: dict[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, "
            f"code={self.code!r}, message={self.message!r})"
        )


class AuthenticationError(APIError):
    """401: wrong username/password, or a bad, expired or revoked token."""


class NotLoggedIn(AuthenticationError):
    """There is no usable session: no stored credentials, or the refresh token was
    rejected (expired, revoked, logged out elsewhere).  Run ``coursecrafter login``."""

    def __init__(
        self,
        message: str = "not logged in; run `coursecrafter login`",
        *,
        status_code: int = 401,
        code: str = "not_logged_in",
    ) -> None:
        super().__init__(status_code, code, message)


class PermissionDenied(APIError):
    """403: the user is known but lacks the right for this action."""


class NotFound(APIError):
    """404: no such object (or it belongs to someone else)."""


class Conflict(APIError):
    """409: the request conflicts with existing state (e.g. duplicate username)."""


class ValidationError(APIError):
    """422: the request was rejected as invalid (e.g. a weak password).

    ``fields`` holds the body's per-field messages when the server sent them, else ``None``.
    """

    @property
    def fields(self) -> Any:
        return self.details.get("fields")


class RateLimited(APIError):
    """429: too many attempts.  ``retry_after`` is the number of seconds the server
    asked us to wait (from the ``Retry-After`` header), or ``None`` if it did not say."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status_code, code, message, details=details)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, "
            f"message={self.message!r}, retry_after={self.retry_after!r})"
        )


class ServerError(APIError):
    """5xx: the server failed; retrying later may help."""


_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: ValidationError,
    429: RateLimited,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), else ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_response(response: httpx.Response) -> APIError:
    """Build the fitting :class:`APIError` subclass for an error ``response``.

    Reads ``{"error": {"code", "message", ...}}``; falls back to ``http_<status>`` and the
    reason phrase when the body is not in that shape (a proxy's HTML page, say).
    """
    status = response.status_code
    code = f"http_{status}"
    message = response.reason_phrase or f"HTTP {status}"
    details: dict[str, Any] = {}
    try:
        body = response.json()
    except Exception:  # not JSON (or not read): keep the fallbacks
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            if isinstance(err.get("code"), str) and err["code"]:
                code = err["code"]
            if isinstance(err.get("message"), str) and err["message"]:
                message = err["message"]
            details = {k: v for k, v in err.items() if k not in ("code", "message")}
        elif isinstance(body.get("detail"), str):  # a bare framework error
            message = body["detail"]

    if status == 429:
        return RateLimited(
            status,
            code,
            message,
            details=details,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(status, code, message, details=details)
