"""GET /videos/{id} latency and throughput, against a bare FastAPI floor measured in the same run.

    .venv/bin/python bench/api_latency.py [--quick] [--json PATH] [--wait-quiet S]

Starts two servers on free loopback ports: (1) `bench/bare_app.py`, whose `GET /videos/{id}` has
the real route's FastAPI dependency chain (same sync/async kinds, so the same threadpool hops) and
returns a static `VideoOut` of a ready video, and (2) the real `coursecrafter-server` in its
embedded default (SQLite, local storage, in-process transcoder) in a temporary COURSECRAFTER_HOME
with a clean environment. In the real server the benchmark registers an instructor, logs in,
creates a course and uploads a video through the public API (POST /uploads, PUT the part to its
pre-signed URL, POST complete):

- `--record ready` (default): a 1 s 1080p clip made with FFmpeg, transcoded by the embedded
  transcoder into the four-rung ladder before any measurement starts; the record is then `ready`
  with renditions, playback and poster URLs (each GET signs both), and nothing runs in the
  background while the load is on;
- `--record queued`: a few bytes, with COURSECRAFTER_TRANSCODE_CONCURRENCY=0 so the job waits in
  `queued` forever (no FFmpeg needed; a cheaper response: no URLs to sign).

Then, with the same bearer access token for every request:

- sequential: one keep-alive client per server, N requests each, alternating request by request,
  so the per-request cost shows without queueing;
- concurrent: C keep-alive clients (100) for a fixed duration per phase, after a warm-up, in
  rounds that alternate the servers (bare, cc, cc, bare, bare, cc, ...) so that a background load
  that drifts hits both alike. Only one server is loaded at a time.

Every phase reports the CPU used by each server, by the load generator (this process) and by every
other process of the machine: the last is the noise, from other people's work on a shared machine.
The figure that matters is the ratio real / bare. Each server's body is checked (200, the video's
id, its size) before and after the load; the load generator itself checks the status of every
response. Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _common import (
    CPUMeter,
    LoadSpec,
    RawHTTPConnection,
    ServerProcess,
    build_request,
    format_table,
    free_port,
    machine_info,
    run_async,
    run_load,
    summarize,
    wait_for_quiet,
)
from bare_app import VIDEO_FILENAME, VIDEO_TITLE

HOST = "127.0.0.1"
API = "/api/v1"
PASSWORD = "bench Tr0ubadour horse"
PACKAGES = ("fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools", "pyjwt",
            "cryptography", "httpx")
NOISY_PCT = 25.0  # other processes above this share of one core make absolute numbers suspect
KEYS = ("coursecrafter", "bare")
LABELS = {"coursecrafter": "coursecrafter", "bare": "bare FastAPI"}


@dataclass(frozen=True)
class Config:
    concurrency: int
    duration: float  # seconds per concurrent phase (one server, one round)
    rounds: int  # concurrent phases per server
    warmup: float  # seconds of concurrent warm-up per server
    sequential: int  # sequential requests per server
    record: str  # "ready" or "queued"
    client_procs: int
    max_requests: int = 1_000_000


def config_from(args: argparse.Namespace) -> Config:
    quick = args.quick
    return Config(
        concurrency=args.concurrency,
        duration=args.duration or (3.0 if quick else 10.0),
        rounds=args.rounds or (2 if quick else 3),
        warmup=1.0 if quick else 2.0,
        sequential=args.sequential or (200 if quick else 500),
        record=args.record,
        client_procs=args.client_procs,
    )


# --------------------------------------------------------------------------------------------
# Servers


def _clean_env() -> dict[str, str]:
    # Nothing of the caller's COURSECRAFTER_* settings may leak into what we measure.
    return {k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")}


def _real_env(home: Path, port: int, record: str) -> dict[str, str]:
    env = _clean_env()
    env.update(
        COURSECRAFTER_HOME=str(home),
        COURSECRAFTER_PUBLIC_URL=f"http://{HOST}:{port}",
        # Setup only: one register and one login. GET /videos never touches argon2.
        COURSECRAFTER_ARGON2_TIME_COST="1",
        COURSECRAFTER_ARGON2_MEMORY_KIB="8192",
        COURSECRAFTER_ARGON2_PARALLELISM="1",
        # One token for the whole run, however long --duration makes it.
        COURSECRAFTER_ACCESS_TOKEN_TTL="7200",
        # 0: no transcoder thread, the job waits in `queued`; 1 (the default) makes a ready video.
        COURSECRAFTER_TRANSCODE_CONCURRENCY="0" if record == "queued" else "1",
    )
    return env


def start_server(key: str, workdir: Path, record: str) -> ServerProcess:
    port = free_port(HOST)
    if key == "coursecrafter":
        script = Path(sys.executable).parent / "coursecrafter-server"
        base = ([str(script)] if script.exists()
                else [sys.executable, "-m", "coursecrafter_server.main"])
        command = [*base, "--host", HOST, "--port", str(port), "--log-level", "warning"]
        env = _real_env(workdir / "coursecrafter-home", port, record)
    else:
        command = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--host", HOST,
                   "--port", str(port), "--log-level", "warning"]
        env = _clean_env()
    # A scratch cwd, so that no `.env` of the caller's working directory is read.
    cwd = workdir / f"cwd-{key}"
    cwd.mkdir(parents=True, exist_ok=True)
    return ServerProcess(LABELS[key], command, port=port, env=env, cwd=cwd,
                         log_path=workdir / f"{key}.log", start_timeout=90.0)


# --------------------------------------------------------------------------------------------
# Setup in the real server: instructor, course, video


class SetupError(RuntimeError):
    pass


def _expect(response: Any, status: int, what: str) -> Any:
    if response.status_code != status:
        raise SetupError(f"{what} answered {response.status_code}: {response.text[:300]}")
    return response.json() if response.content else None


def make_clip(path: Path) -> None:
    """1 s of 1080p30 H.264 + AAC: the ladder gets all four rungs, transcoding stays short."""
    from coursecrafter_worker.pipeline import find_ffmpeg

    argv = [find_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30:d=1",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-t", "1", "-movflags", "+faststart", str(path)]
    subprocess.run(argv, check=True, timeout=120)


def _upload(client: Any, auth: dict[str, str], course_id: str, data: bytes) -> dict[str, Any]:
    """The public upload flow: start, PUT the one part to its pre-signed URL, complete."""
    started = _expect(client.post(f"{API}/uploads", headers=auth, json={
        "filename": VIDEO_FILENAME, "size": len(data), "content_type": "video/mp4",
        "course_id": course_id, "title": VIDEO_TITLE}), 201, "POST /uploads")
    if started["part_count"] != 1:
        raise SetupError(f"expected one part, got {started['part_count']}")
    put = client.put(started["parts"][0]["url"], content=data)  # pre-signed: no bearer
    _expect(put, 200, "PUT part")
    body = {"parts": [{"part_number": 1, "etag": put.headers["etag"]}]}
    return _expect(client.post(f"{API}/uploads/{started['upload_id']}/complete", headers=auth,
                               json=body), 200, "POST /uploads/{id}/complete")


def _wait_ready(client: Any, auth: dict[str, str], video_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        video = _expect(client.get(f"{API}/videos/{video_id}", headers=auth), 200, "GET video")
        if video["status"] == "ready":
            return video  # type: ignore[no-any-return]
        if video["status"] == "failed" or time.monotonic() > deadline:
            raise SetupError(f"video did not get ready: {video['status']} {video.get('error')}")
        time.sleep(0.25)


def setup_real(server: ServerProcess, record: str, workdir: Path) -> tuple[str, str, float]:
    """Register + login an instructor, create a course and a video; (token, video id, setup s)."""
    import httpx

    begin = time.perf_counter()
    username = f"bench{secrets.token_hex(4)}"
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        _expect(client.post(f"{API}/auth/register", json={
            "username": username, "email": f"{username}@example.com", "password": PASSWORD}),
            201, "register")
        login = {"username": username, "password": PASSWORD}
        tokens = _expect(client.post(f"{API}/auth/login", json=login), 200, "login")
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        course = _expect(client.post(f"{API}/courses", headers=auth, json={
            "title": "Optimization for machine learning", "description": "Spring term"}),
            201, "POST /courses")
        if record == "ready":
            clip = workdir / "clip.mp4"
            make_clip(clip)
            video = _upload(client, auth, course["id"], clip.read_bytes())
            video = _wait_ready(client, auth, video["id"], timeout=180.0)
        else:
            video = _upload(client, auth, course["id"], secrets.token_bytes(4096))
            if video["status"] != "queued":
                raise SetupError(f"expected a queued video, got {video['status']}")
    return tokens["access_token"], video["id"], time.perf_counter() - begin


def check_bodies(servers: dict[str, ServerProcess], paths: dict[str, str], token: str,
                 record: str) -> dict[str, dict[str, Any]]:
    """One GET per server: 200, the right id, the expected status and fields; sizes to report."""
    import httpx

    out: dict[str, dict[str, Any]] = {}
    for key, server in servers.items():
        response = httpx.get(server.base_url + paths[key], timeout=10.0,
                             headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise SetupError(f"{LABELS[key]}: GET {paths[key]} answered {response.status_code}")
        data = response.json()
        if data["id"] != paths[key].rsplit("/", 1)[1]:
            raise SetupError(f"{LABELS[key]}: GET {paths[key]} returned video {data['id']}")
        out[key] = {"bytes": len(response.content), "status": data["status"],
                    "renditions": len(data["renditions"]), "fields": sorted(data)}
    expected_status = "ready" if record == "ready" else "queued"
    if out["coursecrafter"]["status"] != expected_status:
        raise SetupError(f"the real video is {out['coursecrafter']['status']},"
                         f" not {expected_status}")
    if out["coursecrafter"]["fields"] != out["bare"]["fields"]:
        raise SetupError("the two servers' bodies have different fields")
    return out


def bare_path(server: ServerProcess, token: str) -> str:
    """The bare app answers any id with its static video (an id drawn at its start): ask for that
    video's own id, so both paths have the same length and the id check below holds for both."""
    import httpx

    response = httpx.get(f"{server.base_url}/videos/{'0' * 32}", timeout=10.0,
                         headers={"Authorization": f"Bearer {token}"})
    return f"/videos/{_expect(response, 200, 'bare GET /videos')['id']}"


# --------------------------------------------------------------------------------------------
# Sequential phase: one keep-alive client per server, requests alternating between servers


async def _sequential(servers: dict[str, ServerProcess], paths: dict[str, str], token: str,
                      n: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    conns = {k: await RawHTTPConnection.open(HOST, s.port) for k, s in servers.items()}
    requests = {k: build_request("GET", paths[k], host=HOST, port=s.port,
                                 headers={"Authorization": f"Bearer {token}"})
                for k, s in servers.items()}
    latencies: dict[str, list[float]] = {k: [] for k in servers}
    errors = dict.fromkeys(servers, 0)
    keys = list(servers)
    try:
        for i in range(n):
            for key in (keys if i % 2 == 0 else keys[::-1]):  # alternate who goes first
                begin = time.perf_counter()
                status, _ = await conns[key].send(requests[key])
                latencies[key].append(time.perf_counter() - begin)
                errors[key] += status != 200
    finally:
        for conn in conns.values():
            conn.close()
    return latencies, errors


def sequential_phase(servers: dict[str, ServerProcess], paths: dict[str, str], token: str,
                     n: int) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    run_async(_sequential(servers, paths, token, min(50, n)))  # warm-up, not counted
    meter = CPUMeter(servers)
    latencies, errors = run_async(_sequential(servers, paths, token, n))
    cpu = meter.read()
    out = {key: {**summarize(latencies[key]), "errors": errors[key],
                 "server_cpu_ms_per_request": 1000.0 * cpu[f"{key}_cpu_s"] / n}
           for key in servers}
    return out, cpu


# --------------------------------------------------------------------------------------------
# Concurrent phases


def round_plan(rounds: int) -> list[str]:
    """bare, cc, cc, bare, bare, cc, ...: each server leads every other round."""
    plan: list[str] = []
    for i in range(rounds):
        plan += ["bare", "coursecrafter"] if i % 2 == 0 else ["coursecrafter", "bare"]
    return plan


def load_phase(servers: dict[str, ServerProcess], key: str, path: str, token: str, cfg: Config,
               duration: float) -> dict[str, Any]:
    """One server under load for `duration`; the raw numbers of that one phase."""
    spec = LoadSpec(host=HOST, port=servers[key].port, method="GET", path=path,
                    headers={"Authorization": f"Bearer {token}"}, expect_status=200,
                    concurrency=cfg.concurrency, duration=duration,
                    max_requests=cfg.max_requests)
    meter = CPUMeter(servers)
    result = run_load(spec, processes=cfg.client_procs)
    cpu = meter.read()
    # Spawned load-generator processes are not "self": take them out of the others' CPU.
    other = cpu["other_cpu_s"] - (result.client_cpu_seconds if result.processes > 1 else 0.0)
    return {
        "server": key, "requests": result.requests, "errors": result.errors,
        "error_samples": result.error_samples, "elapsed_s": result.elapsed,
        "latencies": result.latencies, "server_cpu_s": cpu[f"{key}_cpu_s"],
        "idle_server_cpu_s": sum(cpu[f"{k}_cpu_s"] for k in servers if k != key),
        "client_cpu_s": result.client_cpu_seconds, "other_cpu_s": max(0.0, other),
        "wall_s": cpu["wall_s"],
    }


def merge_phases(phases: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """The rounds of one server as one measurement, plus each round's own figures."""
    elapsed = sum(p["elapsed_s"] for p in phases)
    requests = sum(p["requests"] for p in phases)
    latencies = [x for p in phases for x in p["latencies"]]
    server_cpu = sum(p["server_cpu_s"] for p in phases)
    return {
        "concurrency": concurrency,
        "rounds": len(phases),
        "duration_s": elapsed,
        "requests": requests,
        "errors": sum(p["errors"] for p in phases),
        "error_samples": [s for p in phases for s in p["error_samples"]][:5],
        "requests_per_s": requests / elapsed if elapsed else float("nan"),
        **summarize(latencies),
        "server_cpu_s": server_cpu,
        "server_cpu_pct_of_one_core": 100.0 * server_cpu / elapsed,
        "server_cpu_ms_per_request": 1000.0 * server_cpu / max(1, requests),
        "idle_server_cpu_pct_of_one_core":
            100.0 * sum(p["idle_server_cpu_s"] for p in phases) / elapsed,
        "client_cpu_pct_of_one_core": 100.0 * sum(p["client_cpu_s"] for p in phases) / elapsed,
        "other_cpu_s": sum(p["other_cpu_s"] for p in phases),
        "other_pct_of_one_core": 100.0 * sum(p["other_cpu_s"] for p in phases) / elapsed,
        "per_round": [_round_figures(p) for p in phases],
    }


def _round_figures(phase: dict[str, Any]) -> dict[str, float]:
    """One round on its own: a round far off the others points at noise, not at the server."""
    stats = summarize(phase["latencies"])
    return {"requests_per_s": phase["requests"] / phase["elapsed_s"],
            "p50_ms": stats.get("p50_ms", math.nan), "p99_ms": stats.get("p99_ms", math.nan),
            "other_pct_of_one_core": 100.0 * phase["other_cpu_s"] / phase["elapsed_s"]}


def concurrent_phases(servers: dict[str, ServerProcess], paths: dict[str, str], token: str,
                      cfg: Config) -> dict[str, dict[str, Any]]:
    for key in KEYS:  # warm-up: code paths, SQLite pages, the threadpool's 40 threads
        load_phase(servers, key, paths[key], token, cfg, cfg.warmup)
    phases: dict[str, list[dict[str, Any]]] = {k: [] for k in KEYS}
    for key in round_plan(cfg.rounds):
        phases[key].append(load_phase(servers, key, paths[key], token, cfg, cfg.duration))
    return {key: merge_phases(phases[key], cfg.concurrency) for key in KEYS}


# --------------------------------------------------------------------------------------------
# Run


def server_log_lines(server: ServerProcess) -> list[str]:
    try:
        lines = server.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][:20]


def run_all(cfg: Config, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        servers: dict[str, ServerProcess] = {}
        for key in KEYS:
            print(f"[{LABELS[key]}] starting", file=sys.stderr, flush=True)
            servers[key] = stack.enter_context(start_server(key, workdir, cfg.record))
        print(f"setup: instructor, course, {cfg.record} video ...", file=sys.stderr, flush=True)
        token, video_id, setup_s = setup_real(servers["coursecrafter"], cfg.record, workdir)
        results["setup_s"] = setup_s
        paths = {"coursecrafter": f"{API}/videos/{video_id}",
                 "bare": bare_path(servers["bare"], token)}
        results["paths"] = {"coursecrafter": f"{API}/videos/<id>", "bare": "/videos/<id>"}
        results["body_before"] = check_bodies(servers, paths, token, cfg.record)
        print(f"sequential: {cfg.sequential} requests per server ...", file=sys.stderr, flush=True)
        results["sequential"], results["sequential_cpu"] = sequential_phase(
            servers, paths, token, cfg.sequential)
        print(f"concurrent: {cfg.concurrency} clients, warm-up {cfg.warmup:g} s each, then "
              f"{' '.join(round_plan(cfg.rounds))} at {cfg.duration:g} s ...",
              file=sys.stderr, flush=True)
        results["concurrent"] = concurrent_phases(servers, paths, token, cfg)
        # The record must not have changed under the load (status, size of the body).
        results["body_after"] = check_bodies(servers, paths, token, cfg.record)
        results["server_log"] = {k: server_log_lines(s) for k, s in servers.items()}
    return results


# --------------------------------------------------------------------------------------------
# Report


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def build_rows(results: dict[str, Any], cfg: Config) -> tuple[list[list[str]], dict[str, float]]:
    cc, bare = results["concurrent"]["coursecrafter"], results["concurrent"]["bare"]
    sc, sb = results["sequential"]["coursecrafter"], results["sequential"]["bare"]
    rows: list[list[str]] = []
    ratios: dict[str, float] = {}
    c, n = cfg.concurrency, cfg.sequential

    def row(name: str, a: float, b: float, ratio_key: str | None = None) -> None:
        shown = ""
        if ratio_key:
            ratios[ratio_key] = a / b if b else float("nan")
            shown = f"{ratios[ratio_key]:.2f}x"
            if ratio_key == "rps":
                shown += f" ({100 * ratios[ratio_key]:.0f}% of floor)"
        rows.append([name, _fmt(a), _fmt(b), shown])

    rows.append([f"{c} clients: requests", f"{cc['requests']:,}", f"{bare['requests']:,}", ""])
    rows.append([f"{c} clients: errors (non-200)", str(cc["errors"]), str(bare["errors"]), ""])
    row(f"{c} clients: req/s", cc["requests_per_s"], bare["requests_per_s"], "rps")
    for q in ("p50", "p90", "p99", "max"):
        row(f"{c} clients: {q} (ms)", cc[f"{q}_ms"], bare[f"{q}_ms"],
            q if q in ("p50", "p99") else None)
    row(f"{c} clients: server CPU (s)", cc["server_cpu_s"], bare["server_cpu_s"])
    row(f"{c} clients: server CPU (% of one core)", cc["server_cpu_pct_of_one_core"],
        bare["server_cpu_pct_of_one_core"])
    row(f"{c} clients: server CPU per request (ms)", cc["server_cpu_ms_per_request"],
        bare["server_cpu_ms_per_request"], "cpu_per_request")
    row(f"{c} clients: load generator CPU (% of one core)", cc["client_cpu_pct_of_one_core"],
        bare["client_cpu_pct_of_one_core"])
    row(f"{c} clients: other processes CPU (% of one core)", cc["other_pct_of_one_core"],
        bare["other_pct_of_one_core"])
    row(f"1 client: p50 (ms), n={n}", sc["p50_ms"], sb["p50_ms"], "sequential_p50")
    row(f"1 client: p99 (ms), n={n}", sc["p99_ms"], sb["p99_ms"], "sequential_p99")
    row("1 client: mean (ms)", sc["mean_ms"], sb["mean_ms"])
    row("1 client: server CPU per request (ms)", sc["server_cpu_ms_per_request"],
        sb["server_cpu_ms_per_request"], "sequential_cpu_per_request")
    rows.append(["1 client: errors (non-200)", str(sc["errors"]), str(sb["errors"]), ""])
    body = results["body_before"]
    rows.append(["response body (bytes), renditions",
                 f"{body['coursecrafter']['bytes']}, {body['coursecrafter']['renditions']}",
                 f"{body['bare']['bytes']}, {body['bare']['renditions']}", ""])
    return rows, ratios


def render(machine: dict[str, Any], cfg: Config, results: dict[str, Any],
           rows: list[list[str]]) -> str:
    out: list[str] = []
    out.append(f"machine: {machine['nproc']} CPUs usable ({machine['cpu_count']} online), "
               f"{machine['cpu_model']}, {machine['memory_gib']} GiB; Python {machine['python']} "
               f"({machine['platform']}); load average at start "
               + "/".join(f"{x:.2f}" for x in machine["loadavg_at_start"] or []))
    out.append("versions: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v))
    order = " ".join("cc" if k == "coursecrafter" else k for k in round_plan(cfg.rounds))
    out.append(f"GET /videos/{{id}} of a {cfg.record} video (real: SQLite + local storage,"
               f" embedded; bare: bench/bare_app.py); load generator: raw HTTP/1.1 keep-alive"
               f" client on asyncio+uvloop, {cfg.client_procs} process(es); {cfg.concurrency}"
               f" clients, {cfg.rounds} rounds x {cfg.duration:g} s per server (order {order}),"
               f" after {cfg.warmup:g} s warm-up; sequential {cfg.sequential} per server")
    out.append("")
    out.append(format_table(["metric", "coursecrafter", "bare FastAPI", "ratio (cc / bare)"], rows))
    out.append("")
    for key in KEYS:
        rounds = results["concurrent"][key]["per_round"]
        out.append(f"{LABELS[key]} rounds: " + "; ".join(
            f"{r['requests_per_s']:,.0f} req/s p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} ms"
            f" (others {r['other_pct_of_one_core']:.0f}%)" for r in rounds))
    others = {f"concurrent {LABELS[k]}": results["concurrent"][k]["other_pct_of_one_core"]
              for k in KEYS}
    others["sequential"] = results["sequential_cpu"]["other_pct_of_one_core"]
    out.append("other processes on the machine (% of one core): "
               + ", ".join(f"{k} {v:.0f}%" for k, v in others.items()))
    worst = max(r["other_pct_of_one_core"]
                for k in KEYS for r in results["concurrent"][k]["per_round"])
    if max(worst, *others.values()) > NOISY_PCT:
        out.append(f"WARNING: other processes used more than {NOISY_PCT:.0f}% of a core (worst"
                   f" round {worst:.0f}%); absolute numbers are pessimistic, the ratios less"
                   " affected (interleaved rounds).")
    out.append("problems: " + (", ".join(problems(results)) or "none (0 errors, empty server logs,"
                               " same body before and after)"))
    return "\n".join(out)


def problems(results: dict[str, Any]) -> list[str]:
    found = []
    for key in KEYS:
        for phase in ("concurrent", "sequential"):
            data = results[phase][key]
            if data["errors"]:
                found.append(f"{LABELS[key]} {phase}: {data['errors']} errors "
                             f"{data.get('error_samples', '')}")
        before, after = results["body_before"][key], results["body_after"][key]
        if (before["bytes"], before["status"]) != (after["bytes"], after["status"]):
            found.append(f"{LABELS[key]}: body changed during the run: {before} -> {after}")
        if results["server_log"][key]:
            found.append(f"{LABELS[key]} server log ({len(results['server_log'][key])} lines, "
                         f"first): {results['server_log'][key][0]}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="GET /videos/{id} latency vs a bare FastAPI floor.")
    parser.add_argument("--quick", action="store_true", help="a short run (about 30 s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent clients (100)")
    parser.add_argument("--duration", type=float, help="seconds per round per server (10; quick 3)")
    parser.add_argument("--rounds", type=int, help="concurrent rounds per server (3; quick 2)")
    parser.add_argument("--sequential", type=int,
                        help="sequential requests per server, one client (500; quick 200)")
    parser.add_argument("--record", choices=("ready", "queued"), default="ready",
                        help="ready: a transcoded 1 s clip (needs FFmpeg); queued: a few bytes,"
                             " transcoding off")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="load generator processes (1: in this process)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to SECONDS for an idle machine (shared machines)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (server logs)")
    args = parser.parse_args(argv)
    cfg = config_from(args)
    if not (0 < cfg.duration <= 120 and 0 < cfg.rounds <= 10 and 0 < cfg.concurrency <= 1000
            and 0 < cfg.sequential <= 20000 and 0 < cfg.client_procs <= 16):
        parser.error("keep the run bounded: duration <= 120 s, rounds <= 10, concurrency <= 1000,"
                     " sequential <= 20000, client-procs <= 16")

    if args.wait_quiet > 0:
        busy = wait_for_quiet(min(args.wait_quiet, 1800.0))
        print(f"machine busy at start: {busy:.0f}% of one core", file=sys.stderr, flush=True)
    machine = machine_info(PACKAGES)
    workdir = Path(tempfile.mkdtemp(prefix="coursecrafter-bench-api-"))
    started = time.perf_counter()
    try:
        results = run_all(cfg, workdir)
    finally:
        if args.keep:
            print(f"scratch dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows, ratios = build_rows(results, cfg)
    report = render(machine, cfg, results, rows)
    total = time.perf_counter() - started
    print(report)
    print(f"(run took {total:.0f} s, of which setup {results['setup_s']:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "api_latency",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run_seconds": total,
            "machine": machine,
            "config": asdict(cfg),
            "results": results,  # statistics only: no raw latency lists
            "ratios_coursecrafter_over_bare": ratios,
            "table": format_table(["metric", "coursecrafter", "bare FastAPI", "ratio (cc / bare)"],
                                  rows),
            "report": report,
        }, indent=2, default=str) + "\n")
        print(f"results written to {args.json}", file=sys.stderr)
    failed = any(results[phase][k]["errors"]
                 for phase in ("concurrent", "sequential") for k in KEYS)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
