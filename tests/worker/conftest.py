from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from livesupport import rabbitmqctl

from coursecrafter_worker.storage.local import LocalStorage
from coursecrafter_worker.messages import JobMessage

AMQP_HOST = os.environ.get("COURSECRAFTER_TEST_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("COURSECRAFTER_TEST_AMQP_PORT", "5672"))
AMQP_USER = os.environ.get("COURSECRAFTER_TEST_AMQP_USER", "guest")
AMQP_PASSWORD = os.environ.get("COURSECRAFTER_TEST_AMQP_PASSWORD", "guest")
SECRET = b"test-webhook-secret-0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rabbitmq: talks to the real RabbitMQ broker")


# Storage and messages ----------------------------------------------------------------------------
@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "blobs", "http://127.0.0.1:8000", b"s" * 32, fsync=False)


@pytest.fixture
def make_message(storage: LocalStorage) -> Callable[..., JobMessage]:
    def make(video_id: str | None = None, *, attempt: int = 1, upload: bool = True,
             callback_url: str = "http://127.0.0.1:9/api/v1/internal/jobs/events") -> JobMessage:
        video_id = video_id or uuid.uuid4().hex[:12]
        message = JobMessage(
            job_id=uuid.uuid4().hex, video_id=video_id, attempt=attempt,
            source_key=f"uploads/{video_id}/source", output_prefix=f"videos/{video_id}/",
            callback_url=callback_url, created_at=datetime.now(timezone.utc).isoformat(),
        )
        if upload:
            src = storage.root.parent / f"src-{video_id}"
            src.write_bytes(b"lecture recording bytes " + video_id.encode())
            storage.upload_file(src, message.source_key, "video/mp4")
        return message

    return make


# RabbitMQ ------------------------------------------------------------------------------------------
def _broker_reachable() -> bool:
    try:
        with socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_vhost() -> Iterator[str | None]:
    """A vhost of our own (so `close_all_connections --vhost` touches nobody else), or None
    (the default vhost) when rabbitmqctl cannot be used here."""
    if not _broker_reachable():
        pytest.skip(f"RabbitMQ is not reachable at {AMQP_HOST}:{AMQP_PORT}")
    if shutil.which("rabbitmqctl") is None or AMQP_HOST not in ("127.0.0.1", "localhost"):
        yield None
        return
    vhost = f"cc-worker-test-{uuid.uuid4().hex[:8]}"
    if rabbitmqctl("add_vhost", vhost, check=False).returncode != 0:
        yield None
        return
    rabbitmqctl("set_permissions", "-p", vhost, AMQP_USER, ".*", ".*", ".*")
    try:
        yield vhost
    finally:
        rabbitmqctl("delete_vhost", vhost, check=False)


@pytest.fixture(scope="session")
def amqp_url(amqp_vhost: str | None) -> str:
    vhost = quote(amqp_vhost or "/", safe="")
    return f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@{AMQP_HOST}:{AMQP_PORT}/{vhost}"


@pytest.fixture
def queue_names(amqp_url: str) -> Iterator[tuple[str, str]]:
    """A fresh job queue and dead-letter queue for one test; both deleted afterwards."""
    import pika

    name = f"cc-test.{uuid.uuid4().hex[:10]}"
    names = (name, f"{name}.dead")
    yield names
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for n in names:
            channel.queue_delete(n)
    finally:
        connection.close()


@pytest.fixture
def make_rabbit(amqp_url: str, queue_names: tuple[str, str]):
    from coursecrafter_worker.queue.rabbitmq import RabbitMQQueue

    made: list[RabbitMQQueue] = []

    def make(**kwargs: object) -> RabbitMQQueue:
        kwargs.setdefault("shutdown_grace", 5.0)
        q = RabbitMQQueue(amqp_url, queue_name=queue_names[0], dead_letter_queue=queue_names[1],
                          **kwargs)  # type: ignore[arg-type]
        made.append(q)
        return q

    yield make
    for q in made:
        q.close()
