"""`coursecrafter-server`: serve the API with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from coursecrafter_server.bootstrap import UnsafeSettings


def _factory():  # type: ignore[no-untyped-def]
    from coursecrafter_server.app import create_app

    return create_app()


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="coursecrafter-server", description="Serve the CourseCrafter API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="API processes (uvicorn workers)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        # Build once in the parent so a bad setting fails here with a clear message, not per worker.
        _factory()
    except (UnsafeSettings, ValueError) as exc:
        print(f"coursecrafter-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(
        "coursecrafter_server.main:_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,  # request lines can carry tokens in query strings (signed URLs)
        proxy_headers=True,
    )


if __name__ == "__main__":
    run()
