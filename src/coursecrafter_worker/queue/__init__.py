"""Job queues: the `JobQueue` port and its in-process and RabbitMQ adapters.

Importing this package does not import pika; `open_queue` picks the adapter by URL.
"""

from __future__ import annotations

from .base import DeadLetter, Handler, JobQueue, QueueError, QueueUnavailable, Requeue

__all__ = [
    "DeadLetter",
    "Handler",
    "JobQueue",
    "QueueError",
    "QueueUnavailable",
    "Requeue",
    "open_queue",
]


def open_queue(broker_url: str | None, *, max_attempts: int = 3) -> JobQueue:
    """`amqp://…`/`amqps://…` → `RabbitMQQueue`; empty/None → `InProcessQueue`."""
    if not broker_url:
        from .inprocess import InProcessQueue

        return InProcessQueue(max_attempts=max_attempts)
    if broker_url.startswith(("amqp://", "amqps://")):
        from .rabbitmq import RabbitMQQueue

        return RabbitMQQueue(broker_url, max_attempts=max_attempts)
    raise ValueError(f"unsupported broker URL scheme (use amqp:// or amqps://): {broker_url.split(':', 1)[0]}")
