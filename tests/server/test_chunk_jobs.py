"""Chunked jobs on the server: `chunked` queues one job per chunk, each chunk has its own attempts
and heartbeats, the join is queued exactly once after every piece, a chunk out of attempts fails
the video with a reason, the sweeper watches chunks (not their silent parent), and a failure
removes every chunk's outputs and the pieces. Driven through JobService with the in-memory store
(the store adapters' chunk methods are in tests/test_store_contract.py)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest
from server.test_jobs import event, make_world, uploaded_video

from coursecrafter_server.chunk_jobs import ChunkStatus
from coursecrafter_server.domain import JobStatus, VideoStatus
from coursecrafter_worker.messages import JobEvent, JobMessage, MessageError, Rendition


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path, max_attempts=2)


def chunk_event(message: JobMessage, kind: str, **fields) -> JobEvent:
    assert message.chunk is not None
    return JobEvent(job_id=message.job_id, video_id=message.video_id, attempt=message.attempt,
                    type=kind, chunk=message.chunk.index, chunk_attempt=message.chunk.attempt,
                    **fields)


def completed(message: JobMessage, **fields) -> JobEvent:
    fields.setdefault("duration", 600.0)
    fields.setdefault("renditions", (Rendition(720, 1280, 3_000_000, "hls/720p/index.m3u8"),))
    fields.setdefault("playlist_key", f"{message.output_prefix}hls/master.m3u8")
    return chunk_event(message, "completed", **fields)


def chunked_video(world, pieces: int = 2, audio: bool = True):
    """A video whose whole job was cut: returns (video, parent message, chunk messages)."""
    store, _, publisher, jobs = world
    video = uploaded_video(store)
    jobs.enqueue(video)
    (parent,) = publisher.messages
    assert jobs.handle_event(event(parent, "started")) == "applied"
    starts = tuple(float(120 * i) for i in range(pieces))
    verdict = jobs.handle_event(event(parent, "chunked", pieces=pieces, audio=audio,
                                      content="still", starts=starts, duration=600.0,
                                      width=1920, height=1080))
    assert verdict == "applied"
    chunks = [m for m in publisher.messages if m.chunk is not None]
    return video, parent, chunks


def test_chunked_queues_every_piece_and_the_audio_then_one_join(world):
    store, _, publisher, jobs = world
    video, parent, chunks = chunked_video(world, pieces=3)
    # Each picture piece also learns where the next one starts: it keeps the frames before.
    assert [(m.chunk.kind, m.chunk.index, m.chunk.start, m.chunk.end) for m in chunks] == [
        ("video", 0, 0.0, 120.0), ("video", 1, 120.0, 240.0), ("video", 2, 240.0, None),
        ("audio", 3, 0.0, None)]
    assert all(m.job_id == parent.job_id and m.attempt == parent.attempt and
               m.chunk.content == "still" and m.chunk.attempt == 1 for m in chunks)
    for message in chunks:
        assert jobs.handle_event(chunk_event(message, "started")) == "applied"
    for message in chunks[:-1]:
        assert jobs.handle_event(completed(message)) == "applied"
        assert not [m for m in publisher.messages if m.chunk and m.chunk.kind == "join"]
    # The last one, and a repeat of it (a retried webhook with a new event id): one join only.
    assert jobs.handle_event(completed(chunks[-1])) == "applied"
    assert jobs.handle_event(completed(chunks[-1])) in ("applied", "duplicate")
    joins = [m for m in publisher.messages if m.chunk and m.chunk.kind == "join"]
    assert len(joins) == 1 and joins[0].chunk.index == 4
    assert status_of(store, video).status is VideoStatus.PROCESSING
    assert jobs.handle_event(chunk_event(joins[0], "started")) == "applied"
    # The join's `completed` is the video's: ready, with the source's size (from `chunked`).
    assert jobs.handle_event(completed(joins[0], width=1280, height=720)) == "applied"
    ready = status_of(store, video)
    assert ready.status is VideoStatus.READY and (ready.width, ready.height) == (1920, 1080)
    assert store.get_job(parent.job_id).status is JobStatus.DONE


def status_of(store, video):
    return store.get_video(video.id)


def test_a_redelivered_cut_keeps_the_chunks_it_finds(world):
    store, _, publisher, jobs = world
    video, parent, chunks = chunked_video(world, pieces=2, audio=False)
    assert jobs.handle_event(completed(chunks[0])) == "applied"
    again = jobs.handle_event(event(parent, "chunked", pieces=2, audio=False, content="still",
                                    starts=(0.0, 120.0)))
    assert again == "applied"
    rows = store.list_chunks(parent.job_id, parent.attempt)
    assert [r.status for r in rows] == [ChunkStatus.DONE, ChunkStatus.PUBLISHED,
                                        ChunkStatus.WAITING]


def test_a_failing_chunk_is_retried_then_fails_the_video_with_a_reason(world, tmp_path):
    store, storage, publisher, jobs = world
    video, parent, chunks = chunked_video(world, pieces=2)
    leftover = tmp_path / "seg.ts"
    leftover.write_bytes(b"x")
    storage.upload_file(leftover, f"videos/{video.id}/hls/720p/v0000_seg_00000.ts", "video/mp2t")
    storage.upload_file(leftover, f"uploads/{video.id}/pieces/v0001.nut", "video/x-nut")
    second = chunks[1]
    failed = dict(error_code="transcode_failed", error_message="FFmpeg was killed",
                  retryable=True)
    assert jobs.handle_event(chunk_event(second, "failed", **failed)) == "requeued"
    retry = publisher.messages[-1]
    assert (retry.chunk.index, retry.chunk.attempt) == (1, 2)
    # The first attempt's copy is stale now; the second one, out of attempts, fails the video.
    assert jobs.handle_event(chunk_event(second, "started")) == "stale"
    assert jobs.handle_event(chunk_event(retry, "failed", **failed)) == "applied"
    failed_video = status_of(store, video)
    assert failed_video.status is VideoStatus.FAILED
    assert failed_video.error_code == "transcode_failed"
    assert failed_video.error_message == "chunk 2 of 2: FFmpeg was killed"
    assert list(storage.list_objects(f"videos/{video.id}/")) == []
    assert list(storage.list_objects(f"uploads/{video.id}/pieces/")) == []
    # The other chunks' late events change nothing.
    assert jobs.handle_event(completed(chunks[0])) in ("stale", "illegal")
    assert status_of(store, video).status is VideoStatus.FAILED


def test_a_bad_piece_fails_the_video_at_once(world):
    store, _, _, jobs = world
    video, _, chunks = chunked_video(world, pieces=2)
    verdict = jobs.handle_event(chunk_event(chunks[0], "failed", error_code="invalid_media",
                                            error_message="cut off", retryable=False))
    assert verdict == "applied"
    assert status_of(store, video).error_message == "chunk 1 of 2: cut off"


def test_the_sweeper_requeues_a_silent_chunk_not_its_parent(world):
    store, _, publisher, jobs = world
    video, parent, chunks = chunked_video(world, pieces=2)
    assert jobs.handle_event(chunk_event(chunks[0], "started")) == "applied"
    later = datetime.now(timezone.utc) + timedelta(seconds=121)
    counts = jobs.sweep(later)
    assert counts["requeued"] == 0 and counts["chunks_requeued"] == 1
    assert store.get_job(parent.job_id).attempt == 1  # the job was not cut again
    retry = publisher.messages[-1]
    assert (retry.chunk.index, retry.chunk.attempt, retry.chunk.end) == (0, 2, 120.0)
    # Silent again, out of attempts: the video fails with the reason.
    assert jobs.handle_event(chunk_event(retry, "started")) == "applied"
    counts = jobs.sweep(later + timedelta(seconds=241))
    assert counts["chunks_failed"] == 1
    gone = status_of(store, video)
    assert gone.status is VideoStatus.FAILED and gone.error_code == "worker_lost"
    assert gone.error_message.startswith("chunk 1 of 2: ")


def test_chunks_of_a_deleted_or_retried_video_are_retired(world):
    store, _, publisher, jobs = world
    video, parent, chunks = chunked_video(world, pieces=2)
    jobs.cancel(status_of(store, video))  # the video is being deleted
    before = len(publisher.messages)
    later = datetime.now(timezone.utc) + timedelta(seconds=3600)
    jobs.sweep(later)
    assert len(publisher.messages) == before
    assert jobs.handle_event(chunk_event(chunks[0], "started")) == "stale"


def test_a_dead_lettered_chunk_fails_the_video_naming_the_chunk(world):
    from coursecrafter_worker.queue.base import DeadLetter

    store, _, _, jobs = world
    video, _, chunks = chunked_video(world, pieces=2)
    dead = DeadLetter(body=chunks[1].to_json(), message=chunks[1], reason="delivery_limit",
                      deliveries=2)
    assert jobs.settle_dead_letter(dead) == "applied"
    failed = status_of(store, video)
    assert failed.status is VideoStatus.FAILED
    assert failed.error_message.startswith("chunk 2: the transcoder stopped 2 times")


def test_chunk_messages_round_trip_and_whole_jobs_stay_as_they_were(world):
    whole = JobMessage("j", "v", 1, "uploads/v/source", "videos/v/", "http://cb", "t")
    assert b"chunk" not in whole.to_json()
    assert JobMessage.from_json(whole.to_json()) == whole
    _, _, chunks = chunked_video(world, pieces=2)
    assert JobMessage.from_json(chunks[1].to_json()) == chunks[1]
    assert dataclasses.asdict(chunks[1])["chunk"]["kind"] == "video"
    # A message from before `end` existed reads as "keep every frame"; a bad one is refused.
    data = json.loads(chunks[0].to_json())
    del data["chunk"]["end"]
    assert JobMessage.from_json(json.dumps(data).encode()).chunk.end is None
    data["chunk"]["end"] = data["chunk"]["start"]
    with pytest.raises(MessageError, match="chunk.end"):
        JobMessage.from_json(json.dumps(data).encode())


def test_a_redelivered_whole_job_of_a_cut_attempt_is_skipped(world):
    _, _, _, jobs = world
    _, parent, _ = chunked_video(world, pieces=2)
    assert jobs.handle_event(event(parent, "started")) == "stale"


def test_a_restarted_embedded_server_hands_the_open_chunks_back_not_the_whole_job(world):
    store, _, publisher, jobs = world
    video, parent, chunks = chunked_video(world, pieces=2)
    assert jobs.handle_event(completed(chunks[0])) == "applied"
    assert jobs.handle_event(chunk_event(chunks[1], "started")) == "applied"
    publisher.messages.clear()
    assert jobs.republish_unfinished() == 1
    again = [(m.chunk.kind, m.chunk.index, m.chunk.attempt) for m in publisher.messages]
    assert again == [("video", 1, 1), ("audio", 2, 1)]
    assert store.get_job(parent.job_id).attempt == 1


def test_the_videos_progress_moves_with_its_pieces_and_never_back(world):
    store, _, _, jobs = world
    video, _, chunks = chunked_video(world, pieces=2)  # two pictures and the audio: 3 pieces
    first, second, _ = chunks
    for message in chunks:
        assert jobs.handle_event(chunk_event(message, "started")) == "applied"

    def progress(message: JobMessage, percent: int) -> int:
        event = chunk_event(message, "progress", progress=percent, phase="transcoding")
        assert jobs.handle_event(event) == "applied"
        return status_of(store, video).progress

    assert progress(first, 60) == 20  # 60 % of one piece in three
    assert progress(second, 30) == 20  # pieces side by side report in turn: not back to 10
    assert jobs.handle_event(completed(first)) == "applied"
    assert status_of(store, video).progress == 33
    assert progress(second, 90) == 63  # one done, 90 % of another
    assert status_of(store, video).phase == "transcoding"
