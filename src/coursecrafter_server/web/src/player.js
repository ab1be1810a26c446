// The watch page's player: the browser's own HLS where it has it, hls.js (a separate chunk,
// loaded only then) otherwise. A quality menu, keyboard control, the position remembered per
// lecture, and a fresh playback URL when the old one has expired (403 during playback).

import { api } from "./api.js";
import { announce, duration, h } from "./dom.js";

const POSITION = "coursecrafter.position.";
const KEYS_HELP = "Keys: Space or K play/pause, ← → seek 5 s, J L seek 10 s, ↑ ↓ volume, M mute, F full screen.";

function savedPosition(videoId) {
  try {
    const value = Number(localStorage.getItem(POSITION + videoId));
    return Number.isFinite(value) && value > 0 ? value : 0;
  } catch { return 0; }
}

function savePosition(videoId, time, total) {
  try {
    if (!Number.isFinite(time) || time < 1 || (total && time > total - 5)) {
      localStorage.removeItem(POSITION + videoId); // finished (or barely started): start over
    } else {
      localStorage.setItem(POSITION + videoId, String(Math.floor(time * 10) / 10));
    }
  } catch { /* fine */ }
}

// The rungs of a master playlist: [{height, bandwidth, url}], highest first.
async function variants(masterUrl) {
  const response = await fetch(masterUrl, { credentials: "omit" });
  if (!response.ok) throw new Error(`playlist: ${response.status}`);
  const lines = (await response.text()).split(/\r?\n/);
  const found = [];
  for (let i = 0; i < lines.length; i += 1) {
    if (!lines[i].startsWith("#EXT-X-STREAM-INF:")) continue;
    const resolution = /RESOLUTION=(\d+)x(\d+)/.exec(lines[i]);
    const bandwidth = /BANDWIDTH=(\d+)/.exec(lines[i]);
    const uri = lines.slice(i + 1).find((l) => l.trim() && !l.startsWith("#"));
    if (!uri) continue;
    found.push({
      height: resolution ? Number(resolution[2]) : 0,
      bandwidth: bandwidth ? Number(bandwidth[1]) : 0,
      url: new URL(uri.trim(), masterUrl).href,
    });
  }
  return found.sort((a, b) => b.height - a.height || b.bandwidth - a.bandwidth);
}

function nativeHls(videoEl) {
  const forced = new URLSearchParams(location.search).get("player");
  if (forced === "hlsjs") return false;
  if (forced === "native") return true;
  return videoEl.canPlayType("application/vnd.apple.mpegurl") !== "";
}

// Where hls.js will be needed, start loading it at once (on arrival at a watch page, while the
// session and the lecture are still being fetched): the player's own import then finds it ready.
export function warmPlayer() {
  if (!nativeHls(document.createElement("video"))) import("hls.js").catch(() => {});
}

// First frame on screen: a performance mark (the browser tests and bench/first_frame.py read it).
function watchFirstFrame(el) {
  const mark = () => {
    if (performance.getEntriesByName("coursecrafter:first-frame").length === 0) {
      performance.mark("coursecrafter:first-frame");
    }
  };
  if (el.requestVideoFrameCallback) el.requestVideoFrameCallback(mark);
  else el.addEventListener("playing", mark, { once: true });
}

// Settles once `el` has presented its first frame, failed, or after 3 s at most.
function firstFrameOf(el) {
  return new Promise((resolve) => {
    // The first frame on screen, not `loadeddata` (before it: work done then would hold it back).
    if (el.requestVideoFrameCallback) el.requestVideoFrameCallback(() => resolve());
    else el.addEventListener("loadeddata", resolve, { once: true });
    for (const type of ["error", "abort", "emptied"]) el.addEventListener(type, resolve, { once: true });
    setTimeout(resolve, 3000); // whatever happens, nothing waits longer
  });
}

// The browser's controls and the poster come once `el` has its first frame (or failed, or 3 s
// went by). The controls cost the first frame 40 ms on a 2-core machine: Chromium lays them out
// again at each step of the loading, on the page's thread, in the middle of the player's requests
// (docs/benchmarks.md). The poster would be on screen for a blink, at the price of a request and
// an image decoded meanwhile. Where autoplay is refused the first frame comes all the same (the
// element loads it, paused), and the poster then shows: an element that has not started playing
// shows its poster, not its first frame.
function dressAfterFirstFrame(el, firstFrame) {
  const { poster } = el.dataset;
  firstFrame.then(() => {
    el.controls = true;
    if (poster && !el.getAttribute("poster")) el.poster = poster;
  });
}

// The page's own <video>, when the server put the watch page's player in its HTML
// (web/__init__.py): the browser's own HLS gets its source here, as this module is evaluated
// (the rest of the app waits for the first frame, see pagePlayerStarted), and the player adopts
// the element where it is rather than start again.
let pageVideo = document.getElementById("page-video");
let pageFirstFrame = Promise.resolve();
if (pageVideo) {
  pageVideo.removeAttribute("id");
  watchFirstFrame(pageVideo);
  if (nativeHls(pageVideo)) pageVideo.src = pageVideo.dataset.src;
  // Before its metadata, this sets where playback will start (HTML's default playback start
  // position): a remembered position is where the page's autoplaying element begins.
  const at = savedPosition(pageVideo.dataset.videoId);
  if (at) pageVideo.currentTime = at;
  pageFirstFrame = firstFrameOf(pageVideo);
  dressAfterFirstFrame(pageVideo, pageFirstFrame);
}

// Settles once the page's own element has presented its first frame, failed, or after 3 s; at
// once without one. What need not come before the first frame waits for it (the session refresh,
// the poster), so that nothing competes with the player's requests.
export function afterPageFirstFrame() {
  return pageFirstFrame;
}

// The same, but at once where the page's element has no HLS of its own: the app's render mounts
// hls.js on it, so the render cannot wait (the app renders the rest of the page after this).
export function pagePlayerStarted() {
  return pageVideo && nativeHls(pageVideo) ? pageFirstFrame : Promise.resolve();
}

// The player's area (div.watch) the page came with for `videoId`, still in the page; else null.
export function pagePlayerArea(videoId) {
  const area = pageVideo && pageVideo.dataset.videoId === videoId ? pageVideo.closest(".watch") : null;
  return area && area.isConnected ? area : null;
}

export function mountPlayer(container, initialVideo) {
  let video = initialVideo;
  let hls = null;
  let destroyed = false;
  let rungs = [];
  let choice = "auto"; // "auto" or a height
  let reloads = 0;
  let lastSaved = 0;
  // Whether the viewer wants it playing: a failed request can pause the element (the browser's
  // own HLS does) before the page learns why, so the element's `paused` cannot tell.
  let wantsToPlay = false;

  const early = pageVideo;
  pageVideo = null;
  const adopted = early && early.dataset.videoId === video.id && container.contains(early) ? early : null;
  const el = adopted || h("video", {
    controls: true, playsinline: true, preload: "metadata", class: "player-video",
    poster: video.poster_url || undefined, "aria-label": `Lecture video: ${video.title}`,
  });
  el.setAttribute("aria-describedby", "player-keys");
  if (early && !adopted) { // another lecture's (never, today): stop its loading
    early.removeAttribute("src");
    early.load();
  }
  const quality = h("select", { id: "quality", "aria-label": "Quality" },
    h("option", { value: "auto" }, "Auto"));
  const engine = h("span", { class: "muted small", id: "player-engine" });
  const bar = h("figcaption", { class: "player-bar" },
    h("label", { for: "quality" }, "Quality "), quality, " ", engine);
  const keys = h("p", { id: "player-keys", class: "muted small" }, KEYS_HELP);
  const figure = adopted ? adopted.closest("figure") : h("figure", { class: "player" },
    h("div", { class: "player-frame" }, el));
  figure.append(bar, keys);
  if (!adopted) container.append(figure);

  const useNative = nativeHls(el);
  engine.textContent = useNative ? "(browser HLS)" : "(hls.js)";
  engine.dataset.engine = useNative ? "native" : "hlsjs";

  if (!adopted) watchFirstFrame(el);

  function fillMenu() {
    const current = quality.value;
    quality.replaceChildren(h("option", { value: "auto" }, "Auto"),
      ...rungs.map((r) => h("option", { value: String(r.height) }, `${r.height}p`)));
    quality.value = rungs.some((r) => String(r.height) === current) ? current : "auto";
  }

  async function load(startAt, resume) {
    if (destroyed) return;
    if (useNative) {
      const start = (url) => {
        // An adopted element already loading this very URL carries on.
        const loading = el.getAttribute("src") === url && !el.error;
        if (!loading) el.src = url;
        if (startAt > 0) {
          const seek = () => {
            el.currentTime = startAt;
            if (resume) el.play().catch(() => {});
          };
          if (loading && el.readyState >= HTMLMediaElement.HAVE_METADATA) seek();
          else el.addEventListener("loadedmetadata", seek, { once: true });
        } else if (resume) {
          el.play().catch(() => {}); // at once: waiting for the metadata first costs a round trip
        }
      };
      // Automatic quality needs only the master playlist: the browser starts on it at once and the
      // menu is filled once the first frame is in (its fetch of the master playlist would
      // otherwise compete with the first frame's requests). A chosen rung needs the rung's own
      // URL (with this token) first.
      if (choice === "auto") {
        start(video.playback_url);
        await new Promise((resolve) => {
          if (el.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA) resolve(); // adopted, ahead
          el.addEventListener("loadeddata", resolve, { once: true });
          el.addEventListener("error", resolve, { once: true });
        });
      }
      rungs = await variants(video.playback_url).catch(() => []);
      if (destroyed) return;
      fillMenu();
      if (choice !== "auto") {
        const rung = rungs.find((r) => String(r.height) === String(choice));
        start(rung ? rung.url : video.playback_url);
      }
      return;
    }
    // The full build, not hls.js/light: the light one has no alternate-audio support and plays a
    // ladder whose sound is its own rendition (EXT-X-MEDIA, every encoded-audio ladder) silently.
    const { default: Hls } = await import("hls.js");
    if (destroyed) return;
    if (!Hls.isSupported()) {
      engine.textContent = "(this browser cannot play HLS)";
      return;
    }
    if (hls) hls.destroy();
    hls = new Hls({
      startPosition: startAt > 0 ? startAt : -1, capLevelToPlayerSize: false,
      // hls.js as an ES module has no worker inside; its worker file, shipped beside the app and
      // started on demand, made the first frame 1.4x later (docs/benchmarks.md): transmux here.
      enableWorker: false,
    });
    hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
      rungs = data.levels.map((level, index) => ({ height: level.height, bandwidth: level.bitrate, index }))
        .sort((a, b) => b.height - a.height);
      fillMenu();
      const rung = rungs.find((r) => String(r.height) === String(choice));
      if (rung) hls.currentLevel = rung.index;
      if (resume) el.play().catch(() => {});
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      const status = data.response && data.response.code;
      if (status === 403 || (data.fatal && data.type === Hls.ErrorTypes.NETWORK_ERROR)) {
        renew();
      } else if (data.fatal && data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else if (data.fatal) {
        announce("Playback failed.");
      }
    });
    hls.loadSource(video.playback_url);
    hls.attachMedia(el);
    if (resume && !(startAt > 0)) el.play().catch(() => {});
  }

  // The playback URL expired (or storage refused a segment): fetch the video again for fresh
  // URLs and carry on from the same position.
  let renewing = false;
  async function renew() {
    if (renewing || destroyed || reloads >= 5) return;
    renewing = true;
    reloads += 1;
    const at = el.currentTime;
    const wasPlaying = wantsToPlay || !el.paused;
    try {
      video = await api("GET", `/videos/${encodeURIComponent(video.id)}`);
      if (video.poster_url) el.poster = video.poster_url;
      await load(at, wasPlaying);
    } catch {
      announce("Playback stopped: the lecture could not be reloaded.");
    } finally {
      renewing = false;
    }
  }

  quality.addEventListener("change", () => {
    choice = quality.value;
    const rung = rungs.find((r) => String(r.height) === choice);
    if (hls) {
      hls.currentLevel = rung ? rung.index : -1; // -1: automatic
      hls.loadLevel = rung ? rung.index : -1;
    } else if (useNative) {
      const at = el.currentTime;
      const wasPlaying = !el.paused;
      el.src = rung ? rung.url : video.playback_url;
      el.addEventListener("loadedmetadata", () => {
        el.currentTime = at;
        if (wasPlaying) el.play().catch(() => {});
      }, { once: true });
    }
    announce(rung ? `Quality ${rung.height}p` : "Quality automatic");
  });

  el.addEventListener("play", () => { wantsToPlay = true; });
  el.addEventListener("pause", () => { if (!el.error && !renewing) wantsToPlay = false; });
  el.addEventListener("error", () => {
    if (useNative) renew(); // the browser's HLS does not say why; an expired URL is the likely cause
  });
  el.addEventListener("timeupdate", () => {
    const now = performance.now();
    if (now - lastSaved > 2000) {
      lastSaved = now;
      savePosition(video.id, el.currentTime, el.duration || video.duration);
    }
  });
  const saveNow = () => savePosition(video.id, el.currentTime, el.duration || video.duration);
  el.addEventListener("pause", saveNow);
  el.addEventListener("ended", () => savePosition(video.id, 0, 0));
  window.addEventListener("pagehide", saveNow);

  function onKey(event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target instanceof HTMLElement && target !== el &&
        (target.closest("input, select, textarea, button, a") || target.isContentEditable)) return;
    const seek = (delta) => {
      el.currentTime = Math.max(0, Math.min(el.duration || Infinity, el.currentTime + delta));
      announce(`${duration(el.currentTime)}`);
    };
    switch (event.key) {
      case " ": case "k": case "K": if (el.paused) el.play().catch(() => {}); else el.pause(); break;
      case "ArrowLeft": seek(-5); break;
      case "ArrowRight": seek(5); break;
      case "j": case "J": seek(-10); break;
      case "l": case "L": seek(10); break;
      case "ArrowUp": el.volume = Math.min(1, el.volume + 0.1); announce(`Volume ${Math.round(el.volume * 100)}%`); break;
      case "ArrowDown": el.volume = Math.max(0, el.volume - 0.1); announce(`Volume ${Math.round(el.volume * 100)}%`); break;
      case "m": case "M": el.muted = !el.muted; announce(el.muted ? "Muted" : "Sound on"); break;
      case "f": case "F":
        if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
        else figure.requestFullscreen?.().catch(() => {});
        break;
      case "Home": el.currentTime = 0; break;
      case "End": if (el.duration) el.currentTime = el.duration; break;
      default: return;
    }
    event.preventDefault();
  }
  document.addEventListener("keydown", onKey);

  const start = savedPosition(video.id);
  const total = video.duration || Infinity;
  const startAt = start && start < total - 5 ? start : 0;
  if (startAt) announce(`Resuming at ${duration(startAt)}`);
  load(startAt, true);

  return {
    element: el,
    destroy() {
      destroyed = true;
      saveNow();
      document.removeEventListener("keydown", onKey);
      window.removeEventListener("pagehide", saveNow);
      if (hls) hls.destroy();
      el.removeAttribute("src");
      el.load();
    },
  };
}
