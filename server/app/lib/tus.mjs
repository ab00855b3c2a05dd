// Resumable upload of one sealed attachment to /v1/uploads (tus 1.0 core
// with `creation`, as server/src/uploads.rs serves it), in the manner of
// the CLI's loop (cli/src/transfer.rs `upload`):
//
//   POST  /v1/uploads        Upload-Length: N,
//                            Upload-Metadata: blob <b64 of the blob id>,report <b64 of the report id>
//                            → 201, Location: /v1/uploads/<id>, Upload-Offset
//   HEAD  /v1/uploads/<id>   → 200, Upload-Offset (404: expired or unknown: create again)
//   PATCH /v1/uploads/<id>   Content-Type: application/offset+octet-stream,
//                            Upload-Offset: K, body = bytes K… (at most `chunkSize`)
//                            → 204, Upload-Offset
//
// Every request is signed over an EMPTY body (the server checks the bytes
// against the blob id, their SHA-256, instead); the caller's signing
// function does that for /v1/uploads paths. Each step that a cut can
// interrupt is retried from the offset the server reports (HEAD), so a bad
// network costs time, not bytes sent twice; only a PATCH answered with the
// full length means "verified and stored", so with nothing left to send an
// empty PATCH asks for exactly that.
//
// The upload's Location is handed to `saveState({location})` as soon as it
// is known (and `saveState(null)` when the server forgot it), so a tab
// closed mid-upload resumes from the server's offset on the next sync.
//
// PATCH bodies are at most `chunkSize` (1 MiB) bytes: fetch() has no
// upload progress, so progress is reported per PATCH, and a cut costs at
// most one PATCH of bytes on a phone's network (the server keeps what it
// received of a cut body anyway).

export const TUS_RESUMABLE = "1.0.0";
export const OFFSET_OCTET_STREAM = "application/offset+octet-stream";
export const DEFAULT_CHUNK = 1024 * 1024;
/** Failed attempts in a row, with no byte gained, before giving up (as the CLI). */
export const MAX_FAILURES_WITHOUT_PROGRESS = 6;
const MAX_ERROR_BODY = 64 * 1024;

/**
 * A failed upload. `code`: 'server_full' (507), 'too_large' (413: over
 * the server's limit or the device's quota), 'conflict' (409 on create:
 * the report is not on the server yet, or does not name this blob),
 * 'local_damaged' (the sealed copy here no longer hashes to its id),
 * 'network', 'locked' (423 that did not clear), 'gave_up' (no progress
 * after several tries), 'server' (any other status), 'protocol' (an
 * answer without the headers tus needs). `status` is the HTTP status
 * when there was one; `retry` says whether a later sync may succeed.
 */
export class TusError extends Error {
  constructor(code, message, { status = null, retry = false } = {}) {
    super(message);
    this.name = "TusError";
    this.code = code;
    this.status = status;
    this.retry = retry;
  }
}

// ------------------------------------------------------------ the source

/** A source over bytes in memory. */
export function bytesSource(bytes) {
  return { size: bytes.length, read: async (start, end) => bytes.subarray(start, end) };
}

/** A source over a Blob or File. */
export function blobSource(blob) {
  return { size: blob.size, read: async (start, end) => new Uint8Array(await blob.slice(start, end).arrayBuffer()) };
}

/**
 * A source over sealed parts stored one per record (envelope.mjs sealFile
 * with onPart): `partSizes` as sealFile returned them, `loadPart(i)` →
 * Promise<Uint8Array>. Holds one part in memory at a time.
 */
export function partsSource(partSizes, loadPart) {
  const starts = [];
  let size = 0;
  for (const n of partSizes) {
    starts.push(size);
    size += n;
  }
  let cached = { index: -1, bytes: null };
  const part = async (i) => {
    if (cached.index !== i) {
      const bytes = await loadPart(i);
      if (!(bytes instanceof Uint8Array) || bytes.length !== partSizes[i]) {
        throw new TusError("local_damaged", `part ${i} of this attachment is missing or damaged on this phone; attach the file again`);
      }
      cached = { index: i, bytes };
    }
    return cached.bytes;
  };
  return {
    size,
    async read(start, end) {
      const out = new Uint8Array(end - start);
      let at = start;
      // The part holding `at`: the last whose start is at or before it.
      let i = starts.length - 1;
      while (i > 0 && starts[i] > at) i--;
      while (at < end) {
        const bytes = await part(i);
        const from = at - starts[i];
        const take = Math.min(bytes.length - from, end - at);
        out.set(bytes.subarray(from, from + take), at - start);
        at += take;
        i += 1;
      }
      return out;
    },
  };
}

function sourceOf({ source, bytes, blob }) {
  if (source) return source;
  if (bytes) return bytesSource(bytes);
  if (blob) return blobSource(blob);
  throw new TypeError("uploadBlob needs `source`, `bytes` or `blob`");
}

async function sha256HexOf(source) {
  // Only run on a 422, to tell a damaged local copy from a damaged
  // transfer; WebCrypto digest wants it whole, so read it in pieces into
  // an incremental hash only if it is large.
  const { Sha256 } = await import("./envelope.mjs");
  const hash = new Sha256();
  const step = DEFAULT_CHUNK;
  for (let at = 0; at < source.size; at += step) hash.update(await source.read(at, Math.min(source.size, at + step)));
  return hash.hex();
}

// --------------------------------------------------------------- helpers

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
function base64Ascii(text) {
  // Ids are ASCII hex: one byte per character.
  const bytes = Array.from(text, (c) => c.charCodeAt(0));
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[n >> 18] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=";
    out += i + 2 < bytes.length ? B64[n & 63] : "=";
  }
  return out;
}

/** The Upload-Metadata header: `blob <b64 hex id>,report <b64 report id>`. */
export function uploadMetadata(blobId, reportId) {
  if (!/^[0-9a-f]{64}$/.test(blobId)) throw new TypeError("a blob id is 64 lowercase hex characters");
  if (!/^[0-9a-f]{32}$/.test(reportId)) throw new TypeError("a report id is 32 lowercase hex characters");
  return `blob ${base64Ascii(blobId)},report ${base64Ascii(reportId)}`;
}

function offsetHeader(response) {
  const value = response.headers.get("upload-offset");
  if (value === null || !/^[0-9]{1,16}$/.test(value.trim())) return null;
  return Number(value.trim());
}

/** A Location may be absolute or a path; requests are signed over the path. */
function pathOf(location) {
  try {
    const url = new URL(location, "http://placeholder.invalid");
    return url.pathname + url.search;
  } catch {
    return location;
  }
}

async function readErrorBody(response) {
  try {
    const reader = response.body?.getReader?.();
    if (!reader) return new Uint8Array(await response.arrayBuffer()).slice(0, MAX_ERROR_BODY);
    const parts = [];
    let n = 0;
    while (n < MAX_ERROR_BODY) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      n += value.length;
    }
    reader.cancel().catch(() => {});
    const out = new Uint8Array(Math.min(n, MAX_ERROR_BODY));
    let o = 0;
    for (const p of parts) {
      const take = Math.min(p.length, out.length - o);
      out.set(p.subarray(0, take), o);
      o += take;
    }
    return out;
  } catch {
    return new Uint8Array(0);
  }
}

function retryableStatus(status) {
  // 500 is a fault seconds will not mend; 503 is "busy, try again".
  return [408, 423, 429, 502, 503, 504].includes(status);
}

/**
 * The error of a non-2xx answer. With a requests.mjs Client, its errorOf
 * sees the answer first: it corrects the clock on a 401 with
 * clock_skew_secs (then the retry is signed afresh) and knows a revoked
 * device; its typed errors are thrown as they are.
 */
async function errorOf(response, client, step) {
  const status = response.status;
  const body = await readErrorBody(response);
  let parsed = null;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {}
  const message = typeof parsed?.error === "string" ? parsed.error : `the server answered ${status} to the upload's ${step}`;
  if (client?.errorOf && (status === 401 || status === 403)) {
    const typed = await client.errorOf(new Response(body, { status, headers: response.headers }));
    if (typed.code === "clock_corrected" || typed.code === "replayed") typed.retry = true;
    return typed;
  }
  if (status === 401 && parsed?.replayed === true) return new TusError("replayed", message, { status, retry: true });
  switch (status) {
    case 507:
      return new TusError("server_full", message, { status });
    case 413:
      return new TusError("too_large", message, { status });
    case 409:
      return new TusError("conflict", message, { status });
    case 423:
      return new TusError("locked", message, { status, retry: true });
    default:
      return new TusError("server", message, { status, retry: retryableStatus(status) });
  }
}

/** Sends one request; a failure to reach the server is a retryable 'network' error. */
async function send(signedFetch, method, path, init) {
  try {
    return await signedFetch(method, path, init);
  } catch (e) {
    if (e?.name === "AbortError") throw e;
    if (e?.code && e.code !== "network") throw e;
    const error = new TusError("network", e?.message ?? String(e), { retry: true });
    error.cause = e;
    throw error;
  }
}

// ------------------------------------------------------------ the upload

/**
 * Uploads one sealed blob, resuming where the server is. Resolves with
 * {location, size} once the server holds the whole blob, verified.
 *
 * options:
 * - `client` (requests.mjs Client: `client.fetch(method, path, {headers, body})`
 *   returning the Response whatever its status) or `signedFetch(method,
 *   path, {headers, body})` (the same contract, as a function);
 * - `reportId`, `blobId`; `bytes` | `blob` | `source` ({size, read(start, end)});
 * - `state`: what was last passed to `saveState` ({location} or null);
 * - `saveState(state)`: persists the upload's Location (awaited);
 * - `onProgress({sent, total})`: bytes the server holds;
 * - `chunkSize` (1 MiB), `maxFailures` (6), `sleep(ms)`, `signal`.
 */
export async function uploadBlob(options) {
  const {
    client = null,
    reportId,
    blobId,
    state = null,
    saveState = async () => {},
    onProgress = () => {},
    chunkSize = DEFAULT_CHUNK,
    maxFailures = MAX_FAILURES_WITHOUT_PROGRESS,
    sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    signal,
  } = options;
  const signedFetch = options.signedFetch ?? (client ? (m, p, init) => client.fetch(m, p, init) : null);
  if (!signedFetch) throw new TypeError("uploadBlob needs `client` or `signedFetch`");
  const source = sourceOf(options);
  const size = source.size;
  if (options.size != null && options.size !== size) {
    throw new TusError("local_damaged", `the sealed copy on this phone is ${size} bytes, ${options.size} expected; attach the file again`);
  }
  const metadata = uploadMetadata(blobId, reportId);
  const tus = { "Tus-Resumable": TUS_RESUMABLE };

  let location = state?.location ? pathOf(state.location) : null;
  let failures = 0;
  let best = -1;
  const progress = (offset) => onProgress({ sent: Math.min(offset, size), total: size });

  const create = async () => {
    const response = await send(signedFetch, "POST", "/v1/uploads", {
      headers: { ...tus, "Upload-Length": String(size), "Upload-Metadata": metadata },
      body: new Uint8Array(0),
      signal,
    });
    if (response.status !== 201) throw await errorOf(response, client, "creation");
    const where = response.headers.get("location");
    if (!where) throw new TusError("protocol", "the server's answer to the upload's creation has no Location header", { status: 201 });
    location = pathOf(where);
    await saveState({ location });
    // The creation answer carries the offset (the whole length when the
    // server already holds this blob): no HEAD needed right after it.
    return offsetHeader(response);
  };

  const forget = async () => {
    location = null;
    await saveState(null);
  };

  /** The server's offset, or null when it no longer knows the upload. */
  const head = async () => {
    const response = await send(signedFetch, "HEAD", location, { headers: tus, signal });
    if (response.status === 404) return null;
    if (!response.ok) throw await errorOf(response, client, "offset query (HEAD)");
    const offset = offsetHeader(response);
    if (offset === null) throw new TusError("protocol", "the server's answer to HEAD lacks a valid Upload-Offset", { status: response.status, retry: true });
    return offset;
  };

  /** One PATCH from `offset`; returns the new offset, or null to ask HEAD again. */
  const patch = async (offset) => {
    const end = Math.min(size, offset + chunkSize);
    const body = await source.read(offset, end);
    const response = await send(signedFetch, "PATCH", location, {
      headers: { ...tus, "Content-Type": OFFSET_OCTET_STREAM, "Upload-Offset": String(offset) },
      body,
      signal,
    });
    if (response.status === 204) {
      const next = offsetHeader(response);
      if (next === null) throw new TusError("protocol", "the server's answer to PATCH lacks a valid Upload-Offset", { status: 204, retry: true });
      return next;
    }
    // Someone (an earlier attempt whose answer was lost) moved the offset: ask again.
    if (response.status === 409) {
      await readErrorBody(response);
      return null;
    }
    // The server saw the body end early and kept what came: resume from there.
    if (response.status === 400 && offsetHeader(response) !== null) {
      await readErrorBody(response);
      throw new TusError("network", "the upload was cut short; resuming", { status: 400, retry: true });
    }
    if (response.status === 404) {
      await readErrorBody(response);
      await forget();
      throw new TusError("expired", "the server no longer has the partial upload; starting it again", { status: 404, retry: true });
    }
    if (response.status === 422) {
      // The server discarded bytes that did not hash to the id. If the
      // copy here is still whole, the damage was on the way: start over.
      await readErrorBody(response);
      await forget();
      if ((await sha256HexOf(source)) !== blobId) {
        throw new TusError("local_damaged", "the sealed copy of this attachment on this phone is damaged (it no longer matches its id); attach the file again", {
          status: 422,
        });
      }
      throw new TusError("mismatch", "the server received bytes that do not match the attachment and discarded them; uploading again", {
        status: 422,
        retry: true,
      });
    }
    throw await errorOf(response, client, "PATCH");
  };

  for (;;) {
    try {
      let offset = location ? await head() : ((await create()) ?? (await head()));
      if (offset === null) {
        await forget();
        throw new TusError("expired", "the server no longer has the partial upload; starting it again", { status: 404, retry: true });
      }
      for (;;) {
        if (offset > best) {
          // An attempt that gained bytes, even one that ended in an error, resets the count.
          best = offset;
          failures = 0;
        }
        progress(offset);
        const next = await patch(Math.min(offset, size));
        if (next === null) break;
        if (next >= size) {
          progress(size);
          return { location, size };
        }
        if (next <= offset) {
          // No progress from a PATCH that carried bytes: ask HEAD, count it.
          failures += 1;
          break;
        }
        offset = next;
      }
      if (failures >= maxFailures) {
        throw new TusError("gave_up", `gave up after ${failures} attempts in a row without progress: the server accepted no new bytes`, { retry: true });
      }
    } catch (e) {
      if (e?.name === "AbortError" || !e?.retry || e.code === "gave_up") throw e;
      failures += 1;
      if (failures >= maxFailures) {
        throw new TusError(
          e.code === "network" || e.code === "locked" ? e.code : "gave_up",
          `gave up after ${failures} attempts in a row without progress; the last error was: ${e.message}`,
          { status: e.status ?? null, retry: true },
        );
      }
      await sleep(250 * 2 ** Math.min(failures, 5));
    }
  }
}
