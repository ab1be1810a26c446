"""Chunked transcoding under a fault: two `coursecrafter-worker` processes share the chunks of one
lecture through RabbitMQ, and one is SIGKILLed (with its FFmpeg) in the middle of a chunk.

The killed worker's unacked chunk message goes back to the queue; the other worker takes it (the
same chunk attempt, delivered again), the join runs once after every chunk, and the lecture is
`ready` with complete outputs: each piece's segments once, the audio rendition, nothing left of
the killed attempt, the source and the pieces gone. A chunk job is an ordinary job message on the
same queue, so the network-namespace host faults (issue 14 item 3) apply to it unchanged.
"""

from __future__ import annotations

import re
import time

import pytest
from faultkit import (
    alive,
    assert_no_leftovers,
    assert_outputs_complete,
    poll_video,
    sdk_client,
    wait_for,
    wait_ready,
    wait_source_gone,
)

pytestmark = [pytest.mark.slow, pytest.mark.faults]


@pytest.mark.parametrize(("adapter", "database"), [("local", "sqlite"), ("s3", "mongodb")])
def test_worker_killed_mid_chunk_its_chunk_is_redelivered_and_joined_once(lab, clips, adapter,
                                                                         database):
    """On the embedded store and storage, and on the scale-out ones (S3 through moto, the
    MongoDB wire-protocol server): the chunk rows live in the store's `job_chunks`."""
    vhost = lab.vhost()
    # 30 s cut into 4 pieces of ~7.5 s (+ the audio); a heartbeat timeout well above the
    # redelivery, so the sweeper stays out of it.
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": "60",
                             "COURSECRAFTER_CHUNK_SECONDS": "7.5",
                             **lab.storage_env(adapter), **lab.database_env(database)})
    assert server.storage.kind == adapter
    first = lab.worker(server, "worker-1")
    second = lab.worker(server, "worker-2")
    client = sdk_client(server.url, "ada")
    video_id = client.upload(clips["long"], title="Cut me", resume=False)["id"]

    # Wait until the lecture is cut and one worker is in a chunk's FFmpeg, then kill that one.
    wait_for(lambda: "chunked into" in server.log(), 90, what="the lecture to be cut")
    victim = None

    def in_chunk() -> bool:
        nonlocal victim
        for worker in (first, second):
            if worker.ffmpeg_pids() and re.search(r"delivery \d+ of at most", worker.log()):
                victim = worker
                return True
        return False

    wait_for(in_chunk, 60, what="a worker in a chunk's FFmpeg")
    assert victim is not None
    survivor = second if victim is first else first
    pids = victim.kill_group()
    wait_for(lambda: not any(alive(p) for p in pids), 10, what="the worker and its FFmpeg")
    killed_at = time.monotonic()

    video = wait_ready(client, video_id, timeout=180, storage=server.storage)
    # The join removes the pieces' own playlists right after its `completed` was applied.
    wait_for(lambda: not server.storage.objects(f"videos/{video_id}/chunks/"), 30,
             what="the pieces' playlists to be removed")
    assert abs(video["duration"] - 30) < 0.6 and (video["width"], video["height"]) == (640, 360)
    counts = assert_outputs_complete(server.storage, video)
    assert "hls/audio/index.m3u8" in counts  # the one audio rendition every rung names
    wait_source_gone(server.storage, video_id)
    assert not server.storage.objects(f"uploads/{video_id}/")  # the pieces too
    vhost.wait_drained()
    log = server.log()
    assert log.count("every chunk done, join queued") == 1, log
    assert "re-queued" not in log  # redelivered by the broker, not re-queued by the sweeper
    # The killed worker's chunk was delivered once more, to the survivor.
    assert re.search(r"delivery 2 of at most", survivor.log()), survivor.log()
    assert_no_leftovers(server, survivor)
    poll_video(client, video_id, lambda v: v["status"] == "ready", timeout=5)
    client.close()
    print(f"\nworker kill mid-chunk: ready {time.monotonic() - killed_at:.1f}s after the kill; "
          f"segments {counts}")
