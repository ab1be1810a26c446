"""The queue port: how jobs travel from the server (publisher) to transcoders (consumers).

Two adapters implement it (DESIGN.md "Two ways to run"):

- `inprocess.InProcessQueue`: the embedded default, a `queue.Queue` and worker threads inside the
  server process;
- `rabbitmq.RabbitMQQueue`: RabbitMQ via pika, for any number of `coursecrafter-worker` processes.

Delivery contract of `consume`, the same for both:

- the handler *returning* means "the outcome was reported": the message is acknowledged;
- the handler raising `Requeue` means "not done, put it back" (redelivered later); it counts as
  a delivery, except while the consumer is stopping (its `stop` event set: a graceful worker
  stop, whose handlers see the stop as their cancel), when the message is put back as a fresh
  copy so that rolling restarts never use up a job's deliveries;
- any other exception is logged and the message is rejected without requeue (dead-lettered);
- a message that does not parse (`MessageError`) never reaches the handler: it is dead-lettered;
- a message delivered `max_attempts` times without being acknowledged is dead-lettered.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from coursecrafter_worker.messages import JobMessage

Handler = Callable[[JobMessage], None]
"""Called once per delivery. A handler that also takes a keyword `cancel` (a `threading.Event`)
gets one per job from the RabbitMQ consumer, set when that job is no longer the consumer's to
finish (its connection was lost, so the broker delivers it again, maybe to another worker; or the
consumer stops); one without it should watch the `stop` event it was wired to."""


def takes_cancel(handler: Callable[..., object]) -> bool:
    """Whether `handler` accepts a `cancel` keyword (see `Handler`)."""
    try:
        params = inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False
    return "cancel" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class QueueError(Exception):
    """Any queue failure."""


class QueueUnavailable(QueueError):
    """The broker could not be reached, or did not confirm a published message in time."""


class Requeue(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a handler: the job was not finished (cancelled, outcome not reported); put the
    message back so it is delivered again. It counts towards the delivery limit unless the
    consumer is stopping (see the module docstring)."""


@dataclass(frozen=True)
class DeadLetter:
    """A message that ended in the dead-letter queue."""

    body: bytes
    message: JobMessage | None  # None when the body does not parse (a poison message)
    reason: str  # "poison", "rejected", "delivery_limit", "expired", ...
    deliveries: int  # how many times it had been delivered, when known (0 if unknown)


@runtime_checkable
class JobQueue(Protocol):
    def publish(self, message: JobMessage) -> None:
        """Return once the queue holds the message durably (broker confirm); raise
        `QueueUnavailable` otherwise."""

    def consume(self, handler: Handler, *, concurrency: int, stop: threading.Event) -> None:
        """Run `handler` on up to `concurrency` messages at once until `stop` is set, then
        return (messages in hand are put back without using up a delivery when their handler
        raises `Requeue`; those whose handler does not finish in time are put back by the broker,
        and that counts)."""

    def close(self) -> None:
        """Release connections and threads. Idempotent."""

    def ping(self) -> None:
        """Raise `QueueUnavailable` if the queue cannot be used (readiness checks)."""

    def message_counts(self) -> tuple[int, int]:
        """(messages waiting in the job queue, dead letters not yet settled), for `/metrics`;
        raise `QueueUnavailable` when they cannot be read."""

    def settle_dead_letter(self, settle: Callable[[DeadLetter], object]) -> bool:
        """Hand the next dead letter to `settle` (the server's sweeper fails the job's video) and
        count it as taken only once `settle` returned: if it raises, the letter is offered again
        later. False when there is none; `QueueUnavailable` when the queue cannot be read."""
