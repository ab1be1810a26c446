// CourseCrafter in the browser: sign in, courses, a course's lectures, the watch page, and for
// instructors course management and uploads. Plain modules, no framework; every piece of user
// text goes into the page as text.

import { api, ApiError, restore, signIn, signOut, takeVideo, user } from "./api.js";
import { announce, bytes, duration, h, link, replace, statusText, watchable } from "./dom.js";
import { afterPageFirstFrame, mountPlayer, pagePlayerArea, pagePlayerStarted, warmPlayer } from "./player.js";
import { ATTACHMENT_TYPES, uploadFile } from "./upload.js";

const main = document.getElementById("main");
const account = document.getElementById("account");
let cleanup = [];

function onLeave(fn) { cleanup.push(fn); }

function message(error) {
  if (error instanceof ApiError) return error.message;
  return "Something went wrong. Check your connection and try again.";
}

function setTitle(text) { document.title = text ? `${text} · CourseCrafter` : "CourseCrafter"; }

function heading(text) { return h("h1", { tabindex: "-1", id: "page-heading" }, text); }

function errorBox() { return h("p", { class: "error", role: "alert" }); }

function renderAccount() {
  const me = user();
  if (!me) { account.replaceChildren(); return; }
  replace(account,
    h("span", { class: "who" }, `${me.username} (${me.role})`),
    h("button", { type: "button", class: "link-button", onclick: async () => {
      try { await signOut(); } catch { /* signed out locally all the same */ }
      navigate("/");
      announce("Signed out");
    } }, "Sign out"));
}

// Pages ------------------------------------------------------------------------------------------

function signInPage() {
  setTitle("Sign in");
  const error = errorBox();
  const form = h("form", { class: "card narrow", "aria-labelledby": "page-heading" },
    heading("Sign in"),
    h("label", { for: "username" }, "Username"),
    h("input", { id: "username", name: "username", autocomplete: "username", required: true,
      autocapitalize: "none", spellcheck: "false" }),
    h("label", { for: "password" }, "Password"),
    h("input", { id: "password", name: "password", type: "password",
      autocomplete: "current-password", required: true }),
    error,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await signIn(form.username.value, form.password.value);
      renderAccount();
      announce("Signed in");
      render();
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status === 401
        ? "Wrong username or password." : message(e);
      form.password.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, form);
  form.username.focus();
}

async function homePage() {
  const me = user();
  const instructor = me.role !== "student";
  setTitle(instructor ? "Your courses" : "Courses");
  const list = h("ul", { class: "cards", "aria-label": "Courses" });
  const error = errorBox();
  replace(main, heading(instructor ? "Your courses" : "Courses"), error, list);
  if (instructor) {
    const title = h("input", { id: "new-course-title", required: true, maxlength: "200" });
    const formError = errorBox();
    const form = h("form", { class: "card inline-form", "aria-label": "New course" },
      h("label", { for: "new-course-title" }, "New course title"), title,
      h("button", { type: "submit" }, "Create course"), formError);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      formError.textContent = "";
      try {
        const course = await api("POST", "/courses", { title: title.value });
        announce(`Course created: ${course.title}`);
        navigate(`/courses/${encodeURIComponent(course.id)}`);
      } catch (e) { formError.textContent = message(e); }
    });
    main.insertBefore(form, list);
  }
  try {
    const courses = await api("GET", "/courses");
    if (!courses.length) {
      list.replaceWith(h("p", { class: "muted" }, instructor
        ? "No courses yet: create one above." : "No published courses yet."));
      return;
    }
    replace(list, courses.map((course) => h("li", { class: "card course-card" },
      h("h2", {}, link(`/courses/${encodeURIComponent(course.id)}`, course.title)),
      course.description ? h("p", {}, course.description) : null,
      instructor ? h("span", { class: `badge ${course.published ? "ok" : ""}` },
        course.published ? "Published" : "Draft") : null)));
  } catch (e) { error.textContent = message(e); }
}

function lectureRow(video, { instructor, onChange }) {
  const li = h("li", { class: "card lecture", "data-video-id": video.id });
  let timer = null;
  const poll = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        const fresh = await api("GET", `/videos/${encodeURIComponent(video.id)}`);
        update(fresh);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) { li.remove(); return; }
        poll();
      }
    }, 1500);
  };
  function update(v) {
    const wasWatchable = watchable(video);
    video = v;
    const title = watchable(v) ? link(`/watch/${encodeURIComponent(v.id)}`, v.title) : v.title;
    const status = h("span", { class: `status status-${v.status}` }, statusText(v));
    const processing = ["uploaded", "queued", "processing"].includes(v.status);
    const parts = [
      v.poster_url ? h("img", { class: "poster", src: v.poster_url, alt: "", width: "160", height: "90", loading: "lazy" })
        : h("div", { class: "poster placeholder", "aria-hidden": "true" }),
      h("div", { class: "lecture-body" },
        h("h3", {}, title),
        h("p", { class: "meta" },
          v.duration ? h("span", { class: "duration" }, duration(v.duration)) : null,
          v.duration ? " · " : null, status),
        processing ? h("progress", { max: "100", value: String(v.progress || 0),
          "aria-label": `Processing ${v.title}` }) : null,
        v.status === "failed" && v.error ? h("p", { class: "error" }, v.error.message) : null,
        instructor ? h("div", { class: "actions" },
          v.status === "failed" ? h("button", { type: "button", onclick: async () => {
            try { update(await api("POST", `/videos/${encodeURIComponent(v.id)}/retry`)); announce(`Retrying ${v.title}`); }
            catch (e) { announce(message(e)); }
          } }, "Retry") : null,
          h("button", { type: "button", class: "danger", "aria-label": `Delete ${v.title}`, onclick: async () => {
            if (!window.confirm(`Delete “${v.title}”? This cannot be undone.`)) return;
            try { await api("DELETE", `/videos/${encodeURIComponent(v.id)}`); clearTimeout(timer); li.remove(); announce(`Deleted ${v.title}`); onChange?.(); }
            catch (e) { announce(message(e)); }
          } }, "Delete")) : null),
    ];
    replace(li, parts);
    if (!wasWatchable && watchable(v)) announce(`${v.title} can be watched now`);
    if (processing || (v.status === "processing" && v.playable)) poll();
    else clearTimeout(timer);
  }
  update(video);
  onLeave(() => clearTimeout(timer));
  return li;
}

function attachmentRow(file, { instructor }) {
  const name = file.title || file.filename;
  const li = h("li", { class: "attachment", "data-video-id": file.id },
    file.download_url ? h("a", { href: file.download_url, download: file.filename, rel: "noopener" }, name) : name,
    h("span", { class: "muted" }, ` (${bytes(file.size)})`));
  if (instructor) {
    li.append(" ", h("button", { type: "button", class: "link-button danger", "aria-label": `Delete ${name}`,
      onclick: async () => {
        if (!window.confirm(`Delete “${name}”? This cannot be undone.`)) return;
        try { await api("DELETE", `/videos/${encodeURIComponent(file.id)}`); li.remove(); announce(`Deleted ${name}`); }
        catch (e) { announce(message(e)); }
      } }, "Delete"));
  }
  return li;
}

// The two upload forms of a course page: a recording (transcoded into a lecture) and an attachment
// (slides, notes: stored as they are). Same multipart upload, progress and resume.
const UPLOADS = {
  video: {
    id: "upload", heading: "Upload a recording", file: "Recording (video or audio file)",
    accept: "video/*,audio/*", title: "Title (optional)", button: "Upload",
    progress: "Upload progress",
  },
  attachment: {
    id: "attach", heading: "Add an attachment",
    file: "Attachment (PDF, slides, notes, spreadsheet, archive or image)",
    accept: Object.keys(ATTACHMENT_TYPES).map((ext) => `.${ext}`).join(","),
    title: "Attachment title (optional)", button: "Add attachment",
    progress: "Attachment upload progress",
  },
};

function uploadForm(course, kind, onUploaded) {
  const text = UPLOADS[kind];
  const fileInput = h("input", { id: `${text.id}-file`, type: "file", accept: text.accept, required: true });
  const title = h("input", { id: `${text.id}-title`, maxlength: "200" });
  const progress = h("progress", { max: "100", value: "0", hidden: true, "aria-label": text.progress });
  const stats = h("p", { class: "upload-stats" });
  const note = h("p", { class: "upload-note" });
  const error = errorBox();
  const button = h("button", { type: "submit" }, text.button);
  const form = h("form", { class: "card upload", "aria-labelledby": `${text.id}-heading` },
    h("h2", { id: `${text.id}-heading` }, text.heading),
    h("label", { for: `${text.id}-file` }, text.file), fileInput,
    h("label", { for: `${text.id}-title` }, text.title), title,
    h("p", { class: "muted small" }, "If an upload is interrupted, choose the same file again to resume it."),
    button, progress, note, stats, error);
  const controller = new AbortController();
  onLeave(() => controller.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) return;
    error.textContent = "";
    note.textContent = "";
    button.disabled = true;
    progress.hidden = false;
    let lastAnnounced = -1;
    try {
      const video = await uploadFile({
        file, courseId: course.id, title: title.value.trim() || undefined, kind, signal: controller.signal,
        onStart: ({ resumed, partsDone }) => {
          if (!resumed) return;
          const text = `Resuming the upload: ${partsDone} ${partsDone === 1 ? "part was" : "parts were"} already stored.`;
          note.textContent = text;
          announce(text);
        },
        onProgress: ({ done, total, speed, eta }) => {
          const pct = total ? Math.floor((done * 100) / total) : 100;
          progress.value = pct;
          const left = Number.isFinite(eta) ? `, about ${duration(Math.ceil(eta))} left` : "";
          stats.textContent = `${bytes(done)} of ${bytes(total)} (${pct}%)` +
            (speed > 0 ? ` at ${bytes(speed)}/s${left}` : "");
          if (pct >= lastAnnounced + 25) { lastAnnounced = pct; announce(`Upload ${pct}%`); }
        },
      });
      note.textContent = "";
      stats.textContent = kind === "video" ? `Uploaded ${file.name}; processing starts now.`
        : `Added ${file.name}.`;
      announce(`Uploaded ${video.title}`);
      onUploaded(video);
      form.reset();
      progress.hidden = true;
    } catch (e) {
      if (e.name !== "AbortError") error.textContent = `Upload stopped: ${message(e).replace(/\.?$/, ".")} Choose the same file again to resume.`;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function coursePage(courseId) {
  replace(main, h("p", { class: "muted" }, "Loading course…"));
  let course, videos;
  try {
    [course, videos] = await Promise.all([
      api("GET", `/courses/${encodeURIComponent(courseId)}`),
      api("GET", `/videos?course_id=${encodeURIComponent(courseId)}`),
    ]);
  } catch (e) {
    setTitle("Course not found");
    replace(main, heading("Course not found"), h("p", {}, message(e)), link("/", "Back to courses"));
    return;
  }
  const me = user();
  const instructor = me.role !== "student";
  setTitle(course.title);
  const lectures = h("ul", { class: "lectures", "aria-label": "Lectures" });
  const attachments = h("ul", { class: "attachments", "aria-label": "Attachments" });
  for (const v of videos) {
    if (v.kind === "video") lectures.append(lectureRow(v, { instructor }));
    else attachments.append(attachmentRow(v, { instructor }));
  }
  const parts = [
    h("p", { class: "crumbs" }, link("/", "← All courses")),
    heading(course.title),
    course.description ? h("p", { class: "description" }, course.description) : null,
  ];
  if (instructor) {
    const state = h("span", { class: `badge ${course.published ? "ok" : ""}`, id: "publish-state" });
    const toggle = h("button", { type: "button", id: "publish-toggle" });
    const show = () => {
      state.textContent = course.published ? "Published: students can see it" : "Draft: only you can see it";
      toggle.textContent = course.published ? "Unpublish" : "Publish";
    };
    toggle.addEventListener("click", async () => {
      toggle.disabled = true;
      try {
        course = await api("PATCH", `/courses/${encodeURIComponent(course.id)}`, { published: !course.published });
        show();
        announce(course.published ? "Course published" : "Course unpublished");
      } catch (e) { announce(message(e)); } finally { toggle.disabled = false; }
    });
    show();
    parts.push(h("div", { class: "publish" }, state, " ", toggle));
  }
  // The note shows only while the list is empty (CSS), so it stays right as lectures come and go.
  parts.push(h("h2", {}, "Lectures"), lectures, h("p", { class: "muted no-lectures" }, "No lectures yet."));
  if (instructor) {
    parts.push(uploadForm(course, "video", (video) => {
      lectures.querySelector(`[data-video-id="${CSS.escape(video.id)}"]`)?.remove(); // its "waiting" row
      lectures.prepend(lectureRow(video, { instructor: true }));
    }));
  }
  // Students see the section only when there is something in it; instructors always (to add).
  if (instructor || attachments.childElementCount) {
    parts.push(h("h2", { id: "attachments-heading" }, "Attachments"), attachments);
    if (instructor) {
      parts.push(h("p", { class: "muted no-attachments" }, "No attachments yet."));
      parts.push(uploadForm(course, "attachment", (file) => {
        attachments.querySelector(`[data-video-id="${CSS.escape(file.id)}"]`)?.remove();
        attachments.append(attachmentRow(file, { instructor: true }));
      }));
    }
  }
  replace(main, parts);
}

async function watchPage(videoId) {
  let video = takeVideo(videoId);
  // Without the lecture at hand, say so while it comes (a page served with its player keeps it).
  if (!video) replace(main, h("p", { class: "muted" }, "Loading lecture…"));
  try {
    video ??= await api("GET", `/videos/${encodeURIComponent(videoId)}`);
  } catch (e) {
    setTitle("Lecture not found");
    replace(main, heading("Lecture not found"), h("p", {}, message(e)), link("/", "Back to courses"));
    return;
  }
  setTitle(video.title);
  const back = video.course_id ? link(`/courses/${encodeURIComponent(video.course_id)}`, "← Back to the course")
    : link("/", "← All courses");
  const meta = h("p", { class: "meta" });
  let area = pagePlayerArea(video.id);
  if (area) {
    // The page came with this lecture's player (web/__init__.py): build around it, never move it
    // (a moved <video> has its controls rebuilt, on the first frame's path).
    for (const child of [...main.children]) if (child !== area) child.remove();
    area.before(h("p", { class: "crumbs" }, back), heading(video.title));
    area.after(meta);
  } else {
    area = h("div", { class: "watch" });
    replace(main, h("p", { class: "crumbs" }, back), heading(video.title), area, meta);
  }
  const showMeta = (v) => {
    meta.textContent = [v.duration ? duration(v.duration) : null,
      v.renditions?.length ? v.renditions.map((r) => `${r.height}p`).join(" / ") : null,
      v.status !== "ready" ? statusText(v) : null].filter(Boolean).join(" · ");
  };
  showMeta(video);
  if (watchable(video)) {
    const player = mountPlayer(area, video);
    onLeave(() => player.destroy());
    return;
  }
  // Not playable yet: show progress live until it is.
  const progress = h("progress", { max: "100", value: String(video.progress || 0), "aria-label": "Processing" });
  area.append(h("div", { class: "card" }, h("p", {}, "This lecture is not ready to watch yet."), progress));
  let timer = null;
  const poll = () => {
    timer = setTimeout(async () => {
      try {
        video = await api("GET", `/videos/${encodeURIComponent(videoId)}`);
        progress.value = video.progress || 0;
        showMeta(video);
        if (watchable(video)) { announce("The lecture can be watched now"); render(); return; }
        if (video.status === "failed") { area.replaceChildren(h("p", { class: "error" }, video.error?.message || "Processing failed.")); return; }
      } catch { /* try again */ }
      poll();
    }, 1500);
  };
  poll();
  onLeave(() => clearTimeout(timer));
}

function notFoundPage() {
  setTitle("Not found");
  replace(main, heading("Page not found"), link("/", "Back to courses"));
}

// Router -----------------------------------------------------------------------------------------

let generation = 0;

async function render() {
  for (const fn of cleanup.splice(0)) { try { fn(); } catch { /* keep going */ } }
  const mine = ++generation;
  const path = location.pathname;
  renderAccount();
  if (!user()) { signInPage(); return; }
  let page;
  let m;
  if (path === "/") page = homePage();
  else if ((m = /^\/courses\/([^/]+)$/.exec(path))) page = coursePage(decodeURIComponent(m[1]));
  else if ((m = /^\/watch\/([^/]+)$/.exec(path))) page = watchPage(decodeURIComponent(m[1]));
  else page = notFoundPage();
  await page;
  if (mine === generation) {
    const title = document.getElementById("page-heading");
    if (title && document.activeElement === document.body) title.focus({ preventScroll: true });
  }
}

export function navigate(path) {
  history.pushState(null, "", path);
  render().then(() => document.getElementById("page-heading")?.focus({ preventScroll: false }));
}

document.addEventListener("click", (event) => {
  const a = event.target.closest && event.target.closest("a[data-link]");
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
      event.shiftKey || event.altKey || a.origin !== location.origin) return;
  event.preventDefault();
  navigate(a.pathname);
});
window.addEventListener("popstate", () => render());
window.addEventListener("coursecrafter:signed-out", () => render());

(async () => {
  const watching = /^\/watch\/([^/]+)$/.exec(location.pathname);
  if (watching) warmPlayer();
  try {
    await restore(watching ? decodeURIComponent(watching[1]) : undefined, afterPageFirstFrame());
  } catch { /* offline or server down: show the sign-in form */ }
  await pagePlayerStarted();
  render();
})();
