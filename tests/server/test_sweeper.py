"""The sweeper wired to a real container: dead letters of the in-process queue reach the store."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from coursecrafter_server.bootstrap import build_container
from coursecrafter_server.domain import JobStatus, Video, VideoKind, VideoStatus
from coursecrafter_server.sweeper import Sweeper
from coursecrafter_worker.queue.base import Requeue


def _enqueued_and_consumed(container, handler):
    """An uploaded video enqueued, then its message consumed by `handler` until the in-process
    queue has nothing left (acked or dead-lettered)."""
    now = datetime.now(timezone.utc)
    video = Video(id=uuid.uuid4().hex, owner_id="u1", course_id=None, kind=VideoKind.VIDEO,
                  title="t", filename="t.mp4", content_type="video/mp4", size=10, sha256=None,
                  status=VideoStatus.UPLOADED, created_at=now, updated_at=now)
    container.store.add_video(video)
    job = container.jobs.enqueue(video)
    stop = threading.Event()
    consumer = threading.Thread(target=container.queue.consume, args=(handler,),
                                kwargs={"concurrency": 1, "stop": stop})
    consumer.start()
    try:
        assert container.queue.join(timeout=10)
    finally:
        stop.set()
        consumer.join()
    return video, job


def test_a_job_the_queue_gave_up_on_fails_its_video(settings_factory):
    container = build_container(settings_factory(max_attempts=2, transcode_concurrency=0))

    def never_finishes(message):  # e.g. a transcoder that cannot report, every time
        raise Requeue("outcome not reported")

    video, job = _enqueued_and_consumed(container, never_finishes)
    sweeper = Sweeper(container, interval=3600)
    assert sweeper.settle_dead_letters() == 1
    assert sweeper.settle_dead_letters() == 0  # each letter is settled once
    failed = container.store.get_video(video.id)
    assert failed.status is VideoStatus.FAILED and failed.error_code == "worker_lost"
    assert "coursecrafter retry" in failed.error_message
    assert container.store.get_job(job.id).status is JobStatus.FAILED
    container.close()


def test_a_dead_letter_whose_settling_failed_is_settled_by_the_next_sweep(settings_factory):
    container = build_container(settings_factory(max_attempts=1, transcode_concurrency=0))
    video, _ = _enqueued_and_consumed(container, _crash)

    real_get_job = container.store.get_job
    container.store.get_job = lambda job_id: (_ for _ in ()).throw(OSError("store away"))
    sweeper = Sweeper(container, interval=3600)
    with pytest.raises(OSError):
        sweeper.settle_dead_letters()
    assert container.store.get_video(video.id).status is VideoStatus.QUEUED  # not yet...
    container.store.get_job = real_get_job
    assert sweeper.settle_dead_letters() == 1  # ...but the letter was kept, not dropped
    failed = container.store.get_video(video.id)
    assert failed.status is VideoStatus.FAILED and failed.error_code == "worker_error"
    container.close()


def _crash(message):
    raise RuntimeError("transcoder bug")


def test_the_sweep_forgets_webhook_event_ids_after_a_week(settings_factory):
    container = build_container(settings_factory(transcode_concurrency=0))
    now = datetime.now(timezone.utc)
    container.store.record_event("old", now - timedelta(days=8))
    container.store.record_event("recent", now - timedelta(days=1))
    Sweeper(container, interval=3600).sweep_once()
    assert not container.store.has_event("old")
    assert container.store.has_event("recent")  # a late retry of it is still a duplicate
    container.close()
