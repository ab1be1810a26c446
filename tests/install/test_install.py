"""Each install gives what the README says, checked the way a user installs.

The wheel is built once (not editable); three fresh virtualenvs get `pip install <wheel>`,
`<wheel>[server]` and `<wheel>[worker]` in parallel, with every dependency resolved from the
wheel's metadata (pip's cache makes repeat runs quick). The venvs' processes run with nothing of
this source tree or the dev venv on their paths (no PYTHONPATH; PATH is the venv's bin only, so no
system `ffmpeg` either: the server and worker installs must bring their own FFmpeg). Then:

- CLI only: `coursecrafter --help`, the SDK failing cleanly against a closed port, and nothing
  server- or FFmpeg-side installed or imported;
- server: the embedded `coursecrafter-server` takes an upload (the CLI-only venv's `coursecrafter
  upload --wait`) to `ready`, and the HLS it made decodes back to the clip's duration;
- worker: `coursecrafter-worker --version` names the venv's own FFmpeg, and the worker takes the
  job of an upload (made with the SDK of the CLI-only venv) from the real RabbitMQ (a vhost of our
  own) to `ready`, with the server of the server venv in scale-out mode.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from livesupport import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = {"cli": "", "server": "[server]", "worker": "[worker]"}
PASSWORD = "lecture hall 42"
#: What a CLI-only install must neither have installed nor import.
SERVER_SIDE = ("fastapi", "starlette", "uvicorn", "ffmpeg", "imageio_ffmpeg", "boto3", "pika",
               "pymongo", "redis", "jwt", "argon2", "pydantic_settings")
CLIP_SECONDS = 2.0


def clean_env(**extra: str) -> dict[str, str]:
    """No COURSECRAFTER_* setting, no PYTHONPATH (the tests run with the source tree on it), no
    virtualenv of ours; pip's own configuration (PIP_*) stays."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COURSECRAFTER_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def run(argv: list[str | Path], *, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


@dataclass
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(PATH=str(self.bin), **extra)

    def python(self, code: str, *, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        return run([self.bin / "python", "-c", code], timeout=timeout, env=self.env(**env),
                   cwd=self.path)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once from a copy of the sources (so the tree gets no build/ directory)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "node_modules"))
    started = time.monotonic()
    done = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
                work / "dist", source], timeout=600, env=clean_env(), cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (work / "dist").glob("coursecrafter-*.whl")
    print(f"wheel built in {time.monotonic() - started:.1f} s")
    return built


@pytest.fixture(scope="module")
def venvs(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Venv]:
    """One fresh virtualenv per install, all three installed at once.

    The venvs get no pip of their own (ensurepip costs seconds each): this pip installs into them
    (`pip --python`), resolving every dependency for them as usual. `--no-compile`: no .pyc for
    the thousands of botocore files (Python compiles what it imports)."""
    root = tmp_path_factory.mktemp("venvs")
    started = time.monotonic()
    envs = {name: Venv(root / name) for name in EXTRAS}
    for venv in envs.values():
        done = run([sys.executable, "-m", "venv", "--without-pip", venv.path], env=clean_env())
        assert done.returncode == 0, done.stderr

    def install(name: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "pip", "--python", str(envs[name].bin / "python"), "install",
             "--quiet", "--disable-pip-version-check", "--no-compile",
             f"{wheel}{EXTRAS[name]}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=clean_env(), cwd=envs[name].path)

    installs = {name: install(name) for name in envs}
    failures = []
    for name, proc in installs.items():
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            # Once more on its own: a registry hiccup must not fail CI (a real dependency
            # problem fails again, the same way).
            proc = install(name)
            out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            failures.append(f"pip install <wheel>{EXTRAS[name]} failed:\n{out[-3000:]}")
    assert not failures, "\n".join(failures)
    print(f"three venvs installed in {time.monotonic() - started:.1f} s")
    return envs


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small lecture clip, made by the FFmpeg under test (tests/conftest.py puts it on PATH)."""
    path = tmp_path_factory.mktemp("clip") / "lecture.mp4"
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg
    done = run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", f"testsrc2=s=320x240:r=25:d={CLIP_SECONDS}",
                "-f", "lavfi", "-i", f"sine=frequency=440:duration={CLIP_SECONDS}",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                "-shortest", path])
    assert done.returncode == 0, done.stderr
    return path


@dataclass
class Server:
    url: str
    home: Path
    env: dict[str, str]
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(venv: Venv, home: Path, **extra: str) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home.mkdir(parents=True)
    env = venv.env(COURSECRAFTER_HOME=str(home), COURSECRAFTER_PUBLIC_URL=url,
                   COURSECRAFTER_ARGON2_TIME_COST="1", COURSECRAFTER_ARGON2_MEMORY_KIB="8192",
                   COURSECRAFTER_ARGON2_PARALLELISM="1", **extra)
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(venv.bin / "coursecrafter-server"), "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    server = Server(url, home, env, process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited {process.returncode}:\n{server.log()}"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    stop(process)
    raise AssertionError(f"server did not become healthy:\n{server.log()}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def decoded_seconds(url: str) -> float:
    """Decode a playlist and its segments with the FFmpeg under test; the media time reached."""
    done = run([shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-nostdin", "-i", url,
                "-f", "null", "-"])
    assert done.returncode == 0, done.stderr[-2000:]
    h, m, s = re.findall(r"time=(\d+):(\d+):(\d+\.\d+)", done.stderr)[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def assert_ready(video: dict) -> None:
    assert video["status"] == "ready", video
    assert abs(video["duration"] - CLIP_SECONDS) < 0.5
    assert (video["width"], video["height"]) == (320, 240)
    assert [r["height"] for r in video["renditions"]] == [240]
    assert abs(decoded_seconds(video["playback_url"]) - CLIP_SECONDS) < 0.5


# ------------------------------------------------------------------------------------------------


def test_cli_only_install_is_the_client_alone(venvs: dict[str, Venv]) -> None:
    cli = venvs["cli"]
    help_ = run([cli.bin / "coursecrafter", "--help"], env=cli.env(NO_COLOR="1"), cwd=cli.path)
    assert help_.returncode == 0, help_.stderr
    assert "upload" in help_.stdout and "login" in help_.stdout
    # The SDK: a request to a server that is not there fails with the SDK's own error, and
    # nothing server- or FFmpeg-side is installed, let alone imported.
    port = free_port()
    done = cli.python(f"""
import importlib.util, json, sys
import coursecrafter_cli
from coursecrafter_cli import Client, MemoryCredentialStore
from coursecrafter_cli.main import app  # the `coursecrafter` command, all subcommands
from coursecrafter_cli.errors import CourseCrafterError
with Client("http://127.0.0.1:{port}", credential_store=MemoryCredentialStore(), timeout=5) as c:
    try:
        c.login("ada", "secret")
        error = None
    except CourseCrafterError as exc:
        error = type(exc).__name__
side = {SERVER_SIDE!r}
print(json.dumps({{
    "error": error,
    "cli_from": coursecrafter_cli.__file__,
    "installed": [m for m in side if importlib.util.find_spec(m) is not None],
    "imported": sorted({{m.split(".")[0] for m in sys.modules}}
                       & set(side + ("coursecrafter_server", "coursecrafter_worker"))),
}}))
""")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["error"] == "TransportError"
    assert report["cli_from"].startswith(str(cli.path))  # the installed wheel, not the tree
    assert report["installed"] == [] and report["imported"] == []


def test_server_install_transcodes_an_upload_to_ready(venvs: dict[str, Venv], clip: Path,
                                                      tmp_path: Path) -> None:
    server_venv, cli = venvs["server"], venvs["cli"]
    server = start_server(server_venv, tmp_path / "home")
    try:
        # The embedded server found the FFmpeg its own install brought (PATH is its venv's bin).
        assert re.search(rf"FFmpeg \S+ at {re.escape(str(server_venv.path))}/\S*imageio_ffmpeg",
                         server.log()), server.log()
        env = cli.env(COURSECRAFTER_API_URL=server.url, NO_COLOR="1",
                      COURSECRAFTER_CONFIG_DIR=str(tmp_path / "cli"),
                      COURSECRAFTER_CREDENTIAL_STORE="file")
        coursecrafter = str(cli.bin / "coursecrafter")
        for args in (["register", "--username", "ada", "--email", "ada@example.edu"],
                     ["login", "--username", "ada"]):
            done = run([coursecrafter, *args, "--password-stdin"], input=PASSWORD + "\n",
                       env=env, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        done = run([coursecrafter, "upload", str(clip), "--wait", "--json"], env=env,
                   cwd=tmp_path, timeout=300)
        assert done.returncode == 0, (done.stderr, server.log())
        assert_ready(json.loads(done.stdout))
    finally:
        stop(server.process)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    vhost = f"cc-install-{uuid.uuid4().hex[:8]}"
    try:
        for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
            subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"rabbitmqctl unavailable (RabbitMQ vhost): {exc}")
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def test_worker_install_takes_a_job_from_rabbitmq(venvs: dict[str, Venv], clip: Path,
                                                  tmp_path: Path, amqp_url: str) -> None:
    worker_venv, cli = venvs["worker"], venvs["cli"]
    version = run([worker_venv.bin / "coursecrafter-worker", "--version"], env=worker_venv.env(),
                  cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert re.search(rf"^FFmpeg \S+ at {re.escape(str(worker_venv.path))}/\S*imageio_ffmpeg",
                     version.stdout, re.MULTILINE), version.stdout
    # A worker needs no API: the worker extra brings no FastAPI.
    assert worker_venv.python("import importlib.util as u; print(u.find_spec('fastapi'))"
                              ).stdout.strip() == "None"

    server = start_server(venvs["server"], tmp_path / "home", COURSECRAFTER_BROKER_URL=amqp_url)
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "wb") as log:
        worker = subprocess.Popen(
            [str(worker_venv.bin / "coursecrafter-worker"), "--concurrency", "1"],
            env=worker_venv.env(**{k: v for k, v in server.env.items()
                                   if k.startswith("COURSECRAFTER_")}),
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        done = cli.python(f"""
import json
from coursecrafter_cli import Client, MemoryCredentialStore
with Client({server.url!r}, credential_store=MemoryCredentialStore()) as client:
    client.register("ada", "ada@example.edu", {PASSWORD!r})
    client.login("ada", {PASSWORD!r})
    video = client.upload({str(clip)!r})
    print(json.dumps(client.wait_for_video(video["id"], poll_interval=0.5, timeout=240)))
""", timeout=300, COURSECRAFTER_CONFIG_DIR=str(tmp_path / "sdk"))
        assert done.returncode == 0, (done.stderr, server.log(), worker_log.read_text())
        video = json.loads(done.stdout)
        assert_ready(video)
        # The worker of the worker venv did it (the server has no transcoders with a broker).
        assert video["id"] in worker_log.read_text(), worker_log.read_text()
    finally:
        stop(worker)
        stop(server.process)
