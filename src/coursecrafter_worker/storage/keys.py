"""The storage key layout, in one place (docs/architecture.md "Video lifecycle"):

    uploads/{video_id}/source          a video's upload (temporary: deleted after success)
    uploads/{video_id}/pieces/{tag}.nut  a long source cut for chunked transcoding (temporary:
                                       `v0000`… picture pieces, `audio`; deleted with the source)
    attachments/{video_id}/source      an attachment (kept: it is the thing itself)
    videos/{video_id}/                 a video's outputs:
        hls/master.m3u8                    the master playlist (the early one, then the ladder's)
        hls/{tier}p/index.m3u8, seg_…      the ladder's renditions (`hls/audio/` for audio only)
        hls/early/index.m3u8, seg_…        the early rendition (playable before the ladder)
        hls/{tier}p/{tag}_seg_…            a chunked ladder's segments, piece `tag` (and
        hls/audio/audio_seg_…              its one audio rendition), joined by the playlists
        chunks/{tag}/master.m3u8, {rung}.m3u8   each piece's own playlists, read by the join
                                           (deleted once the video is ready)
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


def pieces_prefix(video_id: str) -> str:
    """Where the pieces of a chunked source are kept until the join has run."""
    return f"uploads/{video_id}/pieces/"


def piece_key(video_id: str, tag: str) -> str:
    return f"{pieces_prefix(video_id)}{tag}.nut"


CHUNKS_DIR = "chunks"


def chunk_dir(tag: str) -> str:
    """A piece's own playlists, relative to the output prefix (not served: the join's are;
    removed once the video is ready)."""
    return f"{CHUNKS_DIR}/{tag}/"


def attachment_key(video_id: str) -> str:
    return f"attachments/{video_id}/source"


def output_prefix(video_id: str) -> str:
    """Everything the worker makes for a video lives under this prefix."""
    return f"videos/{video_id}/"


def prefixes(video_id: str) -> tuple[str, ...]:
    """Every prefix a video's objects may be under (a delete removes them all)."""
    return tuple(f"{root}{video_id}/" for root in VIDEO_ROOTS)
