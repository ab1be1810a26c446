"""Helpers for tests that run real `coursecrafter-server` and `coursecrafter` processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

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
