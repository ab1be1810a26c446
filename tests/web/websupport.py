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
from nginxsupport import Nginx

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
    """A short lecture-like clip: a still slide (text-like bars), a small moving test-pattern
    inset, a tone. Two rungs, 480p and 360p; the browsers play what lectures get: the still
    ladder (12 fps from 24, the source's mono AAC copied into every rung)."""
    from coursecrafter_worker.pipeline import find_ffmpeg

    bars = ",".join(f"drawbox=x=60:y={60 + 70 * i}:w={300 + 60 * i}:h=36:color=0x303030:t=fill"
                    for i in range(4))
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"color=c=0xf4f1ea:s={size}:d={seconds}:r=24",
         "-f", "lavfi", "-i", f"testsrc2=s=160x90:d={seconds}:r=24",
         "-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}",
         "-filter_complex", f"[0:v]{bars}[bg];[bg][1:v]overlay=x=W-w-20:y=H-h-20[v]",
         "-map", "[v]", "-map", "2:a",
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
    gateway: Nginx | None = None  # the nginx variant: every request goes through it

    @property
    def url(self) -> str:
        return self.gateway.url if self.gateway else self.server.url

    @property
    def tag(self) -> str:
        """A screenshot name prefix: empty for the direct site, "nginx-" through the gateway."""
        return "nginx-" if self.gateway else ""

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


def sign_in(p: Page, site: Site, username: str) -> None:
    page = p.page
    page.goto(site.url + "/")
    page.get_by_label("Username").wait_for()
    p.shot(f"{site.tag}signin-{username}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


# A page of another origin: hls.js (the very chunk the web app ships, from its build) plays the
# playback URL given in the fragment, after calling the API with a bearer token; what happened is
# written into data attributes of <body> (and shown, for the screenshots).
OTHER_ORIGIN_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Another origin</title>
<style>body{font:16px sans-serif;margin:1em} video{width:480px;background:#000}</style></head>
<body><h1>A page on another origin</h1>
<p id="origin"></p><p id="api">api: pending</p><p id="playback">playback: pending</p>
<video muted playsinline></video>
<script type="module" src="./play.js"></script></body></html>
"""

OTHER_ORIGIN_JS = """import Hls from "./hls.js";
const params = new URLSearchParams(location.hash.slice(1));
const say = (key, value) => {
  document.body.dataset[key] = value;
  document.getElementById(key).textContent = `${key}: ${value}`;
};
document.getElementById("origin").textContent = `origin: ${location.origin}`;
try {
  const r = await fetch(`${params.get("api")}/videos/${params.get("video")}`,
    { headers: { Authorization: `Bearer ${params.get("token")}` } });
  say("api", r.ok ? `ok ${(await r.json()).status}` : `status ${r.status}`);
} catch (e) {
  say("api", `refused (${e.name})`);
}
const video = document.querySelector("video");
const hls = new Hls();
hls.on(Hls.Events.ERROR, (_event, data) => { if (data.fatal) say("playback", `refused (${data.details})`); });
video.addEventListener("playing", () => say("playback", "playing"), { once: true });
hls.loadSource(params.get("playback"));
hls.attachMedia(video);
video.play().catch(() => {});
"""


def hls_chunk() -> Path:
    from coursecrafter_server import web

    return next((web.DIST / "assets").glob("hls-*.js"))


@dataclass
class StaticSite:
    """A directory served over HTTP on a free loopback port (another origin than the server's)."""

    root: Path

    def __post_init__(self) -> None:
        import functools
        import threading
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        class Quiet(SimpleHTTPRequestHandler):
            extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
            Quiet, directory=str(self.root)))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def other_origin_page(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(OTHER_ORIGIN_HTML)
    (root / "play.js").write_text(OTHER_ORIGIN_JS)
    shutil.copyfile(hls_chunk(), root / "hls.js")
    return root
