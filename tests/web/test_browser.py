"""The web app in a real browser (Debian's chromium through Playwright) against a live server.

Every page visited is saved as a screenshot in tests/web/screenshots/ (git-ignored)."""

from __future__ import annotations

import json
import re

import pytest

from websupport import HOSTILE, PASSWORD, Page, Site, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 120_000  # ms: conditions on a busy 2-core machine get generous time


def too_wide(p: Page) -> list[str]:
    """Elements that stick out of a narrow viewport (empty when nothing needs sideways scrolling)."""
    return p.page.evaluate(  # type: ignore[no-any-return]
        "() => document.documentElement.scrollWidth <= window.innerWidth + 1 ? [] :"
        " [...document.querySelectorAll('body *')].filter(e =>"
        "   e.getBoundingClientRect().right > window.innerWidth + 1)"
        "   .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))")


@pytest.mark.parametrize("engine", ["default", "hlsjs"])
def test_student_signs_in_and_watches_with_quality_menu_poster_and_keyboard(
        any_site: Site, new_page, engine: str) -> None:
    """Directly and through the NGINX gateway (any_site)."""
    site = any_site
    p = new_page()
    page = p.page
    with page.expect_response(lambda r: r.url.endswith("/api/v1/session")) as signed:
        sign_in(p, site, "sam")
    access_token = signed.value.json()["access_token"]
    page.get_by_role("heading", name="Courses", exact=True).wait_for()
    p.shot(f"{site.tag}student-{engine}-1-courses")
    page.get_by_role("link", name="Signals and Systems").click()
    page.get_by_role("heading", name="Signals and Systems").wait_for()
    # The lecture's poster is shown (a decoded image, not a broken one).
    page.wait_for_function(
        "() => { const i = document.querySelector('.lecture img.poster');"
        " return i && i.complete && i.naturalWidth > 0; }", timeout=WAIT)
    assert page.get_by_text("0:10").count() == 1  # the duration
    p.shot(f"{site.tag}student-{engine}-2-course")

    suffix = "?player=hlsjs" if engine == "hlsjs" else ""
    if suffix:
        page.goto(f"{site.url}/watch/{site.video_id}{suffix}")
    else:
        page.get_by_role("link", name="Lecture 1: Sampling").click()
    page.get_by_role("heading", name="Lecture 1: Sampling").wait_for()
    # The poster: set once the first frame is in (or where autoplay is refused, see
    # test_a_watch_page_whose_autoplay_is_refused_shows_its_poster).
    page.wait_for_function("() => (document.querySelector('video') || {}).poster", timeout=WAIT)
    assert page.evaluate("() => fetch(document.querySelector('video').poster)"
                         ".then(r => r.ok && r.headers.get('content-type'))") == "image/jpeg"
    used = page.locator("#player-engine").get_attribute("data-engine")
    assert used == ("hlsjs" if engine == "hlsjs" else used)

    page.wait_for_function("() => (document.querySelector('video') || {}).currentTime > 5", timeout=WAIT)
    p.shot(f"{site.tag}student-{engine}-3-playing")

    quality = page.get_by_label("Quality")
    options = quality.locator("option").all_text_contents()
    assert options == ["Auto", "480p", "360p"], options
    for height in (360, 480):
        quality.select_option(f"{height}")
        page.wait_for_function(
            f"() => {{ const v = document.querySelector('video');"
            f" if (v.ended || (v.paused && v.currentTime > 7)) {{ v.currentTime = 0; v.play(); }}"
            f" return v.videoHeight === {height}; }}", timeout=WAIT)
    p.shot(f"{site.tag}student-{engine}-4-quality-480p")

    # Keyboard (focus on the page, not in a control): K pauses, the left arrow seeks 5 s back.
    page.evaluate("() => { document.activeElement.blur(); const v = document.querySelector('video');"
                  " v.currentTime = 6; v.play(); }")
    page.wait_for_function("() => { const v = document.querySelector('video');"
                           " return !v.paused && !v.seeking && v.currentTime >= 6; }", timeout=WAIT)
    page.keyboard.press("k")
    page.wait_for_function("() => document.querySelector('video').paused", timeout=WAIT)
    before = page.evaluate("() => document.querySelector('video').currentTime")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('video').currentTime < {before} - 4",
                           timeout=WAIT)

    # The position is remembered per lecture: a reload starts where the student left off.
    page.evaluate("() => { const v = document.querySelector('video'); v.currentTime = 4;"
                  " v.dispatchEvent(new Event('pause')); }")
    page.reload()
    page.wait_for_function("() => { const v = document.querySelector('video');"
                           " return v && v.readyState > 0 && v.currentTime >= 3.5; }", timeout=WAIT)
    p.shot(f"{site.tag}student-{engine}-5-resumed")

    assert p.csp_violations() == []
    assert p.dialogs == [] and p.errors == []
    # Tokens stay out of storage a script could read later; the refresh cookie is HttpOnly.
    stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert access_token not in stored and "refresh" not in stored
    assert page.evaluate("() => document.cookie") == ""


def test_a_watch_page_opened_afresh_plays_before_the_session_answers(any_site: Site, new_page) -> None:
    """The watch page's HTML holds its viewer, lecture and <video> (the viewer cookie): the
    browser's HLS starts while the app's script loads and nothing waits for the API. The session
    refresh is held back here until the lecture has played a second; the page then gets its access
    token and works as ever (its account menu, the way back to the course)."""
    site = any_site
    p = new_page()
    page = p.page
    sign_in(p, site, "sam")
    held: list = []

    def hold(route) -> None:
        held.append(route)

    page.route("**/api/v1/session/refresh", hold)
    # The media element's own requests carry a Range header (the quality menu's fetch does not).
    loads: list[str] = []
    page.on("request", lambda r: loads.append(r.url)
            if r.url.endswith("/hls/master.m3u8") and "range" in r.headers else None)
    page.goto(f"{site.url}/watch/{site.video_id}")
    page.wait_for_function("() => (document.querySelector('video') || {}).currentTime > 1",
                           timeout=WAIT)
    # The page's own element, adopted by the player: one element that loaded once (a second
    # element, or the player starting it again, would ask for the master playlist again).
    assert page.locator("video").count() == 1
    assert len(loads) == 1, loads
    # Its controls and poster came with the first frame (player.js, dressAfterFirstFrame).
    assert page.evaluate("() => { const v = document.querySelector('video');"
                         " return v.controls && v.poster.endsWith('/poster.jpg'); }")
    assert page.get_by_role("heading", name="Lecture 1: Sampling").is_visible()
    assert page.get_by_role("button", name="Sign out").is_visible()
    page.wait_for_function("() => document.querySelectorAll('#quality option').length === 3",
                           timeout=WAIT)
    p.shot(f"{site.tag}watch-before-session")
    assert [r.request.method for r in held] == ["POST"]  # asked for, still unanswered
    held[0].continue_()
    page.unroute("**/api/v1/session/refresh")
    page.get_by_role("link", name="← Back to the course").click()
    page.get_by_role("heading", name="Signals and Systems").wait_for()
    page.get_by_role("link", name="Lecture 1: Sampling").wait_for()
    assert p.csp_violations() == []
    assert p.dialogs == [] and p.errors == []


def test_a_watch_page_whose_autoplay_is_refused_shows_its_poster(
        site: Site, page_refusing_autoplay: Page) -> None:
    """The page's <video> gets its controls and poster after its first frame (player.js says why);
    a browser that refuses autoplay still loads that frame, paused, and then shows the poster (not
    the paused first frame) and the controls until the viewer presses play."""
    p = page_refusing_autoplay
    page = p.page
    sign_in(p, site, "sam")
    page.goto(f"{site.url}/watch/{site.video_id}")  # a new document: no user gesture on it
    page.wait_for_function("() => { const v = document.querySelector('video');"
                           " return v && v.poster && v.controls && v.readyState >= 2; }",
                           timeout=WAIT)
    shown = page.evaluate("""async () => {
        const v = document.querySelector('video');
        const image = new Image();
        image.src = v.poster;
        await image.decode();
        return {paused: v.paused, played: v.played.length, at: v.currentTime, controls: v.controls,
                width: image.naturalWidth, height: image.naturalHeight}; }""")
    # Never started (the browser refused it); the element shows the lecture's poster, and the
    # browser's controls to start it with.
    assert shown == {"paused": True, "played": 0, "at": 0, "controls": True,
                     "width": 854, "height": 480}, shown
    p.shot(f"{site.tag}watch-autoplay-refused-poster")
    page.get_by_role("heading", name="Lecture 1: Sampling").wait_for()
    page.keyboard.press("k")  # the player's play/pause key: a user gesture
    page.wait_for_function("() => document.querySelector('video').currentTime > 1", timeout=WAIT)
    p.shot(f"{site.tag}watch-autoplay-refused-playing")
    assert p.csp_violations() == [] and p.errors == [] and p.dialogs == []


def test_instructor_creates_publishes_uploads_and_watches(any_site: Site, new_page,
                                                        short_clip) -> None:
    """Directly and through the NGINX gateway (any_site)."""
    site = any_site
    p = new_page()
    page = p.page
    sign_in(p, site, "ada")
    page.get_by_role("heading", name="Your courses").wait_for()
    p.shot(f"{site.tag}instructor-1-courses")
    page.get_by_label("New course title").fill("Browser-made course")
    page.get_by_role("button", name="Create course").click()
    page.get_by_role("heading", name="Browser-made course").wait_for()
    assert "Draft" in page.locator("#publish-state").inner_text()
    page.get_by_role("button", name="Publish").click()
    page.wait_for_function(
        "() => document.querySelector('#publish-state').textContent.startsWith('Published')")
    assert page.get_by_role("button", name="Unpublish").is_visible()

    page.get_by_label("Recording (video or audio file)").set_input_files(str(short_clip))
    page.get_by_label("Title (optional)", exact=True).fill("Uploaded from the browser")
    page.get_by_role("button", name="Upload", exact=True).click()
    row = page.locator(".lecture", has_text="Uploaded from the browser")
    row.wait_for(timeout=WAIT)
    p.shot(f"{site.tag}instructor-2-uploaded-processing")
    # Processing is followed live until the lecture can be watched.
    row.get_by_role("link", name="Uploaded from the browser").wait_for(timeout=240_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.lecture')].some(li =>"
        " li.textContent.includes('Uploaded from the browser') && li.textContent.includes('Ready'))",
        timeout=240_000)
    p.shot(f"{site.tag}instructor-3-ready")
    row.get_by_role("link", name="Uploaded from the browser").click()
    page.wait_for_function("() => (document.querySelector('video') || {}).currentTime > 1", timeout=WAIT)
    p.shot(f"{site.tag}instructor-4-watch")

    # Phone width: the course page fits without sideways scrolling.
    phone = new_page(375, 740)
    sign_in(phone, site, "ada")
    phone.shot(f"{site.tag}phone-1-courses")
    assert too_wide(phone) == []
    phone.page.get_by_role("link", name="Browser-made course").click()
    phone.page.get_by_role("heading", name="Browser-made course").wait_for()
    phone.page.wait_for_function(
        "() => { const i = document.querySelector('.lecture img.poster');"
        " return i && i.complete && i.naturalWidth > 0; }", timeout=WAIT)
    phone.shot(f"{site.tag}phone-2-course")
    assert too_wide(phone) == []
    phone.page.get_by_role("link", name="Uploaded from the browser").click()
    phone.page.wait_for_function("() => (document.querySelector('video') || {}).readyState > 0",
                                 timeout=WAIT)
    phone.shot(f"{site.tag}phone-3-watch")
    assert too_wide(phone) == []
    assert p.csp_violations() == [] and phone.csp_violations() == []
    assert p.errors == [] and phone.errors == []


def test_hostile_titles_are_shown_as_text_and_run_nothing(site: Site, new_page) -> None:
    ada = site.client("ada")
    course = ada.post("/courses", json={"title": HOSTILE, "description": "<script>alert(2)</script>"}).json()
    started = ada.post("/uploads", json={"filename": "x.mp4", "size": 100, "content_type": "video/mp4",
                                         "course_id": course["id"], "title": HOSTILE})
    assert started.status_code == 201, started.text
    p = new_page()
    page = p.page
    sign_in(p, site, "ada")
    page.get_by_role("link", name=HOSTILE).wait_for()
    p.shot("hostile-1-courses")
    page.get_by_role("link", name=HOSTILE).click()
    page.get_by_role("heading", name=HOSTILE, level=1).wait_for()
    page.get_by_role("heading", name=HOSTILE, level=3).wait_for()
    page.get_by_text("<script>alert(2)</script>").wait_for()
    p.shot("hostile-2-course")
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("main script").count() == 0
    assert p.dialogs == [] and p.errors == []
    assert p.csp_violations() == []

    # Signing out ends the session for good: a reload does not bring it back.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    page.reload()
    page.get_by_role("button", name="Sign in").wait_for()
    p.shot("hostile-3-signed-out")
    assert page.evaluate("() => Object.keys(localStorage).filter(k => k.includes('session'))") == []
    assert "refresh" not in json.dumps(page.evaluate("() => ({...localStorage})")).lower()


def test_interrupted_upload_resumes_after_reload_and_a_failed_video_can_be_retried_and_deleted(
        site: Site, new_page, tmp_path) -> None:
    """Two parts (8 MiB each at most); storage refuses part 2 the first time. After a reload, the
    same file chosen again sends only part 2. The bytes are not a video: it fails, with Retry."""
    from livesupport import MIB, make_file

    source = make_file(tmp_path / "not-a-lecture.mp4", 9 * MIB, seed=7)
    ada = site.client("ada")
    course = ada.post("/courses", json={"title": "Resume course"}).json()
    p = new_page()
    page = p.page
    sign_in(p, site, "ada")
    page.goto(f"{site.url}/courses/{course['id']}")
    page.get_by_role("heading", name="Resume course").wait_for()

    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
    refuse = re.compile(r"/blobs/.*[?&]partNumber=2(&|$)")
    page.route(refuse, lambda route: route.fulfill(
        status=400, content_type="application/json",
        body='{"error": {"code": "injected", "message": "injected refusal"}}'))
    page.get_by_label("Recording (video or audio file)").set_input_files(str(source))
    page.get_by_label("Title (optional)", exact=True).fill("Resumed upload")
    page.get_by_role("button", name="Upload", exact=True).click()
    page.get_by_role("alert").filter(has_text="Upload stopped").wait_for(timeout=WAIT)
    p.shot("resume-1-interrupted")
    assert any("partNumber=1" in u for u in puts)
    page.unroute(refuse)

    page.reload()
    page.get_by_role("heading", name="Resume course").wait_for()
    puts.clear()
    page.get_by_label("Recording (video or audio file)").set_input_files(str(source))
    page.get_by_role("button", name="Upload", exact=True).click()
    page.get_by_text("Resuming the upload: 1 part was already stored.").wait_for(timeout=WAIT)
    row = page.locator(".lecture", has_text="Resumed upload")
    row.locator(".status-failed").wait_for(timeout=240_000)
    assert [u for u in puts if "/blobs/" in u and "partNumber=1" in u] == []
    assert any("partNumber=2" in u for u in puts)
    assert page.locator(".lecture", has_text="Resumed upload").count() == 1
    p.shot("resume-2-failed")

    row.get_by_role("button", name="Retry").click()
    row.get_by_role("button", name="Retry").wait_for(state="detached", timeout=WAIT)  # queued
    row.locator(".status-failed").wait_for(timeout=240_000)  # the same bytes fail again
    page.evaluate("() => { window.confirm = () => true; }")
    row.get_by_role("button", name="Delete Resumed upload").click()
    row.wait_for(state="detached", timeout=WAIT)
    p.shot("resume-3-deleted")
    assert ada.get("/videos", params={"course_id": course["id"]}).json() == []
    assert p.csp_violations() == [] and p.errors == [] and p.dialogs == []


def tab_to(p: Page, text: str, limit: int = 25) -> None:
    """Press Tab until the focused element's text is `text` (a keyboard user's way there)."""
    for _ in range(limit):
        p.page.keyboard.press("Tab")
        if p.page.evaluate("() => document.activeElement.textContent.trim()") == text:
            return
    raise AssertionError(f"{text!r} cannot be reached with Tab")


def test_keyboard_only_sign_in_and_navigation(site: Site, new_page) -> None:
    p = new_page()
    page = p.page
    page.goto(site.url + "/")
    page.get_by_label("Username").wait_for()
    # The username field has focus on arrival; Enter submits.
    assert page.evaluate("() => document.activeElement.id") == "username"
    page.keyboard.type("sam")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Courses", exact=True).wait_for()
    # After a navigation the page heading has focus (screen readers announce the new page).
    page.wait_for_function("() => document.activeElement.id === 'page-heading'")
    tab_to(p, "Signals and Systems")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Signals and Systems").wait_for()
    page.wait_for_function("() => document.activeElement.id === 'page-heading'")
    p.shot("keyboard-1-course")
    tab_to(p, "Lecture 1: Sampling")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Lecture 1: Sampling").wait_for()
    page.wait_for_function("() => (document.querySelector('video') || {}).currentTime > 1",
                           timeout=WAIT)
    page.wait_for_function("() => document.activeElement.id === 'page-heading'")
    page.keyboard.press("k")
    page.wait_for_function("() => document.querySelector('video').paused")
    page.keyboard.press("m")
    page.wait_for_function("() => document.querySelector('video').muted")
    p.shot("keyboard-2-watch-paused")
    assert p.errors == [] and p.csp_violations() == []


def test_api_docs_render_offline_under_their_csp(site: Site, new_page) -> None:
    """/docs: Swagger UI from the server itself (no CDN), under `script-src 'self'`."""
    p = new_page()
    page = p.page
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url)
            if not r.url.startswith((site.url, "data:", "blob:")) else None)
    page.goto(site.url + "/docs")
    page.locator(".opblock").first.wait_for(timeout=WAIT)
    assert page.locator(".opblock").count() > 20  # every operation listed
    p.shot("docs")
    assert external == [] and p.errors == [] and p.csp_violations() == []


def test_instructor_adds_an_attachment_and_a_student_downloads_it(site: Site, new_page, tmp_path) -> None:
    """Slides go up from the course page with the uploads API the CLI uses (kind=attachment)."""
    slides = tmp_path / "week-1 slides.pdf"
    slides.write_bytes(b"%PDF-1.4\n% CourseCrafter test slides\n" + bytes(range(256)) * 40)
    p = new_page()
    page = p.page
    sign_in(p, site, "ada")
    page.goto(f"{site.url}/courses/{site.course_id}")
    page.get_by_role("heading", name="Signals and Systems", level=1).wait_for()
    assert page.get_by_text("No attachments yet.").is_visible()
    page.get_by_label("Attachment (PDF, slides, notes, spreadsheet, archive or image)").set_input_files(
        str(slides))
    page.get_by_label("Attachment title (optional)").fill("Week 1 slides")
    page.get_by_role("button", name="Add attachment").click()
    page.get_by_text("Added week-1 slides.pdf.").wait_for(timeout=WAIT)
    attachments = page.get_by_role("list", name="Attachments")
    attachments.get_by_role("link", name="Week 1 slides").wait_for()
    assert "(10 KB)" in attachments.inner_text()  # 10,277 bytes
    assert not page.get_by_text("No attachments yet.").is_visible()
    p.shot("attachment-1-added")
    ada = site.client("ada")
    stored = [v for v in ada.get("/videos", params={"course_id": site.course_id}).json()
              if v["kind"] == "attachment"]
    assert [(v["title"], v["content_type"], v["status"]) for v in stored] == [
        ("Week 1 slides", "application/pdf", "ready")]

    # The student sees it on the (published) course page and downloads the very bytes.
    student = new_page()
    sign_in(student, site, "sam")
    student.page.goto(f"{site.url}/courses/{site.course_id}")
    link = student.page.get_by_role("list", name="Attachments").get_by_role("link", name="Week 1 slides")
    link.wait_for()
    assert student.page.get_by_role("button", name="Add attachment").count() == 0
    student.shot("attachment-2-student")
    with student.page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "week-1 slides.pdf"
    assert open(download.value.path(), "rb").read() == slides.read_bytes()

    # The instructor deletes it: gone from the page and from the API.
    page.evaluate("() => { window.confirm = () => true; }")
    page.get_by_role("button", name="Delete Week 1 slides").click()
    attachments.get_by_role("link", name="Week 1 slides").wait_for(state="detached")
    page.get_by_text("No attachments yet.").wait_for()
    assert [v for v in ada.get("/videos", params={"course_id": site.course_id}).json()
            if v["kind"] == "attachment"] == []
    assert p.csp_violations() == [] and student.csp_violations() == []
    assert p.errors == [] and student.errors == [] and p.dialogs == []
