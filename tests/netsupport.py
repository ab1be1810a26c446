"""Hosts in network namespaces: a private network the test builds, and hosts on it whose link can
be cut and brought back, like a cable pulled out of a switch.

    host namespace                                   one namespace per host
    ┌──────────────────────────────┐                 ┌─────────────────────┐
    │ bridge  ccb<pid>x<n>         │── veth ─────────│ eth0  10.A.B.11/24  │  host "a"
    │ gateway 10.A.B.1/24          │── veth ─────────│ eth0  10.A.B.12/24  │  host "b"
    │ services on 127.0.0.1, each  │                 └─────────────────────┘
    │ reached through a forwarder  │
    │ bound to the gateway address │
    └──────────────────────────────┘

`Host.cut()` sets the host's switch-side veth down: its packets vanish (no RST, no error the host
sees at once; its TCP connections just stop moving), which is what a dead link or a partition
looks like. `Host.restore()` brings it back with the same address, so the host's processes
reconnect by themselves or not at all.

Needs root and iproute2 (`ip netns`, veth, bridge). `require_netns()` skips a test with the
reason when they are missing, and fails it under COURSECRAFTER_REQUIRE_SERVICES (CI), where a
missing capability must not pass as a skip.

Cleanup: `Network.close()` kills whatever still runs in its namespaces and deletes them (which
deletes their veths) and the bridge; names carry the pid of the test process, so a network left
behind by a killed test run is removed by the next run (`sweep_stale`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: Every name we create starts with these, followed by our pid (see `sweep_stale`).
NETNS_PREFIX = "ccn-"
BRIDGE_PREFIX = "ccb"
_NAME_PID = re.compile(rf"^(?:{NETNS_PREFIX}|{BRIDGE_PREFIX})(\d+)[x-]")


class NetError(RuntimeError):
    """An `ip` command failed."""


def ip(*args: str, check: bool = True, timeout: float = 30) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


@functools.lru_cache(maxsize=1)
def netns_unusable() -> str | None:
    """None when this process can build namespaces, veths and a bridge; else why not."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add): run the tests as root"
    try:  # root is not enough in every container: try what the tests do, then undo it
        with Network(hosts=0) as network:
            network.add_host("probe")
    except (NetError, OSError, subprocess.SubprocessError) as exc:
        return f"cannot build a network namespace with a veth and a bridge: {exc}"
    return None


def require_netns() -> None:
    """Skip (fail under COURSECRAFTER_REQUIRE_SERVICES) when namespaces cannot be built."""
    why = netns_unusable()
    if why is None:
        return
    if os.environ.get("COURSECRAFTER_REQUIRE_SERVICES"):
        pytest.fail(f"COURSECRAFTER_REQUIRE_SERVICES is set, but: {why}", pytrace=False)
    pytest.skip(why)


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def sweep_stale() -> list[str]:
    """Remove the namespaces and bridges of test processes that are gone (a run that was
    killed before its cleanup); return their names. Those of live processes (other test runs
    on the machine) are left alone."""
    removed = []
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NAME_PID.match(name)
        if match and not _pid_alive(int(match.group(1))):
            _kill_netns_processes(name)
            ip("netns", "delete", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show", "type", "bridge", check=False).splitlines():
        fields = line.split(":")
        name = fields[1].strip() if len(fields) > 1 else ""
        match = _NAME_PID.match(name)
        if match and not _pid_alive(int(match.group(1))):
            ip("link", "delete", name, check=False)
            removed.append(name)
    return removed


def _kill_netns_processes(netns: str) -> None:
    for pid in ip("netns", "pids", netns, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _free_subnet() -> tuple[int, int]:
    """A 10.A.B.0/24 that no interface of this machine uses (several test runs may build
    networks at the same time: random, then checked)."""
    used = ip("-4", "-o", "addr", "show", check=False)
    for _ in range(100):
        a, b = random.randint(200, 254), random.randint(0, 255)
        if f" 10.{a}.{b}." not in used:
            return a, b
    raise NetError("no free 10.x.y.0/24 subnet found")


class Host:
    """One network namespace on the network: address `address`, processes started with
    `command_prefix` (`ip netns exec NS`, which execs: the pid is the process's own)."""

    def __init__(self, network: Network, name: str, index: int) -> None:
        self.network = network
        self.name = name
        self.netns = f"{network.tag}-{name}"
        self.address = f"{network.subnet}.{10 + index}"
        # Interface names are at most 15 characters: the switch-side end is named by the
        # bridge and the host's index; the host-side end is renamed eth0 in its namespace.
        self.veth = f"{network.bridge}v{index}"
        peer = f"{network.bridge}p{index}"
        ip("netns", "add", self.netns)
        try:
            ip("link", "add", self.veth, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", self.netns)
            ip("-n", self.netns, "link", "set", peer, "name", "eth0")
            ip("-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0")
            ip("-n", self.netns, "link", "set", "eth0", "up")
            ip("-n", self.netns, "link", "set", "lo", "up")
            ip("link", "set", self.veth, "master", network.bridge)
            ip("link", "set", self.veth, "up")
        except Exception:
            self.delete()
            raise

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address}, netns {self.netns})"

    @property
    def command_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def cut(self) -> None:
        """The link dies: packets to and from this host are dropped from now on."""
        ip("link", "set", self.veth, "down")

    def restore(self) -> None:
        ip("link", "set", self.veth, "up")

    @property
    def linked(self) -> bool:
        """Whether the switch-side end is administratively up (not `cut`)."""
        return re.search(r"[<,]UP[,>]", ip("-o", "link", "show", self.veth, check=False)) is not None

    def reaches(self, address: str, port: int, timeout: float = 2.0) -> bool:
        """Whether a TCP connection from this host to `address:port` succeeds now."""
        code = ("import socket,sys\n"
                f"socket.create_connection(({address!r}, {port}), timeout={timeout}).close()")
        try:
            done = subprocess.run([*self.command_prefix, sys.executable, "-c", code],
                                  capture_output=True, timeout=timeout + 20)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def pids(self) -> list[int]:
        return [int(p) for p in ip("netns", "pids", self.netns, check=False).split()]

    def delete(self) -> None:
        """Kill what runs in the namespace and delete it (its veth goes with it)."""
        _kill_netns_processes(self.netns)
        ip("netns", "delete", self.netns, check=False)
        ip("link", "delete", self.veth, check=False)  # already gone unless the move failed


class Network:
    """A bridge in the host namespace with the gateway address `gateway` (10.A.B.1/24) and
    the hosts on it. A context manager; `close()` is idempotent and never raises."""

    _count = 0

    def __init__(self, hosts: int | list[str] = 0) -> None:
        Network._count += 1
        pid = os.getpid()
        self.bridge = f"{BRIDGE_PREFIX}{pid}x{Network._count}"
        self.tag = f"{NETNS_PREFIX}{pid}-{Network._count}"
        a, b = _free_subnet()
        self.subnet = f"10.{a}.{b}"
        self.gateway = f"{self.subnet}.1"
        self.hosts: dict[str, Host] = {}
        ip("link", "add", self.bridge, "type", "bridge")
        try:
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            names = hosts if isinstance(hosts, list) else [chr(ord("a") + i) for i in range(hosts)]
            for name in names:
                self.add_host(name)
        except Exception:
            self.close()
            raise

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        assert name not in self.hosts, name
        host = Host(self, name, len(self.hosts) + 1)
        self.hosts[name] = host
        return host

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def wait_reachable(self, port: int, timeout: float = 30) -> None:
        """Until every host connects to the gateway's `port` (a forwarder just started)."""
        deadline = time.monotonic() + timeout
        for host in self.hosts.values():
            while not host.reaches(self.gateway, port):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{host} cannot reach {self.gateway}:{port}")
                time.sleep(0.2)

    def close(self) -> None:
        for host in reversed(list(self.hosts.values())):
            try:
                host.delete()
            except Exception as exc:  # cleanup goes on
                print(f"deleting {host!r} failed: {exc!r}")
        self.hosts.clear()
        ip("link", "delete", self.bridge, check=False)


@pytest.fixture
def network() -> Iterator[Network]:
    """A fresh private network without hosts (add them with `network.add_host`), removed at
    teardown whatever happened; skips (fails in CI) when namespaces cannot be built."""
    require_netns()
    sweep_stale()
    with Network() as net:
        yield net


# --------------------------------------------------------------------------- scale-out on hosts


def rsa_key_file(path: Path) -> Path:
    """A fresh RSA key (PEM, 0600): a server on a non-loopback public URL refuses a generated
    one (bootstrap.check_production_safety), as it would in production."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


class ScaleOut:
    """The scale-out deployment with its workers on other hosts: the API server, a RabbitMQ vhost
    and S3 (moto) run in the host namespace on loopback, each reached from the hosts through a
    forwarder bound to the gateway (`lab.tcp_proxy(upstream, bind=gateway)`); the API's public
    URL (the job messages' callback URL) is its forwarder's. Workers get only what a worker on
    another machine gets (docs/deployment.md): the broker URL (with a short AMQP heartbeat, so
    that the broker notices a dead host in seconds), the S3 bucket and endpoint, the webhook
    secret, a home and work dir of their own.

    `lab` is the fault suite's Lab (tests/faults/conftest.py): everything started here is
    stopped by its teardown, the network by its own fixture."""

    def __init__(self, lab: Any, network: Network, *, server_env: dict[str, str] | None = None,
                 heartbeat: int = 2) -> None:
        import secrets
        from urllib.parse import urlsplit, urlunsplit

        from livesupport import free_port

        self.lab = lab
        self.network = network
        gateway = network.gateway
        self.vhost = lab.vhost()
        storage = lab.storage_env("s3")
        s3 = urlsplit(storage["COURSECRAFTER_S3_ENDPOINT_URL"])
        port = free_port()
        self.forwarders = {
            "broker": lab.tcp_proxy(("127.0.0.1", 5672), bind=gateway),
            "s3": lab.tcp_proxy((s3.hostname, s3.port), bind=gateway),
            "api": lab.tcp_proxy(("127.0.0.1", port), bind=gateway),
        }
        shared = {
            "COURSECRAFTER_WEBHOOK_SECRET": secrets.token_hex(32),
            "NO_PROXY": f"127.0.0.1,localhost,{gateway}",
            "no_proxy": f"127.0.0.1,localhost,{gateway}",
        }
        self.server = lab.server(
            env={**storage, **shared,
                 "COURSECRAFTER_BROKER_URL": self.vhost.url,
                 "COURSECRAFTER_JWT_PRIVATE_KEY_FILE": str(rsa_key_file(lab.tmp_path / "jwt.pem")),
                 **(server_env or {})},
            port=port, public_url=f"http://{gateway}:{self.forwarders['api'].port}")
        broker = urlsplit(self.vhost.url)
        self.worker_env = {
            **shared,
            "COURSECRAFTER_BROKER_URL": urlunsplit(broker._replace(
                netloc=f"guest:guest@{gateway}:{self.forwarders['broker'].port}",
                query=f"heartbeat={heartbeat}")),
            "COURSECRAFTER_S3_ENDPOINT_URL": f"http://{gateway}:{self.forwarders['s3'].port}",
        }
        network.wait_reachable(self.forwarders["api"].port)

    def worker(self, host: Host, name: str | None = None, **kwargs: Any) -> Any:
        """A `coursecrafter-worker` on `host` (a faultkit.Worker), with a home of its own."""
        name = name or f"worker-{host.name}"
        home = self.lab.tmp_path / name / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {**self.worker_env, "COURSECRAFTER_HOME": str(home), **kwargs.pop("env", {})}
        return self.lab.worker(self.server, name, env=env, command_prefix=host.command_prefix,
                               **kwargs)


def holders(workers: dict[Host, Any]) -> list[tuple[Host, Any]]:
    """The hosts whose worker (a faultkit.Worker) runs FFmpeg right now."""
    return [(host, w) for host, w in workers.items() if w.ffmpeg_pids()]


def cut_holder_mid_job(workers: dict[Host, Any], timeout: float = 120) -> tuple[Host, Any]:
    """Wait until a worker is in FFmpeg (a whole job, or a chunk: one job message, one worker),
    then cut its host's link; return that host and its worker (the first one, when several
    workers hold chunks at once)."""
    deadline = time.monotonic() + timeout
    while not (found := holders(workers)):
        if time.monotonic() > deadline:
            raise AssertionError(f"no worker was in FFmpeg within {timeout:g}s")
        time.sleep(0.2)
    host, worker = found[0]
    host.cut()
    return host, worker
