"""`coursecrafter-server`: serve the API with uvicorn; `coursecrafter-server create-admin` makes the
first admin account (the API lets only admins create admins)."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from coursecrafter_server.bootstrap import UnsafeSettings
from coursecrafter_server.settings import Settings, get_settings
from coursecrafter_server.transcoders import check_work_dir


def _factory():  # type: ignore[no-untyped-def]
    from coursecrafter_server.app import create_app

    return create_app()


def _check_process_count(workers: int) -> None:
    """Several API processes share state only through Redis and the broker: without Redis a logout
    seen by one process is unknown to the others (and rate limits multiply); without a broker each
    process runs its own in-process transcoders and re-publishes every open job at start-up."""
    if workers <= 1:
        return
    from coursecrafter_server.settings import get_settings

    settings = get_settings()
    missing = [name for name, value in (("COURSECRAFTER_REDIS_URL", settings.redis_url),
                                        ("COURSECRAFTER_BROKER_URL", settings.broker))
               if not value]
    if missing:
        raise ValueError(f"--workers {workers} needs {' and '.join(missing)}: without them each "
                         "process keeps its own revocation list, rate limits and transcoders "
                         "(run one process, or set them)")


def _check_embedded_ffmpeg(settings: Settings) -> None:
    """The embedded mode transcodes in this process: its FFmpeg is checked before serving."""
    if settings.broker or settings.transcode_concurrency <= 0:
        return
    from coursecrafter_server.transcoders import check_transcoder_ffmpeg

    for line in check_transcoder_ffmpeg().splitlines():
        logging.getLogger("coursecrafter_server").info("%s", line)


def create_admin(argv: list[str]) -> int:
    """Create an admin directly in the configured store (same settings as the server)."""
    import getpass

    from pydantic import ValidationError

    from coursecrafter_server.api.schemas import RegisterRequest
    from coursecrafter_server.bootstrap import build_container
    from coursecrafter_server.domain import AlreadyExists, Role, WeakPassword
    from coursecrafter_server.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="coursecrafter-server create-admin",
        description="Create an admin account in the store the server uses (COURSECRAFTER_* "
        "settings). The password is read from stdin with --password-stdin, else prompted for.",
    )
    parser.add_argument("username")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password-stdin", action="store_true")
    args = parser.parse_args(argv)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 1
    try:
        request = RegisterRequest(username=args.username, email=args.email, password=password)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in exc.errors())
        print(f"error: {fields}", file=sys.stderr)
        return 1
    try:
        container = build_container(get_settings())
    except (UnsafeSettings, ValueError) as exc:
        print(f"coursecrafter-server: {exc}", file=sys.stderr)
        return 2
    try:
        user = container.auth.register(request.username, str(request.email), request.password,
                                       Role.ADMIN)
    except (AlreadyExists, WeakPassword) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        container.close()
    print(f"created admin {user.username} ({user.id})")
    return 0


def run(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["create-admin"]:
        raise SystemExit(create_admin(argv[1:]))
    parser = argparse.ArgumentParser(
        prog="coursecrafter-server",
        description="Serve the CourseCrafter API. `coursecrafter-server create-admin --help`: "
        "make an admin account.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="API processes (uvicorn workers)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)  # a dozen lines per (re)connection
    try:
        # Build once in the parent so a bad setting fails here with a clear message, not per worker.
        _factory()
        _check_process_count(args.workers)
        settings = get_settings()
        check_work_dir(settings)  # a shared work dir would let another local user hijack jobs
        trusted = settings.trusted_proxy_list
        _check_embedded_ffmpeg(settings)
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
        # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 (or $FORWARDED_ALLOW_IPS),
        # letting anything on loopback choose the address its rate limits count against.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=",".join(trusted) or None,
        # h11, on purpose: it refuses a request head over this size as soon as it has read that
        # much (400, connection closed). httptools (uvicorn's pick when installed) has no limit:
        # it read a 64 MiB header for 9 s and stalled every other request meanwhile.
        http="h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


if __name__ == "__main__":
    run()
