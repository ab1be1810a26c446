"""`GET /metrics`: Prometheus text for whoever runs the server.

Two kinds of figures:
- the pipeline's state, read from the store and the queue at scrape time (videos and jobs by
  status, the age of the oldest job waiting for a worker, messages waiting and dead letters).
  These are the same whichever process answers, so they are right with `--workers N` too;
- this process's HTTP traffic (requests by route template and status, latency histogram). With
  several API processes each keeps its own; scrape each, or read the store figures.

Each app has its own registry (not prometheus_client's global one), so several apps in one
process (tests, benchmarks) never share or clash."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coursecrafter_server.bootstrap import Container
from coursecrafter_server.domain import JobStatus, VideoStatus

log = logging.getLogger(__name__)
disable_created_metrics()  # the `_created` twin of every series only doubles the scrape

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WAITING = [JobStatus.PENDING, JobStatus.PUBLISHED]


class PipelineCollector(Collector):
    """Reads the pipeline's state when scraped. A part that cannot be read (queue away) is left
    out and counted in coursecrafter_metrics_errors, so the scrape itself still succeeds."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily("coursecrafter_metrics_errors",
                                   "Parts of this scrape that could not be read", labels=["part"])
        for part, read in (("store", self._store), ("queue", self._queue)):
            try:
                yield from read()
            except Exception as exc:  # report, never fail the scrape
                log.warning("metrics: cannot read the %s: %s", part, exc)
                errors.add_metric([part], 1)
        yield errors

    def _store(self) -> Iterator[Metric]:
        store = self.container.store
        videos = GaugeMetricFamily("coursecrafter_videos", "Videos by status", labels=["status"])
        counted = store.count_videos_by_status()
        for status in VideoStatus:
            videos.add_metric([status.value], counted.get(status, 0))
        yield videos
        jobs = GaugeMetricFamily("coursecrafter_jobs", "Transcoding jobs by status",
                                 labels=["status"])
        counted_jobs = store.count_jobs_by_status()
        for job_status in JobStatus:
            jobs.add_metric([job_status.value], counted_jobs.get(job_status, 0))
        yield jobs
        oldest = store.list_jobs(WAITING, limit=1)  # oldest updated_at first
        age = (datetime.now(timezone.utc) - oldest[0].updated_at).total_seconds() if oldest else 0
        yield GaugeMetricFamily(
            "coursecrafter_oldest_waiting_job_seconds",
            "How long the oldest job not yet taken by a worker has waited (0 when none waits)",
            value=max(age, 0.0))

    def _queue(self) -> Iterator[Metric]:
        waiting, dead = self.container.queue.message_counts()
        messages = GaugeMetricFamily("coursecrafter_queue_messages",
                                     "Messages in the job queue and its dead-letter queue",
                                     labels=["queue"])
        messages.add_metric(["jobs"], waiting)
        messages.add_metric(["dead_letters"], dead)
        yield messages


def _route_template(scope: Scope) -> str:
    """`/api/v1/videos/{video_id}` for a request to `/api/v1/videos/abc…`. FastAPI matches
    included routers as nested routers, so the matched route knows only its own part
    (`/videos/{video_id}`); the prefix is whatever of the path comes before that part."""
    route: Any = scope.get("route")
    inner = getattr(route, "path_format", None)
    if not inner:
        return "unmatched"  # 404s: never the raw path, or every probe becomes a label
    path: str = scope.get("path", "")
    try:
        concrete = inner.format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return str(inner)
    return path[: len(path) - len(concrete)] + inner if path.endswith(concrete) else str(inner)


class ServerMetrics:
    def __init__(self, container: Container) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "coursecrafter_http_requests", "HTTP requests answered by this process",
            ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "coursecrafter_http_request_duration_seconds",
            "Time to answer, by route template (this process)", ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry)
        self.webhook_events = Counter(
            "coursecrafter_webhook_events", "Worker webhook events by type and outcome",
            ["type", "outcome"], registry=self.registry)
        # Uploads: bytes brought in (counted once per upload, when complete succeeds) and starts
        # refused by a per-instructor quota.
        self.upload_bytes = Counter(
            "coursecrafter_upload_bytes", "Bytes of uploads completed through this process",
            ["kind"], registry=self.registry)
        self.uploads_completed = Counter(
            "coursecrafter_uploads_completed", "Uploads completed through this process",
            ["kind"], registry=self.registry)
        self.quota_refusals = Counter(
            "coursecrafter_upload_quota_refusals",
            "Upload starts refused by a per-instructor quota (this process)", ["quota"],
            registry=self.registry)
        for quota in ("open_uploads", "stored_bytes"):
            self.quota_refusals.labels(quota)  # present at 0, so alerts need no absent()
        self.registry.register(PipelineCollector(container))
        container.uploads.on_completed = self._upload_completed
        container.uploads.on_quota_refused = lambda quota: self.quota_refusals.labels(quota).inc()

    def _upload_completed(self, upload: Any, video: Any) -> None:
        self.upload_bytes.labels(video.kind.value).inc(upload.size)
        self.uploads_completed.labels(video.kind.value).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (`/api/v1/videos/{video_id}`,
    never the concrete path, so ids do not become labels)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
