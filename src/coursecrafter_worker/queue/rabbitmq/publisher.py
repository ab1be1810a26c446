"""Publishing jobs: one connection shared behind a lock (server request threads share it).

Messages are persistent (delivery_mode 2) and published with publisher confirms and `mandatory`,
so `publish` returns only once the broker holds the message. pika is not thread-safe and only
does I/O when called, so a small keep-alive thread answers the idle connection's heartbeats.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pika
import pika.exceptions as pex
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from tenacity import Retrying, retry_if_exception_type, stop_after_delay

from coursecrafter_worker.messages import JobMessage

from ..base import QueueUnavailable
from .broker import TRANSIENT, Broker, backoff, close_quietly, log


class _Retry(Exception):
    """Internal: a publish attempt failed in a way that another attempt may fix."""


class Publisher:
    def __init__(self, broker: Broker, *, publish_timeout: float) -> None:
        self.broker = broker
        self.publish_timeout = publish_timeout
        self.lock = threading.RLock()
        self._conn: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._keepalive: threading.Thread | None = None
        self._keepalive_stop = threading.Event()

    # The connection ----------------------------------------------------------------------------
    def open_channel(self) -> BlockingChannel:
        """The shared channel, (re)connected as needed. Hold `lock` while using it."""
        if self.broker.closed.is_set():
            raise QueueUnavailable("the queue is closed")
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self.drop()
        connection = self.broker.connect()
        try:
            channel = self.broker.declare(connection)
            channel.confirm_delivery()
        except BaseException:
            close_quietly(connection)
            raise
        self._conn, self._channel = connection, channel
        if self._keepalive is None or not self._keepalive.is_alive():
            self._keepalive_stop.clear()
            self._keepalive = threading.Thread(
                target=self._keep_alive, name="coursecrafter-amqp-keepalive", daemon=True
            )
            self._keepalive.start()
        return channel

    def drop(self) -> None:
        """Forget a connection that failed; the next use reconnects."""
        connection, self._conn, self._channel = self._conn, None, None
        if connection is not None:
            close_quietly(connection)

    @contextlib.contextmanager
    def channel(self, what: str) -> Iterator[BlockingChannel]:
        """The shared channel, locked, for one operation; a broker error on it drops the
        connection (the next use reconnects) and surfaces as `QueueUnavailable`."""
        with self.lock:
            channel = self.open_channel()
            try:
                yield channel
            except QueueUnavailable:
                raise
            except TRANSIENT as exc:
                self.drop()
                raise QueueUnavailable(f"{what}: {exc!r}") from exc

    def _keep_alive(self) -> None:
        """Answer heartbeats of the idle publisher connection (pika only does I/O when called)."""
        interval = max(1.0, (self.broker.params.heartbeat or 60) / 3)
        while not self._keepalive_stop.wait(interval):
            if not self.lock.acquire(timeout=interval):
                continue  # a publish is doing I/O right now, which serves heartbeats too
            try:
                if self._conn is None:
                    return
                try:
                    self._conn.process_data_events(0)
                except TRANSIENT as exc:
                    log.info("publisher connection lost (%r); reconnecting on next publish", exc)
                    self.drop()
                    return
            finally:
                self.lock.release()

    # Publishing --------------------------------------------------------------------------------
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
            with self.lock:
                try:
                    channel = self.open_channel()
                    channel.basic_publish(
                        "", self.broker.queue_name, body, properties, mandatory=True
                    )
                except QueueUnavailable as exc:
                    if self.broker.closed.is_set():
                        raise
                    raise _Retry(str(exc)) from exc
                except (pex.UnroutableError, pex.NackError) as exc:
                    # Queue gone (deleted behind our back) or broker refused: redeclare, retry.
                    self.drop()
                    raise _Retry(f"broker did not accept the message: {exc!r}") from exc
                except TRANSIENT as exc:
                    self.drop()
                    raise _Retry(f"connection lost while publishing: {exc!r}") from exc

        try:
            for try_ in Retrying(
                stop=stop_after_delay(self.publish_timeout),
                wait=backoff,
                retry=retry_if_exception_type(_Retry),
                reraise=True,
            ):
                with try_:
                    attempt()
        except _Retry as exc:
            raise QueueUnavailable(
                f"could not publish job {message.job_id} attempt {message.attempt} to "
                f"{self.broker.safe_url} within {self.publish_timeout:g}s: {exc}"
            ) from exc
        log.debug("published job %s attempt %d", message.job_id, message.attempt)

    def publish_raw(self, body: bytes, properties: pika.BasicProperties | None = None) -> None:
        """Publish arbitrary bytes (tests, tools); one try, confirmed."""
        with self.channel("publish failed") as channel:
            channel.basic_publish(
                "", self.broker.queue_name, body,
                properties or pika.BasicProperties(delivery_mode=2),
                mandatory=True,
            )

    def publish_copy(self, body: bytes, properties: pika.BasicProperties) -> bool:
        """Publish `body` as a new persistent message, confirmed; False if the broker did not
        take it. No long retries: the caller (a stopping worker) has a safe fallback."""
        error: BaseException | None = None
        for _ in range(2):  # the idle publisher connection may have died unnoticed: once more
            with self.lock:
                try:
                    channel = self.open_channel()
                    channel.basic_publish("", self.broker.queue_name, body, properties,
                                          mandatory=True)
                    return True
                except QueueUnavailable as exc:  # cannot connect, or the queue object is closed
                    error = exc
                    break
                except TRANSIENT as exc:  # includes UnroutableError and NackError
                    self.drop()
                    error = exc
        log.warning("could not publish a copy of a message being put back: %r", error)
        return False

    def ping(self) -> None:
        with self.channel(f"RabbitMQ at {self.broker.safe_url} is not usable") as channel:
            channel.connection.process_data_events(0)

    def close(self) -> None:
        self._keepalive_stop.set()
        with self.lock:
            self.drop()
