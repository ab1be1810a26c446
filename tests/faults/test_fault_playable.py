"""Faults around the early pass (playable before the ladder): a worker SIGKILLed during the
early FFmpeg, a worker SIGKILLed after `playable` (in the ladder's FFmpeg), and the webhook
unreachable when the worker reports `playable`.

Scale-out: server + RabbitMQ vhost + worker processes, as test_fault_worker_kill.py and
test_fault_webhook.py. Nothing may be lost: the lecture ends `ready` once, with complete outputs
(the early rendition included, kept for the playback URL TTL); a player that loaded the early
playlist keeps playing through the kill and after `ready`."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from faultkit import (
    alive,
    assert_jobs_done,
    assert_no_leftovers,
    assert_outputs_complete,
    assert_transcoded_once,
    poll_video,
    sdk_client,
    source_exists,
    transcodes,
    wait_for,
    wait_ready,
    wait_source_gone,
)

from coursecrafter_worker.pipeline import find_ffmpeg

pytestmark = [pytest.mark.slow, pytest.mark.faults]

OUTAGE = 8.0
SECONDS = 40


@pytest.fixture(scope="module")
def ten_bit(tmp_path_factory) -> Path:
    """40 s 640x360 H.264 10-bit + AAC: never remuxed (browsers cannot play it), so the early
    pass is a real encode (the 360p fast rung) of a few seconds: long enough to be hit."""
    path = tmp_path_factory.mktemp("clips") / "ten_bit.mp4"
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s=640x360:r=25:d={SECONDS}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-c:a", "aac",
         "-shortest", str(path)],
        check=True, timeout=120,
    )
    return path


def _argv(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def early_ffmpeg(worker) -> list[int]:
    """The worker's FFmpeg making the early rendition (it writes hls/early/index.m3u8)."""
    return [p for p in worker.ffmpeg_pids() if "hls/early/index.m3u8" in _argv(p)]


def ladder_ffmpeg(worker) -> list[int]:
    """The worker's FFmpeg making the ladder (one process, every rung: -var_stream_map)."""
    return [p for p in worker.ffmpeg_pids() if "var_stream_map" in _argv(p)]


def _kill(worker) -> None:
    """SIGKILL the worker's group; wait for it and its FFmpeg to be gone (as in
    test_fault_worker_kill.py: FFmpeg dies with its worker, PR_SET_PDEATHSIG)."""
    ffmpeg = worker.ffmpeg_pids()
    pids = worker.kill_group()
    try:
        wait_for(lambda: not any(alive(p) for p in pids + ffmpeg), 10,
                 what="the worker and its FFmpeg to die")
    finally:
        for pid in ffmpeg:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def decoded_seconds(url: str) -> float:
    done = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-i", url, "-f", "null",
                           "-"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    h, m, s = re.findall(r"time=(\d+):(\d+):(\d+\.\d+)", done.stderr)[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def early_variant_url(video: dict) -> str:
    """The early playlist's URL as a player gets it from the master (while it names it)."""
    master = httpx.get(video["playback_url"], timeout=10)
    assert master.status_code == 200, master.text
    variants = [x for x in master.text.splitlines() if x and not x.startswith("#")]
    assert variants == ["early/index.m3u8"], master.text  # relative: the token is in the path
    return video["playback_url"].split("master.m3u8")[0] + variants[0]


def _stack(lab, heartbeat_timeout: int, public_url: str | None = None):
    vhost = lab.vhost()
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": str(heartbeat_timeout)},
                        public_url=public_url)
    return vhost, server


def _end_state(vhost, server, video_id, client, first, second) -> dict:
    video = wait_ready(client, video_id, timeout=120, storage=server.storage)
    assert video["playable"] is True
    counts = assert_outputs_complete(server.storage, video)
    assert "hls/early/index.m3u8" in counts  # kept for the playback URL TTL
    assert abs(video["duration"] - SECONDS) < 0.6
    wait_source_gone(server.storage, video_id)
    depths = vhost.wait_drained()
    assert_jobs_done(server, {video_id: 1})  # redelivered: the same attempt
    assert_transcoded_once([video_id], first, second)
    assert_no_leftovers(server, second)
    assert "re-queued" not in server.log()
    return {"counts": counts, "queues": depths}


def test_worker_killed_during_the_early_pass(lab, ten_bit):
    vhost, server = _stack(lab, heartbeat_timeout=20)
    first = lab.worker(server, "worker-1")
    client = sdk_client(server.url, "ada")
    video_id = client.upload(ten_bit, title="Kill me early", resume=False)["id"]
    wait_for(lambda: early_ffmpeg(first), 60, interval=0.05,
             what="the early pass's FFmpeg to run")
    assert client.get_video(video_id)["playable"] is False
    _kill(first)
    assert source_exists(server.storage, video_id)
    # Nothing half-made counts: an early playlist in storage (normally none yet) names only
    # segments that are there, since it is uploaded after them.
    early = f"videos/{video_id}/hls/early/"
    if server.storage.exists(early + "index.m3u8"):
        stored = server.storage.objects(early)
        named = [x for x in server.storage.read_text(early + "index.m3u8").splitlines()
                 if x and not x.startswith("#")]
        assert all(stored.get(x, 0) > 0 for x in named), (named, stored)

    second = lab.worker(server, "worker-2", env={"COURSECRAFTER_WORK_DIR": str(first.work_dir)})
    video = poll_video(client, video_id, lambda v: v["playable"], timeout=90,
                       what="playable again, from the new worker")
    state = _end_state(vhost, server, video_id, client, first, second)
    log = second.log()
    assert "delivery 2 of at most 3" in log and "early rendition uploaded" in log, log
    print(f"\nworker killed in the early pass: playable again ({video['status']}), then ready; "
          f"segments {state['counts']}; queues {state['queues']}")


def test_worker_killed_after_playable_loses_nothing(lab, ten_bit):
    vhost, server = _stack(lab, heartbeat_timeout=20)
    first = lab.worker(server, "worker-1")
    client = sdk_client(server.url, "ada")
    video_id = client.upload(ten_bit, title="Kill me later", resume=False)["id"]
    video = poll_video(client, video_id, lambda v: v["playable"], timeout=90, what="playable")
    assert video["status"] == "processing" and video["playback_url"]
    early_url = early_variant_url(video)
    wait_for(lambda: ladder_ffmpeg(first), 60, interval=0.05, what="the ladder's FFmpeg")
    _kill(first)

    # The worker is gone; the lecture is still watchable, all of it.
    dead = client.get_video(video_id)
    assert dead["playable"] is True and dead["status"] == "processing"
    assert decoded_seconds(early_url) == pytest.approx(SECONDS, abs=0.5)

    second = lab.worker(server, "worker-2", env={"COURSECRAFTER_WORK_DIR": str(first.work_dir)})
    state = _end_state(vhost, server, video_id, client, first, second)
    # The redelivered job reused the early output instead of encoding it again.
    log = second.log()
    assert "early output already complete in storage: reused" in log, log
    assert "early rendition uploaded" not in log, log
    # The player that loaded the early playlist before the kill still plays it after `ready`.
    assert decoded_seconds(early_url) == pytest.approx(SECONDS, abs=0.5)
    print(f"\nworker killed after playable: early playlist played throughout; "
          f"segments {state['counts']}; queues {state['queues']}")


def test_webhook_unreachable_when_the_worker_reports_playable(lab, ten_bit):
    proxy = lab.tcp_proxy()
    vhost, server = _stack(lab, heartbeat_timeout=30, public_url=proxy.url)
    proxy.upstream = ("127.0.0.1", server.port)
    worker = lab.worker(server)
    client = sdk_client(server.url, "ada")
    video_id = client.upload(ten_bit, title="Webhook", resume=False)["id"]
    wait_for(lambda: early_ffmpeg(worker), 60, interval=0.05, what="the early pass's FFmpeg")
    paused_at = time.monotonic()
    proxy.pause()
    wait_for(lambda: "playable event of job" in worker.log(), 60,
             what="the worker to fail to deliver `playable`")
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - paused_at)))  # the outage itself
    held = client.get_video(video_id)
    assert held["playable"] is False and held["status"] == "processing"  # nothing got through
    assert proxy.refused > 0
    # The worker holds on to `playable` (essential) instead of going on without it.
    assert not ladder_ffmpeg(worker)
    proxy.resume()
    resumed_at = time.monotonic()

    video = wait_ready(client, video_id, timeout=120, storage=server.storage)
    recovered = time.monotonic() - resumed_at
    assert video["playable"] is True
    counts = assert_outputs_complete(server.storage, video)
    assert "hls/early/index.m3u8" in counts
    wait_source_gone(server.storage, video_id)
    depths = vhost.wait_drained()
    assert_jobs_done(server, {video_id: 1})
    ran, completed = transcodes(worker)
    assert (ran, completed) == (Counter({video_id: 1}), Counter({video_id: 1}))
    assert_no_leftovers(server, worker)
    retries = worker.log().count("playable event of job")
    assert retries >= 2, worker.log()
    client.close()
    print(f"\nwebhook down {OUTAGE:g}s at playable: `playable` retried {retries}x; ready "
          f"{recovered:.1f}s after the webhook came back; segments {counts}; queues {depths}")
