from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest
from worker_fakes import WebhookServer, wait_until

from coursecrafter_worker.messages import DEAD_LETTER_QUEUE, QUEUE_NAME, JobMessage
from coursecrafter_worker.settings import ConfigError, WorkerSettings

BIN = Path(sys.executable).parent
SECRET = "main-test-webhook-secret-0123456789"


@pytest.fixture
def clean_env(monkeypatch) -> None:
    for name in list(os.environ):
        if name.startswith("COURSECRAFTER_"):
            monkeypatch.delenv(name)


def settings(**kw) -> WorkerSettings:
    return WorkerSettings(_env_file=None, **kw)  # type: ignore[call-arg]


def test_defaults(clean_env, tmp_path) -> None:
    s = settings(home=tmp_path)
    assert s.max_attempts == 3 and s.heartbeat_interval == 10 and s.ffmpeg_timeout == 4 * 3600
    assert s.broker is None
    assert s.resolved_storage_url == (tmp_path / "blobs").resolve().as_uri()
    assert s.work_dir == tmp_path / "work"  # private to the user, never a shared temp dir
    assert settings(home=tmp_path, work_dir=tmp_path / "w").work_dir == tmp_path / "w"


def test_env_is_read_and_secrets_are_hidden(clean_env, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COURSECRAFTER_BROKER_URL", "amqp://u:broker-pw@h/v")
    monkeypatch.setenv("COURSECRAFTER_WEBHOOK_SECRET", "from-env")
    monkeypatch.setenv("COURSECRAFTER_MAX_ATTEMPTS", "5")
    s = settings(home=tmp_path)
    assert s.broker == "amqp://u:broker-pw@h/v" and s.max_attempts == 5
    assert s.resolved_webhook_secret() == b"from-env"
    assert "broker-pw" not in repr(s) and "from-env" not in repr(s)


def test_secrets_fall_back_to_the_embedded_servers_files(clean_env, tmp_path) -> None:
    (tmp_path / "webhook_secret").write_bytes(b"generated-by-server\n")
    (tmp_path / "blob_signing_secret").write_bytes(b"b" * 64)
    s = settings(home=tmp_path)
    assert s.resolved_webhook_secret() == b"generated-by-server"
    assert s.resolved_blob_secret() == b"b" * 64


def test_missing_webhook_secret_is_a_clear_error(clean_env, tmp_path) -> None:
    with pytest.raises(ConfigError, match="COURSECRAFTER_WEBHOOK_SECRET"):
        settings(home=tmp_path).resolved_webhook_secret()
    assert len(settings(home=tmp_path).resolved_blob_secret()) >= 16  # throw-away, never needed


# The real command ------------------------------------------------------------------------------
def worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")}
    env.update({"COURSECRAFTER_HOME": str(tmp_path / "home"), **extra})
    return env


def run_worker(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "coursecrafter-worker"), *args], env=worker_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)


def test_needs_a_broker_url(tmp_path) -> None:
    result = run_worker(tmp_path)
    assert result.returncode == 2
    assert "COURSECRAFTER_BROKER_URL" in result.stderr


def test_needs_a_webhook_secret(tmp_path) -> None:
    result = run_worker(tmp_path, COURSECRAFTER_BROKER_URL="amqp://guest:guest@127.0.0.1:1/")
    assert result.returncode == 2
    assert "set COURSECRAFTER_WEBHOOK_SECRET" in result.stderr


def test_rejects_bad_arguments(tmp_path) -> None:
    result = run_worker(tmp_path, "--concurrency", "0",
                        COURSECRAFTER_BROKER_URL="amqp://guest:guest@127.0.0.1:1/")
    assert result.returncode == 2


@pytest.fixture
def own_vhost_url(amqp_url: str, amqp_vhost: str | None):
    """The real worker uses the production queue names: only inside our own vhost."""
    if amqp_vhost is None:
        pytest.skip("needs a vhost of our own (rabbitmqctl) to run the real worker")
    yield amqp_url
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_delete(QUEUE_NAME)
    channel.queue_delete(DEAD_LETTER_QUEUE)
    connection.close()


def start_worker(tmp_path: Path, amqp_url: str, storage, *args: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "worker.log"
    env = worker_env(
        tmp_path,
        COURSECRAFTER_BROKER_URL=amqp_url,
        COURSECRAFTER_WEBHOOK_SECRET=SECRET,
        COURSECRAFTER_STORAGE_URL=storage.root.as_uri(),
        COURSECRAFTER_WORK_DIR=str(tmp_path / "work"),
        COURSECRAFTER_SHUTDOWN_GRACE="5",
        COURSECRAFTER_HEARTBEAT_INTERVAL="1",
    )
    with open(log, "wb") as out:
        process = subprocess.Popen([str(BIN / "coursecrafter-worker"), *args], env=env,
                                   stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    return process, log


def stop_worker(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    return process.returncode


@pytest.mark.rabbitmq
def test_sigterm_with_a_job_in_hand_puts_it_back(tmp_path, own_vhost_url, storage, make_message) -> None:
    from coursecrafter_worker.queue.rabbitmq import RabbitMQQueue

    server = WebhookServer(SECRET.encode(), status=503)  # the API is down: `started` keeps retrying
    process, log = start_worker(tmp_path, own_vhost_url, storage, "--concurrency", "2")
    try:
        message = make_message(callback_url=server.url)
        publisher = RabbitMQQueue(own_vhost_url)
        publisher.publish(message)
        publisher.close()
        assert server.got_request.wait(20), log.read_text()  # the job is in hand
        start = time.monotonic()
        assert stop_worker(process) == 0, log.read_text()
        assert time.monotonic() - start < 10
    finally:
        stop_worker(process)
        server.close()

    text = log.read_text()
    assert "back to the queue" in text
    assert SECRET not in text and "guest:guest" not in text
    connection = pika.BlockingConnection(pika.URLParameters(own_vhost_url))
    try:
        method, props, body = connection.channel().basic_get(QUEUE_NAME, auto_ack=True)
    finally:
        connection.close()
    assert method is not None, "the job in hand was lost"
    assert JobMessage.from_json(body) == message
    # Put back as a fresh copy: the stop did not use up one of the job's deliveries.
    assert int(props.headers.get("x-delivery-count", 0)) == 0
    assert props.headers.get("coursecrafter-returns") == 1
    assert storage.head(message.source_key) is not None


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_real_worker_transcodes_a_job(tmp_path, own_vhost_url, storage, make_message) -> None:
    pytest.importorskip("coursecrafter_worker.pipeline")
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    from coursecrafter_worker.queue.rabbitmq import RabbitMQQueue

    video = tmp_path / "lecture.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc=size=320x240:rate=25:duration=2", "-f", "lavfi", "-i",
         "sine=frequency=440:duration=2", "-c:v", "libx264", "-c:a", "aac", "-shortest",
         str(video)], check=True, timeout=60,
    )
    server = WebhookServer(SECRET.encode())
    process, log = start_worker(tmp_path, own_vhost_url, storage)
    try:
        message = make_message(callback_url=server.url, upload=False)
        storage.upload_file(video, message.source_key, "video/mp4")
        publisher = RabbitMQQueue(own_vhost_url)
        publisher.publish(message)
        publisher.close()
        assert wait_until(lambda: any(t in ("completed", "failed") for t in server.types), 60), \
            log.read_text()
    finally:
        assert stop_worker(process) == 0
        server.close()
    done = server.events[-1]
    assert done.type == "completed", (done, log.read_text())
    assert server.types[0] == "started"
    assert done.playlist_key == f"videos/{message.video_id}/hls/master.m3u8"
    assert storage.head(done.playlist_key) is not None
    assert done.renditions and done.renditions[0].height == 240
    assert storage.head(message.source_key) is None


def test_server_and_worker_read_the_shared_fields_alike(monkeypatch, tmp_path) -> None:
    """One base class: the same variable gives both sides the same value and type (the broker
    URL, which carries a password, is a secret on both)."""
    from coursecrafter_server.settings import get_settings
    from coursecrafter_worker.common_settings import SharedSettings
    from coursecrafter_worker.settings import get_worker_settings

    monkeypatch.setenv("COURSECRAFTER_BROKER_URL", "amqp://u:pw@broker:5672/%2F")
    monkeypatch.setenv("COURSECRAFTER_HOME", str(tmp_path))
    monkeypatch.setenv("COURSECRAFTER_PUBLIC_URL", "http://api.example:8000/")
    server, worker = get_settings(_env_file=None), get_worker_settings(_env_file=None)
    for name in SharedSettings.model_fields:
        assert getattr(server, name) == getattr(worker, name), name
    assert server.broker == worker.broker == "amqp://u:pw@broker:5672/%2F"
    assert "pw" not in repr(server) and "pw" not in repr(worker)
    assert server.public_url == "http://api.example:8000"
    assert server.work_dir == worker.work_dir == tmp_path / "work"
