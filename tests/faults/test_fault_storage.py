"""Fault 5: object storage misbehaves on part uploads. The real `coursecrafter upload` sends its
parts through an HTTP proxy in front of the storage (the server's /blobs in embedded mode, moto's
S3 server in S3 mode) that answers 500, 503 (with Retry-After), 500 after storing the part, and
cuts one connection mid-body. The CLI must retry each part and the stored object must be
byte-identical to the file."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import uuid
from pathlib import Path

import pytest
from faultkit import PASSWORD, assert_storage_clean, base_env, storage_view
from livesupport import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.faults]

MIB = 1024 * 1024
PLAN = ["500", "503", "cut", "stored-500"]  # the first four part PUTs; every later one passes


def _file(path: Path, size: int) -> Path:
    rnd = random.Random(42)
    with open(path, "wb") as fh:
        for _ in range(size // MIB):
            fh.write(rnd.randbytes(MIB))
        fh.write(rnd.randbytes(size % MIB))
    return path


def _sha256_of(fh) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(MIB):
        digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("adapter", ["local", "s3"])
def test_part_put_errors_are_retried_and_the_object_is_byte_identical(lab, tmp_path, adapter,
                                                                      request):
    proxy = lab.http_proxy(PLAN)
    env = {"COURSECRAFTER_TRANSCODE_CONCURRENCY": "0"}  # keep the source for the comparison
    if adapter == "local":
        server = lab.server(env=env, public_url=proxy.url)  # blob URLs point at the proxy
        proxy.forward_to(server.url)
        storage_url, endpoint = server.blobs.resolve().as_uri(), None
    else:
        bucket = request.getfixturevalue("s3_bucket")
        endpoint = request.getfixturevalue("moto_endpoint")
        storage_url = f"s3://{bucket}/faults-{uuid.uuid4().hex[:8]}"
        proxy.forward_to(endpoint)
        server = lab.server(env={**env, "COURSECRAFTER_STORAGE_URL": storage_url,
                                 "COURSECRAFTER_S3_ENDPOINT_URL": proxy.url})

    cli = {**base_env(), "COURSECRAFTER_API_URL": server.url,
           "COURSECRAFTER_CONFIG_DIR": str(tmp_path / "cli"),
           "COURSECRAFTER_CREDENTIAL_STORE": "file", "NO_COLOR": "1"}
    for args in (("register", "--username", "ada", "--email", "ada@example.edu"),
                 ("login", "--username", "ada")):
        done = run_cli(cli, *args, "--password-stdin", stdin=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr

    lecture = _file(tmp_path / "lecture.mp4", 36 * MIB + 12345)  # 5 parts of 8 MiB
    began = time.monotonic()
    done = run_cli(cli, "upload", str(lecture), "--json", timeout=180)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    video = json.loads(done.stdout)
    assert video["size"] == lecture.stat().st_size

    # Every fault of the plan was served, each to a part that was then sent again and stored.
    faults = [p for p in proxy.parts if p.action != "pass"]
    assert sorted(p.action for p in faults) == sorted(PLAN), proxy.parts
    cut = next(p for p in faults if p.action == "cut")
    assert 0 < cut.received < 8 * MIB  # really cut mid-body
    stored = {p.part_number for p in proxy.parts if p.action == "pass" and p.status == 200}
    assert stored == {1, 2, 3, 4, 5}, proxy.parts
    assert {p.part_number for p in faults} <= stored
    warnings = re.findall(r"part \d+: (storage answered HTTP (?:500|503)|connection failed)",
                          done.stderr)
    assert len(warnings) == len(PLAN), done.stderr
    assert not list((tmp_path / "cli" / "uploads").glob("*.json"))  # no resume state left

    from coursecrafter_worker.storage import open_storage

    storage = open_storage(storage_url, public_url="http://127.0.0.1:9", secret="x" * 32,
                           s3_endpoint_url=endpoint)  # moto itself, not the proxy
    with storage.open_read(f"uploads/{video['id']}/source") as fh:
        stored_sha = _sha256_of(fh)
    with open(lecture, "rb") as fh:
        assert stored_sha == _sha256_of(fh)
    # Nothing half-done left in the storage: no multipart upload still open (the retried and
    # the cut parts included), no temp file.
    # (S3: read from moto itself, not through the proxy the server is configured with.)
    assert_storage_clean(server.storage if adapter == "local" else
                         storage_view({**server.env, "COURSECRAFTER_S3_ENDPOINT_URL": endpoint},
                                      server.home))
    print(f"\nstorage faults ({adapter}): {[(p.part_number, p.action) for p in faults]} -> "
          f"{len(proxy.parts)} part PUTs for 5 parts, upload took {took:.1f}s, SHA-256 identical")
