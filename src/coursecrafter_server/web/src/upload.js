// Browser upload straight to storage with the same multipart API as the CLI: POST /uploads, PUT
// the parts to the returned (pre-signed) URLs in parallel, read each ETag, POST complete. The
// upload's id is remembered per file (name, size, last change) so choosing the same file again
// after a reload resumes it: GET /uploads/{id}/parts says which parts storage already has.

import { api, ApiError } from "./api.js";

const PARALLEL = 4;
const MAX_TRIES = 6;

const TYPES = {
  mp4: "video/mp4", m4v: "video/mp4", mov: "video/quicktime", mkv: "video/x-matroska",
  webm: "video/webm", avi: "video/x-msvideo", mpg: "video/mpeg", mpeg: "video/mpeg",
  ts: "video/mp2t", mp3: "audio/mpeg", m4a: "audio/mp4", wav: "audio/wav", ogg: "audio/ogg",
};

// The attachment types the server takes (its ATTACHMENT_TYPES), by extension: browsers name some
// of them differently or not at all (.md is "" or text/x-markdown), so the extension decides.
export const ATTACHMENT_TYPES = {
  pdf: "application/pdf", txt: "text/plain", md: "text/markdown", csv: "text/csv",
  zip: "application/zip", ppt: "application/vnd.ms-powerpoint",
  pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  doc: "application/msword",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  odp: "application/vnd.oasis.opendocument.presentation",
  png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg",
};

function contentType(file, kind) {
  const ext = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  if (kind === "attachment") return ATTACHMENT_TYPES[ext] || file.type || "application/octet-stream";
  return file.type || TYPES[ext] || "application/octet-stream";
}

function resumeKey(file, courseId, kind) {
  return `coursecrafter.upload.${kind}.${courseId}.${file.size}.${file.lastModified}.${file.name}`;
}

function load(key) {
  try { return JSON.parse(localStorage.getItem(key) || "null"); } catch { return null; }
}

function save(key, value) {
  try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* fine: no resume */ }
}

function forget(key) {
  try { localStorage.removeItem(key); } catch { /* fine */ }
}

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); });
  });
}

// One PUT with upload progress (fetch has none): resolves to the ETag.
function put(url, blob, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        const etag = xhr.getResponseHeader("ETag");
        if (etag) resolve(etag);
        else reject(new ApiError(0, "no_etag", "storage did not return an ETag (CORS must expose it)"));
      } else {
        let code = "storage_error";
        try { code = JSON.parse(xhr.responseText).error.code; } catch { /* S3 answers XML */ }
        reject(new ApiError(xhr.status, code, `storage answered ${xhr.status}`));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network_error", "the connection to storage failed"));
    xhr.onabort = () => reject(new DOMException("upload cancelled", "AbortError"));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(blob);
  });
}

// Progress with a speed over the last few seconds and the time left.
class Meter {
  constructor(total, done) {
    this.total = total;
    this.samples = [[performance.now(), done]];
  }
  update(done) {
    const now = performance.now();
    this.samples.push([now, done]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
    const [t0, b0] = this.samples[0];
    const speed = now > t0 ? ((done - b0) * 1000) / (now - t0) : 0;
    const eta = speed > 0 ? (this.total - done) / speed : Infinity;
    return { done, total: this.total, speed, eta };
  }
}

// `kind`: "video" (transcoded) or "attachment" (slides, notes: stored as they are).
export async function uploadFile({ file, courseId, title, kind = "video", onStart, onProgress, signal }) {
  const key = resumeKey(file, courseId, kind);
  const etags = new Map();
  let upload = null;
  const saved = load(key);
  if (saved) {
    try {
      const listed = await api("GET", `/uploads/${encodeURIComponent(saved.upload_id)}/parts`);
      if (listed.status === "active" && listed.size === file.size) {
        upload = { ...listed, parts: [] };
        for (const part of listed.parts) {
          const expected = part.part_number === listed.part_count
            ? file.size - (listed.part_count - 1) * listed.part_size : listed.part_size;
          if (part.size === expected) etags.set(part.part_number, part.etag);
        }
      }
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
    if (!upload) forget(key);
  }
  const resumed = Boolean(upload);
  if (!upload) {
    upload = await api("POST", "/uploads", {
      filename: file.name, size: file.size, content_type: contentType(file, kind),
      course_id: courseId, kind, ...(title ? { title } : {}),
    });
    save(key, { upload_id: upload.upload_id, video_id: upload.video_id });
  }
  onStart?.({ videoId: upload.video_id, resumed, partsDone: etags.size });

  const urls = new Map((upload.parts || []).map((p) => [p.part_number, p.url]));
  const partSize = upload.part_size;
  const count = upload.part_count;
  const sizeOf = (n) => (n === count ? file.size - (count - 1) * partSize : partSize);
  const todo = [];
  for (let n = 1; n <= count; n += 1) if (!etags.has(n)) todo.push(n);

  let doneBytes = 0;
  for (const n of etags.keys()) doneBytes += sizeOf(n);
  const inFlight = new Map();
  const meter = new Meter(file.size, doneBytes);
  const report = () => {
    let sum = doneBytes;
    for (const v of inFlight.values()) sum += v;
    onProgress?.(meter.update(sum));
  };
  report();

  async function sign(numbers) {
    const signed = await api("POST", `/uploads/${encodeURIComponent(upload.upload_id)}/parts`,
      { part_numbers: numbers });
    for (const p of signed.parts) urls.set(p.part_number, p.url);
  }

  async function sendPart(n) {
    for (let attempt = 1; ; attempt += 1) {
      if (!urls.has(n)) await sign([n, ...queue.filter((m) => !urls.has(m)).slice(0, 63)]);
      const start = (n - 1) * partSize;
      try {
        const etag = await put(urls.get(n), file.slice(start, start + sizeOf(n)),
          (loaded) => { inFlight.set(n, loaded); report(); }, signal);
        inFlight.delete(n);
        etags.set(n, etag);
        doneBytes += sizeOf(n);
        report();
        return;
      } catch (error) {
        inFlight.delete(n);
        report();
        if (signal?.aborted || attempt >= MAX_TRIES) throw error;
        if (error.status === 403) urls.delete(n); // expired or refused URL: sign it afresh
        else if (error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429) throw error;
        await pause(Math.min(8000, 500 * 2 ** attempt), signal);
      }
    }
  }

  const queue = todo.slice();
  let failed = false;
  const lanes = Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
    try {
      while (queue.length && !failed) await sendPart(queue.shift());
    } catch (error) {
      failed = true; // the other lanes finish their part and stop; a new try resumes
      throw error;
    }
  });
  // Every lane ends (the parts in flight land in storage) before a failure is reported, so a
  // resume finds them there.
  const failure = (await Promise.allSettled(lanes)).find((r) => r.status === "rejected");
  if (failure) throw failure.reason;

  const parts = [...etags.entries()].sort((a, b) => a[0] - b[0])
    .map(([part_number, etag]) => ({ part_number, etag }));
  const video = await api("POST", `/uploads/${encodeURIComponent(upload.upload_id)}/complete`,
    { parts });
  forget(key);
  return video;
}
