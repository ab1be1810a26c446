"""Connections to RabbitMQ and the queue topology, shared by the publisher and the consumer.

Topology (declared idempotently by every publisher and consumer connection):

    coursecrafter.transcode        durable quorum queue
        x-queue-type               quorum
        x-dead-letter-exchange     ""  (the default exchange)
        x-dead-letter-routing-key  coursecrafter.transcode.dead
        x-delivery-limit           max_attempts - 1
    coursecrafter.transcode.dead   durable quorum queue (the dead letters)

A quorum queue counts how often a message came back (consumer nack with requeue, channel or
connection closed while it was unacked: a killed worker); past `x-delivery-limit` the broker
dead-letters it by itself. So a job is delivered at most `max_attempts` times, whatever happens
to the workers.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pika
import pika.exceptions as pex
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from tenacity import RetryCallState

from ..base import QueueUnavailable

log = logging.getLogger("coursecrafter_worker.queue.rabbitmq")

#: What a lost connection or broker hiccup looks like from pika (plus plain socket errors).
TRANSIENT: tuple[type[BaseException], ...] = (pex.AMQPError, OSError, QueueUnavailable)


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


class Broker:
    """Where the broker is, how to connect, which queues to declare; and whether the queue
    object using it has been closed (publisher and consumer both stop then)."""

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int,
        queue_name: str,
        dead_letter_queue: str,
        heartbeat: int,
        publish_timeout: float,
        connection_name: str | None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.url = url
        self.safe_url = redact_url(url)
        self.max_attempts = max_attempts
        self.queue_name = queue_name
        self.dead_letter_queue = dead_letter_queue
        self.queue_arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letter_queue,
            "x-delivery-limit": max_attempts - 1,
        }
        self.dead_letter_arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        self.closed = threading.Event()

        self.params = pika.URLParameters(url)  # validates the URL now, connects later
        query = parse_qs(urlsplit(url).query)
        if "heartbeat" not in query:
            self.params.heartbeat = heartbeat
        if "blocked_connection_timeout" not in query:
            # A broker memory/disk alarm blocks publishers: give up like any other failure.
            self.params.blocked_connection_timeout = max(5.0, publish_timeout)
        if "socket_timeout" not in query:
            self.params.socket_timeout = 5
        if "connection_attempts" not in query:
            self.params.connection_attempts = 1
        self.params.client_properties = {
            "connection_name": connection_name
            or f"coursecrafter@{socket.gethostname()}:{os.getpid()}",
        }

    def connect(self) -> BlockingConnection:
        try:
            return BlockingConnection(self.params)
        except TRANSIENT as exc:
            raise QueueUnavailable(f"cannot connect to RabbitMQ at {self.safe_url}: {exc!r}") from exc

    def declare(self, connection: BlockingConnection) -> BlockingChannel:
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


def backoff(state: RetryCallState) -> float:
    """Publish retries: 0.1 s doubling to 2 s, with ±50 % jitter."""
    return min(2.0, 0.1 * 2 ** min(state.attempt_number - 1, 10)) * random.uniform(0.5, 1.5)


def is_fatal(exc: BaseException) -> bool:
    """Errors that retrying will not fix (wrong user, password or vhost)."""
    fatal = (pex.ProbableAuthenticationError, pex.AuthenticationError,
             pex.ProbableAccessDeniedError)
    return isinstance(exc, fatal) or isinstance(exc.__cause__, fatal)


def close_quietly(connection: BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception as exc:  # already dead: nothing to release
        log.debug("closing a RabbitMQ connection: %r", exc)
