"""Background housekeeping of one server process: expire abandoned uploads (later: re-publish
stuck jobs). Every step is idempotent and compare-and-set in the store, so several server
processes may sweep at once."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

from coursecrafter_server.bootstrap import Container

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, container: Container, interval: float) -> None:
        self.container = container
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="coursecrafter-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sweep_once(self) -> None:
        self.container.uploads.expire_abandoned()
        self.container.jobs.sweep()
        self.container.store.delete_expired_refresh_tokens(datetime.now(timezone.utc))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep_once()
            except Exception:  # a failed sweep must not kill the thread; the next one retries
                log.exception("sweep failed")
