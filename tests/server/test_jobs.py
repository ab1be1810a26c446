"""The job state machine behind the webhook: outbox, legal transitions, stale and repeated events,
re-queues and the sweeper's rescue work. Driven through JobService with the in-memory store."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from coursecrafter_server.domain import (
    InvalidState,
    JobStatus,
    Video,
    VideoKind,
    VideoStatus,
)
from coursecrafter_server.jobs import JobService
from coursecrafter_worker.storage.local import LocalStorage
from coursecrafter_server.store.memory import MemoryStore
from coursecrafter_worker.messages import JobEvent, Rendition


class FakePublisher:
    def __init__(self) -> None:
        self.messages = []
        self.down = False

    def publish(self, message) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.messages.append(message)


def make_world(tmp_path, *, max_attempts: int):
    """A job service on the in-memory store, local storage and a fake publisher."""
    store = MemoryStore()
    storage = LocalStorage(tmp_path / "blobs", "http://127.0.0.1:8000", b"secret-0123456789abcdef")
    publisher = FakePublisher()
    jobs = JobService(store, storage, publisher, callback_url="http://127.0.0.1:8000/cb",
                      max_attempts=max_attempts, republish_after=30, heartbeat_timeout=120)
    return store, storage, publisher, jobs


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path, max_attempts=3)


def uploaded_video(store) -> Video:
    now = datetime.now(timezone.utc)
    video = Video(id=uuid.uuid4().hex, owner_id="u1", course_id=None, kind=VideoKind.VIDEO,
                  title="t", filename="t.mp4", content_type="video/mp4", size=10, sha256=None,
                  status=VideoStatus.UPLOADED, created_at=now, updated_at=now)
    store.add_video(video)
    return video


def event(message, kind, **fields) -> JobEvent:
    return JobEvent(job_id=message.job_id, video_id=message.video_id, attempt=message.attempt,
                    type=kind, **fields)


def status(store, video) -> Video:
    return store.get_video(video.id)


def test_enqueue_writes_the_job_then_publishes(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    job = jobs.enqueue(video)
    assert status(store, video).status is VideoStatus.QUEUED
    assert job.status is JobStatus.PUBLISHED
    (message,) = publisher.messages
    assert message.video_id == video.id and message.attempt == 1
    assert message.source_key == f"uploads/{video.id}/source"
    assert message.output_prefix == f"videos/{video.id}/"
    assert message.callback_url == "http://127.0.0.1:8000/cb"


def test_broker_down_at_enqueue_loses_nothing(world):
    store, _, publisher, jobs = world
    publisher.down = True
    video = uploaded_video(store)
    jobs.enqueue(video)
    assert status(store, video).status is VideoStatus.QUEUED
    assert store.get_latest_job(video.id).status is JobStatus.PENDING
    publisher.down = False
    later = datetime.now(timezone.utc) + timedelta(seconds=31)
    assert jobs.sweep(later)["republished"] == 1
    assert len(publisher.messages) == 1
    assert store.get_latest_job(video.id).status is JobStatus.PUBLISHED


def test_full_lifecycle_to_ready(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    assert jobs.handle_event(event(message, "started")) == "applied"
    assert status(store, video).status is VideoStatus.PROCESSING
    jobs.handle_event(event(message, "progress", progress=40, phase="transcoding"))
    seen = status(store, video)
    assert (seen.progress, seen.phase) == (40, "transcoding")
    jobs.handle_event(event(
        message, "completed", duration=12.5, width=1280, height=720,
        renditions=(Rendition(720, 1280, 3000000, "hls/720p/index.m3u8"),
                    Rendition(480, 854, 1500000, "hls/480p/index.m3u8")),
        playlist_key=f"videos/{video.id}/hls/master.m3u8",
    ))
    ready = status(store, video)
    assert ready.status is VideoStatus.READY and ready.progress == 100
    assert ready.duration == 12.5 and (ready.width, ready.height) == (1280, 720)
    assert [r["height"] for r in ready.renditions] == [720, 480]
    assert store.get_latest_job(video.id).status is JobStatus.DONE


def test_repeated_event_id_is_ignored(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    progress = event(message, "progress", progress=50, phase="transcoding")
    assert jobs.handle_event(progress) == "applied"
    assert jobs.handle_event(progress) == "duplicate"


def test_events_of_an_older_attempt_change_nothing(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    first = publisher.messages[0]
    jobs.handle_event(event(first, "started"))
    jobs.handle_event(event(first, "failed", error_code="crash", error_message="x",
                            retryable=True))
    assert len(publisher.messages) == 2 and publisher.messages[1].attempt == 2
    assert status(store, video).status is VideoStatus.QUEUED
    # The first worker was not dead after all: its late completion must not count.
    assert jobs.handle_event(event(first, "completed", duration=1.0)) == "stale"
    assert status(store, video).status is VideoStatus.QUEUED


def test_bad_input_fails_at_once_with_the_reason(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "failed", error_code="not_media",
                            error_message="The file is not a video", retryable=False))
    failed = status(store, video)
    assert failed.status is VideoStatus.FAILED
    assert (failed.error_code, failed.error_message) == ("not_media", "The file is not a video")
    assert len(publisher.messages) == 1


def test_retryable_failures_stop_after_max_attempts(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    for attempt in (1, 2, 3):
        message = publisher.messages[-1]
        assert message.attempt == attempt
        jobs.handle_event(event(message, "failed", error_code="ffmpeg_crashed",
                                error_message="FFmpeg crashed", retryable=True))
    assert len(publisher.messages) == 3
    assert status(store, video).status is VideoStatus.FAILED


def test_completed_for_a_failed_video_is_illegal(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "failed", error_code="x", retryable=False))
    assert jobs.handle_event(event(message, "completed", duration=1.0)) == "stale"
    assert status(store, video).status is VideoStatus.FAILED


def test_silent_worker_is_replaced_by_the_sweeper(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    jobs.handle_event(event(publisher.messages[0], "started"))
    now = datetime.now(timezone.utc)
    assert jobs.sweep(now)["requeued"] == 0  # heartbeat is fresh
    assert jobs.sweep(now + timedelta(seconds=121))["requeued"] == 1
    assert publisher.messages[-1].attempt == 2
    assert status(store, video).status is VideoStatus.QUEUED


def test_worker_lost_too_often_fails_with_a_reason(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    now = datetime.now(timezone.utc)
    for step in range(3):
        jobs.handle_event(event(publisher.messages[-1], "started"))
        now += timedelta(seconds=200)
        jobs.sweep(now)
    failed = status(store, video)
    assert failed.status is VideoStatus.FAILED and failed.error_code == "worker_lost"


def test_retry_sends_a_failed_video_back_to_the_queue(world, tmp_path):
    store, storage, publisher, jobs = world
    video = uploaded_video(store)
    source = tmp_path / "src"
    source.write_bytes(b"x" * 10)
    storage.upload_file(source, f"uploads/{video.id}/source", "video/mp4")
    jobs.enqueue(video)
    jobs.handle_event(event(publisher.messages[0], "failed", error_code="x", retryable=False))
    with pytest.raises(InvalidState):
        jobs.retry(dataclasses.replace(status(store, video), status=VideoStatus.READY))
    retried = jobs.retry(status(store, video))
    assert retried.status is VideoStatus.QUEUED and retried.error_code is None
    assert publisher.messages[-1].attempt == 1 and publisher.messages[-1].job_id != \
        publisher.messages[0].job_id


def test_retry_without_a_source_says_upload_again(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    jobs.handle_event(event(publisher.messages[0], "failed", error_code="x", retryable=False))
    with pytest.raises(InvalidState, match="upload the file again"):
        jobs.retry(status(store, video))


def test_restart_republishes_open_jobs(world):
    store, _, publisher, jobs = world
    queued, running = uploaded_video(store), uploaded_video(store)
    jobs.enqueue(queued)
    jobs.enqueue(running)
    jobs.handle_event(event(publisher.messages[1], "started"))
    publisher.messages.clear()
    assert jobs.republish_unfinished() == 2
    by_video = {m.video_id: m.attempt for m in publisher.messages}
    assert by_video == {queued.id: 1, running.id: 2}


class RacingStore(MemoryStore):
    """Lets the enqueuing thread's PENDING → PUBLISHED write land between the moment the webhook
    handler reads the job and the moment it writes PROCESSING: a fast in-process worker can start
    before `enqueue` has recorded that the queue took the message (seen in CI)."""

    def __init__(self) -> None:
        super().__init__()
        self.interleave = None

    def get_job(self, job_id):
        job = super().get_job(job_id)
        if self.interleave is not None:
            hook, self.interleave = self.interleave, None
            hook()
        return job


def test_started_racing_the_publish_confirmation_is_applied(tmp_path):
    store = RacingStore()
    storage = LocalStorage(tmp_path / "blobs", "http://127.0.0.1:8000", b"secret-0123456789abcdef")
    publisher = FakePublisher()
    jobs = JobService(store, storage, publisher, callback_url="http://127.0.0.1:8000/cb")
    video = uploaded_video(store)
    publisher.down = True  # keep the job PENDING; the "other thread" confirms it below
    jobs.enqueue(video)
    publisher.down = False
    (job,) = store.list_jobs([JobStatus.PENDING])
    message = jobs.message(job)
    store.interleave = lambda: store.update_job(
        dataclasses.replace(job, status=JobStatus.PUBLISHED), expected_attempt=1,
        expected_status=JobStatus.PENDING)
    assert jobs.handle_event(event(message, "started")) == "applied"
    assert store.get_job(job.id).status is JobStatus.PROCESSING
    assert status(store, video).status is VideoStatus.PROCESSING
    assert jobs.handle_event(event(message, "progress", phase="transcoding", progress=40)) \
        == "applied"


def _dead(message, reason: str, deliveries: int = 3):
    from coursecrafter_worker.queue.base import DeadLetter

    return DeadLetter(message.to_json(), message, reason, deliveries)


def test_dead_lettered_job_fails_its_video_with_the_reason(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    (message,) = publisher.messages
    jobs.handle_event(event(message, "started"))
    assert jobs.settle_dead_letter(_dead(message, "delivery_limit")) == "applied"
    failed = status(store, video)
    assert failed.status is VideoStatus.FAILED and failed.error_code == "worker_lost"
    assert "stopped 3 times" in failed.error_message and "coursecrafter retry" in failed.error_message
    # Late events of that attempt change nothing; the user can retry.
    assert jobs.handle_event(event(message, "completed", duration=1.0)) == "stale"


def test_dead_letter_before_any_worker_started_fails_a_queued_video(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    (message,) = publisher.messages
    assert jobs.settle_dead_letter(_dead(message, "rejected", 1)) == "applied"
    failed = status(store, video)
    assert failed.status is VideoStatus.FAILED and failed.error_code == "worker_error"


def test_dead_letter_of_a_superseded_attempt_changes_nothing(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    (first,) = publisher.messages
    jobs.handle_event(event(first, "started"))
    later = datetime.now(timezone.utc) + timedelta(seconds=500)
    assert jobs.sweep(later)["requeued"] == 1  # the worker went silent: attempt 2
    assert jobs.settle_dead_letter(_dead(first, "delivery_limit")) == "stale"
    assert status(store, video).status is VideoStatus.QUEUED
    assert publisher.messages[-1].attempt == 2


def test_poison_dead_letter_is_dropped(world):
    from coursecrafter_worker.queue.base import DeadLetter

    *_, jobs = world
    assert jobs.settle_dead_letter(DeadLetter(b"not json", None, "poison", 1)) == "poison"


class CrashingStore(MemoryStore):
    """The server dies right after the job is written (the next write never happens)."""

    crash_on_video_update = False

    def update_video(self, video, **kw):
        if self.crash_on_video_update:
            raise SystemExit("server killed")
        return super().update_video(video, **kw)


def _crash_mid_enqueue(tmp_path):
    store = CrashingStore()
    storage = LocalStorage(tmp_path / "blobs", "http://127.0.0.1:8000", b"secret-0123456789abcdef")
    publisher = FakePublisher()
    jobs = JobService(store, storage, publisher, callback_url="http://127.0.0.1:8000/cb",
                      republish_after=30)
    video = uploaded_video(store)
    store.crash_on_video_update = True
    with pytest.raises(SystemExit):
        jobs.enqueue(video)
    store.crash_on_video_update = False
    assert status(store, video).status is VideoStatus.UPLOADED and not publisher.messages
    return store, publisher, jobs, video


def test_crash_between_job_and_video_write_the_sweeper_finishes_it(tmp_path):
    store, publisher, jobs, video = _crash_mid_enqueue(tmp_path)
    later = datetime.now(timezone.utc) + timedelta(seconds=60)
    assert jobs.sweep(later)["republished"] == 1
    assert status(store, video).status is VideoStatus.QUEUED
    (message,) = publisher.messages
    assert jobs.handle_event(event(message, "started")) == "applied"
    assert jobs.handle_event(event(message, "completed", duration=1.0)) == "applied"
    assert status(store, video).status is VideoStatus.READY


def test_crash_between_job_and_video_write_then_complete_again_adopts_the_job(tmp_path):
    store, publisher, jobs, video = _crash_mid_enqueue(tmp_path)
    (left,) = store.list_jobs([JobStatus.PENDING])
    job = jobs.enqueue(status(store, video))  # the client repeats POST /uploads/{id}/complete
    assert job.id == left.id and job.status is JobStatus.PUBLISHED
    assert status(store, video).status is VideoStatus.QUEUED
    assert len(publisher.messages) == 1 and store.get_latest_job(video.id).id == left.id


def test_pending_job_of_a_video_that_moved_on_is_dropped(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    publisher.down = True
    jobs.enqueue(video)  # job pending, video queued
    publisher.down = False
    (job,) = store.list_jobs([JobStatus.PENDING])
    store.delete_video(video.id)
    later = datetime.now(timezone.utc) + timedelta(seconds=60)
    assert jobs.sweep(later)["republished"] == 0
    assert store.get_job(job.id).status is JobStatus.FAILED and not publisher.messages


class FlakyStore(MemoryStore):
    """The store fails once, on the next video write: a lost connection, a full disk."""

    fail_next_video_update = False

    def update_video(self, video, **kw):
        if self.fail_next_video_update:
            self.fail_next_video_update = False
            raise OSError("disk I/O error")
        return super().update_video(video, **kw)


def _flaky_world(tmp_path):
    store = FlakyStore()
    storage = LocalStorage(tmp_path / "blobs", "http://127.0.0.1:8000", b"secret-0123456789abcdef")
    publisher = FakePublisher()
    return store, storage, publisher, JobService(store, storage, publisher,
                                                 callback_url="http://127.0.0.1:8000/cb")


def test_an_event_the_store_failed_to_apply_is_applied_when_the_worker_retries(tmp_path):
    # The worker reads "duplicate" as "delivered" and then deletes the source: an event must not
    # count as seen unless it was applied.
    store, _, publisher, jobs = _flaky_world(tmp_path)
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "started"))
    completed = event(message, "completed", duration=3.0, width=640, height=360)
    store.fail_next_video_update = True  # after the job is DONE, before the video is ready
    with pytest.raises(OSError):
        jobs.handle_event(completed)
    assert jobs.handle_event(completed) != "duplicate"  # the worker's retry of the same event
    assert status(store, video).status is VideoStatus.READY
    assert jobs.handle_event(completed) == "duplicate"


def test_an_applied_event_whose_id_was_not_remembered_is_still_a_duplicate(tmp_path):
    store, _, publisher, jobs = _flaky_world(tmp_path)
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "started"))
    completed = event(message, "completed", duration=3.0)
    assert jobs._apply(completed) == "applied"  # then the server died before record_event
    # "duplicate" tells the worker the outcome is in: it deletes the source and acks.
    assert jobs.handle_event(completed) == "duplicate"


def test_a_finished_job_is_not_reopened_by_a_sweeper_that_read_it_earlier(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "started"))
    (silent,) = store.list_jobs([JobStatus.PROCESSING])  # what a sweep read a moment ago
    jobs.handle_event(event(message, "completed", duration=3.0))  # then the worker finished
    jobs._requeue(silent, reason="worker_lost")  # the sweep acts on what it read
    assert store.get_job(silent.id).status is JobStatus.DONE
    assert store.get_job(silent.id).attempt == 1 and len(publisher.messages) == 1
    assert status(store, video).status is VideoStatus.READY


def test_started_for_a_video_that_is_no_longer_waiting_is_refused(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    store.update_video(dataclasses.replace(status(store, video), status=VideoStatus.FAILED))
    assert jobs.handle_event(event(message, "started")) == "illegal"  # the worker lets go
    assert store.get_latest_job(video.id).status is JobStatus.PUBLISHED


def test_an_upload_whose_enqueue_never_ran_is_queued_by_the_sweeper(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)  # `complete` recorded `uploaded`, then the server died
    assert jobs.sweep()["enqueued"] == 0  # not before republish_after: complete may be running
    later = datetime.now(timezone.utc) + timedelta(seconds=31)
    assert jobs.sweep(later)["enqueued"] == 1
    assert status(store, video).status is VideoStatus.QUEUED
    (message,) = publisher.messages
    assert message.video_id == video.id
    assert jobs.sweep(later + timedelta(seconds=31))["enqueued"] == 0  # once


def test_deleting_a_video_mid_job_closes_the_job_and_its_late_outputs_are_removed(
    world, tmp_path
):
    store, storage, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "started"))
    jobs.cancel(status(store, video))  # what DELETE /videos/{id} does first
    store.delete_video(video.id)
    assert store.get_latest_job(video.id).status is JobStatus.FAILED
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert jobs.sweep(later)["requeued"] == 0 and len(publisher.messages) == 1
    # The worker did not notice, and uploaded its outputs after the delete.
    playlist = tmp_path / "master.m3u8"
    playlist.write_bytes(b"#EXTM3U\n")
    storage.upload_file(playlist, f"videos/{video.id}/hls/master.m3u8", "application/x-mpegURL")
    assert jobs.handle_event(event(message, "completed", duration=3.0)) == "unknown_video"
    assert storage.head(f"videos/{video.id}/hls/master.m3u8") is None


# Playable early -------------------------------------------------------------------------------

def _early_outputs(storage, tmp_path, video_id: str) -> list[str]:
    """What a worker's early pass uploads: the early rendition, then the master naming it."""
    keys = [f"videos/{video_id}/hls/early/seg_00000.ts",
            f"videos/{video_id}/hls/early/index.m3u8", f"videos/{video_id}/hls/master.m3u8"]
    for key in keys:
        local = tmp_path / key.replace("/", "_")
        local.write_bytes(b"#EXTM3U\n")
        storage.upload_file(local, key, "application/octet-stream")
    return keys


def _early_event(message, video_id):
    return event(message, "playable", duration=3.0, width=640, height=360,
                 renditions=(Rendition(360, 640, 900000, "hls/early/index.m3u8"),),
                 playlist_key=f"videos/{video_id}/hls/master.m3u8")


def test_playable_while_processing_then_ready_keeps_early_outputs_for_the_grace(world, tmp_path):
    store, storage, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "started"))
    keys = _early_outputs(storage, tmp_path, video.id)
    assert jobs.handle_event(_early_event(message, video.id)) == "applied"
    seen = status(store, video)
    assert seen.playable is True and seen.status is VideoStatus.PROCESSING
    # A later progress event keeps it playable.
    jobs.handle_event(event(message, "progress", progress=30, phase="transcoding"))
    assert status(store, video).playable is True
    # A redelivered job sends it again (a new event id): harmless.
    assert jobs.handle_event(_early_event(message, video.id)) == "applied"

    jobs.handle_event(event(message, "completed", duration=3.0, width=640, height=360))
    ready = status(store, video)
    assert ready.status is VideoStatus.READY and ready.playable is True
    expires = ready.early_expires_at
    assert expires is not None
    grace = expires - datetime.now(timezone.utc)
    assert timedelta(hours=5, minutes=59) < grace <= timedelta(hours=6)
    # Within the grace the early rendition stays (a player may still be on it) ...
    assert jobs.sweep(expires - timedelta(seconds=1))["early_removed"] == 0
    assert all(storage.head(k) is not None for k in keys)
    # ... after it, only the early prefix goes; once.
    assert jobs.sweep(expires)["early_removed"] == 1
    assert storage.head(keys[0]) is None and storage.head(keys[1]) is None
    assert storage.head(keys[2]) is not None  # the (ladder's) master stays
    assert status(store, video).early_expires_at is None
    assert jobs.sweep(expires + timedelta(days=1))["early_removed"] == 0


def test_playable_is_legal_only_for_the_current_processing_attempt(world):
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    first = publisher.messages[0]
    # Before `started`: the job is not processing.
    assert jobs.handle_event(_early_event(first, video.id)) == "illegal"
    assert status(store, video).playable is False
    jobs.handle_event(event(first, "started"))
    jobs.handle_event(event(first, "failed", error_code="crash", retryable=True))
    second = publisher.messages[-1]
    assert second.attempt == 2
    # The first attempt is stale now; its late playable changes nothing.
    assert jobs.handle_event(_early_event(first, video.id)) == "stale"
    assert status(store, video).playable is False
    jobs.handle_event(event(second, "started"))
    repeated = _early_event(second, video.id)
    assert jobs.handle_event(repeated) == "applied"
    assert jobs.handle_event(repeated) == "duplicate"
    jobs.handle_event(event(second, "completed", duration=1.0))
    # After ready: the job is closed, a late playable is stale.
    assert jobs.handle_event(_early_event(second, video.id)) == "stale"


def test_a_requeued_playable_video_stays_playable(world, tmp_path):
    store, storage, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    jobs.handle_event(event(publisher.messages[0], "started"))
    jobs.handle_event(_early_event(publisher.messages[0], video.id))
    now = datetime.now(timezone.utc)
    assert jobs.sweep(now + timedelta(seconds=121))["requeued"] == 1  # the worker went silent
    requeued = status(store, video)
    # The early outputs are still there and the next attempt reuses them: nothing lost.
    assert requeued.status is VideoStatus.QUEUED and requeued.playable is True
    assert requeued.early_expires_at is None


def test_final_failure_after_playable_removes_every_output_at_once(world, tmp_path):
    store, storage, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "started"))
    keys = _early_outputs(storage, tmp_path, video.id)
    jobs.handle_event(_early_event(message, video.id))
    jobs.handle_event(event(message, "failed", error_code="bad", error_message="bad",
                            retryable=False))
    failed = status(store, video)
    assert failed.status is VideoStatus.FAILED and failed.playable is False
    # A failed lecture is not watchable: nothing of it stays (a retry re-makes it).
    assert all(storage.head(k) is None for k in keys)
    # The sweeper's backstop (a crash before that delete) is due at once and finds nothing.
    assert jobs.sweep(failed.early_expires_at)["early_removed"] == 1
    assert status(store, video).early_expires_at is None


def test_worker_lost_too_often_after_playable_removes_the_outputs(world, tmp_path):
    store, storage, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    keys = _early_outputs(storage, tmp_path, video.id)
    now = datetime.now(timezone.utc)
    for _ in range(3):
        jobs.handle_event(event(publisher.messages[-1], "started"))
        jobs.handle_event(_early_event(publisher.messages[-1], video.id))
        assert status(store, video).playable is True
        now += timedelta(seconds=200)
        jobs.sweep(now)
    failed = status(store, video)
    assert failed.status is VideoStatus.FAILED and failed.playable is False
    assert all(storage.head(k) is None for k in keys)


def test_after_a_retry_the_sweeper_leaves_the_outputs_to_the_new_attempt(world, tmp_path):
    store, storage, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "started"))
    _early_outputs(storage, tmp_path, video.id)
    jobs.handle_event(_early_event(message, video.id))
    jobs.handle_event(event(message, "failed", error_code="bad", retryable=False))
    expires = status(store, video).early_expires_at
    keys = _early_outputs(storage, tmp_path, video.id)  # (say the delete at failure was lost)
    source = tmp_path / "src"
    source.write_bytes(b"x")
    storage.upload_file(source, f"uploads/{video.id}/source", "video/mp4")
    jobs.retry(status(store, video))
    assert status(store, video).early_expires_at is None
    assert jobs.sweep(expires + timedelta(seconds=1))["early_removed"] == 0
    assert all(storage.head(k) is not None for k in keys)


def test_playable_for_a_deleted_video_removes_its_late_outputs(world, tmp_path):
    store, storage, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    message = publisher.messages[0]
    jobs.handle_event(event(message, "started"))
    jobs.cancel(status(store, video))
    store.delete_video(video.id)
    keys = _early_outputs(storage, tmp_path, video.id)
    assert jobs.handle_event(_early_event(message, video.id)) == "unknown_video"
    assert all(storage.head(k) is None for k in keys)
