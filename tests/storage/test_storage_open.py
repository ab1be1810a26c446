"""open_storage URL parsing, key validation, and what is specific to the S3 adapter."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from coursecrafter_worker.storage import (
    CompletedPart,
    InvalidKey,
    InvalidPart,
    ObjectStorage,
    StorageError,
    UploadedPart,
    open_storage,
    validate_key,
    validate_prefix,
)
from coursecrafter_worker.storage.base import normalize_parts
from coursecrafter_worker.storage.local import LocalStorage
from coursecrafter_worker.storage.s3 import S3Storage

PUBLIC = "http://127.0.0.1:8000"
SECRET = b"0123456789abcdef0123"


def test_file_url_opens_local_storage(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}/blobs dir", public_url=PUBLIC + "/", secret=SECRET)
    assert isinstance(storage, LocalStorage) and isinstance(storage, ObjectStorage)
    assert storage.root == (tmp_path / "blobs dir").resolve()
    assert storage.public_url == PUBLIC
    assert storage.presign_get("a/b", 60).startswith(f"{PUBLIC}/blobs/a/b?")
    encoded = open_storage(f"file://{tmp_path}/with%20space", public_url=PUBLIC, secret=SECRET.decode())
    assert encoded.root == (tmp_path / "with space").resolve()  # type: ignore[attr-defined]


def test_s3_url_opens_s3_storage(aws_env: None) -> None:
    storage = open_storage(
        "s3://my-bucket/some/prefix/", public_url=PUBLIC, secret=SECRET,
        s3_endpoint_url="http://127.0.0.1:9000",
    )
    assert isinstance(storage, S3Storage) and isinstance(storage, ObjectStorage)
    assert (storage.bucket, storage.prefix, storage.endpoint_url) == (
        "my-bucket", "some/prefix", "http://127.0.0.1:9000",
    )
    # SigV4, path-style because an endpoint is given, the prefix applied to keys.
    url = storage.presign_get("videos/v1/poster.jpg", 60)
    assert url.startswith("http://127.0.0.1:9000/my-bucket/some/prefix/videos/v1/poster.jpg?")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    part_url = httpx.URL(storage.presign_upload_part("uploads/v1/source", "UPLOAD", 3, 60))
    assert part_url.params["uploadId"] == "UPLOAD" and part_url.params["partNumber"] == "3"

    plain = open_storage("s3://my-bucket", public_url=PUBLIC, secret=SECRET)
    assert isinstance(plain, S3Storage) and plain.prefix == "" and plain.endpoint_url is None


@pytest.mark.parametrize(
    "url",
    [
        "",
        "blobs",
        "/var/blobs",
        "file://relative/dir",
        "file:relative",
        "file:///abs?x=1",
        "s3://",
        "s3:///prefix",
        "s3://bad_bucket!/x",
        "s3://bucket/../x",
        "http://example.com/blobs",
        "gs://bucket",
    ],
)
def test_unsupported_urls_raise_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="storage URL"):
        open_storage(url, public_url=PUBLIC, secret=SECRET)


def test_validate_key() -> None:
    for good in ("uploads/v1/source", "videos/v1/hls/720p/seg_000.ts", "a", "a/.hidden", "a..b/c"):
        assert validate_key(good) == good
    for bad in ("", "/a", "a/", "a//b", "./a", "a/..", "..", "a\\b", "a\x00", "a\nb", "a\x7f", 3):
        with pytest.raises(InvalidKey):
            validate_key(bad)
    assert validate_prefix("videos/v1/") == "videos/v1/"
    assert validate_prefix("videos/v1") == "videos/v1"
    for bad in ("", "/", "../", "a//"):
        with pytest.raises(InvalidKey):
            validate_prefix(bad)


def test_normalize_parts() -> None:
    assert normalize_parts([(1, '"a"'), CompletedPart(2, "b"), UploadedPart(5, 10, '"c"')]) == [
        (1, '"a"'), (2, "b"), (5, '"c"'),
    ]
    for bad in ([], [(2, "a"), (1, "b")], [(1, "a"), (1, "a")], [(0, "a")], [(1, "")], [(1,)], ["x"]):
        with pytest.raises(InvalidPart):
            normalize_parts(bad)  # type: ignore[arg-type]


# S3 specifics ------------------------------------------------------------------------------------
@contextmanager
def recorded_calls(storage: S3Storage) -> Iterator[list[str]]:
    """Names of the S3 operations that the storage's client makes inside the block."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    storage.client.meta.events.register("before-call.s3.*", record)
    try:
        yield calls
    finally:
        storage.client.meta.events.unregister("before-call.s3.*", record)


def test_s3_list_parts_follows_pagination(s3_storage: S3Storage, http: httpx.Client) -> None:
    s3_storage._list_parts_page_size = 2
    key = "uploads/paged/source"
    upload_id = s3_storage.create_multipart_upload(key, "video/mp4")
    for n in range(1, 6):
        url = s3_storage.presign_upload_part(key, upload_id, n, 60)
        assert http.put(url, content=f"part {n}".encode()).status_code == 200
    with recorded_calls(s3_storage) as calls:
        listed = s3_storage.list_parts(key, upload_id)
    assert [p.part_number for p in listed] == [1, 2, 3, 4, 5]
    assert calls.count("ListParts") == 3
    assert listed[2].etag == f'"{hashlib.md5(b"part 3").hexdigest()}"'
    s3_storage.abort_multipart_upload(key, upload_id)


def test_s3_prefix_keeps_keys_apart(
    s3_bucket: str, moto_endpoint: str, s3_client: object, tmp_path: Path
) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    a = S3Storage(s3_bucket, prefix="tenant-a", endpoint_url=moto_endpoint, client=s3_client)
    b = S3Storage(s3_bucket, prefix="tenant-b", endpoint_url=moto_endpoint, client=s3_client)
    a.upload_file(source, "videos/v1/poster.jpg", "image/jpeg")
    assert b.head("videos/v1/poster.jpg") is None
    assert b.delete_prefix("videos/") == 0
    assert a.head("videos/v1/poster.jpg") is not None
    assert a.delete_prefix("videos/") == 1


def test_s3_delete_prefix_spans_pages(s3_storage: S3Storage) -> None:
    s3_storage._list_objects_page_size = 2
    client = s3_storage.client
    full = f"{s3_storage.prefix}/videos/many/"
    for i in range(5):
        client.put_object(Bucket=s3_storage.bucket, Key=f"{full}{i:04d}.ts", Body=b"x")
    client.put_object(Bucket=s3_storage.bucket, Key=f"{s3_storage.prefix}/videos/other.ts", Body=b"x")
    with recorded_calls(s3_storage) as calls:
        assert s3_storage.delete_prefix("videos/many/") == 5
    assert calls.count("DeleteObjects") == 3
    assert s3_storage.head("videos/other.ts") is not None
    assert client.list_objects_v2(Bucket=s3_storage.bucket, Prefix=full).get("KeyCount") == 0


def test_s3_ping_reports_a_missing_bucket(moto_endpoint: str, aws_env: None) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        S3Storage("no-such-bucket", endpoint_url=moto_endpoint).ping()


def test_s3_unreachable_endpoint_is_a_storage_error(aws_env: None) -> None:
    from botocore.config import Config
    import boto3

    client = boto3.client(
        "s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(StorageError):
        S3Storage("bucket", client=client).ping()
