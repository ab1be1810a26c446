"""NGINX as the tests' own process: the example gateway config (deploy/nginx/) rendered for a
loopback port, run with `nginx -p <tmpdir> -c <conf>` in the foreground. Everything it writes
(error and access logs, pid, temp files) stays in the temp dir; /etc/nginx and the system service
are never touched. Also used by bench/first_frame.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "deploy" / "nginx" / "coursecrafter.conf.template"


def nginx_path() -> str | None:
    for candidate in (os.environ.get("COURSECRAFTER_TEST_NGINX"), "/usr/sbin/nginx",
                      shutil.which("nginx")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render_gateway(upstream: str, server_name: str, listen: str) -> str:
    """The example config, with its placeholders filled in (as its header says to)."""
    return (TEMPLATE.read_text().replace("@UPSTREAM@", upstream)
            .replace("@SERVER_NAME@", server_name).replace("@LISTEN@", listen))


def main_conf(root: Path, http_body: str) -> str:
    """A whole nginx.conf whose every path is inside `root`."""
    mime = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
    # Started by root, NGINX's workers would run as `nobody` and could not read or write the
    # private temp dir: they run as the user who started it (as they do for anyone else).
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes 1;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    {mime}
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    {http_body}
}}
"""


@dataclass
class Nginx:
    url: str
    root: Path
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: fast shutdown of master and worker
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> str:
        path = self.root / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_nginx(root: Path, http_body: str, port: int, timeout: float = 30) -> Nginx:
    binary = nginx_path()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (apt-get install -y nginx)")
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(main_conf(root, http_body))
    check = subprocess.run([binary, "-t", "-q", "-p", str(root), "-c", str(conf),
                            "-g", f"pid {root}/nginx.pid;"],
                           capture_output=True, text=True, timeout=60, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t refused the config:\n{check.stderr}\n{conf.read_text()}")
    with open(root / "stderr.log", "ab") as err:
        process = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(conf), "-g", f"daemon off; pid {root}/nginx.pid;"],
            stdout=err, stderr=subprocess.STDOUT)
    gateway = Nginx(f"http://127.0.0.1:{port}", root, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}:\n{gateway.error_log()}"
                               f"{(root / 'stderr.log').read_text(errors='replace')}")
        try:
            httpx.get(gateway.url + "/", timeout=1)
            return gateway
        except httpx.HTTPError:
            time.sleep(0.1)
    gateway.stop()
    raise RuntimeError(f"nginx did not answer on {gateway.url}:\n{gateway.error_log()}")


def start_gateway(root: Path, upstream_url: str, port: int | None = None) -> Nginx:
    """The example gateway in front of `upstream_url` (http://host:port), on 127.0.0.1:port."""
    port = port or free_port()
    upstream = upstream_url.split("://", 1)[1].rstrip("/")
    return start_nginx(root, render_gateway(upstream, "127.0.0.1", f"127.0.0.1:{port}"), port)
