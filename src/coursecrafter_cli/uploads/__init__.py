"""Direct-to-storage, parallel, resumable multipart uploads (:meth:`Client.upload`).

The API server never carries the bytes.  One upload goes:

1. ``POST /uploads`` with the file's name, size, content type, kind and SHA-256: the server
   creates the video record and a multipart upload in object storage and answers with the
   part size, the part count and pre-signed URLs for the first parts.
2. The parts are ``PUT`` straight to storage by ``concurrency`` threads.  Each part is
   streamed from the file at its offset in :data:`CHUNK_SIZE` chunks with an explicit
   ``Content-Length`` (pre-signed S3 PUTs need a length, so never chunked encoding); memory
   stays around ``concurrency x CHUNK_SIZE`` whatever the part size.  The part's MD5 is
   computed while it is sent and compared with the ``ETag`` storage returns.
3. ``POST /uploads/{id}/complete`` with every part's ETag returns the video record.

Failures of one part are retried with exponential backoff and jitter (:class:`RetryPolicy`,
driven by ``tenacity``): connection errors, timeouts, 408, 429 (honouring ``Retry-After``),
5xx and an ETag that is not the MD5 of what was sent.  A 403 (the URL expired or was refused)
or a broken connection gets a freshly signed URL (``POST /uploads/{id}/parts``) for the next
attempt; URLs are also re-signed ahead of their expiry, and fetched in batches of up to
:data:`SIGN_BATCH` as the upload goes.  Other 4xx answers from storage end the upload.

**Resume.**  Before the first part is sent, the upload's ids are saved in
``<config dir>/uploads/<key>.json`` (mode 0600, the directory 0700), where ``<key>`` is a hash
of the file's identity (absolute real path, size, ``st_mtime_ns``, inode) and of the api url
and username.  Running the same upload again (same file, unchanged) reads that state and asks
the server what storage already holds (``GET /uploads/{id}/parts``): parts held with the right
size are skipped (storage is trusted, not the local state); an upload the server completed
returns its video; one that is gone (404, aborted, expired) starts over.  The state is deleted
once the upload is complete.  A lock file (``<key>.lock``) keeps two processes from uploading
the same file at once.  State format (``version`` 1)::

    {"version": 1, "upload_id": "...", "video_id": "...", "api_url": "http://...",
     "username": "ada", "path": "/abs/lecture.mp4", "size": 123, "mtime_ns": 171...,
     "inode": 42, "part_size": 8388608, "part_count": 1,
     "options": {"kind": "video", "course_id": null, "title": null, "content_type": "video/mp4"},
     "created_at": "2024-...Z", "expires_at": "2024-...Z"}

A state whose ``options`` differ from the new call's (another ``--course``, say) is not
resumed: that upload is aborted (best effort) and a new one starts.

``progress(bytes_done, bytes_total)`` is called from the worker threads (serialised, never
concurrently) with a monotonic ``bytes_done``: confirmed parts plus bytes of parts in flight
(a part that is retried stops the count until its resend passes the previous high-water
mark).  ``on_event(UploadEvent)`` reports what happens (``checksum``, ``checksum_progress``,
``created``, ``resumed``, ``restarted``, ``retry``, ``stopping``, ``completing``, ``completed``).

**Ctrl-C** (KeyboardInterrupt) during the parts starts no new part and lets the parts in
flight finish, so they are kept for the resume (``stopping`` event); a second Ctrl-C stops at
once.  Storage holds every part as soon as it is confirmed, so an interrupted upload loses at
most the parts that were cut off.

Modules: ``content_types`` (the type declared for a file), ``policy`` (``RetryPolicy``,
``UploadEvent``), ``resume`` (``FileIdentity``, ``ResumeStore``); this module runs the upload
(``Uploader``: create or resume, parts in parallel, complete).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from coursecrafter_cli.errors import (
    APIError,
    Conflict,
    CourseCrafterError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UploadError,
    parse_retry_after,
)

from .content_types import guess_content_type
from .policy import RetryPolicy, UploadEvent
from .resume import STATE_DIR, STATE_VERSION, FileIdentity, ResumeStore

if TYPE_CHECKING:  # pragma: no cover
    from coursecrafter_cli.client import Client

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_CONCURRENCY",
    "SIGN_BATCH",
    "STATE_DIR",
    "STATE_VERSION",
    "RetryPolicy",
    "UploadEvent",
    "FileIdentity",
    "ResumeStore",
    "Uploader",
    "guess_content_type",
]

MIB = 1024 * 1024
CHUNK_SIZE = MIB  #: bytes read from the file and handed to the socket at a time
DEFAULT_CONCURRENCY = 4
SIGN_BATCH = 200  #: the server signs at most this many part URLs per request
#: Re-sign a part URL when it expires within this many seconds.
URL_REFRESH_MARGIN = 60.0
#: Rounds of "complete, re-check what storage holds, send what is missing".
COMPLETE_ROUNDS = 3

PART_TIMEOUT = httpx.Timeout(connect=15.0, read=120.0, write=60.0, pool=None)

ProgressCallback = Callable[[int, int], None]

_MD5_HEX = re.compile(r"[0-9a-f]{32}")


def _utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _normalize_etag(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"').lower()


# --------------------------------------------------------------------------- internals


class _Cancelled(Exception):
    """The upload is being torn down (another part failed, or Ctrl-C)."""


class _PartFailed(Exception):
    """One attempt at a part failed in a way worth retrying."""

    def __init__(self, reason: str, *, resign: bool = False, retry_after: float | None = None,
                 immediate: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.resign = resign
        self.retry_after = retry_after
        self.immediate = immediate


class _Counter(threading.Condition):
    """A condition with a count: how many part threads are still running."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0


class _Progress:
    """Monotonic bytes-done: confirmed parts + bytes of parts in flight."""

    def __init__(self, total: int, callback: ProgressCallback | None, confirmed: int = 0) -> None:
        self.total = total
        self._callback = callback
        self._confirmed = confirmed
        self._inflight: dict[int, int] = {}
        self._reported = -1
        self._lock = threading.Lock()
        self._report()

    def _report(self) -> None:  # caller holds the lock (or is the constructor)
        value = min(self.total, self._confirmed + sum(self._inflight.values()))
        if value > self._reported:
            self._reported = value
            if self._callback is not None:
                self._callback(value, self.total)

    def sent(self, part: int, n: int) -> None:
        with self._lock:
            self._inflight[part] = self._inflight.get(part, 0) + n
            self._report()

    def reset(self, part: int) -> None:
        with self._lock:
            self._inflight.pop(part, None)

    def confirm(self, part: int, size: int) -> None:
        with self._lock:
            self._inflight.pop(part, None)
            self._confirmed += size
            self._report()


class _Throttle:
    """Spaces chunk sends so that all threads together stay under ``rate`` bytes/s."""

    def __init__(self, rate: float | None, cancel: threading.Event) -> None:
        self.rate = rate
        self._cancel = cancel
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + n / self.rate
        delay = start - now
        if delay > 0 and self._cancel.wait(delay):
            raise _Cancelled()


@dataclass
class _Session:
    upload_id: str
    video_id: str
    size: int
    part_size: int
    part_count: int
    expires_at: str | None = None  #: when the server gives up on the upload
    etags: dict[int, str] = field(default_factory=dict)  # parts done (or held by storage)
    urls: dict[int, tuple[str, float]] = field(default_factory=dict)  # url, re-sign at (monotonic)

    def part_length(self, number: int) -> int:
        if number == self.part_count:
            return self.size - self.part_size * (self.part_count - 1)
        return self.part_size


class Uploader:
    """Runs one upload for a :class:`Client`; see the module docs.  Use :meth:`Client.upload`."""

    def __init__(
        self,
        client: Client,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.client = client
        self.states = ResumeStore(state_dir if state_dir is not None else client.config_dir / STATE_DIR)
        self.retry = retry or RetryPolicy()
        self.chunk_size = chunk_size
        self._cancel = threading.Event()
        self._sleep_fn = sleep
        self._lock = threading.Lock()
        self._sign_lock = threading.Lock()
        self._on_event: Callable[[UploadEvent], None] | None = None

    # ------------------------------------------------------------------ entry point
    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        course_id: str | None = None,
        title: str | None = None,
        kind: str = "video",
        content_type: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: ProgressCallback | None = None,
        on_event: Callable[[UploadEvent], None] | None = None,
        checksum: bool | str = True,
        resume: bool = True,
        max_bandwidth: float | None = None,
    ) -> dict[str, Any]:
        if kind not in ("video", "attachment"):
            raise ValueError("kind must be 'video' or 'attachment'")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._on_event = on_event
        identity = FileIdentity.of(path)
        if identity.size == 0:
            raise UploadError(f"{path} is empty (0 bytes): nothing to upload")
        try:  # readable at all? (a clear message now rather than from a worker thread)
            with open(identity.path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise UploadError(f"cannot read {path}: {exc.strerror or exc}") from None
        content_type = content_type or guess_content_type(identity.path)
        username = self.client.username
        if username is None:
            raise self.client._not_logged_in()
        options = {"kind": kind, "course_id": course_id, "title": title,
                   "content_type": content_type}
        key = identity.key(self.client.api_url, username)
        self._throttle = _Throttle(max_bandwidth, self._cancel)
        # Throttled: smaller chunks, so that a slow link still sends several times a second
        # (a connection idle for long between two chunks may be dropped by the server).
        self._chunk = self.chunk_size if not max_bandwidth else int(
            min(self.chunk_size, max(16 * 1024, max_bandwidth / 4)))

        with self.states.locked(key):
            session: _Session | None = None
            if resume:
                state = self.states.load(key)
                if state is not None:
                    outcome = self._resume(key, state, options, identity)
                    if isinstance(outcome, dict):
                        return outcome
                    session = outcome
            if session is None:
                session = self._create(identity, options, checksum)
                if resume:
                    self.states.save(key, self._state(session, identity, username, options))
                    self.states.prune()
            try:
                video = self._finish(session, identity, concurrency, progress)
            except UploadError as exc:
                if not exc.resumable:  # the file changed, or storage lost the upload
                    self.states.delete(key)
                raise
            except APIError as exc:
                # The server no longer has the upload (gone, aborted, expired): start over.
                if exc.status_code == 404 or exc.code == "invalid_state":
                    self.states.delete(key)
                raise
            self.states.delete(key)
            return video

    def cancel(self) -> None:
        """Stop the upload: parts in flight end at their next chunk (thread-safe)."""
        self._cancel.set()

    # ------------------------------------------------------------------ events
    def _emit(self, kind: str, message: str, **data: Any) -> None:
        if self._on_event is not None:
            self._on_event(UploadEvent(kind, message, data))

    # ------------------------------------------------------------------ start / resume
    def _state(self, s: _Session, identity: FileIdentity, username: str,
               options: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "version": STATE_VERSION, "upload_id": s.upload_id, "video_id": s.video_id,
            "api_url": self.client.api_url, "username": username,
            "path": identity.path, "size": identity.size, "mtime_ns": identity.mtime_ns,
            "inode": identity.inode, "part_size": s.part_size, "part_count": s.part_count,
            "options": dict(options), "created_at": _utcnow(), "expires_at": s.expires_at,
        }

    def _sha256(self, identity: FileIdentity) -> str:
        self._emit("checksum", f"computing the SHA-256 of {_human(identity.size)}",
                   total=identity.size)
        digest = hashlib.sha256()
        done = 0
        step = 8 * self.chunk_size
        next_report = step
        with open(identity.path, "rb") as fh:
            while chunk := fh.read(self.chunk_size):
                digest.update(chunk)
                done += len(chunk)
                if done >= next_report or done == identity.size:
                    next_report += step
                    self._emit("checksum_progress", "", done=done, total=identity.size)
        return digest.hexdigest()

    def _create(self, identity: FileIdentity, options: Mapping[str, Any],
                checksum: bool | str) -> _Session:
        body: dict[str, Any] = {
            "filename": Path(identity.path).name,
            "size": identity.size,
            "content_type": options["content_type"],
            "kind": options["kind"],
        }
        if options["course_id"] is not None:
            body["course_id"] = options["course_id"]
        if options["title"] is not None:
            body["title"] = options["title"]
        if isinstance(checksum, str):
            body["sha256"] = checksum.lower()
        elif checksum:
            body["sha256"] = self._sha256(identity)
        created = self.client.request_json("POST", "/uploads", json=body)
        try:
            session = _Session(
                upload_id=str(created["upload_id"]), video_id=str(created["video_id"]),
                size=int(created["size"]), part_size=int(created["part_size"]),
                part_count=int(created["part_count"]),
                expires_at=str(created.get("expires_at") or "") or None,
            )
            expires_in = float(created.get("url_expires_in") or 3600)
            self._store_urls(session, created.get("parts") or [], expires_in)
        except (TypeError, KeyError, ValueError):
            raise CourseCrafterError(
                f"the server at {self.client.api_url} sent an unexpected upload response"
            ) from None
        if session.size != identity.size:
            raise CourseCrafterError("the server recorded a different size for the upload")
        self._emit(
            "created",
            f"upload {session.upload_id} started: {session.part_count} part(s) of "
            f"{_human(session.part_size)}",
            upload_id=session.upload_id, video_id=session.video_id,
            part_count=session.part_count, part_size=session.part_size,
        )
        return session

    def _resume(self, key: str, state: Mapping[str, Any], options: Mapping[str, Any],
                identity: FileIdentity) -> _Session | dict[str, Any] | None:
        upload_id = str(state["upload_id"])
        if dict(state.get("options") or {}) != dict(options):
            self._emit("restarted", f"not resuming upload {upload_id}: it was started with other "
                       "options; starting a new upload", upload_id=upload_id)
            with contextlib.suppress(CourseCrafterError):
                self.client.request("DELETE", f"/uploads/{quote(upload_id, safe='')}")
            self.states.delete(key)
            return None
        try:
            listing = self._api("GET", f"/uploads/{quote(upload_id, safe='')}/parts")
        except (NotFound, Conflict) as exc:
            self._emit("restarted", f"previous upload {upload_id} is gone ({exc.message}); "
                       "starting over", upload_id=upload_id)
            self.states.delete(key)
            return None
        status = listing.get("status")
        if status == "completed":
            video = self.client.get_video(str(listing.get("video_id") or state["video_id"]))
            self.states.delete(key)
            self._emit("completed", f"upload {upload_id} was already complete",
                       upload_id=upload_id, video_id=video.get("id"))
            return video
        if status != "active" or int(listing.get("size", -1)) != identity.size:
            self._emit("restarted", f"previous upload {upload_id} is {status}; starting over",
                       upload_id=upload_id)
            self.states.delete(key)
            return None
        session = _Session(
            upload_id=upload_id, video_id=str(listing["video_id"]), size=int(listing["size"]),
            part_size=int(listing["part_size"]), part_count=int(listing["part_count"]),
        )
        for part in listing.get("parts") or []:
            number, size, etag = int(part["part_number"]), int(part["size"]), str(part["etag"])
            if 1 <= number <= session.part_count and size == session.part_length(number):
                session.etags[number] = etag
        held = len(session.etags)
        held_bytes = sum(session.part_length(n) for n in session.etags)
        self._emit(
            "resumed",
            f"resuming upload {upload_id}: {held} of {session.part_count} part(s) already in "
            f"storage ({_human(held_bytes)})",
            upload_id=upload_id, video_id=session.video_id, parts_present=held,
            part_count=session.part_count, bytes_present=held_bytes,
        )
        return session

    # ------------------------------------------------------------------ API calls with retries
    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        """An idempotent API call of the upload, retried on 5xx / 429 / unreachable."""
        policy = self.retry

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
            return policy.delay(state.attempt_number, retry_after=retry_after)

        retrying = Retrying(
            stop=stop_after_attempt(policy.api_attempts),
            wait=wait,
            retry=retry_if_exception_type((TransportError, ServerError, RateLimited)),
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self.client.request_json(method, path, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, seconds: float) -> None:
        if self._sleep_fn is not None:
            self._sleep_fn(seconds)
            if self._cancel.is_set():
                raise _Cancelled()
        elif self._cancel.wait(seconds):
            raise _Cancelled()

    # ------------------------------------------------------------------ part URLs
    def _store_urls(self, session: _Session, parts: list[Any], expires_in: float) -> None:
        # Re-sign a URL a minute before it expires (or halfway, for short-lived ones).
        refresh_at = time.monotonic() + expires_in - min(URL_REFRESH_MARGIN, expires_in / 2)
        for p in parts:
            session.urls[int(p["part_number"])] = (str(p["url"]), refresh_at)

    def _url_for(self, session: _Session, number: int, *, fresh: bool = False) -> str:
        with self._sign_lock:
            now = time.monotonic()
            entry = session.urls.get(number)
            if entry is not None and not fresh and now < entry[1]:
                return entry[0]
            if fresh:
                wanted = [number]
            else:  # sign a batch: this part and the next ones still to send
                pending = [n for n in range(number + 1, session.part_count + 1)
                           if n not in session.etags
                           and (n not in session.urls or now >= session.urls[n][1])]
                wanted = [number] + pending[: SIGN_BATCH - 1]
            signed = self._api("POST", f"/uploads/{quote(session.upload_id, safe='')}/parts",
                               json={"part_numbers": wanted})
            try:
                self._store_urls(session, signed["parts"], float(signed.get("url_expires_in") or 3600))
                return session.urls[number][0]
            except (TypeError, KeyError, ValueError):
                raise CourseCrafterError(
                    f"the server at {self.client.api_url} sent an unexpected response when "
                    "signing part URLs"
                ) from None

    # ------------------------------------------------------------------ transfer
    def _finish(self, session: _Session, identity: FileIdentity, concurrency: int,
                progress: ProgressCallback | None) -> dict[str, Any]:
        confirmed = sum(session.part_length(n) for n in session.etags)
        tracker = _Progress(session.size, progress, confirmed)
        for round_ in range(1, COMPLETE_ROUNDS + 1):
            todo = [n for n in range(1, session.part_count + 1) if n not in session.etags]
            if todo:
                self._run_parallel(session, identity, todo, concurrency, tracker)
            self._check_unchanged(identity)
            self._emit("completing", f"completing upload {session.upload_id}",
                       upload_id=session.upload_id)
            parts = [{"part_number": n, "etag": session.etags[n]}
                     for n in range(1, session.part_count + 1)]
            try:
                video = self._api("POST", f"/uploads/{quote(session.upload_id, safe='')}/complete",
                                  json={"parts": parts})
            except Conflict as exc:
                if exc.code != "upload_incomplete" or round_ == COMPLETE_ROUNDS:
                    raise
                self._recheck(session, tracker)
                continue
            self._emit("completed", f"upload {session.upload_id} complete",
                       upload_id=session.upload_id, video_id=session.video_id)
            return video
        raise AssertionError("unreachable")  # pragma: no cover

    def _recheck(self, session: _Session, tracker: _Progress) -> None:
        """After a refused complete: keep only the parts storage holds as we sent them."""
        listing = self._api("GET", f"/uploads/{quote(session.upload_id, safe='')}/parts")
        held = {int(p["part_number"]): p for p in listing.get("parts") or []}
        for number, etag in list(session.etags.items()):
            part = held.get(number)
            if (part is None or int(part["size"]) != session.part_length(number)
                    or _normalize_etag(str(part["etag"])) != _normalize_etag(etag)):
                del session.etags[number]
        self._emit("retry", f"storage lacks {session.part_count - len(session.etags)} part(s); "
                   "sending them again", upload_id=session.upload_id)

    def _check_unchanged(self, identity: FileIdentity) -> None:
        try:
            now = FileIdentity.of(identity.path)
        except UploadError:
            now = None
        if now != identity:
            raise UploadError(f"{identity.path} changed while it was being uploaded; "
                              "run the command again to upload the new version")

    def _run_parallel(self, session: _Session, identity: FileIdentity, todo: list[int],
                      concurrency: int, tracker: _Progress) -> None:
        """Send ``todo`` with ``concurrency`` daemon threads; the first failure cancels the rest.

        A Ctrl-C (KeyboardInterrupt in the main thread) starts no new part but lets the parts
        in flight finish, so what was sent is kept in storage for the resume (a ``stopping``
        event says so); a second Ctrl-C stops them at their next chunk.  Daemon threads: the
        process never waits for a part once the main thread gives up."""
        queue = list(reversed(todo))
        errors: list[BaseException] = []
        in_flight: set[int] = set()
        draining = threading.Event()

        def worker() -> None:
            try:
                send_parts()
            finally:
                with running:
                    running.count -= 1
                    running.notify_all()

        def send_parts() -> None:
            while not self._cancel.is_set() and not draining.is_set():
                with self._lock:
                    if not queue:
                        return
                    number = queue.pop()
                    in_flight.add(number)
                try:
                    self._send_part(session, identity, number, tracker)
                except _Cancelled:
                    return
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    with self._lock:
                        errors.append(exc)
                    self._cancel.set()
                    return
                finally:
                    with self._lock:
                        in_flight.discard(number)

        # The threads are counted, not joined: on Python <= 3.11 a Ctrl-C that interrupts
        # Thread.join() can mark a live thread as stopped, and the drain would end (and the
        # process exit) with a part still in flight.
        running = _Counter()

        def join_all() -> None:
            with running:
                while running.count:
                    running.wait(0.25)

        threads = [threading.Thread(target=worker, name=f"coursecrafter-part-{i}", daemon=True)
                   for i in range(min(concurrency, len(todo)))]
        try:
            for t in threads:
                with running:
                    running.count += 1
                t.start()
            join_all()
        except KeyboardInterrupt:
            draining.set()
            with self._lock:
                finishing = sorted(in_flight)
            if finishing:
                self._emit("stopping", f"stopping: finishing {len(finishing)} part(s) in flight "
                           "so that they are kept; press Ctrl-C again to stop at once",
                           parts=finishing)
                try:
                    join_all()
                except BaseException:
                    self._cancel.set()  # parts in flight stop at their next chunk
                    raise
            raise
        except BaseException:
            self._cancel.set()
            raise
        if errors:
            raise errors[0]
        if self._cancel.is_set():
            raise UploadError("the upload was cancelled", resumable=True)

    def _send_part(self, session: _Session, identity: FileIdentity, number: int,
                   tracker: _Progress) -> None:
        policy = self.retry
        length = session.part_length(number)
        offset = (number - 1) * session.part_size
        fresh = False

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _PartFailed):
                immediate = exc.immediate and state.attempt_number == 1
                return policy.delay(state.attempt_number, retry_after=exc.retry_after,
                                    immediate=immediate)
            return policy.delay(state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait_s = state.next_action.sleep if state.next_action else 0.0
            self._emit(
                "retry",
                f"part {number}: {exc}; retrying in {wait_s:.1f} s "
                f"(attempt {state.attempt_number + 1} of {policy.attempts})",
                part_number=number, attempt=state.attempt_number + 1, wait=wait_s,
                reason=str(exc),
            )

        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait,
            retry=retry_if_exception_type(_PartFailed),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    url = self._url_for(session, number, fresh=fresh)
                    try:
                        etag = self._put_once(url, identity.path, number, offset, length, tracker)
                    except _PartFailed as exc:
                        fresh = exc.resign
                        raise
                    finally:
                        tracker.reset(number)
        except _PartFailed as exc:
            raise UploadError(
                f"part {number} of {session.part_count} failed after {policy.attempts} attempts: "
                f"{exc.reason}; run the same command again to resume", resumable=True,
            ) from None
        except (TransportError, ServerError, RateLimited) as exc:
            raise UploadError(f"{exc.message}; run the same command again to resume",
                              resumable=True) from None
        with self._lock:
            session.etags[number] = etag
        tracker.confirm(number, length)

    def _put_once(self, url: str, path: str, number: int, offset: int, length: int,
                  tracker: _Progress) -> str:
        md5 = hashlib.md5(usedforsecurity=False)
        chunk_size = self._chunk
        cancel = self._cancel
        throttle = self._throttle

        def body() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                fh.seek(offset)
                remaining = length
                while remaining:
                    if cancel.is_set():
                        raise _Cancelled()
                    chunk = fh.read(min(chunk_size, remaining))
                    if not chunk:
                        raise UploadError(f"{path} shrank while it was being uploaded")
                    throttle.take(len(chunk))
                    md5.update(chunk)
                    remaining -= len(chunk)
                    tracker.sent(number, len(chunk))
                    yield chunk

        try:
            response = self.client.http.request(
                "PUT", url, content=body(), headers={"Content-Length": str(length)},
                timeout=PART_TIMEOUT,
            )
        except httpx.TransportError as exc:
            if cancel.is_set():
                raise _Cancelled() from None
            reason = str(exc) or type(exc).__name__
            raise _PartFailed(f"connection failed ({reason})", resign=True) from None
        except httpx.InvalidURL:
            raise UploadError(f"the server signed an invalid URL for part {number}") from None
        status = response.status_code
        if response.is_success:
            etag = response.headers.get("ETag")
            expected = md5.hexdigest()
            if not etag:
                return f'"{expected}"'  # storage sent none: the MD5 is what S3 would send
            got = _normalize_etag(etag)
            if _MD5_HEX.fullmatch(got) and got != expected:
                raise _PartFailed(f"storage stored other bytes (ETag {got}, MD5 sent {expected})")
            return etag
        detail = _storage_error(response)
        if status == 403:
            raise _PartFailed(f"storage refused the URL (HTTP 403{detail})", resign=True,
                              immediate=True)
        if status in (408, 429) or status >= 500:
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _PartFailed(f"storage answered HTTP {status}{detail}", retry_after=retry_after)
        if status == 404:
            raise UploadError(
                f"storage no longer has this upload (HTTP 404{detail}); run the command again "
                "to start over"
            )
        raise UploadError(f"storage refused part {number} (HTTP {status}{detail})",
                          resumable=True)


def _storage_error(response: httpx.Response) -> str:
    """``: <code>`` from a storage error body (the local adapter's JSON, S3's XML)."""
    text = response.text[:2000] if response.content else ""
    try:
        err = json.loads(text).get("error", {})
        code = err.get("code")
        if code:
            return f": {code}"
    except (ValueError, AttributeError):
        pass
    match = re.search(r"<Code>([^<]{1,80})</Code>", text)
    return f": {match.group(1)}" if match else ""

