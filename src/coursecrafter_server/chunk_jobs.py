"""Chunk jobs, server side: the store's record of a chunked job and its state machine.

A worker that cut a long source sends `chunked` (coursecrafter_worker/chunked.py); this writes
one row per chunk of that job attempt (picture pieces, the audio piece, the join) and publishes
every piece as a job message with `chunk` set. Each row is a small job of its own: its `attempt`
grows when it is re-queued, events of an older one are stale, heartbeats keep it alive, and the
sweeper re-queues a silent one or fails the video once it has used up its attempts. The join
row waits until every other row is `done`; moving it `waiting → pending` is a compare-and-set,
so the join is published exactly once whichever chunk's `completed` (or retry of it) sees the
set complete first. The join's `completed` is the video's: the job is done, the video ready.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from coursecrafter_server.chunk_records import OPEN, Chunk, ChunkStatus, chunk_id
from coursecrafter_server.domain import Job, JobStatus, Video, VideoStatus
from coursecrafter_server.store.base import ChunkStore, JobStore, VideoStore
from coursecrafter_worker.messages import JobEvent

if TYPE_CHECKING:
    from coursecrafter_server.jobs import JobService

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


__all__ = ["Chunk", "ChunkJobs", "ChunkStatus", "chunk_id"]


def _pieces_progress(chunks: list[Chunk], percent: int = 0) -> int:
    """Percent done of a cut job's pieces (the join aside), one of them `percent` of the way."""
    pieces = [c for c in chunks if c.kind != "join"]
    done = sum(c.status is ChunkStatus.DONE for c in pieces)
    return min(99, (done * 100 + min(100, percent)) // max(1, len(pieces)))


class ChunkJobStore(ChunkStore, JobStore, VideoStore, Protocol):
    """What the chunk state machine reads and writes (video writes go through the job service)."""


class ChunkJobs:
    """The chunk half of the job service (which publishes, and writes the videos)."""

    def __init__(self, jobs: Any, store: ChunkJobStore) -> None:
        # `jobs` is the JobService that owns this one (typed below; its module imports this).
        self.jobs: JobService = jobs
        self.store = store

    # Events ------------------------------------------------------------------------------------
    def on_chunked(self, job: Job, video: Video, event: JobEvent) -> str:
        if video.status is not VideoStatus.PROCESSING or job.status is not JobStatus.PROCESSING:
            return "illegal"
        if not self.jobs._beat(job, JobStatus.PROCESSING):
            return "stale"
        pieces = event.pieces or 0
        starts = list(event.starts)[:pieces]
        if pieces < 2 or len(starts) != pieces:
            return "illegal"
        now = _now()

        def row(index: int, kind: str, start: float, status: ChunkStatus) -> Chunk:
            return Chunk(id=chunk_id(job.id, job.attempt, index), job_id=job.id,
                         job_attempt=job.attempt, index=index, kind=kind, start=float(start),
                         pieces=pieces, audio=bool(event.audio), content=event.content or "motion",
                         attempt=1, status=status, created_at=now, updated_at=now)

        rows = [row(i, "video", s, ChunkStatus.PENDING) for i, s in enumerate(starts)]
        if event.audio:
            rows.append(row(pieces, "audio", 0.0, ChunkStatus.PENDING))
        rows.append(row(len(rows), "join", 0.0, ChunkStatus.WAITING))
        # Insert-if-absent: a repeated `chunked` (a redelivered cut) keeps the rows it finds.
        self.store.add_chunks(rows)
        self.jobs._set_video(video, phase="transcoding", progress=0,
                             **{k: v for k, v in (("duration", event.duration),
                                                  ("width", event.width),
                                                  ("height", event.height)) if v is not None})
        for chunk in self.store.list_chunks(job.id, job.attempt):
            if chunk.status is ChunkStatus.PENDING:
                self._publish(job, chunk)
        log.info("job %s attempt %d: chunked into %d piece(s)%s", job.id, job.attempt, pieces,
                 " + audio" if event.audio else "")
        return "applied"

    def on_event(self, job: Job, video: Video, event: JobEvent) -> str:
        """An event of a chunk job (`event.chunk` set)."""
        chunk = self._find(job, event.chunk)
        if chunk is None or chunk.attempt != event.chunk_attempt or \
                chunk.status is ChunkStatus.FAILED:
            return "stale"
        if chunk.status is ChunkStatus.DONE and event.type != "completed":
            return "stale"
        if video.status not in (VideoStatus.QUEUED, VideoStatus.PROCESSING):
            return "illegal"
        if event.type in ("started", "progress"):
            if not self._beat(chunk):
                return "stale"
            self.jobs._beat(job, JobStatus.PROCESSING)  # the job lives while its chunks do
            if event.type == "started":
                self.jobs._set_video(video, status=VideoStatus.PROCESSING,
                                     phase="transcoding")
            elif chunk.kind != "join" and event.phase == "transcoding" and event.progress:
                self._show_progress(job, video, event.progress)
            return "applied"
        if event.type == "completed":
            return self._on_completed(job, video, chunk, event)
        if event.type == "failed":
            return self._on_failed(job, video, chunk, event)
        return "illegal"  # playable / chunked come from the whole job only

    def _show_progress(self, job: Job, video: Video, percent: int) -> None:
        """The video's progress while its pieces run: the pieces done, plus the share of the one
        reporting; never backwards (pieces running side by side report in turn)."""
        chunks = self.store.list_chunks(job.id, job.attempt)
        shown = _pieces_progress(chunks, percent)
        if video.phase == "transcoding" and shown > (video.progress or 0):
            self.jobs._set_video(video, progress=shown)

    def _on_completed(self, job: Job, video: Video, chunk: Chunk, event: JobEvent) -> str:
        if chunk.status is not ChunkStatus.DONE and not self._move(chunk, ChunkStatus.DONE):
            return "stale"
        if chunk.kind == "join":
            # The join's `completed` is the video's; the source's dimensions, not the top rung's.
            event = dataclasses.replace(event, width=video.width or event.width,
                                        height=video.height or event.height)
            return self.jobs._on_completed(job, video, event)
        self.jobs._beat(job, JobStatus.PROCESSING)
        chunks = self.store.list_chunks(job.id, job.attempt)
        pieces = [c for c in chunks if c.kind != "join"]
        done = sum(c.status is ChunkStatus.DONE for c in pieces)
        if done < len(pieces):
            shown = _pieces_progress(chunks)
            if shown > (video.progress or 0) or video.phase != "transcoding":
                self.jobs._set_video(video, phase="transcoding", progress=shown)
            return "applied"
        join = next((c for c in chunks if c.kind == "join"), None)
        # Compare-and-set: of the completions (and their retries) that find every piece done,
        # exactly one moves the join on and publishes it.
        if join is not None and join.status is ChunkStatus.WAITING:
            claimed = dataclasses.replace(join, status=ChunkStatus.PENDING, updated_at=_now())
            if self.store.update_chunk(claimed, expected_status=ChunkStatus.WAITING,
                                       expected_attempt=join.attempt):
                log.info("job %s attempt %d: every chunk done, join queued", job.id,
                         job.attempt)
                self.jobs._set_video(video, phase="uploading", progress=0)
                self._publish(job, claimed)
        return "applied"

    def _on_failed(self, job: Job, video: Video, chunk: Chunk, event: JobEvent) -> str:
        code = event.error_code or "transcode_failed"
        text = event.error_message or "transcoding failed"
        if event.retryable and chunk.attempt < self.jobs.max_attempts:
            return "requeued" if self._requeue(job, chunk, reason=code) else "stale"
        return self._fail_video(job, video, chunk, code, text)

    # Sweeper -----------------------------------------------------------------------------------
    def sweep(self, now: datetime) -> dict[str, int]:
        counts = {"chunks_republished": 0, "chunks_requeued": 0, "chunks_failed": 0}
        jobs = self.jobs
        stale = self.store.list_chunks_in_status(
            [ChunkStatus.PENDING], updated_before=now - timedelta(seconds=jobs.republish_after))
        silent = self.store.list_chunks_in_status(
            [ChunkStatus.PROCESSING],
            heartbeat_before=now - timedelta(seconds=jobs.heartbeat_timeout))
        for chunk in stale + silent:
            job = self.store.get_job(chunk.job_id)
            if job is None or job.attempt != chunk.job_attempt or \
                    job.status is not JobStatus.PROCESSING:
                self._move(chunk, ChunkStatus.FAILED)  # its attempt is over: retire it
                continue
            if chunk.status is ChunkStatus.PENDING:
                self._publish(job, chunk)
                counts["chunks_republished"] += 1
            elif chunk.attempt < jobs.max_attempts:
                if self._requeue(job, chunk, reason="worker_lost"):
                    counts["chunks_requeued"] += 1
            else:
                video = self.store.get_video(job.video_id)
                if video is not None:
                    self._fail_video(
                        job, video, chunk, "worker_lost",
                        f"the transcoder stopped responding {chunk.attempt} times; "
                        "run `coursecrafter retry` to try again")
                counts["chunks_failed"] += 1
        return counts

    def republish(self, job: Job) -> int:
        """Publish the open chunks of `job` again (the in-process queue starts empty)."""
        count = 0
        for chunk in self.store.list_chunks(job.id, job.attempt):
            if chunk.status in OPEN:
                self._publish(job, chunk)
                count += 1
        return count

    # Internals ---------------------------------------------------------------------------------
    def _find(self, job: Job, index: int | None) -> Chunk | None:
        return None if index is None else self._row(job.id, job.attempt, index)

    def _row(self, job_id: str, job_attempt: int, index: int) -> Chunk | None:
        return next((c for c in self.store.list_chunks(job_id, job_attempt)
                     if c.index == index), None)

    def _publish(self, job: Job, chunk: Chunk) -> None:
        end = None
        if chunk.kind == "video" and chunk.index + 1 < chunk.pieces:
            # The piece keeps its frames up to where the next one starts (seams on one grid).
            following = self._row(job.id, job.attempt, chunk.index + 1)
            end = following.start if following is not None else None
        message = dataclasses.replace(self.jobs.message(job), chunk=chunk.ref(end))
        try:
            self.jobs.publisher.publish(message)
        except Exception as exc:  # the row keeps it; the sweeper tries again
            log.warning("could not publish chunk %s: %s", chunk.id, exc)
            return
        if chunk.status is ChunkStatus.PENDING:
            published = dataclasses.replace(chunk, status=ChunkStatus.PUBLISHED,
                                            updated_at=_now())
            self.store.update_chunk(published, expected_status=ChunkStatus.PENDING,
                                    expected_attempt=chunk.attempt)

    def _move(self, chunk: Chunk, status: ChunkStatus) -> bool:
        """Compare-and-set `chunk` to `status`; a benign change of the same attempt since it was
        read (PENDING → PUBLISHED, a heartbeat) is read again and retried. A chunk already
        settled counts as moved only when it settled in `status`."""
        return self._write(chunk, lambda c: dataclasses.replace(c, status=status,
                                                                 updated_at=_now()),
                           settled=lambda c: (c.status is status
                                              if c.status in (ChunkStatus.DONE, ChunkStatus.FAILED)
                                              else None))

    def _beat(self, chunk: Chunk) -> bool:
        def beaten(c: Chunk) -> Chunk:
            now = _now()
            return dataclasses.replace(c, status=ChunkStatus.PROCESSING, heartbeat_at=now,
                                       updated_at=now)
        quiet = (ChunkStatus.DONE, ChunkStatus.FAILED, ChunkStatus.WAITING)
        return self._write(chunk, beaten,
                           settled=lambda c: False if c.status in quiet else None)

    def _write(self, chunk: Chunk, change: Callable[[Chunk], Chunk], *,
               settled: Callable[[Chunk], bool | None]) -> bool:
        """Compare-and-set `change(chunk)` against the stored row's status and attempt; when
        the row moved on within the same attempt, read it again and retry (a few times).
        `settled(row)` answers for a row no change applies to (None: not settled)."""
        for _ in range(5):
            answer = settled(chunk)
            if answer is not None:
                return answer
            if self.store.update_chunk(change(chunk), expected_status=chunk.status,
                                       expected_attempt=chunk.attempt):
                return True
            fresh = self._row(chunk.job_id, chunk.job_attempt, chunk.index)
            if fresh is None or fresh.attempt != chunk.attempt:
                return False
            chunk = fresh
        return False

    def _requeue(self, job: Job, chunk: Chunk, *, reason: str) -> bool:
        again = dataclasses.replace(chunk, attempt=chunk.attempt + 1, status=ChunkStatus.PENDING,
                                    heartbeat_at=None, updated_at=_now())
        if not self.store.update_chunk(again, expected_status=chunk.status,
                                       expected_attempt=chunk.attempt):
            return False
        log.info("chunk %s re-queued as attempt %d (%s)", chunk.id, again.attempt, reason)
        self._publish(job, again)
        return True

    def _fail_video(self, job: Job, video: Video, chunk: Chunk, code: str, text: str) -> str:
        jobs = self.jobs
        self._move(chunk, ChunkStatus.FAILED)
        if job.status is not JobStatus.FAILED and not jobs._finish(job, JobStatus.FAILED):
            return "stale"
        if video.status in (VideoStatus.QUEUED, VideoStatus.PROCESSING):
            what = "the join" if chunk.kind == "join" else "the audio" if chunk.kind == "audio" \
                else f"chunk {chunk.index + 1} of {chunk.pieces}"
            jobs._set_video(video, status=VideoStatus.FAILED, phase=None, error_code=code,
                            error_message=f"{what}: {text}", **jobs._early_gone())
            jobs._drop_outputs(video)
        log.info("video %s failed at chunk %s: %s", video.id, chunk.id, code)
        return "applied"
