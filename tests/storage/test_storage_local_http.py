"""LocalStorage only: the signed /blobs URLs as served by `blob_router` (live uvicorn server), and
the on-disk guarantees (streaming, atomic parts, nothing outside the root)."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import httpx
import pytest

from coursecrafter_worker.storage import InvalidKey, NoSuchKey, NoSuchUpload, StorageError
from coursecrafter_worker.storage.local import LocalStorage


MiB = 1024 * 1024


def new_key() -> str:
    return f"uploads/{uuid.uuid4().hex}/source"


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if not p.is_dir())


def wait_until(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def raw_request(base_url: str, method: str, raw_target: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send the request target exactly as given (httpx would normalise `..` away)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest(method, raw_target, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# Signatures -------------------------------------------------------------------------------------
def test_part_url_shape(local_storage: LocalStorage, blob_server: Any) -> None:
    key = new_key()
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    url = httpx.URL(local_storage.presign_upload_part(key, upload_id, 7, 120))
    assert str(url).startswith(f"{blob_server.url}/blobs/{key}?")
    params = dict(url.params)
    assert params["uploadId"] == upload_id and params["partNumber"] == "7"
    assert abs(int(params["expires"]) - (time.time() + 120)) < 5
    assert len(params["signature"]) == 64


def test_bad_or_missing_signature_is_403(local_storage: LocalStorage, http: httpx.Client) -> None:
    key = new_key()
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    url = httpx.URL(local_storage.presign_upload_part(key, upload_id, 1, 60))
    signature = url.params["signature"]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")

    other_secret = LocalStorage(local_storage.root, str(local_storage.public_url), b"another-secret-0123456789")
    candidates = [
        url.copy_set_param("signature", flipped),
        url.copy_set_param("signature", "zz" * 32),
        url.copy_remove_param("signature"),
        url.copy_remove_param("expires"),
        url.copy_set_param("expires", str(int(url.params["expires"]) + 3600)),  # extend validity
        httpx.URL(other_secret.presign_upload_part(key, upload_id, 1, 60)),
    ]
    for candidate in candidates:
        response = http.put(candidate, content=b"evil")
        assert response.status_code == 403, candidate
        assert error_code(response) == "signature_invalid"
    assert local_storage.list_parts(key, upload_id) == []


def test_expired_url_is_403(
    local_storage: LocalStorage, http: httpx.Client, tmp_path: Path, storage_secret: bytes
) -> None:
    key = new_key()
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    an_hour_ago = LocalStorage(
        local_storage.root, local_storage.public_url, storage_secret, clock=lambda: time.time() - 3600
    )
    response = http.put(an_hour_ago.presign_upload_part(key, upload_id, 1, 60), content=b"late")
    assert response.status_code == 403
    assert error_code(response) == "url_expired"
    assert local_storage.list_parts(key, upload_id) == []

    source = tmp_path / "f"
    source.write_bytes(b"data")
    local_storage.upload_file(source, "videos/v/poster.jpg", "image/jpeg")
    response = http.get(an_hour_ago.presign_get("videos/v/poster.jpg", 60))
    assert response.status_code == 403
    assert error_code(response) == "url_expired"


def test_url_signed_for_another_part_upload_or_key_is_403(
    local_storage: LocalStorage, http: httpx.Client
) -> None:
    key, other_key = new_key(), new_key()
    upload_a = local_storage.create_multipart_upload(key, "video/mp4")
    upload_b = local_storage.create_multipart_upload(key, "video/mp4")
    url = httpx.URL(local_storage.presign_upload_part(key, upload_a, 1, 60))
    get_url = httpx.URL(local_storage.presign_get(key, 60))

    reused = [
        url.copy_set_param("partNumber", "2"),
        url.copy_set_param("uploadId", upload_b),
        url.copy_with(path=f"/blobs/{other_key}"),
        get_url,  # a GET URL used to PUT
        get_url.copy_merge_params({"uploadId": upload_a, "partNumber": "1"}),
    ]
    for candidate in reused:
        response = http.put(candidate, content=b"evil")
        assert response.status_code == 403, candidate
        assert error_code(response) == "signature_invalid"
    # a PUT URL used to GET
    response = http.get(url)
    assert response.status_code == 403
    assert error_code(response) == "signature_invalid"

    assert local_storage.list_parts(key, upload_a) == []
    assert local_storage.list_parts(key, upload_b) == []
    assert http.put(url, content=b"fine").status_code == 200


def test_unknown_upload_is_404(local_storage: LocalStorage, http: httpx.Client) -> None:
    key = new_key()
    response = http.put(local_storage.presign_upload_part(key, "ab" * 16, 1, 60), content=b"x")
    assert response.status_code == 404
    assert error_code(response) == "no_such_upload"

    # an existing upload, but of another key
    upload_id = local_storage.create_multipart_upload(new_key(), "video/mp4")
    response = http.put(local_storage.presign_upload_part(key, upload_id, 1, 60), content=b"x")
    assert response.status_code == 404
    assert error_code(response) == "no_such_upload"


# Path traversal ---------------------------------------------------------------------------------
TRAVERSALS = [
    "/blobs/../../../../pwned",
    "/blobs/%2e%2e/%2e%2e/%2e%2e/%2e%2e/pwned",
    "/blobs/%2E%2E%2F%2E%2E%2F%2E%2E%2Fpwned",
    "/blobs/uploads/../../../../pwned",
    "/blobs/uploads/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/pwned",
    "/blobs/%2f..%2f..%2fpwned",
    "/blobs//tmp/pwned",
    "/blobs/..%5c..%5c..%5cpwned",
    "/blobs/uploads/pwned%00.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_is_rejected(
    blob_server: Any, make_local: Callable[..., LocalStorage], tmp_path: Path, target: str
) -> None:
    # Deep enough that every `..` above still lands inside tmp_path, where we look for it.
    storage = make_local(tmp_path / "l1" / "l2" / "l3" / "l4" / "blobs")
    upload_id = storage.create_multipart_upload(new_key(), "video/mp4")
    decoded_key = unquote(target[len("/blobs/") :])
    expires = int(time.time()) + 60
    # Even a URL that carries a correct signature for the traversing key must be refused.
    query = urlencode(
        {
            "uploadId": upload_id,
            "partNumber": 1,
            "expires": expires,
            "signature": storage.urls.signature("PUT", decoded_key, upload_id, 1, expires),
        }
    )
    status, body = raw_request(blob_server.url, "PUT", f"{target}?{query}", b"owned")
    assert status in (400, 403, 404), body
    get_query = urlencode(
        {"expires": expires, "signature": storage.urls.signature("GET", decoded_key, "", None, expires)}
    )
    status, body = raw_request(blob_server.url, "GET", f"{target}?{get_query}")
    assert status in (400, 403, 404), body

    assert not [p for p in tmp_path.rglob("*pwned*")]
    assert files_under(storage.root / "objects") == []
    assert files_under(storage.root / "tmp") == []


def test_keys_cannot_escape_through_a_symlink(local_storage: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (local_storage.root / "objects" / "evil").symlink_to(outside, target_is_directory=True)
    source = tmp_path / "f"
    source.write_bytes(b"x")
    with pytest.raises(InvalidKey):
        local_storage.upload_file(source, "evil/x", "text/plain")
    with pytest.raises(InvalidKey):
        local_storage.head("evil/x")
    with pytest.raises(InvalidKey):
        local_storage.create_multipart_upload("evil/x", "text/plain")
    assert list(outside.iterdir()) == []


# Streaming and atomicity --------------------------------------------------------------------------
def test_a_20_mib_part_is_streamed_not_buffered(local_storage: LocalStorage, http: httpx.Client) -> None:
    key = new_key()
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    url = local_storage.presign_upload_part(key, upload_id, 1, 60)
    chunk = bytes(range(256)) * 256  # 64 KiB, one object reused: the client holds no 20 MiB
    count = 20 * MiB // len(chunk)

    def body():  # type: ignore[no-untyped-def]
        for _ in range(count):
            yield chunk

    tracemalloc.start()
    try:
        response = http.put(url, content=body())
        _, peak = tracemalloc.get_traced_memory()  # every thread: client, uvicorn, handler
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB for a 20 MiB part"

    expected = hashlib.md5()
    for _ in range(count):
        expected.update(chunk)
    [part] = local_storage.list_parts(key, upload_id)
    assert (part.size, part.etag) == (20 * MiB, f'"{expected.hexdigest()}"')
    assert response.headers["ETag"] == part.etag


def test_a_half_written_part_never_counts(
    local_storage: LocalStorage, blob_server: Any, http: httpx.Client
) -> None:
    key = new_key()
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    full = b"a" * MiB
    put_part = lambda data: http.put(local_storage.presign_upload_part(key, upload_id, 1, 60), content=data)  # noqa: E731
    assert put_part(full).status_code == 200

    # A second PUT of the same part dies half-way: the first one must survive untouched.
    url = httpx.URL(local_storage.presign_upload_part(key, upload_id, 1, 60))
    target = url.raw_path.decode()
    with socket.create_connection((url.host, url.port)) as sock:
        sock.sendall(
            f"PUT {target} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Content-Length: {4 * MiB}\r\n\r\n".encode()
        )
        sock.sendall(b"b" * 300_000)
        time.sleep(0.2)
    assert wait_until(lambda: files_under(local_storage.root / "tmp") == [])
    [part] = local_storage.list_parts(key, upload_id)
    assert (part.size, part.etag) == (MiB, f'"{hashlib.md5(full).hexdigest()}"')


def test_stale_etag_record_is_not_trusted(local_storage: LocalStorage, http: httpx.Client) -> None:
    """A crash between renaming a part and writing its ETag record leaves an old record: it
    describes another file (inode/size/mtime), so the part is hashed instead."""
    key = new_key()
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    url = local_storage.presign_upload_part(key, upload_id, 1, 60)
    assert http.put(url, content=b"old").status_code == 200
    part_file = local_storage.root / "multipart" / upload_id / "00001.part"
    replacement = part_file.with_name("replacement")
    replacement.write_bytes(b"new!")
    os.replace(replacement, part_file)
    [part] = local_storage.list_parts(key, upload_id)
    assert part.etag == f'"{hashlib.md5(b"new!").hexdigest()}"'
    local_storage.complete_multipart_upload(key, upload_id, [(1, part.etag)])
    with local_storage.open_read(key) as f:
        assert f.read() == b"new!"


def test_complete_and_abort_leave_no_staging(local_storage: LocalStorage, http: httpx.Client) -> None:
    for finish in ("complete", "abort"):
        key = new_key()
        upload_id = local_storage.create_multipart_upload(key, "video/mp4")
        etag = http.put(local_storage.presign_upload_part(key, upload_id, 1, 60), content=b"x").headers["ETag"]
        if finish == "complete":
            local_storage.complete_multipart_upload(key, upload_id, [(1, etag)])
        else:
            local_storage.abort_multipart_upload(key, upload_id)
        assert list((local_storage.root / "multipart").iterdir()) == []
        assert list((local_storage.root / "tmp").iterdir()) == []


def test_too_large_part_is_413(
    make_local: Callable[..., LocalStorage], tmp_path: Path, http: httpx.Client
) -> None:
    storage = make_local(tmp_path / "blobs", max_part_size=MiB)
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    url = storage.presign_upload_part(key, upload_id, 1, 60)
    response = http.put(url, content=b"x" * (MiB + 1))  # declared Content-Length
    assert response.status_code == 413
    assert error_code(response) == "entity_too_large"
    response = http.put(url, content=iter([b"x" * MiB, b"y"]))  # chunked: found while streaming
    assert response.status_code == 413
    assert storage.list_parts(key, upload_id) == []
    assert files_under(storage.root / "tmp") == []


def test_delete_prefix_prunes_empty_directories(local_storage: LocalStorage, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for name in ("hls/master.m3u8", "hls/720p/seg_000.ts", "poster.jpg"):
        local_storage.upload_file(source, f"videos/v1/{name}", "application/octet-stream")
    assert local_storage.delete_prefix("videos/v1/") == 3
    assert list((local_storage.root / "objects").iterdir()) == []
    assert list((local_storage.root / "meta").iterdir()) == []


# GET ----------------------------------------------------------------------------------------------
def test_signed_get_serves_ranges_head_and_content_type(
    local_storage: LocalStorage, http: httpx.Client, tmp_path: Path
) -> None:
    data = os.urandom(10_000)
    source = tmp_path / "master.m3u8"
    source.write_bytes(data)
    key = "videos/v 1/ü#?&=%/master.m3u8"  # every character that needs quoting in a URL
    local_storage.upload_file(source, key, "application/vnd.apple.mpegurl")
    url = local_storage.presign_get(key, 60)

    response = http.get(url)
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert response.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'

    ranged = http.get(url, headers={"Range": "bytes=-100"})
    assert ranged.status_code == 206
    assert ranged.content == data[-100:]
    assert ranged.headers["content-range"] == f"bytes 9900-9999/{len(data)}"

    head = http.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))

    tampered = httpx.URL(url).copy_set_param("signature", "0" * 64)
    assert error_code(http.get(tampered)) == "signature_invalid"

    local_storage.delete(key)
    response = http.get(url)
    assert response.status_code == 404 and error_code(response) == "no_such_key"
    with pytest.raises(NoSuchKey):
        local_storage.open_read(key)


def test_part_url_roundtrip_with_awkward_key(local_storage: LocalStorage, http: httpx.Client) -> None:
    key = "uploads/vid 1/ü#?&=%+source"
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    url = local_storage.presign_upload_part(key, upload_id, 1, 60)
    assert "/blobs/" + quote(key, safe="/") in url
    response = http.put(url, content=b"payload")
    assert response.status_code == 200
    local_storage.complete_multipart_upload(key, upload_id, [(1, response.headers["ETag"])])
    assert http.get(local_storage.presign_get(key, 60)).content == b"payload"


def test_ping_reports_a_broken_root(local_storage: LocalStorage) -> None:
    local_storage.ping()
    (local_storage.root / "tmp").rmdir()
    with pytest.raises(StorageError):
        local_storage.ping()


def test_constructor_checks(tmp_path: Path, storage_secret: bytes) -> None:
    with pytest.raises(ValueError):
        LocalStorage(tmp_path, "http://x", b"short")
    with pytest.raises(ValueError):
        LocalStorage(tmp_path, "ftp://x", storage_secret)


def test_purge_stale_drops_abandoned_uploads_and_temp_files(
    local_storage: LocalStorage, http: httpx.Client
) -> None:
    old_key, fresh_key = new_key(), new_key()
    old = local_storage.create_multipart_upload(old_key, "video/mp4")
    fresh = local_storage.create_multipart_upload(fresh_key, "video/mp4")
    http.put(local_storage.presign_upload_part(old_key, old, 1, 60), content=b"x")
    leftover = local_storage.root / "tmp" / "part-crashed"
    leftover.write_bytes(b"half")
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in [leftover, *(local_storage.root / "multipart" / old).iterdir()]:
        os.utime(path, (two_days_ago, two_days_ago))
    os.utime(local_storage.root / "multipart" / old, (two_days_ago, two_days_ago))

    assert local_storage.purge_stale(older_than=24 * 3600) == 2
    assert not leftover.exists()
    with pytest.raises(NoSuchUpload):
        local_storage.list_parts(old_key, old)
    assert local_storage.list_parts(fresh_key, fresh) == []


def test_delete_of_a_directory_like_key_is_a_no_op(local_storage: LocalStorage, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    local_storage.upload_file(source, "videos/v1/poster.jpg", "image/jpeg")
    local_storage.delete("videos/v1")
    local_storage.delete("videos/v1/poster.jpg/deeper")
    assert local_storage.head("videos/v1") is None
    assert local_storage.head("videos/v1/poster.jpg") is not None
    with pytest.raises(StorageError):  # a file system cannot hold both `a` and `a/b`
        local_storage.upload_file(source, "videos/v1/poster.jpg/deeper", "image/jpeg")


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "buffered"])
def test_complete_assembles_parts_with_either_copy_path(
    make_local: Callable[..., LocalStorage],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kernel_copy: bool,
) -> None:
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    storage = make_local(tmp_path / "blobs", min_part_size=1000)
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    chunks = [os.urandom(1000 + i) for i in range(5)]
    parts = [storage.write_part(key, upload_id, n, data) for n, data in enumerate(chunks, 1)]
    info = storage.complete_multipart_upload(key, upload_id, parts)
    whole = b"".join(chunks)
    assert info.size == len(whole)
    with storage.open_read(key) as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(whole).digest()
    # The multipart ETag is S3's: md5 of the concatenated part digests, dash, part count.
    digests = b"".join(hashlib.md5(c).digest() for c in chunks)
    assert info.etag == f'"{hashlib.md5(digests).hexdigest()}-5"' == storage.head(key).etag  # type: ignore[union-attr]
