from __future__ import annotations

import threading
import time

import httpx
import pytest
from worker_fakes import WebhookServer

from coursecrafter_worker import notifier as notifier_mod
from coursecrafter_worker import signing
from coursecrafter_worker.messages import JobEvent, Rendition
from coursecrafter_worker.notifier import (
    DeliveryCancelled,
    DeliveryFailed,
    DeliveryRejected,
    WebhookNotifier,
)

SECRET = b"notifier-test-secret-0123456789"
URL = "http://server.test/api/v1/internal/jobs/events"


def event(kind: str = "completed") -> JobEvent:
    fields: dict = {
        "progress": {"progress": 5, "phase": "transcoding"},
        "completed": {"duration": 3.0, "playlist_key": "videos/v1/hls/master.m3u8",
                      "renditions": (Rendition(360, 640, 800_000, "hls/360p/index.m3u8"),)},
    }.get(kind, {})
    return JobEvent(job_id="j1", video_id="v1", attempt=2, type=kind, **fields)  # type: ignore[arg-type]


def notifier_with(responses, **kwargs) -> tuple[WebhookNotifier, list[httpx.Request]]:
    """`responses`: list of status codes or exceptions, consumed in order (the last repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses[min(len(seen), len(responses)) - 1]
        if isinstance(item, Exception):
            raise item
        return httpx.Response(item, json={"error": {"code": "x", "message": f"status {item}"}})

    kwargs.setdefault("initial_backoff", 0.01)
    kwargs.setdefault("max_backoff", 0.05)
    client = httpx.Client(transport=httpx.MockTransport(handle))
    return WebhookNotifier(SECRET, client=client, **kwargs), seen


def test_signs_body_and_sets_headers() -> None:
    n, seen = notifier_with([200])
    ev = event()
    n.send(URL, ev, essential=True)
    [request] = seen
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["content-type"] == "application/json"
    assert request.content == ev.to_json()
    signing.verify(SECRET, request.headers[signing.HEADER], request.content)
    with pytest.raises(signing.SignatureError):
        signing.verify(b"another secret", request.headers[signing.HEADER], request.content)
    assert "secret" not in repr(n)


def test_real_http_server_verifies_signature() -> None:
    server = WebhookServer(SECRET)
    try:
        n = WebhookNotifier(SECRET)
        n.send(server.url, event("started"), essential=True)
        n.send(server.url, event("progress"), essential=False)
        n.close()
        assert server.types == ["started", "progress"]
        assert server.bad_signatures == 0
    finally:
        server.close()


def test_retries_503_then_succeeds_signing_each_try_afresh(monkeypatch) -> None:
    signed: list[str] = []
    real_sign = signing.sign

    def counting_sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
        value = real_sign(secret, body, timestamp)
        signed.append(value)
        return value

    monkeypatch.setattr(notifier_mod.signing, "sign", counting_sign)
    n, seen = notifier_with([503, 503, 200])
    n.send(URL, event(), essential=True)
    assert len(seen) == 3 and len(signed) == 3
    for request in seen:
        signing.verify(SECRET, request.headers[signing.HEADER], request.content)


@pytest.mark.parametrize("first", [429, 500, httpx.ConnectError("refused"),
                                   httpx.ReadTimeout("slow")])
def test_retries_transient_failures(first) -> None:
    n, seen = notifier_with([first, 200])
    n.send(URL, event(), essential=True)
    assert len(seen) == 2


def test_gives_up_after_max_elapsed() -> None:
    n, seen = notifier_with([503], max_elapsed=0.4)
    start = time.monotonic()
    with pytest.raises(DeliveryFailed) as info:
        n.send(URL, event(), essential=True)
    elapsed = time.monotonic() - start
    assert not isinstance(info.value, DeliveryRejected)
    assert 0.3 <= elapsed < 2.0
    assert len(seen) >= 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_does_not_retry_4xx(status: int, caplog) -> None:
    n, seen = notifier_with([status, 200])
    with pytest.raises(DeliveryRejected) as info:
        n.send(URL, event(), essential=True)
    assert info.value.status_code == status
    assert len(seen) == 1
    assert f"status {status}" in caplog.text  # the server's error body is logged


def test_progress_gets_one_short_try_and_failures_are_swallowed() -> None:
    n, seen = notifier_with([503])
    n.send(URL, event("progress"), essential=False)
    assert len(seen) == 1
    n, seen = notifier_with([httpx.ConnectError("refused")])
    n.send(URL, event("progress"), essential=False)
    assert len(seen) == 1


def test_cancel_stops_retrying() -> None:
    n, seen = notifier_with([503], max_elapsed=30, initial_backoff=0.05, max_backoff=0.1)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(DeliveryCancelled):
        n.send(URL, event(), essential=True, cancel=cancel)
    assert time.monotonic() - start < 2
