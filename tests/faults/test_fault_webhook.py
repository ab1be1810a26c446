"""Fault 4: the webhook endpoint is unreachable for a while. The worker reaches the server
through a TCP proxy (the server's COURSECRAFTER_PUBLIC_URL, hence the callback URL in every job
message, points at it); pausing the proxy resets every connection, existing and new.

The worker must keep the outcome and retry it (essential events: backoff up to
COURSECRAFTER_WEBHOOK_MAX_ELAPSED); the video still ends `ready`."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from faultkit import (
    QUEUE,
    assert_jobs_done,
    assert_no_leftovers,
    assert_outputs_complete,
    poll_video,
    sdk_client,
    transcodes,
    wait_for,
    wait_ready,
    wait_source_gone,
)

pytestmark = [pytest.mark.slow, pytest.mark.faults]

OUTAGE = 8.0


def _stack(lab, heartbeat_timeout: int, adapter: str = "local"):
    vhost = lab.vhost()
    proxy = lab.tcp_proxy()
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": str(heartbeat_timeout),
                             **lab.storage_env(adapter)},
                        public_url=proxy.url)
    assert server.storage.kind == adapter
    proxy.upstream = ("127.0.0.1", server.port)
    return vhost, proxy, server


def _finish(vhost, server, worker, client, video_id, resumed_at, label, event, attempt=1,
            rewritten=False):
    video = wait_ready(client, video_id, timeout=90, storage=server.storage)
    recovered = time.monotonic() - resumed_at
    assert_outputs_complete(server.storage, video)
    wait_source_gone(server.storage, video_id)
    depths = vhost.wait_drained()
    assert_jobs_done(server, {video_id: attempt})
    # One `completed` applied. FFmpeg ran once per attempt: a superseded attempt 1 still
    # finishes its transcode (its `completed`, once delivered, is stale and the source kept).
    ran, completed = transcodes(worker)
    assert (ran, completed) == (Counter({video_id: attempt}), Counter({video_id: 1}))
    assert_no_leftovers(server, worker)
    log = worker.log()
    retries = log.count(f"{event} event of job")
    assert retries >= 2, log
    assert ("re-queued" in server.log()) == (attempt > 1)
    if rewritten:
        # The superseded attempt uploaded its outputs before its `completed` was refused; the
        # next one uploaded the same set again over them, and removes stale objects only after
        # its upload and only those it did not just rewrite (so a run stopped half-way never
        # deletes a finished output): here none, as every name was rewritten, and
        # assert_outputs_complete found exactly one set: no stale object survived.
        uploaded = re.findall(rf"uploaded (\d+) file\(s\) under videos/{video_id}/", log)
        removed = re.findall(rf"removed (\d+) stale object\(s\) under videos/{video_id}/", log)
        assert len(uploaded) == 2 and uploaded[0] == uploaded[1] and removed == [], (
            uploaded, removed, log)
    client.close()
    print(f"\nwebhook down {OUTAGE:g}s ({label}, {server.storage.kind}): `{event}` retried "
          f"{retries}x; ready "
          f"{recovered:.1f}s after the webhook came back; queues {depths}")


def test_webhook_unreachable_when_the_worker_reports_completed(lab, clips):
    vhost, proxy, server = _stack(lab, heartbeat_timeout=30)
    worker = lab.worker(server)
    client = sdk_client(server.url, "ada")
    video_id = client.upload(clips["long"], title="Webhook", resume=False)["id"]
    poll_video(client, video_id, lambda v: v["phase"] == "transcoding" or v["status"] == "ready",
               timeout=60, what="transcoding")
    paused_at = time.monotonic()
    proxy.pause()
    # Down until the worker has finished and failed to report it, and at least OUTAGE s.
    wait_for(lambda: "completed event of job" in worker.log(), 60,
             what="the worker to fail to deliver `completed`")
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - paused_at)))
    assert client.get_video(video_id)["status"] == "processing"  # nothing reached the server
    assert proxy.refused > 0
    proxy.resume()
    _finish(vhost, server, worker, client, video_id, time.monotonic(), "during the job",
            "completed")


def test_webhook_unreachable_when_the_worker_reports_started(lab, clips):
    vhost, proxy, server = _stack(lab, heartbeat_timeout=30)
    client = sdk_client(server.url, "ada")
    video_id = client.upload(clips["tiny"], title="Webhook", resume=False)["id"]
    assert client.get_video(video_id)["status"] == "queued"
    proxy.pause()
    worker = lab.worker(server)
    wait_for(lambda: QUEUE in vhost.consumers(), 20, what="the worker to consume")
    time.sleep(OUTAGE)
    assert client.get_video(video_id)["status"] == "queued"
    proxy.resume()
    _finish(vhost, server, worker, client, video_id, time.monotonic(), "before the job",
            "started")


@pytest.mark.parametrize("adapter", ["local", "s3"])
def test_webhook_outage_longer_than_the_heartbeat_timeout(lab, clips, adapter):
    """Attempt 1 finishes and uploads its outputs while the server cannot hear it; the sweeper
    has re-queued the job meanwhile, so attempt 2 transcodes again over those outputs: on S3 too
    exactly one set of outputs is left."""
    vhost, proxy, server = _stack(lab, heartbeat_timeout=5, adapter=adapter)
    worker = lab.worker(server)
    client = sdk_client(server.url, "ada")
    video_id = client.upload(clips["long"], title="Webhook", resume=False)["id"]
    poll_video(client, video_id, lambda v: v["phase"] == "transcoding", timeout=60,
               what="transcoding")
    proxy.pause()
    poll_video(client, video_id, lambda v: v["status"] == "queued", timeout=30,
               what="the sweeper to re-queue the silent job")
    # Down until attempt 1 has finished and tried (twice) to report `completed`: a condition,
    # not a fixed pause, so a fast transcode cannot slip its report in after the outage.
    wait_for(lambda: worker.log().count("completed event of job") >= 2, 120,
             what="attempt 1 to retry its completed event")
    proxy.resume()
    _finish(vhost, server, worker, client, video_id, time.monotonic(),
            "longer than the heartbeat timeout", "completed", attempt=2, rewritten=True)
