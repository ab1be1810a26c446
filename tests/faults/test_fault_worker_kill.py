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
    assert_outputs_complete,
    poll_video,
    sdk_client,
    source_path,
    wait_for,
    wait_ready,
    wait_source_gone,
)

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def _transcoding(lab, clips, heartbeat_timeout: int):
    """Server + worker on a fresh vhost, one 30 s lecture uploaded and in FFmpeg right now."""
    vhost = lab.vhost()
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": str(heartbeat_timeout)})
    worker = lab.worker(server, "worker-1")
    client = sdk_client(server.url, "ada")
    video_id = client.upload(clips["long"], title="Kill me", resume=False)["id"]
    poll_video(client, video_id,
               lambda v: v["status"] == "processing" and v["phase"] == "transcoding"
               and v["progress"] > 0, timeout=60, what="transcoding")
    ffmpeg = worker.ffmpeg_pids()
    assert ffmpeg, "FFmpeg should be running under the worker at this point"
    return vhost, server, worker, client, video_id, ffmpeg


def _kill_mid_ffmpeg(lab, clips, *, restart_after_requeue: bool) -> dict:
    # Redelivery: a heartbeat timeout well above the time a new worker needs to start, so the
    # sweeper stays out of it. Sweeper path: 6 s, and the new worker only after the re-queue.
    vhost, server, first, client, video_id, ffmpeg = _transcoding(
        lab, clips, heartbeat_timeout=6 if restart_after_requeue else 20)
    killed_at = time.monotonic()
    pids = first.kill_group()
    # FFmpeg runs in a session of its own (pipeline/process.py), so the worker's group kill
    # does not reach it: kill it too, as a supervisor killing the whole cgroup would
    # (test_sigkilled_worker_leaves_no_orphan_ffmpeg covers the orphan on its own).
    for pid in ffmpeg:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(alive(p) for p in pids + ffmpeg), 10,
             what="the worker and its FFmpeg to die")
    assert source_path(server.blobs, video_id).exists()

    if restart_after_requeue:
        # The heartbeat stops; the sweeper notices and re-queues the job as attempt 2.
        poll_video(client, video_id, lambda v: v["status"] == "queued", timeout=30,
                   what="the sweeper to re-queue the job")
        assert "re-queued as attempt 2 (worker_lost)" in server.log()
    second = lab.worker(server, "worker-2")
    video = wait_ready(client, video_id, timeout=90, blobs=server.blobs)
    recovered = time.monotonic() - killed_at

    counts = assert_outputs_complete(server.blobs, video)
    assert (video["width"], video["height"]) == (640, 360)
    assert abs(video["duration"] - 30) < 0.6
    wait_source_gone(server.blobs, video_id)
    depths = vhost.wait_drained()
    log = second.log()
    # Redelivered: the same attempt, once more. Re-queued: attempt 2, and nothing else.
    assert_jobs_done(server, {video_id: 2 if restart_after_requeue else 1})
    if not restart_after_requeue:
        assert "delivery 2 of at most 3" in log, log
        assert "re-queued" not in server.log()
    client.close()
    print(f"\nworker kill ({'after re-queue' if restart_after_requeue else 'redelivery'}): "
          f"ready {recovered:.1f}s after the kill; segments {counts}; queues {depths}")
    return video


def test_worker_killed_mid_ffmpeg_job_is_redelivered_to_a_new_worker(lab, clips):
    _kill_mid_ffmpeg(lab, clips, restart_after_requeue=False)


SUPERSEDED_ATTEMPT_BUG = (
    "BUG runner.JobRunner.run/_run (worker) + jobs.JobService.handle_event (server): once the "
    "sweeper has re-queued the job as attempt 2, RabbitMQ still redelivers the dead worker's "
    "attempt-1 message, and quorum queues deliver returned messages first. The server answers "
    "its events 200 {'status': 'stale'}, the runner ignores that: it transcodes anyway, counts "
    "the stale `completed` as delivered and deletes uploads/{id}/source. Attempt 2 then takes "
    "the `_already_completed` shortcut (no source + a master playlist) and is acked without "
    "sending any event: the job stays `published`, which the sweeper never rescues, and the "
    "video stays `queued` for ever with its source gone (`retry` is impossible). "
    "Fix: make a stale/superseded event visible to the worker (e.g. answer 409 "
    "{'status': 'stale'}) and have the runner stop (ack, no work) when `started` is stale and "
    "never delete the source unless `completed` was applied; drop the `_already_completed` "
    "shortcut or make it send `completed` for its own attempt."
)


def test_worker_killed_mid_ffmpeg_then_sweeper_requeues_before_a_new_worker(lab, clips):
    _kill_mid_ffmpeg(lab, clips, restart_after_requeue=True)


class OrphanFFmpeg(AssertionError):
    """FFmpeg is still running after its worker was SIGKILLed."""


ORPHAN_FFMPEG_BUG = (
    "BUG pipeline/process.py run_ffmpeg: FFmpeg is started with start_new_session=True and "
    "nothing ties its life to the worker's, so SIGKILL of the worker (its process group, the "
    "OOM killer, kill -9) leaves FFmpeg running as an orphan (it ignores SIGPIPE on its "
    "progress pipe): it burns CPU for the rest of the transcode (until the dead worker's "
    "ffmpeg_timeout, up to 4 h, which nobody enforces any more) and fills the dead worker's "
    "job directory, which purge_stale keeps for ffmpeg_timeout + 1 h. Fix: in _limits_preexec "
    "also call prctl(PR_SET_PDEATHSIG, SIGKILL) (ctypes libc.prctl(1, 9); Linux) and exit if "
    "os.getppid() already changed, keeping the session of its own for the timeout kill."
)


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
    for delivery in range(1, 4):
        worker = lab.worker(server, f"worker-{delivery}")
        wait_for(lambda: f"delivery {delivery} of at most 3" in worker.log()
                 and worker.ffmpeg_pids(), 60, what=f"delivery {delivery} in FFmpeg")
        ffmpeg = worker.ffmpeg_pids()
        pids = worker.kill_group()
        for pid in ffmpeg:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(alive(p) for p in pids + ffmpeg), 10, what="the kill")
    failed = poll_video(client, video_id, lambda v: v["status"] == "failed", timeout=30,
                        what="the dead letter to fail the video")
    assert failed["error"]["code"] == "worker_lost"
    assert "stopped 3 times" in failed["error"]["message"]
    assert "coursecrafter retry" in failed["error"]["message"]
    assert "dead-lettered (delivery_limit)" in server.log()
    assert source_path(server.blobs, video_id).exists()  # nothing lost: retry can use it
    vhost.wait_drained()  # the dead letter was taken off the dead-letter queue

    client.retry_video(video_id)
    lab.worker(server, "worker-healthy")
    video = wait_ready(client, video_id, timeout=90, blobs=server.blobs)
    assert_outputs_complete(server.blobs, video)
    wait_source_gone(server.blobs, video_id)
    vhost.wait_drained()
    client.close()
