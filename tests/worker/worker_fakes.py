"""Test doubles for the worker: a fake `transcode` writing a tiny HLS tree, a recording notifier,
a webhook HTTP server, and RabbitMQ helpers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from coursecrafter_worker import signing
from coursecrafter_worker.messages import JobEvent, Rendition
from coursecrafter_worker.notifier import DeliveryFailed
from coursecrafter_worker.transcoding import MediaError, TranscodeError, TranscodeResult  # noqa: F401


# The port's own types (coursecrafter_worker.transcoding): the runner checks them by type.
FakeResult = TranscodeResult


def write_hls_tree(out_dir: Path, heights: tuple[int, ...], *, poster: bool, audio: bool) -> None:
    hls = out_dir / "hls"
    master = ["#EXTM3U"]
    for h in heights:
        d = hls / f"{h}p"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(2):
            (d / f"seg_{i:05d}.ts").write_bytes(b"\x47" * 188 * (i + 1))
        (d / "index.m3u8").write_text("#EXTM3U\n#EXTINF:2,\nseg_00000.ts\n#EXTINF:2,\nseg_00001.ts\n")
        master.append(f"#EXT-X-STREAM-INF:BANDWIDTH={h * 2000}\n{h}p/index.m3u8")
    if audio:
        d = hls / "audio"
        d.mkdir(parents=True, exist_ok=True)
        (d / "seg_00000.ts").write_bytes(b"\x47" * 188)
        (d / "index.m3u8").write_text("#EXTM3U\n#EXTINF:2,\nseg_00000.ts\n")
    hls.mkdir(parents=True, exist_ok=True)
    (hls / "master.m3u8").write_text("\n".join(master) + "\n")
    if poster:
        (out_dir / "poster.jpg").write_bytes(b"\xff\xd8\xff\xe0fake-jpeg")


class FakeTranscode:
    """Calls on_progress like the pipeline does, optionally slowly or failing, then writes a tiny
    HLS tree. `hang=True` keeps "transcoding" (reporting progress) until the job is cancelled."""

    def __init__(
        self,
        *,
        heights: tuple[int, ...] = (360,),
        steps: int = 5,
        delay: float = 0.0,
        silent_delay: float = 0.0,
        error: Exception | None = None,
        poster: bool = True,
        hang: bool = False,
    ) -> None:
        self.heights, self.steps, self.delay, self.silent_delay = heights, steps, delay, silent_delay
        self.error, self.poster, self.hang = error, poster, hang
        self.calls: list[dict[str, object]] = []
        self.entered = threading.Event()

    def __call__(self, source: Path, out_dir: Path, *, on_progress=None, timeout=None,
                 preset: str = "veryfast"):
        self.calls.append({"source": source.read_bytes(), "out_dir": out_dir, "timeout": timeout})
        self.entered.set()
        report = on_progress or (lambda phase, pct: None)
        report("probing", 0)
        report("probing", 100)
        time.sleep(self.silent_delay)  # a long FFmpeg stretch without any progress line
        while self.hang:
            report("transcoding", 1)
            time.sleep(0.02)
        for i in range(self.steps + 1):
            report("transcoding", i * 100 // self.steps)
            if self.delay:
                time.sleep(self.delay / self.steps)
        if self.error is not None:
            raise self.error
        write_hls_tree(out_dir, self.heights, poster=self.poster, audio=True)
        h = max(self.heights)
        return FakeResult(
            duration=12.5, width=h * 16 // 9, height=h, has_video=True, has_audio=True,
            renditions=[Rendition(height=x, width=x * 16 // 9, bitrate=x * 2000,
                                  playlist=f"hls/{x}p/index.m3u8") for x in self.heights],
            poster="poster.jpg" if self.poster else None,
        )


class RecordingNotifier:
    """The notifier port, recording events. `fail` maps an event type to the exception its
    (essential) send raises; `on_send` sees every event before it is recorded."""

    def __init__(self, *, fail: dict[str, Exception] | None = None,
                 on_send: Callable[[JobEvent], None] | None = None) -> None:
        self.fail = fail or {}
        self.on_send = on_send
        self.done_jobs: set[str] = set()
        self.stale_types: set[str] = set()
        self.events: list[JobEvent] = []
        self.essential: list[bool] = []
        self.times: list[float] = []
        self._lock = threading.Lock()

    def send(self, callback_url: str, event: JobEvent, *, essential: bool,
             cancel: threading.Event | None = None) -> str | None:
        """Answers like the server's job service: a job that completed is `stale` afterwards;
        `stale_types` forces that verdict for some event types."""
        if self.on_send is not None:
            self.on_send(event)
        if essential and event.type in self.fail:
            raise self.fail[event.type]
        with self._lock:
            self.events.append(event)
            self.essential.append(essential)
            self.times.append(time.monotonic())
            if event.job_id in self.done_jobs or event.type in self.stale_types:
                return "stale"
            if event.type == "completed":
                self.done_jobs.add(event.job_id)
            return "applied"

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


def delivery_failed() -> DeliveryFailed:
    return DeliveryFailed("server unreachable for 300 s")


class WebhookServer:
    """A real HTTP server standing in for the API's webhook: verifies signatures, records events,
    answers with `status` (settable)."""

    def __init__(self, secret: bytes, status: int = 200) -> None:
        self.secret = secret
        self.status = status
        self.events: list[JobEvent] = []
        self.requests = 0
        self.bad_signatures = 0
        self.got_request = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests += 1
                try:
                    signing.verify(outer.secret, self.headers.get(signing.HEADER), body)
                except signing.SignatureError:
                    outer.bad_signatures += 1
                    self._answer(401)
                    return
                if outer.status < 300:
                    outer.events.append(JobEvent.from_json(body))
                outer.got_request.set()
                self._answer(outer.status)

            def _answer(self, status: int) -> None:
                payload = json.dumps({"status": "ok" if status < 300 else "error"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/internal/jobs/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass
class RunningConsumer:
    """`queue.consume` in a background thread."""

    queue: object
    handler: Callable
    concurrency: int = 1
    stop: threading.Event = field(default_factory=threading.Event)
    error: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        def run() -> None:
            try:
                self.queue.consume(self.handler, concurrency=self.concurrency, stop=self.stop)
            except BaseException as exc:  # surfaced by the test
                self.error.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def shutdown(self, timeout: float = 20.0) -> None:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "consumer did not stop"
        assert not self.error, self.error
