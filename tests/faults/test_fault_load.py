"""Fault 7: load. 50 uploads started at once (SDK, one thread each) feeding 2 worker processes
through RabbitMQ; every lecture must end `ready` with complete outputs, the queue must drain, and
the memory of the server and of each worker must stay bounded (VmRSS sampled every 0.5 s)."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from faultkit import (
    QUEUE,
    RssSampler,
    assert_jobs_done,
    assert_outputs_complete,
    sdk_client,
    source_path,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.faults]

UPLOADS = 50
RSS_BOUND_MIB = 600


def test_fifty_uploads_with_two_workers_all_ready_memory_bounded(lab, clips, tmp_path):
    vhost = lab.vhost()
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": "30"})
    workers = [lab.worker(server, f"worker-{i}") for i in (1, 2)]
    client = sdk_client(server.url, "ada")
    wait_for(lambda: vhost.consumers().count(QUEUE) == 2, 30, what="2 consumers")
    files = []
    for i in range(UPLOADS):  # one file each (the SDK's resume state is per file)
        files.append(tmp_path / f"lecture-{i:02d}.mp4")
        shutil.copyfile(clips["tiny"], files[-1])

    pids = {"server": server.pid}
    for i, worker in enumerate(workers, 1):
        pids[f"worker-{i}"] = worker.pid
        pids[f"worker-{i}+tree"] = worker.pid  # with its FFmpeg children
    barrier = threading.Barrier(UPLOADS)

    def upload(path):
        barrier.wait(30)
        return client.upload(path, title=path.stem, resume=False)["id"]

    began = time.monotonic()
    with RssSampler(pids) as rss:
        with ThreadPoolExecutor(UPLOADS) as pool:
            ids = list(pool.map(upload, files))
        uploaded = time.monotonic() - began

        def statuses() -> dict[str, int]:
            counts: dict[str, int] = {}
            for video in client.list_videos():
                counts[video["status"]] = counts.get(video["status"], 0) + 1
            return counts

        final = wait_for(lambda: (s := statuses()).get("ready") == UPLOADS and s, 150,
                         interval=1.0, what=f"{UPLOADS} videos ready")
        all_ready = time.monotonic() - began
        depths = vhost.wait_drained(30)

    assert final == {"ready": UPLOADS}, final
    assert_jobs_done(server, {vid: 1 for vid in ids})
    assert len(set(ids)) == UPLOADS
    for video_id in ids:
        video = client.get_video(video_id)
        assert_outputs_complete(server.blobs, video)
        wait_for(lambda: not source_path(server.blobs, video_id).exists(), 10,
                 what="the source to be deleted")
    done = {name: worker.log().count(" completed in ") for name, worker in
            zip(("worker-1", "worker-2"), workers)}
    assert sum(done.values()) == UPLOADS, done  # each job transcoded once
    assert all(done.values()), done  # both workers took part
    assert all(w.process.poll() is None for w in workers) and server.process.poll() is None
    peaks = {name: round(mib, 1) for name, mib in rss.peaks.items()}
    for name in ("server", "worker-1", "worker-2"):
        assert 0 < peaks[name] < RSS_BOUND_MIB, peaks
    client.close()
    print(f"\nload: {UPLOADS} uploads in {uploaded:.1f}s, all ready after {all_ready:.1f}s, "
          f"jobs per worker {done}; peak RSS MiB {peaks} ({rss.samples} samples); "
          f"queues {depths}")
