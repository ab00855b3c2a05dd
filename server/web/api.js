// Talking to the server: the JSON API of the web contract, same origin only.
// Nothing here reads the case keys or the session seed: requests are built
// from paths and bodies the callers give, and the callers never put a key in
// them (the browser tests capture every request to check).

/** The session is gone (expired, logged out, device revoked): log in again. */
export class SessionEnded extends Error {
  name = "SessionEnded";
}

/** The server refused or failed; `message` is the server's text for a human. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

const session = { csrf: null, me: null };

export function currentSession() {
  return session.me;
}

export function setSession(me) {
  session.me = me;
  session.csrf = me?.csrf ?? null;
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
  } catch {
    // not JSON: keep the status line
  }
  return message;
}

async function request(method, path, body, { allow401 = false } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store", redirect: "error" };
  if (method !== "GET") {
    if (session.csrf) headers["X-Fieldsync-CSRF"] = session.csrf;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `the server cannot be reached (${e.message}); check the connection and try again`);
  }
  if (response.status === 401 && !allow401) {
    setSession(null);
    throw new SessionEnded(await errorOf(response));
  }
  if (!response.ok) throw new ApiError(response.status, await errorOf(response));
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body, options) => request("POST", path, body, options),

  async me() {
    const me = await request("GET", "/web/api/me");
    setSession(me);
    return me;
  },

  /** POST /web/session with the token from the link's fragment. */
  async login(token) {
    const me = await request("POST", "/web/session", { token }, { allow401: true });
    setSession(me);
    return me;
  },

  async logout() {
    try {
      await request("POST", "/web/logout");
    } finally {
      setSession(null);
    }
  },

  timeline(params) {
    return request("GET", `/web/api/timeline?${params.toString()}`);
  },

  devices() {
    return request("GET", "/web/api/devices");
  },

  report(id) {
    return request("GET", `/web/api/reports/${encodeURIComponent(id)}`);
  },

  prepare(id, edits) {
    return request("POST", `/web/api/reports/${encodeURIComponent(id)}/prepare`, { edits });
  },

  commit(id, change, sig) {
    return request("POST", `/web/api/reports/${encodeURIComponent(id)}/commit`, { change, sig });
  },

  /** The ciphertext blob as a streaming Response. */
  async blob(blobId) {
    if (!/^[0-9a-f]{64}$/.test(blobId)) throw new ApiError(0, "the report names a malformed blob id");
    let response;
    try {
      response = await fetch(`/web/api/blobs/${blobId}`, { credentials: "same-origin", redirect: "error" });
    } catch (e) {
      throw new ApiError(0, `the server cannot be reached (${e.message})`);
    }
    if (response.status === 401) {
      setSession(null);
      throw new SessionEnded(await errorOf(response));
    }
    if (!response.ok) throw new ApiError(response.status, await errorOf(response));
    return response;
  },
};
