"""Dependencies point one way (DESIGN.md, "Packages").

- `coursecrafter_cli` imports neither of the others;
- `coursecrafter_worker` imports nothing from `coursecrafter_server`;
- the modules both sides share (job/event schemas, webhook signature, storage port and adapters,
  queue port, the shared settings fields) import neither FastAPI nor the store;
- the server reaches worker *runtime* code (runner, workdir, pipeline, queue adapters, notifier)
  only in its bootstrap and the embedded transcoder wiring.

Read from the source with `ast` (every import, including ones inside functions), and once for
real: the worker's modules import in a process where the server package and FastAPI cannot.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Worker modules the server may import anywhere: the contracts both sides share.
SHARED = (
    "coursecrafter_worker.messages",
    "coursecrafter_worker.signing",
    "coursecrafter_worker.storage",
    "coursecrafter_worker.queue.base",
    "coursecrafter_worker.common_settings",
)
#: The only server modules that may wire worker runtime code in.
WIRING = {"coursecrafter_server.bootstrap", "coursecrafter_server.transcoders"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every absolute module name `path` imports, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # `from pkg import submodule` imports the submodule too.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    return {
        _module_name(path): _imports(path) for path in sorted((SRC / package).rglob("*.py"))
    }


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_graph_is_read_at_all() -> None:
    # Guards the tests below against passing on an empty or misread tree.
    server = _graph("coursecrafter_server")
    assert "coursecrafter_server.jobs" in server
    assert "coursecrafter_worker.messages" in server["coursecrafter_server.jobs"]


@pytest.mark.parametrize("package", ["coursecrafter_cli", "coursecrafter_worker"])
def test_cli_and_worker_import_nothing_of_the_server(package: str) -> None:
    offenders = {
        module: sorted(i for i in imports if _within(i, "coursecrafter_server"))
        for module, imports in _graph(package).items()
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_cli_imports_nothing_of_the_worker() -> None:
    offenders = {
        module: sorted(i for i in imports if _within(i, "coursecrafter_worker"))
        for module, imports in _graph("coursecrafter_cli").items()
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_server_reaches_worker_runtime_only_in_its_wiring() -> None:
    offenders = {}
    for module, imports in _graph("coursecrafter_server").items():
        if module in WIRING:
            continue
        runtime = sorted(
            i
            for i in imports
            if _within(i, "coursecrafter_worker")
            and i != "coursecrafter_worker"
            and not any(_within(i, shared) for shared in SHARED)
        )
        if runtime:
            offenders[module] = runtime
    assert offenders == {}


def test_shared_modules_import_neither_fastapi_nor_the_store() -> None:
    graph = _graph("coursecrafter_worker")
    offenders = {}
    for module, imports in graph.items():
        if not any(_within(module, shared) for shared in SHARED):
            continue
        bad = sorted(
            i for i in imports if _within(i, "fastapi") or _within(i, "starlette") or "store" in i.split(".")
        )
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_worker_modules_import_without_the_server_package() -> None:
    # For real: block coursecrafter_server and FastAPI, then import every worker module.
    modules = sorted(m for m in _graph("coursecrafter_worker") if m != "coursecrafter_worker.__main__")
    code = f"""
import importlib, importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('coursecrafter_server', 'fastapi', 'starlette'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
for m in {modules!r}:
    importlib.import_module(m)
print('ok', len({modules!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")
