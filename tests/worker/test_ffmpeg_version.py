"""Which FFmpeg, which version: `coursecrafter-worker --version` tells, and the worker and the
embedded server refuse at start-up an FFmpeg older than 5.1 (fake `ffmpeg` scripts print old
version banners) or one that is not FFmpeg at all."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from coursecrafter_worker.pipeline.process import (
    UnsupportedFFmpeg,
    check_ffmpeg,
    parse_ffmpeg_version,
)

BIN = Path(sys.executable).parent


def fake_ffmpeg(directory: Path, version_line: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ffmpeg"
    path.write_text(f"#!/bin/sh\necho '{version_line}'\necho 'built with gcc 12'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")}
    env.update({"COURSECRAFTER_HOME": str(tmp_path / "home"), **extra})
    return env


@pytest.mark.parametrize(("line", "expected"), [
    ("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026 the FFmpeg developers",
     ("5.1.9-0+deb12u1", (5, 1, 9))),
    ("ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright (c) 2000-2026",
     ("n9.0.2-17-g2a571b6068-20260930", (9, 0, 2))),
    ("ffmpeg version 7.1 Copyright (c) 2000-2024", ("7.1", (7, 1))),
    ("ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021", ("4.4.2-0ubuntu0.22.04.1", (4, 4, 2))),
    ("ffmpeg version N-113000-gabcdef0123 Copyright (c) 2000-2024", ("N-113000-gabcdef0123", None)),
    ("usage: something else entirely", None),
])
def test_version_banner_is_parsed(line: str, expected: object) -> None:
    assert parse_ffmpeg_version(line + "\nbuilt with gcc 12\n") == expected


@pytest.mark.parametrize(("line", "accepted"), [
    ("ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021", False),
    ("ffmpeg version 5.0.3 Copyright (c) 2000-2022", False),
    ("ffmpeg version 5.1 Copyright (c) 2000-2022", True),
    ("ffmpeg version n6.1.1 Copyright (c) 2000-2023", True),
    ("ffmpeg version N-113000-gabcdef0123 Copyright (c) 2000-2024", True),  # git snapshot
    ("this is not ffmpeg", False),
])
def test_minimum_version_is_5_1(tmp_path: Path, line: str, accepted: bool) -> None:
    fake = fake_ffmpeg(tmp_path, line)
    if accepted:
        assert check_ffmpeg(str(fake)).path == str(fake)
    else:
        with pytest.raises(UnsupportedFFmpeg):
            check_ffmpeg(str(fake))


def test_a_missing_binary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFFmpeg, match="cannot start .*/nowhere/ffmpeg"):
        check_ffmpeg(str(tmp_path / "nowhere" / "ffmpeg"))


def test_worker_version_names_the_ffmpeg_in_use(tmp_path: Path) -> None:
    # The FFmpeg under test is first on PATH (tests/conftest.py); no COURSECRAFTER_FFMPEG.
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None
    real = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, timeout=30,
                          check=True).stdout.split()[2]
    done = subprocess.run([str(BIN / "coursecrafter-worker"), "--version"], capture_output=True,
                          text=True, timeout=60, env=clean_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("coursecrafter-worker ")
    assert lines[1] == f"FFmpeg {real} at {ffmpeg}"
    ffprobe = Path(ffmpeg).with_name("ffprobe")
    assert lines[2] == (f"ffprobe: {ffprobe}" if ffprobe.exists()
                        else "ffprobe: none (probing through ffmpeg's banner)")


def test_worker_version_follows_coursecrafter_ffmpeg(tmp_path: Path) -> None:
    fake = fake_ffmpeg(tmp_path / "opt", "ffmpeg version 6.0-custom Copyright (c) 2000-2023")
    done = subprocess.run([str(BIN / "coursecrafter-worker"), "--version"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path,
                          env=clean_env(tmp_path, COURSECRAFTER_FFMPEG=str(fake)))
    assert done.returncode == 0, done.stderr
    assert f"FFmpeg 6.0-custom at {fake}" in done.stdout.splitlines()


OLD = "ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021 the FFmpeg developers"


def test_worker_refuses_an_old_ffmpeg(tmp_path: Path) -> None:
    fake = fake_ffmpeg(tmp_path / "old", OLD)
    for args in (["--version"], []):
        # Started for real (a broker URL that nothing listens on): refused before any job.
        done = subprocess.run(
            [str(BIN / "coursecrafter-worker"), *args], capture_output=True, text=True,
            timeout=60, cwd=tmp_path,
            env=clean_env(tmp_path, COURSECRAFTER_FFMPEG=str(fake),
                          COURSECRAFTER_BROKER_URL="amqp://guest:guest@127.0.0.1:9/",
                          COURSECRAFTER_WEBHOOK_SECRET="x" * 32))
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert f"FFmpeg 4.4.2-0ubuntu0.22.04.1 at {fake} is too old" in done.stderr
        assert "needs FFmpeg 5.1 or newer" in done.stderr


def test_embedded_server_refuses_an_old_ffmpeg(tmp_path: Path) -> None:
    fake = fake_ffmpeg(tmp_path / "old", OLD)
    done = subprocess.run(
        [str(BIN / "coursecrafter-server"), "--port", "9"], capture_output=True, text=True,
        timeout=120, cwd=tmp_path, env=clean_env(tmp_path, COURSECRAFTER_FFMPEG=str(fake)))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"FFmpeg 4.4.2-0ubuntu0.22.04.1 at {fake} is too old" in done.stderr
    assert "needs FFmpeg 5.1 or newer" in done.stderr
