"""Per-job work directories that a killed process cannot leak.

Each job directory (`<work_dir>/job-…`) holds a full copy of the downloaded source, so one left
behind by a SIGKILLed worker (OOM killer, power loss, `kill -9`) can hold gigabytes. Several
workers, or a worker and an embedded server, may share one work dir on one machine, so a sweep
must never take a directory that is still in use:

- `JobDir.create` makes the directory and takes an exclusive `flock` on `<dir>/.lock`, held
  until `JobDir.remove`. The kernel drops the lock when its holder dies, however it dies.
- `sweep` removes every job directory whose lock it can take (nobody holds it: its owner is
  gone), and leaves alone those it cannot. A `flock` taken through a separate `open` conflicts
  even within one process, so a process sweeping its own work dir never removes its own jobs.
- A job directory without a lock file (made by an older version, which may still be running
  during a rolling upgrade) is only removed once untouched for `unlocked_older_than` seconds, the
  old rule.

Local file systems only: `flock` is not reliable across machines on NFS.

The work dir is private (`prepare_work_dir`, at start-up): ours, mode 0700, with no ancestor
another user could swap. A shared one (a `/tmp/...` that another local user created 0777) let
that user replace a job directory with a symlink and publish their content as a victim's
lecture. Inside it nothing follows a symlink: job directories are opened `O_NOFOLLOW` and their
lock files through the directory's fd.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

JOB_DIR_PREFIX = "job-"
LOCK_NAME = ".lock"
#: Seconds between periodic sweeps: cheap (one `open` and `flock` per directory), and a killed
#: worker's gigabytes should not wait for its restart.
SWEEP_INTERVAL = 60.0
#: How often `create` tries again when a sweep takes its brand-new directory from under it.
_CREATE_TRIES = 5


class JobDir:
    """A job directory and the open, locked lock file that marks it in use."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd

    @classmethod
    def create(cls, work_dir: Path, name: str = "") -> JobDir:
        """A fresh `<work_dir>/job-<name>-XXXX` directory, locked by this process."""
        work_dir = Path(work_dir)
        work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        prefix = f"{JOB_DIR_PREFIX}{name}-" if name else JOB_DIR_PREFIX
        for _ in range(_CREATE_TRIES):
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=work_dir))  # 0700, O_EXCL-like
            try:
                fd = _open_lock(path, create=True)
            except FileNotFoundError:  # a sweep removed the directory between mkdtemp and open
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a sweep holds it right now and is removing it
                os.close(fd)
                continue
            except OSError as exc:  # no flock here (some network file systems)
                log.warning("cannot lock %s (%r): a sweep will never remove it", path, exc)
                return cls(path, fd)
            # A sweep may have locked, removed and released it before our flock: then we hold
            # a lock on a file that is no longer there.
            with contextlib.suppress(OSError):
                if os.lstat(path / LOCK_NAME).st_ino == os.fstat(fd).st_ino:
                    return cls(path, fd)
            os.close(fd)
        raise OSError(f"could not create a locked job directory in {work_dir}")

    def remove(self) -> None:
        """Delete the directory, then release the lock (never the other way round: a sweep could
        otherwise see it unlocked while it is still being deleted and race us). Idempotent."""
        if self._lock_fd is None:
            return
        try:
            shutil.rmtree(self.path, ignore_errors=True)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"JobDir({str(self.path)!r})"


def sweep(work_dir: Path, *, unlocked_older_than: float) -> int:
    """Remove the job directories under `work_dir` that no live process holds. Returns how many
    were removed. Cheap (one `open` and `flock` per directory); safe to run at any time from any
    process sharing the work dir."""
    work_dir = Path(work_dir)
    try:
        entries = [e for e in work_dir.iterdir() if e.name.startswith(JOB_DIR_PREFIX)]
    except OSError:  # no work dir yet: nothing to sweep
        return 0
    removed = 0
    for entry in entries:
        try:
            fd = _open_lock(entry, create=False)  # never through a symlink
        except FileNotFoundError:
            if _unlocked_and_stale(entry, unlocked_older_than):
                shutil.rmtree(entry, ignore_errors=True)
                removed += not entry.exists()
            continue
        except OSError as exc:
            log.debug("work dir sweep: skipping %s: %r", entry, exc)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: its job is running
                continue
            # Ours now: its owner is dead. Delete while holding the lock (see JobDir.remove).
            shutil.rmtree(entry, ignore_errors=True)
            removed += not entry.exists()
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d abandoned job director%s from %s", removed,
                 "y" if removed == 1 else "ies", work_dir)
    return removed


def _open_lock(job_dir: Path, *, create: bool) -> int:
    """The lock file of a job directory, opened without following a symlink at either level:
    the directory `O_NOFOLLOW | O_DIRECTORY`, and the file through that directory's fd."""
    dir_fd = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
        return os.open(LOCK_NAME, flags, 0o600, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


class UnsafeWorkDir(ValueError):
    """The work dir is not private: another user could swap what a job reads or publishes."""


def prepare_work_dir(work_dir: Path | str, *, variable: str = "COURSECRAFTER_WORK_DIR") -> Path:
    """Create the work dir (mode 0700) or check the existing one, and return its real path (use
    that from then on: a symlink in the configured path cannot be swapped later). Refuses, with
    `UnsafeWorkDir`, a directory that is not ours or is group/world-writable, or that sits in a
    directory another user could rename it out of (owned by someone else than us or root, or
    world-writable without the sticky bit)."""
    path = Path(work_dir).expanduser().absolute()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        real = Path(os.path.realpath(path))
        st = os.lstat(real)
    except OSError as exc:
        raise UnsafeWorkDir(f"cannot create the work dir {path} ({exc.strerror}); set {variable} "
                            "to a directory of your own") from None
    me = os.geteuid()
    hint = f"set {variable} to a private directory of your own (mode 700)"
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeWorkDir(f"the work dir {real} is not a directory; {hint}")
    if st.st_uid != me:
        raise UnsafeWorkDir(
            f"the work dir {real} belongs to uid {st.st_uid}, not to this user (uid {me}): "
            f"whoever made it could take over this user's transcoding jobs; {hint}")
    if st.st_mode & 0o022:
        raise UnsafeWorkDir(
            f"the work dir {real} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}): "
            f"they could take over this user's transcoding jobs; `chmod 700 {real}`, or {hint}")
    for parent in real.parents:
        pst = os.stat(parent)
        open_to_all = pst.st_mode & 0o002 and not pst.st_mode & stat.S_ISVTX
        if pst.st_uid not in (0, me) or open_to_all:
            raise UnsafeWorkDir(
                f"the work dir {real} is inside {parent}, which another user could rename it out "
                f"of (owner uid {pst.st_uid}, mode {stat.S_IMODE(pst.st_mode):o}); {hint}")
    return real


def _unlocked_and_stale(entry: Path, older_than: float) -> bool:
    """No lock file (an older version's directory, or one being created this very instant): in
    use unless nothing in it changed for `older_than` seconds."""
    cutoff = time.time() - older_than
    try:
        if not stat.S_ISDIR(entry.lstat().st_mode):  # a symlink or a file: not a job directory
            return False
        newest = max([entry.lstat().st_mtime] + [p.lstat().st_mtime for p in entry.rglob("*")])
    except (OSError, ValueError):
        return False
    return newest < cutoff


def unlocked_age_limit(ffmpeg_timeout: float | None) -> float:
    """How long an unlocked (older version's) job directory must sit untouched before a sweep
    takes it: longer than any FFmpeg run may last, and an hour more."""
    return (ffmpeg_timeout or 4 * 3600) + 3600


def start_sweeper(
    work_dir: Path, *, unlocked_older_than: float, stop: threading.Event,
    interval: float = SWEEP_INTERVAL,
) -> threading.Thread:
    """Sweep `work_dir` now (what a process killed before this one started left behind), then
    every `interval` seconds until `stop` is set (a daemon thread): the directories of a worker
    killed on this machine go long before this one restarts."""
    sweep(work_dir, unlocked_older_than=unlocked_older_than)

    def loop() -> None:
        while not stop.wait(interval):
            try:
                sweep(work_dir, unlocked_older_than=unlocked_older_than)
            except Exception:  # a sweep must never take the worker down
                log.exception("sweeping %s failed", work_dir)

    thread = threading.Thread(target=loop, name="coursecrafter-workdir-sweeper", daemon=True)
    thread.start()
    return thread


__all__ = ["JOB_DIR_PREFIX", "LOCK_NAME", "SWEEP_INTERVAL", "JobDir", "UnsafeWorkDir",
           "prepare_work_dir", "start_sweeper", "sweep", "unlocked_age_limit"]
