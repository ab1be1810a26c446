"""The record of one chunk of a chunked transcoding job (chunk_jobs.py has its state machine)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from coursecrafter_worker.messages import ChunkRef


class ChunkStatus(str, enum.Enum):
    WAITING = "waiting"  # the join, until every piece is done
    PENDING = "pending"  # written, not yet confirmed by the queue
    PUBLISHED = "published"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"  # gave up, or retired (its job attempt is over)


OPEN = (ChunkStatus.PENDING, ChunkStatus.PUBLISHED, ChunkStatus.PROCESSING)


@dataclass(frozen=True)
class Chunk:
    """One chunk of one attempt of a job. `id` is `{job_id}:{job_attempt}:{index}`."""

    id: str
    job_id: str
    job_attempt: int
    index: int
    kind: str  # "video" | "audio" | "join"
    start: float  # source seconds where a picture piece starts
    pieces: int  # picture pieces of the job attempt
    audio: bool
    content: str
    attempt: int
    status: ChunkStatus
    created_at: datetime
    updated_at: datetime
    heartbeat_at: datetime | None = None

    def ref(self, end: float | None = None) -> ChunkRef:
        return ChunkRef(kind=self.kind, index=self.index, attempt=self.attempt,
                        pieces=self.pieces, audio=self.audio, start=self.start,
                        content=self.content, end=end)


def chunk_id(job_id: str, job_attempt: int, index: int) -> str:
    return f"{job_id}:{job_attempt}:{index}"
