"""Playable early: time from upload complete to `playable` and to `ready`, through the embedded
server (SQLite, local storage, one in-process transcoder), for a browser-ready source (remux
path) and a WebM VP9/Opus one (fast rung path).

    .venv/bin/python bench/playable_early.py [--seconds 60] [--poll 0.1] [--keep DIR]

Sources (lavfi, generated once into the work dir): `--seconds` of 1080p30 testsrc2 + a 440 Hz
sine, (a) H.264 (x264 veryfast, GOP 2 s) + AAC in MP4, (b) VP9 (libvpx realtime, cpu-used 8) +
Opus in WebM. Each is uploaded with the SDK (`Client.upload`, which returns once the upload is
completed: t0), then `GET /videos/{id}` every `--poll` s: the first record with `playable`
true, and the first with `status` ready. Also reported: the machine's load average, since
the numbers depend on it (a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_sources(work: Path, seconds: int) -> dict[str, Path]:
    from coursecrafter_worker.pipeline import find_ffmpeg

    ffmpeg = find_ffmpeg()
    lavfi = ["-f", "lavfi", "-i", f"testsrc2=s=1920x1080:r=30:d={seconds}",
             "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    out = {"h264_aac.mp4": ["-c:v", "libx264", "-preset", "veryfast", "-g", "60",
                            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"],
           "vp9_opus.webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                             "-b:v", "3M", "-row-mt", "1", "-c:a", "libopus"]}
    paths = {}
    for name, codec in out.items():
        path = work / name
        if not path.exists():
            print(f"generating {name} ...", file=sys.stderr, flush=True)
            subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *lavfi, *codec,
                            "-shortest", str(path)], check=True)
        paths[name] = path
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cc-bench-playable-"))
    work.mkdir(parents=True, exist_ok=True)
    sources = make_sources(work, args.seconds)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")},
           "COURSECRAFTER_HOME": str(work / "home"), "COURSECRAFTER_PUBLIC_URL": url}
    shutil.rmtree(work / "home", ignore_errors=True)
    log = open(work / "server.log", "wb")
    server = subprocess.Popen([str(BIN / "coursecrafter-server"), "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        from coursecrafter_cli import Client, MemoryCredentialStore

        client = Client(url, credential_store=MemoryCredentialStore(), timeout=60)
        client.register("bench", "bench@example.edu", "lecture hall 42")
        client.login("bench", "lecture hall 42")
        rows = []
        for name, path in sources.items():
            video = client.upload(path, title=name, resume=False)
            t0 = time.monotonic()
            load = os.getloadavg()[0]
            playable_at = ready_at = None
            status_at_playable = None
            while ready_at is None:
                record = client.get_video(video["id"])
                now = time.monotonic() - t0
                if record.get("playable") and playable_at is None:
                    playable_at, status_at_playable = now, record["status"]
                if record["status"] == "ready":
                    ready_at = now
                elif record["status"] == "failed":
                    raise RuntimeError(f"{name} failed: {record}")
                time.sleep(args.poll)
            rows.append((name, path.stat().st_size / 1e6, playable_at, status_at_playable,
                         ready_at, load))
        print(f"{'source':16} {'MB':>6} {'playable s':>11} {'(status)':>12} {'ready s':>8} "
              f"{'load1':>6}")
        for name, mb, p, st, r, load in rows:
            print(f"{name:16} {mb:6.1f} {p:11.2f} {st:>12} {r:8.2f} {load:6.1f}")
        early = [line for line in (work / "server.log").read_text(errors="replace").splitlines()
                 if "early pass:" in line]
        print("\n".join(early))
        client.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
