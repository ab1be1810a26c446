"""The RabbitMQ adapter against the real broker: a vhost of the test session, fresh queues for
every test (deleted afterwards)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime, timezone

import pika
import pytest
from livesupport import rabbitmqctl
from worker_fakes import RunningConsumer, wait_until

from coursecrafter_worker.messages import JobMessage
from coursecrafter_worker.queue import JobQueue, QueueError, QueueUnavailable, Requeue
from coursecrafter_worker.queue.rabbitmq import RabbitMQQueue, redact_url

pytestmark = pytest.mark.rabbitmq


def msg(n: int | str, attempt: int = 1) -> JobMessage:
    return JobMessage(
        job_id=f"job{n}", video_id=f"v{n}", attempt=attempt, source_key=f"uploads/v{n}/source",
        output_prefix=f"videos/v{n}/", callback_url="http://127.0.0.1:9/cb",
        created_at=datetime.now(timezone.utc).isoformat(),
    )


def raw_channel(amqp_url: str):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    return connection, connection.channel()


def counts(amqp_url: str, names: tuple[str, str]) -> tuple[int, int]:
    connection, channel = raw_channel(amqp_url)
    try:
        return tuple(channel.queue_declare(n, passive=True).method.message_count for n in names)  # type: ignore[return-value]
    finally:
        connection.close()


def counts_become(amqp_url: str, names: tuple[str, str], expected: tuple[int, int]) -> bool:
    """A nack or a closed channel returns its messages a moment after the consumer has stopped
    (a quorum queue settles them through its log): wait for the counts rather than read once."""
    return wait_until(lambda: counts(amqp_url, names) == expected)


def test_topology_and_persistent_publish(make_rabbit, amqp_url, amqp_vhost, queue_names) -> None:
    q = make_rabbit(max_attempts=4)
    assert isinstance(q, JobQueue)
    q.ping()
    message = msg(1)
    q.publish(message)

    connection, channel = raw_channel(amqp_url)
    try:
        method, props, body = channel.basic_get(queue_names[0], auto_ack=True)
    finally:
        connection.close()
    assert method is not None
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert props.message_id == "job1.1"
    assert JobMessage.from_json(body) == message

    if amqp_vhost is not None:
        listing = json.loads(rabbitmqctl("list_queues", "-p", amqp_vhost, "name", "type",
                                         "durable", "arguments", "--formatter", "json").stdout)
        queues = {q_["name"]: q_ for q_ in listing}
        main, dead = queues[queue_names[0]], queues[queue_names[1]]
        args = {a[0]: a[2] for a in main["arguments"]}
        assert main["type"] == "quorum" and main["durable"] is True
        assert args == {"x-queue-type": "quorum", "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": queue_names[1], "x-delivery-limit": 3}
        assert dead["type"] == "quorum" and dead["durable"] is True


def test_declaring_with_other_arguments_uses_the_existing_queue(make_rabbit) -> None:
    make_rabbit(max_attempts=3).publish(msg(1))
    other = make_rabbit(max_attempts=5)  # 406 PRECONDITION_FAILED on declare: falls back to passive
    other.publish(msg(2))
    assert other.message_counts() == (2, 0)


def test_publish_consume_roundtrip(make_rabbit, amqp_url, queue_names) -> None:
    q = make_rabbit()
    seen: list[JobMessage] = []
    for n in range(5):
        q.publish(msg(n))
    consumer = RunningConsumer(make_rabbit(), seen.append, concurrency=2)
    assert wait_until(lambda: len(seen) == 5)
    consumer.shutdown()
    assert sorted(m.job_id for m in seen) == [f"job{n}" for n in range(5)]
    assert seen[0] == JobMessage.from_json(seen[0].to_json())
    assert counts(amqp_url, queue_names) == (0, 0)  # all acked: nothing came back on close


def test_every_chunk_of_one_job_attempt_is_run(make_rabbit, amqp_url, queue_names) -> None:
    """A job's chunks share its id and attempt: each is a run of its own, not a repeat of the
    first one (a consumer acks a repeat of a run it has reported without running it)."""
    import dataclasses

    from coursecrafter_worker.messages import ChunkRef

    q = make_rabbit()
    seen: list[JobMessage] = []
    chunks = [dataclasses.replace(msg(1), chunk=ChunkRef("video", i, 1, 2, False, 60.0 * i,
                                                          "still")) for i in range(2)]
    chunks.append(dataclasses.replace(chunks[1], chunk=dataclasses.replace(chunks[1].chunk,
                                                                           attempt=2)))
    for message in (*chunks, chunks[0]):
        q.publish(message)
    consumer = RunningConsumer(make_rabbit(), seen.append, concurrency=1)
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 0))
    consumer.shutdown()
    # Chunk 0, chunk 1, chunk 1's second attempt; the repeat of chunk 0 is acked unrun.
    assert [(m.chunk.index, m.chunk.attempt) for m in seen] == [(0, 1), (1, 1), (1, 2)]


def test_handlers_run_concurrently_while_the_connection_stays_alive(make_rabbit) -> None:
    q = make_rabbit()
    barrier = threading.Barrier(3, timeout=10)
    seen: list[str] = []
    for n in range(3):
        q.publish(msg(n))
    consumer = RunningConsumer(make_rabbit(), lambda m: (barrier.wait(), seen.append(m.job_id)),
                               concurrency=3)
    assert wait_until(lambda: len(seen) == 3)
    consumer.shutdown()


def test_poison_message_goes_to_the_dead_letter_queue(make_rabbit, amqp_url, queue_names) -> None:
    q = make_rabbit()
    handled: list[JobMessage] = []
    q.publish_raw(b"this is not a job")
    consumer = RunningConsumer(make_rabbit(), handled.append)
    assert wait_until(lambda: counts(amqp_url, queue_names)[1] == 1)
    consumer.shutdown()
    assert handled == []
    dead = q.get_dead_letter()
    assert dead is not None and dead.message is None and dead.reason == "poison"
    assert dead.body == b"this is not a job"
    assert q.get_dead_letter() is None


def test_requeue_is_redelivered(make_rabbit, amqp_url, queue_names) -> None:
    calls = Counter()

    def handler(m: JobMessage) -> None:
        calls[m.job_id] += 1
        if calls[m.job_id] == 1:
            raise Requeue("not now")

    # Two deliveries at most: the lost one and the redelivery, which must not be nacked.
    make_rabbit(max_attempts=2).publish(msg(1))
    consumer = RunningConsumer(make_rabbit(max_attempts=2), handler, concurrency=2)
    assert wait_until(lambda: calls["job1"] == 2)
    time.sleep(0.2)
    consumer.shutdown()
    assert calls["job1"] == 2
    assert counts(amqp_url, queue_names) == (0, 0)


def test_delivery_limit_dead_letters_after_max_attempts(make_rabbit, amqp_url, queue_names) -> None:
    calls = Counter()

    def handler(m: JobMessage) -> None:
        calls[m.job_id] += 1
        raise Requeue("never works")

    q = make_rabbit(max_attempts=3)
    q.publish(msg(1))
    consumer = RunningConsumer(make_rabbit(max_attempts=3), handler)
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 1))
    time.sleep(0.2)
    consumer.shutdown()
    assert calls["job1"] == 3
    dead = q.get_dead_letter()
    assert dead is not None and dead.message is not None and dead.message.job_id == "job1"
    assert dead.reason == "delivery_limit"


def test_handler_crash_is_dead_lettered_at_once(make_rabbit, amqp_url, queue_names) -> None:
    calls = Counter()

    def handler(m: JobMessage) -> None:
        calls[m.job_id] += 1
        raise RuntimeError("bug")

    # Two deliveries at most: the lost one and the redelivery, which must not be nacked.
    make_rabbit(max_attempts=2).publish(msg(1))
    consumer = RunningConsumer(make_rabbit(max_attempts=2), handler, concurrency=2)
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 1))
    consumer.shutdown()
    assert calls["job1"] == 1
    assert make_rabbit().get_dead_letter().reason == "rejected"


def test_killed_workers_count_towards_the_delivery_limit(make_rabbit, amqp_url, queue_names) -> None:
    """A worker dying mid-job (its connection closes, nothing acked) three times: the broker
    dead-letters the message by itself."""
    make_rabbit(max_attempts=3).publish(msg(1))
    for delivery in range(3):
        connection, channel = raw_channel(amqp_url)
        method, props, _body = channel.basic_get(queue_names[0], auto_ack=False)
        assert method is not None, f"delivery {delivery + 1} missing"
        assert int((props.headers or {}).get("x-delivery-count", 0)) == delivery
        connection.close()  # killed before acking
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 1))


def test_stop_requeues_the_job_in_hand(make_rabbit, amqp_url, queue_names) -> None:
    """SIGTERM path: the handler sees the stop event (as the runner's cancel) and raises Requeue;
    one that ignores it past the grace period is requeued by closing the connection."""
    entered = threading.Event()
    stop = threading.Event()

    def cooperative(m: JobMessage) -> None:
        entered.set()
        stop.wait(10)
        raise Requeue("cancelled")

    make_rabbit().publish(msg(1))
    consumer = RunningConsumer(make_rabbit(), cooperative, stop=stop)
    assert entered.wait(5)
    consumer.shutdown()
    assert counts_become(amqp_url, queue_names, (1, 0))

    release = threading.Event()
    entered.clear()

    def stubborn(m: JobMessage) -> None:
        entered.set()
        release.wait(10)

    consumer = RunningConsumer(make_rabbit(shutdown_grace=0.3), stubborn)
    assert entered.wait(5)
    start = time.monotonic()
    consumer.shutdown()
    assert time.monotonic() - start < 5
    release.set()
    assert counts_become(amqp_url, queue_names, (1, 0))


def test_publish_raises_queue_unavailable_when_the_broker_is_unreachable() -> None:
    q = RabbitMQQueue("amqp://guest:secret-pw@127.0.0.1:1/%2F", publish_timeout=0.5)
    assert "secret-pw" not in repr(q) and "secret-pw" not in q.safe_url
    start = time.monotonic()
    with pytest.raises(QueueUnavailable) as info:
        q.publish(msg(1))
    assert time.monotonic() - start < 5
    assert "secret-pw" not in str(info.value)
    with pytest.raises(QueueUnavailable):
        q.ping()
    q.close()


def test_bad_credentials_stop_the_consumer(amqp_url, queue_names) -> None:
    bad = amqp_url.replace(":guest@", ":wrong-password@")
    q = RabbitMQQueue(bad, queue_name=queue_names[0], dead_letter_queue=queue_names[1])
    with pytest.raises(QueueError, match="credentials"):
        q.consume(lambda m: None, concurrency=1, stop=threading.Event())


def test_redact_url() -> None:
    assert redact_url("amqp://u:p@h:5672/v") == "amqp://u:***@h:5672/v"
    assert redact_url("amqp://h/v") == "amqp://h/v"


@pytest.mark.slow
def test_reconnects_after_close_all_connections_and_loses_nothing(
    make_rabbit, amqp_url, amqp_vhost, queue_names
) -> None:
    if amqp_vhost is None:
        pytest.skip("needs rabbitmqctl and a vhost of our own")
    handled = Counter()
    lock = threading.Lock()

    def handler(m: JobMessage) -> None:
        time.sleep(0.05)  # a job in hand when the connection goes
        with lock:
            handled[m.job_id] += 1

    publisher = make_rabbit()
    consumer = RunningConsumer(make_rabbit(), handler, concurrency=2)
    total = 60
    published: list[str] = []

    def publish_all() -> None:
        for n in range(total):
            publisher.publish(msg(n))
            published.append(f"job{n}")
            time.sleep(0.02)

    thread = threading.Thread(target=publish_all)
    thread.start()
    for _ in range(2):
        time.sleep(0.4)
        rabbitmqctl("close_all_connections", "--vhost", amqp_vhost, "test: broker hiccup")
    thread.join(30)
    assert len(published) == total  # every publish was confirmed, despite the closures
    assert wait_until(lambda: len(handled) == total, 30), sorted(
        set(published) - set(handled))
    # The acks lost with the closed connections come back as redeliveries, which this worker
    # acks without running them again: wait until the broker holds none before stopping (a
    # copy arriving during the stop would be put back, correctly, and stay in the queue).
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 0), 10)
    consumer.shutdown()
    # Nothing lost, nothing transcoded twice, nothing left behind.
    assert set(handled) == set(published)
    assert max(handled.values()) == 1, {k: v for k, v in handled.items() if v > 1}
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 0), 10)


@pytest.mark.slow
@pytest.mark.parametrize("winds_down", [0.0, 1.5])
def test_a_lost_connection_cancels_the_job_in_hand_and_its_redelivery_runs_it(
    make_rabbit, amqp_url, amqp_vhost, queue_names, winds_down
) -> None:
    """The broker hands a lost connection's unacked job to whoever consumes next (another
    worker on another host, say): the handler here must stop (its `cancel` is set). The job comes
    back to this consumer, the only one: it runs it once more, to the end. With `winds_down` the
    dropped run takes its time to stop, so the redelivery arrives while it is still going: the
    new delivery waits for it, then runs the job itself (a nack would use up a delivery)."""
    if amqp_vhost is None:
        pytest.skip("needs rabbitmqctl and a vhost of our own")
    calls: list[str] = []
    started = threading.Event()

    def handler(m: JobMessage, *, cancel: threading.Event) -> None:
        if not calls:
            calls.append("first")
            started.set()
            assert cancel.wait(30), "the lost connection did not cancel the job in hand"
            time.sleep(winds_down)
            calls.append("cancelled")
            raise Requeue("cancelled")
        calls.append("ran")

    # Two deliveries at most: the lost one and the redelivery, which must not be nacked.
    make_rabbit(max_attempts=2).publish(msg(1))
    consumer = RunningConsumer(make_rabbit(max_attempts=2), handler, concurrency=2)
    assert started.wait(30)
    rabbitmqctl("close_all_connections", "--vhost", amqp_vhost, "test: connection lost")
    assert wait_until(lambda: "ran" in calls, 30), calls
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 0), 10)  # acked, not dead
    consumer.shutdown()
    assert calls == ["first", "cancelled", "ran"]
