"""Upload throughput and memory of `coursecrafter upload`, against boto3 and a plain file copy.

    .venv/bin/python bench/upload_throughput.py [--size-mib 1024] [--json PATH] [--skip-s3]

One file of `--size-mib` MiB of random bytes is generated once in a temporary directory (it stays
in the page cache: every run reads it from memory, so the disk's read speed is out of the
picture), then uploaded by:

S3 (moto's `ThreadedMotoServer`, started in a child process on a free loopback port, with a real
`coursecrafter-server` in S3 mode in front of it for the CLI):
  - `coursecrafter upload` (the real console script, default `--concurrency 4`, SHA-256 on) and
    with `--concurrency 10` (boto3's default);
  - boto3 `upload_file` (s3transfer) with the default TransferConfig (8 MiB parts, 10 threads)
    and with `max_concurrency=4` (the CLI's default), in a child process as well.
Local (the embedded server: blobs in a local directory, served by the API's `/blobs` URLs):
  - `coursecrafter upload` (concurrency 4);
  - a plain `shutil.copyfile` of the same file into the same filesystem (the floor).

Uploads are sent as attachments (`--attachment --content-type application/zip`): same multipart
path and part size as a video, but no transcoding job, so the in-process transcoder does not
download and probe the gigabyte while the next run is measured.

Reported per run: end-to-end wall time of the process (start-up, SHA-256, API calls, parts,
complete) as MiB/s, the transfer alone (the CLI's own "uploaded X MiB in T s" line; boto3's
`upload_file` call) as MiB/s, the peak RSS of the uploading process (`ru_maxrss` from
`os.wait4`, i.e. its high-water mark) and its CPU time, and the server's peak RSS (the API
server's VmHWM so far: flat in S3 mode, where it never sees the bytes), plus moto's at the end.  The ratio column
compares each run with the baseline of its group (boto3 default for S3; copyfile for local):
baseline wall time / this wall time, so 0.5x means twice as slow.  `--repeat N` (default 2)
runs everything N times, alternately in reverse order, and shows medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _common import ServerProcess, format_table, free_port, machine_info  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
MIB = 1024 * 1024
PASSWORD = "bench upload horse staple"
BUCKET = "coursecrafter-bench"
PACKAGES = ("httpx", "boto3", "botocore", "s3transfer", "moto", "uvicorn", "fastapi", "tenacity")

MOTO_SCRIPT = """
import sys, threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address=sys.argv[1], port=int(sys.argv[2]), verbose=False)
server.start()
threading.Event().wait()
"""

BOTO3_SCRIPT = """
import json, sys, time
import boto3
from boto3.s3.transfer import TransferConfig
endpoint, bucket, key, path, concurrency = sys.argv[1:6]
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
config = TransferConfig() if concurrency == "default" else TransferConfig(max_concurrency=int(concurrency))
t0 = time.perf_counter()
client.upload_file(path, bucket, key, Config=config)
print(json.dumps({"transfer_s": time.perf_counter() - t0,
                  "part_mib": config.multipart_chunksize / 2**20,
                  "threads": config.max_concurrency}))
"""


def aws_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COURSECRAFTER_", "AWS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
    )
    return env


def make_file(path: Path, size: int) -> None:
    block = 16 * MIB
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(block, left)
            fh.write(os.urandom(n))
            left -= n


def run_measured(cmd: list[str], env: dict[str, str], *, stdin: str | None = None,
                 cwd: Path | None = None) -> dict[str, Any]:
    """Run `cmd`; wall seconds, exit code, stdout, stderr, and its own peak RSS (MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "wall_s": wall,
            "returncode": proc.returncode,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
            "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }


def check(result: dict[str, Any], what: str) -> dict[str, Any]:
    if result["returncode"] != 0:
        raise RuntimeError(f"{what} failed ({result['returncode']}):\n{result['stderr'][-3000:]}")
    return result


_TRANSFER = re.compile(r"uploaded ([\d.]+) MiB in ([\d.]+) s")


def cli_upload(env: dict[str, str], path: Path, size: int, *extra: str) -> dict[str, Any]:
    result = check(run_measured(
        [str(BIN / "coursecrafter"), "upload", str(path), "--attachment", "--content-type",
         "application/zip", "--json", *extra], env), "coursecrafter upload")
    video = json.loads(result["stdout"])
    assert video["size"] == size and video["status"] == "ready", video
    match = _TRANSFER.search(result["stderr"])
    result["transfer_s"] = float(match.group(2)) if match else float("nan")
    result["video_id"] = video["id"]
    return result


def login(env: dict[str, str], username: str) -> None:
    check(run_measured([str(BIN / "coursecrafter"), "register", "--username", username, "--email",
                        f"{username}@example.edu", "--password-stdin"], env,
                       stdin=PASSWORD + "\n"), "register")
    check(run_measured([str(BIN / "coursecrafter"), "login", "--username", username,
                        "--password-stdin"], env, stdin=PASSWORD + "\n"), "login")


def server_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        **aws_env(),
        "COURSECRAFTER_HOME": str(home),
        "COURSECRAFTER_PUBLIC_URL": f"http://{HOST}:{port}",
        "COURSECRAFTER_ARGON2_TIME_COST": "1",
        "COURSECRAFTER_ARGON2_MEMORY_KIB": "8192",
        "COURSECRAFTER_ARGON2_PARALLELISM": "1",
        **extra,
    }


def cli_env(api_url: str, config_dir: Path) -> dict[str, str]:
    return {**aws_env(), "COURSECRAFTER_API_URL": api_url,
            "COURSECRAFTER_CONFIG_DIR": str(config_dir),
            "COURSECRAFTER_CREDENTIAL_STORE": "file", "NO_COLOR": "1"}


def summarize_runs(name: str, results: list[dict[str, Any]], size_mib: float) -> dict[str, Any]:
    """One table row from the repeats of one run: medians of times, maxima of peaks."""
    walls = sorted(r["wall_s"] for r in results)
    transfers = sorted(r["transfer_s"] for r in results if r.get("transfer_s") == r.get("transfer_s"))
    wall = statistics.median(walls)
    transfer = statistics.median(transfers) if transfers else None
    out: dict[str, Any] = {
        "run": name,
        "repeats": len(results),
        "wall_s": round(wall, 2),
        "wall_s_all": [round(w, 2) for w in walls],
        "e2e_mib_s": round(size_mib / wall, 1),
        "transfer_mib_s": round(size_mib / transfer, 1) if transfer else None,
        "client_cpu_s": round(statistics.median(r["cpu_s"] for r in results), 1)
        if all("cpu_s" in r for r in results) else None,
        "client_peak_rss_mib": round(max(r["peak_rss_mib"] for r in results), 1)
        if all("peak_rss_mib" in r for r in results) else None,
    }
    for key in ("server_peak_rss_mib",):
        if any(key in r for r in results):
            out[key] = max(r.get(key, 0) for r in results)
    return out


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`vs_baseline`: the first row's wall time / this row's (higher is faster)."""
    base = rows[0]["wall_s"]
    for r in rows:
        r["ratio_vs_baseline"] = round(base / r["wall_s"], 2)
    return rows


def passes(names: list[str], repeat: int) -> list[str]:
    """The runs in order, then reversed, and so on: drifts (moto's growing heap, other load)
    hit every run alike."""
    order: list[str] = []
    for i in range(repeat):
        order += names if i % 2 == 0 else list(reversed(names))
    return order


def bench_s3(work: Path, path: Path, size: int, repeat: int,
             extra: dict[str, Any]) -> list[dict[str, Any]]:
    import boto3

    size_mib = size / MIB
    moto_port, api_port = free_port(), free_port()
    endpoint = f"http://{HOST}:{moto_port}"
    env = aws_env()
    runs: dict[str, Any] = {
        "boto3 upload_file, default TransferConfig (8 MiB x 10 threads)": "default",
        "boto3 upload_file, max_concurrency=4 (8 MiB x 4)": "4",
        "coursecrafter upload (8 MiB x 4, SHA-256)": (),
        "coursecrafter upload --concurrency 10": ("--concurrency", "10"),
        "coursecrafter upload --no-checksum": ("--no-checksum",),
    }
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    with ServerProcess("moto", [sys.executable, "-c", MOTO_SCRIPT, HOST, str(moto_port)],
                       port=moto_port, env=env, log_path=work / "moto.log",
                       healthz="/moto-api/") as moto:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        s3.create_bucket(Bucket=BUCKET)

        def clear() -> None:  # moto keeps objects in memory: drop each after its run
            for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
                s3.delete_object(Bucket=BUCKET, Key=obj["Key"])

        senv = server_env(work / "home-s3", api_port,
                          COURSECRAFTER_STORAGE_URL=f"s3://{BUCKET}/cc",
                          COURSECRAFTER_S3_ENDPOINT_URL=endpoint)
        with ServerProcess("coursecrafter-server", [str(BIN / "coursecrafter-server"), "--port",
                           str(api_port)], port=api_port, env=senv,
                           log_path=work / "server-s3.log") as server:
            cenv = cli_env(server.base_url, work / "cli-s3")
            login(cenv, "bench")
            for name in passes(list(runs), repeat):
                how = runs[name]
                if isinstance(how, str):
                    r = check(run_measured([sys.executable, "-c", BOTO3_SCRIPT, endpoint, BUCKET,
                                            f"boto3/{how}", str(path), how], env), "boto3")
                    r["transfer_s"] = json.loads(r["stdout"])["transfer_s"]
                    head = s3.head_object(Bucket=BUCKET, Key=f"boto3/{how}")
                else:
                    r = cli_upload(cenv, path, size, *how)
                    head = s3.head_object(Bucket=BUCKET, Key=f"cc/attachments/{r['video_id']}/source")
                assert head["ContentLength"] == size
                r["server_peak_rss_mib"] = round(server.memory_mib()["peak"], 1)
                raw[name].append(r)
                print(f"  s3: {name}: {r['wall_s']:.2f} s (transfer {r['transfer_s']:.2f} s), "
                      f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
                clear()
            extra["s3_server_peak_rss_mib"] = round(server.memory_mib()["peak"], 1)
        extra["moto_peak_rss_mib"] = round(moto.memory_mib()["peak"], 1)
    return with_ratios([summarize_runs(name, raw[name], size_mib) for name in runs])


def bench_local(work: Path, path: Path, size: int, repeat: int) -> list[dict[str, Any]]:
    size_mib = size / MIB
    runs: dict[str, Any] = {
        "shutil.copyfile + os.sync (same filesystem)": None,
        "coursecrafter upload, embedded server (8 MiB x 4, SHA-256)": (),
        "coursecrafter upload --no-checksum, embedded": ("--no-checksum",),
    }
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    port = free_port()
    with ServerProcess("coursecrafter-server", [str(BIN / "coursecrafter-server"), "--port",
                       str(port)], port=port, env=server_env(work / "home-local", port),
                       log_path=work / "server-local.log") as server:
        cenv = cli_env(server.base_url, work / "cli-local")
        login(cenv, "bench")
        for name in passes(list(runs), repeat):
            how = runs[name]
            if how is None:
                target = work / "copy.bin"
                os.sync()
                t0 = time.perf_counter()
                shutil.copyfile(path, target)
                os.sync()
                copy_s = time.perf_counter() - t0
                target.unlink()
                r = {"wall_s": copy_s, "transfer_s": copy_s}
            else:
                r = cli_upload(cenv, path, size, *how)
                r["server_peak_rss_mib"] = round(server.memory_mib()["peak"], 1)
                stored = (work / "home-local" / "blobs" / "objects" / "attachments"
                          / r["video_id"] / "source")
                if stored.exists():
                    assert stored.stat().st_size == size
                    stored.unlink()  # keep the disk from filling up over the repeats
            raw[name].append(r)
            print(f"  local: {name}: {r['wall_s']:.2f} s", flush=True)
    return with_ratios([summarize_runs(name, raw[name], size_mib) for name in runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="passes over every run, alternately in reverse order (default 2); "
                        "the table shows medians")
    args = parser.parse_args()

    size = args.size_mib * MIB
    info = machine_info(PACKAGES)
    print(f"machine: {info['nproc']} CPU ({info['cpu_model']}), {info['memory_gib']} GiB, "
          f"Python {info['python']}, load {info['loadavg_at_start']}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cc-upload-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        path = work / "lecture.bin"
        t0 = time.perf_counter()
        make_file(path, size)
        print(f"generated {args.size_mib} MiB in {time.perf_counter() - t0:.1f} s", flush=True)
        results: dict[str, Any] = {"size_mib": args.size_mib, "machine": info}
        if not args.skip_s3:
            results["s3"] = bench_s3(work, path, size, args.repeat, results)
        if not args.skip_local:
            results["local"] = bench_local(work, path, size, args.repeat)
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["loadavg_at_end"] = list(os.getloadavg())

    header = ["run", "wall s (median)", "end-to-end MiB/s", "transfer MiB/s", "vs baseline",
              "client peak RSS MiB", "client CPU s", "server peak RSS MiB"]
    for group in ("s3", "local"):
        if group not in results:
            continue
        print(f"\n{group} ({args.size_mib} MiB):")
        print(format_table(header, [[
            r["run"], f"{r['wall_s']:.2f}", f"{r['e2e_mib_s']:.1f}",
            "" if r["transfer_mib_s"] is None else f"{r['transfer_mib_s']:.1f}",
            "" if r["ratio_vs_baseline"] is None else f"{r['ratio_vs_baseline']:.2f}x",
            "" if r.get("client_peak_rss_mib") is None else f"{r['client_peak_rss_mib']:.0f}",
            "" if r.get("client_cpu_s") is None else f"{r['client_cpu_s']:.1f}",
            str(r.get("server_peak_rss_mib", "")),
        ] for r in results[group]]))
        if group == "s3":
            print(f"moto's peak RSS: {results.get('moto_peak_rss_mib')} MiB")
    print(f"\ntotal {results['total_s']} s; load average at the end {results['loadavg_at_end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
