"""`coursecrafter-worker`: the RabbitMQ transcoding consumer.

The queue consumer and FFmpeg pipeline arrive with the transcoding issue (#4); until then this
command says so plainly instead of pretending to work.
"""

from __future__ import annotations

import argparse
import os
import sys


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="coursecrafter-worker", description="Consume transcoding jobs from RabbitMQ."
    )
    parser.add_argument("--concurrency", type=int, default=1)
    parser.parse_args(argv)
    if not os.environ.get("COURSECRAFTER_BROKER_URL"):
        print("coursecrafter-worker: COURSECRAFTER_BROKER_URL is not set", file=sys.stderr)
        raise SystemExit(2)
    print("coursecrafter-worker: transcoding is not available in this version yet", file=sys.stderr)
    raise SystemExit(1)
