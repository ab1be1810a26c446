"""``coursecrafter videos list | status | wait | retry``.

Stable output (stdout; ``<line>`` is ``<id>  <state>  <title>`` where ``<state>`` reads
``processing (transcoding, 42%)``, ``failed: <error message>``, ``ready`` ...):

===========  ======================================================  ===================================
command      human                                                   ``--json``
===========  ======================================================  ===================================
videos list  one ``<line>`` per video (none: ``No videos yet.`` on   a JSON array of video records
             stderr)
status       ``<line>``; when ready also ``playback: <url>`` /       the video record (``GET /videos/{id}``)
             ``download: <url>``
wait         like ``status``, once the video is ``ready`` or          the final video record
             ``failed`` (progress bar by phase on stderr)
retry        ``<line>`` (the video is back in the queue)             the video record
===========  ======================================================  ===================================

``status`` and ``wait`` exit 5 when the video is ``failed`` (``error: video <id> failed:
<message>`` on stderr); ``wait --timeout`` exits 1 when time runs out; Ctrl-C during ``wait``
exits 130 (the video keeps processing on the server).
"""

import time
from typing import Annotated, Any

import enum

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from coursecrafter_cli.client import Client
from coursecrafter_cli.commands.common import (
    ApiUrlOption,
    ProfileOption,
    ExitCode,
    JsonOption,
    emit,
    emit_json,
    error,
    handle_errors,
    info,
    make_client,
    report,
    stderr_console,
)
from coursecrafter_cli.errors import NotFound
from coursecrafter_cli.terminal import printable

app = typer.Typer(
    name="videos",
    help="List, rename and delete your videos.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

VideoIdArgument = Annotated[str, typer.Argument(metavar="VIDEO_ID", help="The video id.",
                                                show_default=False)]
CourseFilterOption = Annotated[
    str | None, typer.Option("--course", metavar="ID", help="Only the videos of this course.")
]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", metavar="SECONDS", min=0,
                 help="Give up waiting after this many seconds (exit 1). Default: no limit."),
]
class Until(str, enum.Enum):
    PLAYABLE = "playable"
    READY = "ready"


UntilOption = Annotated[
    Until,
    typer.Option("--until", case_sensitive=False,
                 help="Stop waiting once the video is playable (an early rendition can be "
                      "watched while the rest is processed) or ready (default)."),
]
IntervalOption = Annotated[
    float, typer.Option("--interval", metavar="SECONDS", min=0.1, help="Seconds between polls.")
]


# --------------------------------------------------------------------------- formatting


def state_text(video: dict[str, Any]) -> str:
    """``processing (transcoding, 42%)``, ``failed: <message>``, ``ready``..."""
    status = str(video.get("status") or "unknown")
    if status == "failed":
        err = video.get("error") or {}
        message = err.get("message") if isinstance(err, dict) else None
        return f"failed: {message}" if message else "failed"
    if status in ("queued", "processing"):
        details = [str(video["phase"])] if video.get("phase") else []
        if status == "processing":
            details.append(f"{int(video.get('progress') or 0)}%")
        if video.get("playable"):
            details.append("playable")
        return f"{status} ({', '.join(details)})" if details else status
    return status


def video_line(video: dict[str, Any]) -> str:
    return f"{video.get('id')}  {state_text(video)}  {video.get('title', '')}"


def emit_video(video: dict[str, Any]) -> None:
    emit(video_line(video))
    if video.get("status") in ("queued", "processing") and video.get("playable") \
            and video.get("playback_url"):
        emit(f"playable now: {video['playback_url']}")
    if video.get("status") == "ready":
        if video.get("playback_url"):
            emit(f"playback: {video['playback_url']}")
        if video.get("download_url"):
            emit(f"download: {video['download_url']}")


def failed_exit(video: dict[str, Any]) -> ExitCode:
    """Print the failure and return exit 5 (or OK for any other status)."""
    if video.get("status") != "failed":
        return ExitCode.OK
    err = video.get("error") or {}
    message = err.get("message") if isinstance(err, dict) else None
    error(f"video {video.get('id')} failed: {message or 'no reason given'}")
    info(next_step_after_failure(video))
    return ExitCode.VIDEO_FAILED


#: Failures that lie in the file itself (the worker's MediaError codes, and an upload whose
#: source is gone): a retry would fail the same way, so the advice is what to do instead.
NOT_RETRYABLE: dict[str, str] = {
    "not_media": "this file is not a video or audio recording: upload the recording itself "
                 "(slides and notes go up with --attachment)",
    "no_streams": "the file has no video or audio track: upload the recording itself",
    "empty": "the file is empty: upload the recording again from where it was saved",
    "truncated": "the file is incomplete (cut off while it was recorded or copied): upload a "
                 "complete copy",
    "decode_failed": "the file is damaged: export or copy the recording again and upload the "
                     "new file",
    "unsupported_codec": "re-export the recording as H.264/AAC (an .mp4) and upload that",
    "too_large": "re-export the recording at 1080p (or at most 4K) and upload that",
    "upload_expired": "the uploaded file is no longer stored: upload the recording again",
}


def next_step_after_failure(video: dict[str, Any]) -> str:
    """What to do about a failed video: ``coursecrafter retry`` only when a retry can help."""
    err = video.get("error") or {}
    code = err.get("code") if isinstance(err, dict) else None
    advice = NOT_RETRYABLE.get(str(code))
    if advice:
        return f"a retry would fail the same way; {advice}"
    return f"run `coursecrafter retry {video.get('id')}` to try again"


# --------------------------------------------------------------------------- waiting


def wait_with_progress(client: Client, video_id: str, *, timeout: float | None,
                       interval: float, until: str = "ready") -> dict[str, Any]:
    """Poll until ready/failed with a progress bar by phase on stderr (a plain line per
    status change when stderr is not a terminal).  Raises TimeoutError, KeyboardInterrupt."""
    console = stderr_console()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )
    last: dict[str, Any] = {"state": None, "playable": False}
    started = time.monotonic()

    with progress:
        task = progress.add_task("waiting", total=100)

        def on_update(video: dict[str, Any]) -> None:
            status = str(video.get("status"))
            phase = video.get("phase")
            label = f"{status} ({phase})" if phase and status == "processing" else status
            done = 100 if status in ("ready", "failed") else int(video.get("progress") or 0)
            # The bar's description is rich markup: a server's "[link=...]" must stay text.
            progress.update(task, description=escape(printable(label)), completed=done)
            state = (status, phase)
            if not console.is_terminal and state != last["state"]:
                info(f"video {video_id}: {label}")
            last["state"] = state
            if video.get("playable") and not last["playable"] and status != "failed":
                last["playable"] = True
                where = f": {video['playback_url']}" if video.get("playback_url") else ""
                progress.console.print(
                    f"video {video_id}: playable after {time.monotonic() - started:.1f} s"
                    f"{where}", markup=False, highlight=False, soft_wrap=True)

        return client.wait_for_video(video_id, poll_interval=interval, timeout=timeout,
                                     on_update=on_update, until=until)


def finish_wait(client: Client, video_id: str, *, timeout: float | None, interval: float,
                json_output: bool, until: str = "ready") -> None:
    """``wait`` and ``upload --wait``: wait, print the record, exit 0 / 1 / 5 / 130."""
    try:
        video = wait_with_progress(client, video_id, timeout=timeout, interval=interval,
                                   until=until)
    except TimeoutError as exc:
        error(str(exc))
        raise typer.Exit(int(ExitCode.ERROR)) from None
    except KeyboardInterrupt:
        info(f"interrupted; the video keeps processing on the server: "
             f"run `coursecrafter wait {video_id}` to follow it")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    if json_output:
        emit_json(video)
    else:
        emit_video(video)
    raise typer.Exit(int(failed_exit(video)))


# --------------------------------------------------------------------------- commands


@app.command("list")
@handle_errors
def list_videos(
    course: CourseFilterOption = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List your videos and attachments (newest first, as the server orders them)."""
    with make_client(api_url) as client:
        videos = client.list_videos(course)
    if json_output:
        emit_json(videos)
        return
    if not videos:
        info("No videos yet.")
    for video in videos:
        emit(video_line(video))


@handle_errors
def status(
    video_id: VideoIdArgument,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a video's status (exit 5 when it failed)."""
    with make_client(api_url) as client:
        video = client.get_video(video_id)
    if json_output:
        emit_json(video)
    else:
        emit_video(video)
    raise typer.Exit(int(failed_exit(video)))


@handle_errors
def wait(
    video_id: VideoIdArgument,
    timeout: TimeoutOption = None,
    interval: IntervalOption = 2.0,
    until: UntilOption = Until.READY,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Wait until a video is ready, or with --until playable watchable (exit 0), or failed (5)."""
    with make_client(api_url) as client:
        finish_wait(client, video_id, timeout=timeout, interval=interval, json_output=json_output,
                    until=Until(until).value)


@handle_errors
def retry(
    video_id: VideoIdArgument,
    wait_flag: Annotated[bool, typer.Option("--wait", help="Then wait until ready or failed.")] = False,
    timeout: TimeoutOption = None,
    interval: IntervalOption = 2.0,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Send a failed video back to the transcoding queue."""
    with make_client(api_url) as client:
        try:
            video = client.retry_video(video_id)
        except NotFound as exc:
            if exc.message == "Not Found":  # the route itself is missing
                error(f"this server does not support retry yet (HTTP 404 for {client.api_url})")
                raise typer.Exit(int(ExitCode.ERROR)) from None
            raise typer.Exit(int(report(exc))) from None
        if wait_flag:
            info(f"video {video_id}: {state_text(video)}")
            finish_wait(client, video_id, timeout=timeout, interval=interval,
                        json_output=json_output)
    if json_output:
        emit_json(video)
    else:
        emit(video_line(video))


def add_to(main: typer.Typer) -> None:
    """Register ``videos list`` and the top-level ``status``, ``wait`` and ``retry``."""
    main.add_typer(app, name="videos")
    main.command("status")(status)
    main.command("wait")(wait)
    main.command("retry")(retry)
