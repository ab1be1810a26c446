"""Helpers of the browser tests (tests/web): chromium, pages that record what must not happen,
generated clips, a live site."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from livesupport import LiveServer

PASSWORD = "correct horse battery"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
HOSTILE = "<img src=x onerror=alert(1)>"


def unavailable(reason: str) -> None:
    if os.environ.get("COURSECRAFTER_REQUIRE_SERVICES"):
        pytest.fail(f"COURSECRAFTER_REQUIRE_SERVICES is set, but the browser tests cannot run: {reason}",
                    pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    for candidate in (os.environ.get("COURSECRAFTER_TEST_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@dataclass
class Page:
    """A Playwright page that records what must not happen: dialogs, CSP violations, page errors."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def csp_violations(self) -> list[str]:
        return self.page.evaluate("() => window.__cspViolations || []")  # type: ignore[no-any-return]


CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def make_clip(path: Path, seconds: int = 10, size: str = "854x480") -> Path:
    """A short lecture-like clip (moving test pattern and a tone): two rungs, 480p and 360p."""
    from coursecrafter_worker.pipeline import find_ffmpeg

    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s={size}:d={seconds}:r=24",
         "-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "48k", "-shortest", str(path)],
        check=True, timeout=120,
    )
    return path


@dataclass
class Site:
    server: LiveServer
    clip: Path
    course_id: str = ""
    video_id: str = ""

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, username: str) -> httpx.Client:
        client = httpx.Client(base_url=f"{self.url}/api/v1", timeout=30)
        token = client.post("/auth/login", json={"username": username, "password": PASSWORD})
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return client

    def upload(self, client: httpx.Client, path: Path, course_id: str, title: str,
               content_type: str = "video/mp4") -> dict[str, Any]:
        data = path.read_bytes()
        started = client.post("/uploads", json={
            "filename": path.name, "size": len(data), "content_type": content_type,
            "course_id": course_id, "title": title})
        started.raise_for_status()
        upload = started.json()
        parts = []
        for part in upload["parts"]:
            n = part["part_number"]
            chunk = data[(n - 1) * upload["part_size"]:n * upload["part_size"]]
            put = httpx.put(part["url"], content=chunk, timeout=60)
            put.raise_for_status()
            parts.append({"part_number": n, "etag": put.headers["etag"]})
        done = client.post(f"/uploads/{upload['upload_id']}/complete", json={"parts": parts})
        done.raise_for_status()
        return done.json()  # type: ignore[no-any-return]

    def wait_ready(self, client: httpx.Client, video_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            video = client.get(f"/videos/{video_id}").json()
            if video["status"] in ("ready", "failed") or time.monotonic() > deadline:
                assert video["status"] == "ready", video
                return video  # type: ignore[no-any-return]
            time.sleep(0.5)
