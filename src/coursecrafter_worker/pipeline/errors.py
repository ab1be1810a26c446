"""The two ways a transcode can fail (defined with the transcoder port, coursecrafter_worker.transcoding).

- `MediaError`: the source is bad (not media, cut off, too large, makes FFmpeg spin). Retrying the
  same bytes gives the same answer, so the runner reports it with `retryable=False`.
- `TranscodeError`: the machine failed (FFmpeg crashed or was killed by someone other than us,
  disk full, output missing). Retryable.

Both carry `.code` (short snake_case, goes into the webhook's `error_code`), `.message` (readable,
shown to the instructor) and `.detail` (FFmpeg's stderr tail or similar, for logs only: never show
it to users, it contains paths).
"""

from __future__ import annotations

from coursecrafter_worker.transcoding import MediaError, TranscodeError, TranscodeFailure  # noqa: F401

NOT_MEDIA_MESSAGE = "The file is not a video or audio file FFmpeg can read."
TRUNCATED_MESSAGE = (
    "The file is incomplete: it looks cut off (the recording or the copy did not finish). "
    "Export or copy it again and re-upload it."
)
