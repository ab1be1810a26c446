"""`make demo` (scripts/demo.py) end to end, twice over the same data folder, as a user runs it
again: both runs exit 0 with a ready lecture and the watch page's URL, and the second prints no
misleading `error:` line for the account the first one made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def run_demo(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEMO_DIR": str(folder), "DEMO_CLIP_SECONDS": "3"}
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, text=True,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=240)


@pytest.mark.slow
def test_the_demo_runs_twice_without_an_error_line(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = run_demo(folder)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Lecture 1 is ready" in first.stdout, first.stdout
    assert "demo: watch page" in first.stdout

    second = run_demo(folder)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "the demo account exists from an earlier run" in second.stdout
    assert "Lecture 1 is ready" in second.stdout, second.stdout
    for run in (first, second):
        assert "error:" not in run.stdout + run.stderr, run.stdout + run.stderr
