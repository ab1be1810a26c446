"""Auth API latency and throughput, against a bare FastAPI floor measured in the same run.

    .venv/bin/python bench/auth_latency.py [--quick] [--json PATH]      (`make bench`)

Starts two servers on free loopback ports: (1) `bench/bare_app.py`, the same request/response
shapes and FastAPI dependency chain with no work behind them, the "framework floor", and (2) the
real `coursecrafter-server` in its embedded default (SQLite and a generated RS256 key in a
temporary COURSECRAFTER_HOME, rate limits raised so they never trigger). Only one of them is under
load at any moment (the other idles; its CPU is reported), and the measurements alternate between
them so that a background that drifts (other people's tests on a shared machine) hits both alike:

- login: N sequential logins per server on one keep-alive connection each, alternating (argon2id
  dominates, by design);
- refresh: one sequential chain of N refreshes per server, each presenting the token the previous
  one returned (rotation: a refresh token is good for one use), alternating;
- GET /me: C concurrent keep-alive clients, in 8 rounds of duration/4 (bare, cc, cc, bare,
  cc, bare, bare, cc): requests/s, p50, p99, errors, server CPU per request;
- coursecrafter only: login with an unknown user vs a known user with a wrong password,
  interleaved, to show that both cost one argon2 verification.

Every phase also reports the CPU used by each server, by the load generator and by every other
process of the machine; the last is the noise, and the report warns when it is high.

The load generator is `_common.RawHTTPConnection` (a minimal HTTP/1.1 keep-alive client on
asyncio + uvloop), run in this process, which does nothing else meanwhile; `--client httpx`
switches to httpx.AsyncClient and `--client-procs N` spreads the clients over N processes. The
CPU time of the server under load and of the load generator show which side saturates.

Opt-in extras: `--concurrent-logins N` (N clients logging in at once: throughput and the
server's peak memory), `--wait-quiet S` (wait up to S seconds for an idle machine first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _common import (  # noqa: E402
    CPUMeter,
    LoadResult,
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

HOST = "127.0.0.1"
PASSWORD = "bench Tr0ubadour horse"
PACKAGES = ("fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools", "argon2-cffi",
            "pyjwt", "cryptography", "httpx")
RAISED_LIMITS = {
    "COURSECRAFTER_LOGIN_RATE_LIMIT_ADDRESS": "1000000/minute",
    "COURSECRAFTER_LOGIN_RATE_LIMIT_ACCOUNT": "1000000/minute",
    "COURSECRAFTER_REFRESH_RATE_LIMIT_ADDRESS": "1000000/minute",
    "COURSECRAFTER_REFRESH_RATE_LIMIT_ACCOUNT": "1000000/minute",
    "COURSECRAFTER_LOGIN_FAILURE_LIMIT_ACCOUNT_ADDRESS": "1000000/minute",
    "COURSECRAFTER_LOGIN_FAILURE_LIMIT_ADDRESS": "1000000/minute",
    "COURSECRAFTER_LOGIN_FAILURE_LIMIT_DEVICE": "1000000/minute",
    "COURSECRAFTER_REGISTER_RATE_LIMIT_ADDRESS": "1000000/minute",
}


@dataclass(frozen=True)
class Config:
    logins: int
    refreshes: int
    timing_each: int
    concurrency: int
    duration: float
    warmup_duration: float
    warmup_logins: int
    warmup_refreshes: int
    max_requests: int
    client: str
    client_procs: int
    concurrent_logins: int
    pin: bool


def config_from(args: argparse.Namespace) -> Config:
    quick = args.quick
    return Config(
        logins=args.logins or (10 if quick else 100),
        refreshes=args.refreshes or (50 if quick else 200),
        timing_each=args.timing or (10 if quick else 50),
        concurrency=args.concurrency,
        duration=args.duration or (4.0 if quick else 10.0),
        warmup_duration=1.0 if quick else 2.0,
        warmup_logins=2 if quick else 3,
        warmup_refreshes=10 if quick else 20,
        max_requests=300_000,
        client=args.client,
        client_procs=args.client_procs,
        concurrent_logins=args.concurrent_logins,
        pin=args.pin,
    )


# --------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    prefix: str  # where login, refresh and me live
    real: bool  # the real server (register a user, timing-safety test)


BARE = Target("bare", "bare FastAPI", "", real=False)
COURSECRAFTER = Target("coursecrafter", "coursecrafter", "/api/v1/auth", real=True)
TARGETS = {t.key: t for t in (BARE, COURSECRAFTER)}
# GET /me rounds: A B B A B A A B, so that a background load that drifts, or comes and goes,
# falls on both servers alike as far as it can; each server gets half the rounds.
ME_ROUNDS = ("bare", "coursecrafter", "coursecrafter", "bare",
             "coursecrafter", "bare", "bare", "coursecrafter")


def _server_command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "coursecrafter-server"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "coursecrafter_server.main"]
    return [*base, "--host", HOST, "--port", str(port), "--log-level", "warning"]


def _clean_env() -> dict[str, str]:
    # Nothing of the caller's COURSECRAFTER_* settings may leak into what we measure.
    return {k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")}


def start_target(target: Target, workdir: Path, cpus: set[int] | None = None) -> ServerProcess:
    port = free_port(HOST)
    env = _clean_env()
    if target.real:
        home = workdir / "coursecrafter-home"
        env.update(
            COURSECRAFTER_HOME=str(home),
            COURSECRAFTER_PUBLIC_URL=f"http://{HOST}:{port}",
            **RAISED_LIMITS,
        )
        command = _server_command(port)
    else:
        command = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--host", HOST,
                   "--port", str(port), "--log-level", "warning"]
    # The cwd is a scratch dir so that no `.env` of the caller's working directory is read.
    cwd = workdir / f"cwd-{target.key}"
    cwd.mkdir(parents=True, exist_ok=True)
    return ServerProcess(target.label, command, port=port, env=env, cwd=cwd, cpus=cpus,
                         log_path=workdir / f"{target.key}.log", start_timeout=90.0)


# --------------------------------------------------------------------------------------------
# Sequential phases (one keep-alive connection per server, requests alternating between them)


class Session:
    def __init__(self, conn: RawHTTPConnection, port: int) -> None:
        self.conn = conn
        self.port = port

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, float]:
        all_headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        request = build_request(method, path, host=HOST, port=self.port, headers=all_headers,
                                body=payload)
        begin = time.perf_counter()
        status, raw = await self.conn.send(request)
        elapsed = time.perf_counter() - begin
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return status, data, elapsed


class PhaseError(RuntimeError):
    pass


def _per_request(cpu: dict[str, float], key: str, requests: int) -> dict[str, float]:
    return {"server_cpu_ms_per_request": 1000.0 * cpu[f"{key}_cpu_s"] / requests
            if requests else float("nan")}


def _alternating(keys: list[str], i: int) -> list[str]:
    return keys if i % 2 == 0 else keys[::-1]


async def sequential_phases(servers: dict[str, ServerProcess], cfg: Config,
                            results: dict[str, dict[str, Any]], noise: dict[str, Any]) -> dict[str, str]:
    """Login, refresh and the timing test; returns a valid access token per server."""
    keys = list(servers)
    sessions: dict[str, Session] = {}
    try:
        for key, server in servers.items():
            sessions[key] = Session(await RawHTTPConnection.open(HOST, server.port), server.port)
        credentials: dict[str, dict[str, str]] = {}
        tokens: dict[str, dict[str, Any]] = {}
        for key in keys:
            target, session, p = TARGETS[key], sessions[key], TARGETS[key].prefix
            username = f"bench{secrets.token_hex(4)}"
            if target.real:
                status, data, _ = await session.call("POST", f"{p}/register", {
                    "username": username, "email": f"{username}@example.com", "password": PASSWORD})
                if status != 201:
                    raise PhaseError(f"{target.label}: register answered {status}: {data}")
            credentials[key] = {"username": username, "password": PASSWORD}
            # Warm-up: code paths, SQLite pages, argon2 memory, the threadpool.
            for _ in range(cfg.warmup_logins):
                status, data, _ = await session.call("POST", f"{p}/login", credentials[key])
                if status != 200:
                    raise PhaseError(f"{target.label}: login answered {status}: {data}")
                tokens[key] = data
            for _ in range(cfg.warmup_refreshes):
                status, data, _ = await session.call(
                    "POST", f"{p}/refresh", {"refresh_token": tokens[key]["refresh_token"]})
                if status != 200:
                    raise PhaseError(f"{target.label}: refresh answered {status}: {data}")
                tokens[key] = data

        # Login: each round one login on each server, the order alternating.
        latencies: dict[str, list[float]] = {k: [] for k in keys}
        errors = dict.fromkeys(keys, 0)
        meter = CPUMeter(servers)
        for i in range(cfg.logins):
            for key in _alternating(keys, i):
                status, data, elapsed = await sessions[key].call(
                    "POST", f"{TARGETS[key].prefix}/login", credentials[key])
                latencies[key].append(elapsed)
                if status == 200:
                    tokens[key] = data
                else:
                    errors[key] += 1
        noise["login"] = cpu = meter.read()
        for key in keys:
            results[key]["login"] = {**summarize(latencies[key]), "errors": errors[key],
                                     **_per_request(cpu, key, cfg.logins)}

        # Refresh: one chain per server, each presenting the token the previous refresh returned.
        latencies = {k: [] for k in keys}
        errors = dict.fromkeys(keys, 0)
        broken: set[str] = set()
        meter = CPUMeter(servers)
        for i in range(cfg.refreshes):
            for key in _alternating(keys, i):
                if key in broken:
                    continue  # a broken chain cannot go on: the next token is unknown
                status, data, elapsed = await sessions[key].call(
                    "POST", f"{TARGETS[key].prefix}/refresh",
                    {"refresh_token": tokens[key]["refresh_token"]})
                latencies[key].append(elapsed)
                if status == 200:
                    tokens[key] = data
                else:
                    errors[key] += 1
                    broken.add(key)
                    results[key]["refresh_chain_broken_at"] = {"index": i, "status": status,
                                                               "body": data}
        noise["refresh"] = cpu = meter.read()
        for key in keys:
            results[key]["refresh"] = {**summarize(latencies[key]), "errors": errors[key],
                                       **_per_request(cpu, key, len(latencies[key]))}

        # The access tokens must work before /me is loaded with them.
        for key in keys:
            status, data, _ = await sessions[key].call(
                "GET", f"{TARGETS[key].prefix}/me",
                headers={"Authorization": f"Bearer {tokens[key]['access_token']}"})
            if status != 200:
                raise PhaseError(f"{TARGETS[key].label}: GET me answered {status}: {data}")

        for key in keys:
            if TARGETS[key].real:
                meter = CPUMeter(servers)
                results[key]["timing"] = await timing_phase(
                    sessions[key], TARGETS[key].prefix, credentials[key]["username"], cfg.timing_each)
                noise["timing"] = meter.read()
    finally:
        for session in sessions.values():
            session.conn.close()
    return {key: tokens[key]["access_token"] for key in keys}


async def timing_phase(session: Session, prefix: str, username: str, each: int) -> dict[str, Any]:
    """Unknown user vs wrong password, interleaved so that drift hits both alike."""
    unknown, wrong, unexpected = [], [], 0
    for i in range(2 * each):
        if i % 2 == 0:
            body = {"username": f"nobody{secrets.token_hex(6)}", "password": PASSWORD}
            sink = unknown
        else:
            body = {"username": username, "password": PASSWORD + "x"}
            sink = wrong
        status, _, elapsed = await session.call("POST", f"{prefix}/login", body)
        sink.append(elapsed)
        if status != 401:
            unexpected += 1
    a, b = summarize(unknown), summarize(wrong)
    diff = a["mean_ms"] - b["mean_ms"]
    half_width = 1.96 * math.sqrt(_var_ms(unknown) / len(unknown) + _var_ms(wrong) / len(wrong))
    return {
        "unknown_user": a,
        "wrong_password": b,
        "mean_difference_ms": diff,
        "mean_difference_ci95_ms": [diff - half_width, diff + half_width],
        "unexpected_status": unexpected,
    }


def _var_ms(seconds: list[float]) -> float:
    ms = [s * 1000 for s in seconds]
    mean = sum(ms) / len(ms)
    return sum((x - mean) ** 2 for x in ms) / max(1, len(ms) - 1)


# --------------------------------------------------------------------------------------------
# Concurrent phase: GET /me, in interleaved rounds (ME_ROUNDS)


def _load(server: ServerProcess, path: str, token: str, cfg: Config, duration: float) -> LoadResult:
    spec = LoadSpec(host=HOST, port=server.port, method="GET", path=path,
                    headers={"Authorization": f"Bearer {token}"}, expect_status=200,
                    concurrency=cfg.concurrency, duration=duration,
                    max_requests=cfg.max_requests, client=cfg.client)
    return run_load(spec, processes=cfg.client_procs)


def load_rounds(servers: dict[str, ServerProcess], plan: list[tuple[str, str]], token: dict[str, str],
                cfg: Config, round_s: float) -> dict[str, dict[str, Any]]:
    """Run `plan` [(server key, path)] in order, `round_s` each; merge the rounds per entry."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for key, path in plan:
        meter = CPUMeter(servers)
        result = _load(servers[key], path, token[key], cfg, round_s)
        cpu = meter.read()
        client_cpu = result.client_cpu_seconds
        other = cpu["other_cpu_s"] - (client_cpu if result.processes > 1 else 0.0)
        m = merged.setdefault((key, path), {"requests": 0, "errors": 0, "error_samples": [],
                                            "elapsed": 0.0, "latencies": [], "server_cpu_s": 0.0,
                                            "idle_servers_cpu_s": 0.0, "client_cpu_s": 0.0,
                                            "other_cpu_s": 0.0, "rounds": 0})
        m["requests"] += result.requests
        m["errors"] += result.errors
        m["error_samples"] = (m["error_samples"] + result.error_samples)[:5]
        m["elapsed"] += result.elapsed
        m["latencies"] += result.latencies
        m["server_cpu_s"] += cpu[f"{key}_cpu_s"]
        m["idle_servers_cpu_s"] += sum(cpu[f"{k}_cpu_s"] for k in servers if k != key)
        m["client_cpu_s"] += client_cpu
        m["other_cpu_s"] += max(0.0, other)
        m["rounds"] += 1
    out: dict[str, dict[str, Any]] = {}
    for (key, path), m in merged.items():
        wall = m["elapsed"]
        out[f"{key} {path}"] = {
            "server": key,
            "path": path,
            "concurrency": cfg.concurrency,
            "rounds": m["rounds"],
            "duration_s": wall,
            "requests": m["requests"],
            "requests_per_s": m["requests"] / wall if wall else float("nan"),
            "errors": m["errors"],
            "error_samples": m["error_samples"],
            **summarize(m["latencies"]),
            "server_cpu_pct_of_one_core": 100.0 * m["server_cpu_s"] / wall,
            "server_cpu_ms_per_request": 1000.0 * m["server_cpu_s"] / max(1, m["requests"]),
            "idle_server_cpu_pct_of_one_core": 100.0 * m["idle_servers_cpu_s"] / wall,
            "client_cpu_pct_of_one_core": 100.0 * m["client_cpu_s"] / wall,
            "other_pct_of_one_core": 100.0 * m["other_cpu_s"] / wall,
            "client": cfg.client,
            "client_processes": cfg.client_procs,
        }
    return out


def concurrent_login_phase(servers: dict[str, ServerProcess], key: str, clients: int) -> dict[str, Any]:
    """`clients` clients logging in at once, twice each: throughput and the server's memory peak.

    Opt-in (--concurrent-logins): not one of the issue's figures, but what a burst of logins
    costs, which sequential logins do not show.
    """
    server, target = servers[key], TARGETS[key]
    before = server.memory_mib()
    spec = LoadSpec(host=HOST, port=server.port, method="POST", path=f"{target.prefix}/login",
                    headers={"Content-Type": "application/json"},
                    body=json.dumps({"username": "nobody-at-all", "password": PASSWORD}).encode(),
                    expect_status=401 if target.real else 200, concurrency=clients,
                    duration=60.0, max_requests=2 * clients)
    meter = CPUMeter(servers)
    result = run_load(spec)
    cpu = meter.read()
    after = server.memory_mib()
    return {
        "clients": clients,
        "requests": result.requests,
        "errors": result.errors,
        "error_samples": result.error_samples,
        "logins_per_s": result.rps,
        **summarize(result.latencies),
        "server_cpu_pct_of_one_core": 100.0 * cpu[f"{key}_cpu_s"] / cpu["wall_s"],
        "other_pct_of_one_core": cpu["other_pct_of_one_core"],
        "rss_before_mib": before["rss"],
        "peak_rss_mib": after["peak"],
    }


def server_log_lines(server: ServerProcess) -> list[str]:
    try:
        lines = server.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][:20]


def run_all(cfg: Config, workdir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {"bare": {}, "coursecrafter": {}}
    noise: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        servers: dict[str, ServerProcess] = {}
        server_cpus = None
        if cfg.pin:
            usable = sorted(os.sched_getaffinity(0))
            if len(usable) < 2:
                raise SystemExit("--pin needs at least 2 usable CPUs")
            # Servers on the first CPU (they never run loaded at the same time), us on the rest.
            server_cpus = {usable[0]}
            os.sched_setaffinity(0, set(usable[1:]))
        for key in results:
            print(f"[{TARGETS[key].label}] starting", file=sys.stderr, flush=True)
            servers[key] = stack.enter_context(start_target(TARGETS[key], workdir, server_cpus))
        print(f"login x{cfg.logins}, refresh x{cfg.refreshes}, timing test"
              f" {cfg.timing_each}+{cfg.timing_each} ...", file=sys.stderr, flush=True)
        tokens = run_async(sequential_phases(servers, cfg, results, noise))
        me = {key: f"{TARGETS[key].prefix}/me" for key in servers}
        print(f"GET /me, {cfg.concurrency} clients, warm-up then {len(ME_ROUNDS)} rounds of "
              f"{cfg.duration / (len(ME_ROUNDS) / 2):g} s ({', '.join(ME_ROUNDS)}) ...",
              file=sys.stderr, flush=True)
        load_rounds(servers, [(k, me[k]) for k in servers], tokens, cfg, cfg.warmup_duration)
        rounds = load_rounds(servers, [(k, me[k]) for k in ME_ROUNDS], tokens, cfg,
                             cfg.duration / (len(ME_ROUNDS) / 2))
        for key in servers:
            results[key]["me"] = rounds[f"{key} {me[key]}"]
        reference = load_rounds(servers, [("bare", "/me-onehop"), ("bare", "/me-async")], tokens,
                                cfg, cfg.duration / 2)
        results["bare"]["me_onehop_reference"] = reference["bare /me-onehop"]
        results["bare"]["me_async_reference"] = reference["bare /me-async"]
        noise["me"] = {key: results[key]["me"]["other_pct_of_one_core"] for key in servers}
        if cfg.concurrent_logins:
            print(f"login, {cfg.concurrent_logins} concurrent clients x 2 ...", file=sys.stderr,
                  flush=True)
            for key in servers:
                results[key]["concurrent_login"] = concurrent_login_phase(
                    servers, key, cfg.concurrent_logins)
        for key, server in servers.items():
            results[key]["server_log"] = server_log_lines(server)
    for key, server in servers.items():
        results[key]["server_exit_code"] = server.proc.returncode if server.proc else None
    return results, noise


# --------------------------------------------------------------------------------------------
# Report


def _fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def build_rows(cc: dict[str, Any], bare: dict[str, Any]) -> tuple[list[list[str]], dict[str, float]]:
    rows: list[list[str]] = []
    ratios: dict[str, float] = {}

    def row(name: str, key: str, a: float, b: float | None, kind: str = "x") -> None:
        ratio = a / b if b else float("nan")
        if b is not None:
            ratios[key] = ratio
        if b is None:
            shown = "n/a"
        elif kind == "throughput":
            shown = f"{ratio:.2f}x ({100 * ratio:.0f}% of floor)"
        else:
            shown = f"{ratio:.1f}x"
        rows.append([name, _fmt(a), _fmt(b) if b is not None else "n/a", shown])

    row("login p50 (ms), sequential", "login_p50", cc["login"]["p50_ms"], bare["login"]["p50_ms"])
    row("login p99 (ms)", "login_p99", cc["login"]["p99_ms"], bare["login"]["p99_ms"])
    row("refresh p50 (ms), sequential chain", "refresh_p50", cc["refresh"]["p50_ms"],
        bare["refresh"]["p50_ms"])
    row("refresh p99 (ms)", "refresh_p99", cc["refresh"]["p99_ms"], bare["refresh"]["p99_ms"])
    c = cc["me"]["concurrency"]
    row(f"GET /me req/s, {c} clients", "me_rps", cc["me"]["requests_per_s"],
        bare["me"]["requests_per_s"], kind="throughput")
    row(f"GET /me p50 (ms), {c} clients", "me_p50", cc["me"]["p50_ms"], bare["me"]["p50_ms"])
    row(f"GET /me p99 (ms), {c} clients", "me_p99", cc["me"]["p99_ms"], bare["me"]["p99_ms"])
    rows.append([f"GET /me errors, {c} clients", str(cc["me"]["errors"]), str(bare["me"]["errors"]), ""])
    row("GET /me server CPU per request (ms)", "me_cpu_per_request",
        cc["me"]["server_cpu_ms_per_request"], bare["me"]["server_cpu_ms_per_request"])
    row("login server CPU per request (ms)", "login_cpu_per_request",
        cc["login"]["server_cpu_ms_per_request"], bare["login"]["server_cpu_ms_per_request"])
    t = cc.get("timing")
    if t:
        u, w = t["unknown_user"], t["wrong_password"]
        rows.append([f"login, unknown user: mean / p50 (ms), n={u['n']}",
                     f"{_fmt(u['mean_ms'])} / {_fmt(u['p50_ms'])}", "n/a", ""])
        rows.append([f"login, wrong password: mean / p50 (ms), n={w['n']}",
                     f"{_fmt(w['mean_ms'])} / {_fmt(w['p50_ms'])}", "n/a", ""])
        lo, hi = t["mean_difference_ci95_ms"]
        rows.append(["unknown - wrong password, mean (ms, 95% CI)",
                     f"{_fmt(t['mean_difference_ms'])} [{_fmt(lo)}, {_fmt(hi)}]", "n/a",
                     f"{100 * t['mean_difference_ms'] / w['mean_ms']:+.1f}% of wrong-pw mean"])
    return rows, ratios


NOISY_PCT = 25.0  # other processes using more than this share of one core make numbers suspect


def render(machine: dict[str, Any], cfg: Config, cc: dict[str, Any], bare: dict[str, Any],
           noise: dict[str, Any], rows: list[list[str]]) -> str:
    out = []
    pk = machine["packages"]
    out.append(f"machine: {machine['nproc']} CPUs usable ({machine['cpu_count']} online), "
               f"{machine['cpu_model']}, {machine['memory_gib']} GiB; Python {machine['python']} "
               f"({machine['platform']}); load average at start "
               + "/".join(f"{x:.2f}" for x in machine["loadavg_at_start"] or []))
    out.append("versions: " + ", ".join(f"{k} {v}" for k, v in pk.items() if v))
    client = ("raw HTTP/1.1 keep-alive client on asyncio+uvloop (bench/_common.py)"
              if cfg.client == "raw" else "httpx.AsyncClient")
    out.append(f"load generator: {client}, {cfg.client_procs} process(es)"
               f"{'; servers pinned to one CPU, load generator to the other' if cfg.pin else ''}; "
               f"GET /me {cfg.concurrency} clients, {cfg.duration:g} s per server; {cfg.logins} logins; "
               f"refresh chain of {cfg.refreshes}; timing test {cfg.timing_each} + {cfg.timing_each}")
    out.append("")
    out.append(format_table(["metric", "coursecrafter", "bare FastAPI", "ratio (cc / bare)"], rows))
    out.append("")
    for key, data in (("coursecrafter", cc), ("bare FastAPI", bare)):
        me = data["me"]
        out.append(f"{key}: GET /me {me['requests']} requests in {me['duration_s']:.1f} s; CPU: server "
                   f"{me['server_cpu_pct_of_one_core']:.0f}% of one core, idle other server "
                   f"{me['idle_server_cpu_pct_of_one_core']:.0f}%, load generator "
                   f"{me['client_cpu_pct_of_one_core']:.0f}%, other processes "
                   f"{me['other_pct_of_one_core']:.0f}%")
    for key, data in (("coursecrafter", cc), ("bare FastAPI", bare)):
        cl = data.get("concurrent_login")
        if cl:
            out.append(f"{key}: {cl['clients']} concurrent logins x2: {cl['logins_per_s']:.1f}/s, "
                       f"p50 {cl['p50_ms']:,.0f} ms, p99 {cl['p99_ms']:,.0f} ms, errors "
                       f"{cl['errors']}, server CPU {cl['server_cpu_pct_of_one_core']:.0f}% of one "
                       f"core, server RSS {cl['rss_before_mib']:.0f} MiB before, peak "
                       f"{cl['peak_rss_mib']:.0f} MiB")
    for name, what in (("me_onehop_reference", "trivial dependencies async, one threadpool hop"),
                       ("me_async_reference", "async handler, no threadpool hop")):
        ref = bare.get(name)
        if ref:
            out.append(f"reference, bare {ref['path']} ({what}): {ref['requests_per_s']:,.0f} req/s"
                       f" ({ref['requests_per_s'] / bare['me']['requests_per_s']:.1f}x the floor's"
                       f" /me), p50 {ref['p50_ms']:.1f} ms, p99 {ref['p99_ms']:.1f} ms, errors "
                       f"{ref['errors']}, server CPU {ref['server_cpu_ms_per_request']:.2f} ms/request")
    others = {"login": noise["login"]["other_pct_of_one_core"],
              "refresh": noise["refresh"]["other_pct_of_one_core"],
              **({"timing": noise["timing"]["other_pct_of_one_core"]} if "timing" in noise else {}),
              **{f"/me {k}": v for k, v in noise["me"].items()}}
    out.append("other processes on the machine (% of one core): "
               + ", ".join(f"{k} {v:.0f}%" for k, v in others.items()))
    if max(others.values()) > NOISY_PCT:
        out.append(f"WARNING: other processes used more than {NOISY_PCT:.0f}% of a core during this"
                   " run; absolute numbers are pessimistic, ratios less affected (interleaved).")
    problems = []
    for key, data in (("coursecrafter", cc), ("bare FastAPI", bare)):
        for phase in ("login", "refresh", "me", "me_onehop_reference", "me_async_reference",
                      "concurrent_login"):
            if data.get(phase, {}).get("errors"):
                samples = data[phase].get("error_samples") or ""
                problems.append(f"{key} {phase}: {data[phase]['errors']} errors {samples}")
        if data.get("refresh_chain_broken_at"):
            problems.append(f"{key}: refresh chain broken: {data['refresh_chain_broken_at']}")
        if data.get("timing", {}).get("unexpected_status"):
            problems.append(f"{key}: timing test got {data['timing']['unexpected_status']} non-401s")
        if data["server_log"]:
            problems.append(f"{key} server log ({len(data['server_log'])} lines, first): "
                            f"{data['server_log'][0]}")
    out.append("problems: " + ("; ".join(problems) if problems else "none (0 errors, empty server logs)"))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Auth API latency vs a bare FastAPI floor.")
    parser.add_argument("--quick", action="store_true", help="a short run (about 30 s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--concurrency", type=int, default=50, help="GET /me clients (50)")
    parser.add_argument("--duration", type=float,
                        help="seconds of GET /me load per server, in two rounds (10; quick 4)")
    parser.add_argument("--logins", type=int, help="sequential logins per server (100; quick 10)")
    parser.add_argument("--refreshes", type=int, help="refresh chain length (200; quick 50)")
    parser.add_argument("--timing", type=int, help="logins per timing-test arm (50; quick 10)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator client (raw: bench/_common.py's; httpx for comparison)")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="load generator processes (1: in this process)")
    parser.add_argument("--concurrent-logins", type=int, default=0, metavar="N",
                        help="also N clients logging in at once, twice each (unknown user)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="first wait up to SECONDS for the machine to be idle (shared machines)")
    parser.add_argument("--pin", action="store_true",
                        help="pin the servers to the first CPU and the load generator to the others")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (server logs)")
    args = parser.parse_args(argv)
    cfg = config_from(args)
    if not (0 < cfg.duration <= 120 and 0 < cfg.logins <= 5000 and 0 < cfg.refreshes <= 20000
            and 0 < cfg.timing_each <= 2000 and 0 < cfg.concurrency <= 1000
            and 0 < cfg.client_procs <= 16 and 0 <= cfg.concurrent_logins <= 200):
        parser.error("keep the run bounded: duration <= 120 s, logins <= 5000, refreshes <= 20000,"
                     " timing <= 2000, concurrency <= 1000, client-procs <= 16,"
                     " concurrent-logins <= 200")

    if args.wait_quiet > 0:
        busy = wait_for_quiet(min(args.wait_quiet, 1800.0))
        print(f"machine busy at start: {busy:.0f}% of one core", file=sys.stderr, flush=True)
    machine = machine_info(PACKAGES)
    workdir = Path(tempfile.mkdtemp(prefix="coursecrafter-bench-"))
    started = time.perf_counter()
    try:
        results, noise = run_all(cfg, workdir)
    finally:
        if args.keep:
            print(f"scratch dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    cc, bare = results["coursecrafter"], results["bare"]
    rows, ratios = build_rows(cc, bare)
    report = render(machine, cfg, cc, bare, noise, rows)
    total = time.perf_counter() - started
    print(report)
    print(f"(run took {total:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "auth_latency",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run_seconds": total,
            "machine": machine,
            "config": cfg.__dict__,
            "results": results,
            "noise_cpu": noise,
            "ratios_coursecrafter_over_bare": ratios,
            "table": format_table(["metric", "coursecrafter", "bare FastAPI", "ratio (cc / bare)"],
                                  rows),
            "report": report,
        }, indent=2, default=str) + "\n")
        print(f"results written to {args.json}", file=sys.stderr)
    failed = any(d.get(p, {}).get("errors") for d in (cc, bare)
                 for p in ("login", "refresh", "me", "me_onehop_reference", "me_async_reference",
                           "concurrent_login"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
