"""The FFmpeg pipeline: a pure library the job runner calls (DESIGN.md "Transcoding").

    info = probe(path)                      # MediaInfo, or MediaError for a bad source
    rungs = plan_ladder(info)               # pure
    result = transcode(path, out_dir, on_progress=cb, timeout=..., preset="veryfast")

`transcode()` probes by itself; `probe()`/`plan_ladder()` are public for the runner and tests.
Outputs (relative to out_dir): `hls/master.m3u8`, `hls/{tier}p/index.m3u8` + `seg_NNNNN.ts`
(audio-only, or the audio rendition of a ladder whose audio is encoded: `hls/audio/...`),
`poster.jpg` (video only).

Errors: `MediaError` (bad source, not retryable) and `TranscodeError` (machine failure,
retryable), both with `.code`, `.message` (for the instructor) and `.detail` (for logs).
"""

from coursecrafter_worker.messages import Rendition

from .errors import MediaError, TranscodeError
from .ladder import Rung, plan_ladder
from .probe import MediaInfo, probe
from .process import find_ffmpeg
from .transcode import TranscodeResult, build_command, transcode

__all__ = [
    "MediaError",
    "MediaInfo",
    "Rendition",
    "Rung",
    "TranscodeError",
    "TranscodeResult",
    "build_command",
    "find_ffmpeg",
    "plan_ladder",
    "probe",
    "transcode",
]
