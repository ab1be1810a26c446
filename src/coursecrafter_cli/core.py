"""The sans-I/O core of the SDK: what :class:`~coursecrafter_cli.Client` and
:class:`~coursecrafter_cli.AsyncClient` share.

Every API call is written once, here, as a *flow*: a generator that builds the
``httpx.Request`` s, yields them, and turns the responses it is sent back into results (or
errors).  A flow never does I/O itself; it yields one of three actions and a client's
*driver* performs it:

* an ``httpx.Request``: send it, give back the ``httpx.Response`` (an unreachable server
  is thrown back into the flow as :class:`TransportError`);
* :class:`Sleep`: wait that long (``time.sleep`` or ``asyncio.sleep``);
* :class:`Locked`: run a sub-flow while holding the session locks (the client's own: a
  thread lock, or an ``asyncio`` lock; then the credential store's, which other processes
  share): a refresh presents the refresh token exactly once.

So the two clients differ only in their driver (``Client._run`` blocks, ``AsyncClient._run``
awaits) and their ``httpx`` client.  :class:`operation` turns a flow into a method of both:
declared once on :class:`BaseClient`, it returns the result on a :class:`Client` and an
awaitable on an :class:`AsyncClient`.

Session rules (the same for both clients): authenticated calls carry ``Authorization: Bearer
<access token>``; the token is refreshed before a call when it expires within
``refresh_margin`` seconds (or half its lifetime, if shorter) and once after a 401 (the call
is then sent again).  A refresh happens under the locks and re-reads the stored session
first: if another thread or process rotated the tokens meanwhile, those are used and no
refresh is sent (presenting a used refresh token would make the server revoke the whole
session).  A refresh the server refuses (401) wipes the stored session and raises
:class:`NotLoggedIn`.  With an automation token (``token=`` / ``$COURSECRAFTER_TOKEN``) the
token is sent as is, the stored session is neither read nor refreshed, and a 401 raises
:class:`AuthenticationError` saying the token is expired or revoked.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import os
import sys
import threading
import time
import types
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload
from urllib.parse import quote

import httpx

from coursecrafter_cli import config, log
from coursecrafter_cli.credentials import (
    CredentialStore,
    Credentials,
    LocalCredentialStore,
    MemoryCredentialStore,
)
from coursecrafter_cli.devices import COOKIE_NAME as DEVICE_COOKIE
from coursecrafter_cli.devices import DeviceCookieFile
from coursecrafter_cli.errors import (
    AuthenticationError,
    CourseCrafterError,
    CredentialStoreError,
    InvalidArgument,
    NotLoggedIn,
    RateLimited,
    ServerError,
    TransportError,
    VideoFailed,
    WaitTimeout,
    error_from_response,
)

if TYPE_CHECKING:  # pragma: no cover
    from coursecrafter_cli import models
    from coursecrafter_cli.async_client import AsyncClient
    from coursecrafter_cli.client import Client
    from coursecrafter_cli.models import Course, Login, NewToken, Token, User, Video
else:
    def _lazy_module(name: str) -> types.ModuleType:
        """``name``, loaded on its first attribute access (the stdlib's LazyLoader recipe)."""
        spec = importlib.util.find_spec(name)
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)
        loader.exec_module(module)
        return module

    # The typed records are made (nine dataclasses) when a first result is parsed: the CLI's
    # start-up, --help and shell completion need none.
    models = _lazy_module("coursecrafter_cli.models")

__all__ = [
    "API_PREFIX",
    "DEFAULT_TIMEOUT",
    "DEFAULT_REFRESH_MARGIN",
    "TERMINAL_STATUSES",
    "WAIT_UNTIL",
    "BaseClient",
    "Flow",
    "Locked",
    "Sleep",
    "Steps",
    "operation",
]

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_REFRESH_MARGIN = 60.0
#: Video statuses after which nothing happens without the user (``retry`` revives ``failed``).
TERMINAL_STATUSES = frozenset({"ready", "failed"})
#: What ``wait_for_video(until=...)`` can wait for: ``playable`` (an early rendition can be
#: watched while the ladder is still being made; ``ready`` implies it) or ``ready``.
WAIT_UNTIL = ("playable", "ready")
UPLOAD_KINDS = ("video", "attachment")

T = TypeVar("T")
P = ParamSpec("P")

#: A flow: yields actions (``httpx.Request``, :class:`Sleep`, :class:`Locked`), is sent their
#: outcomes, returns the call's result.
Flow = Generator[Any, Any, T]


class Sleep:
    """Action: wait ``seconds`` with ``sleep`` (the caller's function) or the driver's own."""

    __slots__ = ("seconds", "sleep")

    def __init__(self, seconds: float, sleep: Callable[[float], Any] | None = None) -> None:
        self.seconds = seconds
        self.sleep = sleep


class Locked:
    """Action: run ``flow`` holding the session locks; its result is sent back.  ``flow``
    itself must not yield :class:`Locked` (the async lock is not re-entrant)."""

    __slots__ = ("flow",)

    def __init__(self, flow: Flow[Any]) -> None:
        self.flow = flow


class Steps(Generic[T]):
    """Walks one flow for a driver: ``next()`` is the next action (``None`` once the flow has
    returned: its value is in ``result``); report each action's outcome with ``succeeded`` or
    ``failed`` (a :class:`CourseCrafterError`, raised inside the flow at its ``yield``)."""

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self._value: Any = None
        self._error: BaseException | None = None
        self.result: T

    def next(self) -> Any:
        try:
            if self._error is not None:
                error, self._error = self._error, None
                return self._flow.throw(error)
            value, self._value = self._value, None
            return self._flow.send(value)
        except StopIteration as stop:
            self.result = stop.value
            return None

    def succeeded(self, value: Any) -> None:
        self._value = value

    def failed(self, error: BaseException) -> None:
        self._error = error


class operation(Generic[P, T]):  # noqa: N801 - used as a decorator, like property
    """An API method declared once for both clients, from a flow.

    On a :class:`Client` it returns the result; on an :class:`AsyncClient` an awaitable of it.
    ``Client.get_video(cc, video_id)`` (through the class) works as well.
    """

    def __init__(self, flow: Callable[Concatenate[Any, P], Flow[T]]) -> None:
        self.flow = flow
        functools.update_wrapper(self, flow)  # type: ignore[arg-type]  # a callable object

    @functools.cached_property
    def __signature__(self) -> inspect.Signature:
        """For help() and inspect: the flow's parameters, and what the method returns
        (``Video``, not ``Flow[Video]``).  Made when asked, not at import."""
        signature = inspect.signature(self.flow)
        result = signature.return_annotation
        if isinstance(result, str) and result.startswith("Flow[") and result.endswith("]"):
            signature = signature.replace(return_annotation=result[5:-1])
        return signature

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> operation[P, T]: ...
    @overload
    def __get__(self, obj: AsyncClient, owner: type | None = None) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __get__(self, obj: Client, owner: type | None = None) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: BaseClient, owner: type | None = None) -> Callable[P, Any]: ...

    def __get__(self, obj: BaseClient | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        # A bound method of this callable: help() and inspect.signature() show the flow's.
        return types.MethodType(self, obj)

    def __call__(self, obj: BaseClient, *args: Any, **kwargs: Any) -> Any:
        return obj._run(self.flow(obj, *args, **kwargs))


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


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


def _user_agent() -> str:
    from coursecrafter_cli import __version__

    return f"coursecrafter-cli/{__version__}"


class BaseClient:
    """State, session rules and the API methods shared by :class:`Client` and
    :class:`AsyncClient` (see the module docs).  The arguments are documented on
    :class:`Client`; a subclass names its ``httpx`` client class (``_http_class``) and
    brings the driver (``_run``)."""

    _http_class: type[httpx.Client] | type[httpx.AsyncClient]
    _http: httpx.Client | httpx.AsyncClient

    def __init__(
        self,
        api_url: str | None = None,
        *,
        config_dir: str | os.PathLike[str] | None = None,
        credential_store: CredentialStore | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
        token: str | None = None,
        profile: str | None = None,
    ) -> None:
        # The store's one-time "no keyring" notice is logged, never printed (see `log`).
        self._store: CredentialStore = (
            credential_store if credential_store is not None
            else LocalCredentialStore(config_dir, warn=log.warn, profile=profile)
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
        try:
            self.api_url: str = config.resolve_api_url(api_url, saved_url)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.RLock()
        self._creds: Credentials | None = None
        self._loaded = False
        self._token: str | None = (token or os.environ.get(config.ENV_TOKEN) or "").strip() or None
        self._token_user: str | None = None
        self._timeout = timeout
        self._http = self._http_class(
            base_url=self.api_url + API_PREFIX, transport=transport, timeout=timeout,  # type: ignore[arg-type]
            headers={"User-Agent": _user_agent(), "Accept": "application/json"},
        )

    def _run(self, flow: Flow[T]) -> Any:  # pragma: no cover - each client has its driver
        raise NotImplementedError

    # ------------------------------------------------------------------ properties
    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self.api_url!r})"

    @property
    def credential_store(self) -> CredentialStore:
        return self._store

    @property
    def uses_token(self) -> bool:
        """Whether requests carry an automation token (``token=`` / ``$COURSECRAFTER_TOKEN``)."""
        return self._token is not None

    @property
    def username(self) -> str | None:
        """The logged-in username for this api url, or ``None``.  With an automation token:
        its owner's, once known (:meth:`whoami` asks the server)."""
        if self._token is not None:
            return self._token_user
        creds = self._session()
        return creds.username if creds else None

    def watch_url(self, video_id: str) -> str:
        """The browser watch page of a video: ``{api_url}/watch/{id}`` (no request is sent)."""
        return f"{self.api_url}/watch/{quote(video_id, safe='')}"

    # ------------------------------------------------------------------ auth API
    @operation
    def register(self, username: str, email: str, password: str) -> Flow[User]:
        """Create an account; return its :class:`~coursecrafter_cli.models.User`.

        Raises :class:`Conflict` (taken), :class:`ValidationError` (e.g. weak password).
        Does not log in.
        """
        body = {"username": username, "email": email, "password": password}
        return models.User.from_dict((yield from self._json("POST", "/auth/register", json=body,
                                                     authenticated=False)))

    @operation
    def login(self, username: str, password: str, *, save: bool = True) -> Flow[Login]:
        """Log in; return :class:`~coursecrafter_cli.models.Login` ``{username, api_url}``
        (never the tokens).

        ``save=True`` keeps the session in the credential store (the CLI's keyring / files by
        default), so later clients and ``coursecrafter`` commands are logged in too.
        ``save=False`` keeps it in this client's memory only: nothing is written to (or read
        from) the disk or the keyring, refreshed tokens included; it ends with the client.

        Raises :class:`AuthenticationError` for wrong credentials, :class:`RateLimited` (with
        ``retry_after``) when the server throttles login attempts.
        """
        now = self._clock()
        # The device cookie of an earlier login keeps this machine trusted across runs (a
        # Client with a non-persistent credential store keeps it for its own life only).
        devices = (DeviceCookieFile(self.config_dir)
                   if save and isinstance(self._store, LocalCredentialStore) else None)
        saved = devices.get(self.api_url, username) if devices else None
        tokens = yield from self._json(
            "POST", "/auth/login", json={"username": username, "password": password},
            authenticated=False, headers={"Cookie": f"{DEVICE_COOKIE}={saved}"} if saved else None,
        )
        creds = self._credentials_from(tokens, username=username, now=now)
        with contextlib.suppress(httpx.CookieConflict):
            fresh = self._http.cookies.get(DEVICE_COOKIE)
            if devices and fresh:
                devices.set(self.api_url, username, fresh)
        with self._lock:
            if save:
                with self._store.lock():
                    self._store.save(creds)
            else:
                self._store = MemoryCredentialStore(creds)
            self._creds, self._loaded = creds, True
        return models.Login(username=username, api_url=self.api_url)

    @operation
    def logout(self) -> Flow[bool]:
        """End the session: revoke it on the server, then wipe the local credentials.

        The local credentials are removed even when the server call fails (unreachable,
        error).  Returns ``True`` when the server confirmed the revocation, ``False`` when
        it could not be told or there was no session.
        """
        return bool((yield Locked(self._logout_locked())))

    def _logout_locked(self) -> Flow[bool]:
        try:
            creds = self._load_matching()
        except CredentialStoreError:
            creds = None  # unreadable: wipe what can be wiped
            self._store.clear()
        if creds is None:
            self._creds, self._loaded = None, True
            return False
        try:
            return (yield from self._server_logout(creds))
        except CourseCrafterError:
            return False
        finally:
            self._store.clear()
            self._creds, self._loaded = None, True

    def _server_logout(self, creds: Credentials) -> Flow[bool]:
        # Under the locks.  Never goes through the retrying request flow: the body carries
        # the refresh token, which must match the one the retry would rotate.  The access
        # token is sent as is, even if expired (the refresh token in the body is what ends
        # the session); only a server that answers 401 gets one refresh first.
        for attempt in range(2):
            response = yield self._build(
                "POST", "/auth/logout", json={"refresh_token": creds.refresh_token},
                headers={"Authorization": f"Bearer {creds.access_token}"},
            )
            if response.status_code == 401 and attempt == 0:
                creds = yield from self._exchange(creds)  # rotates: presents the token once
                continue
            return bool(response.is_success)
        return False  # pragma: no cover

    @operation
    def whoami(self) -> Flow[User]:
        """The logged-in user (``GET /auth/me``): ``id, username, email, role``.

        Raises :class:`NotLoggedIn` when there is no (longer a) session.
        """
        user = models.User.from_dict((yield from self._json("GET", "/auth/me")))
        if self._token is not None:
            self._token_user = user.username
        return user

    # ------------------------------------------------------------------ courses
    @operation
    def create_course(self, title: str, description: str = "") -> Flow[Course]:
        """Create a course; return it."""
        body = {"title": title, "description": description}
        return models.Course.from_dict((yield from self._json("POST", "/courses", json=body)))

    @operation
    def list_courses(self) -> Flow[list[Course]]:
        """The logged-in instructor's courses (each with ``published``, ``lecture_count`` and
        ``attachment_count``)."""
        return models.Course.list_from((yield from self._json("GET", "/courses")))

    @operation
    def get_course(self, course_id: str) -> Flow[Course]:
        """One course (``GET /courses/{id}``); :class:`NotFound` when it is not yours."""
        return models.Course.from_dict((yield from self._json("GET", _path("courses", course_id))))

    @operation
    def update_course(self, course_id: str, **changes: Any) -> Flow[Course]:
        """``PATCH /courses/{id}`` with ``title``, ``description`` and/or ``published``."""
        return models.Course.from_dict(
            (yield from self._json("PATCH", _path("courses", course_id), json=changes)))

    @operation
    def publish_course(self, course_id: str) -> Flow[Course]:
        """List the course for students; return the course."""
        return (yield from BaseClient.update_course.flow(self, course_id, published=True))

    @operation
    def unpublish_course(self, course_id: str) -> Flow[Course]:
        """Back to a draft (students no longer see it); return the course."""
        return (yield from BaseClient.update_course.flow(self, course_id, published=False))

    @operation
    def rename_course(self, course_id: str, title: str) -> Flow[Course]:
        """Change the course's title; return the course."""
        return (yield from BaseClient.update_course.flow(self, course_id, title=title))

    @operation
    def delete_course(self, course_id: str) -> Flow[None]:
        """Delete the course (its videos stay, without a course)."""
        yield from self._request("DELETE", _path("courses", course_id))

    # ------------------------------------------------------------------ automation tokens
    @operation
    def create_token(self, name: str, *, scope: str = "upload",
                     expires_in: float | None = 90 * 24 * 3600) -> Flow[NewToken]:
        """Make an automation token (needs a normal login).  Its ``token`` (``cct_...``) is the
        secret: the server never shows it again.  ``expires_in``: seconds, ``None`` for never."""
        body = {"name": name, "scope": scope,
                "expires_in": None if expires_in is None else int(expires_in)}
        return models.NewToken.from_dict((yield from self._json("POST", "/tokens", json=body)))

    @operation
    def list_tokens(self) -> Flow[list[Token]]:
        """Your automation tokens (``id, name, scope, created_at, expires_at, last_used_at``;
        never the secrets)."""
        return models.Token.list_from((yield from self._json("GET", "/tokens")))

    @operation
    def revoke_token(self, token_id: str) -> Flow[None]:
        """Revoke one of your automation tokens; it is refused from then on."""
        yield from self._request("DELETE", _path("tokens", token_id))

    # ------------------------------------------------------------------ videos
    @operation
    def list_videos(self, course_id: str | None = None) -> Flow[list[Video]]:
        """The logged-in instructor's videos (and attachments), optionally of one course
        (:class:`NotFound` "course not found" for a course that is not yours)."""
        params = {"course_id": course_id} if course_id else None
        return models.Video.list_from((yield from self._json("GET", "/videos", params=params)))

    @operation
    def get_video(self, video_id: str) -> Flow[Video]:
        """One video record (``GET /videos/{id}``): status, progress, phase, error, results."""
        return models.Video.from_dict((yield from self._json("GET", _path("videos", video_id))))

    @operation
    def rename_video(self, video_id: str, title: str) -> Flow[Video]:
        """Change a video's (or attachment's) title (``PATCH /videos/{id}``); return it."""
        return models.Video.from_dict(
            (yield from self._json("PATCH", _path("videos", video_id), json={"title": title})))

    @operation
    def delete_video(self, video_id: str) -> Flow[None]:
        """Delete a video or attachment and everything stored for it."""
        yield from self._request("DELETE", _path("videos", video_id))

    @operation
    def retry_video(self, video_id: str) -> Flow[Video]:
        """Send a ``failed`` video back to the transcoding queue; return its record."""
        record = yield from self._json("POST", _path("videos", video_id, "retry"))
        if isinstance(record, dict):
            return models.Video.from_dict(record)
        return (yield from BaseClient.get_video.flow(self, video_id))

    @operation
    def wait_for_video(
        self,
        video_id: str,
        *,
        poll_interval: float = 2.0,
        timeout: float | None = None,
        on_update: Callable[[Video], None] | None = None,
        sleep: Callable[[float], Any] | None = None,
        max_consecutive_errors: int = 5,
        until: str = "ready",
        raise_on_failure: bool = False,
    ) -> Flow[Video]:
        """Poll ``GET /videos/{id}`` until the video is ``ready`` or ``failed``; return the
        last record (check its ``status``, or pass ``raise_on_failure=True``).

        ``until="playable"`` returns as soon as the record says ``playable`` (its
        ``playback_url`` works while ``status`` may still be ``processing``).  ``on_update``
        gets every record polled (a plain function, on both clients).  ``sleep``: the
        waiting function (default ``time.sleep``; ``asyncio.sleep`` on :class:`AsyncClient`,
        where it may also be a coroutine function).

        Transient failures (server unreachable, 5xx, 429) are tolerated up to
        ``max_consecutive_errors`` in a row.  Raises :class:`WaitTimeout` (a
        :class:`TimeoutError` too) after ``timeout`` seconds (``None``: wait for ever), and
        with ``raise_on_failure`` :class:`VideoFailed` (``.code``, ``.reason``, ``.video``)
        when the video ends ``failed``.
        """
        if until not in WAIT_UNTIL:
            raise InvalidArgument(f"until must be one of {', '.join(WAIT_UNTIL)}, not {until!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        errors = 0
        last: Video | None = None
        while True:
            try:
                record = yield from BaseClient.get_video.flow(self, video_id)
            except (TransportError, ServerError, RateLimited):
                errors += 1
                if errors >= max_consecutive_errors:
                    raise
            else:
                errors, last = 0, record
                if on_update is not None:
                    on_update(record)
                if record.status in TERMINAL_STATUSES or (until == "playable" and record.playable):
                    if raise_on_failure and record.status == "failed":
                        raise VideoFailed(record)
                    return record
            if deadline is not None and time.monotonic() >= deadline:
                status = last.status if last is not None else "unknown"
                state = status if until == "ready" else f"{status} and not playable"
                raise WaitTimeout(f"video {video_id} is still {state} after {timeout:g} s",
                                  video_id=video_id, status=status, timeout=float(timeout or 0),
                                  video=last)
            yield Sleep(poll_interval, sleep)

    # ------------------------------------------------------------------ generic requests
    @operation
    def request(self, method: str, path: str, *, authenticated: bool = True,
                **kwargs: Any) -> Flow[httpx.Response]:
        """Send a request to ``<api_url>/api/v1<path>`` and return the (successful) response.

        ``kwargs`` go to ``httpx``'s ``build_request`` (``json``, ``params``, ``content``,
        ``headers``, ``timeout``...).  With ``authenticated`` (the default) the access token
        is attached and refreshed as needed; a 401 triggers one refresh and one retry, so
        the body must be replayable (bytes / json, not a one-shot generator).

        Raises :class:`TransportError` when the server is unreachable and the fitting
        :class:`APIError` subclass for an error status.
        """
        return (yield from self._request(method, path, authenticated=authenticated, **kwargs))

    @operation
    def request_json(self, method: str, path: str, **kwargs: Any) -> Flow[Any]:
        """Like :meth:`request`, returning the decoded JSON body (``None`` for an empty one)."""
        return (yield from self._json(method, path, **kwargs))

    # ------------------------------------------------------------------ request flows
    def _build(self, method: str, path: str, **kwargs: Any) -> httpx.Request:
        try:
            return self._http.build_request(method, path, **kwargs)
        except httpx.InvalidURL as exc:
            raise InvalidArgument(f"invalid URL {path!r}: {exc}") from None

    def _unreachable(self, exc: Exception) -> TransportError:
        """The driver's :class:`TransportError` for an ``httpx`` request failure."""
        reason = str(exc) or type(exc).__name__
        return TransportError(
            f"cannot reach the CourseCrafter server at {self.api_url}: {reason}",
            api_url=self.api_url,
        )

    def _request(self, method: str, path: str, *, authenticated: bool = True,
                 **kwargs: Any) -> Flow[httpx.Response]:
        if authenticated and path.startswith(("http://", "https://")):
            if not path.startswith(self.api_url + "/"):
                raise InvalidArgument("refusing to send credentials to a URL outside the API server")
        request = self._build(method, path, **kwargs)
        if not authenticated:
            response = yield request
        elif self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token}"
            response = yield request
        else:
            creds = self._session()
            if creds is None:
                raise self._not_logged_in()
            if not self._is_fresh(creds):
                creds = yield Locked(self._refresh(stale=creds))
            request.headers["Authorization"] = f"Bearer {creds.access_token}"
            response = yield request
            if response.status_code == 401:
                creds = yield Locked(self._refresh(stale=creds, force=True))
                request.headers["Authorization"] = f"Bearer {creds.access_token}"
                response = yield request
        if response.is_error:
            raise self._error_of(response, authenticated=authenticated)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Flow[Any]:
        response = yield from self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CourseCrafterError(
                f"the server at {self.api_url} returned a response that is not JSON "
                f"({method} {path}, HTTP {response.status_code}); is this a CourseCrafter server?"
            ) from None

    def _error_of(self, response: httpx.Response, *, authenticated: bool) -> CourseCrafterError:
        error = error_from_response(response)
        if authenticated and self._token is not None and response.status_code == 401:
            return AuthenticationError(
                401, error.code,
                f"the automation token was refused: it is expired or revoked, or not one of "
                f"{self.api_url} ({error.message})",
                details=error.details,
            )
        return error

    # ------------------------------------------------------------------ uploads (shared checks)
    @staticmethod
    def _check_upload(kind: str, concurrency: int) -> None:
        if kind not in UPLOAD_KINDS:
            raise InvalidArgument(f"kind must be 'video' or 'attachment', not {kind!r}")
        if concurrency < 1:
            raise InvalidArgument("concurrency must be at least 1")

    # ------------------------------------------------------------------ session internals
    def _credentials_from(self, tokens: Any, *, username: str, now: float) -> Credentials:
        try:
            access = tokens["access_token"]
            refresh = tokens["refresh_token"]
            expires_in = float(tokens.get("expires_in", 0))
        except (TypeError, KeyError, ValueError, AttributeError):
            access = refresh = None
            expires_in = 0.0
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

    def _forget_session(self) -> None:
        """Read the session from the store again at the next call."""
        with self._lock:
            self._creds, self._loaded = None, False

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

    def _refresh(self, stale: Credentials, *, force: bool = False) -> Flow[Credentials]:
        """Under the locks: replace ``stale`` (whose access token is expiring, or was just
        refused when ``force``) with fresh credentials, sending a refresh only if nobody else
        did."""
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
        return (yield from self._exchange(current))

    def _exchange(self, current: Credentials) -> Flow[Credentials]:
        """Under the locks: ``POST /auth/refresh`` with ``current``'s refresh token (just read
        from the store) and save the result."""
        now = self._clock()
        response = yield self._build("POST", "/auth/refresh",
                                     json={"refresh_token": current.refresh_token})
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
