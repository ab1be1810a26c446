"""Students read published courses and the ready videos in them, and nothing else (DESIGN.md:
"student (reads published courses)"). Through the HTTP API on the embedded default."""

from __future__ import annotations

import dataclasses

import pytest

from coursecrafter_server.domain import Role, VideoStatus

PASSWORD = "correct horse battery"


@pytest.fixture
def api(app_factory, home):
    return app_factory(database_url=f"sqlite:///{home}/db.sqlite3", transcode_concurrency=0)


def account(api, username: str, role: Role) -> dict[str, str]:
    api.app.state.container.auth.register(username, f"{username}@example.edu", PASSWORD, role)
    tokens = api.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def video_in(api, teacher, course_id: str, status: VideoStatus) -> str:
    upload = api.post("/api/v1/uploads", headers=teacher, json={
        "filename": "lecture.mp4", "size": 1000, "content_type": "video/mp4",
        "course_id": course_id}).json()
    store = api.app.state.container.store
    video = store.get_video(upload["video_id"])
    ready = {"progress": 100, "duration": 60.0, "width": 640, "height": 360,
             "renditions": ({"height": 360, "bitrate": 800000},)} \
        if status is VideoStatus.READY else {}
    assert store.update_video(dataclasses.replace(video, status=status, **ready))
    return upload["video_id"]


@pytest.fixture
def school(api):
    teacher = account(api, "ada", Role.INSTRUCTOR)
    student = account(api, "sam", Role.STUDENT)
    published = api.post("/api/v1/courses", headers=teacher, json={"title": "Algorithms"}).json()
    assert api.patch(f"/api/v1/courses/{published['id']}", headers=teacher,
                     json={"published": True}).json()["published"] is True
    draft = api.post("/api/v1/courses", headers=teacher, json={"title": "Draft"}).json()
    return {
        "teacher": teacher, "student": student, "published": published["id"], "draft": draft["id"],
        "ready": video_in(api, teacher, published["id"], VideoStatus.READY),
        "processing": video_in(api, teacher, published["id"], VideoStatus.PROCESSING),
        "draft_ready": video_in(api, teacher, draft["id"], VideoStatus.READY),
    }


def test_a_student_sees_published_courses_only(api, school):
    student = school["student"]
    listed = api.get("/api/v1/courses", headers=student)
    assert [c["id"] for c in listed.json()] == [school["published"]]
    assert api.get(f"/api/v1/courses/{school['published']}", headers=student).json()[
        "title"] == "Algorithms"
    draft = api.get(f"/api/v1/courses/{school['draft']}", headers=student)
    assert draft.status_code == 404 and draft.json()["error"]["code"] == "not_found"


def test_a_student_sees_ready_videos_of_published_courses_with_a_playback_url(api, school):
    student = school["student"]
    listed = api.get("/api/v1/videos", headers=student).json()
    assert [v["id"] for v in listed] == [school["ready"]]
    by_course = api.get("/api/v1/videos", params={"course_id": school["published"]},
                        headers=student).json()
    assert [v["id"] for v in by_course] == [school["ready"]]
    video = api.get(f"/api/v1/videos/{school['ready']}", headers=student).json()
    assert video["status"] == "ready" and video["playback_url"]
    for hidden in ("processing", "draft_ready"):  # not ready, or in an unpublished course
        assert api.get(f"/api/v1/videos/{school[hidden]}", headers=student).status_code == 404
    assert api.get("/api/v1/videos", params={"course_id": school["draft"]},
                   headers=student).status_code == 404


def test_unpublishing_a_course_hides_it_and_its_videos_again(api, school):
    api.patch(f"/api/v1/courses/{school['published']}", headers=school["teacher"],
              json={"published": False})
    student = school["student"]
    assert api.get("/api/v1/courses", headers=student).json() == []
    assert api.get("/api/v1/videos", headers=student).json() == []
    assert api.get(f"/api/v1/videos/{school['ready']}", headers=student).status_code == 404


def test_a_student_changes_nothing_even_in_a_published_course(api, school):
    student, course, video = school["student"], school["published"], school["ready"]
    attempts = [
        api.patch(f"/api/v1/courses/{course}", headers=student, json={"title": "Mine"}),
        api.delete(f"/api/v1/courses/{course}", headers=student),
        api.delete(f"/api/v1/videos/{video}", headers=student),
        api.post(f"/api/v1/videos/{video}/retry", headers=student),
        api.post("/api/v1/uploads", headers=student, json={
            "filename": "x.mp4", "size": 1000, "content_type": "video/mp4", "course_id": course}),
    ]
    assert [r.status_code for r in attempts] == [403] * 5
    assert api.get(f"/api/v1/videos/{video}", headers=school["teacher"]).status_code == 200


def test_instructors_still_see_only_their_own(api, school):
    other = account(api, "bob", Role.INSTRUCTOR)
    assert api.get("/api/v1/courses", headers=other).json() == []
    assert api.get("/api/v1/videos", headers=other).json() == []
    # Published does not open another instructor's course to them: 404 as before.
    assert api.get(f"/api/v1/courses/{school['published']}", headers=other).status_code == 404
    assert api.get(f"/api/v1/videos/{school['ready']}", headers=other).status_code == 404


def test_a_student_watches_a_lecture_as_soon_as_it_is_playable(api, school):
    """Playable early counts as watchable for students: the lecture shows up (status
    `processing`, `playable` true, a playback URL) before the ladder is done; a processing one
    that is not playable yet stays invisible."""
    student, store = school["student"], api.app.state.container.store
    video = store.get_video(school["processing"])
    assert api.get(f"/api/v1/videos/{video.id}", headers=student).status_code == 404
    assert store.update_video(dataclasses.replace(video, playable=True, progress=20))
    seen = api.get(f"/api/v1/videos/{video.id}", headers=student).json()
    assert (seen["status"], seen["playable"]) == ("processing", True) and seen["playback_url"]
    listed = api.get("/api/v1/videos", headers=student,
                     params={"course_id": school["published"]}).json()
    assert {v["id"] for v in listed} == {school["ready"], video.id}


def test_a_student_lists_and_downloads_the_ready_attachments_of_published_courses(api, school):
    """The course page shows its attachments to students too (as its attachment_count says)."""
    teacher, student = school["teacher"], school["student"]

    def attachment(course_id: str, status: VideoStatus) -> str:
        started = api.post("/api/v1/uploads", headers=teacher, json={
            "filename": "slides.pdf", "size": 1000, "content_type": "application/pdf",
            "course_id": course_id, "kind": "attachment"}).json()
        store = api.app.state.container.store
        video = store.get_video(started["video_id"])
        assert store.update_video(dataclasses.replace(video, status=status))
        return started["video_id"]

    ready = attachment(school["published"], VideoStatus.READY)
    waiting = attachment(school["published"], VideoStatus.AWAITING_UPLOAD)
    in_draft = attachment(school["draft"], VideoStatus.READY)
    listed = api.get("/api/v1/videos", headers=student,
                     params={"course_id": school["published"]}).json()
    assert sorted(v["id"] for v in listed) == sorted([school["ready"], ready])
    one = api.get(f"/api/v1/videos/{ready}", headers=student)
    assert one.status_code == 200 and one.json()["kind"] == "attachment"
    assert one.json()["download_url"] and one.json()["playback_url"] is None
    for hidden in (waiting, in_draft):
        assert api.get(f"/api/v1/videos/{hidden}", headers=student).status_code == 404
    course = api.get(f"/api/v1/courses/{school['published']}", headers=student).json()
    assert course["attachment_count"] == 1
