"""The worker webhook over HTTP: signatures, timestamps, schema, and what events may change."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from datetime import datetime, timezone

import pytest

from coursecrafter_server.domain import Video, VideoKind, VideoStatus
from coursecrafter_worker.messages import JobEvent, JobMessage, MessageError, Rendition
from coursecrafter_worker.signing import HEADER, SignatureError, sign, verify

URL = "/api/v1/internal/jobs/events"


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[JobMessage] = []

    def publish(self, message: JobMessage) -> None:
        self.messages.append(message)

    def close(self) -> None:
        pass

    def ping(self) -> None:
        pass

    def message_counts(self) -> tuple[int, int]:
        return len(self.messages), 0

    def settle_dead_letter(self, settle) -> bool:
        return False


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


def completed(message, attempt: int = 1, **fields) -> JobEvent:
    base = {"duration": 12.5, "width": 1280, "height": 720, "playlist_key":
            f"videos/{message.video_id}/hls/master.m3u8",
            "renditions": (Rendition(720, 1280, 3_000_000, "hls/720p/index.m3u8"),)}
    return JobEvent(message.job_id, message.video_id, attempt, "completed", **{**base, **fields})


def test_event_of_an_older_attempt_is_ignored(api):
    message = queued_job(api)
    failed = JobEvent(message.job_id, message.video_id, 1, "failed", error_code="transcode_failed",
                      error_message="boom", retryable=True)
    assert signed(api, failed).json()["status"] == "requeued"
    response = signed(api, completed(message, attempt=1))
    assert response.json()["status"] == "stale"
    assert video_status(api, message) is VideoStatus.QUEUED


def test_malformed_event_is_422(api):
    body = json.dumps({"type": "exploded", "job_id": "j"}).encode()
    response = post(api, body, sign(api.app.state.container.webhook_secret, body))
    assert response.status_code == 422 and response.json()["error"]["code"] == "bad_event"


def _owned_queued_job(api):
    """A queued job of a video that an instructor lists through the API."""
    from coursecrafter_server.domain import Role

    container = api.app.state.container
    user = container.auth.register("ada", "ada@example.edu", "correct horse battery",
                                   Role.INSTRUCTOR)
    token = api.post("/api/v1/auth/login", json={"username": "ada",
                                                 "password": "correct horse battery"})
    message = queued_job(api)
    video = container.store.get_video(message.video_id)
    container.store.update_video(dataclasses.replace(video, owner_id=user.id))
    return message, {"Authorization": f"Bearer {token.json()['access_token']}"}


BAD_EVENTS = {
    "width_text": lambda m: completed(m).to_json().replace(b'"width":1280', b'"width":"abc"'),
    "height_object": lambda m: completed(m).to_json().replace(b'"height":720', b'"height":{}'),
    "width_bool": lambda m: completed(m).to_json().replace(b'"width":1280', b'"width":true'),
    "negative_height": lambda m: completed(m, height=-1).to_json(),
    "nan_duration": lambda m: completed(m).to_json().replace(b'"duration":12.5',
                                                             b'"duration":NaN'),
    "duration_text": lambda m: completed(m).to_json().replace(b'"duration":12.5',
                                                              b'"duration":"12.5"'),
    "rendition_not_object": lambda m: completed(m).to_json().replace(
        b'"renditions":[{', b'"renditions":[7,{'),
    "rendition_height_text": lambda m: completed(m).to_json().replace(
        b'"height":720,"width":1280,"bitrate"', b'"height":"720","width":1280,"bitrate"'),
    "no_renditions": lambda m: completed(m, renditions=()).to_json(),
    "no_playlist_key": lambda m: completed(m, playlist_key=None).to_json(),
    "attempt_text": lambda m: completed(m).to_json().replace(b'"attempt":1', b'"attempt":"1"'),
    "progress_over_100": lambda m: JobEvent(m.job_id, m.video_id, 1, "progress", progress=101,
                                            phase="transcoding").to_json(),
    "progress_unknown_phase": lambda m: JobEvent(m.job_id, m.video_id, 1, "progress", progress=5,
                                                 phase="dancing").to_json(),
    "failed_retryable_text": lambda m: JobEvent(
        m.job_id, m.video_id, 1, "failed", error_code="x", error_message="y",
        retryable=True).to_json().replace(b'"retryable":true', b'"retryable":"yes"'),
    "playable_without_playlist": lambda m: JobEvent(m.job_id, m.video_id, 1,
                                                    "playable").to_json(),
    "playable_width_text": lambda m: JobEvent(
        m.job_id, m.video_id, 1, "playable", width=640, playlist_key="k").to_json().replace(
        b'"width":640', b'"width":"640"'),
    "event_id_number": lambda m: completed(m, event_id="E").to_json().replace(
        b'"event_id":"E"', b'"event_id":5'),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_mistyped_events_are_refused_before_anything_changes(api, case):
    message, auth = _owned_queued_job(api)
    assert signed(api, JobEvent(message.job_id, message.video_id, 1, "started")).status_code == 200
    body = BAD_EVENTS[case](message)
    secret = api.app.state.container.webhook_secret
    response = post(api, body, sign(secret, body))
    assert response.status_code == 422 and response.json()["error"]["code"] == "bad_event"
    # Nothing applied: still processing, and the listing still answers.
    assert video_status(api, message) is VideoStatus.PROCESSING
    assert api.get("/api/v1/videos", headers=auth).status_code == 200
    # An unsigned copy is refused for its signature first.
    assert post(api, body, sign(b"not the secret", body)).status_code == 401
    # The worker's proper event still completes the video.
    assert signed(api, completed(message)).json()["status"] == "applied"
    listed = api.get("/api/v1/videos", headers=auth)
    assert listed.status_code == 200
    assert [(v["status"], v["width"], v["height"]) for v in listed.json()] == [
        ("ready", 1280, 720)]


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
