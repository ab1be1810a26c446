"""A MongoDB wire-protocol server for the tests: SecantusDB (`secantusd-py`, PyPI `secantusdb`,
GPL-2.0, a test-only dependency of the `dev` extra), run as a separate process on a free
loopback port with in-memory storage. It is not mongod: it speaks the wire protocol pymongo
uses, on WiredTiger, so the MongoDB adapter meets a real server, real network round trips and
real concurrency rather than mongomock's in-process imitation.

`pytest_configure` (tests/conftest.py) starts it unless `COURSECRAFTER_TEST_MONGODB_URL` is
already set (point that at a real mongod to test against one), and exports the URL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = "COURSECRAFTER_TEST_MONGODB_URL"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MongoServer:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start(timeout: float = 60.0) -> MongoServer | None:
    """Start `secantusd-py` and wait until it answers a ping; None when it is not installed or
    does not come up (the MongoDB tests then skip, which CI turns into a failure)."""
    binary = Path(sys.executable).with_name("secantusd-py")
    if not binary.exists():
        return None
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    log = Path(tempfile.mkdtemp(prefix="cc-secantus-")) / "secantusd.log"
    for _ in range(3):  # the free port may be taken between our probe and its bind
        port = _free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(binary), "--host", "127.0.0.1", "--port", str(port),
                 "--storage-path", ":memory:", "--standalone", "--log-level", "WARNING"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=500)
            try:
                client.admin.command("ping")
                return MongoServer(process, url, log)
            except PyMongoError:
                time.sleep(0.1)
            finally:
                client.close()
        MongoServer(process, url, log).stop()
    print(f"secantusd-py did not come up; its log: {log}", file=sys.stderr)
    return None


def configure() -> MongoServer | None:
    if os.environ.get(ENV):
        return None
    server = start()
    if server is not None:
        os.environ[ENV] = server.url
    return server
