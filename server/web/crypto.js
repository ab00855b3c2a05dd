// Everything the page does with keys and bytes, and nothing else: no DOM,
// no fetch. Runs unchanged in the browser and in node (the unit tests in
// tests/browser/unit/ import this file).
//
// Formats, as the Rust side defines them:
// - share code (sync-core/src/case_key.rs): base64url, no padding, of
//   version(1) = 1 ‖ epoch(4, BE) ‖ key(32) ‖ check(4) = SHA-256(first 37)[..4]
// - login token (web contract): "FSW1" ‖ device key(32) ‖ session key(32) ‖
//   login_until(8) ‖ session_until(8) ‖ nonce(16) ‖ device signature(64)
// - attachment envelope (sync-core/src/envelope.rs): "FSA1" ‖ epoch(4) ‖
//   header nonce(12) ‖ header_len(4) ‖ sealed header ‖ chunks of 64 KiB + tag
// - change signature (sync-core/src/identity.rs): Ed25519 over
//   "fieldsync change v1\0" ‖ change hash(32)

const subtle = globalThis.crypto.subtle;
const encoder = new TextEncoder();

export const CHUNK = 64 * 1024;
export const TAG = 16;
const FIXED_HEAD = 4 + 4 + 12 + 4;
const MAX_HEADER = 64 * 1024;
const CHANGE_DOMAIN = encoder.encode("fieldsync change v1\0");
const LOGIN_DOMAIN = encoder.encode("fieldsync web-login v1\0");
const TOKEN_LEN = 164;

/** An error whose message is meant for the person reading the page. */
export class CryptoError extends Error {}

// ---------------------------------------------------------------- encodings

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_VALUES = (() => {
  const table = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) table[B64.charCodeAt(i)] = i;
  table["-".charCodeAt(0)] = 62;
  table["_".charCodeAt(0)] = 63;
  return table;
})();

/** Standard base64 with padding. */
export function toBase64(bytes) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += B64[n >> 18] + B64[(n >> 12) & 63] + "==";
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + "=";
  }
  return out;
}

/** base64url without padding (JWK, share codes, tokens). */
export function toBase64Url(bytes) {
  return toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Decodes standard or url-safe base64, padded or not. Throws CryptoError on
 * any character outside the alphabet or an impossible length.
 */
export function fromBase64(text) {
  const clean = String(text).replace(/=+$/, "");
  if (clean.length % 4 === 1) throw new CryptoError("not valid base64 (impossible length)");
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < clean.length; i++) {
    const c = clean.charCodeAt(i);
    const v = c < 128 ? B64_VALUES[c] : -1;
    if (v < 0) throw new CryptoError("not valid base64 (unexpected character)");
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

export function toHex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function fromHex(hex) {
  if (typeof hex !== "string" || hex.length % 2 || /[^0-9a-fA-F]/.test(hex)) {
    throw new CryptoError("not valid hex");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function readU32(bytes, at) {
  return ((bytes[at] << 24) >>> 0) + (bytes[at + 1] << 16) + (bytes[at + 2] << 8) + bytes[at + 3];
}

function readU64(bytes, at) {
  return readU32(bytes, at) * 2 ** 32 + readU32(bytes, at + 4);
}

// ------------------------------------------------------------------ SHA-256

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/**
 * Incremental SHA-256. WebCrypto's digest() takes the whole input at once;
 * an attachment is decrypted chunk by chunk and may be larger than memory
 * should hold twice, so its hash is computed as it streams.
 */
export class Sha256 {
  constructor() {
    this.h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    this.w = new Uint32Array(64);
    this.block = new Uint8Array(64);
    this.filled = 0;
    this.length = 0;
  }

  update(bytes) {
    let i = 0;
    this.length += bytes.length;
    if (this.filled) {
      const take = Math.min(64 - this.filled, bytes.length);
      this.block.set(bytes.subarray(0, take), this.filled);
      this.filled += take;
      i = take;
      if (this.filled < 64) return this;
      this.compress(this.block, 0);
      this.filled = 0;
    }
    for (; i + 64 <= bytes.length; i += 64) this.compress(bytes, i);
    if (i < bytes.length) {
      this.block.set(bytes.subarray(i), 0);
      this.filled = bytes.length - i;
    }
    return this;
  }

  /** The digest; the hasher must not be used afterwards. */
  digest() {
    const bits = this.length * 8;
    const pad = new Uint8Array(this.filled < 56 ? 64 - this.filled : 128 - this.filled);
    pad[0] = 0x80;
    const hi = Math.floor(bits / 2 ** 32);
    const lo = bits >>> 0;
    const n = pad.length;
    pad[n - 8] = hi >>> 24;
    pad[n - 7] = (hi >>> 16) & 0xff;
    pad[n - 6] = (hi >>> 8) & 0xff;
    pad[n - 5] = hi & 0xff;
    pad[n - 4] = lo >>> 24;
    pad[n - 3] = (lo >>> 16) & 0xff;
    pad[n - 2] = (lo >>> 8) & 0xff;
    pad[n - 1] = lo & 0xff;
    const length = this.length;
    this.update(pad);
    this.length = length;
    const out = new Uint8Array(32);
    for (let j = 0; j < 8; j++) {
      out[4 * j] = this.h[j] >>> 24;
      out[4 * j + 1] = (this.h[j] >>> 16) & 0xff;
      out[4 * j + 2] = (this.h[j] >>> 8) & 0xff;
      out[4 * j + 3] = this.h[j] & 0xff;
    }
    return out;
  }

  hex() {
    return toHex(this.digest());
  }

  compress(bytes, at) {
    const w = this.w;
    for (let t = 0; t < 16; t++) {
      const o = at + 4 * t;
      w[t] = (bytes[o] << 24) | (bytes[o + 1] << 16) | (bytes[o + 2] << 8) | bytes[o + 3];
    }
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15];
      const b = w[t - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, h] = this.h;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    const H = this.h;
    H[0] += a;
    H[1] += b;
    H[2] += c;
    H[3] += d;
    H[4] += e;
    H[5] += f;
    H[6] += g;
    H[7] += h;
  }
}

export function sha256(bytes) {
  return new Sha256().update(bytes).digest();
}

// -------------------------------------------------------------- share codes

/**
 * Decodes a case-key share code. Whitespace is ignored (people read codes
 * aloud in groups); a wrong length, checksum or version is refused.
 * Returns { epoch, key: Uint8Array(32) }.
 */
export function parseShareCode(code) {
  const cleaned = String(code).replace(/\s+/g, "");
  if (/[^A-Za-z0-9_-]/.test(cleaned)) {
    throw new CryptoError("a case key code is not valid base64url; open the login link again");
  }
  const raw = fromBase64(cleaned);
  if (raw.length !== 41) {
    throw new CryptoError(`a case key code has ${raw.length} bytes instead of 41; open the login link again`);
  }
  if (!equalBytes(sha256(raw.subarray(0, 37)).subarray(0, 4), raw.subarray(37))) {
    throw new CryptoError("a case key code's checksum does not match: the link was altered or cut");
  }
  if (raw[0] !== 1) throw new CryptoError(`a case key code is of unknown version ${raw[0]}`);
  return { epoch: readU32(raw, 1), key: raw.slice(5, 37) };
}

/** Share codes (comma separated) into a Map epoch → key bytes. */
export function parseShareCodes(list) {
  const keys = new Map();
  for (const code of String(list).split(",")) {
    if (!code.trim()) continue;
    const { epoch, key } = parseShareCode(code);
    keys.set(epoch, key);
  }
  return keys;
}

// ------------------------------------------------------------- login links

/** Reads `t`, `k` and `s` from a login fragment ("#t=..&k=..&s=.."). */
export function parseLoginFragment(hash) {
  const params = new URLSearchParams(String(hash).replace(/^#/, ""));
  const t = params.get("t");
  // k is empty when the device holds no case key: the page then lists
  // attachments without opening them.
  const k = params.get("k") ?? "";
  const s = params.get("s");
  if (!t || !s) {
    throw new CryptoError("this login link is incomplete; run `fieldsync web-login` again and open the whole link");
  }
  return { t, k, s };
}

/** Splits a login certificate into its fields; checks only its shape. */
export function parseLoginToken(t) {
  let bytes;
  try {
    bytes = fromBase64(t);
  } catch {
    throw new CryptoError("the login token is not valid base64url");
  }
  if (bytes.length !== TOKEN_LEN) {
    throw new CryptoError(`the login token has ${bytes.length} bytes instead of ${TOKEN_LEN}`);
  }
  if (String.fromCharCode(...bytes.subarray(0, 4)) !== "FSW1") {
    throw new CryptoError("the login token is not a fieldsync web login (bad magic)");
  }
  return {
    devicePublicKey: bytes.slice(4, 36),
    sessionPublicKey: bytes.slice(36, 68),
    loginUntil: readU64(bytes, 68),
    sessionUntil: readU64(bytes, 76),
    nonce: bytes.slice(84, 100),
    signature: bytes.slice(100, 164),
    signed: concat(LOGIN_DOMAIN, bytes.subarray(0, 100)),
  };
}

/** Whether the token's device signature verifies (the server checks it too). */
export async function verifyLoginToken(token) {
  const key = await subtle.importKey("raw", token.devicePublicKey, { name: "Ed25519" }, false, ["verify"]);
  return subtle.verify({ name: "Ed25519" }, key, token.signature, token.signed);
}

// ------------------------------------------------------- change signatures

/** The session's signing key, from the seed in the link and the public key in the token. */
export async function importSessionKey(seed, publicKey) {
  if (seed.length !== 32) throw new CryptoError("the session key in the link is not 32 bytes");
  const jwk = { kty: "OKP", crv: "Ed25519", d: toBase64Url(seed), x: toBase64Url(publicKey) };
  try {
    return await subtle.importKey("jwk", jwk, { name: "Ed25519" }, false, ["sign"]);
  } catch (e) {
    throw new CryptoError(`this browser cannot use the session key (Ed25519): ${e.message}`);
  }
}

/** The bytes a change signature covers. */
export function changeMessage(hashHex) {
  const hash = fromHex(hashHex);
  if (hash.length !== 32) throw new CryptoError("the change hash is not 32 bytes");
  return concat(CHANGE_DOMAIN, hash);
}

/**
 * Signs a prepared change's hash with the session key and checks the
 * signature against the session public key before it is sent, so a link
 * whose seed and token disagree is reported here and not as a refusal.
 */
export async function signChange(privateKey, publicKey, hashHex) {
  const message = changeMessage(hashHex);
  const sig = new Uint8Array(await subtle.sign({ name: "Ed25519" }, privateKey, message));
  const pub = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  if (!(await subtle.verify({ name: "Ed25519" }, pub, sig, message))) {
    throw new CryptoError("the session key in the link does not match its token; run `fieldsync web-login` again");
  }
  return sig;
}

// --------------------------------------------------------------- envelopes

async function aesKey(raw) {
  return subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["decrypt"]);
}

/**
 * Opens an attachment's sealed header (the bytes `attachments[].header`
 * carries, or the start of the blob) with the case keys. Returns
 * { epoch, headLen, meta: {name, media_type, size, sha256, captured_at},
 *   contentKey: CryptoKey, noncePrefix: Uint8Array(7) }.
 */
export async function openHeader(head, caseKeys) {
  if (head.length < FIXED_HEAD || String.fromCharCode(...head.subarray(0, 4)) !== "FSA1") {
    throw new CryptoError("this is not a fieldsync attachment (bad magic)");
  }
  const epoch = readU32(head, 4);
  const headerLen = readU32(head, 20);
  if (headerLen < TAG || headerLen > MAX_HEADER) throw new CryptoError("the attachment header has an impossible length");
  if (head.length < FIXED_HEAD + headerLen) throw new CryptoError("the attachment header is cut short");
  const caseKey = caseKeys.get(epoch);
  if (!caseKey) {
    throw new CryptoError(`the attachment is sealed with case key epoch ${epoch}, which this login link does not carry`);
  }
  let plain;
  try {
    plain = await subtle.decrypt(
      { name: "AES-GCM", iv: head.subarray(8, 20), additionalData: head.subarray(0, 8), tagLength: 128 },
      await aesKey(caseKey),
      head.subarray(FIXED_HEAD, FIXED_HEAD + headerLen),
    );
  } catch {
    throw new CryptoError("the attachment header does not open with the case key: wrong key, or the header was altered");
  }
  let header;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plain));
  } catch {
    throw new CryptoError("the attachment header is not valid JSON");
  }
  const contentKey = fromBase64(header.content_key ?? "");
  const noncePrefix = fromBase64(header.nonce_prefix ?? "");
  if (contentKey.length !== 32 || noncePrefix.length !== 7) {
    throw new CryptoError("the attachment header holds a malformed key");
  }
  const meta = {
    name: String(header.name ?? ""),
    media_type: String(header.media_type ?? ""),
    size: Number(header.size),
    sha256: String(header.sha256 ?? "").toLowerCase(),
    captured_at: header.captured_at ?? null,
  };
  if (!Number.isSafeInteger(meta.size) || meta.size < 0 || !/^[0-9a-f]{64}$/.test(meta.sha256)) {
    throw new CryptoError("the attachment header's size or SHA-256 is malformed");
  }
  return { epoch, headLen: FIXED_HEAD + headerLen, meta, contentKey: await aesKey(contentKey), noncePrefix };
}

function chunkNonce(prefix, index, last) {
  const nonce = new Uint8Array(12);
  nonce.set(prefix, 0);
  nonce[7] = index >>> 24;
  nonce[8] = (index >>> 16) & 0xff;
  nonce[9] = (index >>> 8) & 0xff;
  nonce[10] = index & 0xff;
  nonce[11] = last ? 1 : 0;
  return nonce;
}

/**
 * Decrypts a blob as its bytes arrive, in pieces of any size:
 *
 *   const d = new BlobDecryptor(caseKeys, { blobId, expectedHead });
 *   for await (const piece of stream) for (const plain of await d.push(piece)) use(plain);
 *   for (const plain of await d.finish()) use(plain);   // throws on any failure
 *
 * It checks, and throws a CryptoError naming what failed: the blob hashes to
 * its id (if given), its head equals the header the signed report carries
 * (if given), every chunk authenticates in order, the final chunk is marked
 * last, and the plaintext's size and SHA-256 match the header. Plaintext
 * handed out before a failure must be thrown away by the caller.
 */
export class BlobDecryptor {
  constructor(caseKeys, { blobId = null, expectedHead = null } = {}) {
    this.caseKeys = caseKeys;
    this.blobId = blobId;
    this.expectedHead = expectedHead;
    this.blobHash = new Sha256();
    this.plainHash = new Sha256();
    this.pending = new Uint8Array(0);
    this.header = null;
    this.index = 0;
    this.plainLen = 0;
  }

  /** Feeds ciphertext; returns the plaintext chunks now known not to be last. */
  async push(bytes) {
    this.blobHash.update(bytes);
    this.pending = this.pending.length ? concat(this.pending, bytes) : bytes.slice();
    const out = [];
    if (!this.header) {
      if (this.pending.length < FIXED_HEAD) return out;
      const headerLen = readU32(this.pending, 20);
      if (headerLen > MAX_HEADER) throw new CryptoError("the attachment header has an impossible length");
      const headLen = FIXED_HEAD + headerLen;
      if (this.pending.length < headLen) return out;
      const head = this.pending.subarray(0, headLen);
      if (this.expectedHead && !equalBytes(head, this.expectedHead)) {
        throw new CryptoError("the blob's header differs from the one the signed report carries");
      }
      this.header = await openHeader(head, this.caseKeys);
      this.pending = this.pending.slice(headLen);
    }
    // A chunk is decrypted only once more bytes follow it: the final chunk
    // (the only one marked last) is the one the stream ends with.
    let at = 0;
    while (this.pending.length - at > CHUNK + TAG) {
      out.push(await this.decrypt(this.pending.subarray(at, at + CHUNK + TAG), false));
      at += CHUNK + TAG;
    }
    if (at) this.pending = this.pending.slice(at);
    return out;
  }

  /** Ends the stream: decrypts the final chunk and checks everything. */
  async finish() {
    if (!this.header) throw new CryptoError("the blob ends inside its header: it was truncated");
    if (this.pending.length < TAG) throw new CryptoError("the attachment ends without its final chunk: it was truncated");
    const last = await this.decrypt(this.pending, true);
    this.pending = new Uint8Array(0);
    if (this.blobId && this.blobHash.hex() !== this.blobId) {
      throw new CryptoError("the blob does not hash to the id the signed report names: it was altered or swapped");
    }
    const { meta } = this.header;
    if (this.plainLen !== meta.size || this.plainHash.hex() !== meta.sha256) {
      throw new CryptoError("the decrypted file does not match the size or SHA-256 its header records");
    }
    return [last];
  }

  get meta() {
    return this.header?.meta ?? null;
  }

  async decrypt(sealed, last) {
    const { contentKey, noncePrefix } = this.header;
    let plain;
    try {
      plain = new Uint8Array(
        await subtle.decrypt(
          { name: "AES-GCM", iv: chunkNonce(noncePrefix, this.index, last), tagLength: 128 },
          contentKey,
          sealed,
        ),
      );
    } catch {
      throw new CryptoError(
        last
          ? "the attachment's final chunk does not authenticate: it was truncated or altered; nothing of it can be trusted"
          : `chunk ${this.index} does not authenticate: the attachment was altered, reordered or truncated; nothing of it can be trusted`,
      );
    }
    this.index += 1;
    this.plainLen += plain.length;
    this.plainHash.update(plain);
    return plain;
  }
}

/**
 * Decrypts a whole blob given as a ReadableStream of Uint8Array (a fetch
 * body) and returns the plaintext chunks. `onProgress(bytesIn)` is called as
 * ciphertext arrives.
 */
export async function decryptStream(stream, caseKeys, options = {}, onProgress = () => {}) {
  const d = new BlobDecryptor(caseKeys, options);
  const parts = [];
  const reader = stream.getReader();
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.length;
    onProgress(received);
    parts.push(...(await d.push(value)));
  }
  parts.push(...(await d.finish()));
  return { meta: d.meta, parts };
}
