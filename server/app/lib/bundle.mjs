// The CLI's signed sync bundle, written in the browser ("Save a sync
// bundle"): a phone with no network at all hands its unsent work to a
// coordinator, who runs `fieldsync import FILE` and relays it on their
// next sync. Every change keeps its author's signature, so authorship
// survives the detour.
//
// Byte for byte as sync-core/src/bundle.rs (integers big-endian):
//
//   "FSB1"                  4  magic and version
//   manifest_len            8
//   manifest     manifest_len  JSON (BundleManifest, below)
//   blob 0, blob 1, …          the sealed attachments, in manifest order,
//                               each exactly `size` bytes
//   signature              64  Ed25519 by the exporting device over
//                               "fieldsync bundle v1\0" ‖ SHA-256(every
//                               byte before the signature)
//
// Manifest, keys in serde's order (so the bytes equal what the CLI would
// write for the same contents):
//   {"version":1, "device": device id (32 hex), "public_key": 64 hex,
//    "case_id": 32 hex, "case_name", "created_at": RFC 3339,
//    "docs": [{"id": report id, "changes": [{"bytes": base64, "sig": base64}]}],
//    "attachments": [{"blob": 64 hex, "report", "attachment_id", "size"}]}
//
// Nothing in a bundle is readable without the case private key where it
// is encrypted: attachments are the same ciphertext the server would get.
// Report contents are signed, not encrypted (as in a sync request): the
// app says so where it offers the download.
//
// The reader (the coordinator's CLI) checks the signature against the
// public key named in the manifest, that key against the case's device
// list, and every attachment against its blob id.

import { Sha256, toBase64, toHex, fromHex } from "./envelope.mjs";

const subtle = () => globalThis.crypto.subtle;
const encoder = new TextEncoder();
export const MAGIC = encoder.encode("FSB1");
export const BUNDLE_DOMAIN = encoder.encode("fieldsync bundle v1\0");
export const SIGNATURE_LEN = 64;
/** Bytes of an attachment read per step (bounded memory for large blobs). */
const READ_STEP = 1024 * 1024;

export class BundleError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "BundleError";
    this.code = code;
  }
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;

function check(ok, what) {
  if (!ok) throw new BundleError("invalid", `cannot write the bundle: ${what}`);
}

/** RFC 3339 in UTC, as chrono's to_rfc3339 writes it ("+00:00", not "Z"). */
export function rfc3339Utc(ms) {
  return new Date(ms).toISOString().replace(/Z$/, "+00:00");
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function u64be(n) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

/** {size, read(start, end)} of a blob entry: `source`, `bytes` or a Blob `blob`. */
function sourceOf(entry) {
  if (entry.source) return entry.source;
  if (entry.bytes instanceof Uint8Array) return { size: entry.bytes.length, read: async (s, e) => entry.bytes.subarray(s, e) };
  if (entry.blob && typeof entry.blob.slice === "function") {
    return { size: entry.blob.size, read: async (s, e) => new Uint8Array(await entry.blob.slice(s, e).arrayBuffer()) };
  }
  throw new TypeError("a bundle attachment needs `bytes`, `blob` or `source`");
}

/** The manifest JSON, byte for byte as serde_json writes BundleManifest. */
export function manifestJson({ deviceId, publicKeyHex, caseId, caseName, createdAt, reports, blobs }) {
  const manifest = {
    version: 1,
    device: deviceId,
    public_key: publicKeyHex,
    case_id: caseId,
    case_name: String(caseName),
    created_at: createdAt,
    docs: reports.map((r) => ({
      id: r.id,
      changes: r.changes.map((c) => ({ bytes: toBase64(c.bytes), sig: toBase64(c.sig ?? c.signature) })),
    })),
    attachments: blobs.map((b) => ({ blob: b.blobId, report: b.report, attachment_id: String(b.attachmentId), size: b.size })),
  };
  return encoder.encode(JSON.stringify(manifest));
}

/**
 * Writes a bundle as a list of parts (for `new Blob(parts)` in the
 * browser: no single buffer of the whole file). Returns {parts, size}.
 *
 * options:
 * - `identity`: identity.mjs DeviceIdentity ({publicKey, deviceId,
 *   sign(domain, message)}), or `privateKey` (Ed25519 CryptoKey) with
 *   `publicKey` (32 bytes);
 * - `caseId`, `caseName`, `createdAt` (RFC 3339; now by default);
 * - `reports`: [{id, changes: [{bytes, sig}]}], every change of each
 *   report with something the server has not acknowledged (the importer
 *   may never have seen the report);
 * - `blobs`: [{blobId, report, attachmentId, size?, bytes | blob | source}],
 *   the sealed attachments still waiting for upload.
 * Each attachment is checked against its blob id while it is copied; the
 * signature is checked against the public key before the bundle is
 * returned, so a signer that does not frame the domain is caught here.
 */
export async function writeBundleParts(options) {
  const { caseId, caseName = "", reports = [], blobs = [] } = options;
  const createdAt = options.createdAt ?? rfc3339Utc(Date.now());
  const publicKey = options.identity?.publicKey ?? options.publicKey;
  check(publicKey instanceof Uint8Array && publicKey.length === 32, "the device public key is not 32 bytes");
  const digestOfKey = new Uint8Array(await subtle().digest("SHA-256", publicKey));
  const deviceId = toHex(digestOfKey.subarray(0, 16));
  if (options.identity?.deviceId) check(options.identity.deviceId === deviceId, "the identity's device id does not match its public key");
  check(HEX32.test(caseId ?? ""), "the case id is not 32 lowercase hex characters");
  for (const r of reports) {
    check(HEX32.test(r.id ?? ""), "a report id is not 32 lowercase hex characters");
    check(Array.isArray(r.changes), `report ${r.id} has no list of changes`);
    for (const c of r.changes) {
      check(c.bytes instanceof Uint8Array && (c.sig ?? c.signature) instanceof Uint8Array, `a change of report ${r.id} is not bytes with a signature`);
    }
  }
  const entries = blobs.map((b) => {
    check(HEX64.test(b.blobId ?? ""), "an attachment's blob id is not 64 lowercase hex characters");
    check(HEX32.test(b.report ?? ""), `attachment ${b.blobId} names no valid report id`);
    const source = sourceOf(b);
    if (b.size != null) check(b.size === source.size, `attachment ${b.blobId} has ${source.size} bytes on this phone, ${b.size} expected`);
    return { ...b, size: source.size, source };
  });

  const json = manifestJson({ deviceId, publicKeyHex: toHex(publicKey), caseId, caseName, createdAt, reports, blobs: entries });
  const hash = new Sha256();
  const parts = [];
  const emit = (bytes) => {
    hash.update(bytes);
    parts.push(bytes);
  };
  emit(concat([MAGIC, u64be(json.length), json]));
  for (const entry of entries) {
    const blobHash = new Sha256();
    for (let at = 0; at < entry.size; at += READ_STEP) {
      const piece = await entry.source.read(at, Math.min(entry.size, at + READ_STEP));
      // A copy, so later changes to the caller's buffer do not change the bundle.
      const copy = piece.slice();
      blobHash.update(copy);
      emit(copy);
    }
    if (blobHash.hex() !== entry.blobId) {
      throw new BundleError(
        "local_damaged",
        `the sealed copy of attachment ${entry.blobId} on this phone is damaged (it no longer matches its id); the bundle was not written`,
      );
    }
  }
  const digest = hash.digest();
  let signature;
  if (options.identity) {
    signature = await options.identity.sign(BUNDLE_DOMAIN, digest);
  } else {
    check(options.privateKey, "no identity or private key to sign with");
    signature = new Uint8Array(await subtle().sign({ name: "Ed25519" }, options.privateKey, concat([BUNDLE_DOMAIN, digest])));
  }
  signature = new Uint8Array(signature);
  const verifyKey = await subtle().importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  const ok = signature.length === SIGNATURE_LEN && (await subtle().verify({ name: "Ed25519" }, verifyKey, signature, concat([BUNDLE_DOMAIN, digest])));
  if (!ok) throw new BundleError("signature", "the bundle's signature does not verify with this device's key; the device key is damaged");
  parts.push(signature);
  return { parts, size: parts.reduce((n, p) => n + p.length, 0), manifest: json };
}

/** The whole bundle as one Uint8Array (see writeBundleParts for the options). */
export async function writeBundle(options) {
  const { parts } = await writeBundleParts(options);
  return concat(parts);
}

/**
 * Reads a bundle's structure back (for tests and a "what is in it" view):
 * {manifest, blobs: [Uint8Array], signature, signedDigest}. Checks
 * lengths and blob ids, not the signature (verifyBundle does).
 */
export function readBundle(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12 + SIGNATURE_LEN || !MAGIC.every((b, i) => bytes[i] === b)) throw new BundleError("invalid", "this is not a fieldsync bundle");
  const len = Number(view.getBigUint64(4));
  if (12 + len + SIGNATURE_LEN > bytes.length) throw new BundleError("invalid", "the bundle's manifest runs past its end");
  const manifest = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(12, 12 + len)));
  let at = 12 + len;
  const blobs = [];
  for (const a of manifest.attachments) {
    if (at + a.size + SIGNATURE_LEN > bytes.length) throw new BundleError("invalid", "the bundle ends inside an attachment");
    const blob = bytes.subarray(at, at + a.size);
    if (new Sha256().update(blob).hex() !== a.blob) throw new BundleError("invalid", `attachment ${a.blob} does not match its id`);
    blobs.push(blob);
    at += a.size;
  }
  if (at + SIGNATURE_LEN !== bytes.length) throw new BundleError("invalid", "the bundle's length does not match its manifest");
  return {
    manifest,
    blobs,
    signature: bytes.subarray(at),
    signedDigest: new Sha256().update(bytes.subarray(0, at)).digest(),
  };
}

/** Whether a bundle's signature verifies under the public key its manifest names. */
export async function verifyBundle(bytes) {
  const { manifest, signature, signedDigest } = readBundle(bytes);
  const key = await subtle().importKey("raw", fromHex(manifest.public_key), { name: "Ed25519" }, false, ["verify"]);
  return subtle().verify({ name: "Ed25519" }, key, signature, concat([BUNDLE_DOMAIN, signedDigest]));
}
