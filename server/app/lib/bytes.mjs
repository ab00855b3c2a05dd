// Byte helpers shared by the app's device modules: hex, base64 (standard and
// url-safe), UTF-8, concatenation and SHA-256. No DOM; runs in browsers and
// in node 20 (globalThis.crypto). Decoders are strict: the wire format is
// exact (lowercase hex for hashes and ids, padded standard base64 for change
// bytes and signatures), and a lenient decoder would accept bytes another
// implementation refuses.

const HEX = '0123456789abcdef'

/** Lowercase hex of bytes. */
export function toHex(bytes) {
  let out = ''
  for (const b of bytes) out += HEX[b >> 4] + HEX[b & 15]
  return out
}

/** Bytes of a hex string; lowercase only unless `anyCase`. Throws on anything else. */
export function fromHex(text, { anyCase = false } = {}) {
  if (typeof text !== 'string' || text.length % 2 !== 0) {
    throw new TypeError('not hex: odd length or not a string')
  }
  const re = anyCase ? /^[0-9a-fA-F]*$/ : /^[0-9a-f]*$/
  if (!re.test(text)) throw new TypeError('not lowercase hex')
  const out = new Uint8Array(text.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16)
  return out
}

/** True for a string of exactly `n` lowercase hex characters. */
export function isHex(text, n) {
  return typeof text === 'string' && text.length === n && /^[0-9a-f]*$/.test(text)
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

function encode(bytes, alphabet, pad) {
  let out = ''
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2]
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63]
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const n = bytes[i] << 16
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + (pad ? '==' : '')
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8)
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? '=' : '')
  }
  return out
}

function decode(text, alphabet, pad) {
  if (typeof text !== 'string') throw new TypeError('not base64: not a string')
  let body = text
  if (pad) {
    if (text.length % 4 !== 0) throw new TypeError('not base64: length is not a multiple of 4')
    if (body.endsWith('==')) body = body.slice(0, -2)
    else if (body.endsWith('=')) body = body.slice(0, -1)
  } else if (text.length % 4 === 1) {
    throw new TypeError('not base64url: impossible length')
  }
  const lookup = new Int16Array(128).fill(-1)
  for (let i = 0; i < 64; i++) lookup[alphabet.charCodeAt(i)] = i
  const out = new Uint8Array(Math.floor((body.length * 3) / 4))
  let acc = 0
  let bits = 0
  let o = 0
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i)
    const v = c < 128 ? lookup[c] : -1
    if (v < 0) throw new TypeError(`not base64: character ${JSON.stringify(body[i])}`)
    acc = (acc << 6) | v
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >> bits) & 255
    }
  }
  // Canonical only: the unused low bits of the last character must be zero,
  // as Rust's base64 decoder requires.
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) throw new TypeError('not base64: non-canonical end')
  return out
}

/** Standard base64, padded (the wire encoding of change bytes and signatures). */
export const toBase64 = (bytes) => encode(bytes, B64, true)
export const fromBase64 = (text) => decode(text, B64, true)
/** URL-safe base64 without padding (fingerprints, share codes, metadata). */
export const toBase64Url = (bytes) => encode(bytes, B64URL, false)
export const fromBase64Url = (text) => decode(text, B64URL, false)

const encoder = new TextEncoder()
const strictDecoder = new TextDecoder('utf-8', { fatal: true })
export const utf8 = (text) => encoder.encode(text)
/** UTF-8 bytes to a string; throws on invalid UTF-8. */
export const fromUtf8 = (bytes) => strictDecoder.decode(bytes)

/** Concatenation of byte arrays. */
export function concat(...parts) {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i]
  return d === 0
}

/** SHA-256 of bytes. */
export async function sha256(bytes) {
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes))
}

export async function sha256Hex(bytes) {
  return toHex(await sha256(bytes))
}

export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n))
}

/** Big-endian u32 as 4 bytes. */
export function u32be(n) {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n >>> 0, false)
  return out
}

/** Length of standard padded base64 of `n` bytes. */
export const base64Len = (n) => Math.ceil(n / 3) * 4
