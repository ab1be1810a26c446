"""Chunked transcoding: one lecture, upload complete → ready, 1 worker vs 2 workers, each pinned.

    .venv/bin/python bench/chunked_transcode.py [--seconds 60] [--chunk 15] [--json PATH]

The scale-out stack of bench/worker_throughput.py (own RabbitMQ vhost, one server, SQLite, local
storage, `coursecrafter-worker --concurrency 1` processes), with each worker and its FFmpeg
children pinned to one core (`taskset -c N`). The source is `transcode_ladder.make_source()`'s
1080p30 lecture-like clip (held slides, a voice), `--seconds` long. Three configurations, same run:

- whole:   1 worker on core 0, `COURSECRAFTER_CHUNK_SECONDS=0` (today's single-process ladder)
- chunk×1: 1 worker on core 0, chunks of `--chunk` s
- chunk×2: 2 workers on cores 0 and 1, chunks of `--chunk` s

For each: t0 = `Client.upload()` returned (the upload is complete, the video queued; the workers
are already consuming), t_end = the first poll (every 0.25 s) that sees it `ready`. CPU seconds
of the worker process trees over [t0, t_end] (FFmpeg included). Per-chunk costs come from the
worker logs ("chunk … transcoded in …", the cutting job's and the join's "… in X s").

Then the seams of chunk×2's output against whole's (tests/pipeline/chunk_support.py): frames,
irregular frame steps, audio packets and irregular steps, A/V offset at start and end, SSIM of
the 360p rung near the seams vs elsewhere; and a model of time to ready for a 2-hour lecture on
8 and 32 workers from the measured costs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "pipeline"))

from worker_throughput import (  # noqa: E402
    Stack,
    WorkerProcess,
    cached_source,
    format_table,
    interruptible,
    log_time,
    machine_info,
    workspace,
)

_CHUNK = re.compile(r"job (\w+) chunk (\w+) attempt \d+: ([0-9.]+) s of source transcoded in "
                    r"([0-9.]+) s")
_OUTCOME = re.compile(r"job (\w+) attempt \d+ \(video \w+\) (\w+) in ([0-9.]+)s"
                      r"(?: \(chunk (\w+) \d+\))?")


class PinnedWorker(WorkerProcess):
    """A worker whose process tree runs on one core only."""

    def __init__(self, *args: Any, cpu: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cpu = cpu

    def start(self) -> PinnedWorker:
        import subprocess as sp

        from worker_throughput import BIN

        self.work.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.started_at = time.time()
            self.proc = sp.Popen(
                ["taskset", "-c", str(self.cpu), str(BIN / "coursecrafter-worker"),
                 "--concurrency", "1"],
                env=self.env, stdin=sp.DEVNULL, stdout=log, stderr=sp.STDOUT, cwd=self.work,
                start_new_session=True)
        return self


def run_config(name: str, cpus: list[int], chunk: float, source: Path, work: Path
               ) -> dict[str, Any]:
    print(f"\n== {name}: {len(cpus)} worker(s) on core(s) {cpus}, chunk {chunk:g} s ==",
          file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    with Stack(work) as stack:
        stack.env["COURSECRAFTER_CHUNK_SECONDS"] = f"{chunk:g}"
        workers = [PinnedWorker(f"worker-{i + 1}", stack.env, work / f"worker-{i + 1}", cpu=c)
                   for i, c in enumerate(cpus)]
        stack.workers.extend(workers)
        for w in workers:
            w.start()
        for w in workers:
            w.wait_consuming()
        client = stack.client()
        sampler = stack.sampler().start()
        video_id = client.upload(source, title=name, resume=False)["id"]
        t0 = time.time()
        while True:
            record = client.get_video(video_id)
            if record["status"] in ("ready", "failed"):
                t_end = time.time()
                break
            if time.time() - t0 > 3600:
                raise TimeoutError(f"{name}: still {record['status']} after an hour")
            time.sleep(0.25)
        sampler.stop()
        cpu = sampler.between(t0, t_end)
        client.close()
        if record["status"] != "ready":
            raise RuntimeError(f"{name}: {record.get('error')}")
        # The worker logs its outcome line after the server applied `completed`: the poll may
        # see `ready` first.
        last = "(chunk join" if chunk else "completed in"
        deadline = time.monotonic() + 20
        while not any(last in w.log() for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        chunks, outcomes = [], []
        for w in workers:
            for line in w.log().splitlines():
                if m := _CHUNK.search(line):
                    chunks.append({"worker": w.name, "tag": m.group(2),
                                   "source_s": float(m.group(3)), "transcode_s": float(m.group(4)),
                                   "at": log_time(line)})
                elif m := _OUTCOME.search(line):
                    outcomes.append({"worker": w.name, "outcome": m.group(2),
                                     "seconds": float(m.group(3)), "kind": m.group(4) or "whole",
                                     "at": log_time(line)})
        out = work / f"out-{name}"
        subprocess.run(["cp", "-r", str(stack.blobs / "videos" / video_id), str(out)], check=True)
        result = {"name": name, "workers": len(cpus), "chunk_s": chunk,
                  "ready_s": round(t_end - t0, 2), "cpu": cpu, "chunks": chunks,
                  "outcomes": outcomes, "out": str(out), "renditions": record["renditions"],
                  "load_before": [round(x, 2) for x in load_before],
                  "load_after": [round(x, 2) for x in os.getloadavg()]}
        print(f"  ready {result['ready_s']:.1f} s after the upload; worker CPU "
              f"{cpu['workers']:.1f} s; other {cpu['other_pct_of_one_core']:.0f}% of one core; "
              f"load {result['load_before'][0]:.2f} → {result['load_after'][0]:.2f}",
              file=sys.stderr, flush=True)
        return result


def seams(whole: dict[str, Any], chunked: dict[str, Any], source: Path) -> dict[str, Any]:
    from chunk_support import audio_gaps, seam_facts, seam_ssim

    w, c = Path(whole["out"]) / "hls", Path(chunked["out"]) / "hls"
    top = max(r["height"] for r in whole["renditions"])
    rung = f"{top}p/index.m3u8"
    # The whole ladder's audio: its own rendition when encoded for several rungs, else in the rung.
    whole_audio = w / "audio" / "index.m3u8"
    ref = seam_facts(w / rung, whole_audio if whole_audio.is_file() else None)
    got = seam_facts(c / rung, c / "audio" / "index.m3u8")
    sound_packets, sound_gaps = audio_gaps(c / "audio" / "index.m3u8")
    # Seams from the playlist: the running time where each piece's first segment begins.
    t, seam_at = 0.0, []
    lines = (c / rung).read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXTINF:"):
            uri = lines[i + 1]
            if uri.endswith("_seg_00000.ts") and not uri.startswith("v0000"):
                seam_at.append(round(t, 3))
            t += float(line.split(":")[1].rstrip(","))
    near, far = seam_ssim(source, c / "360p" / "index.m3u8", (640, 360), seam_at)
    near_w, far_w = seam_ssim(source, w / "360p" / "index.m3u8", (640, 360), seam_at)
    return {"seams_s": seam_at, "frames_whole": ref.frames, "frames_chunked": got.frames,
            "irregular_frame_steps": got.irregular_steps,
            "audio_packets_whole": ref.audio_packets, "audio_packets_chunked": got.audio_packets,
            "audio_irregular_steps_chunked": got.audio_gaps,
            "audio_irregular_steps_audio_only_reading": sound_gaps,
            "av_start_whole_ms": round(ref.av_start * 1000, 2),
            "av_start_chunked_ms": round(got.av_start * 1000, 2),
            "av_end_whole_ms": round(ref.av_end * 1000, 2),
            "av_end_chunked_ms": round(got.av_end * 1000, 2),
            "ssim_360p_near_seams": round(near, 4), "ssim_360p_elsewhere": round(far, 4),
            "ssim_360p_whole_same_frames": [round(near_w, 4), round(far_w, 4)]}


def model(one: dict[str, Any], two: dict[str, Any], source_s: float) -> dict[str, Any]:
    """Time to ready of a 2-hour lecture on W workers from this run's per-chunk costs:
    cut (scales with duration) + rounds of chunks (ceil(N / W) × one chunk) + join."""
    pieces = [c for c in two["chunks"] if c["tag"] != "audio"]
    rate = sum(c["transcode_s"] for c in pieces) / max(1e-9, sum(c["source_s"] for c in pieces))
    cut = next(o["seconds"] for o in two["outcomes"] if o["outcome"] == "chunked")
    join = next(o["seconds"] for o in two["outcomes"] if o["kind"] == "join")
    jobs = [o["seconds"] for o in two["outcomes"] if o["kind"] == "video"]
    # Everything a chunk job does besides FFmpeg's ladder: events, download, upload, start-up.
    overhead = max(0.0, (sum(jobs) - sum(c["transcode_s"] for c in pieces)) / max(1, len(jobs)))
    whole_rate = one["ready_s"] / source_s
    out: dict[str, Any] = {"transcode_s_per_source_s_one_core": round(rate, 3),
                           "cut_s_per_source_s": round(cut / source_s, 4),
                           "join_s": round(join, 2), "per_chunk_overhead_s": round(overhead, 2),
                           "whole_s_per_source_s": round(whole_rate, 3)}
    lecture = 7200.0
    for chunk_len in (60.0, 120.0, 300.0):
        n = round(lecture / chunk_len)
        for w in (8, 32):
            t = cut / source_s * lecture + math.ceil(n / w) * (chunk_len * rate + overhead) + join
            out[f"2h_{int(chunk_len)}s_chunks_{w}_workers_min"] = round(t / 60, 1)
    out["2h_whole_one_worker_min"] = round(whole_rate * lecture / 60, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--chunk", type=float, default=15.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    source = cached_source(args.seconds)
    results = {}
    with interruptible(), workspace(args.keep, "cc-bench-chunks-") as work:
        for name, cpus, chunk in (("whole", [0], 0.0), ("chunk×1", [0], args.chunk),
                                  ("chunk×2", [0, 1], args.chunk)):
            results[name] = run_config(name, cpus, chunk, source, work / name)
        seam = seams(results["whole"], results["chunk×2"], source)
    one, two, whole = results["chunk×1"], results["chunk×2"], results["whole"]
    summary = {
        "speedup_2_vs_1_chunked": round(one["ready_s"] / two["ready_s"], 2),
        "speedup_2_chunked_vs_whole": round(whole["ready_s"] / two["ready_s"], 2),
        "cpu_chunked_x1_vs_whole": round(one["cpu"]["workers"] / whole["cpu"]["workers"], 3),
        "cpu_chunked_x2_vs_whole": round(two["cpu"]["workers"] / whole["cpu"]["workers"], 3),
    }
    rows = [[r["name"], str(r["workers"]), f"{r['chunk_s']:g}", f"{r['ready_s']:.1f}",
             f"{r['cpu']['workers']:.1f}", f"{r['cpu']['other_pct_of_one_core']:.0f}%",
             f"{r['load_before'][0]:.2f}"] for r in results.values()]
    print(format_table(["config", "workers", "chunk s", "ready s", "worker CPU s",
                        "other (1 core=100%)", "load avg 1m"], rows))
    print(json.dumps(summary, indent=2))
    print(json.dumps(seam, indent=2))
    try:
        projected = model(whole, two, float(args.seconds))
    except StopIteration:  # a log line missing: report what was measured anyway
        projected = {"error": "a cut or join outcome line is missing from the worker logs"}
    print(json.dumps(projected, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "results": results,
                                         "summary": summary, "seams": seam,
                                         "model": projected}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
