"""The worker webhook over HTTP: signatures, timestamps, schema, and what events may change."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest

from coursecrafter_server.domain import Video, VideoKind, VideoStatus
from coursecrafter_worker.messages import JobEvent, JobMessage, MessageError
from coursecrafter_worker.signing import HEADER, SignatureError, sign, verify

URL = "/api/v1/internal/jobs/events"


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[JobMessage] = []

    def publish(self, message: JobMessage) -> None:
        self.messages.append(message)

    def close(self) -> None:
        pass


@pytest.fixture
def api(app_factory):
    # A broker URL keeps the in-process transcoders out: events here come only from the test.
    client = app_factory(broker_url="amqp://unused")
    container = client.app.state.container
    container.queue = container.jobs.publisher = RecordingPublisher()
    return client


def queued_job(api) -> JobMessage:
    container = api.app.state.container
    now = datetime.now(timezone.utc)
    video = Video(id=uuid.uuid4().hex, owner_id="u", course_id=None, kind=VideoKind.VIDEO,
                  title="t", filename="t.mp4", content_type="video/mp4", size=1, sha256=None,
                  status=VideoStatus.UPLOADED, created_at=now, updated_at=now)
    container.store.add_video(video)
    container.jobs.enqueue(video)
    return container.queue.messages[-1]


def post(api, body: bytes, signature: str | None):
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers[HEADER] = signature
    return api.post(URL, content=body, headers=headers)


def signed(api, event: JobEvent, *, secret: bytes | None = None, t: int | None = None):
    body = event.to_json()
    key = secret if secret is not None else api.app.state.container.webhook_secret
    return post(api, body, sign(key, body, t))


def video_status(api, message) -> VideoStatus:
    return api.app.state.container.store.get_video(message.video_id).status


def test_signed_event_is_applied(api):
    message = queued_job(api)
    response = signed(api, JobEvent(message.job_id, message.video_id, 1, "started"))
    assert response.status_code == 200 and response.json() == {"status": "applied"}
    assert video_status(api, message) is VideoStatus.PROCESSING


@pytest.mark.parametrize("case", ["missing", "wrong_secret", "tampered_body", "garbage", "stale_t",
                                  "future_t"])
def test_forged_or_stale_webhooks_change_nothing(api, case):
    message = queued_job(api)
    event = JobEvent(message.job_id, message.video_id, 1, "completed", duration=1.0)
    body = event.to_json()
    secret = api.app.state.container.webhook_secret
    signature = {
        "missing": None,
        "wrong_secret": sign(b"not the secret", body),
        "tampered_body": sign(secret, body.replace(b'"duration":1.0', b'"duration":9.0')),
        "garbage": "v1=deadbeef",
        "stale_t": sign(secret, body, int(time.time()) - 310),
        "future_t": sign(secret, body, int(time.time()) + 310),
    }[case]
    response = post(api, body, signature)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_signature"
    assert video_status(api, message) is VideoStatus.QUEUED


def test_replayed_webhook_is_ignored(api):
    message = queued_job(api)
    event = JobEvent(message.job_id, message.video_id, 1, "started")
    assert signed(api, event).json()["status"] == "applied"
    assert signed(api, event).json()["status"] == "duplicate"


def test_event_of_an_older_attempt_is_ignored(api):
    message = queued_job(api)
    response = signed(api, JobEvent(message.job_id, message.video_id, 0, "completed"))
    assert response.json()["status"] == "stale"
    assert video_status(api, message) is VideoStatus.QUEUED


def test_malformed_event_is_422(api):
    body = json.dumps({"type": "exploded", "job_id": "j"}).encode()
    response = post(api, body, sign(api.app.state.container.webhook_secret, body))
    assert response.status_code == 422 and response.json()["error"]["code"] == "bad_event"


def test_signature_roundtrip_and_rotation():
    body = b'{"a":1}'
    header = sign(b"new", body)
    verify(b"new", header, body)
    # Two v1 values (old and new secret) let a secret be rotated without dropping events.
    both = header + ",v1=" + sign(b"old", body).split("v1=")[1]
    verify(b"old", both, body)
    with pytest.raises(SignatureError):
        verify(b"other", both, body)


def test_job_message_roundtrip_and_poison():
    message = JobMessage("j", "v", 2, "uploads/v/source", "videos/v/", "http://x/cb", "2026-01-01")
    assert JobMessage.from_json(message.to_json()) == message
    for poison in (b"not json", b"[]", b'{"job_id": "j"}',
                   message.to_json().replace(b'"attempt":2', b'"attempt":"2"')):
        with pytest.raises(MessageError):
            JobMessage.from_json(poison)


def test_playable_over_http_marks_the_video_and_shows_in_get_video(api):
    message = queued_job(api)
    early = JobEvent(message.job_id, message.video_id, 1, "playable",
                     playlist_key=f"videos/{message.video_id}/hls/master.m3u8")
    # Before `started` the job is not processing: refused, and nothing changes.
    assert signed(api, early).json() == {"status": "illegal"}
    assert signed(api, JobEvent(message.job_id, message.video_id, 1, "started")).json() == {
        "status": "applied"}
    again = JobEvent(message.job_id, message.video_id, 1, "playable",
                     playlist_key=f"videos/{message.video_id}/hls/master.m3u8")
    assert signed(api, again).json() == {"status": "applied"}
    assert signed(api, again).json() == {"status": "duplicate"}
    stored = api.app.state.container.store.get_video(message.video_id)
    assert stored.playable is True and stored.status is VideoStatus.PROCESSING
    # As JSON the way the worker sends it, and back.
    assert JobEvent.from_json(again.to_json()).type == "playable"
