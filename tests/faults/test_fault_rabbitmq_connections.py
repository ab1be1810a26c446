"""Fault 2: RabbitMQ closes every connection of the vhost (`rabbitmqctl close_all_connections`)
while uploads are being completed (the server publishes) and jobs are being consumed (the worker
transcodes and acks). Nothing may be lost or stuck; server and worker reconnect by themselves."""

from __future__ import annotations

import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from faultkit import (
    QUEUE,
    assert_jobs_done,
    assert_no_leftovers,
    assert_outputs_complete,
    assert_transcoded_once,
    sdk_client,
    wait_for,
    wait_ready,
    wait_source_gone,
)

pytestmark = [pytest.mark.slow, pytest.mark.faults]

UPLOADS = 8
REDELIVERY = re.compile(r"job (\w+) attempt \d+ for video \w+: delivery (\d+) of at most")


def test_connections_closed_while_publishing_and_consuming(lab, clips):
    vhost = lab.vhost()
    # Four closes while a job is in hand would use up three deliveries when FFmpeg is slow (a
    # busy machine): this test is about nothing being lost, not about the delivery limit (which
    # test_fault_worker_kill covers), so the limit is set above the number of closes.
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": vhost.url,
                             "COURSECRAFTER_HEARTBEAT_TIMEOUT": "20",
                             "COURSECRAFTER_MAX_ATTEMPTS": "6"})
    worker = lab.worker(server, concurrency=2)
    client = sdk_client(server.url, "ada")
    wait_for(lambda: QUEUE in vhost.consumers(), 20, what="the worker to consume")

    # Uploads spread over ~6 s, the first a 30 s lecture (~5 s in FFmpeg, so the early closes
    # find it in the worker's hands), the others 6 s ones; meanwhile the broker drops every
    # connection of the vhost four times (each rabbitmqctl call takes about a second), noting
    # what was in flight each time.
    closes: list[float] = []
    in_flight: list[dict[str, int]] = []
    stop = threading.Event()

    def chaos() -> None:
        for delay in (0.8, 0.5, 0.5, 0.5):
            if stop.wait(delay):
                return
            statuses = [v["status"] for v in client.list_videos()]
            in_flight.append({s: statuses.count(s) for s in set(statuses)})
            vhost.close_connections("fault injection: test")
            closes.append(time.monotonic())

    # A file of its own per upload: two uploads of one file in one process wait on each other's
    # resume lock, and on a busy machine an upload can outlast the 0.8 s between starts.
    files = []
    for i in range(UPLOADS):
        clip = clips["long" if i == 0 else "medium"]
        files.append(lab.tmp_path / f"lecture-{i}{clip.suffix}")
        shutil.copyfile(clip, files[-1])

    def upload(i: int) -> str:
        time.sleep(0.8 * i)
        return client.upload(files[i], title=f"Lecture {i}", resume=False)["id"]

    began = time.monotonic()
    chaos_thread = threading.Thread(target=chaos, daemon=True)
    chaos_thread.start()
    with ThreadPoolExecutor(UPLOADS) as pool:
        ids = list(pool.map(upload, range(UPLOADS)))
    chaos_thread.join(30)
    stop.set()
    assert len(closes) == 4
    last_close = closes[-1]
    # At least one close caught a job in a worker's hands (the others: publishing, queued).
    assert any(snapshot.get("processing") for snapshot in in_flight), in_flight

    videos = [wait_ready(client, vid, timeout=90, storage=server.storage) for vid in ids]
    all_ready = time.monotonic() - began

    # Both sides are back on their own: the server's broker check, the worker's consumer.
    wait_for(lambda: server.readyz()[0] == 200, 30, interval=0.2, what="/readyz ok")
    status, ready = server.readyz()
    assert ready["checks"]["broker"] == "ok", ready
    wait_for(lambda: QUEUE in vhost.consumers(), 30, interval=0.5, what="a consumer again")
    reconnected = time.monotonic() - last_close

    # And they work: one more lecture through the reconnected publisher and consumer.
    extra = client.upload(clips["tiny"], title="After the storm", resume=False)["id"]
    videos.append(wait_ready(client, extra, timeout=60, storage=server.storage))

    for video in videos:
        assert_outputs_complete(server.storage, video)
        wait_source_gone(server.storage, video["id"])
    depths = vhost.wait_drained()
    assert_jobs_done(server, {video["id"]: 1 for video in videos})  # none handed out twice
    # ... and none transcoded twice: a redelivery keeps attempt 1, so only the worker's log
    # tells a copy acked without running again from a second transcode.
    assert_transcoded_once([video["id"] for video in videos], worker)
    assert_no_leftovers(server, worker)
    log = worker.log()
    lost = log.count("RabbitMQ connection lost")
    assert lost >= 1, log
    # A close hit work in flight: a job the worker held unacked came back from the broker.
    redelivered = {job for job, n in REDELIVERY.findall(log) if int(n) > 1}
    assert redelivered, log
    assert worker.process.poll() is None and server.process.poll() is None
    client.close()
    republished = server.log().count("could not publish")
    print(f"\nconnections closed x{len(closes)} (in flight each time: {in_flight}): "
          f"{len(videos)} videos ready; the {UPLOADS} ready {all_ready:.1f}s after the first "
          f"upload; "
          f"readyz ok + consumer back within {reconnected:.1f}s; worker reconnects {lost}; "
          f"jobs redelivered {len(redelivered)} (each transcoded once); "
          f"publishes left to the outbox {republished}; queues {depths}")


def test_broker_unreachable_uploads_wait_in_the_outbox(lab, clips):
    """RabbitMQ unreachable (server and worker reach it through a TCP proxy that resets every
    connection) while uploads are completed: `complete` still answers (the publish gives up
    after its short timeout and the job stays in the store's outbox), /readyz says the broker
    is down; when the broker is back the sweeper publishes the jobs and they end ready."""
    vhost = lab.vhost()
    proxy = lab.tcp_proxy(("127.0.0.1", 5672))
    broker = vhost.url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
    server = lab.server(env={"COURSECRAFTER_BROKER_URL": broker})
    worker = lab.worker(server)
    client = sdk_client(server.url, "ada")
    wait_for(lambda: QUEUE in vhost.consumers(), 20, what="the worker to consume")

    proxy.pause()
    down_at = time.monotonic()
    ids, took = [], []
    for i in range(2):
        began = time.monotonic()
        video = client.upload(clips["tiny"], title=f"Outbox {i}", resume=False)
        took.append(time.monotonic() - began)
        assert video["status"] == "queued", video
        ids.append(video["id"])
    assert max(took) < 15, took  # the request does not hang on the broker
    status, ready = server.readyz()
    assert status == 503 and ready["checks"]["broker"].startswith("error"), ready
    time.sleep(max(0.0, 8 - (time.monotonic() - down_at)))
    assert [client.get_video(vid)["status"] for vid in ids] == ["queued", "queued"]

    proxy.resume()
    back = time.monotonic()
    videos = [wait_ready(client, vid, timeout=60, storage=server.storage) for vid in ids]
    recovered = time.monotonic() - back
    for video in videos:
        assert_outputs_complete(server.storage, video)
        wait_source_gone(server.storage, video["id"])
    depths = vhost.wait_drained()
    assert_jobs_done(server, {vid: 1 for vid in ids})
    assert_transcoded_once(ids, worker)
    assert_no_leftovers(server, worker)
    assert server.log().count("could not publish job") >= 2
    wait_for(lambda: server.readyz()[0] == 200, 20, interval=0.2, what="/readyz ok")
    assert worker.process.poll() is None
    client.close()
    print(f"\nbroker unreachable ~8s: complete answered in {max(took):.1f}s (queued, in the "
          f"outbox); both ready {recovered:.1f}s after the broker returned; queues {depths}")
