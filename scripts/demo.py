"""`make demo`: the embedded default end to end, with nothing but Python installed.

Starts `coursecrafter-server` on a free loopback port with its data in .demo/, then drives the real
`coursecrafter` command: register a demo instructor, log in, whoami, log out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
BIN = Path(sys.executable).parent
PASSWORD = "demo lecture 2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"demo: the server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("demo: the server did not become healthy in time")


def cli(env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True) -> int:
    print(f"$ coursecrafter {' '.join(args)}", flush=True)
    done = subprocess.run([str(BIN / "coursecrafter"), *args], input=stdin, text=True, env=env)
    if check and done.returncode != 0:
        raise SystemExit(f"demo: `coursecrafter {args[0]}` exited with {done.returncode}")
    return done.returncode


def main() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "COURSECRAFTER_HOME": str(DEMO / "home"),
        "COURSECRAFTER_CONFIG_DIR": str(DEMO / "config"),
        "COURSECRAFTER_PUBLIC_URL": url,
        "COURSECRAFTER_API_URL": url,
        "COURSECRAFTER_CREDENTIAL_STORE": "file",
    }
    print(f"demo: starting coursecrafter-server on {url} (data in {DEMO})", flush=True)
    server = subprocess.Popen(
        [str(BIN / "coursecrafter-server"), "--port", str(port), "--log-level", "warning"], env=env
    )
    try:
        wait_healthy(url, server)
        registered = cli(
            env, "register", "--username", "demo", "--email", "demo@example.edu",
            "--password-stdin", stdin=PASSWORD + "\n", check=False,
        )
        if registered not in (0, 1):
            raise SystemExit(f"demo: register exited with {registered}")
        cli(env, "login", "--username", "demo", "--password-stdin", stdin=PASSWORD + "\n")
        cli(env, "whoami")
        cli(env, "whoami", "--json")
        cli(env, "logout")
        print("demo: done", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    main()
