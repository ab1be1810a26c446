"""Administering the queues from the server's side: depths for `/metrics`, and the dead letters
the sweeper settles (the job's video fails with a reason). Uses the publisher's connection."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pika

from coursecrafter_worker.messages import JobMessage, MessageError

from ..base import DeadLetter, QueueUnavailable
from .broker import TRANSIENT
from .publisher import Publisher


class DeadLetterAdmin:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.broker = publisher.broker

    def message_counts(self) -> tuple[int, int]:
        """(ready messages in the job queue, messages in the dead-letter queue)."""
        with self.publisher.channel("cannot read queue depths") as channel:
            jobs = channel.queue_declare(self.broker.queue_name, passive=True).method.message_count
            dead = channel.queue_declare(self.broker.dead_letter_queue,
                                         passive=True).method.message_count
            return jobs, dead

    def get_dead_letter(self) -> DeadLetter | None:
        """Take one message off the dead-letter queue (acked: the caller owns it now), or None."""
        taken: list[DeadLetter] = []
        self.settle_dead_letter(taken.append)
        return taken[0] if taken else None

    def settle_dead_letter(self, settle: Callable[[DeadLetter], object]) -> bool:
        """Hand the next dead letter to `settle` and ack it only once `settle` returned; if it
        raises, the letter goes back for the next sweep. False when the queue is empty."""
        # Not `publisher.channel()`: an error raised by `settle` must reach the caller as it is.
        with self.publisher.lock:
            channel = self.publisher.open_channel()
            try:
                method, properties, body = channel.basic_get(self.broker.dead_letter_queue,
                                                             auto_ack=False)
            except TRANSIENT as exc:
                self.publisher.drop()
                raise QueueUnavailable(f"cannot read the dead-letter queue: {exc!r}") from exc
            if method is None:
                return False
            try:
                settle(parse_dead_letter(properties, body))
            except BaseException:
                with contextlib.suppress(*TRANSIENT):
                    channel.basic_nack(method.delivery_tag, requeue=True)
                raise
            try:
                channel.basic_ack(method.delivery_tag)
            except TRANSIENT as exc:  # unacked, so redelivered; settling again is a no-op
                self.publisher.drop()
                raise QueueUnavailable(f"cannot ack a dead letter: {exc!r}") from exc
        return True


def parse_dead_letter(properties: pika.BasicProperties | None, body: bytes) -> DeadLetter:
    headers = (properties.headers or {}) if properties else {}
    deaths = headers.get("x-death") or [{}]
    reason = headers.get("x-first-death-reason") or deaths[0].get("reason") or "unknown"
    if isinstance(reason, bytes):
        reason = reason.decode(errors="replace")
    try:
        message: JobMessage | None = JobMessage.from_json(body)
    except MessageError:
        message, reason = None, "poison"
    deliveries = int(headers.get("x-delivery-count") or 0)
    return DeadLetter(body, message, str(reason), deliveries)
