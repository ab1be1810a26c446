"""Fault 1: a `coursecrafter-worker` is SIGKILLed (with its FFmpeg) in the middle of a transcode.

Scale-out: server + RabbitMQ vhost + worker processes. The killed worker's unacked message goes
back to the queue (RabbitMQ redelivers it) and, once its heartbeat is older than
COURSECRAFTER_HEARTBEAT_TIMEOUT, the server's sweeper re-queues the job as the next attempt.
Either way a new worker must take the lecture to `ready`, once, with complete outputs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from faultkit import (
    WaitTimeout,
    alive,
    assert_jobs_done,
    assert_no_leftovers,
    assert_outputs_complete,
    assert_transcoded_once,
    job_dirs,
    poll_video,
    sdk_client,
    source_exists,
    wait_for,
    wait_ready,
    wait_source_gone,
)

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def _transcoding(lab, clips, heartbeat_timeout: int, adapter: str = "local",
                 database: str = "sqlite"):
    """Server + worker on a fresh vhost and on `adapter` storage (the worker gets the server's
    environment, so the same storage), one 30 s lecture uploaded and in FFmpeg right now."""
    vhost = lab.vhost()
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": str(heartbeat_timeout),
                             **lab.storage_env(adapter), **lab.database_env(database)})
    assert server.storage.kind == adapter
    worker = lab.worker(server, "worker-1")
    client = sdk_client(server.url, "ada")
    video_id = client.upload(clips["long"], title="Kill me", resume=False)["id"]
    poll_video(client, video_id,
               lambda v: v["status"] == "processing" and v["phase"] == "transcoding"
               and v["progress"] > 0, timeout=60, what="transcoding")
    ffmpeg = worker.ffmpeg_pids()
    assert ffmpeg, "FFmpeg should be running under the worker at this point"
    return vhost, server, worker, client, video_id, ffmpeg


def _kill(worker) -> None:
    """SIGKILL the worker's process group and wait for it and its FFmpeg to be gone. FFmpeg runs
    in a session of its own (pipeline/process.py), out of reach of the group kill, but the
    kernel kills it when its worker dies (PR_SET_PDEATHSIG): this only waits for that (and
    kills a survivor once the wait has failed, so that no orphan outlives the test);
    test_sigkilled_worker_leaves_no_orphan_ffmpeg pins it down on its own."""
    ffmpeg = worker.ffmpeg_pids()
    pids = worker.kill_group()
    try:
        wait_for(lambda: not any(alive(p) for p in pids + ffmpeg), 10,
                 what="the worker and its FFmpeg to die")
    finally:
        for pid in ffmpeg:  # never leave an orphan running, even when the wait failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _kill_mid_ffmpeg(lab, clips, *, restart_after_requeue: bool, adapter: str = "local",
                     database: str = "sqlite") -> dict:
    # Redelivery: a heartbeat timeout well above the time a new worker needs to start, so the
    # sweeper stays out of it. Sweeper path: 6 s, and the new worker only after the re-queue.
    vhost, server, first, client, video_id, ffmpeg = _transcoding(
        lab, clips, heartbeat_timeout=6 if restart_after_requeue else 20, adapter=adapter,
        database=database)
    killed_at = time.monotonic()
    _kill(first)
    assert source_exists(server.storage, video_id)
    assert job_dirs(first.work_dir), "the killed job's directory (with its source copy)"

    if restart_after_requeue:
        # The heartbeat stops; the sweeper notices and re-queues the job as attempt 2.
        poll_video(client, video_id, lambda v: v["status"] == "queued", timeout=30,
                   what="the sweeper to re-queue the job")
        assert "re-queued as attempt 2 (worker_lost)" in server.log()
        second = lab.worker(server, "worker-2")  # a work dir of its own
    else:
        # The new worker starts on the killed one's work dir (as a restarted service would):
        # it must remove the dead job's directory, which nobody holds any more.
        second = lab.worker(server, "worker-2", env={"COURSECRAFTER_WORK_DIR":
                                                     str(first.work_dir)})
    video = wait_ready(client, video_id, timeout=90, storage=server.storage)
    recovered = time.monotonic() - killed_at

    counts = assert_outputs_complete(server.storage, video)
    assert (video["width"], video["height"]) == (640, 360)
    assert abs(video["duration"] - 30) < 0.6
    wait_source_gone(server.storage, video_id)
    depths = vhost.wait_drained()
    log = second.log()
    # Redelivered: the same attempt, once more. Re-queued: attempt 2, and nothing else.
    assert_jobs_done(server, {video_id: 2 if restart_after_requeue else 1})
    # One transcode to the end: the killed one never finished, the new worker's ran once (in
    # the re-queue case the dead attempt's redelivered message is skipped as stale).
    assert_transcoded_once([video_id], first, second)
    # No multipart upload or temp file in the storage, no job directory in the new worker's
    # work dir (in the redelivery case, that is also the killed worker's).
    assert_no_leftovers(server, second)
    if not restart_after_requeue:
        assert "delivery 2 of at most 3" in log, log
        assert "re-queued" not in server.log()
    client.close()
    print(f"\nworker kill ({'after re-queue' if restart_after_requeue else 'redelivery'}, "
          f"{adapter}): "
          f"ready {recovered:.1f}s after the kill; segments {counts}; queues {depths}")
    return video


@pytest.mark.parametrize(("adapter", "database"),
                         [("local", "sqlite"), ("s3", "sqlite"), ("s3", "mongodb")])
def test_worker_killed_mid_ffmpeg_job_is_redelivered_to_a_new_worker(lab, clips, adapter,
                                                                     database):
    """On local storage and on S3 (the worker downloads the source again, uploads the outputs
    and deletes the source through boto3; the end state is read back from the bucket), and on
    the scale-out store (a MongoDB wire-protocol server)."""
    _kill_mid_ffmpeg(lab, clips, restart_after_requeue=False, adapter=adapter, database=database)


def test_worker_killed_mid_ffmpeg_then_sweeper_requeues_before_a_new_worker(lab, clips):
    _kill_mid_ffmpeg(lab, clips, restart_after_requeue=True)


class OrphanFFmpeg(AssertionError):
    """FFmpeg is still running after its worker was SIGKILLed."""


def test_sigkilled_worker_leaves_no_orphan_ffmpeg(lab, clips):
    _, _, worker, client, _, ffmpeg = _transcoding(lab, clips, heartbeat_timeout=60)
    client.close()
    pids = worker.kill_group()
    assert set(ffmpeg) <= set(pids)
    try:
        wait_for(lambda: not any(alive(p) for p in ffmpeg), 3,
                 what="FFmpeg to die with its worker")
    except WaitTimeout:
        raise OrphanFFmpeg(f"FFmpeg {ffmpeg} outlived its SIGKILLed worker") from None
    finally:
        for pid in ffmpeg:  # never leave the orphan running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_lecture_that_kills_every_worker_fails_clearly_and_can_be_retried(lab, clips):
    """Each worker that takes the job dies mid-FFmpeg (as on a machine that runs out of memory
    on this one file). The heartbeat timeout is long, so only RabbitMQ's redelivery is at work:
    after the delivery limit the message is dead-lettered, and the server's sweeper turns that
    into `failed` with a reason, instead of a video `queued`/`processing` for ever. The source
    is kept, so `retry` (once the cause is fixed) takes the lecture to `ready`."""
    vhost = lab.vhost()
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             "COURSECRAFTER_MAX_ATTEMPTS": "3",
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": "600"})
    client = sdk_client(server.url, "ada")
    video_id = client.upload(clips["long"], title="Killer lecture", resume=False)["id"]
    # Every worker on one work dir, as one machine's worker service restarted each time: each
    # start must remove the job directory of the worker killed before it.
    shared = {"COURSECRAFTER_WORK_DIR": str(lab.tmp_path / "work")}
    killed = []
    for delivery in range(1, 4):
        worker = lab.worker(server, f"worker-{delivery}", env=shared)
        wait_for(lambda: f"delivery {delivery} of at most 3" in worker.log()
                 and worker.ffmpeg_pids(), 60, what=f"delivery {delivery} in FFmpeg")
        _kill(worker)
        assert len(job_dirs(worker.work_dir)) == 1, job_dirs(worker.work_dir)
        killed.append(worker)
    failed = poll_video(client, video_id, lambda v: v["status"] == "failed", timeout=30,
                        what="the dead letter to fail the video")
    assert failed["error"]["code"] == "worker_lost"
    assert "stopped 3 times" in failed["error"]["message"]
    assert "coursecrafter retry" in failed["error"]["message"]
    # The server logs the dead letter once it has also removed the video's outputs: a moment
    # after the status the poll saw.
    wait_for(lambda: "dead-lettered (delivery_limit)" in server.log(), 30,
             what="the server to log the dead letter")
    assert source_exists(server.storage, video_id)  # nothing lost: retry can use it
    vhost.wait_drained()  # the dead letter was taken off the dead-letter queue

    client.retry_video(video_id)
    healthy = lab.worker(server, "worker-healthy", env=shared)
    video = wait_ready(client, video_id, timeout=90, storage=server.storage)
    assert_outputs_complete(server.storage, video)
    wait_source_gone(server.storage, video_id)
    vhost.wait_drained()
    assert_transcoded_once([video_id], *killed, healthy)
    assert_no_leftovers(server, healthy)  # the three dead jobs' directories included
    client.close()
