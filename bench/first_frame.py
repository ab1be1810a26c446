"""First frame in a browser: the web app's watch page against a bare page playing the same HLS files
straight from NGINX, in the same run; and the JavaScript each loads (gzip).

    PYTHONPATH=$PWD/src:$PWD/tests .venv/bin/python bench/first_frame.py [--rounds 7] [--json PATH]

Needs the built web app (`make web`), Debian's chromium and nginx (both run as this script's own
processes, in a temp dir). One embedded `coursecrafter-server` transcodes a generated 10 s 854x480
lecture (480p + 360p). One NGINX process serves, on two loopback ports:
- the example gateway (deploy/nginx/) in front of that server (its COURSECRAFTER_PUBLIC_URL);
- a bare static site: a 20-line page (no framework) with the same hls.js chunk the web app ships,
  and the video's HLS files straight from the server's blob directory (`alias`).
Variants, each with its browser's own HLS ("native", Chromium 141+) and with hls.js:
- `watch-nginx` /watch/{id} through the gateway (the server's public URL: a page served from the
  backend's own address would be another origin than the URLs the server hands out);
- `bare-nginx` the static page playing `.../hls/master.m3u8` from NGINX.
With hls.js, the page's main-thread busy time (CDP `Performance.getMetrics` TaskDuration) from
navigation until the video has played 3 s is recorded too.
Every measurement is a fresh browser context (cold HTTP cache), rounds interleave the variants.
The watch page's user is already signed in (the session and viewer cookies are set in the
context through `POST /api/v1/session` before the navigation), so the page comes with its viewer,
lecture and `<video>` in its HTML (docs/rest.md "Watch pages"); its time includes the page and its
script from the server, and the playlists and segments through gateway and server. The bare
page's `<video>` has the browser's controls from the start; the watch page's gets them (and its
poster) at its first frame (player.js says why).
Time = `performance.mark` at the first presented frame (requestVideoFrameCallback), from the
navigation's start; beside it, the medians of when the script, the session answer and the first
segment ended, when the page set the element's `src` and when the first playlist request started
(`phases_ms_median`). Nothing of Playwright's runs in the page before its first frame (an init
script says "first frame" on the console): its first evaluation costs the page's main thread
~18 ms, and used to land on the watch page's critical path only (docs/benchmarks.md).
`--trace DIR` writes a Chromium performance trace of each variant's round 1; `bench/trace_gap.py`
lists its requests, marks and main-thread tasks. `--baseline-src SRC` adds `watch-base`: the watch
page of another source tree (e.g. `git archive <commit> src`, its web app built), in the same run.
JavaScript: every script response of the page, gzip -9 each, summed; beside it the hls.js chunk
alone."""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "web")]

from livesupport import free_port, start_live_server  # noqa: E402
from nginxsupport import render_gateway, start_nginx  # noqa: E402

PASSWORD = "correct horse battery"

BARE_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bare</title></head>
<body><video muted playsinline controls width="854"></video>
<script type="module" src="./bare.js"></script></body></html>
"""
BARE_JS = """const video = document.querySelector("video");
const src = new URLSearchParams(location.search).get("src");
const hlsjs = new URLSearchParams(location.search).get("player") === "hlsjs";
video.requestVideoFrameCallback(() => performance.mark("coursecrafter:first-frame"));
if (!hlsjs && video.canPlayType("application/vnd.apple.mpegurl")) {
  video.src = src;
} else {
  const { default: Hls } = await import("./hls.js");
  const hls = new Hls();
  hls.loadSource(src);
  hls.attachMedia(video);
}
video.play().catch(() => {});
"""
PAGE_PROBE = """(() => {
  const d = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, "src");
  Object.defineProperty(HTMLMediaElement.prototype, "src", { configurable: true, get: d.get,
    set(v) { if (!performance.getEntriesByName("bench:src-set").length)
               performance.mark("bench:src-set");
             d.set.call(this, v); } });
  new PerformanceObserver((list, observer) => {
    if (list.getEntriesByName("coursecrafter:first-frame").length) {
      observer.disconnect();
      console.log("bench:first-frame");
    }
  }).observe({ type: "mark" });
})();"""
TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline",
                    "blink.user_timing", "loading", "blink.resource", "netlog", "media",
                    "v8.execute", "toplevel"]


def start_baseline(tmp: Path, server, src: Path, port: int):
    """A second server on a copy of the first one's home (same video id, keys and blobs), run from
    the package in `src`, its public URL the second gateway at `port`."""
    import os
    import shutil
    import sqlite3

    from livesupport import start_live_server

    home = tmp / "home-base"
    shutil.copytree(server.home, home, ignore=shutil.ignore_patterns("coursecrafter.sqlite3*",
                                                                     "server.log"))
    with sqlite3.connect(server.home / "coursecrafter.sqlite3") as live, \
            sqlite3.connect(home / "coursecrafter.sqlite3") as copy:
        live.backup(copy)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{src.resolve()}" + (f":{before}" if before else "")
    try:
        return start_live_server(home, {
            "COURSECRAFTER_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "COURSECRAFTER_TRUSTED_PROXIES": "127.0.0.1",
            "COURSECRAFTER_LOGIN_RATE_LIMIT_ADDRESS": "100000/minute"})
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--gateway-cache", action="store_true",
                        help="an experiment, not the example config: the gateway caches /assets/"
                             " and /api/v1/play/ answers (as their Cache-Control allows; warm"
                             " after round 0)")
    parser.add_argument("--timeline", action="store_true",
                        help="print each page's resource timings (start, end ms) of round 1")
    parser.add_argument("--baseline-src", type=Path, metavar="SRC",
                        help="also measure `watch-base`: the same watch page served by a second"
                             " server run from SRC (e.g. `git archive <commit> src`, its web app"
                             " built), on a copy of the first one's data, behind a second gateway:"
                             " an older app and this one in the same run")
    parser.add_argument("--trace", type=Path, metavar="DIR",
                        help="write a Chromium performance trace of each variant's round 1 there"
                             " (Perfetto or chrome://tracing; bench/trace_gap.py sums one up)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from coursecrafter_server import web
    from websupport import chromium_path, hls_chunk, make_clip

    tmp = Path(tempfile.mkdtemp(prefix="cc-first-frame-"))
    gateway_port, bare_port = free_port(), free_port()
    server = start_live_server(tmp / "home", {
        "COURSECRAFTER_PUBLIC_URL": f"http://127.0.0.1:{gateway_port}",
        "COURSECRAFTER_TRUSTED_PROXIES": "127.0.0.1",
        # Every measurement signs in afresh (a new context); the default 30/minute would refuse.
        "COURSECRAFTER_LOGIN_RATE_LIMIT_ADDRESS": "100000/minute"})
    nginx = base_server = None
    try:
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=60)
        assert api.post("/auth/register", json={"username": "ada", "email": "ada@example.edu",
                                                "password": PASSWORD}).status_code == 201
        login = api.post("/auth/login", json={"username": "ada", "password": PASSWORD})
        api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        course = api.post("/courses", json={"title": "Bench"}).json()
        clip = make_clip(tmp / "clip.mp4")
        data = clip.read_bytes()
        upload = api.post("/uploads", json={"filename": "clip.mp4", "size": len(data),
                                            "content_type": "video/mp4",
                                            "course_id": course["id"], "title": "Bench"}).json()
        parts = []
        for part in upload["parts"]:
            n = part["part_number"]
            body = data[(n - 1) * upload["part_size"]:n * upload["part_size"]]
            put = httpx.put(part["url"].replace(f"127.0.0.1:{gateway_port}",
                                                server.url.split("//")[1]), content=body, timeout=60)
            parts.append({"part_number": n, "etag": put.headers["etag"]})
        video = api.post(f"/uploads/{upload['upload_id']}/complete", json={"parts": parts}).json()
        deadline = time.monotonic() + 300
        while api.get(f"/videos/{video['id']}").json()["status"] != "ready":
            assert time.monotonic() < deadline, "the clip did not become ready"
            time.sleep(0.5)

        site = tmp / "bare"
        site.mkdir()
        (site / "index.html").write_text(BARE_HTML)
        (site / "bare.js").write_text(BARE_JS)
        (site / "hls.js").write_bytes(hls_chunk().read_bytes())
        hls_dir = tmp / "home" / "blobs" / "objects" / "videos" / video["id"] / "hls"
        assert (hls_dir / "master.m3u8").exists(), hls_dir
        upstream = server.url.split("//")[1]
        bare_server = f"""
server {{
    listen 127.0.0.1:{bare_port};
    location / {{ root {site}; }}
    location /hls/ {{ alias {hls_dir}/; types {{ application/vnd.apple.mpegurl m3u8;
        video/mp2t ts; }} }}
}}"""
        gateway_conf = render_gateway(upstream, "127.0.0.1", f"127.0.0.1:{gateway_port}")
        if args.gateway_cache:
            # Playlists say `no-cache` (NGINX then stores nothing): they still reach the server.
            cached = "proxy_pass http://coursecrafter; proxy_cache cc; proxy_cache_revalidate on;"
            gateway_conf = (f"proxy_cache_path {tmp}/nginx-cache keys_zone=cc:1m;\n"
                            + gateway_conf.replace("    location / {", f"""
    location /assets/ {{ {cached} }}
    location /api/v1/play/ {{ {cached} }}
    location / {{""", 1))
        if args.baseline_src:
            base_port = free_port()
            base_server = start_baseline(tmp, server, args.baseline_src, base_port)
            gateway_conf += render_gateway(base_server.url.split("//")[1], "127.0.0.1",
                                           f"127.0.0.1:{base_port}").replace(
                "upstream coursecrafter", "upstream coursecrafter_base").replace(
                "http://coursecrafter;", "http://coursecrafter_base;")
        nginx = start_nginx(tmp / "nginx", gateway_conf + bare_server, gateway_port)
        gateway, bare = f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{bare_port}"
        # Self-registration made ada an instructor: she may watch her own (unpublished) lecture.
        urls = {
            "watch-nginx": f"{gateway}/watch/{video['id']}",
            "bare-nginx": f"{bare}/?src={bare}/hls/master.m3u8",
        }
        if base_server is not None:
            urls["watch-base"] = f"http://127.0.0.1:{base_port}/watch/{video['id']}"
        results: dict[str, list[float]] = {}
        busy: dict[str, list[float]] = {}  # main-thread task time until 3 s played (hls.js)
        phases: dict[str, dict[str, list[float]]] = {}
        scripts: dict[str, dict[str, int]] = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(),
                args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"])
            variants = [(name, engine) for engine in ("native", "hlsjs")
                        for name in ("watch-nginx", "watch-base", "bare-nginx") if name in urls]
            for round_ in range(args.rounds + 1):  # round 0 warms up the machine, not counted
                for name, engine in variants:
                    url = urls[name]
                    key = f"{name} {engine}"
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    if name.startswith("watch"):
                        origin = url.split("/watch/")[0]
                        signed = context.request.post(
                            f"{origin}/api/v1/session", headers={"X-CourseCrafter-CSRF": "1",
                                                                 "Origin": origin},
                            data={"username": "ada", "password": PASSWORD})
                        assert signed.ok, signed.text()
                        # What the app keeps after a sign-in: "a session cookie exists".
                        context.add_init_script(
                            "localStorage.setItem('coursecrafter.session', '1')")
                    # A mark when the page hands the element its source (`src` set: the
                    # browser's HLS, or hls.js's MediaSource blob URL): splits "session answer ->
                    # first playlist request" into the page's own part and the browser's; and
                    # "first frame" said on the console.
                    context.add_init_script(PAGE_PROBE)
                    page = context.new_page()
                    tracing = args.trace is not None and round_ == 1
                    if tracing:
                        args.trace.mkdir(parents=True, exist_ok=True)
                        browser.start_tracing(page=page, categories=TRACE_CATEGORIES, path=str(
                            args.trace / f"{key.replace(' ', '-')}.json"))
                    bodies: dict[str, int] = {}
                    page.on("response", lambda r, b=bodies: b.__setitem__(
                        r.url.rsplit("/", 1)[-1], len(gzip.compress(r.body(), 9)))
                        if r.request.resource_type == "script" and r.ok else None)
                    sep = "&" if "?" in url else "?"
                    cdp = context.new_cdp_session(page)
                    cdp.send("Performance.enable")
                    # No Playwright evaluation in the page before its first frame: the first one
                    # compiles Playwright's injected script on the page's main thread (18 ms in a
                    # trace), and `goto` returns at the load event, which the watch page reaches
                    # before its <video> exists (the bare page's <video> holds its load event
                    # back until the first frame): a `wait_for_function` there landed on the watch
                    # page's critical path only. The page says "first frame" on the console.
                    try:
                        with page.expect_console_message(
                                lambda m: m.text == "bench:first-frame", timeout=120_000):
                            page.goto(url + f"{sep}player={engine}", wait_until="commit")
                    except Exception:
                        page.screenshot(path=str(tmp / "stuck.png"))
                        print(f"{key}: no first frame; screenshot {tmp / 'stuck.png'}",
                              file=sys.stderr)
                        raise
                    ms = page.evaluate("() => performance.getEntriesByName("
                                       "'coursecrafter:first-frame')[0].startTime")
                    if tracing:
                        browser.stop_tracing()
                    print(f"round {round_} {key}: {ms:.0f} ms", file=sys.stderr)
                    if args.timeline and round_ == 1:
                        for entry in page.evaluate(
                                "() => performance.getEntriesByType('resource').map(e =>"
                                " [e.name.split('/').slice(-2).join('/').slice(0, 40),"
                                " Math.round(e.startTime), Math.round(e.responseEnd)])"):
                            print(f"    {entry[1]:>6} {entry[2]:>6} {entry[0]}", file=sys.stderr)
                    # Where the time went: when the app's script, the session answer, the first
                    # playlist request and the first segment ended (ms from navigation).
                    marks = page.evaluate("""() => {
                        const r = performance.getEntriesByType('resource');
                        const end = (re) => { const e = r.find(x => re.test(x.name));
                                              return e ? Math.round(e.responseEnd) : null; };
                        const start = (re) => { const e = r.find(x => re.test(x.name));
                                                return e ? Math.round(e.startTime) : null; };
                        const src = performance.getEntriesByName('bench:src-set')[0];
                        return {script: end(/(app-[^/]*|bare)\\.js$/),
                                session: end(/session\\/refresh$/),
                                src_set: src ? Math.round(src.startTime) : null,
                                master_start: start(/master\\.m3u8$/),
                                first_segment: end(/\\.ts$/)}; }""")
                    if round_:
                        for mark, value in marks.items():
                            if value is not None:
                                phases.setdefault(key, {}).setdefault(mark, []).append(value)
                    if engine != "native":
                        page.wait_for_function(
                            "() => document.querySelector('video').currentTime >= 3",
                            timeout=120_000)
                        metrics = {m["name"]: m["value"] for m in
                                   cdp.send("Performance.getMetrics")["metrics"]}
                        if round_:
                            busy.setdefault(key, []).append(metrics["TaskDuration"] * 1000)
                    if round_:
                        results.setdefault(key, []).append(ms)
                    scripts[key] = dict(bodies)
                    context.close()
            browser.close()
        hls_gz = len(gzip.compress(hls_chunk().read_bytes(), 9))
        app_gz = {p.name: len(gzip.compress(p.read_bytes(), 9))
                  for p in (web.DIST / "assets").glob("app-*.js")}
        report = {
            "rounds": args.rounds,
            "first_frame_ms": {k: {"median": round(statistics.median(v)), "min": round(min(v)),
                                   "max": round(max(v))} for k, v in results.items()},
            "phases_ms_median": {k: {m: round(statistics.median(v)) for m, v in marks.items()}
                                 for k, marks in phases.items()},
            "main_thread_ms_until_3s_played": {k: {"median": round(statistics.median(v)),
                                                   "min": round(min(v)), "max": round(max(v))}
                                               for k, v in busy.items()},
            "js_gzip": {k: {"files": v, "total": sum(v.values())} for k, v in scripts.items()},
            "hlsjs_alone_gzip": hls_gz,
            "app_js_gzip": app_gz,
            "load": Path("/proc/loadavg").read_text().split()[:3],
            "chromium": subprocess.run([chromium_path(), "--version"], capture_output=True,
                                       text=True, check=False).stdout.strip(),
        }
        for name, engine in variants:
            if name != "bare-nginx" and f"{name} {engine}" in report["first_frame_ms"]:
                bare_ms = report["first_frame_ms"][f"bare-nginx {engine}"]["median"]
                report["first_frame_ms"][f"{name} {engine}"]["ratio_to_bare"] = round(
                    report["first_frame_ms"][f"{name} {engine}"]["median"] / bare_ms, 2)
        print(json.dumps(report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
    finally:
        if nginx is not None:
            nginx.stop()
        if base_server is not None:
            base_server.stop()
        server.stop()


if __name__ == "__main__":
    main()
