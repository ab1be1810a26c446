"""A WebM lecture (VP9 + Opus) plays in the browser with its sound: the ladder encodes the Opus to
AAC once, into one audio rendition that both rungs name (issue 9), and the quality menu offers
the rungs only. Screenshots in tests/web/screenshots/ (git-ignored)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from websupport import Site, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 120_000  # ms: conditions on a busy 2-core machine get generous time
SECONDS = 8


def make_webm(path: Path) -> Path:
    """854x480 (two rungs) VP9 at 24 fps with an Opus tone, as a browser's screen recorder
    writes it."""
    from coursecrafter_worker.pipeline import find_ffmpeg

    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s=854x480:d={SECONDS}:r=24",
         "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={SECONDS}",
         "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k",
         "-c:a", "libopus", "-ac", "2", str(path)],
        check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def webm_lecture(site: Site, tmp_path_factory: pytest.TempPathFactory) -> dict:
    ada = site.client("ada")
    clip = make_webm(tmp_path_factory.mktemp("webm") / "screen-recording.webm")
    video = site.upload(ada, clip, site.course_id, "Lecture 2: Screen recording",
                        content_type="video/webm")
    return site.wait_ready(ada, video["id"])


def test_the_webm_lecture_has_one_audio_rendition(webm_lecture: dict) -> None:
    assert [r["height"] for r in webm_lecture["renditions"]] == [480, 360]
    master = httpx.get(webm_lecture["playback_url"], timeout=10)
    assert master.status_code == 200
    assert master.text.count('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"') == 1
    assert master.text.count('AUDIO="audio"') == 2
    assert master.text.count("#EXT-X-STREAM-INF") == 2


@pytest.mark.parametrize("engine", ["default", "hlsjs"])
def test_the_webm_lecture_plays_with_sound_and_only_rungs_in_the_menu(
        site: Site, webm_lecture: dict, new_page, engine: str) -> None:
    p = new_page()
    page = p.page
    sign_in(p, site, "sam")
    page.get_by_role("heading", name="Courses", exact=True).wait_for()
    suffix = "?player=hlsjs" if engine == "hlsjs" else ""
    page.goto(f"{site.url}/watch/{webm_lecture['id']}{suffix}")
    page.get_by_role("heading", name="Lecture 2: Screen recording").wait_for()
    page.wait_for_function("() => (document.querySelector('video') || {}).currentTime > 2",
                           timeout=WAIT)
    # Sound was decoded (Chromium counts the audio bytes it decoded), next to the picture.
    assert page.evaluate("() => document.querySelector('video').webkitAudioDecodedByteCount") > 0
    assert page.evaluate("() => document.querySelector('video').videoHeight") in (480, 360)
    options = page.get_by_label("Quality").locator("option").all_text_contents()
    assert options == ["Auto", "480p", "360p"], options
    page.get_by_label("Quality").select_option("360")
    page.wait_for_function(
        "() => { const v = document.querySelector('video');"
        " if (v.ended || (v.paused && v.currentTime > 5)) { v.currentTime = 0; v.play(); }"
        " return v.videoHeight === 360; }", timeout=WAIT)
    p.shot(f"webm-audio-{engine}")
    assert p.csp_violations() == []
    assert p.dialogs == [] and p.errors == []
