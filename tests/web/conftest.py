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
from livesupport import BIN, start_live_server

from websupport import (
    CSP_PROBE,
    PASSWORD,
    SCREENSHOTS,
    Page,
    Site,
    chromium_path,
    make_clip,
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


@pytest.fixture
def new_page(browser) -> Iterator[Any]:
    contexts = []

    def make(width: int = 1280, height: int = 800) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(60_000)
        context.add_init_script(CSP_PROBE)  # an init script is not page script: CSP allows it
        contexts.append(context)
        page = Page(context.new_page())
        page.page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.page.on("pageerror", lambda e: page.errors.append(str(e)))
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser) -> Iterator[Site]:
    """A live server with an instructor ("ada"), a student ("sam") and a published course holding
    one ready lecture made from a generated 10 s 854x480 clip."""
    root = tmp_path_factory.mktemp("web")
    server = start_live_server(root / "home")
    try:
        admin = subprocess.run(
            [str(BIN / "coursecrafter-server"), "create-admin", "root", "--email",
             "root@example.edu", "--password-stdin"],
            check=False, input=PASSWORD + "\n", text=True, env=server.env, cwd=server.home,
            capture_output=True, timeout=60)
        assert admin.returncode == 0, admin.stderr
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
        assert api.post("/auth/register", json={
            "username": "ada", "email": "ada@example.edu", "password": PASSWORD}).status_code == 201
        site = Site(server, make_clip(root / "lecture-01.mp4"))
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
        yield site
    finally:
        server.stop()
