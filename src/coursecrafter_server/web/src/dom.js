// Small DOM helpers. Text is only ever set as text (text nodes, textContent), never parsed as HTML.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "value" || key === "checked" || key === "disabled" || key === "hidden") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A new text node in the next frame, so screen readers read a repeated message again.
  requestAnimationFrame(() => { region.textContent = message; });
}

export function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

export function bytes(n) {
  if (!isFinite(n)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

export function statusText(video) {
  if (video.status === "ready") return "Ready";
  if (video.status === "failed") return "Failed";
  if (video.status === "processing") {
    const phase = video.phase ? `${video.phase}, ` : "";
    return `${video.playable ? "Playable, still processing" : "Processing"} (${phase}${video.progress}%)`;
  }
  return { awaiting_upload: "Waiting for upload", uploaded: "Uploaded", queued: "Queued" }[video.status]
    || video.status;
}

export function watchable(video) {
  return video.kind === "video" && (video.status === "ready" || video.playable === true)
    && Boolean(video.playback_url);
}
