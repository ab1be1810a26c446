"""Session-scoped test clips, made on first use with FFmpeg's lavfi sources (tiny sizes and
durations: the machine has 2 cores and the whole pipeline suite should stay well under a minute)."""

from __future__ import annotations

import os

import pytest
from pipeline_support import Clips


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(autouse=True)
def _no_ffmpeg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests pick the binary themselves; a developer's override must not leak in.
    for name in ("COURSECRAFTER_FFMPEG", "COURSECRAFTER_FFMPEG_MEMORY_LIMIT"):
        if name in os.environ:
            monkeypatch.delenv(name)
