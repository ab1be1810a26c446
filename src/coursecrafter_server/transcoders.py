"""Embedded mode: transcoders as threads of the server process, fed by the in-process queue.

They run the same `JobRunner` as `coursecrafter-worker`; their events go straight to the job
service (same state machine as the webhook) instead of over HTTP to ourselves, so the embedded
server works whatever its public URL is."""

from __future__ import annotations

import logging
import threading

from coursecrafter_server.bootstrap import Container
from coursecrafter_server.settings import Settings
from coursecrafter_worker.messages import JobEvent, JobMessage

log = logging.getLogger(__name__)


def check_work_dir(settings: Settings) -> None:
    """At start-up, before serving: the work dir of the embedded transcoders (when they run) is
    private; `UnsafeWorkDir` (a ValueError) with what to do otherwise."""
    if settings.broker or settings.transcode_concurrency <= 0:
        return
    from coursecrafter_worker.workdir import prepare_work_dir

    prepare_work_dir(settings.resolved_work_dir)


def check_transcoder_ffmpeg() -> str:
    """Before an embedded server starts: the FFmpeg its transcoders will run, described for the log.

    Raises ValueError (the server's start-up refusal) when the FFmpeg dependencies are missing or
    the FFmpeg found does not run or is older than 5.1: a server that accepts uploads it cannot
    transcode would fail every one of them."""
    try:
        from coursecrafter_worker.pipeline.process import UnsupportedFFmpeg, check_ffmpeg
        import coursecrafter_worker.pipeline  # noqa: F401 - ffmpeg-python, what transcode() needs
    except ImportError as exc:
        raise ValueError(f"in-process transcoding needs the FFmpeg dependencies ({exc}): "
                         "pip install 'coursecrafter[server]'") from None
    try:
        return check_ffmpeg().describe()
    except UnsupportedFFmpeg as exc:
        raise ValueError(f"in-process transcoding (no COURSECRAFTER_BROKER_URL): {exc}") from None


class DirectNotifier:
    """The runner's notifier port, delivering to this process's job service."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def send(self, callback_url: str, event: JobEvent, *, essential: bool = True) -> str:
        return self.container.jobs.handle_event(event)


class InProcessTranscoders:
    def __init__(self, container: Container) -> None:
        from coursecrafter_worker.runner import JobRunner

        settings = container.settings
        self.container = container
        self.concurrency = max(1, settings.transcode_concurrency)
        from coursecrafter_worker.workdir import prepare_work_dir

        # Private (ours, 0700), never a shared temp dir: UnsafeWorkDir otherwise.
        work_dir = prepare_work_dir(settings.resolved_work_dir)
        self.runner = JobRunner(
            container.storage,
            DirectNotifier(container),
            work_dir=work_dir,
            heartbeat_interval=settings.heartbeat_interval,
            ffmpeg_timeout=settings.ffmpeg_timeout,
            # One in-process transcoder would do every chunk in turn: cutting cannot help it.
            chunk_seconds=settings.chunk_seconds if self.concurrency > 1 else 0.0,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from coursecrafter_worker.workdir import start_sweeper, unlocked_age_limit

        # A server killed mid-job (SIGKILL, OOM) left its job directories, each with a full copy
        # of a source, in the work dir; other servers on this machine may share it, so only
        # those nobody holds go (coursecrafter_worker.workdir).
        start_sweeper(self.runner.work_dir, stop=self._stop,
                      unlocked_older_than=unlocked_age_limit(self.container.settings.ffmpeg_timeout))
        queue = self.container.queue
        self._thread = threading.Thread(
            target=queue.consume,  # type: ignore[attr-defined]
            args=(self._handle,),
            kwargs={"concurrency": self.concurrency, "stop": self._stop},
            name="coursecrafter-transcoders",
            daemon=True,
        )
        self._thread.start()
        # The in-process queue starts empty: give it every job left open by a previous run.
        republished = self.container.jobs.republish_unfinished()
        if republished:
            log.info("re-queued %d unfinished job(s) from a previous run", republished)

    def _handle(self, message: JobMessage) -> None:
        self.runner.run(message, cancel=self._stop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
