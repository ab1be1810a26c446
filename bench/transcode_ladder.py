"""Transcoding cost of the HLS ladder: today's settings vs the lecture-aware ladder vs bare FFmpeg.

    .venv/bin/python bench/transcode_ladder.py [--duration 60] [--sources lecture,webm,motion]
        [--motion-duration S] [--preset veryfast] [--rounds N] [--wait-quiet S] [--json PATH] [--keep DIR]
    .venv/bin/python bench/transcode_ladder.py --legacy [--quick]   # the issue-4 comparison

Sources (1080p30, `--duration` s, default 60; the issue asks for 600), made once with FFmpeg's
lavfi and cached under bench/results/sources/ (or `--keep DIR`):
- `lecture`: H.264/AAC (x264 veryfast CRF 18, like an uploaded screen recording): slides (a plain
  background, a title, nine lines of text drawn with drawtext in DejaVu Sans, or text-like bars
  without the font) that change every 20-60 s, a 384x216 "talking head" inset (testsrc2 under
  camera-like temporal noise), a red pointer that moves 6 s out of every 15, a voice-like
  modulated tone (`make_lecture()`);
- `webm`: the same picture and voice as VP9/Opus WebM (libvpx-vp9 realtime, CRF 30);
- `motion`: high motion: a Mandelbrot zoom (every pixel changes every frame) with a scrolling
  testsrc2 panel sliding across it, and a tone (`make_motion()`).

Per source, in one run, interleaved when `--rounds` > 1 (each mode's fastest round is kept):
  a. today: `transcode(content="motion")`, the pipeline's previous settings on every source;
  b. lecture-aware: `transcode()` end to end, with its sampling pass (`motion.analyze`) first;
  c. bare FFmpeg: the very argv b. ran (`build_command()` for b.'s plan), started directly.
Reported: wall s, x realtime (media s / wall s), FFmpeg CPU s (children rusage: every FFmpeg
the mode ran, the analysis included), x realtime on free cores (media s / (CPU s / cores), what
the same work gives when nothing else runs), the CPU the rest of the machine used meanwhile,
SSIM (FFmpeg's ssim filter, "All") of every rung against the source scaled to the rung with
bicubic and compared at the source frame rate (a 10 fps rung is repeated to 30: dropped frames
count against it), and the bytes of every rung's segments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import format_table, machine_info, system_cpu_seconds, wait_for_quiet  # noqa: E402

from coursecrafter_worker.pipeline import build_command, find_ffmpeg, plan_ladder, probe, transcode  # noqa: E402
from coursecrafter_worker.pipeline.probe import input_options, input_url  # noqa: E402
from coursecrafter_worker.pipeline.ladder import CONTENT_MOTION  # noqa: E402
from coursecrafter_worker.pipeline.transcode import poster_time  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent


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


FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/TTF/DejaVuSans.ttf",
         "/System/Library/Fonts/Supplemental/Arial.ttf")
SLIDE_SECONDS = (20, 35, 50, 30, 60, 25, 40)
SLIDE_COLOURS = ("0xf4f1ea", "0x1d2b3a", "0xffffff", "0x203020", "0xfaf3d0", "0x2a1d3a")
WORDS = ("signal energy sample filter kernel matrix vector proof lemma bound gradient network "
         "latency cache thread entropy channel spectrum basis rank eigen prior loss model").split()


def _slides_filter(seconds: int, font: str | None) -> str:
    import random

    rnd = random.Random(7)
    parts: list[str] = []
    t, i = 0.0, 0
    while t < seconds:
        a, b = t, min(float(seconds), t + SLIDE_SECONDS[i % len(SLIDE_SECONDS)])
        bg = SLIDE_COLOURS[i % len(SLIDE_COLOURS)]
        fg = "white" if bg in ("0x1d2b3a", "0x203020", "0x2a1d3a") else "0x202020"
        en = f"enable='between(t,{a},{b - 0.001})'"
        parts.append(f"drawbox=x=0:y=0:w=iw:h=ih:color={bg}:t=fill:{en}")
        parts.append(f"drawbox=x=80:y=190:w=1760:h=4:color={fg}:t=fill:{en}")
        if font:
            parts.append(f"drawtext=fontfile={font}:text='Lecture 4 - part {i + 1}':"
                         f"fontsize=72:fontcolor={fg}:x=80:y=80:{en}")
        for line in range(9):
            y = 240 + line * 80
            words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(4, 9)))
            if font:
                parts.append(f"drawtext=fontfile={font}:text='- {words}':fontsize=44:"
                             f"fontcolor={fg}:x=120:y={y}:{en}")
            else:
                parts.append(f"drawbox=x=120:y={y}:w={len(words) * 22}:h=36:color={fg}:t=fill:{en}")
        if i % 2:
            parts.append(f"drawgrid=x=1200:y=300:w=80:h=80:t=2:color={fg}@0.6:{en}")
        t, i = b, i + 1
    return ",".join(parts)


def make_lecture(path: Path, seconds: int, ffmpeg: str, *, webm: bool = False) -> None:
    """A slide lecture, 1920x1080 30 fps (see the module doc)."""
    font = next((f for f in FONTS if Path(f).is_file()), None)
    graph = (
        f"[0:v]{_slides_filter(seconds, font)}[bg];"
        "[1:v]noise=alls=10:allf=t[head];"
        "[bg][head]overlay=x=W-w-40:y=H-h-40[withhead];"
        "[withhead][2:v]overlay=x='900+600*sin(0.7*min(mod(t,15),6))':"
        "y='560+300*sin(1.1*min(mod(t,15),6))'[v]"
    )
    voice = ("aevalsrc='0.4*sin(2*PI*(140+30*sin(2*PI*0.7*t))*t)*(0.5+0.5*sin(2*PI*3.3*t))"
             f"*gt(sin(2*PI*0.25*t),-0.6)':s=48000:d={seconds}")
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-f", "lavfi", "-i", f"color=c=white:s=1920x1080:r=30:d={seconds}",
            "-f", "lavfi", "-i", f"testsrc2=s=384x216:r=30:d={seconds}",
            "-f", "lavfi", "-i", f"color=c=red:s=28x28:r=30:d={seconds}",
            "-f", "lavfi", "-i", voice,
            "-filter_complex", graph, "-map", "[v]", "-map", "3:a"]
    if webm:
        argv += ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
                 "-crf", "30", "-b:v", "0", "-pix_fmt", "yuv420p", "-c:a", "libopus", "-b:a", "96k"]
    else:
        argv += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                 "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"]
    subprocess.run([*argv, "-t", str(seconds), str(path)], check=True)


def make_motion(path: Path, seconds: int, ffmpeg: str) -> None:
    """High motion, 1920x1080 30 fps: a Mandelbrot zoom with a scrolling testsrc2 panel."""
    graph = ("[0:v]scale=1920:1080[b];[1:v]scroll=h=0.01[p];"
             "[b][p]overlay=x='mod(t*300,1280)':y=200[v]")
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-f", "lavfi", "-i", f"mandelbrot=s=960x540:r=30:maxiter=160:end_pts={seconds * 2}:"
                                 "end_scale=0.02",
            "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-filter_complex", graph, "-map", "[v]", "-map", "2:a",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-t", str(seconds), str(path)]
    subprocess.run(argv, check=True)


SOURCES = {
    "lecture": ("lecture-{s}s-1080p.mp4", lambda p, s, ff: make_lecture(p, s, ff)),
    "webm": ("lecture-{s}s-1080p.webm", lambda p, s, ff: make_lecture(p, s, ff, webm=True)),
    "motion": ("motion-{s}s-1080p.mp4", make_motion),
}


def source_file(kind: str, seconds: int, directory: Path, ffmpeg: str) -> Path:
    """The cached source (made atomically on first use)."""
    name, maker = SOURCES[kind]
    path = directory / name.format(s=seconds)
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".tmp-" + path.name)
        print(f"making {path.name} ...", file=sys.stderr)
        maker(tmp, seconds, ffmpeg)
        os.replace(tmp, path)
    return path


def ssim_per_rung(source: Path, out: Path, renditions: list, fps: float, ffmpeg: str,
                  seconds: float | None = None) -> list[float]:
    """SSIM (All) of each rung against the source scaled to it, compared at `fps`; over the
    first `seconds` of each (None: all)."""
    video = [r for r in renditions if r.height]
    limit = ["-t", f"{seconds:g}"] if seconds else []
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "info", *limit, "-i", str(source)]
    for r in video:
        argv += [*limit, "-i", str(out / r.playlist)]
    graph = [f"[0:v]setpts=PTS-STARTPTS,split={len(video)}" + "".join(f"[r{i}]" for i in range(len(video)))]
    for i, r in enumerate(video):
        graph.append(
            f"[r{i}]scale={r.width}:{r.height}:flags=bicubic,setsar=1,format=yuv420p[ref{i}];"
            f"[{i + 1}:v]setpts=PTS-STARTPTS,fps={fps:g},setsar=1,format=yuv420p[dis{i}];"
            f"[dis{i}][ref{i}]ssim=shortest=1[o{i}]"
        )
    argv += ["-filter_complex", ";".join(graph)]
    for i in range(len(video)):
        argv += ["-map", f"[o{i}]", "-f", "null", "-"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    found = sorted((int(k), float(v)) for k, v in
                   re.findall(r"Parsed_ssim_(\d+) @[^\]]*\] SSIM .*?All:([\d.]+)", proc.stderr))
    if len(found) != len(video):
        raise SystemExit(f"SSIM failed:\n{proc.stderr[-3000:]}")
    return [round(v, 4) for _, v in found]


def rung_bytes(out: Path, renditions: list) -> list[int]:
    return [sum(f.stat().st_size for f in (out / r.playlist).parent.glob("*.ts")) for r in renditions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="source length in s (issue: 600)")
    parser.add_argument("--motion-duration", type=int, default=None,
                        help="length of the high-motion source (default: --duration); it costs "
                             "~3x the CPU of the lecture per second")
    parser.add_argument("--sources", default="lecture,webm,motion")
    parser.add_argument("--preset", default="veryfast", help="x264 preset of today's settings")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="make/reuse the sources and keep outputs here")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S")
    parser.add_argument("--legacy", action="store_true",
                        help="the issue-4 comparison (pipeline vs bare vs one process per rung)")
    parser.add_argument("--quick", action="store_true", help="with --legacy: a 10 s clip")
    args = parser.parse_args()
    if args.legacy:
        return legacy_main(args)

    ffmpeg = find_ffmpeg()
    cores = os.cpu_count() or 1
    sources_dir = args.keep or BENCH_DIR / "results" / "sources"
    work = Path(tempfile.mkdtemp(prefix="cc-bench-ladder-"))
    report: dict[str, dict] = {}
    try:
        kinds = [k.strip() for k in args.sources.split(",") if k.strip()]
        paths = {k: source_file(k, (args.motion_duration or args.duration) if k == "motion"
                                else args.duration, sources_dir, ffmpeg) for k in kinds}
        if args.wait_quiet:
            print(f"machine busy: {wait_for_quiet(args.wait_quiet):.0f}% of one core", file=sys.stderr)
        for kind in kinds:
            source = paths[kind]
            info = probe(source, ffmpeg=ffmpeg)
            results: dict[str, dict] = {}
            for round_ in range(args.rounds):
                for mode in ("a. today (content=motion)", "b. lecture-aware transcode()",
                             "c. bare FFmpeg, b.'s argv"):
                    print(f"{kind} round {round_ + 1}/{args.rounds}: {mode} ...", file=sys.stderr)
                    out = work / f"{kind}-{mode[0]}"
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    if mode[0] == "c":
                        content = results["b. lecture-aware transcode()"]["content"]
                        rungs = plan_ladder(info, content)
                        argv = build_command(source, info, rungs, ffmpeg=ffmpeg, preset=args.preset)
                        with Meter() as m:
                            run(argv, out)
                        renditions = [type("R", (), {"playlist": f"hls/{r.name}/index.m3u8",
                                                     "width": r.width, "height": r.height})()
                                      for r in rungs]
                        names = [r.name for r in rungs]
                    else:
                        forced = CONTENT_MOTION if mode[0] == "a" else None
                        with Meter() as m:
                            result = transcode(source, out, preset=args.preset, ffmpeg=ffmpeg,
                                               content=forced)
                        renditions = result.renditions
                        content = result.content
                        names = [r.playlist.split("/")[1] for r in renditions]
                    print(f"  {m.wall:.1f} s wall, {m.cpu:.1f} CPU s, other {m.other:.1f}",
                          file=sys.stderr)
                    if mode in results and results[mode]["wall_s"] <= m.wall:
                        continue
                    results[mode] = {
                        "content": content,
                        "wall_s": round(m.wall, 2),
                        "realtime_x": round(info.duration / m.wall, 2),
                        "ffmpeg_cpu_s": round(m.cpu, 1),
                        "free_cores_realtime_x": round(info.duration / (m.cpu / cores), 2),
                        "other_cpu_s": round(m.other, 1),
                        "rungs": names,
                        "ssim": ssim_per_rung(source, out, renditions, info.fps or 30.0, ffmpeg),
                        "bytes": rung_bytes(out, renditions),
                    }
            report[kind] = {"duration_s": round(info.duration, 2), "results": results}
            print_source(kind, info.duration, results, cores)
        machine = machine_info(["imageio-ffmpeg", "ffmpeg-python"])
        print(f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), load at start "
              f"{machine['loadavg_at_start']}; FFmpeg {ffmpeg}")
        if args.json:
            args.json.write_text(json.dumps({"duration": args.duration, "preset": args.preset,
                                             "sources": report, "machine": machine}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_source(kind: str, duration: float, results: dict[str, dict], cores: int) -> None:
    names = next(iter(results.values()))["rungs"]
    print()
    print(f"{kind}: {duration:.0f} s of 1080p30; {cores} cores")
    header = ["mode", "content", "wall s", "x realtime", "FFmpeg CPU s", "x RT free cores",
              "other CPU s", *[f"SSIM {n}" for n in names], *[f"MB {n}" for n in names]]
    rows = []
    for mode, r in results.items():
        ssim = r["ssim"] + [""] * (len(names) - len(r["ssim"]))
        size = [f"{b / 1e6:.2f}" for b in r["bytes"]]
        rows.append([mode, r["content"], f"{r['wall_s']:.1f}", f"{r['realtime_x']:.2f}",
                     f"{r['ffmpeg_cpu_s']:.1f}", f"{r['free_cores_realtime_x']:.2f}",
                     f"{r['other_cpu_s']:.1f}", *map(str, ssim), *size])
    print(format_table(header, rows))


def legacy_main(args: argparse.Namespace) -> None:
    """The issue-4 benchmark (`--legacy`): make_source(), today's settings forced."""
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
                result = transcode(source, out_a, preset=args.preset, ffmpeg=ffmpeg,
                                   content=CONTENT_MOTION)
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
