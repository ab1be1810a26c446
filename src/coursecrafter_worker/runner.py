"""One transcoding job, start to finish: the part shared by `coursecrafter-worker` (RabbitMQ) and
the embedded server's in-process transcoders.

    started → download source → early pass (below) → transcode (progress: probing,
    transcoding) → upload outputs (progress: uploading; segments first, the master playlist
    last, replacing the early one) → delete stale outputs → completed → (only once `completed` was
    delivered) delete the temporary source

The early pass (pipeline/early.py) makes the lecture watchable before the ladder: a remux of a
browser-ready source or one fast rung, uploaded under `hls/early/` with a master playlist naming
only it, then a `playable` event. A redelivered job whose early output is already complete in
storage (`hls/early/index.m3u8` is uploaded after its segments, the master after it) reuses it
and only sends `playable` again. The early pass never fails a job: when it does not work the
ladder runs as before (and reports whatever is wrong with the source). Its outputs stay while
the ladder replaces the master (a player may be on them); the server's sweeper removes them
once the playback URL TTL has passed after `ready` or `failed`.

Outcomes (`run` returns when the outcome was reported, so the message may be acked):

- "completed": outputs stored under `output_prefix`, `completed` delivered, source deleted;
- "failed": a `failed` event was delivered: `retryable=False` for bad input (`MediaError`, missing
  source), `retryable=True` for machine trouble (`TranscodeError`, storage, anything unexpected);
  the source is kept so the job can run again.

`run` raises `Requeue` when the outcome could not be reported (an essential event was not
delivered) or the job was cancelled (SIGTERM): the message must go back to the queue.

Re-running a job is safe: stale outputs under the prefix (those the new ones do not replace) are
deleted once the new ones are uploaded, so a run stopped half-way (cancelled: its job was handed
to another worker, which may have finished it) never removes files of a complete output under
the same names; and a redelivery of a job that already completed (source gone, master playlist there)
is recognised and acked without doing anything.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from coursecrafter_worker.storage import NoSuchKey, ObjectStorage
from coursecrafter_worker.storage.keys import EARLY_PLAYLIST, MASTER_PLAYLIST, POSTER
from coursecrafter_worker.transcoding import TranscodeFailure, Transcoder, TranscodeResult
from coursecrafter_worker.messages import JobEvent, JobMessage, Rendition
from coursecrafter_worker.notifier import DeliveryFailed, Notifier
from coursecrafter_worker.queue.base import Requeue
from coursecrafter_worker.workdir import JobDir
from coursecrafter_worker.workdir import sweep as sweep_work_dir

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".aac": "audio/aac",
    ".vtt": "text/vtt",
}
MAX_ERROR_MESSAGE = 2000


#: Server verdicts meaning "this attempt no longer counts" (see JobService.handle_event).
STALE_VERDICTS = frozenset({"stale", "illegal", "unknown_job", "unknown_video"})


def _stale_prefixes(early_in_use: bool) -> list[str]:
    """What to delete under the output prefix once the ladder is uploaded (unless just
    uploaded), as key prefixes.
    Without an early rendition: everything. With one: what the pipeline writes besides it (rung
    directories `hls/1080p/` ... `hls/audio/`, the poster), but not `hls/early/` nor
    `hls/master.m3u8`, which players are on while the ladder uploads ("everything but" is
    spelled out as the prefixes the pipeline writes; the new master then replaces the early one
    in one write)."""
    if not early_in_use:
        return [""]
    return [f"hls/{c}" for c in "0123456789"] + ["hls/audio/", POSTER]


class _Cancelled(Exception):
    """Internal: the cancel event was set."""


def content_type(path: Path | str) -> str:
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def _error_kind(exc: BaseException) -> str | None:
    """"media" for a bad source (`MediaError`: not retryable), "transcode" for machine trouble
    (`TranscodeError`: retryable), else None (a bug: reported as internal_error)."""
    if isinstance(exc, TranscodeFailure):
        return "transcode" if exc.retryable else "media"
    return None


def _accepts(func: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class _ProgressReporter:
    """Background thread sending non-essential `progress` events: on change at most one per
    `min_interval`, and a heartbeat (the latest state again) at least every `heartbeat_interval`
    even when nothing changes (a long FFmpeg pass, a slow download)."""

    def __init__(self, runner: JobRunner, message: JobMessage, *, cancel: threading.Event) -> None:
        self._runner = runner
        self._message = message
        self._cancel = cancel
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._sending = threading.Lock()
        self._phase = "probing"
        self._percent = 0
        self._dirty = False
        self._last_sent = time.monotonic()
        self._thread = threading.Thread(
            target=self._loop, name=f"coursecrafter-progress-{message.job_id[:8]}", daemon=True
        )

    def start(self) -> None:
        self._last_sent = time.monotonic()  # `started` just went out: that was a beat
        self._thread.start()

    def update(self, phase: str, percent: float) -> None:
        percent = max(0, min(100, int(percent)))
        with self._lock:
            if (phase, percent) == (self._phase, self._percent):
                return
            self._phase, self._percent, self._dirty = phase, percent, True
        self._wake.set()

    def on_progress(self, phase: str, percent: int) -> None:
        """The callback handed to `transcode`: cheap (never does I/O), and the way a running
        FFmpeg learns that the job was cancelled."""
        if self._cancel.is_set():
            raise _Cancelled()
        self.update(phase, percent)

    def _loop(self) -> None:
        runner = self._runner
        while not self._stopped.is_set():
            self._wake.clear()
            with self._lock:
                since = time.monotonic() - self._last_sent
                if self._dirty and since >= runner.progress_interval:
                    due, wait = True, 0.0
                elif since >= runner.heartbeat_interval:
                    due, wait = True, 0.0
                else:
                    due = False
                    wait = runner.heartbeat_interval - since
                    if self._dirty:
                        wait = min(wait, runner.progress_interval - since)
                if due:
                    phase, percent = self._phase, self._percent
                    self._dirty = False
                    self._last_sent = time.monotonic()
            if due:
                with self._sending:
                    if not self._stopped.is_set():
                        runner._send_progress(self._message, phase, percent)
            else:
                self._wake.wait(max(0.01, wait))

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No progress send in flight or started while the block runs."""
        with self._sending:
            yield

    def stop(self) -> None:
        """No `progress` may follow the terminal event: stop and wait for a send in flight."""
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()


class JobRunner:
    def __init__(
        self,
        storage: ObjectStorage,
        notifier: Notifier,
        *,
        work_dir: Path,
        transcode: Transcoder | None = None,
        heartbeat_interval: float = 10.0,
        ffmpeg_timeout: float | None = None,
        progress_interval: float = 1.0,
        preset: str | None = None,
        early: Callable[..., Any] | bool | None = None,
        chunk_seconds: float = 0.0,
    ) -> None:
        self.storage = storage
        self.notifier = notifier
        self.work_dir = Path(work_dir)
        self._transcode = transcode
        self.heartbeat_interval = heartbeat_interval
        self.ffmpeg_timeout = ffmpeg_timeout
        self.progress_interval = progress_interval
        self.preset = preset
        # None: the real early pass when the real pipeline transcodes (an injected `transcode`,
        # a test double, gets no early pass unless one is injected too); False: never.
        self._early = early if early is not None else (transcode is None)
        self._notifier_takes_cancel = _accepts(notifier.send, "cancel")
        # > 0: a long source is cut into chunks of about this length that any worker transcodes
        # (chunked.py).
        self.chunk_seconds = chunk_seconds

    def purge_stale(self, older_than: float) -> int:
        """Remove the job directories under `work_dir` that no live process holds (left by a
        killed worker or server; see `workdir`); one without a lock file (an older version's)
        only once untouched for `older_than` seconds. Returns how many were removed."""
        return sweep_work_dir(self.work_dir, unlocked_older_than=older_than)

    # Helpers -----------------------------------------------------------------------------------
    @property
    def transcode(self) -> Transcoder:
        if self._transcode is None:
            from coursecrafter_worker.pipeline import transcode  # FFmpeg only when needed

            self._transcode = transcode
        return self._transcode

    @property
    def early(self) -> Callable[..., Any] | None:
        if self._early is True:
            from coursecrafter_worker.pipeline.early import make_early  # FFmpeg only when needed

            self._early = make_early
        return self._early or None

    def _event(self, message: JobMessage, type_: str, **fields: Any) -> JobEvent:
        if message.chunk is not None:  # every event of a chunk job names the chunk
            fields.setdefault("chunk", message.chunk.index)
            fields.setdefault("chunk_attempt", message.chunk.attempt)
        return JobEvent(
            job_id=message.job_id, video_id=message.video_id, attempt=message.attempt,
            type=type_, **fields,  # type: ignore[arg-type]
        )

    def _send_essential(
        self, message: JobMessage, event: JobEvent, cancel: threading.Event
    ) -> str | None:
        """Deliver an essential event; return the server's verdict on it (None: not said)."""
        kwargs: dict[str, Any] = {"essential": True}
        if self._notifier_takes_cancel:
            kwargs["cancel"] = cancel
        try:
            verdict = self.notifier.send(message.callback_url, event, **kwargs)
            return verdict if isinstance(verdict, str) else None
        except DeliveryFailed:
            raise
        except Exception as exc:  # a notifier that is not ours (embedded: the job service)
            raise DeliveryFailed(f"{event.type} event not delivered: {exc!r}") from exc

    def _send_progress(self, message: JobMessage, phase: str, percent: int) -> None:
        event = self._event(message, "progress", phase=phase, progress=percent)
        try:
            self.notifier.send(message.callback_url, event, essential=False)
        except Exception as exc:  # progress is best effort
            log.debug("progress of job %s not delivered: %r", message.job_id, exc)

    @staticmethod
    def _check(cancel: threading.Event) -> None:
        if cancel.is_set():
            raise _Cancelled()

    # The job -----------------------------------------------------------------------------------
    def run(self, message: JobMessage, cancel: threading.Event | None = None) -> str:
        cancel = cancel or threading.Event()
        prefix = message.output_prefix if message.output_prefix.endswith("/") \
            else message.output_prefix + "/"
        # Locked while the job runs, so that no sweep (ours, or another process's sharing the
        # work dir) removes it, while one left by a killed worker goes at the next sweep.
        job = JobDir.create(self.work_dir, message.job_id[:16])
        job_dir = job.path
        reporter = _ProgressReporter(self, message, cancel=cancel)
        started = time.monotonic()
        try:
            outcome = self._run(message, prefix, job_dir, reporter, cancel)
        except _Cancelled:
            log.info("job %s attempt %d cancelled: back to the queue", message.job_id,
                     message.attempt)
            raise Requeue("cancelled") from None
        except DeliveryFailed as exc:
            if cancel.is_set():
                raise Requeue("cancelled") from None
            log.error("job %s attempt %d: outcome not reported (%s): back to the queue",
                      message.job_id, message.attempt, exc)
            raise Requeue(f"outcome not reported: {exc}") from exc
        finally:
            reporter.stop()
            job.remove()
        chunk = message.chunk
        log.info("job %s attempt %d (video %s) %s in %.1fs%s", message.job_id, message.attempt,
                 message.video_id, outcome, time.monotonic() - started,
                 f" (chunk {chunk.kind} {chunk.index})" if chunk else "")
        return outcome

    def _run(
        self,
        message: JobMessage,
        prefix: str,
        job_dir: Path,
        reporter: _ProgressReporter,
        cancel: threading.Event,
    ) -> str:
        self._check(cancel)
        verdict = self._send_essential(message, self._event(message, "started"), cancel)
        if verdict in STALE_VERDICTS:
            # The server has moved on (a newer attempt, or the job is finished): this delivery
            # is an old copy. Ack it and do nothing, above all never touch the source.
            log.info("job %s attempt %d is %s for the server: skipped", message.job_id,
                     message.attempt, verdict)
            return "skipped"
        reporter.start()
        if message.chunk is not None:
            from coursecrafter_worker import chunked

            try:
                return chunked.run_chunk(self, message, prefix, job_dir, reporter, cancel)
            except (_Cancelled, DeliveryFailed):
                raise
            except Exception as exc:
                return self._failed(message, cancel, reporter, exc)
        try:
            source = job_dir / "source"
            try:
                self.storage.download_file(message.source_key, source)
            except NoSuchKey:
                reporter.stop()
                return self._fail(message, cancel, "source_missing",
                                  f"the uploaded source {message.source_key} does not exist",
                                  retryable=False)
            self._check(cancel)
            early = self._early_pass(message, prefix, source, job_dir, reporter, cancel)
            if early == "stale":
                return "skipped"
            if self.chunk_seconds > 0:
                from coursecrafter_worker import chunked

                cut = chunked.cut(self, message, prefix, source, job_dir, cancel)
                if cut is not None:
                    reporter.stop()
                    return "skipped" if cut == "stale" else cut
            out_dir = job_dir / "out"
            out_dir.mkdir()
            result = self._call_transcode(source, out_dir, reporter, cancel)
            self._check(cancel)
            reporter.update("uploading", 0)
            self._upload(message, prefix, out_dir, result, reporter, cancel,
                         early_in_use=early == "playable")
            self._check(cancel)
        except (_Cancelled, DeliveryFailed):
            raise
        except Exception as exc:
            return self._failed(message, cancel, reporter, exc)

        reporter.stop()
        poster = result.poster
        poster_key = f"{prefix}{poster}" if poster and (out_dir / poster).is_file() else None
        renditions = tuple(
            Rendition(height=int(r.height), width=int(r.width), bitrate=int(r.bitrate),
                      playlist=str(r.playlist))
            for r in result.renditions
        )
        completed = self._event(
            message, "completed",
            duration=result.duration, width=result.width, height=result.height,
            renditions=renditions,
            playlist_key=f"{prefix}{result.master_playlist}",
            poster_key=poster_key,
        )
        verdict = self._send_essential(message, completed, cancel)
        if verdict in STALE_VERDICTS:
            # Another attempt owns the video now; it still needs the source.
            log.info("job %s attempt %d finished but is %s: source kept", message.job_id,
                     message.attempt, verdict)
            return "skipped"
        # Reported and applied: the temporary upload is no longer needed.
        try:
            self.storage.delete(message.source_key)
        except Exception as exc:  # harmless leftover; never turn a success into a failure
            log.warning("job %s: could not delete the source %s: %r", message.job_id,
                        message.source_key, exc)
        return "completed"

    def _failed(self, message: JobMessage, cancel: threading.Event,
                reporter: _ProgressReporter, exc: Exception) -> str:
        """Report what broke a job (or chunk job) as a `failed` event of the fitting kind."""
        if cancel.is_set():  # whatever broke, it broke because we were stopping it
            raise _Cancelled() from exc
        reporter.stop()
        kind = _error_kind(exc)
        failure = exc if isinstance(exc, TranscodeFailure) else None
        code = failure.code if failure else None
        text = (failure.message if failure else "") or str(exc) or type(exc).__name__
        detail = failure.detail if failure else ""  # FFmpeg's stderr: logs only
        if kind == "media":
            log.info("job %s: bad source (%s): %s%s", message.job_id, code, text,
                     f"\n{detail}" if detail else "")
            return self._fail(message, cancel, code or "invalid_media", text, retryable=False)
        if kind == "transcode":
            log.warning("job %s: transcoding failed (%s): %s%s", message.job_id, code, text,
                        f"\n{detail}" if detail else "")
            return self._fail(message, cancel, code or "transcode_failed", text, retryable=True)
        log.exception("job %s: unexpected error", message.job_id)
        return self._fail(message, cancel, "internal_error",
                          f"{type(exc).__name__}: {exc}", retryable=True)

    def _early_pass(
        self, message: JobMessage, prefix: str, source: Path, job_dir: Path,
        reporter: _ProgressReporter, cancel: threading.Event,
    ) -> str:
        """Make (or reuse) the early rendition, upload it and send `playable`. Returns "none"
        (no early rendition: audio only, not possible, or it failed), "playable", or "stale"
        (the server has moved on: stop, and keep hands off the source)."""
        early = self.early
        if early is None:
            return "none"

        fields: dict[str, Any] = {}
        try:
            if self.storage.head(f"{prefix}{EARLY_PLAYLIST}") is not None and \
                    self.storage.head(f"{prefix}{MASTER_PLAYLIST}") is not None:
                log.info("job %s: early output already complete in storage: reused",
                         message.job_id)
            else:
                out_dir = job_dir / "early"
                out_dir.mkdir()
                kwargs: dict[str, Any] = {"check": lambda: self._check(cancel),
                                          "timeout": self.ffmpeg_timeout}
                result = early(source, out_dir, **kwargs)
                if result is None:
                    return "none"
                self._check(cancel)
                self._upload_early(message, prefix, out_dir, result.master_playlist, cancel)
                fields = {"duration": result.duration, "width": result.width,
                          "height": result.height, "renditions": (result.rendition,)}
        except (_Cancelled, DeliveryFailed):
            raise
        except Exception as exc:
            if cancel.is_set():
                raise _Cancelled() from exc
            # Never fatal: the ladder follows and reports what is wrong with the source, if
            # anything (FFmpeg's stderr in `detail`: logs only).
            detail = exc.detail if isinstance(exc, TranscodeFailure) else ""
            log.warning("job %s: no early rendition (%s)%s", message.job_id, exc,
                        f"\n{detail}" if detail else "")
            return "none"
        event = self._event(message, "playable", playlist_key=f"{prefix}{MASTER_PLAYLIST}",
                            **fields)
        # Paused progress: a progress write racing this one must not carry the video's old
        # `playable` back (the server compares and sets on the status only).
        with reporter.paused():
            verdict = self._send_essential(message, event, cancel)
        if verdict in STALE_VERDICTS:
            log.info("job %s attempt %d is %s for the server at playable: stopped",
                     message.job_id, message.attempt, verdict)
            return "stale"
        return "playable"

    def _upload_early(self, message: JobMessage, prefix: str, out_dir: Path, master: str,
                      cancel: threading.Event) -> None:
        # Segments, then the media playlist (its presence marks a complete early output for a
        # redelivery), the master last: a reader never finds a name not uploaded yet.
        files = sorted((p for p in out_dir.rglob("*") if p.is_file()),
                       key=lambda p: (p.relative_to(out_dir).as_posix() == master,
                                      p.suffix == ".m3u8", p.name))
        for path in files:
            self._check(cancel)
            self.storage.upload_file(path, prefix + path.relative_to(out_dir).as_posix(),
                                     content_type(path))
        log.info("job %s: early rendition uploaded (%d files)", message.job_id, len(files))

    def _call_transcode(
        self, source: Path, out_dir: Path, reporter: _ProgressReporter, cancel: threading.Event,
        **extra: Any,
    ) -> TranscodeResult:
        transcode = self.transcode
        kwargs: dict[str, Any] = {"on_progress": reporter.on_progress, "timeout": self.ffmpeg_timeout}
        kwargs.update((k, v) for k, v in extra.items() if _accepts(transcode, k))
        if self.preset is not None:
            kwargs["preset"] = self.preset
        if _accepts(transcode, "cancel"):
            kwargs["cancel"] = cancel
        return transcode(source, out_dir, **kwargs)

    def _upload(
        self,
        message: JobMessage,
        prefix: str,
        out_dir: Path,
        result: TranscodeResult,
        reporter: _ProgressReporter,
        cancel: threading.Event,
        *,
        early_in_use: bool = False,
    ) -> None:
        master = result.master_playlist

        def order(path: Path) -> tuple[int, str]:
            rel = path.relative_to(out_dir).as_posix()
            # Segments and poster first, media playlists next, the master last: a reader never
            # finds a playlist that names a file not uploaded yet.
            rank = 2 if rel == master else 1 if path.suffix == ".m3u8" else 0
            return rank, rel

        # Regular files only: a symlink in the output (never FFmpeg's) is not followed out.
        files = sorted((p for p in out_dir.rglob("*") if p.is_file() and not p.is_symlink()),
                       key=order)
        total = sum(p.stat().st_size for p in files) or 1
        done = 0
        uploaded: set[str] = set()
        for path in files:
            self._check(cancel)
            key = prefix + path.relative_to(out_dir).as_posix()
            self.storage.upload_file(path, key, content_type(path))
            uploaded.add(key)
            done += path.stat().st_size
            reporter.update("uploading", done * 100 // total)
        log.info("job %s: uploaded %d file(s) under %s", message.job_id, len(files), prefix)
        # Only now, and only what was not just replaced (an earlier, failed run's leftovers):
        # deleting first would let a run stopped after that step leave a complete output, made
        # by another worker that took over the job, without its files.
        self._check(cancel)
        stale_prefixes = tuple(prefix + p for p in _stale_prefixes(early_in_use))
        stale = [info.key for info in self.storage.list_objects(prefix)
                 if info.key.startswith(stale_prefixes) and info.key not in uploaded]
        for key in stale:
            self.storage.delete(key)
        if stale:
            log.info("job %s: removed %d stale object(s) under %s", message.job_id, len(stale),
                     prefix)

    def _fail(
        self, message: JobMessage, cancel: threading.Event, code: str, text: str, *,
        retryable: bool,
    ) -> str:
        event = self._event(
            message, "failed", error_code=code, error_message=text[:MAX_ERROR_MESSAGE],
            retryable=retryable,
        )
        self._send_essential(message, event, cancel)
        return "failed"
