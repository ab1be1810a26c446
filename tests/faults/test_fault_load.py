"""Fault 7: load. 50 uploads started at once (SDK, one thread each) feeding 2 worker processes
through RabbitMQ; every lecture must end `ready` with complete outputs, the queue must drain, and
the memory of the server and of each worker must stay bounded: VmRSS sampled every 0.25 s, its
peak checked against an absolute bound and against the RSS each process had once warm (after a
few lectures of warm-up), and the FFmpeg under each worker against the memory limit it runs
under."""

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
    assert_no_leftovers,
    assert_outputs_complete,
    assert_transcoded_once,
    rss_now,
    sdk_client,
    transcodes,
    wait_for,
    wait_ready,
    wait_source_gone,
)

from coursecrafter_worker.pipeline.process import MEMORY_LIMIT_ENV, MIB, memory_limit

pytestmark = [pytest.mark.slow, pytest.mark.faults]

UPLOADS = 50
WARM_UP = 4  # uploaded and transcoded first, so that the baseline is a warm process
# Margins from runs on the CI machine (2 CPUs, 24 GiB; imageio-ffmpeg's FFmpeg 9.0, 320x240
# 2 s clips): warm RSS server 91 MiB, each worker 51 MiB; peak minus warm over the 50 uploads:
# server 7.4-9.5 MiB (50 request threads at once), each worker 0.2 MiB; FFmpeg alone peaked at
# 46-58 MiB. Each margin leaves several times that for another machine's allocator and thread
# count, and still catches a leak of ~1 MiB per request or ~0.6 MiB per job.
RSS_BOUND_MIB = 600  # absolute, any process
SERVER_GROWTH_MIB = 48
WORKER_GROWTH_MIB = 16
FFMPEG_RSS_MIB = 256


@pytest.mark.parametrize("adapter", ["local", "s3"])
def test_fifty_uploads_with_two_workers_all_ready_memory_bounded(lab, clips, tmp_path, adapter):
    vhost = lab.vhost()
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": "30",
                             **lab.storage_env(adapter)})
    assert server.storage.kind == adapter
    workers = [lab.worker(server, f"worker-{i}") for i in (1, 2)]
    client = sdk_client(server.url, "ada")
    wait_for(lambda: vhost.consumers().count(QUEUE) == 2, 30, what="2 consumers")
    files = []
    for i in range(WARM_UP + UPLOADS):  # one file each (the SDK's resume state is per file)
        files.append(tmp_path / f"lecture-{i:02d}.mp4")
        shutil.copyfile(clips["tiny"], files[-1])
    warm_files, files = files[:WARM_UP], files[WARM_UP:]

    def upload(path):
        return client.upload(path, title=path.stem, resume=False)["id"]

    # Warm-up: a few lectures through both workers (imports, pools, caches, the first FFmpeg),
    # then the baseline RSS of each process, idle and warm.
    with ThreadPoolExecutor(WARM_UP) as pool:
        warm_ids = list(pool.map(upload, warm_files))
    for video_id in warm_ids:
        wait_ready(client, video_id, timeout=60, storage=server.storage)
    vhost.wait_drained(30)
    warm_runs = [transcodes(worker)[1].total() for worker in workers]
    assert all(warm_runs), f"a worker took no warm-up job: {warm_runs}"

    pids = {"server": server.pid}
    for i, worker in enumerate(workers, 1):
        pids[f"worker-{i}"] = worker.pid
        pids[f"worker-{i}+tree"] = worker.pid  # with its FFmpeg children
        pids[f"worker-{i}+children"] = worker.pid  # its FFmpeg alone
    time.sleep(1)
    warm = rss_now(pids)
    barrier = threading.Barrier(UPLOADS)

    def upload_at_once(path):
        barrier.wait(30)
        return upload(path)

    began = time.monotonic()
    with RssSampler(pids, interval=0.25) as rss:
        with ThreadPoolExecutor(UPLOADS) as pool:
            ids = list(pool.map(upload_at_once, files))
        uploaded = time.monotonic() - began

        def statuses() -> dict[str, int]:
            counts: dict[str, int] = {}
            for video in client.list_videos():
                counts[video["status"]] = counts.get(video["status"], 0) + 1
            return counts

        final = wait_for(lambda: (s := statuses()).get("ready") == WARM_UP + UPLOADS and s, 150,
                         interval=1.0, what=f"{UPLOADS} videos ready")
        all_ready = time.monotonic() - began
        depths = vhost.wait_drained(30)

    assert final == {"ready": WARM_UP + UPLOADS}, final
    assert_jobs_done(server, {vid: 1 for vid in warm_ids + ids})
    assert len(set(ids)) == UPLOADS
    for video_id in ids:
        video = client.get_video(video_id)
        assert_outputs_complete(server.storage, video)
        wait_source_gone(server.storage, video_id, timeout=10)
    # Each job transcoded once, by one worker or the other, and both took part.
    assert_transcoded_once(warm_ids + ids, *workers)
    done = {f"worker-{i}": transcodes(w)[1].total() - warm_runs[i - 1]
            for i, w in enumerate(workers, 1)}
    assert sum(done.values()) == UPLOADS and all(done.values()), done
    assert_no_leftovers(server, *workers)
    assert all(w.process.poll() is None for w in workers) and server.process.poll() is None

    # Memory: bounded in absolute terms, and little growth over the warm baseline.
    peaks = {name: round(mib, 1) for name, mib in rss.peaks.items()}
    growth = {name: round(rss.peaks[name] - warm[name], 1) for name in pids}
    assert rss.samples >= 20, rss.samples
    for name in ("server", "worker-1", "worker-2"):
        assert 0 < peaks[name] < RSS_BOUND_MIB, peaks
    assert growth["server"] < SERVER_GROWTH_MIB, (growth, peaks, warm)
    for i in (1, 2):
        assert growth[f"worker-{i}"] < WORKER_GROWTH_MIB, (growth, peaks, warm)
    # FFmpeg runs under the address-space limit the worker sets (pipeline/process.py
    # memory_limit(): COURSECRAFTER_FFMPEG_MEMORY_LIMIT is not set here, so the default), one at
    # a time per worker (concurrency 1): a worker with its FFmpeg stays within the worker's
    # bound plus that limit, and FFmpeg itself (RSS <= address space) far below it.
    with pytest.MonkeyPatch.context() as env:
        env.delenv(MEMORY_LIMIT_ENV, raising=False)
        limit = memory_limit()
    assert limit is not None
    limit_mib = limit / MIB
    assert rss.ffmpeg_seen, "no sample caught an FFmpeg: nothing was measured"
    assert rss.ffmpeg_limits == {limit}, rss.ffmpeg_limits  # every FFmpeg seen had it
    for i in (1, 2):
        assert peaks[f"worker-{i}+tree"] < peaks[f"worker-{i}"] + limit_mib, peaks
        assert peaks[f"worker-{i}+children"] < min(FFMPEG_RSS_MIB, limit_mib), peaks
        assert peaks[f"worker-{i}+tree"] < warm[f"worker-{i}"] + WORKER_GROWTH_MIB \
            + FFMPEG_RSS_MIB, (peaks, warm)
    client.close()
    print(f"\nload ({adapter}): {UPLOADS} uploads in {uploaded:.1f}s, all ready after "
          f"{all_ready:.1f}s, "
          f"jobs per worker {done}; RSS MiB warm {_round(warm)}, peak {peaks}, growth {growth} "
          f"({rss.samples} samples, FFmpeg caught in {rss.ffmpeg_seen}, its limit "
          f"{limit_mib:.0f} MiB); queues {depths}")


def _round(values: dict[str, float]) -> dict[str, float]:
    return {name: round(v, 1) for name, v in values.items()}
