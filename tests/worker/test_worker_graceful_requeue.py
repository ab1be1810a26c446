"""A graceful worker stop (SIGTERM: the consumer's stop event, which the runner sees as its
cancel) puts the job in hand back without using up one of its deliveries, on both queues: rolling
restarts during a long lecture must never dead-letter it."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pika
import pytest
from test_worker_rabbitmq import counts, counts_become
from worker_fakes import RunningConsumer, wait_until

from coursecrafter_worker.messages import JobMessage
from coursecrafter_worker.queue import QueueUnavailable, Requeue
from coursecrafter_worker.queue.inprocess import InProcessQueue
from coursecrafter_worker.queue.rabbitmq import RETURNS_HEADER

GRACEFUL_STOPS = 4  # more than max_attempts below


def msg(n: int) -> JobMessage:
    return JobMessage(
        job_id=f"job{n}", video_id=f"v{n}", attempt=1, source_key=f"uploads/v{n}/source",
        output_prefix=f"videos/v{n}/", callback_url="http://127.0.0.1:9/cb",
        created_at=datetime.now(timezone.utc).isoformat(),
    )


def stop_with_job_in_hand(queue, calls: list[str]) -> None:
    """One worker life: take the job, get SIGTERMed mid-job, put it back like the runner does."""
    entered = threading.Event()
    stop = threading.Event()

    def handler(m: JobMessage) -> None:
        calls.append(m.job_id)
        entered.set()
        stop.wait(10)  # "transcoding" until the worker is told to stop
        raise Requeue("cancelled")

    consumer = RunningConsumer(queue, handler, stop=stop)
    assert entered.wait(10), "the job was not delivered"
    consumer.shutdown()


def peek(amqp_url: str, queue_name: str, n: int = 1) -> list[tuple[pika.BasicProperties, bytes]]:
    """Look at the `n` waiting messages and leave them there (closing unacked returns them: that
    counts one delivery each)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        found = []
        for _ in range(n):
            method, properties, body = channel.basic_get(queue_name, auto_ack=False)
            assert method is not None, "no message waiting"
            found.append((properties, body))
        return found
    finally:
        connection.close()


def deliveries_used(properties: pika.BasicProperties) -> int:
    return int((properties.headers or {}).get("x-delivery-count") or 0)


# RabbitMQ --------------------------------------------------------------------------------------
@pytest.mark.rabbitmq
def test_rabbitmq_graceful_stops_do_not_use_up_deliveries(make_rabbit, amqp_url, queue_names) -> None:
    message = msg(1)
    make_rabbit(max_attempts=2).publish(message)
    calls: list[str] = []
    for _ in range(GRACEFUL_STOPS):
        stop_with_job_in_hand(make_rabbit(max_attempts=2), calls)
        assert counts_become(amqp_url, queue_names, (1, 0))  # back, and not dead-lettered
    assert calls == ["job1"] * GRACEFUL_STOPS

    [(properties, body)] = peek(amqp_url, queue_names[0])
    assert JobMessage.from_json(body) == message
    assert deliveries_used(properties) == 0
    assert properties.headers[RETURNS_HEADER] == GRACEFUL_STOPS
    assert properties.delivery_mode == 2
    assert properties.message_id == "job1.1"

    # The peek used up the one spare delivery (max_attempts 2): the job still runs to the end.
    handled: list[JobMessage] = []
    consumer = RunningConsumer(make_rabbit(max_attempts=2), handled.append)
    assert wait_until(lambda: handled == [message])
    consumer.shutdown()
    assert counts(amqp_url, queue_names) == (0, 0)


@pytest.mark.rabbitmq
def test_rabbitmq_graceful_stop_falls_back_to_nack_when_the_copy_cannot_be_published(
    make_rabbit, amqp_url, queue_names, monkeypatch
) -> None:
    make_rabbit().publish(msg(1))
    consumer_queue = make_rabbit()

    def broker_refuses() -> None:
        raise QueueUnavailable("test: no publisher connection")

    monkeypatch.setattr(consumer_queue.publisher, "open_channel", broker_refuses)
    stop_with_job_in_hand(consumer_queue, [])
    assert counts_become(amqp_url, queue_names, (1, 0))  # not lost
    [(properties, _body)] = peek(amqp_url, queue_names[0])
    assert deliveries_used(properties) == 1  # nacked: counted
    assert RETURNS_HEADER not in (properties.headers or {})


@pytest.mark.rabbitmq
def test_rabbitmq_message_arriving_while_stopping_goes_back_free(
    make_rabbit, amqp_url, queue_names
) -> None:
    """A message delivered after the stop but before the consumer is cancelled is not started,
    and goes back as a fresh copy too, like the job in hand."""
    publisher = make_rabbit()
    publisher.publish(msg(1))
    entered, stop = threading.Event(), threading.Event()
    seen: list[str] = []

    def handler(m: JobMessage) -> None:
        seen.append(m.job_id)
        entered.set()
        stop.wait(10)
        time.sleep(0.3)  # still busy when the next message arrives
        raise Requeue("cancelled")

    consumer = RunningConsumer(make_rabbit(), handler, stop=stop, concurrency=2)
    assert entered.wait(10)
    stop.set()
    publisher.publish(msg(2))  # room for it in the prefetch window: it arrives while stopping
    consumer.shutdown()
    assert seen == ["job1"]
    assert counts_become(amqp_url, queue_names, (2, 0))
    waiting = peek(amqp_url, queue_names[0], 2)
    assert sorted(JobMessage.from_json(body).job_id for _, body in waiting) == ["job1", "job2"]
    assert [deliveries_used(properties) for properties, _ in waiting] == [0, 0]


@pytest.mark.rabbitmq
def test_rabbitmq_requeue_while_running_still_counts(make_rabbit, amqp_url, queue_names) -> None:
    """Only a stop is free: a handler giving a job back on its own (outcome not reported) still
    uses up deliveries, so such a job ends in the dead-letter queue."""

    def handler(m: JobMessage) -> None:
        raise Requeue("outcome not reported")

    make_rabbit(max_attempts=2).publish(msg(1))
    consumer = RunningConsumer(make_rabbit(max_attempts=2), handler)
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 1))
    consumer.shutdown()


# In-process ------------------------------------------------------------------------------------
def test_inprocess_graceful_stops_do_not_use_up_deliveries() -> None:
    q = InProcessQueue(max_attempts=1)
    message = msg(1)
    q.publish(message)
    calls: list[str] = []
    for _ in range(GRACEFUL_STOPS):
        stop_with_job_in_hand(q, calls)
        assert q.dead_letters == [] and q.qsize() == 1 and q.pending == 1
    assert calls == ["job1"] * GRACEFUL_STOPS

    handled: list[JobMessage] = []
    consumer = RunningConsumer(q, handled.append)
    assert q.join(timeout=5)
    consumer.shutdown()
    assert handled == [message] and q.acked == 1 and q.dead_letters == []


def test_inprocess_requeue_while_running_still_counts() -> None:
    q = InProcessQueue(max_attempts=2)
    q.publish(msg(1))
    consumer = RunningConsumer(q, lambda m: (_ for _ in ()).throw(Requeue("not reported")))
    assert q.join(timeout=5)
    consumer.shutdown()
    assert [(d.reason, d.deliveries) for d in q.dead_letters] == [("delivery_limit", 2)]
