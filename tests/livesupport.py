"""Helpers for tests that run real `coursecrafter-server` and `coursecrafter` processes."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

BIN = Path(sys.executable).parent




def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A real `coursecrafter-server` process on a loopback port."""

    url: str
    home: Path
    env: dict[str, str]
    process: subprocess.Popen
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_live_server(home: Path, env_overrides: dict[str, str] | None = None,
                      timeout: float = 30) -> LiveServer:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")},
        "COURSECRAFTER_HOME": str(home),
        "COURSECRAFTER_PUBLIC_URL": url,
        "COURSECRAFTER_ARGON2_TIME_COST": "1",
        "COURSECRAFTER_ARGON2_MEMORY_KIB": "8192",
        "COURSECRAFTER_ARGON2_PARALLELISM": "1",
        **(env_overrides or {}),
    }
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(BIN / "coursecrafter-server"), "--port", str(port), "--log-level", "info"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home,
        )
    server = LiveServer(url=url, home=home, env=env, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not become healthy:\n{server.log()}")




def run_cli(env: dict[str, str], *args: str, stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "coursecrafter"), *args], input=stdin, text=True, env=env,
        capture_output=True, timeout=timeout,
    )


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=60, check=check)


MIB = 1024 * 1024


def make_file(path: Path, size: int, seed: int = 1) -> Path:
    """A file of `size` pseudo-random bytes, written in pieces (never whole in memory)."""
    import random

    rnd = random.Random(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(MIB, left)
            fh.write(rnd.randbytes(n))
            left -= n
    return path


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- HTTP fault proxy


def reset_connection(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0), like a crashed peer."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


# --------------------------------------------------------------------------- HTTP fault proxy


@dataclass
class PartPut:
    part_number: int
    action: str
    received: int  # body bytes the proxy read
    status: int | None  # what the client was answered (None: connection cut)


@dataclass
class HttpFaultProxy:
    """A forwarding HTTP proxy in front of storage (the server's /blobs, or S3) that applies a
    plan to part PUTs (`PUT ...?partNumber=N&uploadId=...`), in the order they arrive:

    - "pass": forward;
    - "500" / "503": read the whole body, answer that status without forwarding;
    - "403": the same, as storage refusing an expired or wrongly signed URL;
    - "stored-500": forward (storage keeps the part), then answer 500 anyway;
    - "cut": read about half the body, then reset the connection (RST) mid-body.

    Every other request is forwarded as it is."""

    plan: list[str] = field(default_factory=list)
    upstream: tuple[str, int] | None = None
    parts: list[PartPut] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                action = proxy._next_action(self.command, self.path)
                number = int((re.search(r"[?&]partNumber=(\d+)", self.path) or [0, 0])[1])
                if action == "cut":
                    got = self.rfile.read(max(1, length // 2)) if length else b""
                    proxy._record(PartPut(number, action, len(got), None))
                    reset_connection(self.connection)
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                if len(body) < length:  # the client went away mid-body
                    self.close_connection = True
                    return
                if action in ("403", "500", "503"):
                    proxy._record(PartPut(number, action, len(body), int(action)))
                    payload = b'{"error": {"code": "injected", "message": "injected fault"}}'
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/json")
                    if action == "503":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                status, reason, headers, data = proxy._forward(self.command, self.path,
                                                               self.headers.items(), body)
                if action == "stored-500":
                    proxy._record(PartPut(number, action, len(body), 500))
                    status, reason, data = 500, "Internal Server Error", \
                        b'{"error": {"code": "injected", "message": "stored, then failed"}}'
                    headers = [("Content-Type", "application/json")]
                elif action == "pass":
                    proxy._record(PartPut(number, action, len(body), status))
                self.send_response(status, reason)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "connection", "keep-alive",
                                           "content-length", "server", "date"):
                        self.send_header(key, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", dict(
                        (k.lower(), v) for k, v in headers).get("content-length", "0"))
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def forward_to(self, url: str) -> None:
        parts = urlsplit(url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)

    def _next_action(self, method: str, path: str) -> str | None:
        if method != "PUT" or "partNumber=" not in path:
            return None
        with self._lock:
            return self.plan.pop(0) if self.plan else "pass"

    def _record(self, put: PartPut) -> None:
        with self._lock:
            self.parts.append(put)

    def _forward(self, method: str, path: str, headers: Iterable[tuple[str, str]],
                 body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        assert self.upstream is not None
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            conn.request(method, path, body=body, headers={
                k: v for k, v in headers if k.lower() not in ("connection", "keep-alive", "expect")
            })
            response = conn.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
