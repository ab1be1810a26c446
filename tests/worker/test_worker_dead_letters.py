"""Dead letters on the real RabbitMQ: acked only once the server has settled the job's video."""

from __future__ import annotations

import pytest
from test_worker_rabbitmq import counts, msg
from worker_fakes import RunningConsumer, wait_until

pytestmark = pytest.mark.rabbitmq


def _crash(message) -> None:
    raise RuntimeError("transcoder bug")  # dead-lettered at once as "rejected"


def test_a_dead_letter_is_kept_when_settling_it_fails(make_rabbit, amqp_url, queue_names) -> None:
    q = make_rabbit()
    message = msg(1)
    q.publish(message)
    consumer = RunningConsumer(make_rabbit(), _crash)
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 1))
    consumer.shutdown()

    def store_away(letter) -> None:
        raise OSError("store unreachable")

    with pytest.raises(OSError):
        q.settle_dead_letter(store_away)
    assert wait_until(lambda: counts(amqp_url, queue_names) == (0, 1))  # back, not lost

    settled = []
    assert q.settle_dead_letter(settled.append) is True
    (letter,) = settled
    assert letter.message == message and letter.reason == "rejected"
    assert counts(amqp_url, queue_names) == (0, 0)
    assert q.settle_dead_letter(settled.append) is False and len(settled) == 1
