"""The store ports (store/base.py): every adapter implements every port with the port's
signatures, and each service calls only the methods of the port it declares (no type checker
runs in CI, so a service reaching past its port would otherwise go unnoticed)."""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from collections.abc import Callable
from typing import Any

import pytest

from coursecrafter_server import lifecycle
from coursecrafter_server.auth.api_tokens import ApiTokenService
from coursecrafter_server.auth.service import AuthService
from coursecrafter_server.courses import CourseService
from coursecrafter_server.jobs import JobService
from coursecrafter_server.limits.store import StoreRevocationList
from coursecrafter_server.playback import PlaybackService
from coursecrafter_server.store import base
from coursecrafter_server.store.memory import MemoryStore
from coursecrafter_server.store.mongo import MongoStore
from coursecrafter_server.store.sqlite import SQLiteStore
from coursecrafter_server.uploads import UploadService
from coursecrafter_server.videos import VideoService
from coursecrafter_server.chunk_jobs import ChunkJobs

PORTS = [base.UserStore, base.RefreshTokenStore, base.RevocationStore, base.ApiTokenStore,
         base.CourseStore, base.VideoStore, base.UploadStore, base.JobStore, base.EventStore,
         base.ChunkStore]
CONSUMERS: list[Callable[..., Any]] = [
    AuthService, ApiTokenService, StoreRevocationList, CourseService, VideoService,
    PlaybackService, UploadService, JobService, ChunkJobs, lifecycle.write]


def _members(port: type) -> set[str]:
    return {name for klass in port.__mro__ if klass not in (object, typing.Protocol, typing.Generic)
            for name, value in vars(klass).items()
            if callable(value) and not name.startswith("_")}


def _parameters(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_ports_split_the_store_without_overlap() -> None:
    owned = [name for port in PORTS for name in _members(port)]
    assert len(owned) == len(set(owned))
    assert set(owned) | {"ping", "close"} == _members(base.Store)


@pytest.mark.parametrize("adapter", [MemoryStore, SQLiteStore, MongoStore])
def test_every_adapter_implements_every_port(adapter: type) -> None:
    for name in sorted(_members(base.Store)):
        assert hasattr(adapter, name), f"{adapter.__name__} lacks {name}"
        assert _parameters(getattr(adapter, name)) == _parameters(getattr(base.Store, name)), name


def _declared_port(consumer: Callable[..., Any]) -> type:
    target = consumer.__init__ if isinstance(consumer, type) else consumer
    port = typing.get_type_hints(target)["store"]
    assert isinstance(port, type) and port is not base.Store, consumer
    return port


def _store_calls(consumer: Callable[..., Any]) -> tuple[set[str], bool]:
    """The store methods `consumer` calls, and whether it hands its store to lifecycle.write."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(consumer)))
    called: set[str] = set()
    writes = False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and _is_store(func.value):
            called.add(func.attr)
        if (isinstance(func, ast.Attribute) and func.attr == "write"
                and isinstance(func.value, ast.Name) and func.value.id == "lifecycle"):
            writes = writes or any(_is_store(arg) for arg in node.args[:1])
    return called, writes


def _is_store(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "store"
    return (isinstance(node, ast.Attribute) and node.attr in ("store", "_store")
            and isinstance(node.value, ast.Name) and node.value.id == "self")


@pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda c: c.__qualname__)
def test_each_consumer_calls_only_its_port(consumer: Callable[..., Any]) -> None:
    port = _declared_port(consumer)
    called, writes = _store_calls(consumer)
    assert called, f"{consumer.__qualname__} calls nothing on its store: is the table right?"
    assert called <= _members(port), f"beyond {port.__name__}: {sorted(called - _members(port))}"
    if writes:
        assert _declared_port(lifecycle.write) in port.__mro__
    # Narrowest: every port it is made of is one it uses.
    for part in PORTS:
        if part in port.__mro__:
            assert called & _members(part) or (writes and part is base.VideoStore), part.__name__
