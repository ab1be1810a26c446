"""The embedded queue: a `queue.Queue` in memory and worker threads in the same process.

Nothing survives the process: the store is the source of truth (the outbox), and the server
re-publishes every open job when it starts. Same delivery contract as RabbitMQ (see `base`):
`Requeue` puts the message back (without counting the delivery when the consumer is stopping),
a message delivered `max_attempts` times without being acked or one the handler crashed on is
dead-lettered into `.dead_letters` (logged, counted).
"""

from __future__ import annotations

import logging
import queue as stdlib_queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from coursecrafter_worker.messages import JobMessage, MessageError

from .base import DeadLetter, Handler, QueueUnavailable, Requeue

log = logging.getLogger(__name__)

_POLL = 0.05  # how often idle worker threads look at the stop event (s)


@dataclass
class _Item:
    body: bytes
    deliveries: int = 0


class InProcessQueue:
    def __init__(self, *, max_attempts: int = 3, maxsize: int = 0) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.max_attempts = max_attempts
        self._queue: stdlib_queue.Queue[_Item] = stdlib_queue.Queue(maxsize)
        self._cond = threading.Condition()
        self._pending = 0  # published and not yet acked or dead-lettered
        self._closed = False
        self.dead_letters: list[DeadLetter] = []  # every dead letter, for inspection
        self._dead_taken = 0  # how many of them have been settled
        self._dead_lock = threading.Lock()
        self.acked = 0
        self.delivered = 0
        self._background: list[tuple[threading.Thread, threading.Event]] = []

    def __repr__(self) -> str:
        return f"InProcessQueue(pending={self._pending}, dead={len(self.dead_letters)})"

    # Publishing --------------------------------------------------------------------------------
    def publish(self, message: JobMessage) -> None:
        self.publish_raw(message.to_json())

    def publish_raw(self, body: bytes) -> None:
        """Put any bytes on the queue (what a broker would accept); bad ones are dead-lettered."""
        with self._cond:
            if self._closed:
                raise QueueUnavailable("the in-process queue is closed")
            self._pending += 1
        self._queue.put(_Item(bytes(body)))

    # Consuming ---------------------------------------------------------------------------------
    def consume(self, handler: Handler, *, concurrency: int, stop: threading.Event) -> None:
        """Run `concurrency` worker threads until `stop` is set; each finishes the message in hand
        (its handler sees whatever cancel signal the caller wired to `stop`), then they exit.
        Messages still queued stay queued."""
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        threads = [
            threading.Thread(
                target=self._work, args=(handler, stop), name=f"coursecrafter-transcoder-{i}",
                daemon=True,
            )
            for i in range(concurrency)
        ]
        for thread in threads:
            thread.start()
        stop.wait()
        for thread in threads:
            thread.join()

    def start(self, handler: Handler, concurrency: int = 1) -> threading.Event:
        """`consume` in a background thread; returns its stop event (`close()` sets it too)."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.consume, args=(handler,), kwargs={"concurrency": concurrency, "stop": stop},
            name="coursecrafter-inprocess-queue", daemon=True,
        )
        self._background.append((thread, stop))
        thread.start()
        return stop

    def _work(self, handler: Handler, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL)
            except stdlib_queue.Empty:
                continue
            try:
                self._deliver(item, handler, stop)
            except Exception:  # never let a bookkeeping bug kill the worker thread
                log.exception("in-process queue: unexpected error delivering a message")
            finally:
                self._queue.task_done()

    def _deliver(self, item: _Item, handler: Handler, stop: threading.Event) -> None:
        item.deliveries += 1
        with self._cond:
            self.delivered += 1
        try:
            message = JobMessage.from_json(item.body)
        except MessageError as exc:
            log.error("dead-lettering a poison message (%s): %r", exc, item.body[:200])
            self._dead(item, None, "poison")
            return
        try:
            handler(message)
        except Requeue:
            if stop.is_set():
                # Put back because the consumer is stopping (its handler saw the stop as its
                # cancel): not the job's fault, so this delivery does not count.
                item.deliveries -= 1
                log.info("job %s attempt %d put back on the queue (stopping)", message.job_id,
                         message.attempt)
                self._queue.put(item)
            elif item.deliveries >= self.max_attempts:
                log.error(
                    "job %s attempt %d was delivered %d times without an outcome: dead-lettered",
                    message.job_id, message.attempt, item.deliveries,
                )
                self._dead(item, message, "delivery_limit")
            else:
                log.info("job %s attempt %d put back on the queue", message.job_id, message.attempt)
                self._queue.put(item)
            return
        except Exception:
            log.exception("handler crashed on job %s attempt %d: dead-lettered",
                          message.job_id, message.attempt)
            self._dead(item, message, "rejected")
            return
        with self._cond:
            self.acked += 1
            self._settled()

    def _dead(self, item: _Item, message: JobMessage | None, reason: str) -> None:
        with self._cond:
            self.dead_letters.append(DeadLetter(item.body, message, reason, item.deliveries))
            self._settled()

    def _settled(self) -> None:  # holding self._cond
        self._pending -= 1
        self._cond.notify_all()

    def get_dead_letter(self) -> DeadLetter | None:
        """The next dead letter not yet handed out (the caller owns it now), or None."""
        taken: list[DeadLetter] = []
        self.settle_dead_letter(taken.append)
        return taken[0] if taken else None

    def settle_dead_letter(self, settle: Callable[[DeadLetter], object]) -> bool:
        """Hand the next dead letter to `settle`; it counts as taken only once `settle` returned
        (if it raises, the next call offers it again). False when there is none."""
        with self._dead_lock:  # one settler at a time, so a letter is never offered twice at once
            with self._cond:
                if self._dead_taken >= len(self.dead_letters):
                    return False
                letter = self.dead_letters[self._dead_taken]
            settle(letter)
            with self._cond:
                self._dead_taken += 1
        return True

    # Introspection and lifecycle ---------------------------------------------------------------
    def message_counts(self) -> tuple[int, int]:
        """(messages waiting, dead letters not yet settled), as RabbitMQQueue.message_counts."""
        with self._cond:
            return self._queue.qsize(), len(self.dead_letters) - self._dead_taken

    def qsize(self) -> int:
        """Messages waiting (not counting those in hand)."""
        return self._queue.qsize()

    @property
    def pending(self) -> int:
        """Published messages not yet acked or dead-lettered (waiting or in hand)."""
        with self._cond:
            return self._pending

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every published message is acked or dead-lettered; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def ping(self) -> None:
        if self._closed:
            raise QueueUnavailable("the in-process queue is closed")

    def close(self, timeout: float | None = 30.0) -> None:
        """Refuse new messages, stop the consumers started by `start()` (each finishes its message
        in hand) and wait up to `timeout` for them."""
        with self._cond:
            self._closed = True
        for _thread, stop in self._background:
            stop.set()
        for thread, _stop in self._background:
            thread.join(timeout)
        self._background.clear()
