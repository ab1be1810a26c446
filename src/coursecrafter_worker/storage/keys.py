"""The storage key layout, in one place (docs/architecture.md "Video lifecycle"):

    uploads/{video_id}/source          a video's upload (temporary: deleted after success)
    attachments/{video_id}/source      an attachment (kept: it is the thing itself)
    videos/{video_id}/                 a video's outputs:
        hls/master.m3u8                    the master playlist (the early one, then the ladder's)
        hls/{tier}p/index.m3u8, seg_…      the ladder's renditions (`hls/audio/` for audio only)
        hls/early/index.m3u8, seg_…        the early rendition (playable before the ladder)
        poster.jpg

Paths inside a video's outputs (`MASTER_PLAYLIST`, `POSTER`, `EARLY_DIR`) are relative to its
output prefix, as the pipeline writes them into its output directory.
"""

from __future__ import annotations

#: Every top-level prefix a video or attachment owns objects under.
VIDEO_ROOTS = ("uploads/", "videos/", "attachments/")

MASTER_PLAYLIST = "hls/master.m3u8"
POSTER = "poster.jpg"
EARLY_DIR = "hls/early"
EARLY_PLAYLIST = f"{EARLY_DIR}/index.m3u8"


def source_key(video_id: str) -> str:
    """Where a video's upload is assembled; the worker reads and then deletes it."""
    return f"uploads/{video_id}/source"


def attachment_key(video_id: str) -> str:
    return f"attachments/{video_id}/source"


def output_prefix(video_id: str) -> str:
    """Everything the worker makes for a video lives under this prefix."""
    return f"videos/{video_id}/"


def prefixes(video_id: str) -> tuple[str, ...]:
    """Every prefix a video's objects may be under (a delete removes them all)."""
    return tuple(f"{root}{video_id}/" for root in VIDEO_ROOTS)
