"""docs/sdk.md's examples run as written against a real `coursecrafter-server` process (the
embedded default: SQLite, local blobs, in-process transcoder): the synchronous one uploads a
lecture, waits until it is ready and prints its watch page; the async one uploads slides while
listing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coursecrafter_cli import Client, MemoryCredentialStore

# The clip builder lives next to the pipeline tests (pytest puts tests/pipeline on sys.path only
# once it collects them, which is after tests/e2e).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_support import make_clip  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
PASSWORD = "lecture hall 42"


def examples() -> dict[str, str]:
    """The doc's runnable blocks: python fences whose first line is ``# <name>.py ...``."""
    blocks = re.findall(r"```python\n(# (\w+\.py)\b.*?)```", DOC.read_text(), flags=re.S)
    return {name: code for code, name in blocks}


def run(script: Path, arg: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), str(arg)], env=env, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.slow
def test_the_sdk_examples_run_against_a_real_server(live_server, cli_env, tmp_path: Path):
    found = examples()
    assert set(found) == {"example.py", "example_async.py"}
    with Client(live_server.url, credential_store=MemoryCredentialStore()) as cc:
        cc.register("ada", "ada@example.edu", PASSWORD)
    env = {**cli_env, "CC_USERNAME": "ada", "CC_PASSWORD": PASSWORD,
           "PYTHONPATH": os.pathsep.join(sys.path)}
    config_dir = Path(env["COURSECRAFTER_CONFIG_DIR"])
    for name, code in found.items():
        (tmp_path / name).write_text(code)

    lecture = make_clip(tmp_path / "lecture.mp4", rate=25, duration=2, audio=False)
    done = run(tmp_path / "example.py", lecture, env)
    assert done.returncode == 0, done.stderr
    status, duration, url = done.stdout.split()
    assert status == "ready" and float(duration) == pytest.approx(2, abs=0.2)
    assert re.fullmatch(rf"{re.escape(live_server.url)}/watch/[\w-]+", url)

    slides = tmp_path / "slides.pdf"
    slides.write_bytes(b"%PDF-1.4 slides\n" * 100)
    done = run(tmp_path / "example_async.py", slides, env)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("1 courses;") and "Week 1: ready" in first
    assert "Week 1 slides: ready" in first and second.startswith("attachment ")
    # login(save=False): neither script left a session behind (only upload resume state
    # may have been written, and is removed once an upload completes).
    assert not (config_dir / "credentials.json").exists()
