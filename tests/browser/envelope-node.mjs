// Attachment envelopes and share codes made in node with node:crypto (not
// WebCrypto, not the page's code), from the layouts the Rust side documents
// (sync-core/src/envelope.rs, KEYMODEL.md). The unit tests open these with
// the page's crypto.js; mock-server.mjs serves them to the page.

import crypto from "node:crypto";

const CHUNK = 64 * 1024;
const sha256 = (bytes) => crypto.createHash("sha256").update(bytes).digest();
const ascii = (s) => Buffer.from(s, "latin1");
const u16 = (n) => Buffer.from([n >> 8, n & 0xff]);

/** A share code: version 1 (symmetric key) or 2 (X25519 private key). */
export function shareCode(version, epoch, key) {
  const raw = Buffer.alloc(37);
  raw[0] = version;
  raw.writeUInt32BE(epoch, 1);
  Buffer.from(key).copy(raw, 5);
  return Buffer.concat([raw, sha256(raw).subarray(0, 4)]).toString("base64url");
}

const x25519Private = (raw) =>
  crypto.createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), raw]), format: "der", type: "pkcs8" });
const x25519Public = (raw) =>
  crypto.createPublicKey({ key: Buffer.concat([Buffer.from("302a300506032b656e032100", "hex"), raw]), format: "der", type: "spki" });
const rawPublic = (privateKey) => crypto.createPublicKey(privateKey).export({ format: "der", type: "spki" }).subarray(12);

/** A fresh case key pair: { priv, pub }, 32 raw bytes each. */
export function caseKeyPair() {
  const priv = crypto.randomBytes(32);
  return { priv, pub: rawPublic(x25519Private(priv)) };
}

const hmac = (key, data) => crypto.createHmac("sha256", key).update(data).digest();
// An empty salt is HashLen zero bytes (RFC 5869); HMAC pads it so anyway.
const labeledExtract = (suite, salt, label, ikm) => hmac(salt, Buffer.concat([ascii("HPKE-v1"), suite, ascii(label), ikm]));
function labeledExpand(suite, prk, label, info, length) {
  const full = Buffer.concat([u16(length), ascii("HPKE-v1"), suite, ascii(label), info]);
  let t = Buffer.alloc(0);
  const out = [];
  for (let i = 1; out.length * 32 < length; i++) out.push((t = hmac(prk, Buffer.concat([t, full, Buffer.from([i])]))));
  return Buffer.concat(out).subarray(0, length);
}

/** RFC 9180 SealBase, single shot: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. */
export function hpkeSeal(recipientPub, info, aad, plain, ephemeral = crypto.randomBytes(32)) {
  const skE = x25519Private(ephemeral);
  const enc = rawPublic(skE);
  const dh = crypto.diffieHellman({ privateKey: skE, publicKey: x25519Public(recipientPub) });
  const kemSuite = Buffer.concat([ascii("KEM"), u16(0x20)]);
  const prk = labeledExtract(kemSuite, Buffer.alloc(0), "eae_prk", dh);
  const shared = labeledExpand(kemSuite, prk, "shared_secret", Buffer.concat([enc, recipientPub]), 32);
  const suite = Buffer.concat([ascii("HPKE"), u16(0x20), u16(1), u16(2)]);
  const context = Buffer.concat([
    Buffer.from([0]),
    labeledExtract(suite, Buffer.alloc(0), "psk_id_hash", Buffer.alloc(0)),
    labeledExtract(suite, Buffer.alloc(0), "info_hash", info),
  ]);
  const secret = labeledExtract(suite, shared, "secret", Buffer.alloc(0));
  const key = labeledExpand(suite, secret, "key", context, 32);
  const nonce = labeledExpand(suite, secret, "base_nonce", context, 12);
  const c = crypto.createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(aad);
  return { enc, sealed: Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]) };
}

function headerJson(plain, { name, mediaType, capturedAt }, contentKey, prefix) {
  return JSON.stringify({
    content_key: contentKey.toString("base64"),
    nonce_prefix: prefix.toString("base64"),
    name,
    media_type: mediaType,
    size: plain.length,
    sha256: sha256(plain).toString("hex"),
    captured_at: capturedAt,
  });
}

function chunks(plain, contentKey, prefix) {
  const out = [];
  const count = Math.floor(plain.length / CHUNK) + 1;
  for (let i = 0; i < count; i++) {
    const nonce = Buffer.alloc(12);
    prefix.copy(nonce, 0);
    nonce.writeUInt32BE(i, 7);
    nonce[11] = i === count - 1 ? 1 : 0;
    const c = crypto.createCipheriv("aes-256-gcm", contentKey, nonce);
    out.push(c.update(plain.subarray(i * CHUNK, (i + 1) * CHUNK)), c.final(), c.getAuthTag());
  }
  return out;
}

function finish(head, plain, contentKey, prefix, epoch, headerLen) {
  const blob = Buffer.concat([head, ...chunks(plain, contentKey, prefix)]);
  return { blob, head, id: sha256(blob).toString("hex"), epoch, headerLen, sha256: sha256(plain).toString("hex") };
}

/** An FSA1 blob sealed with the symmetric case key `key` of `epoch`. */
export function sealV1(plain, { key, epoch, name = "file.bin", mediaType = "application/octet-stream", capturedAt = null }) {
  const contentKey = crypto.randomBytes(32);
  const prefix = crypto.randomBytes(7);
  const aad = Buffer.alloc(8);
  aad.write("FSA1", 0, "latin1");
  aad.writeUInt32BE(epoch, 4);
  const headerNonce = crypto.randomBytes(12);
  const c = crypto.createCipheriv("aes-256-gcm", key, headerNonce);
  c.setAAD(aad);
  const sealed = Buffer.concat([c.update(headerJson(plain, { name, mediaType, capturedAt }, contentKey, prefix)), c.final(), c.getAuthTag()]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(sealed.length);
  return finish(Buffer.concat([aad, headerNonce, len, sealed]), plain, contentKey, prefix, epoch, sealed.length);
}

/** An FSA2 blob sealed to the case public key `pub` of `epoch` (KEYMODEL.md). */
export function sealV2(plain, { pub, epoch, name = "file.bin", mediaType = "application/octet-stream", capturedAt = null }) {
  const contentKey = crypto.randomBytes(32);
  const prefix = crypto.randomBytes(7);
  const aad = Buffer.alloc(8);
  aad.write("FSA2", 0, "latin1");
  aad.writeUInt32BE(epoch, 4);
  const header = headerJson(plain, { name, mediaType, capturedAt }, contentKey, prefix);
  const { enc, sealed } = hpkeSeal(pub, ascii("fieldsync attachment v2"), aad, Buffer.from(header));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(sealed.length);
  return finish(Buffer.concat([aad, enc, len, sealed]), plain, contentKey, prefix, epoch, sealed.length);
}
