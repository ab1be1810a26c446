"""Playback from a page on another origin (CORS, directly and through the NGINX gateway), and
playback that carries on across the expiry of its playback token.

Screenshots in tests/web/screenshots/ (git-ignored)."""

from __future__ import annotations

import re

import pytest
from conftest import EXPIRING_CLIP

from websupport import Site, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 120_000  # ms: conditions on a busy 2-core machine get generous time


@pytest.mark.parametrize("origin", ["allowed", "refused"])
def test_a_page_on_another_origin_plays_only_when_its_origin_is_allowed(
        any_site: Site, other_origins, new_page, origin: str) -> None:
    site = any_site
    sam = site.client("sam")
    video = sam.get(f"/videos/{site.video_id}").json()
    assert video["playback_url"].startswith(site.url + "/api/v1/play/")
    token = sam.headers["Authorization"].split()[1]
    page_url = (f"{other_origins[origin].url}/#api={site.url}/api/v1&video={site.video_id}"
                f"&token={token}&playback={video['playback_url']}")
    p = new_page()
    page = p.page
    page.goto(page_url)
    if origin == "allowed":
        page.wait_for_function("() => document.body.dataset.playback === 'playing' &&"
                               " document.querySelector('video').currentTime > 1.5", timeout=WAIT)
        assert page.evaluate("() => document.body.dataset.api") == "ok ready"
        assert page.evaluate("() => document.querySelector('video').videoHeight") > 0
    else:
        page.wait_for_function("() => (document.body.dataset.playback || '').startsWith('refused')"
                               " && (document.body.dataset.api || '').startsWith('refused')",
                               timeout=WAIT)
        assert page.evaluate("() => document.querySelector('video').currentTime") == 0
        assert page.evaluate("() => document.body.dataset.playback") == \
            "refused (manifestLoadError)"
    p.shot(f"{site.tag}other-origin-{origin}")
    assert p.errors == []


@pytest.mark.parametrize("engine", ["default", "hlsjs"])
def test_playback_carries_on_across_a_token_expiry(expiring_site: Site, new_page,
                                                   engine: str) -> None:
    """Tokens live 5-6 s and the lecture plays (at twice the speed) for 15 s. Once the first
    token has expired, the viewer picks 360p: the player's next requests (the browser's own HLS
    may meet the expiry before that by itself; hls.js has buffered the whole lecture by then) are
    answered 403 url_expired, and the page fetches the video again and carries on from where it
    was, in 360p."""
    site = expiring_site
    p = new_page()
    page = p.page
    expired: list[str] = []
    tokens: set[str] = set()
    video_fetches: list[int] = []

    def seen(response) -> None:
        match = re.search(r"/api/v1/play/([^/]+)/", response.url)
        if match:
            tokens.add(match[1])
            if response.status == 403:
                expired.append(response.url)
        elif response.url.endswith(f"/api/v1/videos/{site.video_id}"):
            video_fetches.append(response.status)

    page.on("response", seen)
    sign_in(p, site, "sam")
    suffix = "?player=hlsjs" if engine == "hlsjs" else ""
    page.goto(f"{site.url}/watch/{site.video_id}{suffix}")
    page.locator("video").wait_for()
    # Twice the speed (defaultPlaybackRate survives the player re-attaching the element), and a
    # record of the position whenever the element has a frame to show.
    page.evaluate("""() => { const v = document.querySelector('video');
        v.defaultPlaybackRate = 2; v.playbackRate = 2; window.__times = [];
        v.addEventListener('ratechange', () => { if (v.playbackRate !== 2) v.playbackRate = 2; });
        v.addEventListener('timeupdate', () => {
          if (v.readyState >= 2 && !v.seeking) window.__times.push(v.currentTime); }); }""")
    page.wait_for_function("() => (document.querySelector('video') || {}).currentTime > 2",
                           timeout=WAIT)
    p.shot(f"expiry-{engine}-1-playing")
    first = next(iter(tokens))
    expires = int(first.split(".")[1])  # the token names its own expiry (unix seconds)
    page.wait_for_function(f"() => Date.now() / 1000 > {expires + 0.5}", timeout=WAIT)
    page.get_by_label("Quality").select_option("360")
    try:
        page.wait_for_function(
            f"() => {{ const v = document.querySelector('video');"
            f" return v.ended || v.currentTime > {EXPIRING_CLIP - 3}; }}", timeout=WAIT)
    except Exception:
        p.shot(f"expiry-{engine}-stuck")
        state = page.evaluate("() => { const v = document.querySelector('video'); return {t: v.currentTime,"
                              " rs: v.readyState, ns: v.networkState, err: v.error && v.error.code,"
                              " paused: v.paused, src: v.currentSrc, times: window.__times.slice(-5)}; }")
        raise AssertionError(f"playback stopped: {state}; 403s: {expired}; tokens: {tokens};"
                             f" video fetches: {video_fetches}") from None
    p.shot(f"expiry-{engine}-2-near-the-end")
    times = page.evaluate("() => window.__times")
    engine_used = page.locator("#player-engine").get_attribute("data-engine")

    assert expired, f"no playback request met an expired token ({engine_used}); tokens: {tokens}"
    # Renewed: the page's first record came with the session (POST /session/refresh naming the
    # video), each renewal is a GET /videos/{id}.
    assert len(video_fetches) >= 1 and set(video_fetches) == {200}, video_fetches
    assert len(tokens) >= 2, tokens
    assert page.evaluate("() => document.querySelector('video').videoHeight") == 360
    # Carried on from the same place: the position never went back by more than a second.
    drops = [round(a - b, 2) for a, b in zip(times, times[1:]) if a - b > 1.0]
    assert drops == [], (drops, times)
    assert p.errors == [] and p.csp_violations() == []
    assert page.get_by_text("Playback stopped").count() == 0
    assert page.get_by_text("Playback failed").count() == 0
