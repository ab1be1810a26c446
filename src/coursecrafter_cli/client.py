"""The synchronous CourseCrafter SDK client.

>>> from coursecrafter_cli import Client
>>> with Client("http://127.0.0.1:8000") as cc:          # doctest: +SKIP
...     cc.login("alice", "correct horse battery staple")
...     cc.whoami()
{'id': '...', 'username': 'alice', 'email': 'alice@example.com', 'role': 'instructor'}

Authenticated calls carry ``Authorization: Bearer <access token>``.  The client refreshes
the access token by itself: before a request when it expires within ``refresh_margin``
seconds (60; half the token's lifetime if that is shorter), and once after a 401 (then it
retries the request once).

A refresh presents the refresh token exactly once.  It happens while holding the
credential store's lock (a file lock in the config dir for the CLI) and, inside the lock,
re-reads the stored session first: if another thread or process already rotated the
tokens, those are used and no refresh request is sent.  So several CLI processes sharing a
config dir never present the same refresh token twice (which the server would treat as a
stolen token and answer by revoking the whole session).  If the server rejects the refresh
token (401), the stored session is wiped and :class:`NotLoggedIn` is raised.

Errors map to :mod:`coursecrafter_cli.errors`: an unreachable server raises
:class:`TransportError`, an error status the fitting :class:`APIError` subclass.

Courses, videos and uploads (:meth:`Client.create_course`, :meth:`Client.list_courses`,
:meth:`Client.list_videos`, :meth:`Client.get_video`, :meth:`Client.wait_for_video`,
:meth:`Client.retry_video`, :meth:`Client.upload`) build on :meth:`Client.request` /
:meth:`Client.request_json`, which do auth, refresh, retry and error mapping; uploads are
described in :mod:`coursecrafter_cli.uploads`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from coursecrafter_cli import config
from coursecrafter_cli.devices import COOKIE_NAME as DEVICE_COOKIE
from coursecrafter_cli.devices import DeviceCookieFile
from coursecrafter_cli.credentials import (
    CredentialStore,
    Credentials,
    LocalCredentialStore,
)
from coursecrafter_cli.errors import (
    AuthenticationError,
    CourseCrafterError,
    CredentialStoreError,
    NotLoggedIn,
    TransportError,
    error_from_response,
)

if TYPE_CHECKING:  # pragma: no cover
    from coursecrafter_cli.uploads import RetryPolicy, UploadEvent

__all__ = ["Client", "API_PREFIX", "DEFAULT_TIMEOUT", "DEFAULT_REFRESH_MARGIN", "TERMINAL_STATUSES"]

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_REFRESH_MARGIN = 60.0
#: Video statuses after which nothing happens without the user (``retry`` revives ``failed``).
TERMINAL_STATUSES = frozenset({"ready", "failed"})
#: What ``wait_for_video(until=...)`` can wait for: ``playable`` (an early rendition can be
#: watched while the ladder is still being made; ``ready`` implies it) or ``ready``.
WAIT_UNTIL = ("playable", "ready")


def _user_agent() -> str:
    from coursecrafter_cli import __version__

    return f"coursecrafter-cli/{__version__}"


def _saved_api_url(store: CredentialStore) -> str | None:
    """The api url of the stored session, without touching the refresh token if possible."""
    try:
        peek = getattr(store, "saved_api_url", None)
        if callable(peek):
            return peek()
        creds = store.load()
    except CourseCrafterError:
        return None
    return creds.api_url if creds else None


class _BearerAuth(httpx.Auth):
    """httpx auth flow: fresh access token on the way out, one refresh + retry on a 401."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()  # buffer the body so that the retry can resend it
        creds = self._client._fresh_credentials()
        request.headers["Authorization"] = f"Bearer {creds.access_token}"
        response = yield request
        if response.status_code != 401:
            return
        response.read()  # free the connection before the refresh request
        creds = self._client._refresh(stale=creds, force=True)
        request.headers["Authorization"] = f"Bearer {creds.access_token}"
        yield request


class _TokenAuth(httpx.Auth):
    """httpx auth flow of an automation token: the same header every time, never a refresh."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class Client:
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

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        api_url: str | None = None,
        *,
        config_dir: str | os.PathLike[str] | None = None,
        credential_store: CredentialStore | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
        token: str | None = None,
    ) -> None:
        self._store: CredentialStore = (
            credential_store if credential_store is not None else LocalCredentialStore(config_dir)
        )
        #: Where resume state lives (``<config_dir>/uploads``): the explicit ``config_dir``,
        #: else the credential store's, else ``$COURSECRAFTER_CONFIG_DIR`` / the user dir.
        self.config_dir: Path = (
            config.config_dir(config_dir)
            if config_dir is not None
            else Path(getattr(self._store, "config_dir", None) or config.config_dir())
        )
        saved_url: str | None = None
        if not api_url and not os.environ.get(config.ENV_API_URL):
            saved_url = _saved_api_url(self._store)
        self.api_url: str = config.resolve_api_url(api_url, saved_url)
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.RLock()
        self._creds: Credentials | None = None
        self._loaded = False
        self._token: str | None = (token or os.environ.get(config.ENV_TOKEN) or "").strip() or None
        self._token_user: str | None = None
        self._auth: httpx.Auth = _TokenAuth(self._token) if self._token else _BearerAuth(self)
        self._http = httpx.Client(
            base_url=self.api_url + API_PREFIX,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": _user_agent(), "Accept": "application/json"},
        )

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(api_url={self.api_url!r})"

    @property
    def credential_store(self) -> CredentialStore:
        return self._store

    @property
    def http(self) -> httpx.Client:
        """The underlying ``httpx.Client`` (base url ``<api_url>/api/v1``, no auth attached):
        for unauthenticated transfers such as PUTs to pre-signed storage URLs."""
        return self._http

    @property
    def uses_token(self) -> bool:
        """Whether requests carry an automation token (``token=`` / ``$COURSECRAFTER_TOKEN``)."""
        return self._token is not None

    @property
    def username(self) -> str | None:
        """The logged-in username for this api url, or ``None``.  With an automation token:
        its owner's (asked of the server once)."""
        if self._token is not None:
            if self._token_user is None:
                self._token_user = str(self.whoami()["username"])
            return self._token_user
        creds = self._session()
        return creds.username if creds else None

    # ------------------------------------------------------------------ auth API
    def register(self, username: str, email: str, password: str) -> dict[str, Any]:
        """Create an account; return the user record ``{id, username, email, role}``.

        Raises :class:`Conflict` (taken), :class:`ValidationError` (e.g. weak password).
        Does not log in.
        """
        return self.request_json(
            "POST",
            "/auth/register",
            json={"username": username, "email": email, "password": password},
            authenticated=False,
        )

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in and save the session in the credential store.

        Returns ``{"username", "api_url"}`` (never the tokens).  Raises
        :class:`AuthenticationError` for wrong credentials, :class:`RateLimited` (with
        ``retry_after``) when the server throttles login attempts.
        """
        now = self._clock()
        # The device cookie of an earlier login keeps this machine trusted across runs (a
        # Client with a non-persistent credential store keeps it for its own life only).
        devices = (DeviceCookieFile(self.config_dir)
                   if isinstance(self._store, LocalCredentialStore) else None)
        saved = devices.get(self.api_url, username) if devices else None
        tokens = self.request_json(
            "POST",
            "/auth/login",
            json={"username": username, "password": password},
            authenticated=False,
            headers={"Cookie": f"{DEVICE_COOKIE}={saved}"} if saved else None,
        )
        creds = self._credentials_from(tokens, username=username, now=now)
        with contextlib.suppress(httpx.CookieConflict):
            fresh = self._http.cookies.get(DEVICE_COOKIE)
            if devices and fresh:
                devices.set(self.api_url, username, fresh)
        with self._lock, self._store.lock():
            self._store.save(creds)
            self._creds, self._loaded = creds, True
        return {"username": username, "api_url": self.api_url}

    def logout(self) -> bool:
        """End the session: revoke it on the server, then wipe the local credentials.

        The local credentials are removed even when the server call fails (unreachable,
        error).  Returns ``True`` when the server confirmed the revocation, ``False`` when
        it could not be told or there was no session.
        """
        with self._lock, self._store.lock():
            try:
                creds = self._load_matching()
            except CredentialStoreError:
                creds = None  # unreadable: wipe what can be wiped
                self._store.clear()
            if creds is None:
                self._creds, self._loaded = None, True
                return False
            try:
                return self._server_logout(creds)
            except CourseCrafterError:
                return False
            finally:
                self._store.clear()
                self._creds, self._loaded = None, True

    def _server_logout(self, creds: Credentials) -> bool:
        # Caller holds the locks.  Never goes through the retrying auth flow: the body
        # carries the refresh token, which must match the one the retry would rotate.
        # The access token is sent as is, even if expired (the refresh token in the body is
        # what ends the session); only a server that answers 401 gets one refresh first.
        for attempt in range(2):
            response = self._send(
                "POST",
                "/auth/logout",
                json={"refresh_token": creds.refresh_token},
                headers={"Authorization": f"Bearer {creds.access_token}"},
                auth=None,
            )
            if response.status_code == 401 and attempt == 0:
                creds = self._refresh_locked(creds)  # rotates: presents the token once
                continue
            return response.is_success
        return False  # pragma: no cover

    def whoami(self) -> dict[str, Any]:
        """The logged-in user's record ``{id, username, email, role}`` (``GET /auth/me``).

        Raises :class:`NotLoggedIn` when there is no (longer a) session.
        """
        return self.request_json("GET", "/auth/me")

    # ------------------------------------------------------------------ courses
    def create_course(self, title: str, description: str = "") -> dict[str, Any]:
        """Create a course; return ``{id, title, description, published, created_at, updated_at}``."""
        return self.request_json(
            "POST", "/courses", json={"title": title, "description": description}
        )

    def list_courses(self) -> list[dict[str, Any]]:
        """The logged-in instructor's courses (each with ``published``, ``lecture_count`` and
        ``attachment_count``)."""
        return self.request_json("GET", "/courses")

    def get_course(self, course_id: str) -> dict[str, Any]:
        """One course (``GET /courses/{id}``); :class:`NotFound` when it is not yours."""
        return self.request_json("GET", f"/courses/{quote(course_id, safe='')}")

    def update_course(self, course_id: str, **changes: Any) -> dict[str, Any]:
        """``PATCH /courses/{id}`` with ``title``, ``description`` and/or ``published``."""
        return self.request_json("PATCH", f"/courses/{quote(course_id, safe='')}", json=changes)

    def publish_course(self, course_id: str) -> dict[str, Any]:
        """List the course for students; return the course."""
        return self.update_course(course_id, published=True)

    def unpublish_course(self, course_id: str) -> dict[str, Any]:
        """Back to a draft (students no longer see it); return the course."""
        return self.update_course(course_id, published=False)

    def rename_course(self, course_id: str, title: str) -> dict[str, Any]:
        """Change the course's title; return the course."""
        return self.update_course(course_id, title=title)

    def delete_course(self, course_id: str) -> None:
        """Delete the course (its videos stay, without a course)."""
        self.request("DELETE", f"/courses/{quote(course_id, safe='')}")

    # ------------------------------------------------------------------ automation tokens
    def create_token(self, name: str, *, scope: str = "upload",
                     expires_in: float | None = 90 * 24 * 3600) -> dict[str, Any]:
        """Make an automation token (needs a normal login); return ``{id, name, scope,
        created_at, expires_at, last_used_at, token}``.  ``token`` (``cct_...``) is the secret:
        the server never shows it again.  ``expires_in``: seconds, ``None`` for never."""
        body = {"name": name, "scope": scope,
                "expires_in": None if expires_in is None else int(expires_in)}
        return self.request_json("POST", "/tokens", json=body)

    def list_tokens(self) -> list[dict[str, Any]]:
        """Your automation tokens (``id, name, scope, created_at, expires_at, last_used_at``;
        never the secrets)."""
        return self.request_json("GET", "/tokens")

    def revoke_token(self, token_id: str) -> None:
        """Revoke one of your automation tokens; it is refused from then on."""
        self.request("DELETE", f"/tokens/{quote(token_id, safe='')}")

    # ------------------------------------------------------------------ videos
    def list_videos(self, course_id: str | None = None) -> list[dict[str, Any]]:
        """The logged-in instructor's videos (and attachments), optionally of one course
        (:class:`NotFound` "course not found" for a course that is not yours)."""
        params = {"course_id": course_id} if course_id else None
        return self.request_json("GET", "/videos", params=params)

    def get_video(self, video_id: str) -> dict[str, Any]:
        """One video record (``GET /videos/{id}``): status, progress, phase, error, results."""
        return self.request_json("GET", f"/videos/{quote(video_id, safe='')}")

    def rename_video(self, video_id: str, title: str) -> dict[str, Any]:
        """Change a video's (or attachment's) title (``PATCH /videos/{id}``); return it."""
        return self.request_json("PATCH", f"/videos/{quote(video_id, safe='')}",
                                 json={"title": title})

    def delete_video(self, video_id: str) -> None:
        """Delete a video or attachment and everything stored for it."""
        self.request("DELETE", f"/videos/{quote(video_id, safe='')}")

    def watch_url(self, video_id: str) -> str:
        """The browser watch page of a video: ``{api_url}/watch/{id}`` (no request is sent)."""
        return f"{self.api_url}/watch/{quote(video_id, safe='')}"

    def retry_video(self, video_id: str) -> dict[str, Any]:
        """Send a ``failed`` video back to the transcoding queue; return its record."""
        record = self.request_json("POST", f"/videos/{quote(video_id, safe='')}/retry")
        return record if isinstance(record, dict) else self.get_video(video_id)

    def wait_for_video(
        self,
        video_id: str,
        *,
        poll_interval: float = 2.0,
        timeout: float | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_consecutive_errors: int = 5,
        until: str = "ready",
    ) -> dict[str, Any]:
        """Poll ``GET /videos/{id}`` until the video is ``ready`` or ``failed``; return the
        last record (check its ``status``).  ``on_update`` gets every record polled.
        ``until="playable"`` returns as soon as the record says ``playable`` (its
        ``playback_url`` works while ``status`` may still be ``processing``).

        Transient failures (server unreachable, 5xx, 429) are tolerated up to
        ``max_consecutive_errors`` in a row.  Raises :class:`TimeoutError` after ``timeout``
        seconds (``None``: wait for ever).
        """
        from coursecrafter_cli.errors import RateLimited, ServerError

        if until not in WAIT_UNTIL:
            raise ValueError(f"until must be one of {', '.join(WAIT_UNTIL)}, not {until!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        errors = 0
        status = "unknown"
        while True:
            try:
                record = self.get_video(video_id)
            except (TransportError, ServerError, RateLimited):
                errors += 1
                if errors >= max_consecutive_errors:
                    raise
            else:
                errors = 0
                status = str(record.get("status"))
                if on_update is not None:
                    on_update(record)
                if status in TERMINAL_STATUSES or (until == "playable" and record.get("playable")):
                    return record
            if deadline is not None and time.monotonic() >= deadline:
                state = status if until == "ready" else f"{status} and not playable"
                raise TimeoutError(f"video {video_id} is still {state} after {timeout:g} s")
            sleep(poll_interval)

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
    ) -> dict[str, Any]:
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

        Raises :class:`UploadError` (file empty / unreadable / changed, a part refused or
        failing after every retry: ``.resumable`` tells whether running it again continues),
        and the usual :class:`APIError` s (415 unsupported type, 413 too large, 404 course...).
        ``KeyboardInterrupt`` leaves the resume state in place.
        """
        from coursecrafter_cli.uploads import Uploader

        return Uploader(self, retry=retry).upload(
            path, course_id=course_id, title=title, kind=kind, content_type=content_type,
            concurrency=concurrency, progress=progress, on_event=on_event, checksum=checksum,
            resume=resume, max_bandwidth=max_bandwidth,
        )

    # ------------------------------------------------------------------ generic requests
    def request(
        self,
        method: str,
        path: str,
        *,
        authenticated: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request to ``<api_url>/api/v1<path>`` and return the (successful) response.

        ``kwargs`` go to :meth:`httpx.Client.request` (``json``, ``params``, ``content``,
        ``headers``, ``timeout``...).  With ``authenticated`` (the default) the access token
        is attached and refreshed as needed; a 401 triggers one refresh and one retry, so
        the body must be replayable (bytes / json, not a one-shot generator).

        Raises :class:`TransportError` when the server is unreachable and the fitting
        :class:`APIError` subclass for an error status.
        """
        if authenticated and path.startswith(("http://", "https://")):
            if not path.startswith(self.api_url + "/"):
                raise ValueError("refusing to send credentials to a URL outside the API server")
        response = self._send(method, path, auth=self._auth if authenticated else None, **kwargs)
        if response.is_error:
            error = error_from_response(response)
            if authenticated and self._token is not None and response.status_code == 401:
                raise AuthenticationError(
                    401, error.code,
                    f"the automation token was refused: it is expired or revoked, or not one of "
                    f"{self.api_url} ({error.message})",
                    details=error.details,
                )
            raise error
        return response

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`request`, returning the decoded JSON body (``None`` for an empty one)."""
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CourseCrafterError(
                f"the server at {self.api_url} returned a response that is not JSON "
                f"({method} {path}, HTTP {response.status_code}); is this a CourseCrafter server?"
            ) from None

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise TransportError(
                f"cannot reach the CourseCrafter server at {self.api_url}: {reason}",
                api_url=self.api_url,
            ) from None

    # ------------------------------------------------------------------ session internals
    def _credentials_from(self, tokens: Any, *, username: str, now: float) -> Credentials:
        try:
            access = tokens["access_token"]
            refresh = tokens["refresh_token"]
            expires_in = float(tokens.get("expires_in", 0))
        except (TypeError, KeyError, ValueError, AttributeError):
            raise CourseCrafterError(
                f"the server at {self.api_url} sent an unexpected token response"
            ) from None
        if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
            raise CourseCrafterError(
                f"the server at {self.api_url} sent an unexpected token response"
            )
        return Credentials(
            api_url=self.api_url,
            username=username,
            access_token=access,
            refresh_token=refresh,
            expires_at=now + expires_in,
            expires_in=expires_in,
        )

    def _load_matching(self) -> Credentials | None:
        """The stored session, if it belongs to this client's api url."""
        creds = self._store.load()
        if creds is None or creds.api_url != self.api_url:
            return None
        return creds

    def _session(self) -> Credentials | None:
        with self._lock:
            if not self._loaded:
                # No lock needed: files are replaced atomically, and a read torn between a
                # concurrent rotation's two writes is reconciled under the lock in _refresh.
                self._creds = self._load_matching()
                self._loaded = True
            return self._creds

    def _not_logged_in(self, why: str = "not logged in") -> NotLoggedIn:
        return NotLoggedIn(f"{why} to {self.api_url}; run `coursecrafter login`")

    def _is_fresh(self, creds: Credentials) -> bool:
        margin = self._refresh_margin
        if creds.expires_in is not None:  # short-lived tokens: refresh in their 2nd half
            margin = min(margin, creds.expires_in / 2)
        return creds.seconds_left(self._clock()) > margin

    def _fresh_credentials(self) -> Credentials:
        """Credentials whose access token is not about to expire (refreshing if needed)."""
        with self._lock:
            creds = self._session()
            if creds is None:
                raise self._not_logged_in()
            if self._is_fresh(creds):
                return creds
            return self._refresh(stale=creds)

    def _refresh(self, stale: Credentials, *, force: bool = False) -> Credentials:
        """Replace ``stale`` (whose access token is expiring, or was just refused when
        ``force``) with fresh credentials, sending a refresh only if nobody else did."""
        with self._lock, self._store.lock():
            current = self._load_matching()
            if current is None:
                self._creds, self._loaded = None, True
                raise self._not_logged_in("your session has ended; not logged in")
            rotated_elsewhere = current.refresh_token != stale.refresh_token or (
                current.access_token != stale.access_token and self._is_fresh(current)
            )
            if rotated_elsewhere or (not force and self._is_fresh(current)):
                self._creds, self._loaded = current, True
                return current
            return self._refresh_locked(current)

    def _refresh_locked(self, current: Credentials) -> Credentials:
        """POST /auth/refresh with ``current``'s refresh token and save the result.
        The caller holds the store lock and has just read ``current`` from the store."""
        now = self._clock()
        response = self._send(
            "POST", "/auth/refresh", json={"refresh_token": current.refresh_token}, auth=None
        )
        if response.status_code == 401:
            self._store.clear()
            self._creds, self._loaded = None, True
            raise self._not_logged_in("your session has expired or was revoked; not logged in")
        if response.is_error:
            raise error_from_response(response)
        try:
            tokens = response.json()
        except ValueError:
            tokens = None
        creds = self._credentials_from(tokens, username=current.username, now=now)
        self._store.save(creds)
        self._creds, self._loaded = creds, True
        return creds

