"""Why FFmpeg could not read an input, in words a user can act on: `classify_failure` turns an
FFmpeg run's exit and stderr into a `MediaError` (the file's fault: not retried) or a
`TranscodeError` (the machine's: retried)."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import NOT_MEDIA_MESSAGE, TRUNCATED_MESSAGE, MediaError, TranscodeError
from .process import FFmpegRun

# Errors


def _looks_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) >= 8 and head[4:8] in (b"ftyp", b"wide", b"mdat", b"free", b"skip")


def mp4_box_overruns(path: Path) -> bool:
    """An MP4 whose top-level box declares more bytes than the file holds: cut off."""
    if not _looks_like_mp4(path):
        return False
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            head = f.read(16)
            box = int.from_bytes(head[:4], "big")
            if box == 1 and len(head) == 16:
                box = int.from_bytes(head[8:16], "big")
            if box == 0:
                return False  # extends to the end of the file
            if box < 8:
                return False
            if offset + box > size:
                return True
            offset += box
    return False


#: How FFmpeg 5.x and ffprobe say that opening the input hit the end of the file: the input URL
#: and the error on a line of their own (FFmpeg 7+: "Error opening input: End of file").
_EOF_OPENING = re.compile(r"^file:.*: End of file\s*$", re.MULTILINE)


def classify_failure(run: FFmpegRun, source: Path, *, what: str = "read") -> MediaError | TranscodeError:
    """Turn a failed FFmpeg run on `source` into the error the runner reports."""
    stderr = run.stderr
    lower = stderr.lower()
    detail = stderr[-4000:]
    if run.timed_out:
        return MediaError(
            "timeout",
            "Processing the file took too long and was stopped; the file may be damaged or "
            "unusually long.",
            detail=f"killed after {run.elapsed:.1f} s\n{detail}",
        )
    if run.returncode < 0:
        return TranscodeError(
            "ffmpeg_killed",
            "The transcoder stopped unexpectedly; the job will be retried.",
            detail=f"FFmpeg died of signal {-run.returncode}\n{detail}",
        )
    if "no space left on device" in lower or "disk quota exceeded" in lower:
        return TranscodeError("disk_full", "The worker ran out of disk space; the job will be retried.",
                              detail=detail)
    if "cannot allocate memory" in lower or "out of memory" in lower:
        return MediaError(
            "out_of_memory",
            "Processing this file needs more memory than a worker allows; the video is probably "
            "too large.",
            detail=detail,
        )
    try:
        size = source.stat().st_size
    except OSError:
        size = -1
    if size == 0:
        return MediaError("empty", "The file is empty.", detail=detail)
    if "moov atom not found" in lower and "misdetection possible" not in lower and _looks_like_mp4(source):
        return MediaError(
            "truncated",
            "The file is incomplete: it looks cut off (the recording or the copy did not finish). "
            "Export or copy it again and re-upload it.",
            detail=detail,
        )
    if "partial file" in lower and what != "read":
        # The index was there (probe passed) but the data it points to is not: nothing decodable.
        return MediaError(
            "truncated",
            "The file is incomplete: it looks cut off (the recording or the copy did not finish). "
            "Export or copy it again and re-upload it.",
            detail=detail,
        )
    if "error opening input: end of file" in lower or _EOF_OPENING.search(stderr):
        # The demuxer ran out of bytes while still reading the file's header (an MP4 index or a
        # Matroska header cut short).
        return MediaError("truncated", TRUNCATED_MESSAGE, detail=detail)
    decoder = re.search(r"(?:Decoder|decoder) \(codec ([\w-]+)\) not found", stderr)
    if decoder:
        return MediaError("unsupported_codec",
                          f"The file uses a codec FFmpeg cannot decode ({decoder.group(1)}).",
                          detail=detail)
    if what == "read" or "error opening input" in lower:
        return MediaError("not_media", NOT_MEDIA_MESSAGE, detail=detail)
    input_side = (
        "invalid data found when processing input",
        "error while decoding",
        "corrupt",
        "partial file",
        "error opening input",
        "could not find codec parameters",
        "invalid nal unit",
        "decoding error",
        "decode error rate",
        "received no packets",
        "nothing was encoded",
    )
    if any(marker in lower for marker in input_side):
        return MediaError("decode_failed", "FFmpeg could not decode the file; it may be damaged.",
                          detail=detail)
    return TranscodeError(
        "ffmpeg_failed",
        "The transcoder failed; the job will be retried.",
        detail=f"FFmpeg exited with status {run.returncode}\n{detail}",
    )
