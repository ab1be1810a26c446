"""Part URLs bound to a length (issue "Hardening" #1): a URL handed to a client cannot store more
than the part it was signed for. Local: the live blob server refuses a longer body as it streams.
S3: the length is a SigV4-signed header. moto does not check pre-signed signatures (it accepts any
body on any URL), so on S3 we check what S3 itself verifies: the signed header list and the
signature, recomputed by botocore for the length sent."""

from __future__ import annotations

import hashlib
import http.client
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from coursecrafter_worker.storage import ObjectStorage
from coursecrafter_worker.storage.local import LocalStorage
from coursecrafter_worker.storage.s3 import S3Storage

MiB = 1024 * 1024


def new_key() -> str:
    return f"uploads/{uuid.uuid4().hex}/source"


def files_under(path: Path) -> list[str]:
    return sorted(p.name for p in path.rglob("*") if not p.is_dir())


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> ObjectStorage:
    return request.getfixturevalue(f"{request.param}_storage")


def test_a_length_bound_url_takes_a_body_of_that_length(
    storage: ObjectStorage, http: httpx.Client
) -> None:
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    data = b"z" * 100
    url = storage.presign_upload_part(key, upload_id, 1, 60, content_length=len(data))
    response = http.put(url, content=data)
    assert response.status_code == 200, response.text
    [part] = storage.list_parts(key, upload_id)
    assert (part.size, part.etag) == (100, f'"{hashlib.md5(data).hexdigest()}"')


def test_content_length_is_checked(storage: ObjectStorage) -> None:
    key = new_key()
    upload_id = storage.create_multipart_upload(key, "video/mp4")
    for bad in (-1, 5 * 1024**3 + 1, True, "100"):
        with pytest.raises(ValueError):
            storage.presign_upload_part(key, upload_id, 1, 60, content_length=bad)  # type: ignore[arg-type]


# Local: the blob server refuses the excess before it is written --------------------------------
def _assert_nothing_stored(storage: LocalStorage, key: str, upload_id: str) -> None:
    assert storage.list_parts(key, upload_id) == []
    assert files_under(storage.root / "multipart" / upload_id) == ["upload.json"]
    assert files_under(storage.root / "tmp") == []


def test_local_longer_declared_body_is_413_before_it_is_read(
    local_storage: LocalStorage, http: httpx.Client
) -> None:
    key = new_key()
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    url = local_storage.presign_upload_part(key, upload_id, 1, 60, content_length=100)
    response = http.put(url, content=b"x" * (32 * MiB))  # what a 100-byte upload used to accept
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "entity_too_large"
    assert "at most 100 bytes" in response.json()["error"]["message"]
    _assert_nothing_stored(local_storage, key, upload_id)
    assert http.put(url, content=b"x" * 101).status_code == 413
    _assert_nothing_stored(local_storage, key, upload_id)


def test_local_chunked_body_is_refused_as_it_streams(local_storage: LocalStorage) -> None:
    """No Content-Length: the server counts, and answers 413 once the body passes the signed
    length, without waiting for the rest (the client here never even finishes the body)."""
    key = new_key()
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    url = urlsplit(local_storage.presign_upload_part(key, upload_id, 1, 60, content_length=MiB))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for _ in range(3):  # 1.5 MiB of a body that would go on: no final chunk is ever sent
            conn.send(b"%x\r\n" % (MiB // 2) + b"y" * (MiB // 2) + b"\r\n")
        response = conn.getresponse()
        assert response.status == 413
        assert b"entity_too_large" in response.read()
    finally:
        conn.close()
    _assert_nothing_stored(local_storage, key, upload_id)


def test_local_length_cannot_be_removed_or_changed(
    local_storage: LocalStorage, http: httpx.Client
) -> None:
    key = new_key()
    upload_id = local_storage.create_multipart_upload(key, "video/mp4")
    url = urlsplit(local_storage.presign_upload_part(key, upload_id, 1, 60, content_length=100))
    params = dict(parse_qsl(url.query))
    assert params["length"] == "100"
    for changed in ({k: v for k, v in params.items() if k != "length"},
                    {**params, "length": str(5 * 1024**3)}):
        forged = urlunsplit(url._replace(query=urlencode(changed)))
        response = http.put(forged, content=b"x" * 200)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "signature_invalid"
    _assert_nothing_stored(local_storage, key, upload_id)


# S3: the length is signed ---------------------------------------------------------------------
def _s3_signature_for(url: str, content_length: int) -> str:
    """The SigV4 query signature S3 computes for a PUT of `url` sending `content_length` bytes
    (the same botocore code that presigned it, with the URL's own date and credentials)."""
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    access_key, date, region, service, _ = query["X-Amz-Credential"].split("/")
    credentials = Credentials(access_key, "testing", query.get("X-Amz-Security-Token"))
    plain = {k: v for k, v in query.items() if not k.startswith("X-Amz-")}
    request = AWSRequest(method="PUT", url=urlunsplit(parts._replace(query=urlencode(plain))),
                         headers={"Content-Length": str(content_length)})
    request.context["timestamp"] = query["X-Amz-Date"]
    S3SigV4QueryAuth(credentials, service, region, expires=int(query["X-Amz-Expires"])).add_auth(
        request)
    return dict(parse_qsl(urlsplit(request.url).query))["X-Amz-Signature"]


def test_s3_part_url_signs_its_content_length(s3_storage: S3Storage, http: httpx.Client) -> None:
    key = new_key()
    upload_id = s3_storage.create_multipart_upload(key, "video/mp4")
    url = s3_storage.presign_upload_part(key, upload_id, 1, 60, content_length=100)
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["X-Amz-SignedHeaders"].split(";") == ["content-length", "host"]
    # S3 recomputes the signature from the Content-Length the client sends: only 100 matches.
    assert _s3_signature_for(url, 100) == query["X-Amz-Signature"]
    assert _s3_signature_for(url, 32 * MiB) != query["X-Amz-Signature"]
    assert http.put(url, content=b"x" * 100).status_code == 200  # and moto takes it, over HTTP
    # Unbound URLs (tools, tests) stay as they were.
    unbound = s3_storage.presign_upload_part(key, upload_id, 2, 60)
    assert dict(parse_qsl(urlsplit(unbound).query))["X-Amz-SignedHeaders"] == "host"
