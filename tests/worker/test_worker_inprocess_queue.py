from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from worker_fakes import RunningConsumer, wait_until

from coursecrafter_worker.messages import JobMessage
from coursecrafter_worker.queue import JobQueue, QueueUnavailable, Requeue, open_queue
from coursecrafter_worker.queue.inprocess import InProcessQueue


def msg(n: int, attempt: int = 1) -> JobMessage:
    return JobMessage(
        job_id=f"job{n}", video_id=f"v{n}", attempt=attempt, source_key=f"uploads/v{n}/source",
        output_prefix=f"videos/v{n}/", callback_url="http://127.0.0.1:9/cb",
        created_at=datetime.now(timezone.utc).isoformat(),
    )


def test_is_a_job_queue() -> None:
    assert isinstance(InProcessQueue(), JobQueue)
    assert isinstance(open_queue(None), InProcessQueue)
    with pytest.raises(ValueError):
        open_queue("redis://localhost")


def test_runs_handlers_concurrently() -> None:
    q = InProcessQueue()
    barrier = threading.Barrier(4, timeout=5)  # only passes if 4 handlers run at once
    seen: list[str] = []
    lock = threading.Lock()

    def handler(message: JobMessage) -> None:
        barrier.wait()
        with lock:
            seen.append(message.job_id)

    for n in range(8):
        q.publish(msg(n))
    consumer = RunningConsumer(q, handler, concurrency=4)
    assert q.join(timeout=10)
    consumer.shutdown()
    assert sorted(seen) == sorted(f"job{n}" for n in range(8))
    assert q.acked == 8 and q.dead_letters == [] and q.pending == 0


def test_poison_messages_are_dead_lettered_and_counted() -> None:
    q = InProcessQueue()
    handled: list[JobMessage] = []
    q.publish_raw(b"not json at all")
    q.publish_raw(b'{"job_id": "j"}')
    q.publish(msg(1))
    consumer = RunningConsumer(q, handled.append)
    assert q.join(timeout=5)
    consumer.shutdown()
    assert [m.job_id for m in handled] == ["job1"]
    assert [d.reason for d in q.dead_letters] == ["poison", "poison"]
    assert q.dead_letters[0].message is None and q.dead_letters[0].body == b"not json at all"


def test_requeue_redelivers_then_dead_letters_at_the_delivery_limit() -> None:
    q = InProcessQueue(max_attempts=3)
    calls: dict[str, int] = {}

    def handler(message: JobMessage) -> None:
        calls[message.job_id] = calls.get(message.job_id, 0) + 1
        if message.job_id == "job1" and calls["job1"] == 1:
            raise Requeue("try again")
        if message.job_id == "job2":
            raise Requeue("never works")

    q.publish(msg(1))
    q.publish(msg(2))
    consumer = RunningConsumer(q, handler)
    assert q.join(timeout=5)
    consumer.shutdown()
    assert calls == {"job1": 2, "job2": 3}
    [dead] = q.dead_letters
    assert (dead.message.job_id, dead.reason, dead.deliveries) == ("job2", "delivery_limit", 3)


def test_handler_crash_is_dead_lettered_at_once(caplog) -> None:
    q = InProcessQueue()
    calls = []

    def handler(message: JobMessage) -> None:
        calls.append(message)
        raise RuntimeError("boom")

    q.publish(msg(1))
    consumer = RunningConsumer(q, handler)
    assert q.join(timeout=5)
    consumer.shutdown()
    assert len(calls) == 1
    assert q.dead_letters[0].reason == "rejected"
    assert "boom" in caplog.text


def test_stop_finishes_the_job_in_hand_and_keeps_the_rest() -> None:
    q = InProcessQueue()
    started = threading.Event()
    done: list[str] = []

    def handler(message: JobMessage) -> None:
        started.set()
        time.sleep(0.3)
        done.append(message.job_id)

    for n in range(3):
        q.publish(msg(n))
    consumer = RunningConsumer(q, handler)
    assert started.wait(5)
    consumer.shutdown(timeout=5)
    assert done == ["job0"]
    assert q.qsize() == 2 and q.pending == 2
    # Another consumer picks the rest up.
    consumer = RunningConsumer(q, handler)
    assert q.join(timeout=5)
    consumer.shutdown()
    assert done == ["job0", "job1", "job2"]


def test_start_and_close() -> None:
    q = InProcessQueue()
    seen: list[str] = []
    q.start(lambda m: seen.append(m.job_id), concurrency=2)
    q.publish(msg(1))
    assert wait_until(lambda: seen == ["job1"], 5)
    q.ping()
    q.close(timeout=5)
    with pytest.raises(QueueUnavailable):
        q.publish(msg(2))
    with pytest.raises(QueueUnavailable):
        q.ping()


def test_thread_safe_publishing() -> None:
    q = InProcessQueue()
    seen: list[str] = []
    lock = threading.Lock()

    def handler(m: JobMessage) -> None:
        with lock:
            seen.append(m.job_id)

    consumer = RunningConsumer(q, handler, concurrency=3)
    publishers = [
        threading.Thread(target=lambda base=b: [q.publish(msg(base * 100 + i)) for i in range(50)])
        for b in range(4)
    ]
    for t in publishers:
        t.start()
    for t in publishers:
        t.join()
    assert q.join(timeout=10)
    consumer.shutdown()
    assert len(seen) == 200 and len(set(seen)) == 200
