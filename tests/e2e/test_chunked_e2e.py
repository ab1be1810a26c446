"""Chunked transcoding end to end in one process, as the embedded server runs it: the job service
(in-memory store) publishes to the in-process queue, two transcoder threads (two "workers") run
the real runner and pipeline, and events go straight back to the job service. A 12 s lecture with
4 s chunks is cut into 3 pieces + audio, joined once, and is ready; a chunk whose worker dies
mid-transcode is delivered again and the output holds it once."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pipeline.pipeline_support import make_clip

from coursecrafter_server.chunk_jobs import ChunkStatus
from coursecrafter_server.domain import Video, VideoKind, VideoStatus
from coursecrafter_server.jobs import JobService
from coursecrafter_server.store.memory import MemoryStore
from coursecrafter_worker.pipeline import transcode as real_transcode
from coursecrafter_worker.queue.inprocess import InProcessQueue
from coursecrafter_worker.runner import JobRunner
from coursecrafter_worker.storage import keys
from coursecrafter_worker.storage.local import LocalStorage

pytestmark = pytest.mark.slow


class Direct:
    """The embedded notifier: events straight to the job service; records what was sent."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.events: list = []

    def send(self, callback_url, event, *, essential=True):  # type: ignore[no-untyped-def]
        self.events.append(event)
        return self.jobs.handle_event(event)


class World:
    def __init__(self, tmp: Path, transcode=real_transcode) -> None:  # type: ignore[no-untyped-def]
        self.store = MemoryStore()
        self.storage = LocalStorage(tmp / "blobs", "http://127.0.0.1:8000", b"s" * 32,
                                    fsync=False)
        self.queue = InProcessQueue(max_attempts=3)
        self.jobs = JobService(self.store, self.storage, self.queue, callback_url="direct",
                               max_attempts=3)
        self.notifier = Direct(self.jobs)
        self.runner = JobRunner(self.storage, self.notifier, work_dir=tmp / "work",
                                transcode=transcode, early=True, chunk_seconds=4.0,
                                heartbeat_interval=5.0)
        self.deliveries: list = []
        self.kill: set[int] = set()  # chunk indexes whose first delivery is "killed"
        self.cancels = threading.local()
        self.leftovers: list[str] = []

    def handle(self, message) -> None:  # type: ignore[no-untyped-def]
        self.deliveries.append(message)
        cancel = threading.Event()
        if message.chunk is not None and message.chunk.index in self.kill:
            self.kill.discard(message.chunk.index)
            self.cancels.armed = cancel
        self.runner.run(message, cancel=cancel)

    def upload(self, clip: Path) -> Video:
        now = datetime.now(timezone.utc)
        video = Video(id=uuid.uuid4().hex, owner_id="u1", course_id=None, kind=VideoKind.VIDEO,
                      title="Week 1", filename="lecture.mp4", content_type="video/mp4",
                      size=clip.stat().st_size, sha256=None, status=VideoStatus.UPLOADED,
                      created_at=now, updated_at=now)
        self.store.add_video(video)
        self.storage.upload_file(clip, keys.source_key(video.id), "video/mp4")
        for leftover in self.leftovers:  # what an earlier attempt left half uploaded
            self.storage.upload_file(clip, keys.output_prefix(video.id) + leftover, "video/mp2t")
        self.jobs.enqueue(video)
        return video

    def wait(self, video: Video, timeout: float = 300) -> Video:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.store.get_video(video.id)
            if current.status in (VideoStatus.READY, VideoStatus.FAILED):
                return current
            time.sleep(0.1)
        raise AssertionError(f"still {current.status} after {timeout}s")

    def keys(self, prefix: str) -> list[str]:
        return sorted(o.key for o in self.storage.list_objects(prefix))


@pytest.fixture(scope="module")
def lecture(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "lecture.mp4", size="320x240", rate=25,
                     duration=12, out_args=("-g", "25"))


def run(world: World, clip: Path) -> Video:
    stop = world.queue.start(world.handle, concurrency=2)
    try:
        return world.wait(world.upload(clip))
    finally:
        stop.set()


def test_a_long_lecture_is_cut_transcoded_by_two_workers_and_joined_once(tmp_path, lecture):
    world = World(tmp_path)
    # A whole-video attempt that died mid-upload left a segment the joined rung does not name.
    world.leftovers = ["hls/240p/seg_00000.ts"]
    video = run(world, lecture)
    assert video.status is VideoStatus.READY, (video.error_code, video.error_message)
    assert abs(video.duration - 12.0) < 0.1 and (video.width, video.height) == (320, 240)
    kinds = [m.chunk.kind if m.chunk else "whole" for m in world.deliveries]
    assert sorted(kinds) == ["audio", "join", "video", "video", "video", "whole"]
    types = [e.type for e in world.notifier.events]
    # Early playback still comes first, from the whole job, before it is cut.
    assert types.index("playable") < types.index("chunked")
    job = world.store.get_latest_job(video.id)
    assert [c.status for c in world.store.list_chunks(job.id, job.attempt)] == \
        [ChunkStatus.DONE] * 5
    prefix = keys.output_prefix(video.id)
    master = world.storage.open_read(prefix + keys.MASTER_PLAYLIST).read().decode()
    assert 'URI="audio/index.m3u8"' in master and "240p/index.m3u8" in master
    segments = [k for k in world.keys(prefix + "hls/240p/") if k.endswith(".ts")]
    playlist = world.storage.open_read(prefix + "hls/240p/index.m3u8").read().decode()
    listed = [line for line in playlist.splitlines() if line.endswith(".ts")]
    assert sorted(f"{prefix}hls/240p/{name}" for name in listed) == segments
    # The temporary upload, its pieces and the pieces' playlists go (the join removes them
    # right after its `completed` was applied); the early rendition stays for its grace.
    deadline = time.monotonic() + 30
    while (world.keys(f"uploads/{video.id}/") or world.keys(prefix + "chunks/")) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert world.keys(f"uploads/{video.id}/") == []
    assert world.keys(prefix + "chunks/") == []
    assert world.keys(prefix + "hls/early/")


def test_a_chunk_whose_worker_dies_is_delivered_again_and_stored_once(tmp_path, lecture):
    world: World

    def dying_transcode(*args, cancel=None, **kwargs):  # type: ignore[no-untyped-def]
        armed = getattr(world.cancels, "armed", None)
        if armed is not None:
            world.cancels.armed = None
            armed.set()  # the worker is going away mid-transcode
            raise RuntimeError("killed")
        return real_transcode(*args, **kwargs)

    world = World(tmp_path, transcode=dying_transcode)
    world.kill = {1}
    video = run(world, lecture)
    assert video.status is VideoStatus.READY, (video.error_code, video.error_message)
    second = [m for m in world.deliveries if m.chunk and m.chunk.index == 1]
    # Delivered again as the same attempt (the queue's redelivery, no re-queue needed).
    assert [m.chunk.attempt for m in second] == [1, 1]
    playlist = world.storage.open_read(
        keys.output_prefix(video.id) + "hls/240p/index.m3u8").read().decode()
    listed = [line for line in playlist.splitlines() if line.endswith(".ts")]
    assert len(listed) == len(set(listed))
    assert {name.split("_")[0] for name in listed} == {"v0000", "v0001", "v0002"}
    # No leftover of the killed attempt beside what the playlist names.
    stored = [k.rsplit("/", 1)[1] for k in world.keys(
        keys.output_prefix(video.id) + "hls/240p/") if k.endswith(".ts")]
    assert sorted(stored) == sorted(listed)
