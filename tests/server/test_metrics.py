"""GET /metrics: Prometheus text with the pipeline's state and the HTTP traffic, by route template."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coursecrafter_server.domain import JobStatus, Role, Video, VideoKind, VideoStatus
from coursecrafter_worker.messages import JobEvent
from coursecrafter_worker.queue.base import QueueUnavailable
from coursecrafter_worker.signing import HEADER, sign

PASSWORD = "correct horse battery"


def scrape(api, path: str = "/metrics") -> dict[tuple[str, tuple], float]:
    response = api.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):  # also proves it parses
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def queued_video(api) -> Video:
    container = api.app.state.container
    now = datetime.now(timezone.utc)
    video = Video(id=uuid.uuid4().hex, owner_id="u", course_id=None, kind=VideoKind.VIDEO,
                  title="t", filename="t.mp4", content_type="video/mp4", size=1, sha256=None,
                  status=VideoStatus.UPLOADED, created_at=now, updated_at=now)
    container.store.add_video(video)
    container.jobs.enqueue(video)
    return video


@pytest.fixture
def api(app_factory):
    return app_factory(transcode_concurrency=0)  # in-process queue, nobody consuming


def test_pipeline_state_is_counted(api):
    assert scrape(api)[("coursecrafter_videos", (("status", "queued"),))] == 0
    queued_video(api)
    queued_video(api)
    seen = scrape(api)
    assert seen[("coursecrafter_videos", (("status", "queued"),))] == 2
    assert seen[("coursecrafter_videos", (("status", "ready"),))] == 0
    assert seen[("coursecrafter_jobs", (("status", "published"),))] == 2
    assert seen[("coursecrafter_queue_messages", (("queue", "jobs"),))] == 2
    assert seen[("coursecrafter_queue_messages", (("queue", "dead_letters"),))] == 0
    assert seen[("coursecrafter_oldest_waiting_job_seconds", ())] >= 0
    assert ("coursecrafter_videos", (("status", "queued"),)) in scrape(api, "/api/v1/metrics")


def test_requests_are_counted_by_route_template_not_by_id(api):
    api.app.state.container.auth.register("ada", "ada@example.edu", PASSWORD, Role.INSTRUCTOR)
    token = api.post("/api/v1/auth/login", json={"username": "ada", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    secret_id = uuid.uuid4().hex
    assert api.get(f"/api/v1/videos/{secret_id}", headers=headers).status_code == 404
    api.get(f"/no/such/{secret_id}")
    text = api.get("/metrics").text
    assert secret_id not in text and token.json()["access_token"] not in text
    seen = scrape(api)
    route = (("method", "GET"), ("route", "/api/v1/videos/{video_id}"), ("status", "404"))
    assert seen[("coursecrafter_http_requests_total", route)] == 1
    assert seen[("coursecrafter_http_requests_total",
                 (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert seen[("coursecrafter_http_request_duration_seconds_count",
                 (("method", "GET"), ("route", "/api/v1/videos/{video_id}")))] == 1


def test_webhook_events_are_counted_by_type_and_outcome(api):
    container = api.app.state.container
    queued_video(api)
    (job,) = container.store.list_jobs([JobStatus.PUBLISHED])
    event = JobEvent(job_id=job.id, video_id=job.video_id, attempt=1, type="started")
    body = event.to_json()
    for _ in range(2):  # the second is a repeat
        response = api.post("/api/v1/internal/jobs/events", content=body, headers={
            "content-type": "application/json", HEADER: sign(container.webhook_secret, body)})
        assert response.status_code == 200
    seen = scrape(api)
    assert seen[("coursecrafter_webhook_events_total",
                 (("outcome", "applied"), ("type", "started")))] == 1
    assert seen[("coursecrafter_webhook_events_total",
                 (("outcome", "duplicate"), ("type", "started")))] == 1


def test_a_part_that_cannot_be_read_is_reported_and_the_scrape_still_answers(api):
    container = api.app.state.container

    def broker_away():
        raise QueueUnavailable("broker restarting")

    container.queue.message_counts = broker_away
    seen = scrape(api)
    assert seen[("coursecrafter_metrics_errors", (("part", "queue"),))] == 1
    assert ("coursecrafter_videos", (("status", "queued"),)) in seen  # the store part is there


def test_metrics_token_guards_both_paths(settings_factory, monkeypatch):
    from fastapi.testclient import TestClient

    from coursecrafter_server.app import create_app

    monkeypatch.setenv("COURSECRAFTER_METRICS_TOKEN", "scrape-me-0123456789")
    with TestClient(create_app(settings_factory(transcode_concurrency=0))) as api:
        for path in ("/metrics", "/api/v1/metrics"):
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": "Basic scrape-me-0123456789"},
                            {"Authorization": "Bearer scrape-me-0123456789x"},
                            {"Authorization": "Bearer sçrape".encode("latin-1")}):
                refused = api.get(path, headers=headers)
                assert refused.status_code == 401, (path, headers)
                assert refused.json()["error"]["code"] == "invalid_token"
                assert "coursecrafter_videos" not in refused.text
            allowed = api.get(path, headers={"Authorization": "Bearer scrape-me-0123456789"})
            assert allowed.status_code == 200 and "coursecrafter_videos" in allowed.text
        assert api.get("/healthz").status_code == 200  # probes stay open


def test_metrics_are_open_without_a_token(api):
    assert api.get("/metrics").status_code == 200
