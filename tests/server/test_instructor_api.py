"""The instructor's whole job through the HTTP API: lecture counts with the course, renaming a
video, and a course that is not yours answering 404 to `GET /videos?course_id=`."""

from __future__ import annotations

import dataclasses

import pytest

from coursecrafter_server.domain import Role, VideoStatus

PASSWORD = "correct horse battery"


@pytest.fixture
def api(app_factory, home):
    return app_factory(database_url=f"sqlite:///{home}/db.sqlite3", transcode_concurrency=0)


def account(api, username: str, role: Role = Role.INSTRUCTOR) -> dict[str, str]:
    api.app.state.container.auth.register(username, f"{username}@example.edu", PASSWORD, role)
    tokens = api.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def upload(api, teacher, course_id: str, *, attachment: bool = False,
           status: VideoStatus = VideoStatus.READY) -> str:
    name, kind = ("slides.pdf", "application/pdf") if attachment else ("lecture.mp4", "video/mp4")
    body = {"filename": name, "size": 1000, "content_type": kind, "course_id": course_id}
    if attachment:
        body["kind"] = "attachment"
    started = api.post("/api/v1/uploads", headers=teacher, json=body)
    assert started.status_code == 201, started.text
    store = api.app.state.container.store
    video = store.get_video(started.json()["video_id"])
    assert store.update_video(dataclasses.replace(video, status=status))
    return video.id


def test_courses_carry_lecture_and_attachment_counts(api):
    ada, sam = account(api, "ada"), account(api, "sam", Role.STUDENT)
    first = api.post("/api/v1/courses", headers=ada, json={"title": "Algorithms"}).json()
    second = api.post("/api/v1/courses", headers=ada, json={"title": "Empty"}).json()
    assert (first["lecture_count"], first["attachment_count"]) == (0, 0)
    upload(api, ada, first["id"])
    upload(api, ada, first["id"], status=VideoStatus.PROCESSING)
    upload(api, ada, first["id"], attachment=True)

    listed = {c["id"]: c for c in api.get("/api/v1/courses", headers=ada).json()}
    assert (listed[first["id"]]["lecture_count"], listed[first["id"]]["attachment_count"]) == (2, 1)
    assert listed[second["id"]]["lecture_count"] == 0
    one = api.get(f"/api/v1/courses/{first['id']}", headers=ada).json()
    assert (one["lecture_count"], one["attachment_count"], one["published"]) == (2, 1, False)

    published = api.patch(f"/api/v1/courses/{first['id']}", headers=ada,
                          json={"published": True}).json()
    assert published["published"] is True and published["lecture_count"] == 2
    # Students count what they can watch: the ready lecture, not the one still processing.
    seen = api.get("/api/v1/courses", headers=sam).json()
    assert [(c["id"], c["lecture_count"], c["attachment_count"]) for c in seen] == [
        (first["id"], 1, 1)]


def test_a_video_is_renamed_by_its_owner_only(api):
    ada, bob = account(api, "ada"), account(api, "bob")
    course = api.post("/api/v1/courses", headers=ada, json={"title": "Algorithms"}).json()
    video_id = upload(api, ada, course["id"])

    renamed = api.patch(f"/api/v1/videos/{video_id}", headers=ada, json={"title": "Week 1"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "Week 1" and renamed.json()["status"] == "ready"
    assert api.get(f"/api/v1/videos/{video_id}", headers=ada).json()["title"] == "Week 1"

    assert api.patch(f"/api/v1/videos/{video_id}", headers=bob,
                     json={"title": "Mine"}).status_code == 404
    assert api.patch(f"/api/v1/videos/{video_id}", headers=ada,
                     json={"title": ""}).status_code == 422
    assert api.patch(f"/api/v1/videos/{video_id}", headers=ada,
                     json={"title": "x", "status": "ready"}).status_code == 422
    assert api.get(f"/api/v1/videos/{video_id}", headers=ada).json()["title"] == "Week 1"


def test_listing_the_videos_of_a_course_that_is_not_yours_is_not_found(api):
    ada, bob = account(api, "ada"), account(api, "bob")
    course = api.post("/api/v1/courses", headers=ada, json={"title": "Algorithms"}).json()
    upload(api, ada, course["id"])

    assert len(api.get("/api/v1/videos", headers=ada,
                       params={"course_id": course["id"]}).json()) == 1
    for who in (bob, ada):
        target = course["id"] if who is bob else "no-such-course"
        answer = api.get("/api/v1/videos", headers=who, params={"course_id": target})
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"] == {"code": "not_found", "message": "course not found"}
