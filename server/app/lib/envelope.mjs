// The attachment envelope, sealing side: a photo, video or recording is
// encrypted here, in the browser, before anything of it is stored or sent.
// The phone holds only the case's X25519 *public* key, so it cannot open
// what it sealed (a seized phone gives nothing of its sent files back).
//
// Byte for byte as sync-core/src/envelope.rs (version 2, "FSA2"; all
// integers big-endian):
//
//   "FSA2"                4  magic and version
//   key_epoch             4  which case key pair the header is sealed to
//   enc                  32  HPKE encapsulated key (ephemeral X25519 public key)
//   header_len            4  length of the sealed header
//   sealed_header header_len  HPKE base mode single-shot seal (RFC 9180):
//                              DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//                              AES-256-GCM, info = "fieldsync attachment v2",
//                              aad = "FSA2" ‖ key_epoch, plaintext = header JSON
//   chunk 0, chunk 1, …       AES-256-GCM(content_key, nonce, aad = empty) of
//                              64 KiB of plaintext each (the last may be
//                              shorter, even empty), each followed by its tag
//
// Header JSON, keys in this order (serde's order, so a sealing here and in
// Rust with the same randomness give the same bytes):
//   {"content_key", "nonce_prefix" (standard base64, padded), "name",
//    "media_type", "size", "sha256" (of the plaintext, hex), "captured_at"}
// Chunk nonce: nonce_prefix (7) ‖ chunk index (4) ‖ last (1), the STREAM
// construction: reordering, dropping or cutting chunks fails to open.
//
// Memory: the input (a File or Blob) is read twice, slice by slice, as
// the Rust side does: first to hash it (the header, which comes first,
// records the plaintext's SHA-256), then to seal it. Sealed bytes leave
// in *parts* of PART_CHUNKS sealed chunks (about 1 MiB) through the
// caller's `onPart(index, bytes)`; with it, no more than one part and
// one 64 KiB slice is held at a time, so a 200 MB video is never whole
// in memory. Without `onPart` the parts are returned in an array (for
// small files and tests). The blob id, the SHA-256 of all sealed bytes,
// is computed as they stream past.
//
// Plaintext never goes anywhere but into AES-GCM: it is not stored, not
// cached, not logged.

const subtle = globalThis.crypto.subtle;
const encoder = new TextEncoder();

export const MAGIC_V2 = encoder.encode("FSA2");
export const HPKE_INFO = encoder.encode("fieldsync attachment v2");
/** Plaintext bytes per chunk. */
export const CHUNK = 64 * 1024;
export const TAG = 16;
/** Sealed chunks per part handed to `onPart` (about 1 MiB). */
export const PART_CHUNKS = 16;
/** Bytes before the sealed header in a v2 blob. */
export const FIXED_HEAD_V2 = 44;
// Chunk indexes are 4 bytes: 2^32 chunks of 64 KiB. Far past any phone
// file, but the bound is the format's, so say it rather than wrap.
const MAX_CHUNKS = 2 ** 32;

/** Why sealing failed, with a `code` the UI can translate. */
export class EnvelopeError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "EnvelopeError";
    this.code = code;
  }
}

// ------------------------------------------------------------ small bytes
// Private helpers (bytes.mjs is another module's; these few lines keep
// this one usable on its own and in tests).

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function u32be(n) {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

function u16be(n) {
  return new Uint8Array([(n >> 8) & 0xff, n & 0xff]);
}

export function toHex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function fromHex(hex) {
  if (typeof hex !== "string" || hex.length % 2 || /[^0-9a-fA-F]/.test(hex)) {
    throw new TypeError("not valid hex");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Standard base64 with padding (what serde's `STANDARD` engine writes). */
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

// ---------------------------------------------------------------- SHA-256

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
 * Incremental SHA-256 (as in server/web/crypto.js). WebCrypto's digest()
 * wants the whole input at once; a file's plaintext hash, a blob id and a
 * bundle's signed digest are computed as the bytes stream past instead.
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
    pad.set(u32be(hi), n - 8);
    pad.set(u32be(lo), n - 4);
    const length = this.length;
    this.update(pad);
    this.length = length;
    const out = new Uint8Array(32);
    for (let j = 0; j < 8; j++) out.set(u32be(this.h[j]), 4 * j);
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

// ------------------------------------------------------------------- HPKE
// RFC 9180 base mode, single-shot seal, with WebCrypto only: X25519
// generateKey/deriveBits for the KEM, HMAC-SHA256 for HKDF, AES-GCM for
// the AEAD. The open side is server/web/crypto.js; the labels and suite
// ids are the same.

const KEM_X25519_HKDF_SHA256 = 0x0020;
const KDF_HKDF_SHA256 = 0x0001;
const AEAD_AES_256_GCM = 0x0002;
const HPKE_VERSION_LABEL = encoder.encode("HPKE-v1");
const HASH_LEN = 32;
const NONCE_LEN = 12;
const MODE_BASE = 0x00;
const KEM_SUITE_ID = concat(encoder.encode("KEM"), u16be(KEM_X25519_HKDF_SHA256));
const HPKE_SUITE_ID = concat(
  encoder.encode("HPKE"),
  u16be(KEM_X25519_HKDF_SHA256),
  u16be(KDF_HKDF_SHA256),
  u16be(AEAD_AES_256_GCM),
);
// PKCS#8 wrapping of a raw X25519 private key (RFC 8410), for the fixed
// ephemeral key of a test vector.
const X25519_PKCS8_PREFIX = fromHex("302e020100300506032b656e04220420");
const X25519_BASE_POINT = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 9 : 0));

async function hmacSha256(key, data) {
  const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, data));
}

// RFC 5869: an absent salt is HashLen zero bytes (WebCrypto refuses an
// empty HMAC key).
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
  return hkdfExpand(prk, concat(u16be(length), HPKE_VERSION_LABEL, suiteId, encoder.encode(label), info), length);
}

/** A fresh ephemeral X25519 key pair, or the fixed one a test vector gives. */
async function ephemeralKeyPair(fixedPrivate) {
  if (fixedPrivate) {
    if (fixedPrivate.length !== 32) throw new EnvelopeError("bad_key", "the ephemeral private key is not 32 bytes");
    const privateKey = await subtle.importKey("pkcs8", concat(X25519_PKCS8_PREFIX, fixedPrivate), { name: "X25519" }, false, [
      "deriveBits",
    ]);
    const base = await subtle.importKey("raw", X25519_BASE_POINT, { name: "X25519" }, false, []);
    const publicKey = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: base }, privateKey, 256));
    return { privateKey, publicKey };
  }
  // Not extractable: the ephemeral private key exists only for this seal.
  const pair = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  return { privateKey: pair.privateKey, publicKey: new Uint8Array(await subtle.exportKey("raw", pair.publicKey)) };
}

/**
 * RFC 9180 SealBase, single shot, DHKEM(X25519, HKDF-SHA256) /
 * HKDF-SHA256 / AES-256-GCM. Returns { enc, ciphertext }.
 * `ephemeralPrivateKey` is for test vectors only.
 */
export async function hpkeSeal({ recipientPublicKey, info, aad, plaintext, ephemeralPrivateKey = null }) {
  if (!(recipientPublicKey instanceof Uint8Array) || recipientPublicKey.length !== 32) {
    throw new EnvelopeError("bad_key", "the case public key is not 32 bytes; enroll the phone again to get the case key");
  }
  const ephemeral = await ephemeralKeyPair(ephemeralPrivateKey);
  let dh;
  try {
    const pkR = await subtle.importKey("raw", recipientPublicKey, { name: "X25519" }, false, []);
    dh = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: pkR }, ephemeral.privateKey, 256));
  } catch {
    throw new EnvelopeError("bad_key", "the case public key is not a usable X25519 key; enroll the phone again to get the case key");
  }
  // RFC 9180 section 7.1.4: a small-order public key gives an all-zero
  // shared secret. The hpke crate refuses it; so do we.
  if (dh.every((b) => b === 0)) {
    throw new EnvelopeError("bad_key", "the case public key is a low-order point; enroll the phone again to get the case key");
  }
  const enc = ephemeral.publicKey;
  const eaePrk = await labeledExtract(KEM_SUITE_ID, new Uint8Array(0), "eae_prk", dh);
  const sharedSecret = await labeledExpand(KEM_SUITE_ID, eaePrk, "shared_secret", concat(enc, recipientPublicKey), HASH_LEN);

  const empty = new Uint8Array(0);
  const pskIdHash = await labeledExtract(HPKE_SUITE_ID, empty, "psk_id_hash", empty);
  const infoHash = await labeledExtract(HPKE_SUITE_ID, empty, "info_hash", info);
  const context = concat(new Uint8Array([MODE_BASE]), pskIdHash, infoHash);
  const secret = await labeledExtract(HPKE_SUITE_ID, sharedSecret, "secret", empty);
  const key = await labeledExpand(HPKE_SUITE_ID, secret, "key", context, 32);
  const baseNonce = await labeledExpand(HPKE_SUITE_ID, secret, "base_nonce", context, NONCE_LEN);
  const aeadKey = await subtle.importKey("raw", key, { name: "AES-GCM" }, false, ["encrypt"]);
  const ciphertext = new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv: baseNonce, additionalData: aad, tagLength: 128 }, aeadKey, plaintext),
  );
  return { enc, ciphertext };
}

// --------------------------------------------------------------- envelope

/** The 8 bytes "FSA2" ‖ epoch: the sealed header's aad. */
export function headerAad(epoch) {
  return concat(MAGIC_V2, u32be(epoch));
}

/** The nonce of chunk `index`: prefix ‖ index ‖ last flag. */
export function chunkNonce(prefix, index, last) {
  const nonce = new Uint8Array(12);
  nonce.set(prefix, 0);
  nonce.set(u32be(index), 7);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

// JSON.stringify writes what serde_json writes for the strings a Rust
// String can hold (same escapes: \" \\ \b \f \n \r \t, other controls as
// lowercase \u00xx, nothing else escaped). A JS string can also hold a
// lone surrogate, which no Rust string can: it becomes U+FFFD, as the
// browser's own UTF-8 encoder would make it.
function wellFormed(s) {
  return String(s).replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** The header JSON, byte for byte as serde writes `Header` (fields in declaration order). */
export function headerJson({ contentKey, noncePrefix, meta }) {
  const header = {
    content_key: toBase64(contentKey),
    nonce_prefix: toBase64(noncePrefix),
    name: wellFormed(meta.name),
    media_type: wellFormed(meta.media_type),
    size: meta.size,
    sha256: meta.sha256,
    captured_at: meta.captured_at == null ? null : wellFormed(meta.captured_at),
  };
  return encoder.encode(JSON.stringify(header));
}

/** Seals the header; returns the blob's head (magic … sealed header). */
export async function sealHeader({ publicKey, epoch, headerJsonBytes, ephemeralPrivateKey = null }) {
  const { enc, ciphertext } = await hpkeSeal({
    recipientPublicKey: publicKey,
    info: HPKE_INFO,
    aad: headerAad(epoch),
    plaintext: headerJsonBytes,
    ephemeralPrivateKey,
  });
  return concat(MAGIC_V2, u32be(epoch), enc, u32be(ciphertext.length), ciphertext);
}

/** Reads an input (Blob/File or Uint8Array) slice by slice. */
function sliceReader(input) {
  if (input instanceof Uint8Array) {
    return { size: input.length, read: async (start, end) => input.subarray(start, end) };
  }
  if (input && typeof input.slice === "function" && typeof input.size === "number") {
    return { size: input.size, read: async (start, end) => new Uint8Array(await input.slice(start, end).arrayBuffer()) };
  }
  throw new TypeError("sealFile takes a File, a Blob or a Uint8Array");
}

/** SHA-256 and size of an input, read in 1 MiB slices. */
async function hashInput(reader) {
  const hash = new Sha256();
  const step = 16 * CHUNK;
  for (let at = 0; at < reader.size; at += step) {
    hash.update(await reader.read(at, Math.min(reader.size, at + step)));
  }
  return hash.hex();
}

function checkEpoch(epoch) {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffffffff) {
    throw new EnvelopeError("bad_key", `the case key epoch ${epoch} is not a 32-bit number`);
  }
}

/**
 * Seals `input` (File, Blob or Uint8Array) to the case public key.
 *
 *   const sealed = await sealFile(file, { publicKey, epoch }, {
 *     name: file.name, mediaType: file.type, capturedAt: null,
 *     onPart: async (index, bytes) => store.put('blobs', `${tmp}.${index}`, bytes),
 *   });
 *
 * Returns { blobId, blobLen, keyEpoch, head, meta, partSizes, parts }:
 * - blobId: hex SHA-256 of the whole sealed blob (the server's name for it);
 * - head: the blob's bytes up to the end of the sealed header (a report's
 *   attachment entry carries it);
 * - meta: { name, media_type, size, sha256, captured_at } as in the header;
 * - partSizes: the length of each part in order (their sum is blobLen);
 * - parts: the parts themselves, only when no `onPart` was given.
 * Part 0 starts with the head. Every part but the last holds
 * PART_CHUNKS sealed chunks (plus the head, for part 0).
 *
 * `random` ({ contentKey, noncePrefix, ephemeralPrivateKey }) is for test
 * vectors only: fresh values come from crypto.getRandomValues.
 * Throws EnvelopeError code 'changed' when the input changed between the
 * two reads (a recording still being written).
 */
export async function sealFile(input, { publicKey, epoch }, { name = "", mediaType = "application/octet-stream", capturedAt = null, onPart = null, random = null } = {}) {
  checkEpoch(epoch);
  const reader = sliceReader(input);
  const contentKeyBytes = random?.contentKey ? random.contentKey.slice() : crypto.getRandomValues(new Uint8Array(32));
  const noncePrefix = random?.noncePrefix ?? crypto.getRandomValues(new Uint8Array(7));
  if (contentKeyBytes.length !== 32 || noncePrefix.length !== 7) throw new TypeError("content key must be 32 bytes, nonce prefix 7");
  const size = reader.size;
  if (Math.ceil(size / CHUNK) >= MAX_CHUNKS) throw new EnvelopeError("too_large", "the file is too large for one attachment");
  const meta = { name: String(name), media_type: String(mediaType || "application/octet-stream"), size, sha256: await hashInput(reader), captured_at: capturedAt ?? null };
  const head = await sealHeader({
    publicKey,
    epoch,
    headerJsonBytes: headerJson({ contentKey: contentKeyBytes, noncePrefix, meta }),
    ephemeralPrivateKey: random?.ephemeralPrivateKey ?? null,
  });
  const contentKey = await subtle.importKey("raw", contentKeyBytes, { name: "AES-GCM" }, false, ["encrypt"]);
  // The raw key is not needed past here; the CryptoKey is not extractable.
  contentKeyBytes.fill(0);

  const blobHash = new Sha256();
  const plainHash = new Sha256();
  const parts = [];
  const partSizes = [];
  let pending = [head];
  let pendingChunks = 0;
  const flush = async () => {
    const part = pending.length === 1 ? pending[0] : concat(...pending);
    pending = [];
    pendingChunks = 0;
    blobHash.update(part);
    partSizes.push(part.length);
    if (onPart) await onPart(partSizes.length - 1, part);
    else parts.push(part);
  };

  // The final chunk is the one that reaches the end of the input: an
  // empty file is one empty final chunk, a file of exactly n·64 KiB ends
  // with a full chunk marked last (as seal_with's look-ahead decides).
  const chunks = Math.max(1, Math.ceil(size / CHUNK));
  for (let index = 0; index < chunks; index++) {
    const start = index * CHUNK;
    const plain = await reader.read(start, Math.min(size, start + CHUNK));
    plainHash.update(plain);
    const last = index === chunks - 1;
    const sealed = new Uint8Array(
      await subtle.encrypt({ name: "AES-GCM", iv: chunkNonce(noncePrefix, index, last), tagLength: 128 }, contentKey, plain),
    );
    pending.push(sealed);
    pendingChunks += 1;
    if (pendingChunks >= PART_CHUNKS && !last) await flush();
  }
  await flush();
  if (plainHash.length !== size || plainHash.hex() !== meta.sha256) {
    throw new EnvelopeError("changed", "the file changed while it was being encrypted; attach it again once it is complete");
  }
  return {
    blobId: blobHash.hex(),
    blobLen: partSizes.reduce((a, b) => a + b, 0),
    keyEpoch: epoch,
    head,
    meta,
    partSizes,
    parts: onPart ? null : parts,
  };
}

/** The whole sealed blob of a sealFile result made without onPart (small files, tests). */
export function joinParts(sealed) {
  if (!sealed.parts) throw new TypeError("the parts went to onPart; read them back from where it put them");
  return concat(...sealed.parts);
}
