// Signed HTTP requests to a fieldsync server, exactly as
// sync-core/src/request_auth.rs and cli/src/client.rs:
//
//   message   = METHOD "\n" PATH?QUERY "\n" TIMESTAMP "\n" NONCE "\n" hex(sha256(body))
//   signature = Ed25519("fieldsync request v1\0" ‖ message), standard base64
//   headers   x-fieldsync-device (device id), x-fieldsync-timestamp (Unix
//             SECONDS, decimal), x-fieldsync-nonce (16 random bytes, 32
//             lowercase hex), x-fieldsync-signature
//
// Blob routes (/v1/uploads, /v1/blobs) are signed over an EMPTY body whatever
// they carry (the bytes are authenticated by their SHA-256, the blob id).
//
// Clock: a 401 whose JSON body carries `clock_skew_secs` corrects the
// signing offset (offset -= skew) and the request is signed again once, as
// the CLI does; the offset is kept (onClockOffset) but never beyond 48 hours,
// because the error body is unauthenticated and requests signed with a time
// far from the real one could be replayed when that time comes. Recorded
// times are never corrected, only signatures.

import { Domain } from './identity.mjs'
import { sha256Hex, toBase64, toHex, randomBytes, utf8, fromUtf8 } from './bytes.mjs'

export const HEADER_DEVICE = 'x-fieldsync-device'
export const HEADER_TIMESTAMP = 'x-fieldsync-timestamp'
export const HEADER_NONCE = 'x-fieldsync-nonce'
export const HEADER_SIGNATURE = 'x-fieldsync-signature'
export const MAX_CLOCK_CORRECTION_SECS = 48 * 3600
/** Largest JSON answer read (a sync response's feed part is bounded at 4 MiB by the server). */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024

/** Base of the typed errors the UI maps to words by `code`. */
export class AppError extends Error {
  constructor(code, message, extra = {}) {
    super(message)
    this.name = this.constructor.name
    this.code = code
    Object.assign(this, extra)
  }
}
/** The server answered with an error status. `message` is the server's words. */
export class ApiError extends AppError {
  constructor(status, message, extra = {}) {
    super(extra.code ?? codeForStatus(status), message, { status, ...extra })
  }
}
export class NetworkError extends AppError {
  constructor(message) {
    super('network', message)
  }
}
export class ClockError extends AppError {
  constructor(message, offsetSecs) {
    super('clock', message, { offsetSecs })
  }
}
export class InviteError extends AppError {
  constructor(reason, message) {
    super(`invite_${reason}`, message, { reason, status: 403 })
  }
}
export class RevokedError extends AppError {
  constructor(message, unsent = 0) {
    super('revoked', message, { unsent, status: 403 })
  }
}
export class ServerFullError extends AppError {
  constructor(message) {
    super('server_full', message, { status: 507 })
  }
}

function codeForStatus(status) {
  if (status === 507) return 'server_full'
  return 'server'
}

/** The bytes a request signature covers (request_auth.rs `message`). */
export async function requestMessage(method, path, timestamp, nonce, body) {
  const bodyHash = await sha256Hex(body ?? new Uint8Array())
  return utf8(`${method}\n${path}\n${timestamp}\n${nonce}\n${bodyHash}`)
}

/**
 * The four authentication headers for a request. `nonce` is for tests
 * (vectors); otherwise 16 fresh random bytes.
 */
export async function signRequest(identity, method, path, body, nowSecs, nonce = toHex(randomBytes(16))) {
  if (!Number.isSafeInteger(nowSecs)) throw new TypeError('the signing time is whole seconds')
  const message = await requestMessage(method, path, nowSecs, nonce, body)
  const signature = await identity.sign(Domain.Request, message)
  return {
    [HEADER_DEVICE]: identity.deviceId,
    [HEADER_TIMESTAMP]: String(nowSecs),
    [HEADER_NONCE]: nonce,
    [HEADER_SIGNATURE]: toBase64(signature),
  }
}

/** Reads a response body, refusing one longer than `max` bytes. */
export async function readBounded(response, max = MAX_RESPONSE_BYTES) {
  const declared = Number(response.headers.get('content-length'))
  if (Number.isFinite(declared) && declared > max) {
    throw new AppError('server', `the server's answer is ${declared} bytes, more than the ${max} this app reads`)
  }
  if (!response.body || !response.body.getReader) {
    const buf = new Uint8Array(await response.arrayBuffer())
    if (buf.length > max) throw new AppError('server', `the server's answer is longer than ${max} bytes`)
    return buf
  }
  const reader = response.body.getReader()
  const parts = []
  let n = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    n += value.length
    if (n > max) {
      await reader.cancel().catch(() => {})
      throw new AppError('server', `the server's answer is longer than ${max} bytes`)
    }
    parts.push(value)
  }
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

function isBlobRoute(path) {
  return path.startsWith('/v1/uploads') || path.startsWith('/v1/blobs')
}

/**
 * A client for one server and one device key.
 * options: {server (origin, no trailing slash needed), identity, fetch,
 *           now: () => ms, clockOffset: secs, onClockOffset(secs)}
 */
export class Client {
  constructor({ server, identity, fetch, now = () => Date.now(), clockOffset = 0, onClockOffset = () => {} }) {
    this.server = String(server).replace(/\/+$/, '')
    this.identity = identity
    this._fetch = fetch
    this.now = now
    // An offset past the bound (kept by something older) is not used.
    this.clockOffset = Math.abs(clockOffset) <= MAX_CLOCK_CORRECTION_SECS ? clockOffset : 0
    this.onClockOffset = onClockOffset
    this.traffic = { requests: 0, bytesSent: 0, bytesReceived: 0 }
  }

  signingTime() {
    return Math.floor(this.now() / 1000) + this.clockOffset
  }

  /**
   * A signed request; returns the fetch Response whatever its status.
   * Blob routes are signed over an empty body. Network failures become
   * NetworkError.
   */
  async fetch(method, path, { body, headers = {}, signal } = {}) {
    const signedBody = isBlobRoute(path) ? new Uint8Array() : body ?? new Uint8Array()
    const auth = await signRequest(this.identity, method, path, signedBody, this.signingTime())
    try {
      return await this._fetch(this.server + path, {
        method,
        headers: { ...headers, ...auth },
        body: body ?? undefined,
        signal,
        // Never follow a redirect with a signed request: its path is signed.
        redirect: 'manual',
        credentials: 'omit',
        cache: 'no-store',
      })
    } catch (e) {
      if (e?.name === 'AbortError') throw e
      throw new NetworkError(`could not reach the server at ${this.server}: ${e?.message ?? e}`)
    }
  }

  /**
   * Turns an error response into a typed error; applies a clock correction
   * when the server refused the request's time. Returns the error (thrown by
   * the caller).
   */
  async errorOf(response) {
    let bodyBytes = new Uint8Array()
    try {
      bodyBytes = await readBounded(response, 64 * 1024)
    } catch {}
    let parsed = null
    try {
      parsed = JSON.parse(fromUtf8(bodyBytes))
    } catch {}
    const message =
      typeof parsed?.error === 'string' ? parsed.error : new TextDecoder().decode(bodyBytes).slice(0, 300) || `HTTP ${response.status}`
    const status = response.status
    const skew = parsed?.clock_skew_secs
    if (status === 401 && Number.isSafeInteger(skew)) {
      const offset = this.clockOffset - skew
      if (Math.abs(offset) > MAX_CLOCK_CORRECTION_SECS) {
        return new ClockError(
          `the server says this device's clock is ${describeOffset(offset)} the server's, more than the 48 hours the app corrects by itself; set this phone's date, time and time zone, then sync again (${message})`,
          offset,
        )
      }
      this.clockOffset = offset
      await this.onClockOffset(offset)
      return new AppError('clock_corrected', message, { status, skewSecs: skew, retry: true })
    }
    // `code` (servers since issue 13) names what must be told apart; the
    // message text is the fallback for older servers.
    const code = typeof parsed?.code === 'string' ? parsed.code : null
    if (status === 401 && (parsed?.replayed === true || code === 'replayed')) {
      return new AppError('replayed', message, { status, retry: true })
    }
    if (status === 507 || code === 'disk_full') return new ServerFullError(message)
    if (code === 'revoked' || (status === 403 && /revoked/i.test(message))) return new RevokedError(message)
    if (code === 'invite_unknown' || code === 'invite_used' || code === 'invite_expired') {
      return new InviteError(code.slice('invite_'.length), message)
    }
    if (code === 'busy') return new ApiError(status, message, { code: 'busy', retry: true })
    return new ApiError(status, message, code ? { serverCode: code } : {})
  }

  /**
   * A signed JSON POST (or GET when `body` is undefined). Refused for its
   * time, it is signed again once with the corrected clock; refused as a
   * replay (a duplicate of it arrived first), it is signed afresh and sent
   * once more when `retryReplayed` (sync is idempotent). Returns the parsed JSON.
   */
  async json(method, path, body, { retryReplayed = false } = {}) {
    const bytes = body === undefined ? undefined : utf8(JSON.stringify(body))
    let clockRetried = false
    let replayRetried = false
    for (;;) {
      const headers = bytes ? { 'content-type': 'application/json' } : {}
      const response = await this.fetch(method, path, { body: bytes, headers })
      if (response.ok) {
        const answer = await readBounded(response)
        this.traffic.requests += 1
        this.traffic.bytesSent += bytes?.length ?? 0
        this.traffic.bytesReceived += answer.length
        try {
          return JSON.parse(fromUtf8(answer))
        } catch (e) {
          throw new AppError('server', `the server's answer could not be read: ${e.message}`)
        }
      }
      const error = await this.errorOf(response)
      if (error.code === 'clock_corrected' && !clockRetried) {
        clockRetried = true
        continue
      }
      if (error.code === 'replayed' && retryReplayed && !replayRetried) {
        replayRetried = true
        continue
      }
      if (error.code === 'clock_corrected') {
        throw new ClockError(`the server refused this device's clock twice: ${error.message}`, this.clockOffset)
      }
      throw error
    }
  }
}

/** "24 hours behind", "5 minutes ahead of" (request_auth.rs `describe_offset`). */
export function describeOffset(offsetSecs) {
  const way = offsetSecs > 0 ? 'behind' : 'ahead of'
  const secs = Math.abs(offsetSecs)
  let n
  let unit
  if (secs >= 2 * 3600) [n, unit] = [Math.floor((secs + 1800) / 3600), 'hours']
  else if (secs >= 3600) [n, unit] = [1, 'hour']
  else if (secs >= 120) [n, unit] = [Math.floor((secs + 30) / 60), 'minutes']
  else [n, unit] = [secs, secs === 1 ? 'second' : 'seconds']
  return `${n} ${unit} ${way}`
}

/**
 * Enrolls `identity` with a one-time token (POST /v1/enroll, signed by the
 * key being enrolled). Maps the server's 403 messages for tokens to
 * InviteError reasons: 'used', 'expired', 'unknown'.
 */
export async function enroll(client, token) {
  try {
    return await client.json('POST', '/v1/enroll', { token, public_key: client.identity.actorId })
  } catch (e) {
    if (e instanceof InviteError) throw e
    if (e instanceof ApiError && e.status === 403) {
      if (/already been used/i.test(e.message)) throw new InviteError('used', e.message)
      if (/expired/i.test(e.message)) throw new InviteError('expired', e.message)
      throw new InviteError('unknown', e.message)
    }
    if (e instanceof RevokedError) throw new InviteError('unknown', e.message)
    throw e
  }
}
