"""/internal/jobs/events: the worker webhook. No JWT: an HMAC signature over the raw body."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from coursecrafter_server.api.deps import ContainerDep
from coursecrafter_server.api.schemas import ErrorResponse
from coursecrafter_server.domain import DomainError
from coursecrafter_worker.messages import JobEvent, MessageError
from coursecrafter_worker.signing import HEADER, SignatureError, verify

log = logging.getLogger(__name__)
router = APIRouter(prefix="/internal", tags=["internal"])


class BadSignature(DomainError):
    status_code = 401
    code = "bad_signature"


class BadEvent(DomainError):
    status_code = 422
    code = "bad_event"


@router.post("/jobs/events", responses={code: {"model": ErrorResponse} for code in (401, 413, 422)})
async def job_event(request: Request, container: ContainerDep) -> dict[str, str]:
    body = await request.body()
    header = request.headers.get(HEADER)
    if header is not None and not header.isascii():
        # verify() would hand non-ASCII text to hmac.compare_digest, which raises TypeError.
        raise BadSignature("malformed signature header")
    try:
        verify(container.webhook_secret, header, body)
    except SignatureError as exc:
        log.warning("webhook refused: %s", exc)
        raise BadSignature(str(exc)) from None
    try:
        event = JobEvent.from_json(body)
    except MessageError as exc:
        raise BadEvent(str(exc)) from None
    # The store calls block (SQLite may wait out a lock): off the event loop, as sync routes are.
    outcome = await run_in_threadpool(container.jobs.handle_event, event)
    request.app.state.metrics.webhook_events.labels(event.type, outcome).inc()
    return {"status": outcome}
