"""Transcoding cost of the HLS ladder: the pipeline vs bare FFmpeg vs one process per rendition.

    .venv/bin/python bench/transcode_ladder.py [--quick] [--preset veryfast] [--json PATH]

1. Makes a lecture-like source: 60 s (10 s with --quick) of 1080p30 H.264 + AAC. Mostly still
   "slides" with motion in between: `testsrc2` (moving pattern), of which a `select` keeps the
   first 2 s of every 10 s (plus one frame at each 10 s mark) and `fps=30` repeats the last kept
   frame through the gap, so 80% of the clip is a held frame, as in a slide lecture; a 440 Hz
   sine is the voice. Encoded x264 `veryfast` CRF 18, like a screen recording an instructor
   uploads. (drawtext would need fonts; not assumed.)
2. Measures, in one run, wall time, realtime factor (media seconds per wall second) and the CPU
   seconds FFmpeg used (children rusage) of:
   a. `transcode()` end to end: probe, the one-process ladder (4 rungs + poster), verification,
      install into the output directory;
   b. bare FFmpeg: the very argv `transcode()` runs (`build_command()`), started directly, once;
   c. the naive way: one FFmpeg process per rendition, sequentially, each decoding the source
      itself with the same encoder settings (`build_command()` with one rung), plus one
      poster-frame command;
   and prints a table with pipeline overhead over bare (%) and naive / pipeline. `--rounds N`
   repeats a, b, c interleaved and keeps each one's fastest run (the least disturbed).
3. Reports how busy the rest of the machine was meanwhile ("other CPU": machine busy time minus
   ours), because other people's jobs on a shared 2-core machine move these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, system_cpu_seconds, wait_for_quiet  # noqa: E402

from coursecrafter_worker.pipeline import build_command, find_ffmpeg, plan_ladder, probe, transcode  # noqa: E402
from coursecrafter_worker.pipeline.probe import input_options, input_url  # noqa: E402
from coursecrafter_worker.pipeline.transcode import poster_time  # noqa: E402


def make_source(path: Path, seconds: int, ffmpeg: str) -> None:
    vf = "select='lt(mod(t\\,10)\\,2)+not(mod(n\\,300))',fps=30"
    argv = [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", f"testsrc2=s=1920x1080:r=30:d={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-vf", vf, "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-t", str(seconds), "-movflags", "+faststart", str(path),
    ]
    subprocess.run(argv, check=True)


class Meter:
    """Wall time, CPU of waited-for children, and the rest of the machine's busy CPU."""

    def __enter__(self) -> "Meter":
        self.t0 = time.perf_counter()
        self.c0 = self._children()
        self.busy0 = system_cpu_seconds()["busy"]
        return self

    @staticmethod
    def _children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = self._children() - self.c0
        busy = system_cpu_seconds()["busy"] - self.busy0
        # Our own Python process is negligible next to FFmpeg; count it as ours anyway.
        self.other = max(0.0, busy - self.cpu)


def run(argv: list[str], cwd: Path) -> None:
    proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"FFmpeg failed ({proc.returncode}):\n{' '.join(argv)}\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 10 s clip instead of 60 s")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path,
                        help="work in this directory and keep it (a source already there is reused)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure a, b, c this many times, interleaved; report the fastest")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                        help="first wait up to S seconds for the machine to be idle")
    args = parser.parse_args()

    seconds = 10 if args.quick else 60
    ffmpeg = find_ffmpeg()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cc-bench-transcode-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = work / f"lecture-{seconds}s-1080p.mp4"
        with Meter() as gen:
            if source.exists():  # --keep DIR from an earlier run: reuse its source
                print(f"reusing {source}", file=sys.stderr)
            else:
                print(f"making a {seconds} s 1080p30 lecture-like source ...", file=sys.stderr)
                make_source(source, seconds, ffmpeg)
        info = probe(source, ffmpeg=ffmpeg)
        rungs = plan_ladder(info)
        print(f"source: {info.width}x{info.height} {info.fps} fps {info.duration:.2f} s, "
              f"{source.stat().st_size / 1e6:.1f} MB (made in {gen.wall:.1f} s); rungs: "
              + ", ".join(f"{r.name} {r.width}x{r.height}" for r in rungs), file=sys.stderr)

        results: dict[str, dict[str, float]] = {}
        all_walls: dict[str, list[float]] = {}

        def record(name: str, m: Meter) -> None:
            all_walls.setdefault(name, []).append(round(m.wall, 2))
            print(f"  {name}: {m.wall:.1f} s (other CPU {m.other:.1f} s)", file=sys.stderr)
            if name in results and results[name]["wall_s"] <= m.wall:
                return
            results[name] = {
                "wall_s": round(m.wall, 2),
                "realtime_x": round(info.duration / m.wall, 2),
                "ffmpeg_cpu_s": round(m.cpu, 1),
                "other_cpu_s": round(m.other, 1),
            }

        top = rungs[0]
        poster_argv = [
            ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            *[x for k, v in input_options().items() for x in (f"-{k}", v)],
            "-ss", str(poster_time(info)), "-i", input_url(source), "-frames:v", "1",
            "-vf", f"scale={top.width}:{top.height}:out_range=full,setsar=1,format=yuv420p",
            "-q:v", "3", "-update", "1", "poster.jpg",
        ]
        argv = build_command(source, info, rungs, ffmpeg=ffmpeg, preset=args.preset)
        if args.wait_quiet:
            pct = wait_for_quiet(args.wait_quiet)
            print(f"machine busy: {pct:.0f}% of one core", file=sys.stderr)

        for round_ in range(args.rounds):
            # a. the pipeline
            print(f"round {round_ + 1}/{args.rounds}: a. transcode() ...", file=sys.stderr)
            out_a = work / "a-pipeline"
            with Meter() as m:
                result = transcode(source, out_a, preset=args.preset, ffmpeg=ffmpeg)
            record("a. transcode() end to end", m)

            # b. bare FFmpeg, the same argv
            print("b. bare FFmpeg ...", file=sys.stderr)
            out_b = work / "b-bare"
            shutil.rmtree(out_b, ignore_errors=True)
            out_b.mkdir()
            with Meter() as m:
                run(argv, out_b)
            record("b. bare FFmpeg, same args", m)

            # c. naive: one process per rendition (+ the poster)
            print("c. one FFmpeg per rendition ...", file=sys.stderr)
            out_c = work / "c-naive"
            shutil.rmtree(out_c, ignore_errors=True)
            naive = []
            for rung in rungs:
                d = out_c / rung.name
                d.mkdir(parents=True)
                naive.append((build_command(source, info, [rung], ffmpeg=ffmpeg,
                                            preset=args.preset, poster=False, progress=False), d))
            with Meter() as m:
                for one, d in naive:
                    run(one, d)
                run(poster_argv, out_c)
            record("c. naive, 1 process per rendition", m)

        a, b, c = (results[k]["wall_s"] for k in results)
        ratios = {
            "pipeline_over_bare_pct": round(100 * (a - b) / b, 1),
            "naive_over_pipeline_x": round(c / a, 2),
            "naive_cpu_over_pipeline_x": round(
                results["c. naive, 1 process per rendition"]["ffmpeg_cpu_s"]
                / max(0.1, results["a. transcode() end to end"]["ffmpeg_cpu_s"]), 2),
        }

        print()
        print(f"Transcode ladder, {seconds} s 1080p30 lecture-like source, preset {args.preset}, "
              f"{len(rungs)} rungs ({', '.join(r.name for r in rungs)}) + poster"
              + (f"; fastest of {args.rounds} interleaved rounds" if args.rounds > 1 else ""))
        print(f"{'mode':38} {'wall s':>8} {'x realtime':>11} {'FFmpeg CPU s':>13} {'other CPU s':>12}")
        for name, r in results.items():
            print(f"{name:38} {r['wall_s']:8.1f} {r['realtime_x']:11.2f} {r['ffmpeg_cpu_s']:13.1f} "
                  f"{r['other_cpu_s']:12.1f}")
        print()
        print(f"pipeline vs bare FFmpeg: {ratios['pipeline_over_bare_pct']:+.1f}% wall")
        print(f"naive vs pipeline: {ratios['naive_over_pipeline_x']:.2f}x wall, "
              f"{ratios['naive_cpu_over_pipeline_x']:.2f}x CPU")
        sizes = {r.playlist: sum(f.stat().st_size for f in (out_a / r.playlist).parent.glob('*.ts'))
                 for r in result.renditions}
        print("pipeline output: " + ", ".join(
            f"{p.split('/')[1]} {r.bitrate / 1000:.0f} kb/s peak, {sizes[p] / 1e6:.1f} MB"
            for p, r in zip(sizes, result.renditions)))
        machine = machine_info(["imageio-ffmpeg", "ffmpeg-python"])
        print(f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
              f"load at start {machine['loadavg_at_start']}")
        if any(r["other_cpu_s"] > 0.2 * r["wall_s"] for r in results.values()):
            print("note: other processes used noticeable CPU meanwhile; compare with care")
        if args.json:
            args.json.write_text(json.dumps({
                "seconds": seconds, "preset": args.preset, "results": results, "ratios": ratios,
                "all_walls_s": all_walls,
                "renditions": [r.__dict__ for r in result.renditions], "machine": machine,
            }, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
