"""One contract, two adapters: LocalStorage (through the live blob server) and S3Storage (through
a real moto S3 server). Parts always travel over real HTTP to the pre-signed URLs, with httpx."""

from __future__ import annotations

import hashlib
import random
import uuid
from pathlib import Path

import httpx
import pytest

from coursecrafter_worker.storage import (
    InvalidKey,
    InvalidPart,
    NoSuchKey,
    NoSuchUpload,
    ObjectStorage,
    PartTooSmall,
    UploadedPart,
)
from coursecrafter_worker.storage.s3 import S3Storage

MiB = 1024 * 1024
_rng = random.Random(1234)


def blob(size: int) -> bytes:
    return _rng.randbytes(size)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_key() -> str:
    return f"uploads/{uuid.uuid4().hex}/source"


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> ObjectStorage:
    return request.getfixturevalue(f"{request.param}_storage")


def put_part(
    http: httpx.Client, storage: ObjectStorage, key: str, upload_id: str, number: int, data: bytes
) -> str:
    url = storage.presign_upload_part(key, upload_id, number, 300)
    response = http.put(url, content=data)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


def test_adapter_satisfies_the_protocol(storage: ObjectStorage) -> None:
    assert isinstance(storage, ObjectStorage)
    storage.ping()


def test_multipart_roundtrip_is_byte_identical(
    storage: ObjectStorage, http: httpx.Client, tmp_path: Path
) -> None:
    key = new_key()
    parts = {1: blob(5 * MiB), 2: blob(5 * MiB), 3: blob(1 * MiB + 17)}
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    assert storage.list_parts(key, upload_id) == []

    etags = {n: put_part(http, storage, key, upload_id, n, parts[n]) for n in (3, 1, 2)}
    for n, data in parts.items():
        assert etags[n].strip('"') == md5(data)

    listed = storage.list_parts(key, upload_id)
    assert listed == [UploadedPart(n, len(parts[n]), f'"{md5(parts[n])}"') for n in (1, 2, 3)]

    info = storage.complete_multipart_upload(key, upload_id, [(n, etags[n]) for n in (1, 2, 3)])
    whole = parts[1] + parts[2] + parts[3]
    assert info.size == len(whole)
    assert info.etag is not None and info.etag.endswith('-3"')

    head = storage.head(key)
    assert head is not None and head.size == len(whole)
    assert head.content_type == "video/mp4"
    with storage.open_read(key) as stream:
        assert sha256(stream.read()) == sha256(whole)
    storage.download_file(key, tmp_path / "copy.bin")
    assert sha256((tmp_path / "copy.bin").read_bytes()) == sha256(whole)
    assert sha256(http.get(storage.presign_get(key, 60)).content) == sha256(whole)

    with pytest.raises(NoSuchUpload):
        storage.list_parts(key, upload_id)


def test_complete_accepts_list_parts_output(storage: ObjectStorage, http: httpx.Client) -> None:
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    put_part(http, storage, key, upload_id, 1, b"only part")
    storage.complete_multipart_upload(key, upload_id, storage.list_parts(key, upload_id))
    with storage.open_read(key) as stream:
        assert stream.read() == b"only part"


def test_a_part_put_twice_keeps_the_last(storage: ObjectStorage, http: httpx.Client) -> None:
    key = new_key()
    first, second, tail = blob(5 * MiB), blob(5 * MiB), b"tail"
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    put_part(http, storage, key, upload_id, 1, first)
    etag = put_part(http, storage, key, upload_id, 1, second)
    put_part(http, storage, key, upload_id, 2, tail)

    listed = storage.list_parts(key, upload_id)
    assert [(p.part_number, p.size, p.etag) for p in listed] == [
        (1, len(second), f'"{md5(second)}"'),
        (2, 4, f'"{md5(tail)}"'),
    ]
    storage.complete_multipart_upload(key, upload_id, [(1, etag), (2, md5(tail))])
    with storage.open_read(key) as stream:
        assert sha256(stream.read()) == sha256(second + tail)


def test_invalid_complete_loses_nothing(storage: ObjectStorage, http: httpx.Client) -> None:
    key = new_key()
    one, two = blob(5 * MiB), blob(1000)
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    e1 = put_part(http, storage, key, upload_id, 1, one)
    e2 = put_part(http, storage, key, upload_id, 2, two)
    before = storage.list_parts(key, upload_id)

    with pytest.raises(InvalidPart):  # a part that was never uploaded
        storage.complete_multipart_upload(key, upload_id, [(1, e1), (2, e2), (3, e2)])
    with pytest.raises(InvalidPart):  # wrong ETag
        storage.complete_multipart_upload(key, upload_id, [(1, e1), (2, f'"{md5(b"other")}"')])
    with pytest.raises(InvalidPart):  # out of order
        storage.complete_multipart_upload(key, upload_id, [(2, e2), (1, e1)])
    with pytest.raises(InvalidPart):  # nothing
        storage.complete_multipart_upload(key, upload_id, [])

    assert storage.head(key) is None
    assert storage.list_parts(key, upload_id) == before
    storage.complete_multipart_upload(key, upload_id, [(1, e1), (2, e2)])
    with storage.open_read(key) as stream:
        assert sha256(stream.read()) == sha256(one + two)


def test_small_part_before_the_last_is_refused(storage: ObjectStorage, http: httpx.Client) -> None:
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    e1 = put_part(http, storage, key, upload_id, 1, b"a" * 1024)
    e2 = put_part(http, storage, key, upload_id, 2, b"b" * 1024)
    with pytest.raises(PartTooSmall):
        storage.complete_multipart_upload(key, upload_id, [(1, e1), (2, e2)])
    assert len(storage.list_parts(key, upload_id)) == 2
    storage.abort_multipart_upload(key, upload_id)


def test_abort_frees_everything(storage: ObjectStorage, http: httpx.Client) -> None:
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    e1 = put_part(http, storage, key, upload_id, 1, blob(5 * MiB))
    put_part(http, storage, key, upload_id, 2, b"x")
    storage.abort_multipart_upload(key, upload_id)

    with pytest.raises(NoSuchUpload):
        storage.list_parts(key, upload_id)
    if not isinstance(storage, S3Storage):
        # S3 answers NoSuchUpload here; moto answers 500 (KeyError in its backend).
        with pytest.raises(NoSuchUpload):
            storage.complete_multipart_upload(key, upload_id, [(1, e1)])
    with pytest.raises(NoSuchUpload):
        storage.abort_multipart_upload(key, upload_id)
    response = http.put(storage.presign_upload_part(key, upload_id, 3, 60), content=b"late")
    # S3 answers 404 NoSuchUpload; moto answers 500. Either way the part is refused.
    if isinstance(storage, S3Storage):
        assert response.status_code >= 400
    else:
        assert response.status_code == 404
    assert storage.head(key) is None


def test_unknown_upload_id(storage: ObjectStorage) -> None:
    key = new_key()
    with pytest.raises(NoSuchUpload):
        storage.list_parts(key, "0" * 32)
    with pytest.raises(NoSuchUpload):
        storage.abort_multipart_upload(key, "0" * 32)


def test_upload_file_presign_get_and_range(
    storage: ObjectStorage, http: httpx.Client, tmp_path: Path
) -> None:
    data = blob(300_000)
    source = tmp_path / "poster.jpg"
    source.write_bytes(data)
    key = f"videos/{uuid.uuid4().hex}/poster.jpg"
    storage.upload_file(source, key, "image/jpeg")

    info = storage.head(key)
    assert info is not None
    assert (info.size, info.content_type, info.etag) == (len(data), "image/jpeg", f'"{md5(data)}"')

    url = storage.presign_get(key, 60)
    response = http.get(url)
    assert response.status_code == 200
    assert response.content == data
    ranged = http.get(url, headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206
    assert ranged.content == data[100:200]

    source.write_bytes(b"replaced")
    storage.upload_file(source, key, "image/jpeg")
    with storage.open_read(key) as stream:
        assert stream.read() == b"replaced"


def test_missing_objects(storage: ObjectStorage, tmp_path: Path) -> None:
    key = f"videos/{uuid.uuid4().hex}/poster.jpg"
    assert storage.head(key) is None
    with pytest.raises(NoSuchKey):
        storage.open_read(key)
    with pytest.raises(NoSuchKey):
        storage.download_file(key, tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()
    storage.delete(key)  # deleting a missing object is fine


def test_delete_and_delete_prefix(storage: ObjectStorage, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"data")
    v = uuid.uuid4().hex[:8]
    keys = [
        f"videos/{v}1/hls/master.m3u8",
        f"videos/{v}1/hls/720p/seg_000.ts",
        f"videos/{v}1/poster.jpg",
        f"videos/{v}10/poster.jpg",
        f"videos/{v}2/poster.jpg",
        f"uploads/{v}1/source",
    ]
    for key in keys:
        storage.upload_file(source, key, "application/octet-stream")

    assert storage.delete_prefix(f"videos/{v}1/") == 3
    assert [storage.head(k) is not None for k in keys] == [False, False, False, True, True, True]
    assert storage.delete_prefix(f"videos/{v}1/") == 0
    assert storage.delete_prefix(f"videos/{v}1") == 1  # a plain string prefix, as in S3
    assert storage.head(f"videos/{v}10/poster.jpg") is None
    assert storage.head(f"videos/{v}2/poster.jpg") is not None

    storage.delete(f"videos/{v}2/poster.jpg")
    assert storage.head(f"videos/{v}2/poster.jpg") is None
    assert storage.head(f"uploads/{v}1/source") is not None
    with pytest.raises(InvalidKey):
        storage.delete_prefix("")


BAD_KEYS = [
    "../etc/passwd",
    "uploads/../../x",
    "uploads/..",
    "/etc/passwd",
    "uploads\\..\\x",
    "uploads/a\x00b",
    "uploads//source",
    "uploads/./source",
    "uploads/",
    "",
    "a" * 1025,
]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=repr)
def test_unsafe_keys_are_rejected(storage: ObjectStorage, bad: str, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    calls = [
        lambda: storage.create_multipart_upload(bad, "video/mp4"),
        lambda: storage.presign_upload_part(bad, "0" * 32, 1, 60),
        lambda: storage.list_parts(bad, "0" * 32),
        lambda: storage.complete_multipart_upload(bad, "0" * 32, [(1, "e")]),
        lambda: storage.abort_multipart_upload(bad, "0" * 32),
        lambda: storage.presign_get(bad, 60),
        lambda: storage.head(bad),
        lambda: storage.download_file(bad, tmp_path / "out"),
        lambda: storage.upload_file(source, bad, "video/mp4"),
        lambda: storage.open_read(bad),
        lambda: storage.delete(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidKey):
            call()
    assert issubclass(InvalidKey, ValueError)
    if ".." in bad:
        with pytest.raises(InvalidKey):
            storage.delete_prefix(bad)


def test_presign_arguments_are_checked(storage: ObjectStorage) -> None:
    key = new_key()
    for part_number in (0, 10_001):
        with pytest.raises(ValueError):
            storage.presign_upload_part(key, "0" * 32, part_number, 60)
    for expires_in in (0, 8 * 24 * 3600):
        with pytest.raises(ValueError):
            storage.presign_get(key, expires_in)


# Listing (what the sweeper's storage-vs-store reconciliation needs) ------------------------------
def test_list_objects_prefixes_and_open_multipart_uploads(
    storage: ObjectStorage, http: httpx.Client, tmp_path: Path
) -> None:
    from datetime import datetime, timedelta, timezone

    if isinstance(storage, S3Storage):
        storage._list_objects_page_size = 2  # exercise paging
    v1, v2 = uuid.uuid4().hex, uuid.uuid4().hex
    sizes = {f"videos/{v1}/hls/master.m3u8": 3, f"videos/{v1}/hls/720p/seg0.ts": 5,
             f"videos/{v2}/poster.jpg": 7, f"videosX/{v1}": 1, f"uploads/{v2}/source": 2}
    before = datetime.now(timezone.utc) - timedelta(minutes=5)
    for key, size in sizes.items():
        (tmp_path / "f").write_bytes(b"x" * size)
        storage.upload_file(tmp_path / "f", key, "application/octet-stream")
    after = datetime.now(timezone.utc) + timedelta(minutes=5)

    listed = {o.key: o for o in storage.list_objects("videos/")}
    assert {k: o.size for k, o in listed.items()} == {
        k: v for k, v in sizes.items() if k.startswith("videos/")}
    assert all(o.modified is not None and before < o.modified < after for o in listed.values())
    assert sorted(o.key for o in storage.list_objects(f"videos/{v1}/")) == sorted(
        [f"videos/{v1}/hls/720p/seg0.ts", f"videos/{v1}/hls/master.m3u8"])
    assert [o.key for o in storage.list_objects("videos")] != []  # a plain string prefix
    assert list(storage.list_objects("nothing/")) == []

    assert storage.list_prefixes("videos/") == sorted([f"videos/{v1}/", f"videos/{v2}/"])
    assert storage.list_prefixes(f"videos/{v1}/") == [f"videos/{v1}/hls/"]
    assert storage.list_prefixes("nothing/") == []
    with pytest.raises(InvalidKey):
        storage.list_prefixes("videos")
    storage.delete_prefix(f"videos/{v2}/")
    assert storage.list_prefixes("videos/") == [f"videos/{v1}/"]  # no empty "directory" left

    first = storage.create_multipart_upload(f"uploads/{v1}/source", "video/mp4")
    second = storage.create_multipart_upload(f"attachments/{v2}/source", "application/pdf")
    [open_one] = storage.list_multipart_uploads("uploads/")
    assert (open_one.key, open_one.upload_id) == (f"uploads/{v1}/source", first)
    assert open_one.initiated.tzinfo is not None
    assert [u.upload_id for u in storage.list_multipart_uploads(f"attachments/{v2}/")] == [second]
    storage.abort_multipart_upload(f"uploads/{v1}/source", first)
    put_part(http, storage, f"attachments/{v2}/source", second, 1, b"pdf")
    storage.complete_multipart_upload(f"attachments/{v2}/source", second,
                                      storage.list_parts(f"attachments/{v2}/source", second))
    assert storage.list_multipart_uploads("uploads/") == []
    assert storage.list_multipart_uploads("attachments/") == []
