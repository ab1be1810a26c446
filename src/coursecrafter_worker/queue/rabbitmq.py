"""The scale-out queue: RabbitMQ through pika.

Topology (declared idempotently by every publisher and consumer connection):

    coursecrafter.transcode        durable quorum queue
        x-queue-type               quorum
        x-dead-letter-exchange     ""  (the default exchange)
        x-dead-letter-routing-key  coursecrafter.transcode.dead
        x-delivery-limit           max_attempts - 1
    coursecrafter.transcode.dead   durable quorum queue (the dead letters)

Messages are persistent (delivery_mode 2) and published with publisher confirms and
`mandatory`, so `publish` returns only once the broker holds the message.

A quorum queue counts how often a message came back (consumer nack with requeue, channel or
connection closed while it was unacked: a killed worker); past `x-delivery-limit` the broker
dead-letters it by itself. So a job is delivered at most `max_attempts` times, whatever happens
to the workers. A poison message (one that does not parse) is nacked without requeue: straight
to the dead-letter queue.

A worker that stops gracefully (SIGTERM) did nothing wrong, so the job in hand must not use up a
delivery (three rolling restarts during a long lecture would dead-letter it): it publishes a
fresh copy of the message (same body and properties, persistent, confirmed) and only then acks
the original. The copy starts with a delivery count of 0 and goes to the back of the queue;
should the publish fail, the original is nacked with requeue (it counts, but is not lost).

pika is not thread-safe: the publisher keeps one connection behind a lock (server request threads
share it) with a small keep-alive thread answering heartbeats; each `consume` call owns its
connection, runs handlers on a pool of `concurrency` threads so the I/O loop keeps answering
heartbeats while FFmpeg runs, and acks from those threads through `add_callback_threadsafe`.
Both reconnect with backoff when the broker goes away (restart, `close_all_connections`).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import queue as stdlib_queue
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pika
import pika.exceptions as pex
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay

from coursecrafter_worker.messages import DEAD_LETTER_QUEUE, QUEUE_NAME, JobMessage, MessageError

from .base import DeadLetter, Handler, QueueError, QueueUnavailable, Requeue

log = logging.getLogger(__name__)

#: What a lost connection or broker hiccup looks like from pika (plus plain socket errors).
TRANSIENT: tuple[type[BaseException], ...] = (pex.AMQPError, OSError, QueueUnavailable)
#: How many (job_id, attempt) outcomes one consumer remembers, to ack redeliveries of a job it has
#: already reported (the ack was lost with the connection) without running it again.
REMEMBERED_OUTCOMES = 4096
#: Header of a copy published by a stopping worker: how many times the job went back that way
#: (for the logs; the broker's x-delivery-count restarts at 0 with every copy).
RETURNS_HEADER = "coursecrafter-returns"


def redact_url(url: str) -> str:
    """The URL without its password, for logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _Retry(Exception):
    """Internal: a publish attempt failed in a way that another attempt may fix."""


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
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.url = url
        self.safe_url = redact_url(url)
        self.max_attempts = max_attempts
        self.queue_name = queue_name
        self.dead_letter_queue = dead_letter_queue
        self.publish_timeout = publish_timeout
        self.shutdown_grace = shutdown_grace
        self.reconnect_max_delay = reconnect_max_delay
        self.queue_arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letter_queue,
            "x-delivery-limit": max_attempts - 1,
        }
        self.dead_letter_arguments: dict[str, Any] = {"x-queue-type": "quorum"}

        self._params = pika.URLParameters(url)  # validates the URL now, connects later
        query = parse_qs(urlsplit(url).query)
        if "heartbeat" not in query:
            self._params.heartbeat = heartbeat
        if "blocked_connection_timeout" not in query:
            # A broker memory/disk alarm blocks publishers: give up like any other failure.
            self._params.blocked_connection_timeout = max(5.0, publish_timeout)
        if "socket_timeout" not in query:
            self._params.socket_timeout = 5
        if "connection_attempts" not in query:
            self._params.connection_attempts = 1
        self._params.client_properties = {
            "connection_name": connection_name
            or f"coursecrafter@{socket.gethostname()}:{os.getpid()}",
        }

        self._closed = False
        # Publisher: one connection shared behind a lock.
        self._publish_lock = threading.RLock()
        self._pub_conn: BlockingConnection | None = None
        self._pub_channel: BlockingChannel | None = None
        self._keepalive: threading.Thread | None = None
        self._keepalive_stop = threading.Event()
        # Consumer bookkeeping shared by all consume() calls of this object.
        self._state_lock = threading.Lock()
        self._running: dict[tuple[str, int], threading.Event] = {}
        self._reported: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()

    def __repr__(self) -> str:
        return f"RabbitMQQueue({self.safe_url!r}, queue={self.queue_name!r})"

    # Connections and topology ------------------------------------------------------------------
    def _connect(self) -> BlockingConnection:
        try:
            return BlockingConnection(self._params)
        except TRANSIENT as exc:
            raise QueueUnavailable(f"cannot connect to RabbitMQ at {self.safe_url}: {exc!r}") from exc

    def _declare(self, connection: BlockingConnection) -> BlockingChannel:
        """Declare both queues (idempotent) and return an open channel."""
        channel = connection.channel()
        for name, arguments in (
            (self.dead_letter_queue, self.dead_letter_arguments),
            (self.queue_name, self.queue_arguments),
        ):
            try:
                channel.queue_declare(name, durable=True, arguments=arguments)
            except pex.ChannelClosedByBroker as exc:
                if exc.reply_code != 406:  # PRECONDITION_FAILED: exists with other arguments
                    raise
                log.warning(
                    "queue %s already exists with other arguments than %s (%s); using it as it is",
                    name, arguments, exc.reply_text,
                )
                channel = connection.channel()
                channel.queue_declare(name, passive=True)
        return channel

    # Publishing --------------------------------------------------------------------------------
    def _publish_channel(self) -> BlockingChannel:
        # Holding self._publish_lock.
        if self._closed:
            raise QueueUnavailable("the queue is closed")
        if self._pub_channel is not None and self._pub_channel.is_open:
            return self._pub_channel
        self._drop_publisher()
        connection = self._connect()
        try:
            channel = self._declare(connection)
            channel.confirm_delivery()
        except BaseException:
            _close_quietly(connection)
            raise
        self._pub_conn, self._pub_channel = connection, channel
        if self._keepalive is None or not self._keepalive.is_alive():
            self._keepalive_stop.clear()
            self._keepalive = threading.Thread(
                target=self._keep_alive, name="coursecrafter-amqp-keepalive", daemon=True
            )
            self._keepalive.start()
        return channel

    def _drop_publisher(self) -> None:
        connection, self._pub_conn, self._pub_channel = self._pub_conn, None, None
        if connection is not None:
            _close_quietly(connection)

    def _keep_alive(self) -> None:
        """Answer heartbeats of the idle publisher connection (pika only does I/O when called)."""
        interval = max(1.0, (self._params.heartbeat or 60) / 3)
        while not self._keepalive_stop.wait(interval):
            if not self._publish_lock.acquire(timeout=interval):
                continue  # a publish is doing I/O right now, which serves heartbeats too
            try:
                if self._pub_conn is None:
                    return
                try:
                    self._pub_conn.process_data_events(0)
                except TRANSIENT as exc:
                    log.info("publisher connection lost (%r); reconnecting on next publish", exc)
                    self._drop_publisher()
                    return
            finally:
                self._publish_lock.release()

    def publish(self, message: JobMessage) -> None:
        body = message.to_json()
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=f"{message.job_id}.{message.attempt}",
            timestamp=int(time.time()),
            app_id="coursecrafter",
            type="transcode",
        )

        def attempt() -> None:
            with self._publish_lock:
                try:
                    channel = self._publish_channel()
                    channel.basic_publish(
                        "", self.queue_name, body, properties, mandatory=True
                    )
                except QueueUnavailable as exc:
                    if self._closed:
                        raise
                    raise _Retry(str(exc)) from exc
                except (pex.UnroutableError, pex.NackError) as exc:
                    # Queue gone (deleted behind our back) or broker refused: redeclare, retry.
                    self._drop_publisher()
                    raise _Retry(f"broker did not accept the message: {exc!r}") from exc
                except TRANSIENT as exc:
                    self._drop_publisher()
                    raise _Retry(f"connection lost while publishing: {exc!r}") from exc

        try:
            for try_ in Retrying(
                stop=stop_after_delay(self.publish_timeout),
                wait=_backoff,
                retry=retry_if_exception_type(_Retry),
                reraise=True,
            ):
                with try_:
                    attempt()
        except _Retry as exc:
            raise QueueUnavailable(
                f"could not publish job {message.job_id} attempt {message.attempt} to "
                f"{self.safe_url} within {self.publish_timeout:g}s: {exc}"
            ) from exc
        log.debug("published job %s attempt %d", message.job_id, message.attempt)

    def publish_raw(self, body: bytes, properties: pika.BasicProperties | None = None) -> None:
        """Publish arbitrary bytes (tests, tools); one try, confirmed."""
        with self._publish_lock:
            channel = self._publish_channel()
            try:
                channel.basic_publish(
                    "", self.queue_name, body,
                    properties or pika.BasicProperties(delivery_mode=2),
                    mandatory=True,
                )
            except TRANSIENT as exc:
                self._drop_publisher()
                raise QueueUnavailable(f"publish failed: {exc!r}") from exc

    # Readiness and tools -----------------------------------------------------------------------
    def ping(self) -> None:
        with self._publish_lock:
            try:
                channel = self._publish_channel()
                channel.connection.process_data_events(0)
            except QueueUnavailable:
                raise
            except TRANSIENT as exc:
                self._drop_publisher()
                raise QueueUnavailable(f"RabbitMQ at {self.safe_url} is not usable: {exc!r}") from exc

    def message_counts(self) -> tuple[int, int]:
        """(ready messages in the job queue, messages in the dead-letter queue)."""
        with self._publish_lock:
            channel = self._publish_channel()
            try:
                jobs = channel.queue_declare(self.queue_name, passive=True).method.message_count
                dead = channel.queue_declare(self.dead_letter_queue, passive=True).method.message_count
            except TRANSIENT as exc:
                self._drop_publisher()
                raise QueueUnavailable(f"cannot read queue depths: {exc!r}") from exc
            return jobs, dead

    def get_dead_letter(self) -> DeadLetter | None:
        """Take one message off the dead-letter queue (acked: the caller owns it now), or None."""
        taken: list[DeadLetter] = []
        self.settle_dead_letter(taken.append)
        return taken[0] if taken else None

    def settle_dead_letter(self, settle: Callable[[DeadLetter], object]) -> bool:
        """Hand the next dead letter to `settle` (the server's sweeper: fail the job's video) and
        ack it only once `settle` returned; if it raises, the letter goes back for the next sweep.
        False when the dead-letter queue is empty."""
        with self._publish_lock:
            channel = self._publish_channel()
            try:
                method, properties, body = channel.basic_get(self.dead_letter_queue, auto_ack=False)
            except TRANSIENT as exc:
                self._drop_publisher()
                raise QueueUnavailable(f"cannot read the dead-letter queue: {exc!r}") from exc
            if method is None:
                return False
            try:
                settle(_dead_letter(properties, body))
            except BaseException:
                with contextlib.suppress(*TRANSIENT):
                    channel.basic_nack(method.delivery_tag, requeue=True)
                raise
            try:
                channel.basic_ack(method.delivery_tag)
            except TRANSIENT as exc:  # unacked, so redelivered; settling again is a no-op
                self._drop_publisher()
                raise QueueUnavailable(f"cannot ack a dead letter: {exc!r}") from exc
        return True

    # Consuming ---------------------------------------------------------------------------------
    def consume(self, handler: Handler, *, concurrency: int, stop: threading.Event) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        pool = _Pool(concurrency, "coursecrafter-job")
        delay = 0.5
        try:
            while not stop.is_set() and not self._closed:
                connection: BlockingConnection | None = None
                try:
                    connection = self._connect()
                    channel = self._declare(connection)
                    channel.basic_qos(prefetch_count=concurrency)
                    session = _Session(connection, channel, stop)
                    session.consumer_tag = channel.basic_consume(
                        self.queue_name,
                        functools.partial(self._on_message, session, handler, pool),
                    )
                    log.info(
                        "consuming %s on %s (concurrency %d, at most %d deliveries per job)",
                        self.queue_name, self.safe_url, concurrency, self.max_attempts,
                    )
                    delay = 0.5
                    while not stop.is_set() and not self._closed:
                        connection.process_data_events(time_limit=0.25)
                    self._drain(session)
                    connection = None
                    return
                except TRANSIENT as exc:
                    if stop.is_set():
                        return
                    if _is_fatal(exc):
                        raise QueueError(
                            f"RabbitMQ at {self.safe_url} refused the credentials or vhost: "
                            f"{exc.__cause__ or exc!r}"
                        ) from exc
                    pause = delay * (0.5 + random.random())
                    log.warning(
                        "RabbitMQ connection lost (%r); jobs in hand will be delivered again; "
                        "reconnecting in %.1fs", exc, pause,
                    )
                    stop.wait(pause)
                    delay = min(delay * 2, self.reconnect_max_delay)
                finally:
                    if connection is not None:
                        _close_quietly(connection)
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
            message.job_id, message.attempt, message.video_id, returned + 1, self.max_attempts,
            f" (put back by {returns} stopping worker(s) before)" if returns else "",
        )
        session.inflight += 1
        delivery = _Delivery(method.delivery_tag, properties, body)
        pool.submit(functools.partial(self._handle, session, delivery, message, handler))

    def _handle(
        self, session: _Session, delivery: _Delivery, message: JobMessage, handler: Handler
    ) -> None:
        """In a pool thread: run the handler (once per job and attempt at a time), then settle."""
        key = (message.job_id, message.attempt)
        outcome: str | None = None
        running: threading.Event | None = None
        mine: threading.Event | None = None
        with self._state_lock:
            if key in self._reported:
                outcome = "ack"
            elif (running := self._running.get(key)) is None:
                mine = self._running[key] = threading.Event()
        if outcome == "ack":
            log.info("job %s attempt %d was already reported by this worker: acked",
                     message.job_id, message.attempt)
        elif running is not None:
            # Our run of it is still going (its delivery died with an old connection): wait and
            # settle this delivery the same way instead of transcoding twice.
            running.wait()
            with self._state_lock:
                outcome = "ack" if key in self._reported else "requeue"
        else:
            assert mine is not None
            try:
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
        if self._publish_copy(body, _copy_properties(properties)):
            channel.basic_ack(tag)
            log.info("%s goes back to the queue (a fresh copy: this stop does not count as a "
                     "delivery)", what)
        else:
            channel.basic_nack(tag, requeue=True)
            log.warning("%s goes back to the queue by nack (could not publish a fresh copy): "
                        "this delivery counts towards the limit", what)

    def _publish_copy(self, body: bytes, properties: pika.BasicProperties) -> bool:
        """Publish `body` as a new persistent message, confirmed; False if the broker did not
        take it. No long retries: the worker is stopping and the nack fallback is safe."""
        error: BaseException | None = None
        for _ in range(2):  # the idle publisher connection may have died unnoticed: once more
            with self._publish_lock:
                try:
                    channel = self._publish_channel()
                    channel.basic_publish("", self.queue_name, body, properties, mandatory=True)
                    return True
                except QueueUnavailable as exc:  # cannot connect, or the queue object is closed
                    error = exc
                    break
                except TRANSIENT as exc:  # includes UnroutableError and NackError
                    self._drop_publisher()
                    error = exc
        log.warning("could not publish a copy of a message being put back: %r", error)
        return False

    def _drain(self, session: _Session) -> None:
        """Stop: no new deliveries; give jobs in hand `shutdown_grace` seconds to settle (their
        handlers see the cancel signal and raise Requeue); then close, which makes the broker
        requeue whatever is still unacked."""
        connection = session.connection
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
        _close_quietly(connection)
        log.info("stopped consuming %s", self.queue_name)

    # Lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        self._keepalive_stop.set()
        with self._publish_lock:
            self._drop_publisher()


class _Delivery:
    """What settling a message needs: its tag, and (to publish a copy) its properties and body."""

    __slots__ = ("tag", "properties", "body")

    def __init__(self, tag: int, properties: pika.BasicProperties, body: bytes) -> None:
        self.tag, self.properties, self.body = tag, properties, body


def _copy_properties(properties: pika.BasicProperties) -> pika.BasicProperties:
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


def _backoff(state: RetryCallState) -> float:
    """Publish retries: 0.1 s doubling to 2 s, with ±50 % jitter."""
    return min(2.0, 0.1 * 2 ** min(state.attempt_number - 1, 10)) * random.uniform(0.5, 1.5)


def _is_fatal(exc: BaseException) -> bool:
    """Errors that retrying will not fix (wrong user, password or vhost)."""
    fatal = (pex.ProbableAuthenticationError, pex.AuthenticationError,
             pex.ProbableAccessDeniedError)
    return isinstance(exc, fatal) or isinstance(exc.__cause__, fatal)


def _close_quietly(connection: BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception as exc:  # already dead: nothing to release
        log.debug("closing a RabbitMQ connection: %r", exc)


__all__ = ["RabbitMQQueue", "QueueError", "QueueUnavailable", "Requeue", "redact_url"]


def _dead_letter(properties: pika.BasicProperties | None, body: bytes) -> DeadLetter:
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
