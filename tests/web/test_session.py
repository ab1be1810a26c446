"""The browser app's cookie session (/api/v1/session) and the pages' HTTP answers, in-process."""

from __future__ import annotations

import base64
import hashlib
import re

from coursecrafter_server.domain import Role

PASSWORD = "correct horse battery"
CSRF = {"X-CourseCrafter-CSRF": "1"}


def _user(api, name: str = "ada", role: Role = Role.INSTRUCTOR) -> None:
    api.app.state.container.auth.register(name, f"{name}@example.edu", PASSWORD, role)


def _sign_in(api, name: str = "ada"):
    return api.post("/api/v1/session", json={"username": name, "password": PASSWORD},
                    headers=CSRF)


def test_sign_in_sets_an_httponly_strict_cookie_and_returns_only_the_access_token(api) -> None:
    _user(api)
    response = _sign_in(api)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "user"}
    assert body["user"]["username"] == "ada" and body["user"]["role"] == "instructor"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("coursecrafter_refresh=")
    for attribute in ("HttpOnly", "Path=/api/v1/session", "SameSite=strict"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http on loopback: a Secure cookie would be lost
    assert response.headers["cache-control"] == "no-store"
    me = api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


def test_cookie_is_secure_when_served_over_https(api) -> None:
    _user(api)
    response = api.post("https://testserver/api/v1/session", headers=CSRF,
                        json={"username": "ada", "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert "secure" in response.headers["set-cookie"].lower()


def test_refresh_rotates_the_cookie_and_a_replayed_one_ends_the_session(api) -> None:
    _user(api)
    _sign_in(api)
    first = api.cookies.get("coursecrafter_refresh", path="/api/v1/session")
    refreshed = api.post("/api/v1/session/refresh", headers=CSRF)
    assert refreshed.status_code == 200, refreshed.text
    second = api.cookies.get("coursecrafter_refresh", path="/api/v1/session")
    assert second and second != first
    # The old cookie again (stolen, replayed): reuse detection revokes the whole family.
    api.cookies.clear()
    api.cookies.set("coursecrafter_refresh", first, path="/api/v1/session")
    assert api.post("/api/v1/session/refresh", headers=CSRF).status_code == 401
    api.cookies.clear()
    api.cookies.set("coursecrafter_refresh", second, path="/api/v1/session")
    assert api.post("/api/v1/session/refresh", headers=CSRF).status_code == 401


def test_refresh_without_a_cookie_is_401(api) -> None:
    response = api.post("/api/v1/session/refresh", headers=CSRF)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_sign_out_revokes_the_family_and_the_access_token_and_clears_the_cookie(api) -> None:
    _user(api)
    access = _sign_in(api).json()["access_token"]
    cookie = api.cookies.get("coursecrafter_refresh", path="/api/v1/session")
    bearer = {"Authorization": f"Bearer {access}"}
    out = api.delete("/api/v1/session", headers={**CSRF, **bearer})
    assert out.status_code == 204
    assert "coursecrafter_refresh=" in out.headers["set-cookie"]
    assert "max-age=0" in out.headers["set-cookie"].lower()
    assert api.get("/api/v1/auth/me", headers=bearer).status_code == 401
    api.cookies.set("coursecrafter_refresh", cookie, path="/api/v1/session")
    assert api.post("/api/v1/session/refresh", headers=CSRF).status_code == 401


def test_csrf_header_is_required_and_other_origins_are_refused(api) -> None:
    _user(api)
    credentials = {"username": "ada", "password": PASSWORD}
    missing = api.post("/api/v1/session", json=credentials)
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    assert api.post("/api/v1/session/refresh").status_code == 403
    assert api.delete("/api/v1/session").status_code == 403
    evil = api.post("/api/v1/session", json=credentials,
                    headers={**CSRF, "Origin": "https://evil.example"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "csrf_failed"
    cross = api.post("/api/v1/session", json=credentials,
                     headers={**CSRF, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    same = api.post("/api/v1/session", json=credentials,
                    headers={**CSRF, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200, same.text
    public = api.post("/api/v1/session", json=credentials,
                      headers={**CSRF, "Origin": "http://127.0.0.1:8000"})
    assert public.status_code == 200, public.text


def test_sign_in_is_rate_limited_like_login(app_factory) -> None:
    api = app_factory(login_rate_limit_account="2/minute")
    _user(api)
    for _ in range(2):
        assert api.post("/api/v1/session", json={"username": "ada", "password": "wrong one"},
                        headers=CSRF).status_code == 401
    limited = _sign_in(api)
    assert limited.status_code == 429 and "retry-after" in limited.headers


def test_pages_carry_a_strict_csp_or_say_how_to_build(api) -> None:
    from coursecrafter_server import web

    for path in ("/", "/courses/abc", "/watch/abc"):
        response = api.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        if (web.DIST / "index.html").exists():
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")
            assert "<script" in response.text and "<script>" not in response.text  # no inline
            # The one inline style sheet (build.mjs puts it there) is allowed by its hash alone.
            styles = re.findall(r"<style>(.*?)</style>", response.text, re.S)
            assert len(styles) == 1 and ".player-frame" in styles[0]
            digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
            style_src = next(d for d in csp.split("; ") if d.startswith("style-src "))
            assert style_src == f"style-src 'self' 'sha256-{digest}'"
            assert "/assets/style" not in response.text
        else:
            assert response.status_code == 503 and "make web" in response.text
    assert api.get("/assets/..%2Fapp.py").status_code == 404
    assert api.get("/assets/nope.js").status_code == 404


def test_page_without_a_build_says_to_run_make_web(api, monkeypatch, tmp_path) -> None:
    from coursecrafter_server import web

    monkeypatch.setattr(web, "DIST", tmp_path / "no-dist")
    response = api.get("/")
    assert response.status_code == 503
    assert "make web" in response.text


def test_a_strangers_guesses_do_not_lock_the_browser_out(app_factory) -> None:
    """The browser gets a device cookie on this path too (README "Security"): failures by a
    client without it are throttled per account, the owner's browser still signs in."""
    api = app_factory(login_rate_limit_account="3/minute")
    _user(api)
    assert _sign_in(api).status_code == 200  # this browser has logged in before
    assert "coursecrafter_device" in api.cookies
    for _ in range(4):  # a stranger: the JSON login (this browser's cookie is scoped elsewhere)
        api.post("/api/v1/auth/login", json={"username": "ada", "password": "wrong guess"})
    assert _sign_in(api).status_code == 200
    api.cookies.clear()  # a browser that never signed in here is held back
    assert _sign_in(api).status_code == 429


def test_a_refresh_naming_a_video_answers_with_the_video_only_when_it_is_readable(api, tmp_path) -> None:
    """The watch page's first request: the session and the video's record (playback URL
    included) in one answer; the owner check is GET /videos/{id}'s."""
    import dataclasses

    from coursecrafter_server.domain import VideoStatus

    _user(api)
    _user(api, "sam", Role.STUDENT)
    _user(api, "eve", Role.INSTRUCTOR)
    ada = {"Authorization": f"Bearer {_sign_in(api).json()['access_token']}"}
    course = api.post("/api/v1/courses", headers=ada, json={"title": "Draft course"}).json()
    started = api.post("/api/v1/uploads", headers=ada, json={
        "filename": "l.mp4", "size": 10, "content_type": "video/mp4", "course_id": course["id"]})
    video_id = started.json()["video_id"]
    store = api.app.state.container.store
    assert store.update_video(dataclasses.replace(
        store.get_video(video_id), status=VideoStatus.READY, progress=100, duration=4.0))

    def refresh(name: str, body: dict | None):
        api.cookies.clear()
        _sign_in(api, name)
        answer = api.post("/api/v1/session/refresh", headers=CSRF, json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    mine = refresh("ada", {"video_id": video_id})
    assert mine["user"]["username"] == "ada" and mine["access_token"]
    assert mine["video"]["id"] == video_id
    assert mine["video"]["playback_url"] == api.get(
        f"/api/v1/videos/{video_id}", headers={"Authorization": f"Bearer {mine['access_token']}"}
    ).json()["playback_url"]
    assert "/api/v1/play/" in mine["video"]["playback_url"]
    assert refresh("ada", None)["video"] is None  # no body: a plain refresh, as before
    # Another instructor's video, a student and an unpublished course, an unknown id: no video.
    assert refresh("eve", {"video_id": video_id})["video"] is None
    assert refresh("sam", {"video_id": video_id})["video"] is None
    assert refresh("ada", {"video_id": "0" * 32})["video"] is None
    api.patch(f"/api/v1/courses/{course['id']}", headers=ada, json={"published": True})
    assert refresh("sam", {"video_id": video_id})["video"]["id"] == video_id
    # A bad body is refused before the cookie is rotated; without the cookie it is a 401.
    assert api.post("/api/v1/session/refresh", headers=CSRF,
                    json={"video_id": video_id, "extra": 1}).status_code == 422
    api.cookies.clear()
    assert api.post("/api/v1/session/refresh", headers=CSRF,
                    json={"video_id": video_id}).status_code == 401


def _page_state(response) -> dict | None:
    import json
    import re

    found = re.search(r'<script type="application/json" id="coursecrafter-page-state">(.*?)</script>',
                      response.text, re.S)
    return json.loads(found.group(1)) if found else None


def _watch_with(api, video_id: str, viewer_cookie: str):
    """GET the watch page presenting only `viewer_cookie` (the client's own cookies are kept)."""
    import httpx

    kept = httpx.Cookies(api.cookies)
    api.cookies.clear()
    api.cookies.set("coursecrafter_viewer", viewer_cookie, path="/watch")
    try:
        return api.get(f"/watch/{video_id}")
    finally:
        api.cookies = kept


def test_a_watch_page_holds_its_viewer_and_lecture_only_for_a_live_viewer_cookie(
        api, monkeypatch, tmp_path) -> None:
    """The watch page's HTML carries the viewer and the lecture (playback URL included) for the
    browser that signed in (its viewer cookie), so the player needs no API answer to start; a
    forged, signed-out or replayed session's cookie gets the bare page."""
    import dataclasses
    import html
    import re

    from coursecrafter_server import web
    from coursecrafter_server.domain import VideoStatus

    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><html><head><title>t</title></head>"
                                     f"<body><main>{web.LOADING}</main></body></html>")
    monkeypatch.setattr(web, "DIST", dist)
    _user(api)
    _user(api, "sam", Role.STUDENT)
    signed = _sign_in(api)
    viewer_cookie = next(c for c in signed.headers.get_list("set-cookie")
                         if c.startswith("coursecrafter_viewer="))
    for attribute in ("HttpOnly", "Path=/watch", "SameSite=lax", "Max-Age="):
        assert attribute.lower() in viewer_cookie.lower(), viewer_cookie
    ada = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    hostile = "</script><style>*{}</style><img src=x onerror=alert(1)> & co"
    course = api.post("/api/v1/courses", headers=ada, json={"title": "Draft course"}).json()
    started = api.post("/api/v1/uploads", headers=ada, json={
        "filename": "l.mp4", "size": 10, "content_type": "video/mp4", "course_id": course["id"],
        "title": hostile})
    video_id = started.json()["video_id"]
    store = api.app.state.container.store
    assert store.update_video(dataclasses.replace(
        store.get_video(video_id), status=VideoStatus.READY, progress=100, duration=4.0))

    page = api.get(f"/watch/{video_id}")
    state = _page_state(page)
    assert state is not None and state["user"]["username"] == "ada"
    assert state["video"]["title"] == hostile  # as text, in the data, and nowhere as markup
    assert "<img" not in page.text and page.text.count("</script>") == 1
    # Nor as a style sheet: only the built page's own <style> blocks (none in this one) get a hash.
    assert "<style" not in page.text and "'sha256-" not in page.headers["content-security-policy"]
    assert state["video"]["playback_url"] == api.get(
        f"/api/v1/videos/{video_id}", headers=ada).json()["playback_url"]
    # The page's <main> is there too (the way back, the title as text, the player's <video> with
    # the same playback URL): the app's first lines hand it to the browser and adopt the element.
    player = re.search(r'<video id="page-video" data-video-id="(\w+)"[^>]* data-src="([^"]+)">'
                       r'</video>', page.text)
    assert player is not None and player.group(1) == video_id
    assert html.unescape(player.group(2)) == state["video"]["playback_url"]
    assert f'<h1 tabindex="-1" id="page-heading">{html.escape(hostile)}</h1>' in page.text
    assert f'href="/courses/{course["id"]}"' in page.text
    assert web.LOADING not in page.text
    assert page.headers["cache-control"] == "private, no-store"
    assert page.headers["vary"] == "Cookie"
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    # Other pages and unknown lectures: no lecture; pages other than /watch hold nothing.
    assert _page_state(api.get(f"/watch/{'0' * 32}"))["video"] is None
    assert _page_state(api.get(f"/watch/{'x' * 200}"))["video"] is None
    assert _page_state(api.get(f"/courses/{course['id']}")) is None
    assert "page-video" not in api.get(f"/watch/{'0' * 32}").text

    cookie = api.cookies.get("coursecrafter_viewer", path="/watch")
    api.cookies.clear()
    bare = api.get(f"/watch/{video_id}")
    assert _page_state(bare) is None and bare.headers["cache-control"] == "no-cache"
    assert "page-video" not in bare.text and web.LOADING in bare.text
    user_id, family, expires, signature = cookie.split(".")
    for forged in (f"{user_id}.{family}.{int(expires) + 1}.{signature}",
                   f"{user_id}.{family}.{expires}.{'0' * 64}", "nonsense"):
        assert _page_state(_watch_with(api, video_id, forged)) is None

    # A student of the unpublished course: the viewer, but no lecture.
    api.cookies.clear()
    _sign_in(api, "sam")
    sam = _page_state(api.get(f"/watch/{video_id}"))
    assert sam["user"]["username"] == "sam" and sam["video"] is None

    # Signed out: the cookie is cleared, and a copy of it opens nothing any more.
    api.cookies.clear()
    _sign_in(api)
    copy = api.cookies.get("coursecrafter_viewer", path="/watch")
    out = api.delete("/api/v1/session", headers=CSRF)
    assert out.status_code == 204
    assert any(c.startswith("coursecrafter_viewer=") and "max-age=0" in c.lower()
               for c in out.headers.get_list("set-cookie"))
    assert _page_state(_watch_with(api, video_id, copy)) is None

    # A replayed refresh token revokes its family: the viewer cookie of that session dies too.
    api.cookies.clear()
    _sign_in(api)
    first = api.cookies.get("coursecrafter_refresh", path="/api/v1/session")
    assert api.post("/api/v1/session/refresh", headers=CSRF).status_code == 200
    live = api.cookies.get("coursecrafter_viewer", path="/watch")
    assert _page_state(_watch_with(api, video_id, live)) is not None
    api.cookies.set("coursecrafter_refresh", first, path="/api/v1/session")
    assert api.post("/api/v1/session/refresh", headers=CSRF).status_code == 401
    assert _page_state(_watch_with(api, video_id, live)) is None


def test_a_viewer_cookie_ends_when_it_says() -> None:
    from coursecrafter_server.auth.viewer_cookies import ViewerCookies

    cookies = ViewerCookies(b"k" * 32)
    cookie = cookies.issue("user1", "family1", expires=1_000)
    assert cookies.read(cookie, now=999).user_id == "user1"
    assert cookies.read(cookie, now=1_000) is None
    assert ViewerCookies(b"o" * 32).read(cookie, now=0) is None  # another deployment's key
