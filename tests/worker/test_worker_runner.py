from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from worker_fakes import (
    FakeTranscode,
    MediaError,
    RecordingNotifier,
    TranscodeError,
    delivery_failed,
)

from coursecrafter_worker.messages import JobEvent
from coursecrafter_worker.queue import Requeue
from coursecrafter_worker.runner import JobRunner


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


def make_runner(storage, notifier, work_dir: Path, transcode, **kwargs) -> JobRunner:
    kwargs.setdefault("heartbeat_interval", 5.0)
    kwargs.setdefault("progress_interval", 0.05)
    return JobRunner(storage, notifier, work_dir=work_dir, transcode=transcode, **kwargs)


def keys(storage, prefix: str) -> dict[str, str | None]:
    root = storage.root / "objects"
    found = {}
    for p in (root / prefix).rglob("*"):
        if p.is_file():
            key = p.relative_to(root).as_posix()
            info = storage.head(key)
            found[key] = info.content_type if info else None
    return found


def assert_clean(work_dir: Path) -> None:
    assert not work_dir.exists() or list(work_dir.iterdir()) == []


def test_happy_path(storage, make_message, work_dir) -> None:
    message = make_message("v1")
    source_at_completed: list[bool] = []

    def on_send(event: JobEvent) -> None:
        if event.type == "completed":
            source_at_completed.append(storage.head(message.source_key) is not None)

    notifier = RecordingNotifier(on_send=on_send)
    transcode = FakeTranscode(heights=(720, 360), steps=4, delay=0.3)
    runner = make_runner(storage, notifier, work_dir, transcode, ffmpeg_timeout=99.0)

    assert runner.run(message) == "completed"

    types = notifier.types
    assert types[0] == "started" and types[-1] == "completed"
    assert set(types[1:-1]) == {"progress"} and len(types) >= 3
    progress = [e for e in notifier.events if e.type == "progress"]
    assert {e.phase for e in progress} <= {"probing", "transcoding", "uploading"}
    assert all(0 <= (e.progress or 0) <= 100 for e in progress)
    assert all(not essential for e, essential in zip(notifier.events, notifier.essential)
               if e.type == "progress")
    assert all(essential for e, essential in zip(notifier.events, notifier.essential)
               if e.type != "progress")
    assert {(e.job_id, e.video_id, e.attempt) for e in notifier.events} == {
        (message.job_id, "v1", 1)}

    done = notifier.events[-1]
    assert done.duration == 12.5 and (done.width, done.height) == (1280, 720)
    assert [(r.height, r.playlist) for r in done.renditions] == [
        (720, "hls/720p/index.m3u8"), (360, "hls/360p/index.m3u8")]
    assert done.playlist_key == "videos/v1/hls/master.m3u8"
    assert done.poster_key == "videos/v1/poster.jpg"

    stored = keys(storage, "videos/v1")
    assert stored["videos/v1/hls/master.m3u8"] == "application/vnd.apple.mpegurl"
    assert stored["videos/v1/hls/720p/index.m3u8"] == "application/vnd.apple.mpegurl"
    assert stored["videos/v1/hls/720p/seg_00000.ts"] == "video/mp2t"
    assert stored["videos/v1/hls/360p/seg_00001.ts"] == "video/mp2t"
    assert stored["videos/v1/hls/audio/index.m3u8"] == "application/vnd.apple.mpegurl"
    assert stored["videos/v1/poster.jpg"] == "image/jpeg"
    assert len(stored) == 10

    # The source went to transcode, and was deleted only after `completed` was delivered.
    assert transcode.calls[0]["source"].startswith(b"lecture recording bytes")
    assert transcode.calls[0]["timeout"] == 99.0
    assert source_at_completed == [True]
    assert storage.head(message.source_key) is None
    assert_clean(work_dir)


def test_progress_is_throttled(storage, make_message, work_dir) -> None:
    notifier = RecordingNotifier()
    transcode = FakeTranscode(steps=1000, delay=0.5)  # 1000 progress callbacks in 0.5 s
    runner = make_runner(storage, notifier, work_dir, transcode, progress_interval=0.2)
    assert runner.run(make_message()) == "completed"
    progress_times = [t for e, t in zip(notifier.events, notifier.times) if e.type == "progress"]
    assert 1 <= len(progress_times) <= 5
    gaps = [b - a for a, b in zip(progress_times, progress_times[1:])]
    assert all(g >= 0.15 for g in gaps)


def test_heartbeats_while_transcode_is_silent(storage, make_message, work_dir) -> None:
    notifier = RecordingNotifier()
    transcode = FakeTranscode(silent_delay=1.2, steps=1)
    runner = make_runner(storage, notifier, work_dir, transcode, heartbeat_interval=0.2,
                         progress_interval=5.0)
    assert runner.run(make_message()) == "completed"
    beats = [e for e in notifier.events if e.type == "progress"]
    assert len(beats) >= 4
    assert all(e.phase == "probing" for e in beats[:3])
    assert notifier.types[-1] == "completed"


def test_media_error_fails_without_retry_and_keeps_source(storage, make_message, work_dir) -> None:
    message = make_message()
    notifier = RecordingNotifier()
    transcode = FakeTranscode(error=MediaError("no_streams", "the file has no audio or video"))
    runner = make_runner(storage, notifier, work_dir, transcode)
    assert runner.run(message) == "failed"
    failed = notifier.events[-1]
    assert failed.type == "failed"
    assert (failed.error_code, failed.error_message, failed.retryable) == (
        "no_streams", "the file has no audio or video", False)
    assert notifier.types[0] == "started"
    assert storage.head(message.source_key) is not None
    assert keys(storage, f"videos/{message.video_id}") == {}
    assert_clean(work_dir)


def test_transcode_error_is_retryable(storage, make_message, work_dir) -> None:
    message = make_message()
    notifier = RecordingNotifier()
    transcode = FakeTranscode(error=TranscodeError("ffmpeg_crashed", "ffmpeg exited with -9"))
    assert make_runner(storage, notifier, work_dir, transcode).run(message) == "failed"
    failed = notifier.events[-1]
    assert (failed.error_code, failed.retryable) == ("ffmpeg_crashed", True)
    assert storage.head(message.source_key) is not None


def test_unexpected_error_is_retryable(storage, make_message, work_dir) -> None:
    message = make_message()
    notifier = RecordingNotifier()
    transcode = FakeTranscode(error=RuntimeError("disk on fire"))
    assert make_runner(storage, notifier, work_dir, transcode).run(message) == "failed"
    failed = notifier.events[-1]
    assert (failed.error_code, failed.retryable) == ("internal_error", True)
    assert "disk on fire" in (failed.error_message or "")
    assert_clean(work_dir)


def test_missing_source(storage, make_message, work_dir) -> None:
    message = make_message(upload=False)
    notifier = RecordingNotifier()
    transcode = FakeTranscode()
    assert make_runner(storage, notifier, work_dir, transcode).run(message) == "failed"
    assert notifier.types == ["started", "failed"]
    failed = notifier.events[-1]
    assert (failed.error_code, failed.retryable) == ("source_missing", False)
    assert transcode.calls == []


def test_rerun_overwrites_stale_outputs(storage, make_message, work_dir, tmp_path) -> None:
    message = make_message("v2")
    stale = tmp_path / "stale"
    stale.write_bytes(b"old")
    for key in ("videos/v2/hls/1080p/seg_00000.ts", "videos/v2/hls/master.m3u8",
                "videos/v2/leftover.txt"):
        storage.upload_file(stale, key, "application/octet-stream")
    other = "videos/v20/hls/master.m3u8"  # another video sharing the string prefix: untouched
    storage.upload_file(stale, other, "application/vnd.apple.mpegurl")

    notifier = RecordingNotifier()
    assert make_runner(storage, notifier, work_dir, FakeTranscode()).run(message) == "completed"
    stored = keys(storage, "videos/v2")
    assert "videos/v2/hls/1080p/seg_00000.ts" not in stored
    assert "videos/v2/leftover.txt" not in stored
    with storage.open_read("videos/v2/hls/master.m3u8") as f:
        assert f.read().startswith(b"#EXTM3U")
    assert storage.head(other) is not None


def test_redelivery_of_a_completed_job_does_nothing(storage, make_message, work_dir) -> None:
    message = make_message()
    notifier = RecordingNotifier()
    transcode = FakeTranscode()
    runner = make_runner(storage, notifier, work_dir, transcode)
    assert runner.run(message) == "completed"
    count = len(notifier.events)
    # The server answers the redelivery's `started` with "stale": nothing is done again.
    assert runner.run(message) == "skipped"
    assert len(notifier.events) == count + 1 and len(transcode.calls) == 1


def test_superseded_attempt_keeps_the_source_for_the_newer_one(
    storage, make_message, work_dir
) -> None:
    """The sweeper re-queued the job while this worker was still at it: its late `completed` is
    stale, and the source must survive for the attempt that now owns the video."""
    message = make_message()
    notifier = RecordingNotifier()
    notifier.stale_types.add("completed")
    assert make_runner(storage, notifier, work_dir, FakeTranscode()).run(message) == "skipped"
    assert storage.head(message.source_key) is not None


@pytest.mark.parametrize("kind", ["started", "completed"])
def test_undelivered_essential_event_requeues_and_keeps_source(
    storage, make_message, work_dir, kind: str
) -> None:
    message = make_message()
    notifier = RecordingNotifier(fail={kind: delivery_failed()})
    with pytest.raises(Requeue):
        make_runner(storage, notifier, work_dir, FakeTranscode()).run(message)
    assert storage.head(message.source_key) is not None
    assert "completed" not in notifier.types
    assert_clean(work_dir)


def test_undelivered_failed_event_requeues(storage, make_message, work_dir) -> None:
    notifier = RecordingNotifier(fail={"failed": delivery_failed()})
    transcode = FakeTranscode(error=MediaError("bad", "bad"))
    with pytest.raises(Requeue):
        make_runner(storage, notifier, work_dir, transcode).run(make_message())


def test_foreign_notifier_errors_count_as_undelivered(storage, make_message, work_dir) -> None:
    notifier = RecordingNotifier(fail={"started": RuntimeError("store is down")})
    with pytest.raises(Requeue):
        make_runner(storage, notifier, work_dir, FakeTranscode()).run(make_message())


def test_cancel_during_transcode_requeues(storage, make_message, work_dir) -> None:
    message = make_message()
    notifier = RecordingNotifier()
    transcode = FakeTranscode(hang=True)
    runner = make_runner(storage, notifier, work_dir, transcode)
    cancel = threading.Event()
    result: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(message, cancel=cancel)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert transcode.entered.wait(5)
    time.sleep(0.1)
    cancel.set()
    thread.join(5)
    assert not thread.is_alive()
    assert len(result) == 1 and isinstance(result[0], Requeue)
    assert "failed" not in notifier.types and "completed" not in notifier.types
    assert storage.head(message.source_key) is not None
    assert_clean(work_dir)


def test_audio_only_has_no_poster(storage, make_message, work_dir) -> None:
    notifier = RecordingNotifier()
    transcode = FakeTranscode(poster=False)
    assert make_runner(storage, notifier, work_dir, transcode).run(make_message()) == "completed"
    assert notifier.events[-1].poster_key is None


def test_real_transcode_is_imported_lazily(storage) -> None:
    runner = JobRunner(storage, RecordingNotifier(), work_dir=Path("/nonexistent"))
    assert runner._transcode is None  # nothing imported, nothing created yet


# With the real FFmpeg pipeline ---------------------------------------------------------------------
def test_error_kinds_of_the_real_pipeline() -> None:
    pipeline = pytest.importorskip("coursecrafter_worker.pipeline")
    from coursecrafter_worker.runner import _error_kind

    assert _error_kind(pipeline.MediaError("x", "y")) == "media"
    assert _error_kind(pipeline.TranscodeError("x", "y")) == "transcode"
    assert _error_kind(ValueError("x")) is None


def test_real_pipeline_rejects_a_file_that_is_not_media(storage, make_message, work_dir) -> None:
    pytest.importorskip("coursecrafter_worker.pipeline")
    message = make_message()  # the source is a few bytes of text
    notifier = RecordingNotifier()
    runner = JobRunner(storage, notifier, work_dir=work_dir, ffmpeg_timeout=60)
    assert runner.run(message) == "failed"
    failed = notifier.events[-1]
    assert failed.retryable is False and failed.error_code
    assert "/" not in (failed.error_message or "")  # no paths (FFmpeg stderr) for the user
    assert storage.head(message.source_key) is not None
    assert_clean(work_dir)


@pytest.mark.slow
def test_cancel_stops_a_real_ffmpeg(storage, make_message, work_dir, tmp_path) -> None:
    pytest.importorskip("coursecrafter_worker.pipeline")
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    import subprocess

    video = tmp_path / "long.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc=size=426x240:rate=25:duration=40", "-c:v", "libx264", "-preset", "ultrafast",
         str(video)], check=True, timeout=60,
    )
    message = make_message(upload=False)
    storage.upload_file(video, message.source_key, "video/mp4")
    cancel = threading.Event()

    def on_send(event: JobEvent) -> None:
        if event.type == "progress" and event.phase == "transcoding":
            cancel.set()

    notifier = RecordingNotifier(on_send=on_send)
    runner = JobRunner(storage, notifier, work_dir=work_dir, progress_interval=0.1,
                       heartbeat_interval=0.5)
    start = time.monotonic()
    with pytest.raises(Requeue):
        runner.run(message, cancel=cancel)
    assert time.monotonic() - start < 20
    assert "completed" not in notifier.types and "failed" not in notifier.types
    assert_clean(work_dir)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(work_dir) not in ps  # no FFmpeg left writing into the job's directory


def test_purge_stale_job_directories(storage, work_dir) -> None:
    import os

    old, fresh = work_dir / "job-old-1", work_dir / "job-new-2"
    for d in (old, fresh):
        (d / "out").mkdir(parents=True)
        (d / "source").write_bytes(b"x")
    past = time.time() - 7200
    for p in (old, old / "out", old / "source"):
        os.utime(p, (past, past))
    runner = JobRunner(storage, RecordingNotifier(), work_dir=work_dir)
    assert runner.purge_stale(older_than=3600) == 1
    assert not old.exists() and fresh.exists()


def test_a_run_stopped_while_uploading_leaves_another_workers_complete_output(
    storage, make_message, work_dir
) -> None:
    """A worker cut off from the broker gets its job cancelled while another worker, which took
    the job over, has already stored the complete output under the same names. Whatever step the
    stopped run was at, every file of that output must still be there afterwards (stale outputs
    are removed only after an upload, never before it)."""
    make_runner(storage, RecordingNotifier(), work_dir, FakeTranscode()).run(
        make_message("v3"))  # the other worker's finished run
    theirs = keys(storage, "videos/v3")
    assert any(k.endswith("master.m3u8") for k in theirs) and len(theirs) > 3

    cancel = threading.Event()

    class CutOffAfterOneWrite:
        """The storage as the stopped worker sees it: its first write goes through (in flight
        when it noticed), then its job is cancelled."""

        def __getattr__(self, name: str):
            return getattr(storage, name)

        def upload_file(self, *args, **kwargs):
            storage.upload_file(*args, **kwargs)
            cancel.set()

        def delete_prefix(self, prefix: str) -> int:
            removed = storage.delete_prefix(prefix)
            cancel.set()
            return removed

    message = make_message("v3")  # the same job as the stopped worker got it (source and all)
    runner = make_runner(CutOffAfterOneWrite(), RecordingNotifier(), work_dir, FakeTranscode(),
                         early=False)
    with pytest.raises(Requeue):
        runner.run(message, cancel=cancel)
    assert set(keys(storage, "videos/v3")) == set(theirs)
