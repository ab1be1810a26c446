from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from livesupport import LiveServer, start_live_server
from moto.server import ThreadedMotoServer

# Tests must never read a developer's real config or data.
os.environ.pop("COURSECRAFTER_API_URL", None)
os.environ.pop("COURSECRAFTER_TOKEN", None)


# The FFmpeg under test ---------------------------------------------------------------------------
# COURSECRAFTER_TEST_FFMPEG: `wheel` (the default: the imageio-ffmpeg binary, no ffprobe), `system`
# (the `ffmpeg` on PATH with its `ffprobe`, e.g. Debian's package: CI's second pass, `make
# test-ffmpeg-system`) or the path of a binary. It goes first on PATH, as a directory holding an
# `ffmpeg` link (and an `ffprobe` link when one sits next to the chosen binary), so the pipeline
# (COURSECRAFTER_FFMPEG, else PATH) and every server and worker process the tests start use it,
# whatever else the machine has installed.
TEST_FFMPEG_ENV = "COURSECRAFTER_TEST_FFMPEG"


def _select_ffmpeg() -> tuple[str, str | None]:
    import atexit
    import shutil
    import tempfile

    from coursecrafter_worker.pipeline.process import find_ffprobe

    choice = os.environ.get(TEST_FFMPEG_ENV, "").strip() or "wheel"
    if choice == "wheel":
        import imageio_ffmpeg

        binary = imageio_ffmpeg.get_ffmpeg_exe()
    elif choice == "system":
        binary = shutil.which("ffmpeg")
        if binary is None:
            raise pytest.UsageError(f"{TEST_FFMPEG_ENV}=system, but there is no ffmpeg on PATH "
                                    "(apt-get install -y ffmpeg)")
    else:
        binary = choice
    binary = os.path.realpath(binary)
    if not os.access(binary, os.X_OK):
        raise pytest.UsageError(f"{TEST_FFMPEG_ENV}: {binary} is not an executable")
    ffprobe = find_ffprobe(binary)
    shim = tempfile.mkdtemp(prefix="coursecrafter-test-ffmpeg-")
    atexit.register(shutil.rmtree, shim, True)
    os.symlink(binary, os.path.join(shim, "ffmpeg"))
    if ffprobe is not None:
        os.symlink(ffprobe, os.path.join(shim, "ffprobe"))
    os.environ["PATH"] = shim + os.pathsep + os.environ.get("PATH", "")
    return binary, ffprobe


TEST_FFMPEG, TEST_FFPROBE = _select_ffmpeg()


def pytest_report_header(config: pytest.Config) -> str:
    return (f"ffmpeg under test ({TEST_FFMPEG_ENV}={os.environ.get(TEST_FFMPEG_ENV) or 'wheel'}): "
            f"{TEST_FFMPEG}, ffprobe: {TEST_FFPROBE or 'none (the banner parser)'}")

# Tests of the RabbitMQ and Redis paths skip when those servers are unreachable, which is kind to a
# laptop but would let CI go green without them: `.ci/run` sets this, and such a skip then fails.
_SERVICE_SKIP = re.compile(r"rabbit|redis|amqp|broker|vhost|mongodb|nginx", re.IGNORECASE)

_mongo_server = None


def pytest_configure(config: pytest.Config) -> None:
    # Before collection: test modules read COURSECRAFTER_TEST_MONGODB_URL when imported.
    global _mongo_server
    import mongoserver

    _mongo_server = mongoserver.configure()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _mongo_server is not None:
        _mongo_server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("COURSECRAFTER_REQUIRE_SERVICES")):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if _SERVICE_SKIP.search(reason):
        report.outcome = "failed"
        report.longrepr = f"COURSECRAFTER_REQUIRE_SERVICES is set, but: {reason}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings_factory(home: Path):
    from coursecrafter_server.settings import Settings

    def make(**overrides: object) -> Settings:
        base: dict[str, object] = {
            "home": home,
            "database_url": "memory://",
            "public_url": "http://127.0.0.1:8000",
            "login_rate_limit_address": "1000/minute",
            "login_rate_limit_account": "1000/minute",
            "refresh_rate_limit_address": "1000/minute",
            "refresh_rate_limit_account": "1000/minute",
            "login_failure_limit_account_address": "1000/minute",
            "login_failure_limit_address": "1000/minute",
            "login_failure_limit_device": "1000/minute",
            "register_rate_limit_address": "1000/minute",
            # Still argon2id, at a cost that keeps the suite fast; production uses RFC 9106's.
            "argon2_time_cost": 1,
            "argon2_memory_kib": 8 * 1024,
            "argon2_parallelism": 1,
        }
        base.update(overrides)
        return Settings(_env_file=None, **base)  # type: ignore[call-arg]

    return make


@pytest.fixture
def app_factory(settings_factory):
    from fastapi.testclient import TestClient

    from coursecrafter_server.app import create_app

    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        client = TestClient(create_app(settings_factory(**overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(app_factory) -> Iterator:
    yield app_factory()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The embedded default (SQLite, local blobs) in a real server process."""
    server = start_live_server(tmp_path / "server-home")
    yield server
    server.stop()


@pytest.fixture
def cli_env(tmp_path: Path, live_server: LiveServer) -> dict[str, str]:
    """Environment for running the real `coursecrafter` command against `live_server`."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")},
        "COURSECRAFTER_API_URL": live_server.url,
        "COURSECRAFTER_CONFIG_DIR": str(tmp_path / "cli-config"),
        "COURSECRAFTER_CREDENTIAL_STORE": "file",
        "NO_COLOR": "1",
    }


# S3: moto's server over real HTTP (never a patched boto3) ----------------------------------------

BUCKET = "coursecrafter-test"


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Dummy credentials, a fixed region and no shared config: the standard chain finds these."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_SESSION_TOKEN", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("NO_PROXY", "no_proxy"):
            mp.setenv(name, "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_env: None) -> Iterator[str]:
    # Port 0: the OS picks a free port when the server binds, with no race.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_bucket(moto_endpoint: str) -> str:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return BUCKET


