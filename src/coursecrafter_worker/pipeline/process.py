"""Finding FFmpeg and running it under a timeout and a memory limit.

Every FFmpeg subprocess of the pipeline goes through `run_ffmpeg()`:

- its own session / process group (`start_new_session`), so a timeout kills FFmpeg and anything it
  started with one `killpg(SIGKILL)`;
- `RLIMIT_AS` (address space) set in `preexec_fn`, default max(4 GiB, 2 GiB + 256 MiB per
  CPU) (see `DEFAULT_MEMORY_LIMIT`), overridable with the
  `COURSECRAFTER_FFMPEG_MEMORY_LIMIT` environment variable (bytes, or a number with K/M/G suffix;
  `0` or `unlimited` turns it off) or by assigning `DEFAULT_MEMORY_LIMIT`. Core dumps are off;
- stdin is /dev/null; stderr is drained by a thread that keeps the first and last lines (the
  first carry "moov atom not found" and friends, the last carry the reason FFmpeg stopped);
- stdout, when asked for, is FFmpeg's `-progress pipe:1` key=value stream, handed line by line
  to a callback *in the caller's thread* (so an exception raised by the callback stops FFmpeg and
  propagates: that is how a runner cancels a job).

`run_ffmpeg()` reports the exit status, whether our timeout fired and the stderr; the callers
classify. It raises only when FFmpeg cannot be started at all (TranscodeError
"ffmpeg_unavailable": a missing binary or a memory limit too low to load it is the machine's
fault).
"""

from __future__ import annotations

import ctypes
import os
import sys
import queue
import re
import resource
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import TranscodeError

GIB = 1024**3
MIB = 1024**2
# None = automatic: max(4 GiB, 2 GiB + 256 MiB per CPU). RLIMIT_AS counts reserved address space,
# and FFmpeg's thread count (so its stacks and malloc arenas) grows with the CPU count: a full
# 1080p ladder measured VmPeak 2.2 GiB with 61 threads on 2 CPUs (1.5 GiB with
# MALLOC_ARENA_MAX=2, which we set). The limit is there to stop a runaway allocation (a file that
# declares enormous frames), not to account memory precisely.
DEFAULT_MEMORY_LIMIT: int | None = None
MEMORY_LIMIT_ENV = "COURSECRAFTER_FFMPEG_MEMORY_LIMIT"
FFMPEG_ENV = "COURSECRAFTER_FFMPEG"

_STDERR_HEAD_LINES = 200
_STDERR_TAIL_LINES = 300


def find_ffmpeg() -> str:
    """The FFmpeg binary: `COURSECRAFTER_FFMPEG`, else `ffmpeg` on PATH, else imageio-ffmpeg's."""
    configured = os.environ.get(FFMPEG_ENV, "").strip()
    if configured:
        return configured
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - the worker extra installs it
        raise RuntimeError(
            "FFmpeg not found: install ffmpeg, set COURSECRAFTER_FFMPEG, or pip install imageio-ffmpeg"
        ) from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


#: The oldest FFmpeg the pipeline supports and is tested with (Debian 12's 5.1; CI runs the
#: pipeline on it and on the imageio-ffmpeg wheel's binary). Older ones lack, among others,
#: `-fps_mode`, which every transcode command uses.
MIN_FFMPEG_VERSION = (5, 1)


class UnsupportedFFmpeg(RuntimeError):
    """The FFmpeg found cannot be used: it does not run, is not FFmpeg, or is older than 5.1."""


@dataclass(frozen=True)
class FFmpegVersion:
    path: str
    version: str  # as `ffmpeg -version` prints it: "5.1.9-0+deb12u1", "n7.1", "N-113000-gabc"
    release: tuple[int, ...] | None  # (5, 1, 9); None when the version names no release
    ffprobe: str | None  # the ffprobe next to it (probe() uses it), or None: the banner parser

    def describe(self) -> str:
        probe = self.ffprobe or "none (probing through ffmpeg's banner)"
        return f"FFmpeg {self.version} at {self.path}\nffprobe: {probe}"


_VERSION_RE = re.compile(r"^ffmpeg version (\S+)", re.MULTILINE)


def parse_ffmpeg_version(text: str) -> tuple[str, tuple[int, ...] | None] | None:
    """`ffmpeg -version` output -> ("5.1.9-0+deb12u1", (5, 1, 9)); None when it is not FFmpeg's.

    Release builds print "5.1.9-0+deb12u1" or "n7.1-..." (a release tag), git snapshots of the
    development branch "N-113000-g..." (no release: newer than every release)."""
    match = _VERSION_RE.search(text)
    if not match:
        return None
    version = match.group(1)
    numbers = re.match(r"n?(\d+)\.(\d+)(?:\.(\d+))?", version)
    release = tuple(int(n) for n in numbers.groups() if n is not None) if numbers else None
    return version, release


def check_ffmpeg(ffmpeg: str | None = None, *, timeout: float = 30) -> FFmpegVersion:
    """The FFmpeg the pipeline will use, its version and ffprobe; raises UnsupportedFFmpeg (with
    a message for the operator) when it cannot run or is older than MIN_FFMPEG_VERSION."""
    try:
        ffmpeg = ffmpeg or find_ffmpeg()
    except RuntimeError as exc:
        raise UnsupportedFFmpeg(str(exc)) from exc
    out: list[str] = []
    try:
        # Like every FFmpeg the pipeline runs: its own process group, the memory limit, a timeout.
        done = run_ffmpeg([ffmpeg, "-version"], timeout=timeout, on_stdout_line=out.append)
    except TranscodeError as exc:
        raise UnsupportedFFmpeg(exc.detail or str(exc)) from exc
    parsed = parse_ffmpeg_version("\n".join(out))
    if done.timed_out or done.returncode != 0 or parsed is None:
        raise UnsupportedFFmpeg(f"{ffmpeg} does not look like FFmpeg (`{ffmpeg} -version` exited "
                                f"{done.returncode} without an 'ffmpeg version' line)")
    version, release = parsed
    if release is not None and release[:2] < MIN_FFMPEG_VERSION:
        minimum = ".".join(map(str, MIN_FFMPEG_VERSION))
        raise UnsupportedFFmpeg(
            f"FFmpeg {version} at {ffmpeg} is too old: CourseCrafter needs FFmpeg {minimum} or "
            f"newer. Install a newer FFmpeg, or point {FFMPEG_ENV} at one (the imageio-ffmpeg "
            "wheel ships one: python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')."
        )
    return FFmpegVersion(path=ffmpeg, version=version, release=release,
                         ffprobe=find_ffprobe(ffmpeg))


def find_ffprobe(ffmpeg: str) -> str | None:
    """An `ffprobe` in the same directory as `ffmpeg` (so the two versions match), if any."""
    ffmpeg_path = Path(ffmpeg)
    if ffmpeg_path.parent == Path("."):
        resolved = shutil.which(ffmpeg)
        if not resolved:
            return None
        ffmpeg_path = Path(resolved)
    # imageio-ffmpeg names its binary ffmpeg-linux-x86_64-v7.0 etc.: try the same suffix too.
    names = ["ffprobe", ffmpeg_path.name.replace("ffmpeg", "ffprobe", 1)]
    for name in dict.fromkeys(names):
        candidate = ffmpeg_path.parent / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def parse_memory_limit(text: str) -> int | None:
    """'4G' -> 4 GiB, '512M', '1048576'; '0', '', 'none', 'unlimited' -> None (no limit)."""
    text = text.strip().lower()
    if text in ("", "0", "none", "unlimited", "off"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", text)
    if not match:
        raise ValueError(f"bad memory limit {text!r} (use e.g. 4G, 512M or bytes)")
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": GIB, "t": 1024**4}[match.group(2)]
    return int(float(match.group(1)) * factor)


def memory_limit() -> int | None:
    env = os.environ.get(MEMORY_LIMIT_ENV)
    if env is not None:
        return parse_memory_limit(env)
    if DEFAULT_MEMORY_LIMIT is not None:
        return DEFAULT_MEMORY_LIMIT
    return max(4 * GIB, 2 * GIB + 256 * MIB * (os.cpu_count() or 1))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Fewer glibc malloc arenas: far less reserved address space under RLIMIT_AS, same speed.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    return env


@dataclass
class FFmpegRun:
    argv: list[str]
    returncode: int
    timed_out: bool  # our timeout fired and we killed the process group
    elapsed: float
    stderr: str  # first and last lines (with a marker between when lines were dropped)

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None


class _StderrCollector(threading.Thread):
    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True, name="ffmpeg-stderr")
        self._stream = stream
        self.head: list[str] = []
        self.tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self.dropped = 0

    def run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(self.head) < _STDERR_HEAD_LINES:
                self.head.append(line)
            else:
                if len(self.tail) == self.tail.maxlen:
                    self.dropped += 1
                self.tail.append(line)
        self._stream.close()

    def text(self) -> str:
        lines = list(self.head)
        if self.dropped:
            lines.append(f"[... {self.dropped} lines dropped ...]")
        lines.extend(self.tail)
        return "\n".join(lines)


def _load_prctl() -> Callable[..., int] | None:
    # Loaded before any fork: the child between fork and exec must not import or dlopen.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _limits_preexec(limit: int | None) -> Callable[[], None]:
    parent = os.getpid()

    def apply() -> None:  # runs in the child between fork and exec: keep it tiny
        # FFmpeg runs in its own session (so a timeout kills its whole group), which also keeps
        # it out of reach of a SIGKILL to the worker's group: ask the kernel to kill it when the
        # worker (the forking thread) dies, and give up at once if that already happened.
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ValueError, OSError):
            pass
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _kill_group(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_ffmpeg(
    argv: Sequence[str],
    *,
    timeout: float | None,
    cwd: Path | str | None = None,
    on_stdout_line: Callable[[str], None] | None = None,
    mem_limit: int | None | bool = True,
) -> FFmpegRun:
    """Run FFmpeg to completion (or until `timeout` seconds, then SIGKILL its process group).

    `mem_limit=True` means the configured limit (`memory_limit()`); None/False means none.
    `on_stdout_line` receives each stdout line (FFmpeg's -progress output); without it stdout
    is discarded.
    """
    limit = memory_limit() if mem_limit is True else (mem_limit or None)
    argv = [str(a) for a in argv]
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if on_stdout_line else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_limits_preexec(limit),  # noqa: PLW1509 - only setrlimit, see module doc
            close_fds=True,
            env=_child_env(),
        )
    except OSError as exc:
        # Missing or not executable binary, or a memory limit too low to even load it.
        raise TranscodeError(
            "ffmpeg_unavailable",
            "The transcoder could not be started on the worker; the job will be retried.",
            detail=f"cannot start {argv[0]}: {exc}",
        ) from exc
    collector = _StderrCollector(proc.stderr)
    collector.start()
    lines: queue.Queue[str | None] = queue.Queue()
    if on_stdout_line is not None:
        threading.Thread(
            target=_pump, args=(proc.stdout, lines), daemon=True, name="ffmpeg-stdout"
        ).start()
    timed_out = False

    def remaining() -> float | None:
        return None if deadline is None else deadline - time.monotonic()

    # Only this thread waits for (reaps) the process, and it kills only before reaping: the
    # process group id cannot have been reused by then.
    try:
        if on_stdout_line is not None:
            while True:
                left = remaining()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout or 0)
                try:
                    line = lines.get(timeout=0.5 if left is None else min(left, 0.5))
                except queue.Empty:
                    continue
                if line is None:
                    break
                on_stdout_line(line)
        left = remaining()
        if left is not None and left <= 0:
            raise subprocess.TimeoutExpired(argv, timeout or 0)
        returncode = proc.wait(timeout=left)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        returncode = proc.wait()
    except BaseException:
        # The callback raised (cancellation) or we were interrupted: FFmpeg must not outlive us.
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        collector.join(timeout=10)
    return FFmpegRun(
        argv=argv,
        returncode=returncode,
        timed_out=timed_out,
        elapsed=time.monotonic() - started,
        stderr=collector.text(),
    )


def _pump(stream, out: queue.Queue) -> None:  # type: ignore[no-untyped-def, type-arg]
    try:
        for raw in iter(stream.readline, b""):
            out.put(raw.decode("utf-8", "replace").strip())
    finally:
        stream.close()
        out.put(None)
