"""The two ways a transcode can fail.

- `MediaError`: the source is bad (not media, cut off, too large, makes FFmpeg spin). Retrying the
  same bytes gives the same answer, so the runner reports it with `retryable=False`.
- `TranscodeError`: the machine failed (FFmpeg crashed or was killed by someone other than us,
  disk full, output missing). Retryable.

Both carry `.code` (short snake_case, goes into the webhook's `error_code`), `.message` (readable,
shown to the instructor) and `.detail` (FFmpeg's stderr tail or similar, for logs only: never show
it to users, it contains paths).
"""

from __future__ import annotations


class _PipelineError(Exception):
    retryable: bool = False

    def __init__(self, code: str, message: str, *, detail: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail


class MediaError(_PipelineError):
    """The source file is bad: not retryable."""

    retryable = False


class TranscodeError(_PipelineError):
    """The machine failed (FFmpeg crashed or was killed, disk full): retryable."""

    retryable = True


NOT_MEDIA_MESSAGE = "The file is not a video or audio file FFmpeg can read."
TRUNCATED_MESSAGE = (
    "The file is incomplete: it looks cut off (the recording or the copy did not finish). "
    "Export or copy it again and re-upload it."
)
