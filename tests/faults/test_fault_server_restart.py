"""Fault 3: the API server is restarted (SIGTERM, then started again on the same home and port)
while one job is `processing` and others are `queued`.

- Embedded mode: the transcoders are threads of the server, so SIGTERM cancels the running job
  and the queue (in memory) is lost; the restarted server must re-queue every open job itself.
- Scale-out: the worker goes on while the server is away (events retried, queued messages kept
  by RabbitMQ) and reports to the restarted server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

import pytest
from faultkit import (
    alive,
    assert_jobs_done,
    assert_no_job_dirs,
    assert_no_leftovers,
    assert_outputs_complete,
    assert_storage_clean,
    assert_transcoded_once,
    job_dirs,
    poll_video,
    proc_name,
    process_tree,
    sdk_client,
    wait_for,
    wait_ready,
    wait_source_gone,
)
from livesupport import free_port

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def _upload_three(client, clips) -> list[str]:
    """A long lecture (in FFmpeg when the server goes down) and two short ones behind it."""
    ids = [client.upload(clips["long"], title="Long", resume=False)["id"]]
    ids += [client.upload(clips["medium"], title=f"Short {i}", resume=False)["id"]
            for i in (1, 2)]
    return ids


def _restart(server, down_for: float = 1.0, crash: bool = False,
             until: Callable[[], bool] | None = None) -> tuple[int | None, float]:
    """Stop the server, keep it down `down_for` seconds (and, with `until`, until that holds:
    a condition, so that a slow machine cannot end the outage before what it is for has
    happened), then start it again."""
    began = time.monotonic()
    if crash:  # kill -9: no shutdown at all
        ffmpeg = [p for p in process_tree(server.pid)[1:] if "ffmpeg" in proc_name(p)]
        server.process.kill()
        code = server.process.wait(10)
        assert code == -9
        # FFmpeg runs in a session of its own, but the kernel kills it with the process that
        # started it (PR_SET_PDEATHSIG, pipeline/process.py): it must not outlive the server.
        try:
            wait_for(lambda: not any(alive(p) for p in ffmpeg), 10,
                     what="FFmpeg to die with the server")
        finally:
            for pid in ffmpeg:  # never leave an orphan running, even when the wait failed
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    else:
        code = server.stop()
        # A graceful stop: uvicorn runs the lifespan shutdown, then re-raises SIGTERM (-15).
        assert code in (0, -15), server.log()
        assert server.log().rstrip().endswith("Finished server process [%d]" % server.pid), \
            server.log()[-3000:]
    stopped = time.monotonic() - began
    time.sleep(down_for)
    if until is not None:
        wait_for(until, 30, interval=0.2, what="the outage to be noticed")
    server.start()
    return code, stopped


def _check_all(client, server, ids) -> list[dict]:
    videos = [wait_ready(client, vid, timeout=120, storage=server.storage) for vid in ids]
    for video in videos:
        assert_outputs_complete(server.storage, video)
        wait_source_gone(server.storage, video["id"])
    return videos


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_embedded_server_restart_requeues_processing_and_queued_jobs(lab, clips, how):
    port = free_port()  # chosen once: the restarted server keeps its URL
    server = lab.server(env={"COURSECRAFTER_TRANSCODE_CONCURRENCY": "1"}, port=port)
    # The embedded transcoders' work dir is private to the server's home (transcoders.py), so
    # this server's alone and can be checked for leftovers.
    work_dir = server.home / "work"
    client = sdk_client(server.url, "ada")
    ids = _upload_three(client, clips)
    poll_video(client, ids[0], lambda v: v["phase"] == "transcoding" and v["progress"] > 0,
               timeout=60, what="transcoding")
    before = [client.get_video(vid)["status"] for vid in ids]
    assert before == ["processing", "queued", "queued"], before

    assert job_dirs(work_dir)  # the running job's
    code, stopped = _restart(server, crash=how == "sigkill")
    restarted_at = time.monotonic()
    log = server.log()
    assert "re-queued 3 unfinished job(s) from a previous run" in log, log
    # The interrupted job runs again as a new attempt; the queued ones as they were.
    assert log.count("re-queued as attempt 2 (server_restarted)") == 1, log

    videos = _check_all(client, server, ids)
    recovered = time.monotonic() - restarted_at
    assert_jobs_done(server, {ids[0]: 2, ids[1]: 1, ids[2]: 1})
    # Nothing left behind: no multipart upload or temp file in the storage, no job directory
    # (after a SIGKILL, the restarted server removes the dead job's own).
    assert_storage_clean(server.storage)
    assert_no_job_dirs(work_dir)
    client.close()
    print(f"\nembedded restart ({how}): stop took {stopped:.1f}s (exit {code}); all "
          f"{len(videos)} ready {recovered:.1f}s after the restart")


@pytest.mark.parametrize(("adapter", "database"),
                         [("local", "sqlite"), ("s3", "sqlite"), ("s3", "mongodb")])
def test_scale_out_server_restart_with_jobs_processing_and_queued(lab, clips, adapter, database):
    """The whole scale-out stack at its fullest: MongoDB (a wire-protocol server), S3 (moto),
    RabbitMQ and a separate worker process, with the API server restarted mid-job."""
    vhost = lab.vhost()
    port = free_port()
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             # Longer than the outage (at most 3 + 30 s, plus the start):
                             # the running job keeps its attempt.
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": "60",
                             **lab.storage_env(adapter), **lab.database_env(database)},
                        port=port)
    assert server.storage.kind == adapter
    worker = lab.worker(server)
    client = sdk_client(server.url, "ada")
    ids = _upload_three(client, clips)
    poll_video(client, ids[0], lambda v: v["phase"] == "transcoding" and v["progress"] > 0,
               timeout=60, what="transcoding")
    before = [client.get_video(vid)["status"] for vid in ids]
    assert before == ["processing", "queued", "queued"], before

    # Down until the worker has had something to report (a heartbeat comes every 10 s).
    code, stopped = _restart(server, down_for=3.0, until=lambda: "not delivered" in worker.log())
    restarted_at = time.monotonic()
    videos = _check_all(client, server, ids)
    recovered = time.monotonic() - restarted_at

    depths = vhost.wait_drained()
    assert_jobs_done(server, {vid: 1 for vid in ids})
    assert_transcoded_once(ids, worker)
    assert_no_leftovers(server, worker)
    log = worker.log()
    # The worker carried on while the server was away and retried what it had to report.
    assert "not delivered" in log, log
    assert "re-queued" not in server.log()
    assert worker.process.poll() is None
    status, ready = server.readyz()
    assert status == 200 and ready["checks"]["broker"] == "ok", ready
    client.close()
    print(f"\nscale-out restart ({adapter}, {database}): SIGTERM took {stopped:.1f}s, down 3 s; all "
          f"{len(videos)} ready "
          f"{recovered:.1f}s after the restart; webhook retries "
          f"{log.count('not delivered')}; queues {depths}")
