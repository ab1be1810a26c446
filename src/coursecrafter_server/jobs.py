"""Transcoding jobs, server side: the outbox, the webhook state machine, the sweeper's rescue work.

The store decides the state; the queue only carries work. A job is written (`pending`) before it
is published; whatever never reached the queue, or whose worker went silent, is published again
with a higher `attempt`, and events of older attempts are ignored.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Protocol

from coursecrafter_server.domain import (
    InvalidState,
    Job,
    JobStatus,
    Video,
    VideoKind,
    VideoStatus,
)
from coursecrafter_worker.storage import ObjectStorage, keys
from coursecrafter_worker.storage.keys import output_prefix
from coursecrafter_server import lifecycle
from coursecrafter_server.chunk_jobs import ChunkJobs
from coursecrafter_server.store.base import ChunkStore, EventStore, JobStore, VideoStore
from coursecrafter_worker.messages import JobEvent, JobMessage
from coursecrafter_worker.queue.base import DeadLetter

log = logging.getLogger(__name__)

ACTIVE_VIDEO = (VideoStatus.QUEUED, VideoStatus.PROCESSING)


class Publisher(Protocol):
    def publish(self, message: JobMessage) -> None:
        """Return once the queue holds the message; raise otherwise."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _closed_by(job: Job, event: JobEvent) -> bool:
    """Whether `event` is the kind that closes a job the way `job` is closed (so a retry of it
    may still have the video's half of the change to make)."""
    return (job.status, event.type) in {(JobStatus.DONE, "completed"),
                                        (JobStatus.FAILED, "failed")}


class TranscodingStore(JobStore, EventStore, VideoStore, ChunkStore, Protocol):
    """Jobs, the webhook events that move them, and the videos they transcode."""


class JobService:
    def __init__(
        self,
        store: TranscodingStore,
        storage: ObjectStorage,
        publisher: Publisher,
        *,
        callback_url: str,
        max_attempts: int = 3,
        republish_after: float = 30.0,
        heartbeat_timeout: float = 120.0,
        early_grace: float = 6 * 3600,
    ) -> None:
        self.store = store
        self.storage = storage
        self.publisher = publisher
        self.callback_url = callback_url
        self.max_attempts = max_attempts
        self.republish_after = republish_after
        self.heartbeat_timeout = heartbeat_timeout
        # How long early outputs outlive `ready`/`failed`: the playback URL TTL, so a player
        # that loaded the early playlist keeps playing until its URLs expire.
        self.early_grace = early_grace
        self.chunks = ChunkJobs(self, store)  # the chunks of a job whose worker cut its source

    # Enqueue -----------------------------------------------------------------------------------
    def enqueue(self, video: Video) -> Job | None:
        """Move an uploaded video to `queued`: job first (outbox), then the video, then publish.
        A crash after the job is written leaves a `pending` job the sweeper finishes (see
        `_ready_to_publish`); a repeated `complete` adopts that job instead of adding another."""
        if video.kind is not VideoKind.VIDEO:
            return None
        now = _now()
        job = self._left_behind(video)
        adopted = job is not None
        if job is None:
            job = Job(id=uuid.uuid4().hex, video_id=video.id, attempt=1,
                      status=JobStatus.PENDING, created_at=now, updated_at=now)
            self.store.add_job(job)
        # early_expires_at cleared: the new attempt reuses or re-makes the early outputs, so the
        # sweeper must not remove them under it.
        queued = lifecycle.write(self.store, video, VideoStatus.QUEUED, progress=0, phase=None,
                                 error_code=None, error_message=None, early_expires_at=None,
                                 updated_at=now)
        if queued is None:
            if not adopted:  # someone else moved the video: they own the next step
                self._finish(job, JobStatus.FAILED)
            return None
        return self._publish(job) if job.status is JobStatus.PENDING else job

    def _left_behind(self, video: Video) -> Job | None:
        """The open job of a still-`uploaded` video: an enqueue that stopped half-way."""
        if video.status is not VideoStatus.UPLOADED:
            return None
        job = self.store.get_latest_job(video.id)
        if job is not None and job.status in (JobStatus.PENDING, JobStatus.PUBLISHED,
                                              JobStatus.PROCESSING):
            return job
        return None

    def _ready_to_publish(self, job: Job) -> bool:
        """Before (re)publishing a `pending` job: its video must be waiting for it. Finish the
        enqueue a crash interrupted (video still `uploaded`); fail a job whose video has moved
        on without it (deleted, or failed before the job was confirmed)."""
        video = self.store.get_video(job.video_id)
        if video is not None and video.status in ACTIVE_VIDEO:
            return True
        if video is not None and video.status is VideoStatus.UPLOADED:
            latest = self.store.get_latest_job(video.id)
            if latest is not None and latest.id == job.id:
                if lifecycle.write(self.store, video, VideoStatus.QUEUED, progress=0,
                                   phase=None) is not None:
                    log.info("video %s: finished an interrupted enqueue (job %s)", video.id, job.id)
                    return True
                return False
        self._finish(job, JobStatus.FAILED)
        log.info("job %s dropped: its video is gone or has moved on", job.id)
        return False

    def retry(self, user_video: Video) -> Video:
        """`failed` → `queued` with a fresh job (the user asked)."""
        if user_video.status is not VideoStatus.FAILED:
            raise InvalidState(f"only a failed video can be retried; this one is "
                               f"{user_video.status.value}")
        if user_video.error_code == "upload_expired" or self.storage.head(
            keys.source_key(user_video.id)
        ) is None:
            raise InvalidState("the uploaded source is gone; upload the file again")
        self.enqueue(user_video)
        return self.store.get_video(user_video.id) or user_video

    # Webhook -----------------------------------------------------------------------------------
    def handle_event(self, event: JobEvent) -> str:
        """Apply one verified webhook event; return what happened (for logs and the response).

        The event id is remembered only after the event has been applied: the worker takes
        "duplicate" as "delivered" (and then deletes the source and acks), so an error or a crash
        half-way must make its retry apply the event again, not be waved through. Applying twice
        is safe: every state change below is a compare-and-set."""
        if self.store.has_event(event.event_id):
            return "duplicate"
        outcome = self._apply(event)
        self.store.record_event(event.event_id, _now())
        return outcome

    def _apply(self, event: JobEvent) -> str:
        job = self.store.get_job(event.job_id)
        if job is None or job.video_id != event.video_id:
            return "unknown_job"
        video = self.store.get_video(job.video_id)
        if video is None:
            if event.type in ("completed", "playable"):
                # Deleted while it was being transcoded: what the worker just uploaded is orphaned.
                self.storage.delete_prefix(output_prefix(job.video_id))
                log.info("video %s was deleted mid-job: its new outputs removed", job.video_id)
            return "unknown_video"
        if event.attempt != job.attempt or (
            job.status in (JobStatus.DONE, JobStatus.FAILED) and not _closed_by(job, event)
        ):
            return "stale"
        if _closed_by(job, event) and video.status not in ACTIVE_VIDEO:
            return "duplicate"  # applied in full before; only remembering its id failed
        if event.type == "chunked":
            return self.chunks.on_chunked(job, video, event)
        if event.chunk is not None:
            return self.chunks.on_event(job, video, event)
        handler = {
            "started": self._on_started,
            "progress": self._on_progress,
            "playable": self._on_playable,
            "completed": self._on_completed,
            "failed": self._on_failed,
        }[event.type]
        return handler(job, video, event)

    def _beat(self, job: Job, status: JobStatus) -> bool:
        """Record a heartbeat of `job.attempt`. The compare-and-set keeps a late heartbeat from
        reopening a finished job; when it loses only to a benign write of the same attempt (the
        enqueuing thread confirming PENDING → PUBLISHED after a fast worker already started), read
        the job again and retry instead of calling the event stale."""
        for _ in range(5):
            now = _now()
            beaten = dataclasses.replace(job, status=status, heartbeat_at=now, updated_at=now)
            if self.store.update_job(beaten, expected_attempt=job.attempt,
                                     expected_status=job.status):
                return True
            fresh = self.store.get_job(job.id)
            if fresh is None or fresh.attempt != job.attempt or fresh.status in (
                JobStatus.DONE, JobStatus.FAILED
            ):
                return False
            job = fresh
        return False

    def _on_started(self, job: Job, video: Video, event: JobEvent) -> str:
        if video.status not in ACTIVE_VIDEO:  # ready, failed or re-uploaded: hands off
            return "illegal"
        if job.status is JobStatus.PROCESSING and self._chunked(job):
            # This attempt was cut already and its chunks are out: a redelivered copy of the
            # whole job must not cut (and upload) the source again.
            return "stale"
        if not self._beat(job, JobStatus.PROCESSING):
            return "stale"
        self._set_video(video, status=VideoStatus.PROCESSING, phase="probing", progress=0)
        return "applied"

    def _on_progress(self, job: Job, video: Video, event: JobEvent) -> str:
        if not self._beat(job, JobStatus.PROCESSING):
            return "stale"
        if video.status in ACTIVE_VIDEO:
            progress = max(video.progress, event.progress or 0) if event.phase == video.phase \
                else (event.progress or 0)
            self._set_video(video, status=VideoStatus.PROCESSING,
                            phase=event.phase or video.phase, progress=progress)
        return "applied"

    def _on_playable(self, job: Job, video: Video, event: JobEvent) -> str:
        """The early rendition is uploaded and the master playlist names it: watchable while
        the ladder is made. Legal only for the current attempt of a `processing` job whose
        video is `processing` (a redelivered job sends it again: applying twice is harmless)."""
        if video.status is not VideoStatus.PROCESSING or job.status is not JobStatus.PROCESSING:
            return "illegal"
        if not self._beat(job, JobStatus.PROCESSING):
            return "stale"
        self._set_video(video, playable=True, early_expires_at=None)
        log.info("video %s playable early (job %s attempt %d)", video.id, job.id, job.attempt)
        return "applied"

    def _on_completed(self, job: Job, video: Video, event: JobEvent) -> str:
        if video.status not in ACTIVE_VIDEO:
            return "illegal"
        # DONE already: this event closed the job, but the video write after it never landed.
        if job.status is not JobStatus.DONE and not self._finish(job, JobStatus.DONE):
            return "stale"
        self._set_video(
            video, status=VideoStatus.READY, progress=100, phase=None,
            duration=event.duration, width=event.width, height=event.height,
            renditions=tuple({"height": r.height, "bitrate": r.bitrate} for r in event.renditions),
            error_code=None, error_message=None, playable=True,
            # The new master playlist no longer names the early rendition; players that
            # loaded it before keep it until their URLs expire, then the sweeper removes it.
            early_expires_at=_now() + timedelta(seconds=self.early_grace),
        )
        log.info("video %s ready (job %s attempt %d)", video.id, job.id, job.attempt)
        return "applied"

    def _on_failed(self, job: Job, video: Video, event: JobEvent) -> str:
        if video.status not in ACTIVE_VIDEO:
            return "illegal"
        code = event.error_code or "transcode_failed"
        message = event.error_message or "transcoding failed"
        if event.retryable and job.attempt < self.max_attempts and job.status is not \
                JobStatus.FAILED:
            self._requeue(job, reason=code)
            return "requeued"
        if job.status is not JobStatus.FAILED and not self._finish(job, JobStatus.FAILED):
            return "stale"
        self._set_video(video, status=VideoStatus.FAILED, phase=None,
                        error_code=code, error_message=message, **self._early_gone())
        self._drop_outputs(video)
        log.info("video %s failed: %s", video.id, code)
        return "applied"

    # Sweeper -----------------------------------------------------------------------------------
    def sweep(self, now: datetime | None = None) -> dict[str, int]:
        now = now or _now()
        counts = {"republished": 0, "enqueued": 0, "requeued": 0, "failed": 0}
        # Written but never confirmed by the queue (broker down, crash between the two steps).
        for job in self.store.list_jobs(
            [JobStatus.PENDING], updated_before=now - timedelta(seconds=self.republish_after)
        ):
            if self._ready_to_publish(job) and self._publish(job) is not None:
                counts["republished"] += 1
        # Uploaded, but the request died between `complete` and writing the job.
        for video in self.store.list_videos_in_status(
            [VideoStatus.UPLOADED], updated_before=now - timedelta(seconds=self.republish_after)
        ):
            if video.kind is VideoKind.VIDEO and self._no_open_job(video):
                log.info("video %s: enqueuing an upload whose request stopped half-way", video.id)
                if self.enqueue(video) is not None:
                    counts["enqueued"] += 1
        # A worker took it and went silent (killed, machine gone).
        for job in self.store.list_jobs(
            [JobStatus.PROCESSING],
            heartbeat_before=now - timedelta(seconds=self.heartbeat_timeout),
        ):
            if self._chunked(job):  # its chunks are watched one by one, below
                continue
            if job.attempt < self.max_attempts:
                self._requeue(job, reason="worker_lost")
                counts["requeued"] += 1
            elif self._finish(job, JobStatus.FAILED):
                video = self.store.get_video(job.video_id)
                if video is not None and video.status in ACTIVE_VIDEO:
                    self._set_video(
                        video, status=VideoStatus.FAILED, phase=None, error_code="worker_lost",
                        error_message=f"the transcoder stopped responding {job.attempt} times; "
                        "run `coursecrafter retry` to try again", **self._early_gone(),
                    )
                    self._drop_outputs(video)
                counts["failed"] += 1
        counts.update(self.chunks.sweep(now))
        counts["early_removed"] = self.sweep_early_outputs(now)
        return counts

    def _early_gone(self) -> dict[str, object]:
        """The video changes of a final failure: not playable any more. Its outputs (an early
        rendition and the master naming it) are removed at once by `_drop_outputs`; the
        sweeper's pass (due now) is the backstop for a crash in between."""
        return {"playable": False, "early_expires_at": _now()}

    def _drop_outputs(self, video: Video) -> None:
        """A failed lecture is not watchable: whatever an early pass uploaded goes now (a
        retry re-makes it)."""
        try:
            removed = self.storage.delete_prefix(output_prefix(video.id))
            # The pieces of a chunked source too: a retry cuts the source again.
            removed += self.storage.delete_prefix(keys.pieces_prefix(video.id))
        except Exception as exc:  # the sweeper removes them on its next pass
            log.warning("video %s: outputs not removed yet: %r", video.id, exc)
            return
        if removed:
            log.info("video %s failed: its %d early output(s) removed", video.id, removed)

    def sweep_early_outputs(self, now: datetime | None = None, limit: int = 100) -> int:
        """Remove the early outputs whose grace has passed: `hls/early/` of a ready video; every
        output of a failed one (normally gone already; this catches a crash before that).
        Returns how many videos were swept."""
        now = now or _now()
        swept = 0
        for video in self.store.list_videos_early_expired(now, limit=limit):
            if video.status is VideoStatus.READY:
                # Storage first: a crash in between is swept again, never leaves bytes behind.
                self.storage.delete_prefix(f"{output_prefix(video.id)}{keys.EARLY_DIR}/")
                lifecycle.write(self.store, video, early_expires_at=None)
            elif video.status is VideoStatus.FAILED:
                # The record first: a retry that moved the video on in the meantime wins, and
                # its new attempt keeps the outputs it may reuse.
                if lifecycle.write(self.store, video, early_expires_at=None) is None:
                    continue
                self.storage.delete_prefix(output_prefix(video.id))
            else:  # re-queued since (a retry): the new attempt owns the outputs
                lifecycle.write(self.store, video, early_expires_at=None)
                continue
            swept += 1
            log.info("video %s: early outputs removed after their grace", video.id)
        return swept

    def settle_dead_letter(self, dead: DeadLetter) -> str:
        """A message the queue gave up on (delivered too often without an outcome, or its handler
        crashed): the video would otherwise wait in `queued`/`processing` forever. Fail it with
        the reason, unless the job has moved on (a newer attempt, or already finished)."""
        if dead.message is None:
            log.error("dead letter that is not a job message dropped: %r", dead.body[:200])
            return "poison"
        job = self.store.get_job(dead.message.job_id)
        if job is None or job.video_id != dead.message.video_id:
            return "unknown_job"
        if job.attempt != dead.message.attempt or job.status is JobStatus.DONE:
            return "stale"
        # FAILED already, yet the video still waits: a settle that stopped half-way; finish it.
        if job.status is not JobStatus.FAILED and not self._finish(job, JobStatus.FAILED):
            return "stale"
        video = self.store.get_video(job.video_id)
        if video is not None and video.status in ACTIVE_VIDEO:
            if dead.reason == "rejected":
                code, text = "worker_error", "the transcoder crashed on this video"
            else:
                code = "worker_lost"
                # RabbitMQ does not always say how often; its delivery limit is max_attempts.
                times = dead.deliveries or self.max_attempts
                text = f"the transcoder stopped {times} times without finishing this video"
            if dead.message.chunk is not None:
                text = f"chunk {dead.message.chunk.index + 1}: {text}"
            self._set_video(video, status=VideoStatus.FAILED, phase=None, error_code=code,
                            error_message=f"{text}; run `coursecrafter retry` to try again",
                            **self._early_gone())
            self._drop_outputs(video)
        log.warning("job %s attempt %d dead-lettered (%s): video %s failed", job.id, job.attempt,
                    dead.reason, job.video_id)
        return "applied"

    def republish_unfinished(self) -> int:
        """At start-up of the in-process queue: it starts empty, so hand it every open job."""
        count = 0
        for job in self.store.list_jobs([JobStatus.PENDING, JobStatus.PUBLISHED,
                                         JobStatus.PROCESSING], limit=10_000):
            if job.status is JobStatus.PROCESSING and self._chunked(job):
                self.chunks.republish(job)  # its chunks go on where they were
            elif job.status is JobStatus.PROCESSING:
                self._requeue(job, reason="server_restarted")
            elif job.status is JobStatus.PUBLISHED or self._ready_to_publish(job):
                self._publish(job)
            count += 1
        return count

    def cancel(self, video: Video) -> None:
        """The video is being deleted: close its open job so nobody re-queues it."""
        job = self.store.get_latest_job(video.id)
        if job is not None and self._finish(job, JobStatus.FAILED):
            log.info("job %s closed: video %s deleted", job.id, video.id)

    # Internals ---------------------------------------------------------------------------------
    def _chunked(self, job: Job) -> bool:
        """Whether `job`'s current attempt was cut: its chunks, not it, are watched."""
        return bool(self.store.list_chunks(job.id, job.attempt))

    def _no_open_job(self, video: Video) -> bool:
        job = self.store.get_latest_job(video.id)
        # A pending job left by an interrupted enqueue is the PENDING sweep's to finish.
        return job is None or job.status in (JobStatus.DONE, JobStatus.FAILED)

    def message(self, job: Job) -> JobMessage:
        return JobMessage(
            job_id=job.id, video_id=job.video_id, attempt=job.attempt,
            source_key=keys.source_key(job.video_id), output_prefix=output_prefix(job.video_id),
            callback_url=self.callback_url, created_at=job.created_at.isoformat(),
        )

    def _publish(self, job: Job) -> Job | None:
        try:
            self.publisher.publish(self.message(job))
        except Exception as exc:  # the outbox keeps it; the sweeper tries again
            log.warning("could not publish job %s (attempt %d): %s", job.id, job.attempt, exc)
            return None
        published = dataclasses.replace(job, status=JobStatus.PUBLISHED, updated_at=_now())
        if self.store.update_job(published, expected_attempt=job.attempt,
                                 expected_status=JobStatus.PENDING):
            return published
        return job

    def _requeue(self, job: Job, *, reason: str) -> None:
        now = _now()
        again = dataclasses.replace(job, attempt=job.attempt + 1, status=JobStatus.PENDING,
                                    heartbeat_at=None, updated_at=now)
        # The status too, not only the attempt: a job that finished since it was read (say,
        # `completed` landing while the sweeper thought its worker silent) stays finished.
        if not self.store.update_job(again, expected_attempt=job.attempt,
                                     expected_status=job.status):
            return
        video = self.store.get_video(job.video_id)
        if video is not None and video.status in ACTIVE_VIDEO:
            self._set_video(video, status=VideoStatus.QUEUED, phase=None, progress=0)
        log.info("job %s re-queued as attempt %d (%s)", job.id, again.attempt, reason)
        self._publish(again)

    def _finish(self, job: Job, status: JobStatus) -> bool:
        """Close `job.attempt` as DONE or FAILED, unless it is closed already or a newer attempt
        replaced it. A benign change of the same attempt since it was read (PUBLISHED →
        PROCESSING by a fast worker) is read again and retried, as in `_beat`."""
        for _ in range(5):
            if job.status in (JobStatus.DONE, JobStatus.FAILED):
                return False
            done = dataclasses.replace(job, status=status, updated_at=_now())
            if self.store.update_job(done, expected_attempt=job.attempt,
                                     expected_status=job.status):
                return True
            fresh = self.store.get_job(job.id)
            if fresh is None or fresh.attempt != job.attempt:
                return False
            job = fresh
        return False

    def _set_video(self, video: Video, **changes: object) -> None:
        # Compare-and-set on status; one retry with a fresh read covers a concurrent progress write.
        for _ in range(3):
            if lifecycle.write(self.store, video, **changes) is not None:  # type: ignore[arg-type]
                return
            fresh = self.store.get_video(video.id)
            if fresh is None or fresh.status not in ACTIVE_VIDEO:
                return
            video = fresh
