"""Courses and direct-to-storage uploads through the HTTP API, on both storage adapters.

Part bytes go where a real client sends them: to the API's /blobs URLs (local adapter) or over
real HTTP to the moto S3 server (S3 adapter)."""

from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from livesupport import free_port

from coursecrafter_server.domain import Role
from coursecrafter_worker.storage import NoSuchUpload

PASSWORD = "correct horse battery"
MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def backend(request):
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        return {
            "storage_url": f"s3://{bucket}/up-{uuid.uuid4().hex[:8]}",
            "s3_endpoint_url": endpoint,
        }
    return {}


@pytest.fixture
def make_api(app_factory, backend, home):
    def make(**overrides):
        # No transcoders: these tests are about getting the bytes in; jobs stay `queued`.
        return app_factory(
            database_url=f"sqlite:///{home}/db.sqlite3", transcode_concurrency=0,
            **{**backend, **overrides},
        )

    return make


@pytest.fixture
def api(make_api):
    return make_api()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def account(api, username: str, role: Role = Role.INSTRUCTOR) -> dict[str, str]:
    api.app.state.container.auth.register(username, f"{username}@example.edu", PASSWORD, role)
    tokens = api.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return bearer(tokens.json()["access_token"])


@pytest.fixture
def alice(api):
    return account(api, "alice")


def payload(size: int, seed: int = 1) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size]


def start(api, who, data: bytes, **extra):
    body = {"filename": "lecture.mp4", "size": len(data), "content_type": "video/mp4", **extra}
    return api.post("/api/v1/uploads", json=body, headers=who)


def put(api, url: str, data: bytes) -> httpx.Response:
    if url.startswith(str(api.base_url)) or "/blobs/" in url:
        return api.put(url, content=data)
    return httpx.put(url, content=data, timeout=30)


def chunk(data: bytes, part_size: int, number: int) -> bytes:
    return data[(number - 1) * part_size : number * part_size]


def put_all(api, upload: dict, data: bytes, skip: set[int] = frozenset()) -> dict[int, str]:
    etags = {}
    for part in upload["parts"]:
        n = part["part_number"]
        if n in skip:
            continue
        response = put(api, part["url"], chunk(data, upload["part_size"], n))
        assert response.status_code == 200, response.text
        etags[n] = response.headers["etag"]
    return etags


def stored_sha256(api, key: str) -> str:
    with api.app.state.container.storage.open_read(key) as stream:
        return hashlib.sha256(stream.read()).hexdigest()


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["code"]


# Courses ---------------------------------------------------------------------------------------
def test_courses_belong_to_their_instructor(api, alice):
    created = api.post("/api/v1/courses", json={"title": "Algorithms"}, headers=alice)
    assert created.status_code == 201
    course = created.json()
    assert course["title"] == "Algorithms" and course["published"] is False
    assert [c["id"] for c in api.get("/api/v1/courses", headers=alice).json()] == [course["id"]]
    patched = api.patch(f"/api/v1/courses/{course['id']}", json={"title": "Algorithms II"},
                        headers=alice)
    assert patched.json()["title"] == "Algorithms II"

    bob = account(api, "bob")
    assert api.get("/api/v1/courses", headers=bob).json() == []
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"title": "mine"}} if method == "patch" else {}
        response = getattr(api, method)(f"/api/v1/courses/{course['id']}", headers=bob, **kwargs)
        assert error_code(response, 404) == "not_found"
    student = account(api, "stu", Role.STUDENT)
    assert error_code(api.post("/api/v1/courses", json={"title": "x"}, headers=student), 403)
    assert api.delete(f"/api/v1/courses/{course['id']}", headers=alice).status_code == 204
    assert api.get(f"/api/v1/courses/{course['id']}", headers=alice).status_code == 404


# The happy path --------------------------------------------------------------------------------
def test_multipart_upload_arrives_byte_identical(api, alice):
    course = api.post("/api/v1/courses", json={"title": "Physics"}, headers=alice).json()
    data = payload(20 * MIB + 12345)
    response = start(api, alice, data, course_id=course["id"], title="Week 1")
    assert response.status_code == 201, response.text
    upload = response.json()
    assert upload["part_size"] == 8 * MIB and upload["part_count"] == 3
    assert [p["part_number"] for p in upload["parts"]] == [1, 2, 3]
    video = api.get(f"/api/v1/videos/{upload['video_id']}", headers=alice).json()
    assert video["status"] == "awaiting_upload" and video["title"] == "Week 1"

    etags = put_all(api, upload, data)
    listed = api.get(f"/api/v1/uploads/{upload['upload_id']}/parts", headers=alice).json()
    assert [(p["part_number"], p["size"]) for p in listed["parts"]] == [
        (1, 8 * MIB), (2, 8 * MIB), (3, 4 * MIB + 12345)]
    assert [p["etag"].strip('"') for p in listed["parts"]] == [
        hashlib.md5(chunk(data, 8 * MIB, n)).hexdigest() for n in (1, 2, 3)]

    done = api.post(
        f"/api/v1/uploads/{upload['upload_id']}/complete",
        json={"parts": [{"part_number": n, "etag": e} for n, e in etags.items()]},
        headers=alice,
    )
    assert done.status_code == 200, done.text
    # A completed video upload goes straight on to transcoding.
    assert done.json()["status"] == "queued" and done.json()["course_id"] == course["id"]
    assert stored_sha256(api, upload["key"]) == hashlib.sha256(data).hexdigest()
    assert upload["key"] == f"uploads/{upload['video_id']}/source"
    # Completing again (a client whose response got lost) is answered, not refused.
    again = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert again.status_code == 200 and again.json()["status"] == "queued"
    listed = api.get("/api/v1/videos", headers=alice).json()
    assert [v["id"] for v in listed] == [upload["video_id"]]


def test_part_size_grows_so_no_upload_needs_more_than_10000_parts(api, alice):
    response = start(api, alice, b"", size=int(19.5 * 1024**3))
    upload = response.json()
    assert upload["part_count"] <= 10_000 and upload["part_size"] % MIB == 0
    assert upload["part_size"] * upload["part_count"] >= int(19.5 * 1024**3)
    assert len(upload["parts"]) < upload["part_count"]  # first batch only; more on request
    more = api.post(f"/api/v1/uploads/{upload['upload_id']}/parts",
                    json={"part_numbers": [2000, 2001]}, headers=alice).json()
    assert [p["part_number"] for p in more["parts"]] == [2000, 2001]


def test_resigned_part_url_works(api, alice):
    data = payload(3 * MIB)
    upload = start(api, alice, data).json()
    fresh = api.post(f"/api/v1/uploads/{upload['upload_id']}/parts",
                     json={"part_numbers": [1]}, headers=alice).json()["parts"][0]
    assert put(api, fresh["url"], data).status_code == 200
    done = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert done.status_code == 200 and stored_sha256(api, upload["key"]) == hashlib.sha256(data).hexdigest()


# Bad input loses nothing -----------------------------------------------------------------------
def test_zero_byte_file_is_refused(api, alice):
    assert error_code(start(api, alice, b""), 422) == "size_mismatch"


def test_file_over_the_limit_is_413(make_api):
    api = make_api(max_upload_bytes=10 * MIB)
    who = account(api, "alice")
    assert error_code(start(api, who, b"", size=10 * MIB + 1), 413) == "payload_too_large"


def test_non_video_content_type_is_415(api, alice):
    response = start(api, alice, b"x" * 10, content_type="application/x-msdownload")
    assert error_code(response, 415) == "unsupported_media_type"


def test_someone_elses_course_is_404(api, alice):
    course = api.post("/api/v1/courses", json={"title": "Mine"}, headers=alice).json()
    bob = account(api, "bob")
    assert error_code(start(api, bob, b"x" * 10, course_id=course["id"]), 404) == "not_found"


def test_students_cannot_upload(api):
    student = account(api, "stu", Role.STUDENT)
    assert error_code(start(api, student, b"x" * 10), 403) == "forbidden"


def test_path_traversal_filename_is_only_a_name(api, alice):
    data = payload(1000)
    upload = start(api, alice, data, filename="../../../etc/passwd\x00.mp4").json()
    video = api.get(f"/api/v1/videos/{upload['video_id']}", headers=alice).json()
    assert video["filename"] == "passwd.mp4"
    assert upload["key"] == f"uploads/{upload['video_id']}/source"


def test_another_users_upload_is_404_everywhere(api, alice):
    upload = start(api, alice, payload(1000)).json()
    bob = account(api, "bob")
    uid = upload["upload_id"]
    for response in (
        api.get(f"/api/v1/uploads/{uid}/parts", headers=bob),
        api.post(f"/api/v1/uploads/{uid}/parts", json={"part_numbers": [1]}, headers=bob),
        api.post(f"/api/v1/uploads/{uid}/complete", headers=bob),
        api.delete(f"/api/v1/uploads/{uid}", headers=bob),
        api.get(f"/api/v1/videos/{upload['video_id']}", headers=bob),
        api.delete(f"/api/v1/videos/{upload['video_id']}", headers=bob),
    ):
        assert error_code(response, 404) == "not_found"
    assert api.get(f"/api/v1/uploads/{uid}/parts", headers=alice).status_code == 200


def test_missing_part_on_complete_is_named_and_can_still_be_sent(api, alice):
    data = payload(17 * MIB)
    upload = start(api, alice, data).json()
    put_all(api, upload, data, skip={2})
    response = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert error_code(response, 409) == "upload_incomplete"
    assert "2" in response.json()["error"]["message"]
    put(api, upload["parts"][1]["url"], chunk(data, upload["part_size"], 2))
    assert api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice).status_code == 200
    assert stored_sha256(api, upload["key"]) == hashlib.sha256(data).hexdigest()


def test_declared_size_that_does_not_match_what_was_sent(api, alice):
    data = payload(9 * MIB)
    upload = start(api, alice, data).json()
    put(api, upload["parts"][0]["url"], chunk(data, upload["part_size"], 1))
    put(api, upload["parts"][1]["url"], b"short")  # the last part is cut off
    response = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert error_code(response, 422) == "size_mismatch"
    put(api, upload["parts"][1]["url"], chunk(data, upload["part_size"], 2))
    assert api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice).status_code == 200
    assert stored_sha256(api, upload["key"]) == hashlib.sha256(data).hexdigest()


def test_part_uploaded_twice_keeps_the_last(api, alice):
    data = payload(2 * MIB)
    upload = start(api, alice, data).json()
    put(api, upload["parts"][0]["url"], payload(2 * MIB, seed=99))
    put(api, upload["parts"][0]["url"], data)
    assert api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice).status_code == 200
    assert stored_sha256(api, upload["key"]) == hashlib.sha256(data).hexdigest()


def test_wrong_etag_on_complete_is_refused(api, alice):
    data = payload(2 * MIB)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    response = api.post(
        f"/api/v1/uploads/{upload['upload_id']}/complete",
        json={"parts": [{"part_number": 1, "etag": '"0123456789abcdef0123456789abcdef"'}]},
        headers=alice,
    )
    assert error_code(response, 409) == "upload_incomplete"
    assert api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice).status_code == 200


def test_abort_frees_storage_and_the_record(api, alice):
    data = payload(2 * MIB)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    assert api.delete(f"/api/v1/uploads/{upload['upload_id']}", headers=alice).status_code == 204
    storage = api.app.state.container.storage
    with pytest.raises(Exception):
        storage.list_parts(upload["key"], api.app.state.container.store.get_upload(
            upload["upload_id"]).storage_upload_id)
    assert api.get(f"/api/v1/videos/{upload['video_id']}", headers=alice).status_code == 404
    response = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert error_code(response, 409) == "invalid_state"


def test_abandoned_upload_is_expired_by_the_sweeper(api, alice):
    data = payload(1000)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    container = api.app.state.container
    later = datetime.now(timezone.utc) + timedelta(days=2)
    stored = container.store.get_upload(upload["upload_id"])
    assert container.uploads.expire_abandoned(later) == 1
    video = api.get(f"/api/v1/videos/{upload['video_id']}", headers=alice).json()
    assert video["status"] == "failed" and video["error"]["code"] == "upload_expired"
    assert container.uploads.expire_abandoned(later) == 0
    with pytest.raises(NoSuchUpload):  # the parts are gone from storage, not only the record
        container.storage.list_parts(stored.key, stored.storage_upload_id)


def _assemble_behind_the_records_back(api, upload_id: str) -> None:
    """What a `complete` that died (or lost a race) after storage assembled the object leaves."""
    container = api.app.state.container
    stored = container.store.get_upload(upload_id)
    parts = container.storage.list_parts(stored.key, stored.storage_upload_id)
    container.storage.complete_multipart_upload(stored.key, stored.storage_upload_id, parts)


def test_complete_after_storage_already_assembled_the_object_finishes(api, alice):
    data = payload(1000)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    _assemble_behind_the_records_back(api, upload["upload_id"])

    again = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "queued"  # nothing to upload again
    source = f"uploads/{upload['video_id']}/source"
    assert stored_sha256(api, source) == hashlib.sha256(data).hexdigest()


def test_complete_that_died_before_moving_the_video_on_is_finished_by_a_retry(api, alice):
    data = payload(1000)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    container = api.app.state.container
    real = container.store.update_video

    def server_dies(video, **kw):
        raise ConnectionError("store connection lost")

    container.store.update_video = server_dies  # after the upload is recorded COMPLETED
    with pytest.raises(ConnectionError):
        api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    container.store.update_video = real
    again = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "queued"


def test_an_assembled_upload_found_at_expiry_is_kept_not_failed(api, alice):
    data = payload(1000)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    _assemble_behind_the_records_back(api, upload["upload_id"])
    container = api.app.state.container
    container.uploads.expire_abandoned(datetime.now(timezone.utc) + timedelta(days=2))
    video = container.store.get_video(upload["video_id"])
    assert video.status.value == "uploaded"  # the job sweep takes it from here
    assert container.storage.head(f"uploads/{upload['video_id']}/source").size == len(data)


def test_attachment_is_stored_not_transcoded(api, alice):
    pdf = b"%PDF-1.4\n" + payload(5000)
    upload = start(api, alice, pdf, filename="slides.pdf", content_type="application/pdf",
                   kind="attachment").json()
    put_all(api, upload, pdf)
    done = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice).json()
    assert done["kind"] == "attachment" and done["status"] == "ready"
    url = done["download_url"]
    response = api.get(url) if "/blobs/" in url else httpx.get(url)
    assert response.content == pdf
    # Saved, never rendered from the API's (or the bucket's) origin; under its own name.
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"slides.pdf\"; filename*=UTF-8''slides.pdf")
    assert error_code(start(api, alice, pdf, content_type="application/pdf"), 415)


def test_delete_video_removes_its_objects(api, alice):
    data = payload(1000)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert api.delete(f"/api/v1/videos/{upload['video_id']}", headers=alice).status_code == 204
    assert api.app.state.container.storage.head(upload["key"]) is None


# Local adapter only: the API's own signed URLs ---------------------------------------------------
@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_expired_part_url_is_403_and_a_fresh_one_works(make_api):
    api = make_api(upload_url_ttl=60)
    # The storage's clock, moved on by the test (a sleep past a short life raced busy machines).
    storage, skew = api.app.state.container.storage, [0.0]
    storage._clock = storage.urls._clock = lambda: time.time() + skew[0]
    who = account(api, "alice")
    data = payload(1000)
    upload = start(api, who, data).json()
    skew[0] = 61.0
    assert error_code(put(api, upload["parts"][0]["url"], data), 403) == "url_expired"
    fresh = api.post(f"/api/v1/uploads/{upload['upload_id']}/parts", json={"part_numbers": [1]},
                     headers=who).json()["parts"][0]["url"]
    assert put(api, fresh, data).status_code == 200


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_url_signed_for_another_upload_is_403(api, alice):
    first = start(api, alice, payload(1000)).json()
    second = start(api, alice, payload(1000)).json()
    url = first["parts"][0]["url"]
    # Same signature, pointed at the other upload: the signature no longer matches.
    forged = url.replace(first["video_id"], second["video_id"])
    assert error_code(put(api, forged, payload(1000)), 403) == "signature_invalid"
    tampered = url.replace("partNumber=1", "partNumber=2")
    assert error_code(put(api, tampered, payload(1000)), 403) == "signature_invalid"


def test_storage_that_does_not_answer_is_a_clear_503(app_factory, home, s3_bucket):
    api = app_factory(database_url=f"sqlite:///{home}/db.sqlite3", transcode_concurrency=0,
                      storage_url=f"s3://{s3_bucket}",
                      s3_endpoint_url=f"http://127.0.0.1:{free_port()}")  # nothing listens
    alice = account(api, "alice")
    response = start(api, alice, payload(1000))
    assert error_code(response, 503) == "storage_unavailable"
    assert response.headers["retry-after"] == "5"
    assert "try again" in response.json()["error"]["message"]
    assert api.get("/readyz").json()["checks"]["storage"].startswith("error")


def test_signing_parts_that_do_not_exist_is_refused_by_name(api, alice):
    upload = start(api, alice, payload(1000)).json()
    url = f"/api/v1/uploads/{upload['upload_id']}/parts"
    response = api.post(url, json={"part_numbers": [1, 2]}, headers=alice)
    assert error_code(response, 422) == "invalid_part_numbers"
    assert "1..1" in response.json()["error"]["message"]
    assert api.post(url, json={"part_numbers": [1]}, headers=alice).status_code == 200


# Content types (issue "Hardening" #14) ---------------------------------------------------------
@pytest.mark.parametrize("content_type", [
    "video/mp4\r\nX-Evil: 1", "video/mp4\nX-Evil: 1", "video/mp4\r", "video /mp4", "video/mp4 x",
    "video/", "/mp4", "video/mp4;", "video/mp4; codecs", "vidéo/mp4", "video/mp4; a=\"\r\n\"",
])
def test_content_type_that_is_not_a_media_type_is_422_and_nothing_is_created(
        api, alice, content_type):
    response = start(api, alice, payload(1000), content_type=content_type)
    assert error_code(response, 422) == "invalid_content_type"
    assert "is not a media type" in response.json()["error"]["message"]
    assert api.get("/api/v1/videos", headers=alice).json() == []


def test_media_type_parameters_are_accepted_and_dropped(api, alice):
    response = start(api, alice, payload(1000),
                     content_type='Video/MP4; codecs="avc1.42E01E, mp4a.40.2";profile=main')
    assert response.status_code == 201, response.text
    video = api.get(f"/api/v1/videos/{response.json()['video_id']}", headers=alice).json()
    assert video["content_type"] == "video/mp4"


# Part URLs bound to their length (issue "Hardening" #1) ------------------------------------------
def test_part_urls_take_exactly_their_part(api, alice, backend):
    data = payload(8 * MIB + 100)  # an 8 MiB part and a 100-byte last part
    upload = start(api, alice, data).json()
    urls = {p["part_number"]: p["url"] for p in upload["parts"]}
    if backend:  # S3: the length is a signed header (moto does not check it; see tests/storage)
        from urllib.parse import parse_qsl, urlsplit
        for url in urls.values():
            assert "content-length" in dict(parse_qsl(urlsplit(url).query))[
                "X-Amz-SignedHeaders"].split(";")
    else:  # the 100-byte part's URL used to take up to 5 GiB, kept on disk for a day
        response = put(api, urls[2], b"x" * (32 * MIB))
        assert error_code(response, 413) == "entity_too_large"
        assert api.get(f"/api/v1/uploads/{upload['upload_id']}/parts",
                       headers=alice).json()["parts"] == []
        blobs = api.app.state.container.storage.root
        assert [p for p in (blobs / "tmp").rglob("*") if p.is_file()] == []
    put_all(api, upload, data)  # exactly the part: accepted
    done = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert done.status_code == 200, done.text
    assert stored_sha256(api, upload["key"]) == hashlib.sha256(data).hexdigest()


# Deleting a video leaves nothing behind (issue "Hardening" #2) ----------------------------------
def _everything_stored(storage, video_id: str) -> list[str]:
    objects = [o.key for root in ("uploads/", "videos/", "attachments/")
               for o in storage.list_objects(f"{root}{video_id}/")]
    uploads = [u.key for root in ("uploads/", "attachments/")
               for u in storage.list_multipart_uploads(f"{root}{video_id}/")]
    return objects + uploads


def test_deleting_a_video_mid_upload_aborts_it_and_complete_cannot_bring_it_back(api, alice):
    data = payload(9 * MIB)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    storage = api.app.state.container.storage
    assert _everything_stored(storage, upload["video_id"]) == [upload["key"]]  # the open upload

    assert api.delete(f"/api/v1/videos/{upload['video_id']}", headers=alice).status_code == 204
    assert _everything_stored(storage, upload["video_id"]) == []
    uid = upload["upload_id"]
    assert error_code(api.post(f"/api/v1/uploads/{uid}/complete", headers=alice), 404)
    assert _everything_stored(storage, upload["video_id"]) == []  # was: the assembled source
    for response in (api.delete(f"/api/v1/uploads/{uid}", headers=alice),
                     api.get(f"/api/v1/uploads/{uid}/parts", headers=alice),
                     api.post(f"/api/v1/uploads/{uid}/parts", json={}, headers=alice),
                     api.delete(f"/api/v1/videos/{upload['video_id']}", headers=alice)):
        assert error_code(response, 404) == "not_found"
    if not backend_is_s3(api):
        assert [p for p in (storage.root / "multipart").iterdir()] == []


def test_deleting_a_ready_video_removes_source_and_outputs(api, alice, tmp_path):
    data = payload(1000)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    storage = api.app.state.container.storage
    (tmp_path / "seg").write_bytes(b"ts")
    for key in ("hls/master.m3u8", "hls/720p/index.m3u8", "hls/720p/seg0.ts", "poster.jpg"):
        storage.upload_file(tmp_path / "seg", f"videos/{upload['video_id']}/{key}", "video/mp2t")
    assert len(_everything_stored(storage, upload["video_id"])) == 5
    assert api.delete(f"/api/v1/videos/{upload['video_id']}", headers=alice).status_code == 204
    assert _everything_stored(storage, upload["video_id"]) == []


def backend_is_s3(api) -> bool:
    from coursecrafter_worker.storage.s3 import S3Storage
    return isinstance(api.app.state.container.storage, S3Storage)


# Per-instructor quotas and upload metrics (issue "Hardening" #1) ---------------------------------
def _metric(api, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = api.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"{name} {labels} not in /metrics")


def _open_uploads_in_storage(api) -> int:
    return len(api.app.state.container.storage.list_multipart_uploads("uploads/"))


def test_open_uploads_per_instructor_are_capped(make_api):
    api = make_api(quota_open_uploads=2)
    alice, bob = account(api, "alice"), account(api, "bob")
    data = payload(1000)
    first, _ = start(api, alice, data).json(), start(api, alice, data).json()
    refused = start(api, alice, data)
    assert error_code(refused, 429) == "too_many_uploads"
    assert "2 uploads in progress" in refused.json()["error"]["message"]
    assert len(api.get("/api/v1/videos", headers=alice).json()) == 2  # nothing was created
    assert _open_uploads_in_storage(api) == 2
    assert _metric(api, "coursecrafter_upload_quota_refusals_total", quota="open_uploads") == 1
    assert start(api, bob, data).status_code == 201  # a quota per instructor
    put_all(api, first, data)
    assert api.post(f"/api/v1/uploads/{first['upload_id']}/complete",
                    headers=alice).status_code == 200
    assert start(api, alice, data).status_code == 201  # a finished upload frees its place


def test_stored_bytes_per_instructor_are_capped(make_api):
    api = make_api(quota_stored_bytes=10 * MIB)
    alice = account(api, "alice")
    data = payload(6 * MIB)
    upload = start(api, alice, data).json()
    # An upload in progress counts already: 6 + 6 MiB do not fit in 10.
    refused = start(api, alice, payload(6 * MIB, seed=2))
    assert error_code(refused, 413) == "storage_quota_exceeded"
    assert "6.0 MiB of your 10.0 MiB storage quota" in refused.json()["error"]["message"]
    assert _open_uploads_in_storage(api) == 1
    put_all(api, upload, data)
    api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert error_code(start(api, alice, payload(5 * MIB)), 413) == "storage_quota_exceeded"
    assert start(api, alice, payload(4 * MIB)).status_code == 201  # 10 MiB exactly fits
    assert _metric(api, "coursecrafter_upload_quota_refusals_total", quota="stored_bytes") == 2
    assert api.delete(f"/api/v1/videos/{upload['video_id']}", headers=alice).status_code == 204
    assert start(api, alice, payload(6 * MIB)).status_code == 201  # deleting frees the space


def test_completed_upload_bytes_are_counted_once(api, alice):
    data = payload(3 * MIB + 7)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    for _ in range(2):  # a repeated complete (lost response) is not counted again
        assert api.post(f"/api/v1/uploads/{upload['upload_id']}/complete",
                        headers=alice).status_code == 200
    assert _metric(api, "coursecrafter_upload_bytes_total", kind="video") == len(data)
    assert _metric(api, "coursecrafter_uploads_completed_total", kind="video") == 1


def test_a_ready_video_is_charged_for_its_renditions_not_its_deleted_source():
    from coursecrafter_server.domain import Video, VideoKind, VideoStatus
    from coursecrafter_server.uploads import stored_bytes

    now = datetime.now(timezone.utc)
    video = Video(id="v", owner_id="u", course_id=None, kind=VideoKind.VIDEO, title="t",
                  filename="t.mp4", content_type="video/mp4", size=10**9, sha256=None,
                  status=VideoStatus.PROCESSING, created_at=now, updated_at=now, duration=600.0)
    assert stored_bytes(video) == 10**9  # the source, until the ladder replaces it
    ready = dataclasses.replace(video, status=VideoStatus.READY, renditions=(
        {"height": 720, "bitrate": 2_800_000}, {"height": 360, "bitrate": 800_000}))
    assert stored_bytes(ready) == 3_600_000 * 600 // 8
    expired = dataclasses.replace(video, status=VideoStatus.FAILED, error_code="upload_expired")
    assert stored_bytes(expired) == 0


def test_a_source_assembled_while_its_video_was_being_deleted_is_removed(api, alice):
    data = payload(1000)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    container = api.app.state.container
    real_complete = container.storage.complete_multipart_upload

    def delete_lands_meanwhile(*args, **kwargs):
        info = real_complete(*args, **kwargs)  # storage assembled the source...
        container.store.delete_video(upload["video_id"])  # ...as a DELETE removed the record
        return info

    container.storage.complete_multipart_upload = delete_lands_meanwhile
    response = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=alice)
    assert error_code(response, 404) == "not_found"
    assert _everything_stored(container.storage, upload["video_id"]) == []


def test_an_expired_upload_whose_video_is_gone_is_dropped_with_its_bytes(api, alice):
    data = payload(1000)
    upload = start(api, alice, data).json()
    put_all(api, upload, data)
    _assemble_behind_the_records_back(api, upload["upload_id"])
    container = api.app.state.container
    container.store.delete_video(upload["video_id"])  # a delete that died before storage
    container.uploads.expire_abandoned(datetime.now(timezone.utc) + timedelta(days=2))
    assert container.store.get_upload(upload["upload_id"]).status.value == "aborted"
    assert _everything_stored(container.storage, upload["video_id"]) == []
