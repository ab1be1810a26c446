"""Fault-injection kit: real processes (server, workers), a RabbitMQ vhost per test, and proxies
that can be paused or made to fail on purpose.

Nothing here touches the machine's shared RabbitMQ or Redis server processes: RabbitMQ faults are
scoped to a vhost of our own (`close_all_connections -p V`), Redis and webhook outages are a TCP
proxy we stop forwarding, and storage errors come from an HTTP proxy in front of the storage.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from livesupport import BIN, HttpFaultProxy, PartPut, free_port  # noqa: F401 - re-exported
from livesupport import reset_connection as _reset

from coursecrafter_worker.pipeline import find_ffmpeg

PASSWORD = "lecture hall 42"
QUEUE = "coursecrafter.transcode"
DEAD = "coursecrafter.transcode.dead"

#: Server settings shrunk for tests (DESIGN.md "Configuration" + settings.py fields).
FAST_SERVER = {
    "COURSECRAFTER_ARGON2_TIME_COST": "1",
    "COURSECRAFTER_ARGON2_MEMORY_KIB": "8192",
    "COURSECRAFTER_ARGON2_PARALLELISM": "1",
    "COURSECRAFTER_SWEEP_INTERVAL": "1",
    "COURSECRAFTER_HEARTBEAT_INTERVAL": "1",
    "COURSECRAFTER_HEARTBEAT_TIMEOUT": "6",
    "COURSECRAFTER_REPUBLISH_AFTER": "2",
    "COURSECRAFTER_LOGIN_RATE_LIMIT_ADDRESS": "1000/minute",
    "COURSECRAFTER_LOGIN_RATE_LIMIT_ACCOUNT": "1000/minute",
    "COURSECRAFTER_REFRESH_RATE_LIMIT_ADDRESS": "1000/minute",
    "COURSECRAFTER_REFRESH_RATE_LIMIT_ACCOUNT": "1000/minute",
    "COURSECRAFTER_LOGIN_FAILURE_LIMIT_ACCOUNT_ADDRESS": "1000/minute",
    "COURSECRAFTER_LOGIN_FAILURE_LIMIT_ADDRESS": "1000/minute",
    "COURSECRAFTER_LOGIN_FAILURE_LIMIT_DEVICE": "1000/minute",
    "COURSECRAFTER_REGISTER_RATE_LIMIT_ADDRESS": "1000/minute",
}
FAST_WORKER = {
    "COURSECRAFTER_HEARTBEAT_INTERVAL": "1",
    "COURSECRAFTER_SHUTDOWN_GRACE": "5",
}


def base_env() -> dict[str, str]:
    """The test process's environment without any COURSECRAFTER_* variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")}


class WaitTimeout(AssertionError):
    """`wait_for` ran out of time."""


class LostLecture(AssertionError):
    """The source was deleted (a worker counted its `completed` as delivered) but the video is
    not `ready` and never will be."""


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; return its value, or raise AssertionError."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc/<pid>/task/*/children)."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        try:  # the process may exit while we look (then it has no children to list)
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return seen


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def rss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


class Server:
    """A real `coursecrafter-server` on a fixed loopback port, restartable on the same port."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, *, port: int | None = None,
                 public_url: str | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **base_env(),
            **FAST_SERVER,
            "COURSECRAFTER_HOME": str(home),
            "COURSECRAFTER_PUBLIC_URL": public_url or self.url,
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.log_path = home / "server.log"
        self._storage: Storage | None = None
        home.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def blobs(self) -> Path:
        """The embedded default's blobs dir (what the storage is when no URL is set)."""
        return self.home / "blobs"

    @property
    def storage(self) -> Storage:
        """A view of the storage this server and its workers use (local dir or S3 prefix)."""
        if self._storage is None:
            self._storage = storage_view(self.env, self.home)
        return self._storage

    def start(self, timeout: float = 30) -> Server:
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [str(BIN / "coursecrafter-server"), "--port", str(self.port),
                 "--log-level", "info"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code (None if it was not running)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def readyz(self) -> tuple[int, dict[str, Any]]:
        response = httpx.get(f"{self.url}/readyz", timeout=10)
        return response.status_code, response.json()


class Worker:
    """A `coursecrafter-worker` process, in a session (process group) of its own so that a
    SIGKILL of the group takes its FFmpeg children with it."""

    def __init__(self, env: dict[str, str], log_path: Path, *, concurrency: int = 1,
                 extra_env: dict[str, str] | None = None,
                 command_prefix: list[str] | None = None) -> None:
        self.env = {**env, **FAST_WORKER, **(extra_env or {})}
        self.log_path = log_path
        self.concurrency = concurrency
        # Run through this, e.g. `ip netns exec NS` (tests/netsupport.py): it execs, so the pid
        # and process group are still the worker's.
        self.command_prefix = list(command_prefix or [])
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def work_dir(self) -> Path:
        """Its COURSECRAFTER_WORK_DIR (where each job gets a `job-*` directory)."""
        return Path(self.env["COURSECRAFTER_WORK_DIR"])

    def start(self) -> Worker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.command_prefix, str(BIN / "coursecrafter-worker"),
                 "--concurrency", str(self.concurrency)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.log_path.parent,
                start_new_session=True,
            )
        return self

    def ffmpeg_pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return [p for p in process_tree(self.pid)[1:] if "ffmpeg" in proc_name(p)]

    def kill_group(self) -> list[int]:
        """SIGKILL the whole process group; return the pids it had (worker first)."""
        assert self.process is not None
        pids = process_tree(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return pids

    def stop(self, timeout: float = 20) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            return self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --------------------------------------------------------------------------- RabbitMQ


def rabbitmqctl(*args: str, check: bool = True, timeout: float = 60) -> str:
    done = subprocess.run(["rabbitmqctl", "-s", *args], capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def rabbitmq_usable() -> str | None:
    """None when the local broker can be driven with rabbitmqctl, else why not."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed"
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            pass
    except OSError as exc:
        return f"RabbitMQ is not reachable at 127.0.0.1:5672: {exc}"
    return None


class Vhost:
    """A RabbitMQ vhost of our own; every fault is scoped to it."""

    def __init__(self, prefix: str = "cc-faults") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.url = f"amqp://guest:guest@127.0.0.1:5672/{quote(self.name, safe='')}"

    def queue_depths(self) -> dict[str, int]:
        """{queue name: messages (ready + unacked)} of this vhost."""
        out = rabbitmqctl("list_queues", "-p", self.name, "name", "messages")
        depths: dict[str, int] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                depths[parts[0]] = int(parts[1])
        return depths

    def wait_drained(self, timeout: float = 20) -> dict[str, int]:
        """Until both the job queue and the dead-letter queue hold 0 messages."""
        last: dict[str, int] = {}

        def drained() -> bool:
            nonlocal last
            last = self.queue_depths()
            return last.get(QUEUE) == 0 and last.get(DEAD) == 0  # both declared, both empty

        try:
            wait_for(drained, timeout, interval=1.0, what="empty queues")
        except WaitTimeout:
            raise AssertionError(f"queues not drained after {timeout:g}s: {last}") from None
        return last

    def close_connections(self, reason: str = "fault injection") -> None:
        rabbitmqctl("close_all_connections", "-p", self.name, reason)

    def connections(self) -> list[str]:
        out = rabbitmqctl("list_connections", "-p", self.name, "name", "state", check=False)
        return [line for line in out.splitlines() if line.strip()]

    def consumers(self) -> list[str]:
        out = rabbitmqctl("list_consumers", "-p", self.name, "queue_name", check=False)
        return [line.strip() for line in out.splitlines() if line.strip()]

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name, check=False)


# --------------------------------------------------------------------------- TCP proxy


class TcpProxy:
    """A loopback TCP forwarder with an outage switch.

    Modes: "forward"; "reset" (every connection, existing and new, is cut with a RST: the
    peer is down); "blackhole" (connections are accepted and nothing ever answers: a network
    partition). The listening port never changes, so whoever is configured with it reconnects
    by itself when the mode goes back to "forward"."""

    def __init__(self, upstream: tuple[str, int] | None = None, *,
                 bind: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.mode = "forward"
        self.accepted = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((bind, 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.host = bind
        self.port = self._listener.getsockname()[1]
        self.url = f"http://{bind}:{self.port}"
        self._closed = threading.Event()
        threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True).start()

    def set_mode(self, mode: str) -> None:
        assert mode in ("forward", "reset", "blackhole")
        with self._lock:
            self.mode = mode
            victims = list(self._conns) if mode != "forward" else []
            if mode != "forward":
                self._conns.clear()
        for sock in victims:
            _reset(sock)

    def pause(self, mode: str = "reset") -> None:
        self.set_mode(mode)

    def resume(self) -> None:
        self.set_mode("forward")

    def close(self) -> None:
        self._closed.set()
        self.set_mode("reset")
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                mode = self.mode
                if mode == "forward":
                    self.accepted += 1
                else:
                    self.refused += 1
            if mode == "reset":
                _reset(client)
                continue
            if mode == "blackhole":
                with self._lock:
                    self._conns.add(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        assert self.upstream is not None
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        with self._lock:
            if self.mode != "forward":
                _reset(client)
                _reset(upstream)
                return
            self._conns.update((client, upstream))
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()


# --------------------------------------------------------------------------- storage views


class LocalBlobs:
    """The embedded storage adapter's directory (storage/local.py): `objects/{key}`, one file
    per object; `multipart/` and `tmp/` while a write is under way."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"LocalBlobs({self.root})"

    def objects(self, prefix: str) -> dict[str, int]:
        """{key relative to `prefix`: size} of every object whose key starts with `prefix`
        (a folder: "videos/<id>/")."""
        base = self.root / "objects" / prefix
        if not base.is_dir():
            return {}
        return {p.relative_to(base).as_posix(): p.stat().st_size
                for p in base.rglob("*") if p.is_file()}

    def exists(self, key: str) -> bool:
        return (self.root / "objects" / key).exists()

    def read_text(self, key: str) -> str:
        return (self.root / "objects" / key).read_text()

    def leftovers(self) -> list[str]:
        """Multipart uploads not completed or aborted (`multipart/<upload id>/`) and temp files
        (`tmp/`: parts and objects being written, completed/aborted uploads being removed)."""
        found = []
        for sub in ("multipart", "tmp"):
            base = self.root / sub
            assert base.is_dir(), f"{base} missing: has the storage layout changed?"
            found += [p.relative_to(self.root).as_posix() for p in base.rglob("*")]
        return sorted(found)


class S3Blobs:
    """An S3 bucket (moto's server in tests) under the server's key prefix, read with a boto3
    client of our own: what the server and the workers wrote, as any S3 reader sees it."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None,
                 env: dict[str, str] | None = None) -> None:
        import boto3

        env = env if env is not None else dict(os.environ)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.client = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=env.get("AWS_SESSION_TOKEN"),
            region_name=env.get("AWS_DEFAULT_REGION") or "us-east-1",
        ).client("s3", endpoint_url=endpoint_url)

    def __repr__(self) -> str:
        return f"S3Blobs(s3://{self.bucket}/{self.prefix} at {self.endpoint_url})"

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def objects(self, prefix: str) -> dict[str, int]:
        full = self._full(prefix)
        found: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(full):]
                assert rel not in found, obj["Key"]
                found[rel] = int(obj["Size"])
        return found

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def read_text(self, key: str) -> str:
        body = self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        try:
            return body.read().decode()
        finally:
            body.close()

    def leftovers(self) -> list[str]:
        """Multipart uploads still open under the prefix (neither completed nor aborted): the
        parts of each are stored, and billed, until someone aborts it."""
        found = []
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._full(""))
        for page in pages:
            found += [f"multipart upload {u['UploadId']} of {u['Key']}"
                      for u in page.get("Uploads", [])]
        return sorted(found)


Storage = LocalBlobs | S3Blobs


def storage_view(env: dict[str, str], home: Path) -> Storage:
    """The storage a server (and its workers) with environment `env` and COURSECRAFTER_HOME
    `home` writes to: COURSECRAFTER_STORAGE_URL (`file://` or `s3://bucket[/prefix]`, with
    COURSECRAFTER_S3_ENDPOINT_URL), or the blobs dir in the home when it is unset."""
    url = env.get("COURSECRAFTER_STORAGE_URL")
    if not url:
        return LocalBlobs(home / "blobs")
    parsed = urlsplit(url)
    if parsed.scheme == "file":
        return LocalBlobs(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        return S3Blobs(parsed.netloc, parsed.path, env.get("COURSECRAFTER_S3_ENDPOINT_URL"), env)
    raise ValueError(f"unknown storage URL {url!r}")


def _as_storage(storage: Storage | Path) -> Storage:
    return LocalBlobs(storage) if isinstance(storage, Path) else storage


# --------------------------------------------------------------------------- media and checks


def make_clip(path: Path, *, seconds: float, size: str = "320x240", rate: int = 25) -> Path:
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}:d={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", str(path)],
        check=True, timeout=120,
    )
    return path


def sdk_client(url: str, username: str) -> Any:
    """A registered, logged-in SDK client (in-memory credentials)."""
    from coursecrafter_cli import Client, MemoryCredentialStore

    client = Client(url, credential_store=MemoryCredentialStore())
    client.register(username, f"{username}@example.edu", PASSWORD)
    client.login(username, PASSWORD)
    return client


def poll_video(client: Any, video_id: str, predicate: Callable[[dict[str, Any]], bool],
               timeout: float, interval: float = 0.1, what: str = "video state") -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        try:
            last = client.get_video(video_id)
        except Exception as exc:  # the server may be restarting
            last = {"error": repr(exc)}
            return False
        return predicate(last)

    try:
        wait_for(check, timeout, interval, what)
    except WaitTimeout:
        raise AssertionError(f"video {video_id}: timed out after {timeout:g}s waiting for {what}; "
                             f"last record: {last}") from None
    return last


def wait_ready(client: Any, video_id: str, timeout: float = 120,
               storage: Storage | Path | None = None) -> dict[str, Any]:
    """Poll until the video is `ready` (or `failed`: an assertion error). With `storage` (the
    server's, local or S3), fail fast on a lost lecture: the worker deletes the source only after
    its `completed` event was delivered, so a video whose source has been gone for 5 s without
    being `ready` will never get there."""
    gone_since: list[float] = []
    store = None if storage is None else _as_storage(storage)

    def done(video: dict[str, Any]) -> bool:
        if video.get("status") in ("ready", "failed"):
            return True
        if store is not None and not source_exists(store, video_id):
            gone_since.append(time.monotonic())
            if gone_since[-1] - gone_since[0] > 5:
                raise LostLecture(
                    f"LOST: the source of video {video_id} was deleted (a worker reported it "
                    f"completed) but the video is stuck {video.get('status')!r}: {video}")
        else:
            gone_since.clear()
        return False

    video = poll_video(client, video_id, done, timeout, interval=0.25, what="ready or failed")
    assert video["status"] == "ready", video
    return video


def source_key(video_id: str) -> str:
    """The key of a video's uploaded source (DESIGN.md: `uploads/{video id}/source`)."""
    return f"uploads/{video_id}/source"


def source_path(blobs: Path, video_id: str) -> Path:
    """Where the local storage under `blobs` keeps a video's source."""
    return blobs / "objects" / source_key(video_id)


def source_exists(storage: Storage | Path, video_id: str) -> bool:
    return _as_storage(storage).exists(source_key(video_id))


def wait_source_gone(storage: Storage | Path, video_id: str, timeout: float = 15) -> None:
    store = _as_storage(storage)
    wait_for(lambda: not store.exists(source_key(video_id)), timeout,
             what=f"{source_key(video_id)} in {store} to be deleted")


def assert_outputs_complete(storage: Storage | Path, video: dict[str, Any]) -> dict[str, int]:
    """Exactly one master playlist naming each rendition once; every rendition playlist ends
    with #EXT-X-ENDLIST, names each segment once, and each segment exists (non-empty); the
    segments cover the duration; and nothing else is stored under the video's prefix
    `videos/{id}/` (no stale or duplicated outputs) but the early rendition, which stays for
    the playback URL TTL after `ready` (`hls/early/`: complete in the same way, checked here
    too, and nothing else in it). Returns {playlist: segment count}."""
    store = _as_storage(storage)
    base = f"videos/{video['id']}/"
    sizes = store.objects(base)
    files = set(sizes)
    masters = [f for f in files if f.endswith("master.m3u8")]
    assert masters == ["hls/master.m3u8"], sorted(files)
    master = store.read_text(base + "hls/master.m3u8")
    assert master.startswith("#EXTM3U")
    variants = [line for line in master.splitlines() if line and not line.startswith("#")]
    assert master.count("#EXT-X-STREAM-INF") == len(variants) == len(set(variants)) >= 1, master
    assert len(variants) == len(video["renditions"]), (variants, video["renditions"])
    expected = {"hls/master.m3u8"}
    if video.get("poster_url"):
        expected.add("poster.jpg")
    counts: dict[str, int] = {}
    for variant in variants:
        rel = f"hls/{variant}"
        text = store.read_text(base + rel)
        assert "#EXT-X-ENDLIST" in text.splitlines()[-1:] or text.rstrip().endswith(
            "#EXT-X-ENDLIST"), f"{rel} is not finished:\n{text}"
        segments = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert segments and len(segments) == len(set(segments)), text
        seconds = sum(float(x) for x in re.findall(r"#EXTINF:([\d.]+)", text))
        assert abs(seconds - float(video["duration"])) < 0.6, (rel, seconds, video["duration"])
        expected.add(rel)
        folder = rel.rsplit("/", 1)[0]
        for segment in segments:
            seg = f"{folder}/{segment}"
            expected.add(seg)
            assert sizes.get(seg, 0) > 0, (seg, sizes.get(seg))
        counts[rel] = len(segments)
    # A chunked ladder's one audio rendition, which every variant names (EXT-X-MEDIA).
    for uri in re.findall(r'^#EXT-X-MEDIA:.*URI="([^"]+)"', master, re.M):
        counts[f"hls/{uri}"] = _check_media_playlist(
            store, base, f"hls/{uri}", sizes, float(video["duration"]), expected)
    if any(f.startswith("hls/early/") for f in files):
        counts["hls/early/index.m3u8"] = _check_media_playlist(
            store, base, "hls/early/index.m3u8", sizes, float(video["duration"]), expected)
    assert files == expected, {"missing": sorted(expected - files),
                               "unexpected": sorted(files - expected)}
    return counts


def _check_media_playlist(store: Storage, base: str, rel: str, sizes: dict[str, int],
                          duration: float, expected: set[str]) -> int:
    """A finished media playlist whose every segment is stored, non-empty, covering
    `duration`; adds it and its segments to `expected`; returns the segment count."""
    assert rel in sizes, (rel, sorted(sizes))
    text = store.read_text(base + rel)
    assert text.rstrip().endswith("#EXT-X-ENDLIST"), f"{rel} is not finished:\n{text}"
    segments = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert segments and len(segments) == len(set(segments)), text
    seconds = sum(float(x) for x in re.findall(r"#EXTINF:([\d.]+)", text))
    assert abs(seconds - duration) < 0.6, (rel, seconds, duration)
    expected.add(rel)
    folder = rel.rsplit("/", 1)[0]
    for segment in segments:
        expected.add(f"{folder}/{segment}")
        assert sizes.get(f"{folder}/{segment}", 0) > 0, (segment, sizes.get(segment))
    return len(segments)


#: The runner's lines (runner.JobRunner): one per FFmpeg run that finished and had its outputs
#: uploaded ("job <id>: uploaded <n> file(s) under videos/<video id>/"), and one per job whose
#: `completed` the server applied ("job <id> attempt <n> (video <id>) completed in <s>s"; a copy
#: the server calls stale ends "skipped", a bad source "failed").
UPLOADED_LINE = re.compile(r"job \w+: uploaded \d+ file\(s\) under videos/(\w+)/")
COMPLETED_LINE = re.compile(r"job \w+ attempt \d+ \(video (\w+)\) completed in ")


def transcodes(*workers: Worker) -> tuple[Counter[str], Counter[str]]:
    """({video id: FFmpeg runs that finished and uploaded}, {video id: `completed` applied}),
    over the logs of `workers`."""
    logs = [w.log() for w in workers]
    return (Counter(m.group(1) for log in logs for m in UPLOADED_LINE.finditer(log)),
            Counter(m.group(1) for log in logs for m in COMPLETED_LINE.finditer(log)))


def assert_transcoded_once(video_ids: list[str], *workers: Worker) -> Counter[str]:
    """Each video transcoded exactly once over all `workers`, and no other one. A redelivery
    keeps the attempt number (so the jobs table cannot tell), but a copy of a job that a worker
    had already done, or was still doing, must not run FFmpeg again. Returns the counts."""
    ran, completed = transcodes(*workers)
    once = Counter({vid: 1 for vid in video_ids})
    for what, counts in (("transcoded", ran), ("completed", completed)):
        assert counts == once, {
            what: "not once", "twice or more": {v: n for v, n in counts.items() if n > 1},
            "never": [v for v in video_ids if not counts[v]],
            "unexpected": [v for v in counts if v not in once]}
    return completed


def storage_leftovers(storage: Storage | Path) -> list[str]:
    """What a storage keeps while a write is under way. Local (storage/local.py): multipart
    uploads not completed or aborted (`multipart/<upload id>/`) and temp files (`tmp/`). S3:
    the multipart uploads still open under the server's prefix."""
    return _as_storage(storage).leftovers()


def assert_storage_clean(storage: Storage | Path) -> None:
    """No multipart upload (and, locally, no temp file) left in the storage."""
    store = _as_storage(storage)
    leftovers = store.leftovers()
    assert not leftovers, f"storage leftovers in {store}: {leftovers}"


def job_dirs(work_dir: Path) -> list[str]:
    """The `job-*` directories (runner.JobRunner.run) in a worker's work dir."""
    return sorted(p.name for p in work_dir.glob("job-*")) if work_dir.is_dir() else []


def assert_no_job_dirs(*work_dirs: Path, timeout: float = 5) -> None:
    """Every job directory removed. A worker removes it before it acks, so once the queue has
    drained nothing should be left; the short wait only absorbs a slow `rmtree` (a real
    leftover never goes away)."""
    def clean() -> bool:
        return not any(job_dirs(d) for d in work_dirs)

    try:
        wait_for(clean, timeout, interval=0.2, what="job directories to be removed")
    except WaitTimeout:
        raise AssertionError(
            f"job directories left: { {str(d): job_dirs(d) for d in work_dirs} }") from None


def assert_no_leftovers(server: Server, *workers: Worker) -> None:
    """After the queue has drained: the server's storage holds no multipart upload (and,
    locally, no temp file), and no worker's work dir holds a job directory."""
    assert_storage_clean(server.storage)
    assert_no_job_dirs(*(w.work_dir for w in workers))


def jobs(server: Server) -> dict[str, tuple[int, str]]:
    """{video id: (attempt, status)} of every transcoding job, read from the server's store
    (the embedded SQLite file read-only, or its MongoDB database): the outbox's view of what is
    still open."""
    url = server.env.get("COURSECRAFTER_DATABASE_URL", "")
    if url.startswith("mongodb"):
        from pymongo import MongoClient

        client: Any = MongoClient(url, serverSelectionTimeoutMS=5000)
        try:
            rows = [(doc["video_id"], doc["attempt"], doc["status"])
                    for doc in client.get_default_database()["jobs"].find()]
        finally:
            client.close()
    else:
        db = server.home / "coursecrafter.sqlite3"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute("SELECT video_id, attempt, status FROM jobs").fetchall()
        finally:
            conn.close()
    assert len({r[0] for r in rows}) == len(rows), rows  # one job per video
    return {video_id: (attempt, status) for video_id, attempt, status in rows}


def assert_jobs_done(server: Server, attempts: dict[str, int]) -> None:
    """Every job `done`, at the expected attempt (how often it was handed out again)."""
    assert jobs(server) == {vid: (n, "done") for vid, n in attempts.items()}


def address_space_limit(pid: int) -> int | None:
    """The soft RLIMIT_AS of a process in bytes (None: unlimited or gone), from /proc."""
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return None
    match = re.search(r"^Max address space\s+(\S+)", text, re.M)
    return int(match.group(1)) if match and match.group(1).isdigit() else None


def rss_now(pids: dict[str, int]) -> dict[str, float]:
    """{name: VmRSS in MiB right now}, with the same name suffixes as RssSampler."""
    return {name: _rss_of(name, pid) / 1024 for name, pid in pids.items()}


def _rss_of(name: str, pid: int) -> int:
    if name.endswith("+tree"):
        return sum(rss_kib(p) for p in process_tree(pid))
    if name.endswith("+children"):
        return sum(rss_kib(p) for p in process_tree(pid)[1:])
    return rss_kib(pid)


class RssSampler:
    """Samples VmRSS of named processes every `interval` s in a thread; `peaks` in MiB. For a
    name ending in "+tree" the RSS of the whole process tree (e.g. a worker with its FFmpeg
    children) is summed, for "+children" that of its descendants only (the FFmpeg it runs).
    `ffmpeg_limits` collects the address-space limit (bytes) of every FFmpeg seen in a tree,
    and `ffmpeg_seen` how many samples caught one."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.peaks: dict[str, float] = {name: 0.0 for name in pids}
        self.samples = 0
        self.ffmpeg_limits: set[int | None] = set()
        self.ffmpeg_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], _rss_of(name, pid) / 1024)
                if name.endswith("+tree"):
                    for child in process_tree(pid)[1:]:
                        if "ffmpeg" in proc_name(child):
                            limit = address_space_limit(child)
                            if alive(child) and proc_name(child):  # not gone in between
                                self.ffmpeg_limits.add(limit)
                                self.ffmpeg_seen += 1
            self.samples += 1
            if self._stop.wait(self.interval):
                return
