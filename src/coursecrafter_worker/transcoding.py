"""The transcoder port: what the job runner asks of a pipeline, and what it gets back.

    result: TranscodeResult = transcoder(source, out_dir, on_progress=cb, timeout=..., cancel=ev)

The FFmpeg pipeline (`coursecrafter_worker.pipeline.transcode`) is the adapter; tests pass
doubles. This module imports neither FFmpeg nor ffmpeg-python, so the runner can check results
and failures by type without loading the pipeline.

Failures: `MediaError` (the source is bad: not media, cut off, too large; retrying the same
bytes gives the same answer) and `TranscodeError` (the machine failed: FFmpeg crashed or was
killed, disk full; retryable). Both carry `.code` (snake_case, the webhook's `error_code`),
`.message` (readable, shown to the instructor) and `.detail` (FFmpeg's stderr tail, for logs
only: it holds paths, never show it to users).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from coursecrafter_worker.messages import Rendition
from coursecrafter_worker.storage.keys import MASTER_PLAYLIST, POSTER


class TranscodeFailure(Exception):
    """A transcode that did not produce outputs, with what to tell whom."""

    retryable: bool = False

    def __init__(self, code: str, message: str, *, detail: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail


class MediaError(TranscodeFailure):
    """The source file is bad: not retryable."""

    retryable = False


class TranscodeError(TranscodeFailure):
    """The machine failed (FFmpeg crashed or was killed, disk full): retryable."""

    retryable = True


@dataclass(frozen=True)
class TranscodeResult:
    """What a transcode left in its output directory (paths relative to it)."""

    duration: float
    width: int | None  # None: audio only
    height: int | None
    has_video: bool
    has_audio: bool
    renditions: list[Rendition]
    master_playlist: str = MASTER_PLAYLIST
    poster: str | None = POSTER  # None: none was made (audio only)
    content: str = "motion"  # the ladder's content class (pipeline/ladder.py, "Lecture-aware")


ProgressCallback = Callable[[str, int], None]


class Transcoder(Protocol):
    """An adapter may also take `preset: str` and `cancel: threading.Event` keywords; the runner
    passes them when it has them and the adapter accepts them."""

    def __call__(
        self,
        source: Path,
        out_dir: Path,
        *,
        on_progress: ProgressCallback | None = ...,
        timeout: float | None = ...,
    ) -> TranscodeResult:
        """Write `out_dir/hls/…` (and the poster); raise `MediaError` or `TranscodeError`."""
