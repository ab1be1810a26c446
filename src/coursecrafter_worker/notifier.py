"""Webhook delivery: worker → server events (DESIGN.md "Webhook events").

Every try is signed afresh (the signature carries the current time, which the server checks).
Essential events (started, completed, failed) are retried with exponential backoff and jitter
on connection errors, 5xx and 429 until `max_elapsed` seconds have passed, then `DeliveryFailed`;
a 4xx other than 429 means the server refused the event: `DeliveryRejected` at once.
Progress events (and heartbeats) get one short try; a failure is logged at debug and dropped.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Protocol

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type

try:  # tenacity >= 8.4: never start a wait that would end past the deadline
    from tenacity import stop_before_delay as _stop_within
except ImportError:  # pragma: no cover
    from tenacity import stop_after_delay as _stop_within

from coursecrafter_worker import signing
from coursecrafter_worker.messages import JobEvent

log = logging.getLogger(__name__)

USER_AGENT = "coursecrafter-worker"


def backoff(initial: float, maximum: float) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter (a tenacity `wait`): about initial·2ⁿ, capped at
    `maximum`, each wait drawn from [½, 1½] of that so retrying workers spread out."""

    def wait(state: RetryCallState) -> float:
        base = min(maximum, initial * 2 ** min(state.attempt_number - 1, 30))
        return base * random.uniform(0.5, 1.5)

    return wait


class DeliveryFailed(Exception):
    """An essential event could not be delivered: the outcome is not reported."""


class DeliveryRejected(DeliveryFailed):
    """The server answered 4xx (other than 429): it will not take this event as it is."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class DeliveryCancelled(DeliveryFailed):
    """The caller's cancel event was set while retrying."""


class Notifier(Protocol):
    """What the runner needs (the embedded server delivers to its job service directly)."""

    def send(self, callback_url: str, event: JobEvent, *, essential: bool) -> str | None: ...


class _Transient(Exception):
    """Internal: this try failed in a way a later try may not."""


class WebhookNotifier:
    def __init__(
        self,
        secret: bytes | str,
        *,
        client: httpx.Client | None = None,
        max_elapsed: float = 300.0,
        timeout: float = 10.0,
        progress_timeout: float = 2.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        if not secret:
            raise ValueError("the webhook secret must not be empty")
        self._secret = secret
        self._owns_client = client is None
        self._client = client or httpx.Client(headers={"User-Agent": USER_AGENT})
        self.max_elapsed = max_elapsed
        self.timeout = timeout
        self.progress_timeout = progress_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff

    def __repr__(self) -> str:  # never the secret
        return f"WebhookNotifier(max_elapsed={self.max_elapsed})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _post(self, callback_url: str, body: bytes, timeout: float) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            signing.HEADER: signing.sign(self._secret, body),
        }
        return self._client.post(callback_url, content=body, headers=headers, timeout=timeout)

    def send(
        self,
        callback_url: str,
        event: JobEvent,
        *,
        essential: bool,
        cancel: threading.Event | None = None,
    ) -> str | None:
        """Deliver `event`. For essential events, return what the server did with it (its
        `{"status": ...}`: applied, duplicate, stale, ...) or None when it did not say."""
        body = event.to_json()
        what = f"{event.type} event of job {event.job_id} attempt {event.attempt}"
        if not essential:
            try:
                response = self._post(callback_url, body, self.progress_timeout)
                if response.status_code >= 300:
                    log.debug("%s: server answered %d (dropped)", what, response.status_code)
            except httpx.HTTPError as exc:
                log.debug("%s not delivered (dropped): %r", what, exc)
            return None

        answer: dict[str, str | None] = {"status": None}

        def attempt() -> None:
            if cancel is not None and cancel.is_set():
                raise DeliveryCancelled(f"{what}: cancelled")
            try:
                response = self._post(callback_url, body, self.timeout)
            except httpx.HTTPError as exc:
                raise _Transient(f"{type(exc).__name__}: {exc}") from exc
            status = response.status_code
            if status < 300:
                try:
                    answer["status"] = str(response.json().get("status"))
                except (ValueError, AttributeError):
                    answer["status"] = None
                return
            if status == 429 or status >= 500:
                raise _Transient(f"HTTP {status}")
            detail = response.text[:500]
            log.error("%s refused by the server: HTTP %d %s", what, status, detail)
            raise DeliveryRejected(f"{what} refused: HTTP {status} {detail}", status)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s not delivered (%s); try %d, retrying in %.1fs", what, exc,
                state.attempt_number, state.next_action.sleep if state.next_action else 0,
            )

        def sleep(seconds: float) -> None:
            if cancel is not None:
                if cancel.wait(seconds):
                    raise DeliveryCancelled(f"{what}: cancelled while waiting to retry")
            else:
                _sleep(seconds)

        try:
            for try_ in Retrying(
                stop=_stop_within(self.max_elapsed),
                wait=backoff(self.initial_backoff, self.max_backoff),
                retry=retry_if_exception_type(_Transient),
                before_sleep=before_sleep,
                sleep=sleep,
                reraise=True,
            ):
                with try_:
                    attempt()
        except _Transient as exc:
            log.error("%s not delivered after %gs: %s", what, self.max_elapsed, exc)
            raise DeliveryFailed(f"{what} not delivered after {self.max_elapsed:g}s: {exc}") from exc
        log.debug("%s delivered: %s", what, answer["status"])
        return answer["status"]


def _sleep(seconds: float) -> None:
    threading.Event().wait(seconds)
