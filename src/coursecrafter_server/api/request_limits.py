"""Bounds on what a client may make the server wait for or hold (pure ASGI).

The size of the request head is bounded below this, in the HTTP parser (`coursecrafter-server`
runs uvicorn's h11 with `COURSECRAFTER_MAX_HEADER_BYTES`: see main.py). Here:

- more than `max_header_count` header fields: 431 before the app sees the request;
- a request body that does not arrive in time: 408 and the connection closed. An API (JSON) body
  must arrive whole within `body_timeout` seconds; a `/blobs/` part upload (large, possibly over
  a slow uplink) may take as long as it needs but may not stall for `body_timeout` seconds
  between two chunks.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTimeout(Exception):
    pass


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    })
    await send({"type": "http.response.body", "body": body})


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, *, max_header_count: int, body_timeout: float,
                 streaming_prefixes: tuple[str, ...] = ("/blobs/",)) -> None:
        self.app = app
        self.max_header_count = max_header_count
        self.body_timeout = body_timeout
        self.streaming_prefixes = streaming_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("headers", ())) > self.max_header_count:
            await _reject(send, 431, "request_header_fields_too_large",
                          f"a request may carry at most {self.max_header_count} header fields")
            return
        loop = asyncio.get_running_loop()
        streaming = scope.get("path", "").startswith(self.streaming_prefixes)
        deadline = loop.time() + self.body_timeout
        body_done = timed_out = replaced = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:  # afterwards the app only listens for a disconnect
                return await receive()
            wait = self.body_timeout if streaming else deadline - loop.time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.0))
            except asyncio.TimeoutError:
                timed_out = True
                raise _BodyTimeout from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            # The framework turns our exception into its own 400; answer 408 in its place.
            nonlocal replaced
            if timed_out:
                if not replaced:
                    replaced = True
                    await self._timeout(send)
                return
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except _BodyTimeout:
            if not replaced:
                replaced = True
                await self._timeout(send)

    async def _timeout(self, send: Send) -> None:
        await _reject(send, 408, "request_timeout",
                      f"the request body did not arrive within {self.body_timeout:g} s")
