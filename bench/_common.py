"""Helpers shared by the benchmarks under bench/: servers, a load generator, statistics, machine info.

Standard library only at import time (uvloop and httpx are imported where used), so that a
load-generator process started with `spawn` costs little to start.

- `free_port()`, `ServerProcess`: start a server command as a subprocess in its own session, wait
  for `GET /healthz`, read the CPU time of its whole process group, stop it.
- `CPUMeter`: CPU used over a stretch of wall time by each server, by this process, and by every
  other process of the machine (the noise: on a shared 2-core machine, other people's tests).
- `RawHTTPConnection`: a minimal HTTP/1.1 keep-alive client on an asyncio Protocol. It sends
  prebuilt request bytes and reads responses that carry a Content-Length (uvicorn always sends
  one for these JSON responses); no chunked encoding, no redirects, no TLS. It is an order of
  magnitude cheaper per request than httpx, which matters on a 2-core machine where the load
  generator and the server share the CPU.
- `run_load()`: N concurrent keep-alive clients for a fixed duration (and a request cap), in one
  or more processes; returns the request count, errors, latencies and CPU used by the clients.
- `summarize()`, `percentile()`: latency statistics (linear interpolation between ranks).
- `machine_info()`: nproc, CPU model, Python and library versions, load average.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

# --------------------------------------------------------------------------------------------
# Processes


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it; a tiny race remains)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    return raw[raw.rfind(")") + 2 :].split()


def process_group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group `pgid` (Linux /proc)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat(int(entry))
        # After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
        if fields is None or len(fields) < 13 or int(fields[2]) != pgid:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _CLK_TCK


def system_cpu_seconds() -> dict[str, float]:
    """Machine-wide CPU seconds from /proc/stat: `busy` (all but idle and iowait) and `steal`."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return {"busy": float("nan"), "steal": float("nan")}
    values += [0] * (8 - len(values))
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    # guest time is already included in user and nice.
    return {
        "busy": (user + nice + system + irq + softirq) / _CLK_TCK,
        "steal": steal / _CLK_TCK,
    }


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(max_wait: float, threshold_pct: float = 20.0, window: float = 3.0) -> float:
    """Wait (at most `max_wait` s) until the machine's busy CPU over `window` s is below
    `threshold_pct` of one core; returns the last reading. Call it before starting servers."""
    deadline = time.monotonic() + max_wait
    while True:
        before, t0 = system_cpu_seconds()["busy"], time.perf_counter()
        time.sleep(window)
        pct = 100.0 * (system_cpu_seconds()["busy"] - before) / (time.perf_counter() - t0)
        if pct < threshold_pct or time.monotonic() >= deadline:
            return pct


class CPUMeter:
    """CPU used during a stretch of wall time: by each server, by this process, by everything else.

    "Everything else" (machine busy time minus the servers and us) tells how noisy the machine
    was: other people's tests, a browser, ... It should be near 0 for numbers worth comparing.
    """

    def __init__(self, servers: dict[str, "ServerProcess"]) -> None:
        self.servers = servers
        self._start = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        snap = {f"server:{k}": s.cpu_seconds() for k, s in self.servers.items()}
        snap["self"] = own_cpu_seconds()
        snap.update(system_cpu_seconds())
        snap["wall"] = time.perf_counter()
        return snap

    def read(self) -> dict[str, float]:
        """Seconds used since the meter was made, and `other_pct_of_one_core`."""
        now = self._snapshot()
        d = {k: now[k] - self._start[k] for k in now}
        wall = d.pop("wall")
        ours = sum(v for k, v in d.items() if k.startswith("server:")) + d["self"]
        other = max(0.0, d["busy"] - ours)
        return {
            "wall_s": wall,
            **{f"{k.split(':', 1)[1]}_cpu_s" if ":" in k else f"{k}_cpu_s": v
               for k, v in d.items() if k not in ("busy", "steal")},
            "other_cpu_s": other,
            "other_pct_of_one_core": 100.0 * other / wall if wall > 0 else float("nan"),
            "steal_pct_of_one_core": 100.0 * d["steal"] / wall if wall > 0 else float("nan"),
        }


class ServerProcess:
    """A server started as `command` in its own session (so its process group is ours to end).

    Use as a context manager; output goes to `log_path`. `healthz` is the path polled for 200.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        port: int,
        env: dict[str, str] | None = None,
        log_path: Path,
        healthz: str = "/healthz",
        host: str = "127.0.0.1",
        start_timeout: float = 60.0,
        cwd: Path | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.host = host
        self.port = port
        self.env = env
        self.log_path = log_path
        self.healthz = healthz
        self.start_timeout = start_timeout
        self.cwd = cwd
        self.cpus = cpus  # CPU affinity of the server and everything it starts (None: any)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> "ServerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None,
        )
        deadline = time.monotonic() + self.start_timeout
        url = self.base_url + self.healthz
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before it was healthy;"
                    f" its output:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} was not healthy within {self.start_timeout:.0f} s;"
            f" its output:\n{self.log_tail()}"
        )

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server's whole process group (all threads, workers)."""
        return process_group_cpu_seconds(self.pid)

    def memory_mib(self) -> dict[str, float]:
        """Resident memory of the server's main process now (`rss`) and at its peak (`peak`)."""
        out = {"rss": float("nan"), "peak": float("nan")}
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    out["peak"] = int(line.split()[1]) / 1024
        except (OSError, ValueError):
            pass
        return out

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Latency statistics in milliseconds of a list of durations in seconds."""
    if not seconds:
        return {"n": 0}
    ms = sorted(s * 1000.0 for s in seconds)
    return {
        "n": len(ms),
        "mean_ms": sum(ms) / len(ms),
        "min_ms": ms[0],
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1],
    }


# --------------------------------------------------------------------------------------------
# Machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info(packages: Sequence[str] = ()) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        mem_gib: float | None = round(mem_kb / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        mem_gib = None
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "packages": {name: _version(name) for name in packages},
    }


# --------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client


def build_request(
    method: str,
    path: str,
    *,
    host: str,
    port: int,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """The bytes of one HTTP/1.1 request (keep-alive), ready to be sent as they are."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: coursecrafter-bench"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class HTTPProtocolError(Exception):
    pass


class RawHTTPConnection(asyncio.Protocol):
    """One keep-alive connection; `await conn.send(request_bytes)` → (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> "RawHTTPConnection":
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    # asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("server closed the connection"))

    # ------------------------------------------------------------------------------------------
    def _complete(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        try:
            status = int(head[9:12])
            start = head.index(b"\r\ncontent-length:") + 17
            stop = head.find(b"\r\n", start)
            length = int(head[start : stop if stop >= 0 else len(head)])
        except ValueError:
            waiter.set_exception(HTTPProtocolError("response without a readable Content-Length"))
            return
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        waiter.set_result((status, body))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        if self.closed or self.transport is None:
            raise ConnectionError("connection is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (uvicorn[standard] brings it), else asyncio's default loop."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def run_async(coro: Any) -> Any:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# --------------------------------------------------------------------------------------------
# Load generation


@dataclass
class LoadSpec:
    """What every client of `run_load` sends: one request, over and over, on its own connection."""

    host: str
    port: int
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    expect_status: int = 200
    concurrency: int = 50
    duration: float = 10.0
    max_requests: int = 1_000_000  # across all processes
    client: str = "raw"  # "raw" (RawHTTPConnection) or "httpx" (httpx.AsyncClient)


@dataclass
class LoadResult:
    requests: int
    errors: int
    error_samples: list[str]
    elapsed: float
    latencies: list[float]  # seconds, one per completed request (successful or not)
    client_cpu_seconds: float
    processes: int

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0


async def _load_clients(spec: LoadSpec, clients: int, cap: int, start_at: float) -> dict[str, Any]:
    latencies = array("d")
    errors = 0
    samples: list[str] = []
    count = 0
    url = f"http://{spec.host}:{spec.port}{spec.path}"
    raw_request = build_request(
        spec.method, spec.path, host=spec.host, port=spec.port, headers=spec.headers, body=spec.body
    )

    def note(error: str) -> None:
        nonlocal errors
        errors += 1
        if len(samples) < 5:
            samples.append(error)

    httpx_client = None
    if spec.client == "httpx":
        import httpx

        httpx_client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
            timeout=30.0,
        )
    connections: list[RawHTTPConnection | None] = []
    if spec.client == "raw":
        connections = list(
            await asyncio.gather(*(RawHTTPConnection.open(spec.host, spec.port) for _ in range(clients)))
        )

    # Every process starts at the same wall-clock instant, connections already open.
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    deadline = t0 + spec.duration

    async def client_loop(index: int) -> None:
        nonlocal count
        perf = time.perf_counter
        reconnects = 0
        while count < cap and perf() < deadline:
            count += 1
            begin = perf()
            try:
                if httpx_client is not None:
                    response = await httpx_client.request(
                        spec.method, url, headers=spec.headers, content=spec.body
                    )
                    status = response.status_code
                else:
                    conn = connections[index]
                    if conn is None or conn.closed:
                        if reconnects >= 100:
                            note("gave up reconnecting")
                            return
                        reconnects += 1
                        conn = connections[index] = await RawHTTPConnection.open(spec.host, spec.port)
                    status, _ = await conn.send(raw_request)
            except Exception as exc:  # every failure counts; the run goes on
                latencies.append(perf() - begin)
                note(f"{type(exc).__name__}: {exc}")
                if spec.client == "raw":
                    connections[index] = None
                continue
            latencies.append(perf() - begin)
            if status != spec.expect_status:
                note(f"HTTP {status}")

    await asyncio.gather(*(client_loop(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if httpx_client is not None:
        await httpx_client.aclose()
    for conn in connections:
        if conn is not None:
            conn.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "requests": len(latencies),
        "errors": errors,
        "samples": samples,
        "elapsed": elapsed,
        "latencies": latencies.tobytes(),
        "cpu": cpu,
    }


def _load_process(spec: LoadSpec, clients: int, cap: int, start_at: float, queue: Any) -> None:
    try:
        queue.put(run_async(_load_clients(spec, clients, cap, start_at)))
    except BaseException as exc:  # report instead of hanging the parent
        queue.put({"failure": f"{type(exc).__name__}: {exc}"})


def run_load(spec: LoadSpec, processes: int = 1, start_delay: float = 1.0) -> LoadResult:
    """`spec.concurrency` clients split over `processes` load-generator processes, summed.

    With one process the clients run in this process (which must not be busy with anything else
    meanwhile); with more, in `spawn`ed processes that all start at the same instant.
    """
    import multiprocessing as mp
    import queue as queue_module

    processes = max(1, min(processes, spec.concurrency))
    if processes == 1:
        # In this process: nothing to spawn, and this process is idle otherwise.
        part = run_async(_load_clients(spec, spec.concurrency, spec.max_requests, 0.0))
        return _merge([part], 1)
    ctx = mp.get_context("spawn")
    results_queue = ctx.Queue()
    start_at = time.time() + start_delay + 0.5 * processes  # time to spawn and connect
    workers = []
    for i in range(processes):
        clients = spec.concurrency // processes + (1 if i < spec.concurrency % processes else 0)
        cap = spec.max_requests // processes + (1 if i < spec.max_requests % processes else 0)
        worker = ctx.Process(
            target=_load_process, args=(spec, clients, cap, start_at, results_queue), daemon=True
        )
        worker.start()
        workers.append(worker)
    parts: list[dict[str, Any]] = []
    wait_until = start_at + spec.duration + 60.0
    try:
        while len(parts) < processes:
            remaining = wait_until - time.time()
            if remaining <= 0:
                raise RuntimeError("load generator did not report in time")
            try:
                part = results_queue.get(timeout=min(remaining, 5.0))
            except queue_module.Empty:
                if not any(w.is_alive() for w in workers) and results_queue.empty():
                    raise RuntimeError("load generator processes died without a result") from None
                continue
            if "failure" in part:
                raise RuntimeError(f"load generator failed: {part['failure']}")
            parts.append(part)
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
    return _merge(parts, processes)


def _merge(parts: list[dict[str, Any]], processes: int) -> LoadResult:
    latencies = array("d")
    for part in parts:
        latencies.frombytes(part["latencies"])
    return LoadResult(
        requests=sum(p["requests"] for p in parts),
        errors=sum(p["errors"] for p in parts),
        error_samples=[s for p in parts for s in p["samples"]][:5],
        elapsed=max(p["elapsed"] for p in parts),
        latencies=latencies.tolist(),
        client_cpu_seconds=sum(p["cpu"] for p in parts),
        processes=processes,
    )


# --------------------------------------------------------------------------------------------
# Output


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table, columns padded so it also reads well in a terminal."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
