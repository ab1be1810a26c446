"""The asynchronous CourseCrafter SDK client: the surface of :class:`~coursecrafter_cli.Client`,
awaitable.

>>> import asyncio
>>> from coursecrafter_cli import AsyncClient
>>> async def main() -> None:
...     async with AsyncClient("http://127.0.0.1:8000") as cc:
...         await cc.login("alice", "correct horse battery staple")
...         courses, videos = await asyncio.gather(cc.list_courses(), cc.list_videos())
>>> asyncio.run(main())                                       # doctest: +SKIP

Every API method comes from :mod:`coursecrafter_cli.core`, the same flows the synchronous
client runs: this module adds only the ``httpx.AsyncClient`` and a driver that awaits.
Refreshes are serialised between the tasks of a client by an ``asyncio.Lock`` (and, as for
the synchronous client, between processes by the credential store's lock).

:meth:`AsyncClient.upload` runs the synchronous uploader (:mod:`coursecrafter_cli.uploads`:
parallel part threads, resume) in a worker thread (``asyncio.to_thread``), with a
:class:`Client` twin that shares this client's session; its ``progress`` and ``on_event``
callbacks are called from that thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import httpx

from coursecrafter_cli.client import Client
from coursecrafter_cli.core import (
    BaseClient,
    Flow,
    Locked,
    Sleep,
    Steps,
)
from coursecrafter_cli.errors import CourseCrafterError

__all__ = ["AsyncClient"]

P = ParamSpec("P")
R = TypeVar("R")


class _InThread(Generic[P, R]):
    """An :class:`AsyncClient` method that runs a :class:`Client` method in a worker thread
    (with the same arguments and result), on the client's synchronous twin."""

    def __init__(self, method: Callable[Concatenate[Client, P], R]) -> None:
        self.method = method
        functools.update_wrapper(self, method)  # type: ignore[arg-type]  # a callable object

    def __get__(self, obj: AsyncClient | None,
                owner: type | None = None) -> Callable[P, Awaitable[R]]:
        if obj is None:
            return self  # type: ignore[return-value]
        method = self.method

        @functools.wraps(method)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return await asyncio.to_thread(method, obj._twin(), *args, **kwargs)

        return call


class AsyncClient(BaseClient):
    """A CourseCrafter API client for ``asyncio``: the methods of :class:`Client`, awaitable.

    The arguments are those of :class:`Client`, with an ``httpx.AsyncBaseTransport`` as
    ``transport``.  ``sync_transport`` is the transport of the synchronous twin that
    :meth:`upload` runs in a worker thread (default: ``transport`` when it is a synchronous
    transport too, like ``httpx.MockTransport``; else the network).

    Differences: :attr:`username` does not ask the server (with an automation token it is
    known after a :meth:`whoami`); ``wait_for_video(sleep=...)`` may be a coroutine function.
    Use ``async with``, or await :meth:`aclose`.
    """

    _http_class = httpx.AsyncClient
    _http: httpx.AsyncClient

    def __init__(self, api_url: str | None = None, *,
                 sync_transport: httpx.BaseTransport | None = None, **options: Any) -> None:
        super().__init__(api_url, **options)
        transport = options.get("transport")
        if sync_transport is None and isinstance(transport, httpx.BaseTransport):
            sync_transport = transport
        self._sync_transport = sync_transport
        self._sync: Client | None = None
        self._refresh_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def aclose(self) -> None:
        """Close the underlying HTTP connections (and the upload twin's)."""
        await self._http.aclose()
        if self._sync is not None:
            self._sync.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying ``httpx.AsyncClient`` (base url ``<api_url>/api/v1``, no auth)."""
        return self._http

    # ------------------------------------------------------------------ the driver
    async def _run(self, flow: Flow[R]) -> R:
        """Perform a core flow's actions, awaiting the I/O; return its result."""
        steps = Steps(flow)
        while (action := steps.next()) is not None:
            try:
                steps.succeeded(await self._perform(action))
            except CourseCrafterError as exc:
                steps.failed(exc)
        return steps.result

    async def _perform(self, action: Any) -> Any:
        if isinstance(action, Sleep):
            waited = (action.sleep or asyncio.sleep)(action.seconds)
            return await waited if inspect.isawaitable(waited) else waited
        if isinstance(action, Locked):
            # The asyncio lock orders this client's tasks (a thread lock cannot: they share a
            # thread); the store's lock then keeps other processes (and threads) out.
            async with self._refresh_lock:
                with self._store.lock():
                    return await self._run(action.flow)
        try:
            return await self._http.send(action)
        except httpx.RequestError as exc:
            raise self._unreachable(exc) from None

    # ------------------------------------------------------------------ uploads
    def _twin(self) -> Client:
        """The synchronous client :meth:`upload` runs on: same server, session store, token and
        config dir, so a refresh by either is seen by the other."""
        if self._sync is not None and self._sync.credential_store is not self._store:
            self._sync.close()  # login(save=False) gave this client a store of its own since
            self._sync = None
        if self._sync is not None:
            self._sync._forget_session()  # a login since its last upload: read the store again
        else:
            self._sync = Client(
                self.api_url, config_dir=self.config_dir, credential_store=self._store,
                transport=self._sync_transport, timeout=self._timeout,
                refresh_margin=self._refresh_margin, clock=self._clock, token=self._token,
            )
        return self._sync

    upload = _InThread(Client.upload)
