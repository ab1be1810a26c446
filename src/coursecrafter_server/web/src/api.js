// The API client of the page. The access token lives in this module's memory only; the refresh
// token is an HttpOnly cookie on /api/v1/session that JavaScript never sees. A flag (not a token)
// in localStorage only says "a session cookie probably exists", to skip a useless refresh call.

const CSRF = { "X-CourseCrafter-CSRF": "1" };
const HINT = "coursecrafter.session";

let access = null;
let currentUser = null;
let refreshing = null;
let refreshTimer = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `request failed (${status})`);
    this.status = status;
    this.code = code || "error";
  }
}

async function parse(response) {
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code, error.message || response.statusText);
  }
  return data;
}

async function sessionCall(method, suffix, body) {
  const headers = { ...CSRF };
  if (body) headers["Content-Type"] = "application/json";
  if (method === "DELETE" && access) headers.Authorization = `Bearer ${access}`;
  const response = await fetch(`/api/v1/session${suffix}`, {
    method, headers, body: body ? JSON.stringify(body) : undefined,
    credentials: "same-origin", cache: "no-store",
  });
  return parse(response);
}

// A video record that came with a refresh (a watch page's first one): the page takes it instead
// of asking GET /videos/{id} one round trip later.
let prefetched = null;

export function takeVideo(id) {
  const video = prefetched && prefetched.id === id ? prefetched : null;
  prefetched = null;
  return video;
}

function adopt(session) {
  access = session.access_token;
  currentUser = session.user;
  if (session.video) prefetched = session.video;
  try { localStorage.setItem(HINT, "1"); } catch { /* private mode: fine */ }
  clearTimeout(refreshTimer);
  // Refresh a minute before the access token expires (at least 10 s from now).
  const delay = Math.max(10, session.expires_in - 60) * 1000;
  refreshTimer = setTimeout(() => { refresh().catch(() => signedOut()); }, delay);
  return currentUser;
}

function signedOut() {
  access = null;
  currentUser = null;
  clearTimeout(refreshTimer);
  try { localStorage.removeItem(HINT); } catch { /* fine */ }
  window.dispatchEvent(new Event("coursecrafter:signed-out"));
}

// One refresh at a time across tabs too (Web Locks): each refresh rotates the cookie, and two
// tabs presenting the same cookie at once would look like token reuse and end the session.
function withLock(task) {
  if (navigator.locks && navigator.locks.request) {
    return navigator.locks.request("coursecrafter-session-refresh", task);
  }
  return task();
}

export function refresh(videoId) {
  if (!refreshing) {
    const body = videoId ? { video_id: videoId } : undefined;
    refreshing = withLock(() => sessionCall("POST", "/refresh", body))
      .then(adopt)
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

export function user() {
  return currentUser;
}

// What the server put in a watch page for its viewer (web/__init__.py, auth/viewer_cookies.py):
// {user, video}, or null. Read once: it describes the page as it arrived.
function pageState() {
  const element = document.getElementById("coursecrafter-page-state");
  if (!element) return null;
  element.remove();
  try {
    const state = JSON.parse(element.textContent);
    return state && state.user ? state : null;
  } catch { return null; }
}

// On arrival: the session from its cookie, if there is one; with `videoId` (a watch page) the
// video's record comes in the same answer (see takeVideo). A watch page whose HTML already names
// its viewer and lecture starts on those at once. Its access token comes from a refresh after
// the page's load event and `settled` (the player's first frame: the refresh does not compete
// with the playlists), or sooner when an API call needs it.
export async function restore(videoId, settled = Promise.resolve()) {
  const state = pageState();
  if (state) {
    currentUser = state.user;
    if (state.video && state.video.id === videoId) prefetched = state.video;
    const later = () => {
      if (access || !currentUser) return;
      refresh().catch((error) => {
        if (error instanceof ApiError && error.status === 401) signedOut();
      });
    };
    const loaded = document.readyState === "complete" ? Promise.resolve()
      : new Promise((resolve) => window.addEventListener("load", resolve, { once: true }));
    Promise.all([loaded, settled]).then(later);
    return currentUser;
  }
  let hinted = false;
  try { hinted = localStorage.getItem(HINT) === "1"; } catch { /* fine */ }
  if (!hinted) return null;
  try {
    return await refresh(videoId);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signedOut();
      return null;
    }
    throw error;
  }
}

export async function signIn(username, password) {
  return adopt(await sessionCall("POST", "", { username, password }));
}

export async function signOut() {
  try {
    await sessionCall("DELETE", "");
  } finally {
    signedOut();
  }
}

// Calls /api/v1{path} with the access token; after a 401, refreshes once and tries again.
export async function api(method, path, body) {
  if (!access && currentUser) await refresh().catch(() => {}); // a page that started on its state
  const call = () => {
    const headers = {};
    if (access) headers.Authorization = `Bearer ${access}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(`/api/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store",
    });
  };
  let response = await call();
  if (response.status === 401 && currentUser) {
    try {
      await refresh();
    } catch {
      signedOut();
      throw new ApiError(401, "not_authenticated", "your session has ended; sign in again");
    }
    response = await call();
  }
  return parse(response);
}
