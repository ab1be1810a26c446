"""Both queue adapters implement the whole port (callers no longer probe with getattr)."""

from __future__ import annotations

import inspect

import pytest

from coursecrafter_worker.queue.base import JobQueue
from coursecrafter_worker.queue.inprocess import InProcessQueue
from coursecrafter_worker.queue.rabbitmq import RabbitMQQueue

PORT_METHODS = sorted(
    name for name, _ in inspect.getmembers(JobQueue, inspect.isfunction) if not name.startswith("_")
)


def test_the_port_names_what_the_server_calls() -> None:
    assert {"publish", "consume", "close", "ping", "message_counts",
            "settle_dead_letter"} <= set(PORT_METHODS)


@pytest.mark.parametrize("adapter", [InProcessQueue, RabbitMQQueue])
def test_adapter_has_every_port_method(adapter: type) -> None:
    missing = [name for name in PORT_METHODS if not callable(getattr(adapter, name, None))]
    assert missing == []


def test_in_process_queue_counts_and_settles() -> None:
    queue = InProcessQueue(max_attempts=1)
    assert isinstance(queue, JobQueue)
    assert queue.message_counts() == (0, 0)
    assert queue.settle_dead_letter(lambda letter: None) is False
    queue.close()
