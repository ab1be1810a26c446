"""Consuming jobs: each `consume` call owns its connection and runs handlers on a pool of
`concurrency` threads, so the I/O loop keeps answering heartbeats while FFmpeg runs; acks go back
to the consuming thread through `add_callback_threadsafe` (pika is not thread-safe). It
reconnects with backoff when the broker goes away (restart, `close_all_connections`).

A worker that stops gracefully (SIGTERM) did nothing wrong, so the job in hand must not use up a
delivery (three rolling restarts during a long lecture would dead-letter it): it publishes a
fresh copy of the message (same body and properties, persistent, confirmed) and only then acks
the original. The copy starts with a delivery count of 0 and goes to the back of the queue;
should the publish fail, the original is nacked with requeue (it counts, but is not lost). A
poison message (one that does not parse) is nacked without requeue: straight to the dead letters.

A lost connection (the broker restarted, or this host's network went away long enough for the
broker to miss its heartbeats) hands every unacked message back to the broker, which may give it
to another worker at once. The jobs in hand are then no longer this worker's to finish: a handler
that takes a `cancel` keyword gets an event of its own per job, set when the job's connection is
lost (and when the consumer stops), so it stops before it writes outputs another worker is
writing too. Should the broker give the job back to this same worker while the dropped run is
still winding down, the new delivery waits for it and then runs the job itself.
"""

from __future__ import annotations

import collections
import functools
import queue as stdlib_queue
import random
import threading
import time
from collections.abc import Callable

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from coursecrafter_worker.messages import JobMessage, MessageError

from ..base import Handler, QueueError, Requeue, takes_cancel
from .broker import TRANSIENT, Broker, close_quietly, is_fatal, log
from .publisher import Publisher

#: How many (job_id, attempt) outcomes one consumer remembers, to ack redeliveries of a job it has
#: already reported (the ack was lost with the connection) without running it again.
REMEMBERED_OUTCOMES = 4096
#: Header of a copy published by a stopping worker: how many times the job went back that way
#: (for the logs; the broker's x-delivery-count restarts at 0 with every copy).
RETURNS_HEADER = "coursecrafter-returns"


class _Session:
    """One consumer connection and channel. Touched only by the consuming thread, except
    `connection.add_callback_threadsafe`."""

    def __init__(
        self, connection: BlockingConnection, channel: BlockingChannel, stop: threading.Event
    ) -> None:
        self.connection = connection
        self.channel = channel
        self.stop = stop
        self.inflight = 0
        self.consumer_tag: str | None = None
        self.cancelled = False
        # One per job in hand (any thread adds and removes; the lock guards the set).
        self._job_cancels: set[threading.Event] = set()
        self._lock = threading.Lock()

    def job_cancel(self) -> threading.Event:
        """A cancel event for one job of this session, set by `cancel_jobs`."""
        event = threading.Event()
        with self._lock:
            self._job_cancels.add(event)
            if self.stop.is_set():
                event.set()
        return event

    def job_done(self, event: threading.Event) -> None:
        with self._lock:
            self._job_cancels.discard(event)

    def cancel_jobs(self) -> int:
        """Cancel every job in hand (its delivery is lost, or we stop); return how many."""
        with self._lock:
            events = list(self._job_cancels)
        for event in events:
            event.set()
        return len(events)

    def cancel_consumer(self) -> None:
        """No more deliveries. Done before anything is requeued at shutdown: a message nacked
        while we still consume would come straight back to us and cost another delivery."""
        if self.cancelled or self.consumer_tag is None:
            return
        self.cancelled = True
        if self.channel.is_open:
            self.channel.basic_cancel(self.consumer_tag)


class _Pool:
    """Daemon worker threads (a stuck FFmpeg must never keep the process from exiting, which a
    `ThreadPoolExecutor`'s non-daemon threads would)."""

    def __init__(self, size: int, name: str) -> None:
        self._tasks: stdlib_queue.SimpleQueue[Callable[[], None] | None] = stdlib_queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, task: Callable[[], None]) -> None:
        self._tasks.put(task)

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                task()
            except Exception:  # tasks handle their own errors; this is a last resort
                log.exception("unexpected error in a queue worker thread")

    def shutdown(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)


class _Delivery:
    """What settling a message needs: its tag, and (to publish a copy) its properties and body."""

    __slots__ = ("tag", "properties", "body")

    def __init__(self, tag: int, properties: pika.BasicProperties, body: bytes) -> None:
        self.tag, self.properties, self.body = tag, properties, body


class Consumer:
    def __init__(
        self, broker: Broker, publisher: Publisher, *, shutdown_grace: float,
        reconnect_max_delay: float,
    ) -> None:
        self.broker = broker
        self.publisher = publisher  # for the fresh copies of a stopping worker
        self.shutdown_grace = shutdown_grace
        self.reconnect_max_delay = reconnect_max_delay
        # Bookkeeping shared by all consume() calls of this object.
        self._state_lock = threading.Lock()
        self._running: dict[tuple[object, ...], threading.Event] = {}
        self._reported: collections.OrderedDict[tuple[object, ...], None] = \
            collections.OrderedDict()

    def consume(self, handler: Handler, *, concurrency: int, stop: threading.Event) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        broker = self.broker
        pool = _Pool(concurrency, "coursecrafter-job")
        delay = 0.5
        try:
            while not stop.is_set() and not broker.closed.is_set():
                connection: BlockingConnection | None = None
                session: _Session | None = None
                try:
                    connection = broker.connect()
                    channel = broker.declare(connection)
                    channel.basic_qos(prefetch_count=concurrency)
                    session = _Session(connection, channel, stop)
                    session.consumer_tag = channel.basic_consume(
                        broker.queue_name,
                        functools.partial(self._on_message, session, handler, pool),
                    )
                    log.info(
                        "consuming %s on %s (concurrency %d, at most %d deliveries per job)",
                        broker.queue_name, broker.safe_url, concurrency, broker.max_attempts,
                    )
                    delay = 0.5
                    while not stop.is_set() and not broker.closed.is_set():
                        connection.process_data_events(time_limit=0.25)
                    self._drain(session)
                    connection = None
                    return
                except TRANSIENT as exc:
                    dropped = session.cancel_jobs() if session is not None else 0
                    if stop.is_set():
                        return
                    if is_fatal(exc):
                        raise QueueError(
                            f"RabbitMQ at {broker.safe_url} refused the credentials or vhost: "
                            f"{exc.__cause__ or exc!r}"
                        ) from exc
                    pause = delay * (0.5 + random.random())
                    log.warning(
                        "RabbitMQ connection lost (%r); jobs in hand will be delivered again%s; "
                        "reconnecting in %.1fs", exc,
                        f" ({dropped} dropped here)" if dropped else "", pause,
                    )
                    stop.wait(pause)
                    delay = min(delay * 2, self.reconnect_max_delay)
                finally:
                    if connection is not None:
                        close_quietly(connection)
        finally:
            pool.shutdown()

    def _on_message(
        self,
        session: _Session,
        handler: Handler,
        pool: _Pool,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        headers = properties.headers or {}
        returned = int(headers.get("x-delivery-count") or 0)
        if session.stop.is_set():  # arrived while stopping: not ours to start
            session.cancel_consumer()  # or the copy could come straight back to us
            self._return_gracefully(channel, method.delivery_tag, properties, body,
                                    f"unstarted message {properties.message_id or '?'}")
            return
        try:
            message = JobMessage.from_json(body)
        except MessageError as exc:
            log.error("poison message dead-lettered (%s): %r", exc, body[:200])
            channel.basic_nack(method.delivery_tag, requeue=False)
            return
        returns = int(headers.get(RETURNS_HEADER) or 0)
        log.info(
            "job %s attempt %d for video %s: delivery %d of at most %d%s",
            message.job_id, message.attempt, message.video_id, returned + 1,
            self.broker.max_attempts,
            f" (put back by {returns} stopping worker(s) before)" if returns else "",
        )
        session.inflight += 1
        delivery = _Delivery(method.delivery_tag, properties, body)
        pool.submit(functools.partial(self._handle, session, delivery, message, handler))

    def _handle(
        self, session: _Session, delivery: _Delivery, message: JobMessage, handler: Handler
    ) -> None:
        """In a pool thread: run the handler (once per job and attempt at a time), then settle."""
        key = message.run_key
        outcome: str | None = None
        mine: threading.Event | None = None
        while True:
            with self._state_lock:
                if key in self._reported:
                    outcome = "ack"
                    break
                if (running := self._running.get(key)) is None:
                    mine = self._running[key] = threading.Event()
                    break
            # Our run of it is still going (its delivery died with an old connection): wait,
            # then settle this delivery the same way, or run the job if that run was dropped.
            running.wait()
        if outcome == "ack":
            log.info("job %s attempt %d was already reported by this worker: acked",
                     message.job_id, message.attempt)
        else:
            assert mine is not None
            cancel = session.job_cancel()
            try:
                if takes_cancel(handler):
                    handler(message, cancel=cancel)  # type: ignore[call-arg]
                else:
                    handler(message)
                outcome = "ack"
            except Requeue as exc:
                log.info("job %s attempt %d goes back to the queue%s", message.job_id,
                         message.attempt, f": {exc}" if str(exc) else "")
                outcome = "requeue"
            except Exception:
                log.exception("handler failed on job %s attempt %d: rejected (dead-lettered)",
                              message.job_id, message.attempt)
                outcome = "reject"
            finally:
                session.job_done(cancel)
                with self._state_lock:
                    if outcome == "ack":
                        self._reported[key] = None
                        while len(self._reported) > REMEMBERED_OUTCOMES:
                            self._reported.popitem(last=False)
                    del self._running[key]
                mine.set()
        outcome = outcome or "requeue"
        if outcome == "requeue" and session.stop.is_set():
            # Put back because this worker is stopping (the handler saw the stop as its cancel):
            # not the job's fault, so it must not use up a delivery.
            outcome = "return"
        self._settle(session, delivery, message, outcome)

    def _settle(
        self, session: _Session, delivery: _Delivery, message: JobMessage, outcome: str
    ) -> None:
        """Ack ("ack"), nack with requeue ("requeue", counts towards the delivery limit), reject
        ("reject": dead-lettered) or give back without using up a delivery ("return")."""
        tag = delivery.tag

        def settle() -> None:  # runs in the consuming thread
            session.inflight -= 1
            channel = session.channel
            if not channel.is_open:
                log.warning("job %s: channel closed before it could be %sed; the broker delivers "
                            "it again", message.job_id, outcome)
                return
            try:
                if outcome == "ack":
                    channel.basic_ack(tag)
                elif outcome == "return":
                    session.cancel_consumer()  # or the copy could come straight back to us
                    self._return_gracefully(channel, tag, delivery.properties, delivery.body,
                                            f"job {message.job_id} attempt {message.attempt}")
                else:
                    channel.basic_nack(tag, requeue=outcome == "requeue")
            except TRANSIENT as exc:
                log.warning("job %s: could not %s (%r); the broker delivers it again",
                            message.job_id, outcome, exc)

        try:
            session.connection.add_callback_threadsafe(settle)
        except TRANSIENT:
            log.warning(
                "job %s attempt %d finished (%s) after its connection was lost; the broker "
                "delivers it again%s", message.job_id, message.attempt, outcome,
                " and it will be acked without running again" if outcome == "ack" else "",
            )

    def _return_gracefully(
        self, channel: BlockingChannel, tag: int, properties: pika.BasicProperties, body: bytes,
        what: str,
    ) -> None:
        """In the consuming thread, while stopping: put a delivery back without using up one of
        its deliveries. The copy is confirmed before the original is acked, so a crash in between
        leaves a duplicate (re-running a job is safe, see the runner), never a lost job."""
        if self.publisher.publish_copy(body, copy_properties(properties)):
            channel.basic_ack(tag)
            log.info("%s goes back to the queue (a fresh copy: this stop does not count as a "
                     "delivery)", what)
        else:
            channel.basic_nack(tag, requeue=True)
            log.warning("%s goes back to the queue by nack (could not publish a fresh copy): "
                        "this delivery counts towards the limit", what)

    def _drain(self, session: _Session) -> None:
        """Stop: no new deliveries; give jobs in hand `shutdown_grace` seconds to settle (their
        handlers see the cancel signal and raise Requeue); then close, which makes the broker
        requeue whatever is still unacked."""
        connection = session.connection
        session.cancel_jobs()  # their handlers stop and raise Requeue: given back below
        try:
            session.cancel_consumer()
            deadline = time.monotonic() + self.shutdown_grace
            while session.inflight > 0 and time.monotonic() < deadline and connection.is_open:
                connection.process_data_events(time_limit=0.1)
        except TRANSIENT as exc:
            log.info("connection lost while stopping (%r); unacked jobs go back to the queue", exc)
        if session.inflight > 0:
            log.warning("%d job(s) still running at shutdown: returned to the queue",
                        session.inflight)
        close_quietly(connection)
        log.info("stopped consuming %s", self.broker.queue_name)


def copy_properties(properties: pika.BasicProperties) -> pika.BasicProperties:
    """The properties for a copy of a message put back by a stopping worker: the same, persistent,
    without the broker's delivery count, with the returns counter one up. Not `user_id`, which
    the broker checks against the publishing connection's user."""
    headers = {k: v for k, v in (properties.headers or {}).items() if k != "x-delivery-count"}
    headers[RETURNS_HEADER] = int(headers.get(RETURNS_HEADER) or 0) + 1
    return pika.BasicProperties(
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        headers=headers,
        delivery_mode=2,
        priority=properties.priority,
        correlation_id=properties.correlation_id,
        reply_to=properties.reply_to,
        expiration=properties.expiration,
        message_id=properties.message_id,
        timestamp=properties.timestamp,
        type=properties.type,
        app_id=properties.app_id,
        cluster_id=properties.cluster_id,
    )
