"""The namespace harness's own promises (tests/netsupport.py): a missing capability skips with
its reason outside CI and fails under COURSECRAFTER_REQUIRE_SERVICES; a network is removed
whole, also when the process that built it was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import netsupport


def _outcome(monkeypatch: pytest.MonkeyPatch, require: bool) -> BaseException:
    monkeypatch.setattr(netsupport, "netns_unusable", lambda: "no namespaces here")
    if require:
        monkeypatch.setenv("COURSECRAFTER_REQUIRE_SERVICES", "1")
    else:
        monkeypatch.delenv("COURSECRAFTER_REQUIRE_SERVICES", raising=False)
    with pytest.raises(BaseException) as caught:
        netsupport.require_netns()
    return caught.value


def test_missing_namespaces_skip_outside_ci_and_fail_in_ci(monkeypatch) -> None:
    skipped = _outcome(monkeypatch, require=False)
    assert isinstance(skipped, pytest.skip.Exception) and "no namespaces here" in str(skipped)
    failed = _outcome(monkeypatch, require=True)
    assert isinstance(failed, pytest.fail.Exception), failed
    assert "COURSECRAFTER_REQUIRE_SERVICES" in str(failed) and "no namespaces here" in str(failed)


def _names() -> str:
    return netsupport.ip("netns", "list") + netsupport.ip("-o", "link", "show")


def test_a_network_is_removed_whole_even_after_its_builder_was_killed() -> None:
    netsupport.require_netns()
    with netsupport.Network(["a"]) as net:
        host = net["a"]
        assert host.linked and host.netns in _names() and net.bridge in _names()
        host.cut()
        assert not host.linked
    assert host.netns not in _names() and net.bridge not in _names()

    # A test run killed before its cleanup: the next run's sweep removes what it left.
    code = ("import netsupport, os, signal\n"
            "net = netsupport.Network(['a'])\n"
            "print(net.bridge, net['a'].netns, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == -signal.SIGKILL, done.stderr
    bridge, netns = done.stdout.split()
    assert bridge in _names() and netns in _names()
    assert {bridge, netns} <= set(netsupport.sweep_stale())
    assert bridge not in _names() and netns not in _names()
