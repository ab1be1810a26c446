"""`make demo`: the embedded default end to end, with nothing but Python installed.

Starts `coursecrafter-server` on a free loopback port with its data in .demo/, generates a short
lecture-like clip with FFmpeg, then drives the real `coursecrafter` command: register and log in a
demo instructor, create a course, upload the clip and wait until it is playable, print the
playback URL, read the master playlist back through it, and end with the watch page's URL. Run in a
terminal, it keeps the server up (for the browser) until Ctrl-C; without one it exits.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from coursecrafter_worker.pipeline import find_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
# DEMO_DIR and DEMO_CLIP_SECONDS let the test run the demo in a temporary folder with a short clip.
DEMO = Path(os.environ.get("DEMO_DIR") or ROOT / ".demo")
CLIP_SECONDS = int(os.environ.get("DEMO_CLIP_SECONDS") or 12)
BIN = Path(sys.executable).parent
PASSWORD = "demo lecture 2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"demo: the server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("demo: the server did not become healthy in time")


def cli(env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True,
        capture: bool = False, capture_stderr: bool = False) -> subprocess.CompletedProcess:
    print(f"$ coursecrafter {' '.join(args)}", flush=True)
    done = subprocess.run([str(BIN / "coursecrafter"), *args], input=stdin, text=True, env=env,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture_stderr else None)
    if check and done.returncode != 0:
        raise SystemExit(f"demo: `coursecrafter {args[0]}` exited with {done.returncode}")
    return done


def make_lecture_clip(path: Path, seconds: int = CLIP_SECONDS) -> None:
    """A slide-like still with a moving pointer and a tone: what a lecture looks like to FFmpeg."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = (
        f"color=c=0xf4f1e8:s=1280x720:d={seconds}:r=30[bg];"
        f"testsrc2=s=320x180:d={seconds}:r=30[fig];"
        "[bg][fig]overlay=x='80+mod(t*40,800)':y=420[v]"
    )
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
         "-filter_complex", graph, "-f", "lavfi", "-i", f"sine=frequency=220:duration={seconds}",
         "-map", "[v]", "-map", "0:a", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt",
         "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )


def main() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The embedded default, whatever this shell has set: no broker, store or storage URL of a
    # real deployment leaks in (and nothing of theirs is touched).
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")},
        "COURSECRAFTER_HOME": str(DEMO / "home"),
        "COURSECRAFTER_CONFIG_DIR": str(DEMO / "config"),
        "COURSECRAFTER_PUBLIC_URL": url,
        "COURSECRAFTER_API_URL": url,
        "COURSECRAFTER_CREDENTIAL_STORE": "file",
    }
    print(f"demo: starting coursecrafter-server on {url} (data in {DEMO})", flush=True)
    DEMO.mkdir(parents=True, exist_ok=True)  # its cwd, so no `.env` of this checkout is read
    server = subprocess.Popen(
        [str(BIN / "coursecrafter-server"), "--port", str(port), "--log-level", "warning"], env=env,
        cwd=DEMO,
    )
    try:
        wait_healthy(url, server)
        registered = cli(
            env, "register", "--username", "demo", "--email", "demo@example.edu",
            "--password-stdin", stdin=PASSWORD + "\n", check=False, capture_stderr=True,
        )
        if registered.returncode == 1 and "HTTP 409" in registered.stderr:
            # A second run: .demo/ keeps the account. Not an error, so no "error:" line.
            print("demo: the demo account exists from an earlier run; logging in", flush=True)
        elif registered.returncode != 0:
            sys.stderr.write(registered.stderr)
            raise SystemExit(f"demo: register exited with {registered.returncode}")
        cli(env, "login", "--username", "demo", "--password-stdin", stdin=PASSWORD + "\n")
        cli(env, "whoami")
        clip = DEMO / "lecture-01.mp4"
        make_lecture_clip(clip)
        course = json.loads(cli(env, "courses", "create", "Demo: Algorithms 101", "--json",
                                capture=True).stdout)
        video = json.loads(cli(env, "upload", str(clip), "--course", course["id"], "--title",
                               "Lecture 1", "--wait", "--json", capture=True).stdout)
        print(f"demo: {video['title']} is {video['status']}: {video['duration']:.1f} s, "
              f"renditions {[r['height'] for r in video['renditions']]}", flush=True)
        print(f"demo: playback URL (HLS, expires): {video['playback_url']}", flush=True)
        master = httpx.get(video["playback_url"], timeout=10)
        master.raise_for_status()
        print("demo: master playlist:\n" + master.text, flush=True)
        cli(env, "logout")
        watch = f"{url}/watch/{video['id']}"
        if sys.stdin.isatty():
            print("demo: the server keeps running for the browser; Ctrl-C stops it", flush=True)
            print(f"demo: watch page (sign in as demo / {PASSWORD}): {watch}", flush=True)
            try:
                server.wait()
            except KeyboardInterrupt:
                print("\ndemo: stopping", flush=True)
        else:
            print("demo: done", flush=True)
            print(f"demo: watch page (sign in as demo / {PASSWORD}): {watch}", flush=True)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=15)


if __name__ == "__main__":
    main()
