"""`coursecrafter-worker [--concurrency N]`: the RabbitMQ transcoding consumer.

`coursecrafter-worker --version` prints the FFmpeg binary it uses (COURSECRAFTER_FFMPEG, else
`ffmpeg` on PATH, else the imageio-ffmpeg wheel's), its version and its ffprobe; like every start,
it refuses (exit 1) an FFmpeg that does not run or is older than 5.1.

Needs `COURSECRAFTER_BROKER_URL`. SIGTERM/SIGINT stop it cleanly: no new jobs are taken, jobs in
hand are cancelled and go back to the queue (a fresh copy, so a restart does not use up one of
the job's deliveries; the broker requeues whatever is still unacked when the connection closes),
then the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from pydantic import ValidationError

log = logging.getLogger("coursecrafter_worker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coursecrafter-worker", description="Consume transcoding jobs from RabbitMQ."
    )
    parser.add_argument("--concurrency", type=int, default=None,
                        help="jobs transcoded at once (default: COURSECRAFTER_CONCURRENCY or 1)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--version", action="store_true",
                        help="print the version, the FFmpeg binary in use and its version, then "
                        "exit (1 when that FFmpeg is unusable or older than 5.1)")
    return parser


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("coursecrafter")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _check_ffmpeg():  # type: ignore[no-untyped-def]
    """The FFmpeg this worker will run (COURSECRAFTER_FFMPEG, else PATH, else imageio-ffmpeg's),
    refused with a clear message when it does not run or is older than 5.1."""
    from coursecrafter_worker.pipeline.process import UnsupportedFFmpeg, check_ffmpeg

    try:
        return check_ffmpeg()
    except UnsupportedFFmpeg as exc:
        _fail(str(exc), 1)


def _fail(message: str, code: int) -> None:
    print(f"coursecrafter-worker: {message}", file=sys.stderr)
    raise SystemExit(code)


def run(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.version:
        print(f"coursecrafter-worker {_package_version()}")
        print(_check_ffmpeg().describe())
        return
    if args.concurrency is not None and args.concurrency < 1:
        _fail("--concurrency must be at least 1", 2)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pika logs every lost connection as an ERROR with a traceback; ours say it once, plainly.
    logging.getLogger("pika").setLevel(logging.DEBUG if args.log_level == "debug"
                                       else logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from coursecrafter_worker.settings import ConfigError, get_worker_settings

    try:
        settings = get_worker_settings()
    except ValidationError as exc:
        _fail(f"invalid configuration: {exc}", 2)
    broker_url = settings.broker
    if not broker_url:
        _fail("COURSECRAFTER_BROKER_URL is not set (amqp://user:password@host:5672/vhost); "
              "without a broker, transcoding runs inside coursecrafter-server", 2)
    if not broker_url.startswith(("amqp://", "amqps://")):
        _fail("COURSECRAFTER_BROKER_URL must be an amqp:// or amqps:// URL", 2)
    try:
        webhook_secret = settings.resolved_webhook_secret()
    except ConfigError as exc:
        _fail(str(exc), 2)
    concurrency = args.concurrency or settings.concurrency

    from coursecrafter_worker.storage import open_storage
    from coursecrafter_worker.notifier import WebhookNotifier
    from coursecrafter_worker.queue.rabbitmq import RabbitMQQueue
    from coursecrafter_worker.runner import JobRunner
    from coursecrafter_worker.workdir import UnsafeWorkDir, prepare_work_dir, start_sweeper, \
        unlocked_age_limit

    try:
        work_dir = prepare_work_dir(settings.work_dir)
    except UnsafeWorkDir as exc:
        _fail(str(exc), 2)

    try:
        storage = open_storage(
            settings.resolved_storage_url,
            public_url=settings.public_url,
            secret=settings.resolved_blob_secret(),
            s3_endpoint_url=settings.s3_endpoint_url,
        )
        queue = RabbitMQQueue(
            broker_url, max_attempts=settings.max_attempts,
            shutdown_grace=settings.shutdown_grace,
        )
    except ValueError as exc:
        _fail(str(exc), 2)
    notifier = WebhookNotifier(webhook_secret, max_elapsed=settings.webhook_max_elapsed)
    runner = JobRunner(
        storage, notifier, work_dir=work_dir,
        heartbeat_interval=settings.heartbeat_interval, ffmpeg_timeout=settings.ffmpeg_timeout,
        chunk_seconds=settings.chunk_seconds,
    )

    # A worker that cannot transcode must not take jobs.
    ffmpeg = _check_ffmpeg()
    log.info("FFmpeg %s at %s (ffprobe: %s)", ffmpeg.version, ffmpeg.path,
             ffmpeg.ffprobe or "none")

    # Job directories of a worker that was killed (SIGKILL, power loss) are never cleaned by it:
    # whoever shares the work dir removes them, now and every minute or so (a live job's
    # directory is locked, see coursecrafter_worker.workdir).
    stop = threading.Event()
    start_sweeper(work_dir, stop=stop,
                  unlocked_older_than=unlocked_age_limit(settings.ffmpeg_timeout))

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            raise SystemExit(1)
        log.info("%s received: finishing up, jobs in hand go back to the queue",
                 signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def handle(message: Any, *, cancel: threading.Event) -> None:
        # The consumer's event for this job: set when we stop, and when the job's connection
        # was lost (the broker hands it to another worker: it must not be finished here too).
        runner.run(message, cancel=cancel)

    log.info(
        "coursecrafter-worker starting: broker %s, storage %s, concurrency %d, max attempts %d, "
        "work dir %s", queue.safe_url, settings.resolved_storage_url.split("?")[0], concurrency,
        settings.max_attempts, work_dir,
    )
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            queue.consume(handle, concurrency=concurrency, stop=stop)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    try:
        # In a thread, so the main thread stays free to run signal handlers at once.
        consumer = threading.Thread(target=consume, name="coursecrafter-consumer", daemon=True)
        consumer.start()
        while consumer.is_alive():
            consumer.join(0.5)
    finally:
        stop.set()
        queue.close()
        notifier.close()
    if errors:
        log.error("coursecrafter-worker stopped: %s", errors[0])
        raise SystemExit(1)
    log.info("coursecrafter-worker stopped")
