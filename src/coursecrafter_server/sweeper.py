"""Background housekeeping of one server process: expire abandoned uploads, re-publish or re-queue
stuck jobs, settle dead-lettered jobs, drop expired refresh tokens, and (less often) remove from
storage what no video record owns. Every step is idempotent and compare-and-set in the store, so
several server processes may sweep at once."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

from coursecrafter_server.bootstrap import Container
from coursecrafter_worker.queue.base import QueueUnavailable
from coursecrafter_worker.storage import NoSuchUpload
from coursecrafter_worker.storage.keys import VIDEO_ROOTS

log = logging.getLogger(__name__)

EVENT_MEMORY = timedelta(days=7)  # how long webhook event ids are remembered (as MongoDB's TTL)


class Sweeper:
    def __init__(self, container: Container, interval: float) -> None:
        self.container = container
        self.interval = interval
        self._stop = threading.Event()
        self._next_reconcile = 0.0  # monotonic; the first sweep reconciles
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
        every = self.container.settings.orphan_sweep_interval
        if every > 0 and time.monotonic() >= self._next_reconcile:
            self._next_reconcile = time.monotonic() + every
            self.reconcile_storage()

    def reconcile_storage(self, now: datetime | None = None) -> tuple[int, int]:
        """Remove orphans: objects under `{root}{video_id}/` and open multipart uploads whose video
        has no record, once older than `orphan_grace` (newest object, or upload start). Return
        (objects deleted, uploads aborted)."""
        store, storage = self.container.store, self.container.storage
        now = now or datetime.now(timezone.utc)
        cutoff = now - timedelta(seconds=self.container.settings.orphan_grace)
        deleted = aborted = 0
        for root in VIDEO_ROOTS:
            for prefix in storage.list_prefixes(root):
                if store.get_video(prefix[len(root):-1]) is not None:
                    continue
                newest = max((o.modified for o in storage.list_objects(prefix) if o.modified),
                             default=None)
                if newest is None or newest >= cutoff:  # maybe a record on its way: next time
                    continue
                count = storage.delete_prefix(prefix)
                deleted += count
                log.warning("removed %d orphan object(s) under %s: no such video", count, prefix)
            for upload in storage.list_multipart_uploads(root):
                video_id = upload.key[len(root):].split("/", 1)[0]
                if upload.initiated >= cutoff or store.get_video(video_id) is not None:
                    continue
                try:
                    storage.abort_multipart_upload(upload.key, upload.upload_id)
                except NoSuchUpload:  # completed or aborted meanwhile
                    continue
                aborted += 1
                log.warning("aborted orphan multipart upload of %s: no such video", upload.key)
        return deleted, aborted

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
