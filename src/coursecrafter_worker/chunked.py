"""The chunked path of a job (DESIGN.md "Transcoding"; the media side is pipeline/chunks.py).

A whole-video job whose source is long enough (`COURSECRAFTER_CHUNK_SECONDS`) is cut instead of
transcoded: after the early pass its worker splits the source into pieces, uploads them
(`uploads/{video}/pieces/`) and sends `chunked`; the server then queues one chunk job per piece
(picture pieces, the audio piece) and, once every one of them has completed, exactly one join.
Each chunk job is an ordinary job message (`JobMessage.chunk` set) that any worker takes from the
same queue, with the same guarantees: events of the chunk's own attempt, essential events
delivered before the ack, a redelivered chunk re-made and its stale outputs replaced.

    piece: started → download piece → transcode (the ladder, timestamps kept) → upload segments,
           then its playlists under chunks/{tag}/ → completed (the chunk's)
    join:  started → read every piece's playlists → upload the joined rung playlists, the master
           last → completed (the video's: it is `ready`) → delete the source and the pieces
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coursecrafter_worker.messages import ChunkRef, JobMessage, Rendition
from coursecrafter_worker.storage import NoSuchKey
from coursecrafter_worker.storage.keys import (
    CHUNKS_DIR,
    MASTER_PLAYLIST,
    POSTER,
    chunk_dir,
    piece_key,
    pieces_prefix,
)
from coursecrafter_worker.runner import STALE_VERDICTS, content_type
from coursecrafter_worker.transcoding import TranscodeError

if TYPE_CHECKING:
    from coursecrafter_worker.runner import JobRunner, _ProgressReporter

log = logging.getLogger(__name__)

MAX_PLAYLIST_BYTES = 4 << 20


def piece_tag(chunk: ChunkRef) -> str:
    from coursecrafter_worker.pipeline.chunks import AUDIO_RUNG
    from coursecrafter_worker.pipeline.chunks import piece_tag as tag_of

    return AUDIO_RUNG if chunk.kind == "audio" else tag_of(chunk.index)


def cut(runner: JobRunner, message: JobMessage, prefix: str, source: Path, job_dir: Path,
        cancel: threading.Event) -> str | None:
    """After the early pass of a whole-video job: cut a long source and hand its pieces to the
    server. Returns "chunked" (the server has queued the chunk jobs: ack), "stale" (the server
    has moved on), or None (transcode it whole: short, or cutting did not work)."""
    from coursecrafter_worker.pipeline.chunks import plan

    try:
        made = plan(source, job_dir / "pieces", runner.chunk_seconds)
        if made is None:
            return None
        for piece in made.pieces:  # the audio last: it is the smallest and needed latest
            runner._check(cancel)
            runner.storage.upload_file(piece.path, piece_key(message.video_id, piece.tag),
                                       "application/octet-stream")
    except Exception as exc:
        if cancel.is_set():
            runner._check(cancel)
        # Never fatal: the whole-video ladder follows and reports what is wrong, if anything.
        log.warning("job %s: not chunked (%s): transcoded whole", message.job_id, exc)
        return None
    info = made.info
    event = runner._event(
        message, "chunked", pieces=len(made.pictures), audio=made.audio is not None,
        content=made.content, starts=tuple(round(p.start, 6) for p in made.pictures),
        duration=round(info.duration, 3), width=info.width, height=info.height,
    )
    verdict = runner._send_essential(message, event, cancel)
    log.info("job %s: cut into %d piece(s)%s: %s", message.job_id, len(made.pictures),
             " + audio" if made.audio else "", verdict)
    return "stale" if verdict in STALE_VERDICTS else "chunked"


def run_chunk(runner: JobRunner, message: JobMessage, prefix: str, job_dir: Path,
              reporter: _ProgressReporter, cancel: threading.Event) -> str:
    """One chunk job, start to reported outcome (the caller maps exceptions as for any job)."""
    chunk = message.chunk
    assert chunk is not None
    if chunk.kind == "join":
        return _join(runner, message, prefix, job_dir, reporter, cancel)
    tag = piece_tag(chunk)
    piece = job_dir / "piece.nut"
    try:
        runner.storage.download_file(piece_key(message.video_id, tag), piece)
    except NoSuchKey:
        reporter.stop()
        return runner._fail(message, cancel, "source_missing",
                            f"chunk {tag} of the source is not in storage", retryable=False)
    runner._check(cancel)
    from coursecrafter_worker.pipeline.chunks import TIMELINE_PAD, piece_offset, stage_chunk
    from coursecrafter_worker.pipeline.piece_grid import PieceWindow

    out_dir = job_dir / "out"
    began = time.monotonic()
    if chunk.kind == "audio":
        placed = {"ts_offset": piece_offset(chunk.start)}
    else:  # on the source's frame grid, keeping the frames before the next piece's start
        placed = {"ts_offset": TIMELINE_PAD,
                  "window": PieceWindow(chunk.start, chunk.end, first=chunk.index == 0)}
    result = runner._call_transcode(piece, out_dir, reporter, cancel, content=chunk.content,
                                    poster=chunk.index == 0,  # the lecture's poster: the first
                                    **placed)
    transcoded = time.monotonic() - began
    runner._check(cancel)
    reporter.update("uploading", 0)
    files = stage_chunk(out_dir, tag)
    for number, (path, key) in enumerate(files, 1):
        runner._check(cancel)
        runner.storage.upload_file(path, prefix + key, content_type(path))
        reporter.update("uploading", number * 100 // len(files))
    # What an earlier run of this chunk left that this one did not replace goes, after the
    # upload (as the runner does): a run stopped half-way, its chunk handed to another worker,
    # never removes that worker's files, which carry the same names.
    uploaded = {prefix + key for _, key in files}
    stale = [f"{prefix}hls/{rung}/{tag}_" for rung in
             {key.split("/")[1] for _, key in files if key.startswith("hls/")}]
    for under in (*stale, f"{prefix}{chunk_dir(tag)}"):
        for info in list(runner.storage.list_objects(under)):
            if info.key not in uploaded:
                runner.storage.delete(info.key)
    reporter.stop()
    completed = runner._event(
        message, "completed", duration=result.duration, width=result.width,
        height=result.height, renditions=_renditions(result.renditions),
        playlist_key=f"{prefix}{chunk_dir(tag)}master.m3u8",
    )
    verdict = runner._send_essential(message, completed, cancel)
    # What the benchmark (bench/chunked_transcode.py) reads the per-chunk cost from.
    log.info("job %s chunk %s attempt %d: %.3f s of source transcoded in %.2f s", message.job_id,
             tag, chunk.attempt, result.duration, transcoded)
    return "skipped" if verdict in STALE_VERDICTS else "completed"


def _join(runner: JobRunner, message: JobMessage, prefix: str, job_dir: Path,
          reporter: _ProgressReporter, cancel: threading.Event) -> str:
    from coursecrafter_worker.pipeline.chunks import (
        AUDIO_RUNG,
        ChunkOutput,
        join_playlists,
    )
    from coursecrafter_worker.pipeline.chunks import piece_tag as tag_of

    chunk = message.chunk
    assert chunk is not None
    pictures = [_read_chunk(runner, prefix, tag_of(i)) for i in range(chunk.pieces)]
    audio: ChunkOutput | None = _read_chunk(runner, prefix, AUDIO_RUNG) if chunk.audio else None
    joined = join_playlists(pictures, audio)
    runner._check(cancel)
    _drop_unlisted(runner, prefix, joined.files)
    reporter.update("uploading", 50)
    # Rung playlists first, the master last (it replaces the early one in one write).
    for number, (name, text) in enumerate(
            sorted(joined.files.items(), key=lambda kv: kv[0] == "master.m3u8")):
        runner._check(cancel)
        staged = job_dir / f"joined-{number}.m3u8"
        staged.write_text(text)
        runner.storage.upload_file(staged, f"{prefix}hls/{name}", content_type(staged))
    reporter.stop()
    top = joined.rungs[0] if joined.rungs else None
    poster = f"{prefix}{POSTER}"
    completed = runner._event(
        message, "completed", duration=joined.duration,
        width=top.width if top else None, height=top.height if top else None,
        renditions=tuple(Rendition(height=r.height, width=r.width, bitrate=r.bandwidth,
                                   playlist=f"hls/{r.name}/index.m3u8") for r in joined.rungs),
        playlist_key=f"{prefix}{MASTER_PLAYLIST}",
        poster_key=poster if runner.storage.head(poster) is not None else None,
    )
    verdict = runner._send_essential(message, completed, cancel)
    if verdict in STALE_VERDICTS:
        return "skipped"
    # The video is ready: the temporary upload and its pieces go.
    for what in (message.source_key,):
        try:
            runner.storage.delete(what)
        except Exception as exc:  # a harmless leftover; never turn a success into a failure
            log.warning("job %s: could not delete %s: %r", message.job_id, what, exc)
    # And the pieces' own playlists: only the join reads them (a redelivered join of a ready
    # video is stale for the server and never gets here).
    for prefix_gone in (pieces_prefix(message.video_id), f"{prefix}{CHUNKS_DIR}/"):
        try:
            runner.storage.delete_prefix(prefix_gone)
        except Exception as exc:
            log.warning("job %s: could not delete %s: %r", message.job_id, prefix_gone, exc)
    return "completed"


def _drop_unlisted(runner: JobRunner, prefix: str, files: dict[str, str]) -> None:
    """Delete what an earlier attempt left in the joined rungs' directories (a whole-video
    attempt that died mid-upload, a piece's segments of a count that changed): each rung
    directory then holds exactly its playlist's segments."""
    for name, text in files.items():
        if name == "master.m3u8":
            continue
        folder = name.rsplit("/", 1)[0]
        listed = {line for line in text.splitlines() if line and not line.startswith("#")}
        for info in list(runner.storage.list_objects(f"{prefix}hls/{folder}/")):
            if info.key.rsplit("/", 1)[1] not in listed | {"index.m3u8"}:
                runner.storage.delete(info.key)


def _read_chunk(runner: JobRunner, prefix: str, tag: str) -> Any:
    from coursecrafter_worker.pipeline.chunks import ChunkOutput
    from coursecrafter_worker.pipeline.transcode import parse_master

    base = f"{prefix}{chunk_dir(tag)}"
    master = _read_text(runner, base + "master.m3u8")
    names = [v.uri.split("/")[0] for v in parse_master(master)]
    return ChunkOutput(master, {n: _read_text(runner, f"{base}{n}.m3u8") for n in names})


def _read_text(runner: JobRunner, key: str) -> str:
    try:
        with runner.storage.open_read(key) as stream:
            return stream.read(MAX_PLAYLIST_BYTES).decode("utf-8", errors="replace")
    except NoSuchKey:
        raise TranscodeError("chunk_missing", f"a chunk's output is missing ({key.rsplit('/', 3)[-2]})") from None


def _renditions(renditions: Any) -> tuple[Rendition, ...]:
    return tuple(Rendition(height=int(r.height), width=int(r.width), bitrate=int(r.bitrate),
                           playlist=str(r.playlist)) for r in renditions)

