"""Browser tests: Debian's chromium driven by Playwright (from PyPI; no browser download), against a
real `coursecrafter-server` with the built web app, on short clips generated with FFmpeg.

Locally the browser tests skip when Playwright, chromium or the built app (`make web`) is missing;
with COURSECRAFTER_REQUIRE_SERVICES set (CI) they fail instead."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from livesupport import BIN, free_port, start_live_server
from nginxsupport import nginx_path, start_gateway

from websupport import (
    CSP_PROBE,
    PASSWORD,
    SCREENSHOTS,
    Page,
    Site,
    StaticSite,
    chromium_path,
    make_clip,
    other_origin_page,
    unavailable,
)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install '.[dev]')")
    executable = chromium_path()
    if executable is None:
        unavailable("chromium is not installed (apt-get install -y chromium)")
    from coursecrafter_server import web

    if not (web.DIST / "index.html").exists():
        unavailable("the web app is not built (make web)")
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"],
        )
        yield browser
        browser.close()


def _page_in(browser, width: int = 1280, height: int = 800) -> Page:
    """A page in a fresh context of `browser` that records CSP violations, dialogs and errors."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(60_000)
    context.add_init_script(CSP_PROBE)  # an init script is not page script: CSP allows it
    page = Page(context.new_page())
    page.page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


@pytest.fixture
def new_page(browser) -> Iterator[Any]:
    pages: list[Page] = []

    def make(width: int = 1280, height: int = 800) -> Page:
        pages.append(_page_in(browser, width, height))
        return pages[-1]

    yield make
    for page in pages:
        page.page.context.close()


@pytest.fixture
def page_refusing_autoplay(browser) -> Iterator[Page]:
    """A page in a second Chromium that, as browsers do by default, plays no sound-bearing media
    before a user gesture on the page (the other tests' browser autoplays everything)."""
    strict = browser.browser_type.launch(
        executable_path=chromium_path(),
        args=["--autoplay-policy=document-user-activation-required", "--mute-audio"])
    try:
        yield _page_in(strict)
    finally:
        strict.close()


def populate(root, server, gateway=None, clip_seconds: int = 10, size: str = "854x480") -> Site:
    """An instructor ("ada"), a student ("sam") and a published course holding one ready lecture
    made from a generated 854x480 clip, on a live server (through `gateway` when given)."""
    admin = subprocess.run(
        [str(BIN / "coursecrafter-server"), "create-admin", "root", "--email",
         "root@example.edu", "--password-stdin"],
        check=False, input=PASSWORD + "\n", text=True, env=server.env, cwd=server.home,
        capture_output=True, timeout=60)
    assert admin.returncode == 0, admin.stderr
    site = Site(server, make_clip(root / "lecture-01.mp4", seconds=clip_seconds, size=size), gateway=gateway)
    api = httpx.Client(base_url=f"{site.url}/api/v1", timeout=30)
    assert api.post("/auth/register", json={
        "username": "ada", "email": "ada@example.edu", "password": PASSWORD}).status_code == 201
    root_client = site.client("root")
    assert root_client.post("/auth/register", json={
        "username": "sam", "email": "sam@example.edu", "password": PASSWORD,
        "role": "student"}).status_code == 201
    ada = site.client("ada")
    course = ada.post("/courses", json={"title": "Signals and Systems",
                                        "description": "Week 1: sampling."}).json()
    video = site.upload(ada, site.clip, course["id"], "Lecture 1: Sampling")
    site.wait_ready(ada, video["id"])
    assert ada.patch(f"/courses/{course['id']}", json={"published": True}).status_code == 200
    site.course_id, site.video_id = course["id"], video["id"]
    return site


# The sites are made once per session and shared by every module: each costs a server and a
# transcoded lecture (tens of seconds on a busy 2-core CI machine); tests add their own courses.
@pytest.fixture(scope="session")
def other_origins(tmp_path_factory: pytest.TempPathFactory, browser) -> Iterator[dict[str, StaticSite]]:
    """The same little player page on two other origins: "allowed" (in the servers'
    COURSECRAFTER_CORS_ORIGINS) and "refused" (not)."""
    root = other_origin_page(tmp_path_factory.mktemp("other-origin"))
    sites = {"allowed": StaticSite(root), "refused": StaticSite(root)}
    yield sites
    for static in sites.values():
        static.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, browser, other_origins) -> Iterator[Site]:
    """A live server reached directly (its public URL is its own address), populated as above."""
    root = tmp_path_factory.mktemp("web")
    server = start_live_server(root / "home", {
        "COURSECRAFTER_CORS_ORIGINS": other_origins["allowed"].url})
    try:
        yield populate(root, server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nginx_site(tmp_path_factory: pytest.TempPathFactory, browser, other_origins) -> Iterator[Site]:
    """The same behind the example NGINX gateway (deploy/nginx/) on loopback: the server's public
    URL is the gateway's, and it believes forwarded headers from 127.0.0.1 only."""
    if nginx_path() is None:
        unavailable("nginx is not installed (apt-get install -y nginx)")
    root = tmp_path_factory.mktemp("web-nginx")
    port = free_port()
    server = start_live_server(root / "home", {
        "COURSECRAFTER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "COURSECRAFTER_TRUSTED_PROXIES": "127.0.0.1",
        "COURSECRAFTER_CORS_ORIGINS": other_origins["allowed"].url})
    gateway = None
    try:
        gateway = start_gateway(root / "nginx", server.url, port)
        yield populate(root, server, gateway)
        # Every page and file went through the gateway, which is the server's public URL.
        assert "COURSECRAFTER_PUBLIC_URL is" not in server.log()
    finally:
        if gateway is not None:
            gateway.stop()
        server.stop()


@pytest.fixture(scope="module", params=["direct", "nginx"])
def any_site(request: pytest.FixtureRequest) -> Site:
    """The site reached directly, then through the NGINX gateway."""
    return request.getfixturevalue("site" if request.param == "direct" else "nginx_site")


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory):
    """What the instructor tests upload through the page: 4 s at 640x360, quick to transcode
    (the shared sites' lecture is 10 s at 854x480, for the quality menu)."""
    return make_clip(tmp_path_factory.mktemp("short-clip") / "recording.mp4", seconds=4,
                     size="640x360")


EXPIRING_TTL = 5  # s: COURSECRAFTER_PLAYBACK_URL_TTL's minimum; a token lives 5-6 s
EXPIRING_CLIP = 30  # s: at twice the speed, 15 s of playback: longer than a token lives


@pytest.fixture(scope="session")
def expiring_site(tmp_path_factory: pytest.TempPathFactory, browser) -> Iterator[Site]:
    """A server whose playback tokens live 5-6 s, with a 30 s lecture (480p and 360p): playing
    it outlasts the token. The lecture is transcoded in chunks (10 s target, two in-process
    transcoders), so the players also cross the chunk seams and use the chunked output's one
    audio rendition."""
    root = tmp_path_factory.mktemp("web-expiring")
    server = start_live_server(root / "home", {
        "COURSECRAFTER_PLAYBACK_URL_TTL": str(EXPIRING_TTL),
        "COURSECRAFTER_CHUNK_SECONDS": "10", "COURSECRAFTER_TRANSCODE_CONCURRENCY": "2"})
    try:
        site = populate(root, server, clip_seconds=EXPIRING_CLIP)
        video = site.client("ada").get(f"/videos/{site.video_id}").json()
        master = httpx.get(httpx.URL(site.url).join(video["playback_url"]), timeout=30).text
        assert "#EXT-X-MEDIA:TYPE=AUDIO" in master, master  # the chunked output's audio rendition
        yield site
    finally:
        server.stop()
