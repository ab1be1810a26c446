"""Time to playable: one long 1080p lecture from `coursecrafter upload` to `ready`, and where the
time goes, against the floors of the same machine.

    .venv/bin/python bench/time_to_playable.py [--minutes 10] [--quick] [--poll 0.2] [--json PATH]
        [--keep DIR] [--wait-quiet S] [--material lecture|webm|legacy] [--ssim-seconds S] [--no-today]
        [--workers N]

Source (`--material`, default `lecture`): `transcode_ladder.make_lecture()` (1080p30 slides that
change every 20-60 s, a 384x216 talking-head inset under camera noise, a pointer, a voice-like
tone; x264 veryfast CRF 18 + AAC), the issue's lecture-like material; `legacy` is issue 5's
`transcode_ladder.make_source()` (held testsrc2 frames, a 440 Hz tone). `--minutes` long
(default 10; `--quick` = 1), generated once and cached under bench/results/sources/. It is read
once before the run so that every reader below finds it in the page cache. `--repeat-minute`
makes a long lecture by repeating the 1-minute one (stream copy): generating 10 minutes costs
~14 CPU min, too slow on a shared machine.

Stack: the scale-out setup of bench/worker_throughput.py (a RabbitMQ vhost of our own, one
`coursecrafter-server` with `COURSECRAFTER_BROKER_URL` and no in-process transcoders, local
`file://` storage, ONE `coursecrafter-worker --concurrency 1`, already consuming). The user is
registered and logged in with the CLI beforehand (file credential store in a temp dir).

Measured, all on one wall clock (epoch seconds):
- t0: `coursecrafter upload FILE --json` is spawned (the real console script: start-up,
  SHA-256 of the file, parallel parts to the pre-signed URLs, complete); the upload phase ends
  when the server logs "upload ... complete: video V is uploaded" (ms timestamp; the CLI's exit,
  caught exactly by a thread blocked in wait4, comes later and is reported apart: the worker may
  already be transcoding by then); the CLI's own "uploaded X MiB in T s" line is kept;
- the API as a user sees it: `GET /videos` (until the new video exists), then
  `GET /videos/{id}` every `--poll` s (default 0.2), with the first time each status/phase was
  seen. The worker reports phases (`probing` on `started`, `transcoding`, `uploading`) in
  progress events sent at most once a second, so these boundaries lag by up to ~1 s;
- the worker from the inside, without touching it: its log (`job ... delivery 1` when the
  message arrives, `uploaded N file(s)` when the outputs are stored; logging's ms timestamps)
  and its work dir, stat'ed every 20 ms: `job-*/.source.*.part` (the `started` webhook was
  answered, the source download began), `job-*/source` (download done), `job-*/out/.transcode-*`
  (probe done, the one FFmpeg ladder process starts), `job-*/out/hls` (FFmpeg done, output
  verified and installed, output upload begins).
The phases are consecutive intervals between these marks (a mark earlier than the one before
it is clamped to it), so they add up exactly to the time to playable:
upload | queue wait | `started` webhook + source download | probe | encode | output upload |
`completed` webhook until the poller sees `ready`.
CPU per phase (a 0.5 s sampler of /proc): the worker with its FFmpeg children, and "other" =
machine busy time minus ours and RabbitMQ's: the noise.

Baselines in the same run, on the same file: (a) the bare FFmpeg ladder command, the very argv
the worker runs (`build_command()`, as bench/transcode_ladder.py does), run directly: the encode
floor; (b) a plain `shutil.copyfile` of the source (and the same + fsync, as local storage
fsyncs what it stores): the upload floor on loopback; (c) today's ladder, the settings before
the lecture-aware one (`transcode(content="motion")`, in process; `--no-today` skips it).
Reported: time to playable / (encode floor + copy floor), media seconds per wall second
(x realtime) of both, and a ladder table: upload complete -> playable and -> ready, CPU s (the
worker with its FFmpegs between those marks; FFmpeg CPU for the baselines), x realtime on free
cores (media s / (CPU s / cores)), the load average at the start and end of each, SSIM per
rung against the source scaled to it (`transcode_ladder.ssim_per_rung`, the first
`--ssim-seconds` only when given) and the bytes of every rung's segments. The worker runs the
same FFmpeg binary as the baselines (`find_ffmpeg()` of this process, passed on).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _common import (
    format_table,
    machine_info,
    own_cpu_seconds,
    system_cpu_seconds,
    wait_for_quiet,
)
from transcode_ladder import Meter, run, source_file, ssim_per_rung
from worker_throughput import (
    BIN,
    PACKAGES,
    PASSWORD,
    CPUSampler,
    Stack,
    WorkerProcess,
    base_env,
    cached_source,
    interruptible,
    log_time,
    workspace,
)

from coursecrafter_worker.pipeline import build_command, find_ffmpeg, plan_ladder, probe, transcode
from coursecrafter_worker.pipeline.ladder import CONTENT_MOTION, content_class
from coursecrafter_worker.pipeline.motion import analyze

USERNAME = "lecturer"

# --------------------------------------------------------------------------------------------
# Watching the worker from outside


class WorkDirWatcher:
    """Stats the worker's work dir every `interval` s in a thread; `marks` = first time seen."""

    def __init__(self, work_dir: Path, interval: float = 0.02) -> None:
        self.work_dir = work_dir
        self.interval = interval
        self.marks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workdir-watcher", daemon=True)

    def start(self) -> WorkDirWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _mark(self, name: str, now: float) -> None:
        self.marks.setdefault(name, now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.time()
            try:
                jobs = [e.path for e in os.scandir(self.work_dir) if e.name.startswith("job-")]
            except OSError:
                jobs = []
            if not jobs:
                if "job_dir" in self.marks:
                    self._mark("job_dir_gone", now)
                continue
            self._mark("job_dir", now)
            for job in map(Path, jobs):
                try:
                    names = os.listdir(job)
                    out = os.listdir(job / "out") if "out" in names else []
                except OSError:
                    continue
                if any(n.startswith(".source.") for n in names):
                    self._mark("download_started", now)
                if "source" in names:
                    self._mark("source", now)
                if any(n.startswith(".transcode-") for n in out):
                    self._mark("encode_started", now)
                if "hls" in out:
                    self._mark("encoded", now)


@dataclass
class Upload:
    """What happened from spawning `coursecrafter upload` to `ready`."""

    t0: float
    cli_exit: float = 0.0
    cli_returncode: int | None = None
    cli_cpu_s: float = 0.0
    cli_stdout: str = ""
    cli_stderr: str = ""
    video_id: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    seen: list[tuple[float, str, str | None, int]] = field(default_factory=list)  # t, status, phase, %
    playable_at: float | None = None  # first poll that saw `playable` true

    def first(self, status: str, phase: str | None = None) -> float | None:
        for t, s, p, _ in self.seen:
            if s == status and (phase is None or p == phase):
                return t
        return None


def cli_env(api_url: str, config_dir: Path) -> dict[str, str]:
    return {**base_env(), "COURSECRAFTER_API_URL": api_url,
            "COURSECRAFTER_CONFIG_DIR": str(config_dir), "COURSECRAFTER_CREDENTIAL_STORE": "file"}


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([str(BIN / "coursecrafter"), *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"coursecrafter {args[0]} failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return done.stdout


def follow_upload(argv: list[str], env: dict[str, str], client: Any, poll: float,
                  timeout: float, log_dir: Path) -> Upload:
    """Spawn the upload, poll the API until the video is ready/failed and the CLI has exited."""
    out_path, err_path = log_dir / "cli-upload.out", log_dir / "cli-upload.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        up = Upload(t0=time.time())
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    def reap() -> None:  # exact exit time and the CLI's own rusage
        _, status, usage = os.wait4(proc.pid, 0)
        up.cli_exit = time.time()
        up.cli_returncode = os.waitstatus_to_exitcode(status)
        up.cli_cpu_s = usage.ru_utime + usage.ru_stime

    reaper = threading.Thread(target=reap, name="cli-reaper", daemon=True)
    reaper.start()
    deadline = time.monotonic() + timeout
    last: tuple[str, str | None] | None = None
    while True:
        if up.video_id is None:
            videos = client.list_videos()
            record = videos[0] if videos else None
            if record is not None:
                up.video_id = record["id"]
        else:
            record = client.get_video(up.video_id)
        now = time.time()
        if record is not None:
            up.record = record
            if record.get("playable") and up.playable_at is None:
                up.playable_at = now
            state = (record["status"], record.get("phase"))
            if state != last:
                up.seen.append((now, state[0], state[1], int(record.get("progress") or 0)))
                last = state
        if up.cli_returncode not in (None, 0):
            break
        if up.cli_returncode == 0 and up.record.get("status") in ("ready", "failed"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout:.0f} s; last record {up.record}")
        time.sleep(poll)
    reaper.join(10)
    proc.returncode = up.cli_returncode
    up.cli_stdout = out_path.read_text(errors="replace")
    up.cli_stderr = err_path.read_text(errors="replace")
    return up


def server_log_marks(log_path: Path, video_id: str) -> dict[str, float]:
    """When the server completed the upload ("upload ... complete: video V is uploaded")."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return {}
    for line in text.splitlines():
        if f"complete: video {video_id} is" in line and (t := log_time(line)) is not None:
            return {"upload_complete": t}
    return {}


def wait_job_finished(workers: list[WorkerProcess], video_id: str,
                      timeout: float = 60) -> float | None:
    """Until a worker logged the job's outcome (after `ready` it still deletes the source and
    its job dir): stopping it earlier would cut that short. The job's own seconds, if logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            job = next((j for j in worker.jobs().values() if j.video_id == video_id), None)
            if job is not None and job.seconds is not None:
                return job.seconds
        time.sleep(0.2)
    return None


def worker_log_marks(worker: WorkerProcess, video_id: str) -> dict[str, float]:
    marks: dict[str, float] = {}
    job_id = None
    for line in worker.log().splitlines():
        if f"for video {video_id}: delivery" in line and "received" not in marks:
            if (t := log_time(line)) is not None:
                marks["received"] = t
            m = re.search(r"job (\w+) attempt", line)
            job_id = m.group(1) if m else None
        elif job_id and f"job {job_id}: uploaded" in line and (t := log_time(line)) is not None:
            marks["outputs_uploaded"] = t
    return marks


# --------------------------------------------------------------------------------------------
# The breakdown


PHASES = [  # (label, end mark); each phase starts where the previous one ended
    ("upload (CLI spawned -> server completed it: start-up, SHA-256, parts)", "upload_complete"),
    ("queue wait (enqueue, publish -> worker receives the job)", "received"),
    ("`started` webhook + source download to the worker", "source"),
    ("probe", "encode_started"),
    ("encode (one FFmpeg: whole ladder + poster, verify)", "encoded"),
    ("output upload (segments, playlists, poster -> storage)", "outputs_uploaded"),
    ("`completed` webhook -> poller sees `ready`", "ready"),
]


def breakdown(up: Upload, marks: dict[str, float], sampler: CPUSampler,
              ) -> list[dict[str, Any]]:
    rows = []
    start = up.t0
    ready = marks["ready"]
    for label, name in PHASES:
        raw = marks.get(name)
        end = min(max(raw, start), ready) if raw is not None else start
        cpu = sampler.between(start, end) if end > start else {}
        rows.append({"phase": label, "mark": name, "observed": raw is not None,
                     "clamped": raw is not None and raw < start,
                     "start_s": round(start - up.t0, 3), "seconds": round(end - start, 3),
                     "workers_cores": cpu.get("workers_cores"),
                     "other_pct_of_one_core": cpu.get("other_pct_of_one_core"),
                     "cpu_window_s": cpu.get("window_s")})
        start = end
    return rows


# --------------------------------------------------------------------------------------------
# Baselines


def bare_ffmpeg(source: Path, out: Path) -> dict[str, Any]:
    """The worker's own FFmpeg argv (build_command, default preset, the content class the
    worker's sampling pass picks), run directly; the pass itself is not timed here."""
    ffmpeg = find_ffmpeg()
    info = probe(source, ffmpeg=ffmpeg)
    content = content_class(analyze(source, info, ffmpeg=ffmpeg))
    rungs = plan_ladder(info, content)
    argv = build_command(source, info, rungs, ffmpeg=ffmpeg)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    load0 = os.getloadavg()[0]
    with Meter() as m:
        run(argv, out)
    got = {"content": content, "wall_s": round(m.wall, 2), "cpu_s": round(m.cpu, 1),
           "cores": round(m.cpu / m.wall, 2),
           "other_pct_of_one_core": round(100 * m.other / m.wall, 1),
           "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
           "rungs": [r.name for r in rungs], "bytes": rung_bytes(out / "hls", [r.name for r in rungs])}
    shutil.rmtree(out, ignore_errors=True)
    return got


def today_pipeline(source: Path, out: Path, seconds: float, ssim_seconds: float | None,
                   ) -> dict[str, Any]:
    """Today's ladder (`transcode(content="motion")`: one FFmpeg, the settings before the
    lecture-aware ladder), in process: probe + encode + checks, without the stack around it."""
    ffmpeg = find_ffmpeg()
    shutil.rmtree(out, ignore_errors=True)
    load0 = os.getloadavg()[0]
    with Meter() as m:
        result = transcode(source, out, ffmpeg=ffmpeg, content=CONTENT_MOTION)
    names = [r.playlist.split("/")[1] for r in result.renditions]
    got = {"content": result.content, "wall_s": round(m.wall, 2), "cpu_s": round(m.cpu, 1),
           "cores": round(m.cpu / m.wall, 2),
           "other_pct_of_one_core": round(100 * m.other / m.wall, 1),
           "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
           "rungs": names, "bytes": rung_bytes(out / "hls", names),
           "ssim": rung_ssim(source, out / "hls", names, ssim_seconds)}
    shutil.rmtree(out, ignore_errors=True)
    return got


def rung_bytes(hls: Path, names: list[str]) -> list[int]:
    return [sum(f.stat().st_size for f in (hls / n).glob("*.ts")) for n in names]


def rung_ssim(source: Path, hls: Path, names: list[str], seconds: float | None) -> list[float]:
    """SSIM per rung against the source scaled to it (bench/transcode_ladder.ssim_per_rung)."""
    ffmpeg = find_ffmpeg()
    info = probe(source, ffmpeg=ffmpeg)
    renditions = []
    for name in names:
        first = next((hls / name).glob("*.ts"))
        seg = probe(first, ffmpeg=ffmpeg)
        renditions.append(SimpleNamespace(playlist=f"{name}/index.m3u8", width=seg.width,
                                          height=seg.height))
    return ssim_per_rung(source, hls, renditions, info.fps or 30.0, ffmpeg, seconds=seconds)


def plain_copy(source: Path, target: Path, fsync: bool) -> dict[str, float]:
    """`shutil.copyfile` (+ fsync) of the source; "other" = machine busy time minus ours."""
    target.unlink(missing_ok=True)
    busy0, own0 = system_cpu_seconds()["busy"], own_cpu_seconds()
    t0 = time.perf_counter()
    shutil.copyfile(source, target)
    if fsync:
        with open(target, "rb+") as f:
            os.fsync(f.fileno())
    wall = time.perf_counter() - t0
    other = max(0.0, system_cpu_seconds()["busy"] - busy0 - (own_cpu_seconds() - own0))
    target.unlink(missing_ok=True)
    return {"wall_s": round(wall, 3), "other_pct_of_one_core": round(100 * other / wall, 1)}


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


# --------------------------------------------------------------------------------------------


def measure(source: Path, work: Path, poll: float, duration: float,
            ssim_seconds: float | None = None, workers: int = 1) -> dict[str, Any]:
    """The pipeline run: stack up, upload, follow, stack down. Returns the raw observations."""
    with Stack(work / "stack") as stack:
        # The worker runs the same FFmpeg as the baselines measured in this process.
        stack.env["COURSECRAFTER_FFMPEG"] = find_ffmpeg()
        env = cli_env(stack.url, work / "cli-config")
        cli(env, "register", "--username", USERNAME, "--email", f"{USERNAME}@example.edu",
            "--password-stdin", stdin=PASSWORD + "\n")
        cli(env, "login", "--username", USERNAME, "--password-stdin", stdin=PASSWORD + "\n")
        from coursecrafter_cli import Client, MemoryCredentialStore

        client = Client(stack.url, credential_store=MemoryCredentialStore(), timeout=60)
        client.login(USERNAME, PASSWORD)
        # More than one: a long lecture's chunks run side by side (COURSECRAFTER_CHUNK_SECONDS);
        # the work-dir marks and log marks are the first worker's (the one that takes the job).
        crew = stack.add_workers(workers)
        for one in crew:
            one.wait_consuming()
        worker = crew[0]
        warm(source)

        sampler = stack.sampler(0.5).start()
        watcher = WorkDirWatcher(worker.work_dir, interval=0.05).start()
        argv = [str(BIN / "coursecrafter"), "upload", str(source), "--title", "bench lecture",
                "--json"]
        print(f"uploading {source.name} with `coursecrafter upload` and following it ...",
              file=sys.stderr, flush=True)
        try:
            up = follow_upload(argv, env, client, poll, timeout=600 + 20 * duration,
                               log_dir=work)
            sampler.stop()
            job_s = wait_job_finished(crew, up.video_id) if up.video_id else None
        finally:
            watcher.stop()
            sampler.stop()
            client.close()
        if up.cli_returncode != 0:
            raise RuntimeError(f"coursecrafter upload failed ({up.cli_returncode}): "
                               f"{up.cli_stderr[-2000:]}")
        if up.record.get("status") != "ready":
            raise RuntimeError(f"the video ended {up.record.get('status')}: {up.record}")
        assert up.video_id is not None
        assert stack.server is not None
        marks = {"upload_complete": up.cli_exit,  # replaced by the server's own time if logged
                 **server_log_marks(stack.server.log_path, up.video_id),
                 **watcher.marks, **worker_log_marks(worker, up.video_id),
                 "cli_exit": up.cli_exit, "ready": up.first("ready") or time.time()}
        hls = stack.blobs / "videos" / up.video_id / "hls"
        names = sorted((p.parent.name for p in hls.glob("*p/index.m3u8")),
                       key=lambda n: -int(n[:-1]))
        outputs = {"rungs": names, "bytes": rung_bytes(hls, names),
                   "ssim": rung_ssim(source, hls, names, ssim_seconds)}
        return {"upload": up, "marks": marks, "sampler": sampler, "worker_job_s": job_s,
                "total_cpu": sampler.between(up.t0, marks["ready"]), "outputs": outputs}


def ladder_table(duration: float, up: Upload, marks: dict[str, float], got: dict[str, Any],
                 bare: dict[str, Any], today: dict[str, Any] | None) -> dict[str, Any]:
    """The lecture-aware pipeline against today's ladder and the bare command: wall, CPU, SSIM and
    bytes per rung, with the load average at the start and end of each (all one run)."""
    cores = os.cpu_count() or 1
    done = marks["upload_complete"]
    ready = marks["ready"] - done
    playable = up.playable_at - done if up.playable_at else None
    cpu = got["sampler"].between(done, marks["ready"]).get("workers", float("nan"))
    outputs = got["outputs"]
    names = outputs["rungs"]
    header = ["run", "content", "wall s", "x realtime", "CPU s", "x RT free cores", "load avg",
              *[f"SSIM {n}" for n in names], *[f"MB {n}" for n in names]]

    def row(name: str, content: str, wall: float, cpu_s: float, load: list[float],
            ssim: list[float] | None, size: list[int]) -> list[str]:
        return [name, content, f"{wall:.1f}", f"{duration / wall:.2f}", f"{cpu_s:.0f}",
                f"{duration / (cpu_s / cores):.2f}", f"{load[0]:.1f}-{load[1]:.1f}",
                *([f"{v:.4f}" for v in ssim] if ssim else ["same argv"] * len(names)),
                *[f"{b / 1e6:.2f}" for b in size]]

    rows = [row("pipeline: upload complete -> ready (worker + FFmpeg CPU)",
                bare.get("content", ""), ready, cpu, got["load"], outputs["ssim"],
                outputs["bytes"])]
    rows.append(row("bare FFmpeg, the worker's argv", bare["content"], bare["wall_s"],
                    bare["cpu_s"], bare["load"], None, bare["bytes"]))
    if today is not None:
        rows.append(row("today's ladder, transcode(content=motion)", today["content"],
                        today["wall_s"], today["cpu_s"], today["load"], today["ssim"],
                        today["bytes"]))
    notes = [f"upload complete -> playable: {playable:.2f} s" if playable is not None
             else "upload complete -> playable: not seen before ready"]
    notes.append(f"upload complete -> ready: {ready:.1f} s = {ready / duration:.3f}x the duration "
                 "(goal <= 0.25x)")
    if today is not None:
        notes.append(f"CPU: pipeline / today's ladder = {cpu / today['cpu_s']:.2f}; bare "
                     f"(still argv) / today = {bare['cpu_s'] / today['cpu_s']:.2f}")
    return {"header": header, "rows": rows, "notes": notes, "playable_s": playable,
            "ready_s": ready, "pipeline_cpu_s": cpu, "outputs": outputs, "today": today,
            "bare": bare, "pipeline_load": got["load"]}


def _relative(marks: dict[str, float], t0: float) -> dict[str, float]:
    return {k: round(v - t0, 2) for k, v in sorted(marks.items(), key=lambda kv: kv[1])}


def _repeated(one: Path, times: int, path: Path, *out_args: str) -> Path:
    """`one` `times` over into `path` (concat demuxer, stream copy), made once."""
    if not path.exists():
        listing = path.with_name(f".concat-{path.stem}.txt")
        listing.write_text("".join(f"file '{one.resolve()}'\n" for _ in range(times)))
        tmp = path.with_name(".tmp-" + path.name)
        subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                        "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                        *out_args, str(tmp)], check=True)
        os.replace(tmp, path)
        listing.unlink()
    return path


def repeated_lecture(minutes: int, directory: Path) -> Path:
    """The 1-minute `make_lecture()` source `minutes` times over (concat demuxer, stream copy):
    the same picture, slides and voice every minute, made in seconds; cached."""
    one = source_file("lecture", 60, directory, find_ffmpeg())
    return _repeated(one, minutes, directory / f"lecture-{minutes * 60}s-1080p-repeated.mp4",
                     "-movflags", "+faststart")


def repeated_webm(minutes: int, directory: Path) -> Path:
    """The same lecture as VP9 + Opus WebM (what a browser's MediaRecorder or OBS's WebM gives):
    the 1-minute `make_lecture()` source encoded once (libvpx-vp9 realtime, Opus 96k), then
    repeated `minutes` times by stream copy; cached."""
    one_mp4 = source_file("lecture", 60, directory, find_ffmpeg())
    one = directory / "lecture-60s-1080p-vp9-opus.webm"
    if not one.exists():
        tmp = one.with_name(".tmp-" + one.name)
        print(f"making {one.name} ...", file=sys.stderr, flush=True)
        subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                        "-i", str(one_mp4), "-c:v", "libvpx-vp9", "-deadline", "realtime",
                        "-cpu-used", "8", "-row-mt", "1", "-b:v", "2500k", "-g", "240",
                        "-c:a", "libopus", "-b:a", "96k", "-f", "webm", str(tmp)], check=True)
        os.replace(tmp, one)
    return _repeated(one, minutes,
                     directory / f"lecture-{minutes * 60}s-1080p-vp9-opus-repeated.webm",
                     "-f", "webm")


def report_api_view(up: Upload) -> list[str]:
    out = []
    for t, status, phase, pct in up.seen:
        out.append(f"+{t - up.t0:.2f} s {status}{'/' + phase if phase else ''}"
                   f"{f' {pct}%' if status == 'processing' else ''}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None,
                        help="length of the lecture (default 10; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a 1-minute lecture")
    parser.add_argument("--poll", type=float, default=0.2, help="API poll interval (s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="work (logs, storage) in this directory, kept")
    parser.add_argument("--material", choices=("lecture", "webm", "legacy"), default="lecture",
                        help="lecture: transcode_ladder.make_lecture() (slides changing every "
                             "20-60 s, a noisy inset, a pointer, a voice; the issue's material); "
                             "webm: the same lecture as VP9 + Opus WebM, minutes made by "
                             "repeating one; legacy: make_source() (issue 5's held testsrc2 frames)")
    parser.add_argument("--repeat-minute", action="store_true",
                        help="with --material lecture: make the N-minute lecture by repeating the "
                             "1-minute one N times (stream copy, seconds to make) instead of "
                             "generating all of it (~1.4 CPU s per second of video)")
    parser.add_argument("--ssim-seconds", type=float, default=None, metavar="S",
                        help="SSIM over the first S s of each rung only (default: all of it)")
    parser.add_argument("--no-today", action="store_true",
                        help="skip the today's-ladder baseline (the slowest part of the run)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (concurrency 1 each); 2 lets a chunked lecture "
                             "use both cores of this machine")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                        help="before each measurement, wait up to S s for the machine to idle")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    minutes = args.minutes if args.minutes is not None else (1.0 if args.quick else 10.0)
    seconds = max(1, round(minutes * 60))

    machine = machine_info(PACKAGES)
    if args.material == "webm":
        source = repeated_webm(max(1, seconds // 60), BENCH_DIR / "results" / "sources")
    elif args.material == "lecture" and args.repeat_minute and seconds > 60 and seconds % 60 == 0:
        source = repeated_lecture(seconds // 60, BENCH_DIR / "results" / "sources")
    elif args.material == "lecture":
        source = source_file("lecture", seconds, BENCH_DIR / "results" / "sources", find_ffmpeg())
    else:
        source = cached_source(seconds)
    info = probe(source, ffmpeg=find_ffmpeg())
    size_mb = source.stat().st_size / 1e6
    rungs = plan_ladder(info)

    def quiet(what: str) -> None:
        if args.wait_quiet:
            pct = wait_for_quiet(args.wait_quiet)
            print(f"machine busy before {what}: {pct:.0f}% of one core", file=sys.stderr)

    with interruptible(), workspace(args.keep, "cc-bench-ttp-") as work:
        quiet("the pipeline run")
        load0 = os.getloadavg()[0]
        got = measure(source, work, args.poll, info.duration, args.ssim_seconds, args.workers)
        got["load"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
        # Each result as soon as it is known (a long run interrupted later still has these).
        print(f"  pipeline: marks {_relative(got['marks'], got['upload'].t0)}, playable at "
              f"{got['upload'].playable_at}, outputs {got['outputs']}, load {got['load']}",
              file=sys.stderr, flush=True)
        up: Upload = got["upload"]
        marks: dict[str, float] = got["marks"]
        rows = breakdown(up, marks, got["sampler"])
        total = marks["ready"] - up.t0
        quiet("the bare FFmpeg baseline")
        print("baseline: bare FFmpeg ladder ...", file=sys.stderr, flush=True)
        bare = bare_ffmpeg(source, work / "bare")
        print(f"  bare: {bare}", file=sys.stderr, flush=True)
        warm(source)
        copy = plain_copy(source, work / "copy.mp4", fsync=False)
        copy_sync = plain_copy(source, work / "copy.mp4", fsync=True)
        today = None
        if not args.no_today:
            quiet("today's ladder")
            print("baseline: today's ladder (transcode(content='motion')) ...", file=sys.stderr,
                  flush=True)
            today = today_pipeline(source, work / "today", info.duration, args.ssim_seconds)
            print(f"  today: {today}", file=sys.stderr, flush=True)

    floors = bare["wall_s"] + copy["wall_s"]
    encode = next(r for r in rows if r["mark"] == "encoded")
    encode_cpu = got["sampler"].between(up.t0 + encode["start_s"],
                                        up.t0 + encode["start_s"] + encode["seconds"])
    transfer = re.search(r"uploaded ([\d.]+) MiB in ([\d.]+) s", up.cli_stderr)
    cpu = got["total_cpu"]

    print()
    print(f"Time to playable: {info.duration:.1f} s {info.width}x{info.height} {info.fps} fps "
          f"lecture-like source, {size_mb:.1f} MB; ladder "
          + ", ".join(r.name for r in rungs) + " + poster. Scale-out stack: RabbitMQ vhost, "
          f"{args.workers} x `coursecrafter-worker --concurrency 1`, local storage; "
          "`coursecrafter upload` -> `ready`.")
    table = []
    for r in rows:
        note = "" if r["observed"] else " (mark not observed: 0)"
        note += " (overlaps the previous phase: 0)" if r["clamped"] and r["seconds"] == 0 else ""
        table.append([r["phase"] + note, f"+{r['start_s']:.2f}", f"{r['seconds']:.2f}",
                      f"{100 * r['seconds'] / total:.1f}%",
                      "" if r["workers_cores"] is None else f"{r['workers_cores']:.2f}",
                      "" if r["other_pct_of_one_core"] is None
                      else f"{r['other_pct_of_one_core']:.0f}%"])
    table.append(["TOTAL: time to playable", "", f"{total:.2f}", "100%",
                  f"{cpu['workers_cores']:.2f}", f"{cpu['other_pct_of_one_core']:.0f}%"])
    print(format_table(["phase", "starts at", "seconds", "share", "worker cores",
                        "other CPU (% of 1 core)"], table))
    print()
    print("as the API showed it (first seen by the poller): " + "; ".join(report_api_view(up)))
    if transfer:
        print(f"the CLI's own transfer line: {transfer.group(0)}; CLI process CPU "
              f"{up.cli_cpu_s:.1f} s")
    print(f"the CLI process exited at +{marks['cli_exit'] - up.t0:.2f} s, "
          f"{marks['cli_exit'] - marks['upload_complete']:.2f} s after the server completed the "
          f"upload (+{marks['upload_complete'] - up.t0:.2f} s)")
    print(f"the worker's own account of the job: {got['worker_job_s']} s "
          "(`started` webhook to source deleted); encode phase CPU: worker+FFmpeg "
          f"{encode_cpu.get('workers', float('nan')):.1f} s")
    print(f"CPU over the whole run: worker+FFmpeg {cpu['workers']:.0f} s, server "
          f"{cpu['server']:.1f} s, RabbitMQ {cpu['broker']:.1f} s, bench (poller, CLI) "
          f"{cpu['bench']:.1f} s, other {cpu['other']:.1f} s "
          f"({cpu['other_pct_of_one_core']:.0f}% of one core)")
    print()
    print(format_table(["baseline (same file, same run)", "wall s", "x realtime", "CPU s",
                        "cores", "other CPU (% of 1 core)"], [
        ["a. bare FFmpeg ladder, the worker's argv (encode floor)", f"{bare['wall_s']:.2f}",
         f"{info.duration / bare['wall_s']:.2f}", f"{bare['cpu_s']:.0f}", f"{bare['cores']:.2f}",
         f"{bare['other_pct_of_one_core']:.0f}%"],
        ["b. shutil.copyfile of the source (upload floor)", f"{copy['wall_s']:.3f}",
         f"{info.duration / copy['wall_s']:.0f}", "", "", f"{copy['other_pct_of_one_core']:.0f}%"],
        ["   same + fsync (local storage fsyncs)", f"{copy_sync['wall_s']:.3f}",
         f"{info.duration / copy_sync['wall_s']:.0f}", "", "",
         f"{copy_sync['other_pct_of_one_core']:.0f}%"],
    ]))
    print()
    print(f"time to playable {total:.1f} s = {total / floors:.2f}x the floors "
          f"(encode {bare['wall_s']:.1f} s + copy {copy['wall_s']:.2f} s = {floors:.1f} s): "
          f"{total - floors:+.1f} s over them")
    print(f"x realtime: {info.duration / total:.2f} (clip {info.duration:.0f} s / time to "
          f"playable); the floors alone: {info.duration / floors:.2f}")
    ladder = ladder_table(info.duration, up, marks, got, bare, today)
    print()
    print(format_table(ladder["header"], ladder["rows"]))
    for line in ladder["notes"]:
        print(line)
    print(f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} "
          f"GiB, load at start {machine['loadavg_at_start']}")
    if cpu["other_pct_of_one_core"] > 10 or bare["other_pct_of_one_core"] > 10:
        print("note: other processes used noticeable CPU meanwhile; compare with care")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "source": {"seconds": info.duration, "width": info.width, "height": info.height,
                       "fps": info.fps, "mb": round(size_mb, 1), "path": str(source)},
            "rungs": [r.name for r in rungs],
            "time_to_playable_s": round(total, 3), "phases": rows,
            "api_view": [{"t": round(t - up.t0, 3), "status": s, "phase": p, "progress": pct}
                         for t, s, p, pct in up.seen],
            "marks_s": {k: round(v - up.t0, 3) for k, v in sorted(marks.items(),
                                                                   key=lambda kv: kv[1])},
            "cli_transfer": transfer.group(0) if transfer else None,
            "cli_cpu_s": round(up.cli_cpu_s, 2), "worker_job_s": got["worker_job_s"],
            "cpu": cpu, "baselines": {"bare_ffmpeg": bare, "copy": copy, "copy_fsync": copy_sync},
            "over_floors_x": round(total / floors, 3), "ladder": ladder,
            "realtime_x": round(info.duration / total, 3), "machine": machine,
        }, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, TimeoutError) as exc:
        print(f"time_to_playable: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; processes, vhost and temporary files cleaned up", file=sys.stderr)
        sys.exit(130)
