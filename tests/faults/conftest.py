"""Fixtures of the fault-injection suite (`pytest -m faults`): see faultkit.py."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultkit import (
    HttpFaultProxy,
    Server,
    TcpProxy,
    Vhost,
    Worker,
    make_clip,
    rabbitmq_usable,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection against real processes, RabbitMQ and Redis (slow)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny: 2 s 320x240 (~0.3 s to transcode); medium: 6 s 640x360 (~1 s);
    long: 30 s 640x360 (~5 s: long enough to be hit mid-FFmpeg)."""
    base = tmp_path_factory.mktemp("clips")
    return {
        "tiny": make_clip(base / "tiny.mp4", seconds=2),
        "medium": make_clip(base / "medium.mp4", seconds=6, size="640x360"),
        "long": make_clip(base / "long.mp4", seconds=30, size="640x360"),
    }


class Lab:
    """Everything a test starts, stopped in reverse order at teardown (workers before servers,
    the vhost last), with the logs printed when the test failed."""

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest | None = None) -> None:
        self.tmp_path = tmp_path
        self._request = request
        self._started: list[Any] = []

    def storage_env(self, adapter: str) -> dict[str, str]:
        """The environment that puts a server (and the workers started from it) on `adapter`:
        "local" is the embedded default (the blobs dir in its home, nothing to set); "s3" is a
        prefix of its own in the session's bucket on moto's S3 server (tests/conftest.py
        `s3_bucket`, `moto_endpoint`), with the dummy AWS credentials of `aws_env`."""
        if adapter == "local":
            return {}
        assert adapter == "s3", adapter
        assert self._request is not None
        bucket = self._request.getfixturevalue("s3_bucket")
        endpoint = self._request.getfixturevalue("moto_endpoint")  # aws_env is active now
        aws = {k: v for k, v in os.environ.items()
               if k.startswith("AWS_") or k in ("NO_PROXY", "no_proxy")}
        assert aws.get("AWS_ACCESS_KEY_ID") == "testing", "aws_env should be active"
        return {**aws,
                "COURSECRAFTER_STORAGE_URL": f"s3://{bucket}/faults-{uuid.uuid4().hex[:8]}",
                "COURSECRAFTER_S3_ENDPOINT_URL": endpoint}

    def database_env(self, database: str) -> dict[str, str]:
        """The environment that puts a server (and its workers) on `database`: "sqlite" is the
        embedded default; "mongodb" is a database of its own on the MongoDB wire-protocol server
        the test session started (tests/mongoserver.py), or on COURSECRAFTER_TEST_MONGODB_URL."""
        if database == "sqlite":
            return {}
        assert database == "mongodb", database
        url = os.environ.get("COURSECRAFTER_TEST_MONGODB_URL")
        if not url:
            pytest.skip("COURSECRAFTER_TEST_MONGODB_URL is not set: no MongoDB server to test on")
        parts = urlsplit(url)
        name = f"cc_faults_{uuid.uuid4().hex[:8]}"
        return {"COURSECRAFTER_DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}"))}

    def vhost(self) -> Vhost:
        why = rabbitmq_usable()
        if why:
            pytest.skip(why)
        vhost = Vhost()
        self._started.append(vhost)
        return vhost

    def server(self, name: str = "server", env: dict[str, str] | None = None, *,
               port: int | None = None, public_url: str | None = None,
               start: bool = True) -> Server:
        server = Server(self.tmp_path / name, env, port=port, public_url=public_url)
        self._started.append(server)
        return server.start() if start else server

    def worker(self, server: Server, name: str = "worker", *, concurrency: int = 1,
               env: dict[str, str] | None = None,
               command_prefix: list[str] | None = None) -> Worker:
        worker = Worker(server.env, self.tmp_path / name / "worker.log", concurrency=concurrency,
                        extra_env={"COURSECRAFTER_WORK_DIR": str(self.tmp_path / name / "work"),
                                   **(env or {})}, command_prefix=command_prefix)
        self._started.append(worker)
        return worker.start()

    def tcp_proxy(self, upstream: tuple[str, int] | None = None, *,
                  bind: str = "127.0.0.1") -> TcpProxy:
        proxy = TcpProxy(upstream, bind=bind)
        self._started.append(proxy)
        return proxy

    def http_proxy(self, plan: list[str] | None = None) -> HttpFaultProxy:
        proxy = HttpFaultProxy(plan=list(plan or []))
        self._started.append(proxy)
        return proxy

    def logs(self) -> str:
        out = []
        for thing in self._started:
            if isinstance(thing, (Server, Worker)):
                out.append(f"----- {thing.log_path} -----\n{thing.log()[-6000:]}")
        return "\n".join(out)

    def teardown(self, failed: bool) -> None:
        if failed:
            print(self.logs())
        for kind in (Worker, Server, object):
            for thing in reversed(self._started):
                if kind is object and isinstance(thing, (Worker, Server)):
                    continue
                if kind is not object and not isinstance(thing, kind):
                    continue
                try:
                    if isinstance(thing, Vhost):
                        thing.delete()
                    elif isinstance(thing, (Worker, Server)):
                        thing.stop()
                    else:
                        thing.close()
                except Exception as exc:  # teardown must go on
                    print(f"teardown of {thing!r} failed: {exc!r}")


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path, request)
    yield lab
    report = getattr(request.node, "rep_call", None)
    lab.teardown(failed=bool(report is not None and report.failed))
