"""Fault 8: a worker host loses its network in the middle of a job, then comes back.

Two `coursecrafter-worker`s run on two hosts of their own (network namespaces on a private
network, tests/netsupport.py) and reach RabbitMQ, S3 (moto) and the API across it. The link of
the host whose worker holds the job is cut (its switch port goes down: packets vanish, nothing
tells the host at once). The broker misses the worker's AMQP heartbeats and redelivers the job to
the other worker, which takes the lecture to `ready`; the cut worker notices that its connection
is gone and drops the job (the broker has handed it out again), so nothing is uploaded or
reported twice. When the link comes back the worker reconnects by itself and takes the next job.

The steps are written so that a chunk job (a chunk is one job message any worker may take) can
go through them too: `netsupport.cut_holder_mid_job` waits for "a worker on a host is running
FFmpeg" and cuts that host, whatever the message was; a chunked variant sets
COURSECRAFTER_CHUNK_SECONDS in `ScaleOut(server_env=...)` and waits for a chunk in FFmpeg.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from faultkit import (
    QUEUE,
    assert_jobs_done,
    assert_no_job_dirs,
    assert_outputs_complete,
    assert_storage_clean,
    assert_transcoded_once,
    poll_video,
    sdk_client,
    wait_for,
    wait_ready,
    wait_source_gone,
)
from netsupport import (  # noqa: F401 - `network` is a fixture
    Network,
    ScaleOut,
    cut_holder_mid_job,
    network,
)

pytestmark = [pytest.mark.slow, pytest.mark.faults]

CONSUMING = "consuming coursecrafter.transcode on "
DELIVERY = re.compile(r"job (\w+) attempt (\d+) for video (\w+): delivery (\d+) of at most")


def _consumers(vhost: Any) -> int:
    return vhost.consumers().count(QUEUE)


def test_worker_host_cut_mid_job_is_redelivered_and_rejoins(lab, clips, network: Network):
    # The sweeper stays out (heartbeat timeout far above the broker's detection): this is about
    # the broker noticing the dead host and redelivering the same attempt.
    hosts = [network.add_host("a"), network.add_host("b")]
    site = ScaleOut(lab, network, server_env={"COURSECRAFTER_HEARTBEAT_TIMEOUT": "120"})
    server, vhost = site.server, site.vhost
    workers = {host: site.worker(host) for host in hosts}
    wait_for(lambda: _consumers(vhost) == 2, 60, interval=0.5, what="both workers to consume")
    client = sdk_client(server.url, "ada")

    video_id = client.upload(clips["long"], title="Cut me", resume=False)["id"]
    poll_video(client, video_id,
               lambda v: v["status"] == "processing" and v["phase"] == "transcoding"
               and v["progress"] > 0, timeout=120, what="transcoding")
    cut, lost = cut_holder_mid_job(workers)
    cut_at = time.monotonic()
    (other,) = [h for h in hosts if h is not cut]
    survivor = workers[other]
    assert not cut.reaches(network.gateway, site.forwarders["api"].port, timeout=1)

    # The broker notices the missed heartbeats and hands the job to the other host's worker.
    def deliveries() -> list[str]:
        return [m.group(4) for m in DELIVERY.finditer(survivor.log()) if m.group(3) == video_id]

    wait_for(deliveries, 120, interval=0.2, what="the broker to redeliver the job")
    redelivered_after = time.monotonic() - cut_at
    video = wait_ready(client, video_id, timeout=240, storage=server.storage)
    ready_after = time.monotonic() - cut_at
    assert deliveries() == ["2"], survivor.log()
    counts = assert_outputs_complete(server.storage, video)
    assert (video["width"], video["height"]) == (640, 360)
    wait_source_gone(server.storage, video_id)

    # The cut worker found out on its own (its heartbeats went unanswered) and dropped the job:
    # FFmpeg stopped, its job directory removed, nothing sent. Still cut off.
    wait_for(lambda: "RabbitMQ connection lost" in lost.log(), 120, interval=0.2,
             what="the cut worker to notice")
    noticed_after = time.monotonic() - cut_at  # an upper bound when it noticed before `ready`
    # (A storage call in flight when it noticed ends by its own timeouts and retries first: an
    # unreachable S3 endpoint fails a connect in seconds, a stalled transfer takes longer.)
    wait_for(lambda: not lost.ffmpeg_pids(), 60, interval=0.5, what="the cut FFmpeg to stop")
    assert_no_job_dirs(lost.work_dir, timeout=150)
    assert lost.process.poll() is None, lost.log()

    # The link comes back: the worker reconnects by itself (a second "consuming" line).
    cut.restore()
    restored_at = time.monotonic()
    wait_for(lambda: lost.log().count(CONSUMING) >= 2 and _consumers(vhost) == 2, 180,
             interval=0.5, what="the cut worker to consume again")
    rejoined_after = time.monotonic() - restored_at

    # Proof that it works again: the other worker stops (gracefully), so the next lecture can
    # only be transcoded by the host that was cut.
    assert survivor.stop() == 0, survivor.log()
    wait_for(lambda: _consumers(vhost) == 1, 60, interval=0.5, what="one consumer left")
    second_id = client.upload(clips["tiny"], title="After the cut", resume=False)["id"]
    second = wait_ready(client, second_id, timeout=180, storage=server.storage)
    assert_outputs_complete(server.storage, second)
    assert any(m.group(3) == second_id for m in DELIVERY.finditer(lost.log())), lost.log()
    wait_source_gone(server.storage, second_id)

    # Nothing lost, nothing twice: one attempt each (a redelivery, not a re-queue), each lecture
    # transcoded and reported once over both workers, nothing left in storage or work dirs.
    vhost.wait_drained(timeout=60)
    assert_jobs_done(server, {video_id: 1, second_id: 1})
    assert_transcoded_once([video_id, second_id], lost, survivor)
    assert_storage_clean(server.storage)
    assert_no_job_dirs(lost.work_dir, survivor.work_dir)
    assert "re-queued" not in server.log()
    client.close()
    print(f"\nhost cut mid-job (AMQP heartbeat 2 s): redelivered {redelivered_after:.1f}s "
          f"after the cut, ready {ready_after:.1f}s (segments {counts}), the cut worker had "
          f"noticed by {noticed_after:.1f}s; rejoined {rejoined_after:.1f}s after the link came "
          f"back")


def test_worker_host_cut_mid_chunk_its_chunk_is_redelivered_and_joined_once(
        lab, clips, network: Network):
    """The same fault on a chunk job: the lecture is cut into chunks that both hosts' workers
    take; the host of a worker in a chunk's FFmpeg is cut; the broker hands that chunk to the
    other worker, the join runs once after every chunk, and the lecture is `ready` with each
    piece's segments once."""
    hosts = [network.add_host("a"), network.add_host("b")]
    site = ScaleOut(lab, network, server_env={"COURSECRAFTER_HEARTBEAT_TIMEOUT": "120",
                                              "COURSECRAFTER_CHUNK_SECONDS": "7.5"})
    server, vhost = site.server, site.vhost
    workers = {host: site.worker(host) for host in hosts}
    wait_for(lambda: _consumers(vhost) == 2, 60, interval=0.5, what="both workers to consume")
    client = sdk_client(server.url, "ada")

    video_id = client.upload(clips["long"], title="Cut me in chunks", resume=False)["id"]
    wait_for(lambda: "chunked into" in server.log(), 120, interval=0.2, what="the cut")
    cut, lost = cut_holder_mid_job(workers)
    cut_at = time.monotonic()
    (other,) = [h for h in hosts if h is not cut]
    survivor = workers[other]

    video = wait_ready(client, video_id, timeout=300, storage=server.storage)
    ready_after = time.monotonic() - cut_at
    # The join removes the pieces' own playlists right after its `completed` was applied.
    wait_for(lambda: not server.storage.objects(f"videos/{video_id}/chunks/"), 30,
             what="the pieces' playlists to be removed")
    counts = assert_outputs_complete(server.storage, video)
    assert "hls/audio/index.m3u8" in counts
    assert abs(video["duration"] - 30) < 0.6
    wait_source_gone(server.storage, video_id)
    assert server.log().count("every chunk done, join queued") == 1, server.log()
    # The cut host's chunk went to the survivor as the same attempt, delivered again.
    assert any(m.group(3) == video_id and m.group(4) == "2"
               for m in DELIVERY.finditer(survivor.log())), survivor.log()
    assert "re-queued" not in server.log()
    cut.restore()
    vhost.wait_drained(timeout=120)
    assert_storage_clean(server.storage)
    client.close()
    print(f"\nhost cut mid-chunk: ready {ready_after:.1f}s after the cut (segments {counts})")
