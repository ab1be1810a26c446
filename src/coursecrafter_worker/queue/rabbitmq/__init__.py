"""The scale-out queue: RabbitMQ through pika, split as dramatiq splits broker and worker:

- `broker.py`: where the broker is, connections, the queue topology (a durable quorum queue whose
  `x-delivery-limit` bounds the deliveries of one job, and its dead-letter queue);
- `publisher.py`: confirmed, persistent publishing on one shared connection;
- `consumer.py`: consuming with a thread pool, acks after the outcome, graceful stops that do
  not use up a delivery, reconnects;
- `dead_letters.py`: queue depths and settling dead letters, for the server's sweeper.

`RabbitMQQueue` puts them together behind the queue port (`coursecrafter_worker.queue.base`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pika

from coursecrafter_worker.messages import DEAD_LETTER_QUEUE, QUEUE_NAME, JobMessage

from ..base import DeadLetter, Handler, QueueError, QueueUnavailable, Requeue
from .broker import Broker, redact_url
from .consumer import REMEMBERED_OUTCOMES, RETURNS_HEADER, Consumer
from .dead_letters import DeadLetterAdmin
from .publisher import Publisher


class RabbitMQQueue:
    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 3,
        queue_name: str = QUEUE_NAME,
        dead_letter_queue: str = DEAD_LETTER_QUEUE,
        heartbeat: int = 30,
        publish_timeout: float = 15.0,
        shutdown_grace: float = 10.0,
        reconnect_max_delay: float = 15.0,
        connection_name: str | None = None,
    ) -> None:
        self.broker = Broker(
            url, max_attempts=max_attempts, queue_name=queue_name,
            dead_letter_queue=dead_letter_queue, heartbeat=heartbeat,
            publish_timeout=publish_timeout, connection_name=connection_name,
        )
        self.publisher = Publisher(self.broker, publish_timeout=publish_timeout)
        self.consumer = Consumer(self.broker, self.publisher, shutdown_grace=shutdown_grace,
                                 reconnect_max_delay=reconnect_max_delay)
        self.dead_letters = DeadLetterAdmin(self.publisher)

    @property
    def queue_name(self) -> str:
        return self.broker.queue_name

    @property
    def dead_letter_queue(self) -> str:
        return self.broker.dead_letter_queue

    @property
    def safe_url(self) -> str:
        return self.broker.safe_url

    def __repr__(self) -> str:
        return f"RabbitMQQueue({self.safe_url!r}, queue={self.queue_name!r})"

    def publish(self, message: JobMessage) -> None:
        self.publisher.publish(message)

    def publish_raw(self, body: bytes, properties: pika.BasicProperties | None = None) -> None:
        """Publish arbitrary bytes (tests, tools); one try, confirmed."""
        self.publisher.publish_raw(body, properties)

    def consume(self, handler: Handler, *, concurrency: int, stop: threading.Event) -> None:
        self.consumer.consume(handler, concurrency=concurrency, stop=stop)

    def ping(self) -> None:
        self.publisher.ping()

    def message_counts(self) -> tuple[int, int]:
        return self.dead_letters.message_counts()

    def get_dead_letter(self) -> DeadLetter | None:
        return self.dead_letters.get_dead_letter()

    def settle_dead_letter(self, settle: Callable[[DeadLetter], object]) -> bool:
        return self.dead_letters.settle_dead_letter(settle)

    def close(self) -> None:
        self.broker.closed.set()
        self.publisher.close()


__all__ = ["RabbitMQQueue", "QueueError", "QueueUnavailable", "Requeue", "redact_url",
           "RETURNS_HEADER", "REMEMBERED_OUTCOMES"]
