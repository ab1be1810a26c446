"""Fixtures for the object-storage tests: a real moto S3 server and a live blob server, both on
free loopback ports in threads of this process (real HTTP, nothing patched)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from coursecrafter_worker.storage.local import LocalStorage
from coursecrafter_server.api.blobs import blob_router
from coursecrafter_worker.storage.s3 import S3Storage

SECRET = b"test-secret-0123456789abcdef"
BUCKET = "coursecrafter-test"


@pytest.fixture(scope="session")
def s3_client(s3_bucket: str, moto_endpoint: str) -> Any:
    """The boto3 client exactly as S3Storage builds it (building one takes ~0.7 s: share it)."""
    return S3Storage(s3_bucket, endpoint_url=moto_endpoint).client


@pytest.fixture
def s3_storage(s3_bucket: str, moto_endpoint: str, s3_client: Any) -> S3Storage:
    """An S3Storage under a fresh key prefix of the shared bucket (so tests do not see each
    other's objects, and the prefix mapping is exercised everywhere)."""
    return S3Storage(
        s3_bucket, prefix=f"t-{uuid.uuid4().hex[:12]}", endpoint_url=moto_endpoint, client=s3_client
    )


@dataclass
class BlobServer:
    url: str
    current: dict[str, LocalStorage] = field(default_factory=dict)

    def use(self, storage: LocalStorage) -> LocalStorage:
        self.current["storage"] = storage
        return storage


@pytest.fixture(scope="session")
def blob_server() -> Iterator[BlobServer]:
    """A live uvicorn server with nothing but `blob_router`, serving whichever LocalStorage the
    current test installed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    live = BlobServer(url=f"http://127.0.0.1:{port}")

    app = FastAPI()
    app.include_router(blob_router(lambda: live.current["storage"]))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the blob server did not start")
        time.sleep(0.01)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@pytest.fixture(scope="session")
def storage_secret() -> bytes:
    return SECRET


@pytest.fixture
def make_local(blob_server: BlobServer) -> Callable[..., LocalStorage]:
    """`make_local(root, **kwargs)`: a LocalStorage that the blob server serves from now on."""

    def make(root: Path, **kwargs: Any) -> LocalStorage:
        kwargs.setdefault("fsync", False)
        return blob_server.use(LocalStorage(root, blob_server.url, SECRET, **kwargs))

    return make


@pytest.fixture
def local_storage(make_local: Callable[..., LocalStorage], tmp_path: Path) -> LocalStorage:
    return make_local(tmp_path / "blobs")


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    # trust_env=False: the loopback servers are never reached through a proxy.
    with httpx.Client(timeout=30, trust_env=False) as client:
        yield client
