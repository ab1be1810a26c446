"""Job work directories: a killed worker's are swept promptly, a live one's never (whoever sweeps,
in whichever process sharing the work dir)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from worker_fakes import FakeTranscode, RecordingNotifier, wait_until

from coursecrafter_worker.queue.inprocess import InProcessQueue
from coursecrafter_worker.runner import JobRunner
from coursecrafter_worker.workdir import (
    LOCK_NAME,
    JobDir,
    UnsafeWorkDir,
    prepare_work_dir,
    start_sweeper,
    sweep,
)

BIN = Path(sys.executable).parent
LEGACY_AGE = 3600.0  # the old rule for directories without a lock file

#: Another process (a worker on the same machine) holding a job directory until killed.
HOLDER = """
import sys
from pathlib import Path
from coursecrafter_worker.workdir import JobDir
job = JobDir.create(Path(sys.argv[1]), "held")
(job.path / "source").write_bytes(b"gigabytes of lecture")
print(job.path, flush=True)
sys.stdin.read()  # hold it until killed (or stdin closes)
"""


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def holder(work_dir: Path):
    """Start a process holding a job directory; returns (process, path). Killed at teardown."""
    started: list[subprocess.Popen] = []

    def start() -> tuple[subprocess.Popen, Path]:
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(work_dir)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(process)
        path = Path(process.stdout.readline().strip())
        assert path.is_dir(), "the holder did not create its job directory"
        return process, path

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def abandoned(work_dir: Path, name: str = "job-abandoned-1") -> Path:
    """A job directory as a SIGKILLed worker leaves it: lock file there, nobody holding it."""
    path = work_dir / name
    (path / "out").mkdir(parents=True)
    (path / LOCK_NAME).touch()
    (path / "source").write_bytes(b"x" * 1024)
    return path


def test_a_directory_held_by_a_live_process_survives_and_goes_once_it_is_killed(
    work_dir, holder
) -> None:
    process, held = holder()
    assert sweep(work_dir, unlocked_older_than=LEGACY_AGE) == 0
    assert (held / "source").exists()

    process.send_signal(signal.SIGKILL)  # no clean-up of its own: only the kernel drops the lock
    process.wait()
    assert held.exists()
    assert sweep(work_dir, unlocked_older_than=LEGACY_AGE) == 1
    assert not held.exists()


def test_sweep_removes_abandoned_directories_at_once_and_keeps_unlocked_young_ones(
    work_dir,
) -> None:
    dead = abandoned(work_dir)
    legacy_young = work_dir / "job-legacy-2"  # an older version's directory, in use
    (legacy_young / "out").mkdir(parents=True)
    other = work_dir / "not-a-job"
    other.mkdir()
    assert sweep(work_dir, unlocked_older_than=LEGACY_AGE) == 1
    assert not dead.exists() and legacy_young.exists() and other.exists()
    assert sweep(work_dir / "missing", unlocked_older_than=LEGACY_AGE) == 0


def test_own_live_directory_is_never_swept_by_this_process(work_dir) -> None:
    """flock locks belong to the open file, not the process: a sweep in the owner's own process
    (the periodic sweeper thread, or another runner) cannot take them either."""
    with JobDir.create(work_dir, "mine") as path:
        assert sweep(work_dir, unlocked_older_than=0) == 0
        assert path.is_dir() and (path / LOCK_NAME).exists()
    assert not path.exists()
    assert list(work_dir.iterdir()) == []


def test_a_running_jobs_directory_is_never_removed_mid_job(storage, make_message, work_dir) -> None:
    """Mid-job, this process and a worker starting on the same machine both sweep the work dir:
    the job's directory (with its downloaded source) stays, the job completes, and then its
    directory is gone."""
    seen: list[Path] = []

    class SweptMidJob(FakeTranscode):
        def __call__(self, source: Path, out_dir: Path, *, on_progress=None, timeout=None,
                     preset: str = "veryfast"):
            seen.append(source.parent)
            assert sweep(work_dir, unlocked_older_than=0) == 0
            other = subprocess.run(
                [sys.executable, "-c", "import sys; from coursecrafter_worker.workdir import sweep;"
                 " print(sweep(sys.argv[1], unlocked_older_than=0))", str(work_dir)],
                capture_output=True, text=True, timeout=30, check=True)
            assert other.stdout.strip() == "0"
            assert source.exists() and out_dir.is_dir()
            return super().__call__(source, out_dir, on_progress=on_progress, timeout=timeout)

    runner = JobRunner(storage, RecordingNotifier(), work_dir=work_dir, transcode=SweptMidJob(),
                       progress_interval=0.05)
    assert runner.run(make_message()) == "completed"
    assert len(seen) == 1 and not seen[0].exists()


def test_periodic_sweeper_removes_a_killed_workers_directory(work_dir, holder) -> None:
    mine = JobDir.create(work_dir, "running")
    process, held = holder()
    stop = threading.Event()
    thread = start_sweeper(work_dir, interval=0.05, unlocked_older_than=LEGACY_AGE, stop=stop)
    try:
        time.sleep(0.2)
        assert held.exists() and mine.path.exists()
        process.kill()
        process.wait()
        assert wait_until(lambda: not held.exists(), 5)
        assert mine.path.exists()
    finally:
        stop.set()
        thread.join(5)
        mine.remove()
    assert not thread.is_alive()


def test_worker_sweeps_its_work_dir_at_start_up(tmp_path, work_dir) -> None:
    """The real command, before it even reaches the broker (unreachable here)."""
    dead = abandoned(work_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")}
    env.update({
        "COURSECRAFTER_HOME": str(tmp_path / "home"),
        "COURSECRAFTER_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/",
        "COURSECRAFTER_WEBHOOK_SECRET": "workdir-test-webhook-secret-0123456789",
        "COURSECRAFTER_WORK_DIR": str(work_dir),
    })
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(BIN / "coursecrafter-worker")], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        assert wait_until(lambda: not dead.exists() or process.poll() is not None, 20)
        assert not dead.exists(), log.read_text()
        # Logged just after the directory is gone: wait for the line rather than race it.
        assert wait_until(lambda: "removed 1 abandoned job directory" in log.read_text(), 10), \
            log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_embedded_transcoders_sweep_their_work_dir_at_start_up(
    tmp_path, storage, monkeypatch
) -> None:
    from coursecrafter_server.transcoders import InProcessTranscoders

    work_dir = tmp_path / "home" / "work"
    dead = abandoned(work_dir)
    container = SimpleNamespace(
        settings=SimpleNamespace(transcode_concurrency=1, heartbeat_interval=5.0,
                                 ffmpeg_timeout=60.0, resolved_work_dir=work_dir),
        storage=storage,
        queue=InProcessQueue(),
        jobs=SimpleNamespace(republish_unfinished=lambda: 0),
    )
    transcoders = InProcessTranscoders(container)  # type: ignore[arg-type]
    assert transcoders.runner.work_dir == work_dir
    try:
        transcoders.start()
        assert not dead.exists()
    finally:
        transcoders.stop()


# A private work dir -------------------------------------------------------------------------------
def someone_elses_dir(tmp_path: Path) -> Path:
    """A directory this user does not own (as root: one handed to `nobody`)."""
    if os.geteuid() != 0:
        return Path("/var")  # root's
    path = tmp_path / "theirs"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)
    return path


def shared_tmp_dir(tmp_path: Path) -> Path:
    """What the attacker made: the old default name in a temp dir, mode 0777."""
    path = tmp_path / "coursecrafter-work"
    path.mkdir()
    path.chmod(0o777)
    return path


def test_work_dir_is_created_private_and_resolved(tmp_path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real").mkdir(mode=0o700)
    assert prepare_work_dir(link / "work") == tmp_path / "real" / "work"
    created = prepare_work_dir(tmp_path / "a" / "work")
    assert stat.S_IMODE(created.stat().st_mode) == 0o700


@pytest.mark.parametrize("case", ["world_writable", "group_writable", "someone_elses",
                                  "open_parent", "a_file"])
def test_unsafe_work_dirs_are_refused(tmp_path, case) -> None:
    if case == "world_writable":
        path = shared_tmp_dir(tmp_path)
    elif case == "group_writable":
        path = tmp_path / "g"
        path.mkdir()
        path.chmod(0o770)
    elif case == "someone_elses":
        path = someone_elses_dir(tmp_path)
    elif case == "open_parent":  # another user could rename our private dir out of it
        parent = tmp_path / "open"
        parent.mkdir()
        parent.chmod(0o777)
        path = parent / "work"
    else:
        path = tmp_path / "file"
        path.write_text("x")
    with pytest.raises(UnsafeWorkDir, match="COURSECRAFTER_WORK_DIR"):
        prepare_work_dir(path)


def test_worker_refuses_a_shared_work_dir_at_start_up(tmp_path) -> None:
    shared = shared_tmp_dir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")}
    env.update({
        "COURSECRAFTER_HOME": str(tmp_path / "home"),
        "COURSECRAFTER_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/",
        "COURSECRAFTER_WEBHOOK_SECRET": "workdir-test-webhook-secret-0123456789",
        "COURSECRAFTER_WORK_DIR": str(shared),
    })
    result = subprocess.run([str(BIN / "coursecrafter-worker")], env=env, capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "writable by other users" in result.stderr and str(shared) in result.stderr


def test_server_refuses_a_shared_work_dir_and_no_longer_uses_the_temp_dir(tmp_path) -> None:
    """The old default (<tmp>/coursecrafter-work, made 0777 by another user) is not used; a work
    dir configured to such a directory stops the server at start-up."""
    from livesupport import free_port, start_live_server

    shared = shared_tmp_dir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")}
    env.update({"COURSECRAFTER_HOME": str(tmp_path / "home1"),
                "COURSECRAFTER_WORK_DIR": str(shared)})
    refused = subprocess.run([str(BIN / "coursecrafter-server"), "--port", str(free_port())],
                             env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "writable by other users" in refused.stderr

    server = start_live_server(tmp_path / "home2", {"TMPDIR": str(tmp_path)})
    try:
        work = tmp_path / "home2" / "work"
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
        assert list(shared.iterdir()) == []
    finally:
        server.stop()


def test_sweep_never_follows_a_symlinked_job_directory(tmp_path, work_dir) -> None:
    """A job directory swapped for a symlink: the sweep leaves both the link's target and what
    it points at alone."""
    victim = tmp_path / "victim"
    (victim / "out").mkdir(parents=True)
    (victim / LOCK_NAME).touch()
    (victim / "lecture.mp4").write_bytes(b"precious")
    work_dir.mkdir()
    (work_dir / "job-swapped-1").symlink_to(victim, target_is_directory=True)
    (work_dir / "job-legacy-1").symlink_to(victim / "out", target_is_directory=True)
    assert sweep(work_dir, unlocked_older_than=0) == 0
    assert (victim / "lecture.mp4").read_bytes() == b"precious" and (victim / "out").is_dir()


def test_job_lock_is_never_opened_through_a_symlink(work_dir, tmp_path) -> None:
    """A lock file swapped for a symlink (to a file of someone else's) is not opened."""
    with JobDir.create(work_dir, "mine") as path:
        target = tmp_path / "elsewhere"
        target.write_text("not a lock")
        (path / LOCK_NAME).unlink()
        (path / LOCK_NAME).symlink_to(target)
        assert sweep(work_dir, unlocked_older_than=0) == 0
    assert target.read_text() == "not a lock"
