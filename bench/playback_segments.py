"""Segment fetch latency on S3: a 302 to a pre-signed URL (what the server does) against
streaming the segment through the API (the alternative), in the same run.

    .venv/bin/python bench/playback_segments.py [--fetches N] [--sizes 262144,1048576] [--json PATH]

Starts `moto_server` (the S3 stand-in the tests use, over real HTTP) and the real app with S3
storage (`bench/_playback_app.py`, which adds a seeding route and the proxy route), each as a
subprocess on a loopback port. One keep-alive httpx client (a player's connection pool: one
connection to the API, one to storage) fetches segments through `/api/v1/play/{token}/...`
(following the redirect) and through `/proxy/{token}/...`, alternating in blocks so that
background load hits both alike; every body's length is checked. Reports per-fetch latency and the
CPU used by the API server and by storage per fetch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _common import ServerProcess, free_port, machine_info, process_group_cpu_seconds, summarize  # noqa: E402

BIN = Path(sys.executable).parent
BLOCK = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fetches", type=int, default=200, help="per mode and size")
    parser.add_argument("--sizes", default="262144,1048576", help="segment sizes in bytes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import boto3
    import httpx

    aws = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "NO_PROXY": "127.0.0.1,localhost"}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSECRAFTER_", "AWS_"))}
    results: dict[str, object] = {"machine": machine_info(["fastapi", "moto", "boto3"])}
    with tempfile.TemporaryDirectory() as tmp:
        moto_port, api_port = free_port(), free_port()
        moto = ServerProcess("moto", [str(BIN / "moto_server"), "-p", str(moto_port)],
                             port=moto_port, env={**base_env, **aws}, healthz="/moto-api/",
                             log_path=Path(tmp) / "moto.log")
        src = str(BENCH_DIR.parent / "src")
        api_env = {**base_env, **aws, "PYTHONPATH": os.pathsep.join([src, str(BENCH_DIR)]),
                   "COURSECRAFTER_HOME": f"{tmp}/home",
                   "COURSECRAFTER_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
                   "COURSECRAFTER_STORAGE_URL": "s3://bench",
                   "COURSECRAFTER_S3_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
                   "COURSECRAFTER_TRANSCODE_CONCURRENCY": "0"}
        api = ServerProcess("api", [sys.executable, "-m", "uvicorn", "_playback_app:app",
                                    "--port", str(api_port), "--log-level", "warning"],
                            port=api_port, env=api_env, cwd=BENCH_DIR,
                            log_path=Path(tmp) / "api.log")
        with moto:
            boto3.client("s3", endpoint_url=moto.base_url, region_name="us-east-1",
                         aws_access_key_id="bench", aws_secret_access_key="bench",
                         ).create_bucket(Bucket="bench")
            with api, httpx.Client(timeout=30) as client:
                for size in (int(s) for s in args.sizes.split(",")):
                    seeded = client.post(f"{api.base_url}/bench/seed",
                                         params={"segments": 20, "size": size})
                    seeded.raise_for_status()
                    play = seeded.json()["playback_url"].rsplit("/", 1)[0]  # .../hls
                    urls = {"redirect": play, "proxy": play.replace("/api/v1/play/", "/proxy/")}
                    times: dict[str, list[float]] = {"redirect": [], "proxy": []}
                    cpu = {mode: {"api": 0.0, "storage": 0.0} for mode in urls}
                    for mode in urls:  # warm-up: connections, caches
                        for i in range(3):
                            client.get(f"{urls[mode]}/720p/seg_{i:05d}.ts", follow_redirects=True)
                    order = ["redirect", "proxy", "proxy", "redirect"]
                    done = 0
                    while done < args.fetches:
                        for mode in order:
                            cpu_before = (process_group_cpu_seconds(api.pid),
                                          process_group_cpu_seconds(moto.pid))
                            for i in range(BLOCK):
                                url = f"{urls[mode]}/720p/seg_{(done + i) % 20:05d}.ts"
                                start = time.perf_counter()
                                r = client.get(url, follow_redirects=True)
                                times[mode].append(time.perf_counter() - start)
                                assert r.status_code == 200 and len(r.content) == size, (
                                    url, r.url, r.status_code, r.text[:300])
                            cpu[mode]["api"] += process_group_cpu_seconds(api.pid) - cpu_before[0]
                            cpu[mode]["storage"] += (process_group_cpu_seconds(moto.pid)
                                                     - cpu_before[1])
                        done += 2 * BLOCK
                    for mode in urls:
                        stats = summarize(times[mode])
                        n = len(times[mode])
                        per = {k: 1000 * v / n for k, v in cpu[mode].items()}
                        results[f"{mode}_{size}"] = {**stats, "cpu_ms_per_fetch": per}
                        print(f"{size / 1024:7.0f} KiB {mode:8s} n={n:4d} "
                              f"p50={stats['p50_ms']:6.1f} ms p90={stats['p90_ms']:6.1f} ms "
                              f"mean={stats['mean_ms']:6.1f} ms  cpu/fetch: api "
                              f"{per['api']:5.1f} ms, storage {per['storage']:5.1f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
