"""Background housekeeping of one server process: expire abandoned uploads, re-publish or re-queue
stuck jobs, settle dead-lettered jobs, drop expired refresh tokens. Every step is idempotent and compare-and-set in the store, so several server
processes may sweep at once."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

from coursecrafter_server.bootstrap import Container
from coursecrafter_worker.queue.base import QueueUnavailable

log = logging.getLogger(__name__)

EVENT_MEMORY = timedelta(days=7)  # how long webhook event ids are remembered (as MongoDB's TTL)


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
        self.settle_dead_letters()
        now = datetime.now(timezone.utc)
        self.container.store.delete_expired_refresh_tokens(now)
        # A webhook retry comes within minutes (its signature is good for 300 s); a week is ample.
        self.container.store.delete_events_before(now - EVENT_MEMORY)

    def settle_dead_letters(self, limit: int = 100) -> int:
        """Fail the videos whose job message the queue gave up on (see JobService). A letter is
        acked only after its video is settled, so a store error leaves it for the next sweep."""
        settle_next = self.container.queue.settle_dead_letter
        settled = 0
        for _ in range(limit):
            try:
                if not settle_next(self.container.jobs.settle_dead_letter):
                    break
            except QueueUnavailable as exc:  # the broker is away: the letters wait for us
                log.warning("cannot read dead letters: %s", exc)
                break
            settled += 1
        return settled

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep_once()
            except Exception:  # a failed sweep must not kill the thread; the next one retries
                log.exception("sweep failed")
