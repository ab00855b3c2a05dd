// Everything the page does with keys and bytes, and nothing else: no DOM,
// no fetch. Runs unchanged in the browser and in node (the unit tests in
// tests/browser/unit/ import this file).
//
// Formats, as the Rust side defines them (byte for byte in KEYMODEL.md and
// the module docs named here):
// - share code (sync-core/src/case_key.rs): base64url, no padding, of
//   version(1) ‖ epoch(4, BE) ‖ key(32) ‖ check(4) = SHA-256(first 37)[..4].
//   Version 1: key = the old symmetric AES-256 case key. Version 2: key =
//   the case's X25519 private key (RFC 7748 encoding). A link may carry both.
// - login token (web contract): "FSW1" ‖ device key(32) ‖ session key(32) ‖
//   login_until(8) ‖ session_until(8) ‖ nonce(16) ‖ device signature(64)
// - attachment envelope (sync-core/src/envelope.rs), dispatched on its magic:
//   v1: "FSA1" ‖ epoch(4) ‖ header nonce(12) ‖ header_len(4) ‖ header sealed
//       with AES-256-GCM under the v1 case key, aad = "FSA1" ‖ epoch
//   v2: "FSA2" ‖ epoch(4) ‖ enc(32) ‖ header_len(4) ‖ header sealed with
//       HPKE base mode (RFC 9180; DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//       AES-256-GCM) to the case public key of that epoch, single shot,
//       info = "fieldsync attachment v2", aad = "FSA2" ‖ epoch
//   both: the header is JSON {content_key, nonce_prefix, name, media_type,
//   size, sha256, captured_at}, then chunks of 64 KiB + tag under
//   AES-256-GCM(content_key), nonce = prefix(7) ‖ index(4, BE) ‖ last(1).
//   A report's AttachmentRef.header is the blob up to the end of its header.
// - change signature (sync-core/src/identity.rs): Ed25519 over
//   "fieldsync change v1\0" ‖ change hash(32)

const subtle = globalThis.crypto.subtle;
const encoder = new TextEncoder();

export const CHUNK = 64 * 1024;
export const TAG = 16;
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

const SHARE_CODE_VERSIONS = new Set([1, 2]);
// A link carries a handful of epochs; the bound keeps a hostile fragment
// from costing more than a glance.
const MAX_SHARE_CODES = 256;

/**
 * Decodes a case-key share code. Whitespace is ignored (people read codes
 * aloud in groups); a wrong length, checksum or version is refused.
 * Returns { version, epoch, key: Uint8Array(32) }: version 1 holds a
 * symmetric AES-256 case key, version 2 a case X25519 private key.
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
  // The last character carries 2 unused bits; a typo there decodes to the
  // same bytes. Only the one canonical text is a code, as in the Rust decoder.
  if (toBase64Url(raw) !== cleaned) {
    throw new CryptoError("a case key code is not valid base64url (its last character is altered); open the login link again");
  }
  if (!equalBytes(sha256(raw.subarray(0, 37)).subarray(0, 4), raw.subarray(37))) {
    throw new CryptoError("a case key code's checksum does not match: the link was altered or cut");
  }
  if (!SHARE_CODE_VERSIONS.has(raw[0])) {
    throw new CryptoError(`a case key code is of unknown version ${raw[0]}; this page reads versions 1 and 2`);
  }
  return { version: raw[0], epoch: readU32(raw, 1), key: raw.slice(5, 37) };
}

/**
 * The case keys one login link carries, by kind and epoch: `v1` maps an
 * epoch to its symmetric key (opens FSA1 headers), `v2` maps an epoch to
 * its X25519 private key (opens FSA2 headers). The same epoch number may
 * appear in both; they are different keys.
 */
export class CaseKeys {
  constructor() {
    this.v1 = new Map();
    this.v2 = new Map();
    this.recipients = new Map();
  }

  /** Adds a parsed share code; the same epoch and version twice must be the same key. */
  add({ version, epoch, key }) {
    const map = version === 2 ? this.v2 : version === 1 ? this.v1 : null;
    if (!map) throw new CryptoError(`a case key code is of unknown version ${version}`);
    const known = map.get(epoch);
    if (known && !equalBytes(known, key)) {
      throw new CryptoError(`the login link carries two different case keys for epoch ${epoch}; make a new link with \`fieldsync web-login\``);
    }
    map.set(epoch, key);
    return this;
  }

  get size() {
    return this.v1.size + this.v2.size;
  }

  /** The symmetric key of a v1 epoch, or undefined. */
  symmetric(epoch) {
    return this.v1.get(epoch);
  }

  /** { privateKey: CryptoKey, publicKey } of a v2 epoch (imported once), or null. */
  async recipient(epoch) {
    const raw = this.v2.get(epoch);
    if (!raw) return null;
    if (!this.recipients.has(epoch)) this.recipients.set(epoch, importX25519Private(raw));
    return this.recipients.get(epoch);
  }
}

/** Share codes (comma separated), v1 and v2 mixed, into CaseKeys. */
export function parseShareCodes(list) {
  const keys = new CaseKeys();
  const codes = String(list).split(",").filter((code) => code.trim());
  if (codes.length > MAX_SHARE_CODES) {
    throw new CryptoError(`the login link has too many case key codes (${codes.length}); make a new link with \`fieldsync web-login\``);
  }
  for (const code of codes) keys.add(parseShareCode(code));
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

// -------------------------------------------------------------------- HPKE
// RFC 9180 base mode, single-shot open, with WebCrypto only: X25519
// deriveBits for the KEM, HMAC-SHA256 for HKDF, AES-GCM for the AEAD. The
// AEAD is a parameter so the RFC's own test vector (AES-128-GCM) checks
// the same code the envelope runs with AES-256-GCM.

const KEM_X25519_HKDF_SHA256 = 0x0020;
const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES_128_GCM = 0x0001;
export const AEAD_AES_256_GCM = 0x0002;
const AEAD_KEY_LENGTH = new Map([
  [AEAD_AES_128_GCM, 16],
  [AEAD_AES_256_GCM, 32],
]);
const HPKE_VERSION_LABEL = encoder.encode("HPKE-v1");
const HASH_LEN = 32;
const NONCE_LEN = 12;
const MODE_BASE = 0x00;
// PKCS#8 wrapping of a raw X25519 private key (RFC 8410): a JWK import
// would also need the public key, which a share code does not carry.
const X25519_PKCS8_PREFIX = fromHex("302e020100300506032b656e04220420");
const X25519_BASE_POINT = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 9 : 0));

function u16(n) {
  return new Uint8Array([(n >> 8) & 0xff, n & 0xff]);
}

const KEM_SUITE_ID = concat(encoder.encode("KEM"), u16(KEM_X25519_HKDF_SHA256));
function hpkeSuiteId(aeadId) {
  return concat(encoder.encode("HPKE"), u16(KEM_X25519_HKDF_SHA256), u16(KDF_HKDF_SHA256), u16(aeadId));
}

async function hmacSha256(key, data) {
  const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, data));
}

// RFC 5869: an absent salt is HashLen zero bytes. (HMAC pads a short key
// with zeros anyway, and WebCrypto refuses an empty HMAC key.)
function hkdfExtract(salt, ikm) {
  return hmacSha256(salt.length ? salt : new Uint8Array(HASH_LEN), ikm);
}

async function hkdfExpand(prk, info, length) {
  const blocks = [];
  let t = new Uint8Array(0);
  for (let i = 1; blocks.length * HASH_LEN < length; i++) {
    t = await hmacSha256(prk, concat(t, info, new Uint8Array([i])));
    blocks.push(t);
  }
  return concat(...blocks).slice(0, length);
}

function labeledExtract(suiteId, salt, label, ikm) {
  return hkdfExtract(salt, concat(HPKE_VERSION_LABEL, suiteId, encoder.encode(label), ikm));
}

function labeledExpand(suiteId, prk, label, info, length) {
  return hkdfExpand(prk, concat(u16(length), HPKE_VERSION_LABEL, suiteId, encoder.encode(label), info), length);
}

/**
 * Imports a raw X25519 private key (32 bytes, RFC 7748) for deriveBits,
 * not extractable. Its public key is X25519(key, 9), computed the same
 * way. Returns { privateKey: CryptoKey, publicKey: Uint8Array(32) }.
 */
export async function importX25519Private(raw) {
  if (raw.length !== 32) throw new CryptoError("a case private key is not 32 bytes");
  let privateKey;
  let base;
  try {
    privateKey = await subtle.importKey("pkcs8", concat(X25519_PKCS8_PREFIX, raw), { name: "X25519" }, false, ["deriveBits"]);
    base = await subtle.importKey("raw", X25519_BASE_POINT, { name: "X25519" }, false, []);
  } catch (e) {
    throw new CryptoError(`this browser cannot use the case private key (X25519): ${e.message}`);
  }
  const publicKey = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: base }, privateKey, 256));
  return { privateKey, publicKey };
}

/**
 * DHKEM(X25519, HKDF-SHA256) Decap and the base-mode KeySchedule of
 * RFC 9180 (sections 4.1 and 5.1). `recipient` is what importX25519Private
 * returns. Returns the raw { sharedSecret, key, baseNonce } (exported for
 * the RFC vector test; the page only opens).
 */
export async function hpkeBaseContext({ recipient, enc, info, aeadId }) {
  const keyLength = AEAD_KEY_LENGTH.get(aeadId);
  if (!keyLength) throw new CryptoError(`HPKE AEAD ${aeadId} is not supported`);
  if (enc.length !== 32) throw new CryptoError("the HPKE encapsulated key is not 32 bytes");
  let dh;
  try {
    const pkE = await subtle.importKey("raw", enc, { name: "X25519" }, false, []);
    dh = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: pkE }, recipient.privateKey, 256));
  } catch {
    throw new CryptoError("the HPKE encapsulated key is not a usable X25519 public key");
  }
  // RFC 9180 section 7.1.4: a low-order enc gives all zeros; refuse it
  // here too, whatever the WebCrypto implementation does.
  if (dh.every((b) => b === 0)) throw new CryptoError("the HPKE encapsulated key is a low-order point");
  const eaePrk = await labeledExtract(KEM_SUITE_ID, new Uint8Array(0), "eae_prk", dh);
  const sharedSecret = await labeledExpand(KEM_SUITE_ID, eaePrk, "shared_secret", concat(enc, recipient.publicKey), HASH_LEN);

  const suiteId = hpkeSuiteId(aeadId);
  const empty = new Uint8Array(0);
  const pskIdHash = await labeledExtract(suiteId, empty, "psk_id_hash", empty);
  const infoHash = await labeledExtract(suiteId, empty, "info_hash", info);
  const context = concat(new Uint8Array([MODE_BASE]), pskIdHash, infoHash);
  const secret = await labeledExtract(suiteId, sharedSecret, "secret", empty);
  const key = await labeledExpand(suiteId, secret, "key", context, keyLength);
  const baseNonce = await labeledExpand(suiteId, secret, "base_nonce", context, NONCE_LEN);
  return { sharedSecret, key, baseNonce };
}

/**
 * RFC 9180 OpenBase, single shot (sequence number 0, so the nonce is the
 * base nonce). Throws a CryptoError when the ciphertext does not
 * authenticate under this recipient, enc, info and aad.
 */
export async function hpkeOpen({ recipient, enc, info, aad, ciphertext, aeadId }) {
  const { key, baseNonce } = await hpkeBaseContext({ recipient, enc, info, aeadId });
  const aeadKey = await subtle.importKey("raw", key, { name: "AES-GCM" }, false, ["decrypt"]);
  try {
    return new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: baseNonce, additionalData: aad, tagLength: 128 }, aeadKey, ciphertext));
  } catch {
    throw new CryptoError("the HPKE ciphertext does not authenticate");
  }
}

// --------------------------------------------------------------- envelopes

const ENVELOPE_INFO_V2 = encoder.encode("fieldsync attachment v2");

// Where each envelope version keeps its header length, and where its
// sealed header starts.
const LAYOUTS = {
  FSA1: { version: 1, lenAt: 20, fixed: 24 },
  FSA2: { version: 2, lenAt: 40, fixed: 44 },
};

/** The layout a blob's first bytes announce; null until 4 bytes are there. */
function layoutOf(bytes) {
  if (bytes.length < 4) return null;
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  const layout = LAYOUTS[magic];
  if (!layout) {
    throw new CryptoError(
      /^FSA[0-9]$/.test(magic)
        ? `this is not a fieldsync attachment this page can read (${magic}): it reads FSA1 and FSA2; update the server`
        : "this is not a fieldsync attachment (bad magic)",
    );
  }
  return layout;
}

/** The sealed header's length, refused outside [TAG, MAX_HEADER] before anything is read or buffered for it. */
function sealedHeaderLength(head, layout) {
  const headerLen = readU32(head, layout.lenAt);
  if (headerLen < TAG || headerLen > MAX_HEADER) throw new CryptoError("the attachment header has an impossible length");
  return headerLen;
}

async function aesKey(raw) {
  return subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["decrypt"]);
}

function missingKey(epoch, kind) {
  return new CryptoError(
    `the attachment is sealed to case key epoch ${epoch}${kind}, which this login link does not carry: ` +
      "make a new link with `fieldsync web-login` on a coordinator device that holds that key " +
      "(`fieldsync key show` lists a device's keys; a device without it can add it from a share code with `fieldsync key add`)",
  );
}

async function openSealedV1(head, epoch, sealed, caseKeys) {
  const caseKey = caseKeys.symmetric(epoch);
  if (!caseKey) throw missingKey(epoch, " (an old, v1 key)");
  try {
    return await subtle.decrypt(
      { name: "AES-GCM", iv: head.subarray(8, 20), additionalData: head.subarray(0, 8), tagLength: 128 },
      await aesKey(caseKey),
      sealed,
    );
  } catch {
    throw new CryptoError("the attachment header does not open with the case key: wrong key, or the header was altered");
  }
}

async function openSealedV2(head, epoch, sealed, caseKeys) {
  const recipient = await caseKeys.recipient(epoch);
  if (!recipient) throw missingKey(epoch, "");
  try {
    return await hpkeOpen({
      recipient,
      enc: head.subarray(8, 40),
      info: ENVELOPE_INFO_V2,
      aad: head.subarray(0, 8),
      ciphertext: sealed,
      aeadId: AEAD_AES_256_GCM,
    });
  } catch {
    throw new CryptoError(
      `the attachment header does not open with the case private key of epoch ${epoch}: the link's key for that epoch is not the one it was sealed to, or the header (its enc, epoch or sealed bytes) was altered`,
    );
  }
}

/**
 * Opens an attachment's sealed header (the bytes `attachments[].header`
 * carries, or the start of the blob) with the case keys, FSA1 or FSA2 by
 * its magic. Returns { version, epoch, headLen, meta: {name, media_type,
 * size, sha256, captured_at}, contentKey: CryptoKey, noncePrefix:
 * Uint8Array(7) }.
 */
export async function openHeader(head, caseKeys) {
  const layout = layoutOf(head);
  if (!layout) throw new CryptoError("this is not a fieldsync attachment (bad magic)");
  if (head.length < layout.fixed) throw new CryptoError("the attachment header is cut short");
  const headerLen = sealedHeaderLength(head, layout);
  if (head.length < layout.fixed + headerLen) throw new CryptoError("the attachment header is cut short");
  const epoch = readU32(head, 4);
  const sealed = head.subarray(layout.fixed, layout.fixed + headerLen);
  const plain = layout.version === 2 ? await openSealedV2(head, epoch, sealed, caseKeys) : await openSealedV1(head, epoch, sealed, caseKeys);
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
  return { version: layout.version, epoch, headLen: layout.fixed + headerLen, meta, contentKey: await aesKey(contentKey), noncePrefix };
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
      const layout = layoutOf(this.pending);
      if (!layout || this.pending.length < layout.fixed) return out;
      const headLen = layout.fixed + sealedHeaderLength(this.pending, layout);
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
