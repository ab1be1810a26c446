"""``coursecrafter upload FILE``: straight to object storage, parallel parts, resumable.

Output:

* stdout, human: ``Uploaded <file name> as video <id> (<status>).`` (``attachment`` for
  ``--attachment``); with ``--wait`` then the ``status`` line(s) of the finished video.
* stdout, ``--json``: the video record (``GET /videos/{id}``) and nothing else; with ``--wait``
  the record once it is ready or failed.
* stderr: a progress bar (bytes, rate, ETA) when stderr is a terminal, else one summary line
  (``uploaded 20.0 MiB in 1.2 s (16.7 MiB/s)``); ``resuming upload <id>: <n> of <m> part(s)
  already in storage (...)`` when an earlier run was interrupted; ``warning: part <n>: ...;
  retrying in <s> s (attempt <k> of <max>)`` for retried parts.

Exit codes: 0 ok; 1 error (empty file, unsupported type, course not found, a part failing after
every retry: the state is kept, run the same command again); 2 usage (missing file...); 4 not
logged in; 5 the video failed (``--wait``); 130 Ctrl-C (``interrupted; run the same command
again to resume``).  Resume state: see :mod:`coursecrafter_cli.uploads`.
"""

import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from coursecrafter_cli.commands.common import (
    ApiUrlOption,
    ProfileOption,
    ExitCode,
    JsonOption,
    emit,
    emit_json,
    handle_errors,
    info,
    make_client,
    report,
    stderr_console,
    usage_error,
)
from coursecrafter_cli.commands.videos import (
    IntervalOption,
    TimeoutOption,
    Until,
    UntilOption,
    finish_wait,
)
from coursecrafter_cli.errors import APIError
from coursecrafter_cli.terminal import printable
from coursecrafter_cli.uploads import DEFAULT_CONCURRENCY, UploadEvent

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:/s)?\s*$", re.IGNORECASE)


def parse_rate(value: str) -> float:
    """``"20M"`` → 20 MiB/s in bytes (K, M, G are powers of 1024, like curl's --limit-rate)."""
    match = _RATE.match(value)
    if not match:
        raise ValueError(f"invalid rate {value!r}: use bytes per second such as 500K, 20M or 1G")
    number, unit = float(match.group(1)), match.group(2).lower()
    rate = number * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    if rate < 1024:
        raise ValueError(f"rate {value!r} is too low: at least 1K")
    return rate


def check_readable_file(file: Path) -> None:
    """A usage error (one ``error:`` line, exit 2) unless ``file`` is a file we can read."""
    if file.is_dir():
        usage_error(f"{file} is a directory: upload takes one file (a recording, or slides "
                    "with --attachment)")
    try:
        with open(file, "rb"):
            pass
    except FileNotFoundError:
        usage_error(f"{file}: no such file")
    except OSError as exc:
        usage_error(f"cannot read {file}: {(exc.strerror or str(exc)).lower()}")


def _mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


class _Display:
    """The progress bar (terminal) or plain stderr lines, fed by the SDK's callbacks."""

    def __init__(self, name: str) -> None:
        self.console = stderr_console()
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
            transient=False,
        )
        self.name = name
        self.checksum_task: TaskID | None = None
        self.upload_task: TaskID | None = None
        self.started = time.monotonic()
        self.first_done: int | None = None

    def __enter__(self) -> "_Display":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def say(self, message: str, style: str = "") -> None:
        self.console.print(Text(printable(message, multiline=True), style=style))

    def event(self, event: UploadEvent) -> None:
        if event.kind == "checksum":
            self.checksum_task = self.progress.add_task("checksum", total=event.data.get("total"))
        elif event.kind == "checksum_progress" and self.checksum_task is not None:
            self.progress.update(self.checksum_task, completed=event.data.get("done", 0))
        elif event.kind in ("resumed", "restarted", "stopping"):
            self.say(event.message)
        elif event.kind == "retry":
            self.say(f"warning: {event.message}", "yellow")

    def bytes_done(self, done: int, total: int) -> None:
        if self.upload_task is None:
            self.upload_task = self.progress.add_task(self.name, total=total)
            self.first_done = done
            self.started = time.monotonic()
        self.progress.update(self.upload_task, completed=done)
        self.last_done, self.total = done, total

    def summary(self) -> None:
        if self.upload_task is None:
            return
        sent = self.last_done - (self.first_done or 0)
        elapsed = max(time.monotonic() - self.started, 1e-6)
        already = f" ({_mib(self.first_done)} were already there)" if self.first_done else ""
        if not self.live:
            info(f"uploaded {_mib(sent)} in {elapsed:.1f} s ({_mib(sent / elapsed)}/s){already}")


@handle_errors
def upload(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", show_default=False,
                       help="The recording (or, with --attachment, the slides/notes) to upload."),
    ],
    course: Annotated[
        str | None, typer.Option("--course", metavar="ID", help="Add it to this course.")
    ] = None,
    title: Annotated[
        str | None,
        typer.Option("--title", metavar="TITLE", help="Title (default: the file name)."),
    ] = None,
    attachment: Annotated[
        bool,
        typer.Option("--attachment", help="Slides, notes...: stored as they are, not transcoded."),
    ] = False,
    content_type: Annotated[
        str | None,
        typer.Option("--content-type", metavar="TYPE",
                     help="Override the type guessed from the extension (e.g. video/mp4)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=64, help="Parts sent at once.")
    ] = DEFAULT_CONCURRENCY,
    limit_rate: Annotated[
        str | None,
        typer.Option("--limit-rate", metavar="RATE",
                     help="Cap the upload bandwidth, bytes/s with K/M/G suffixes (e.g. 20M)."),
    ] = None,
    no_checksum: Annotated[
        bool,
        typer.Option("--no-checksum",
                     help="Skip the SHA-256 of the file (saves one read of a huge file)."),
    ] = False,
    wait_flag: Annotated[
        bool, typer.Option("--wait", help="Then wait until the video is ready (0) or failed (5).")
    ] = False,
    timeout: TimeoutOption = None,
    interval: IntervalOption = 2.0,
    until: UntilOption = Until.READY,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Upload a lecture recording (resumable: run the same command again after an interruption)."""
    check_readable_file(file)
    try:
        max_bandwidth = parse_rate(limit_rate) if limit_rate else None
    except ValueError as exc:
        usage_error(f"--limit-rate: {exc}")
    kind = "attachment" if attachment else "video"
    display = _Display(file.name)
    with make_client(api_url) as client:
        try:
            with display:
                video: dict[str, Any] = client.upload(
                    file, course_id=course, title=title, kind=kind, content_type=content_type,
                    concurrency=concurrency, progress=display.bytes_done, on_event=display.event,
                    checksum=not no_checksum, max_bandwidth=max_bandwidth,
                )
        except KeyboardInterrupt:
            info("interrupted; run the same command again to resume")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except APIError as exc:
            code = report(exc)
            if exc.status_code == 415 and not attachment:
                info("hint: slides, notes and other documents go up with --attachment")
            raise typer.Exit(int(code)) from None
        display.summary()
        if wait_flag:
            if not json_output:
                emit(f"Uploaded {file.name} as {kind} {video.get('id')} ({video.get('status')}).")
            finish_wait(client, str(video["id"]), timeout=timeout, interval=interval,
                        json_output=json_output, until=Until(until).value)
    if json_output:
        emit_json(video)
        return
    emit(f"Uploaded {file.name} as {kind} {video.get('id')} ({video.get('status')}).")
    if kind == "video":
        info(f"next: `coursecrafter wait {video.get('id')}` follows the transcoding "
             f"(or `coursecrafter status {video.get('id')}`)")
