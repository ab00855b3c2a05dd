// The app's attachment sealing (server/app/lib/envelope.mjs), in node:
// - with the fixed randomness of sync-core/tests/vectors/envelope-v2.json
//   (written by the Rust side), it must produce the vector's blob byte for
//   byte, and its blob id;
// - fresh seals of many sizes must open with the review page's open
//   (server/web/crypto.js), chunk boundaries included;
// - sealing streams: parts go to onPart, each bounded, none held back.
import { test } from "node:test";
import assert from "node:assert/strict";
import nodeCrypto from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

import { CHUNK, PART_CHUNKS, TAG, EnvelopeError, fromHex, headerJson, joinParts, sealFile, toHex } from "../../../server/app/lib/envelope.mjs";
import { BlobDecryptor, CaseKeys, CryptoError, importX25519Private } from "../../../server/web/crypto.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const vectors = JSON.parse(readFileSync(path.join(repo, "sync-core/tests/vectors/envelope-v2.json"), "utf8"));

const sha256hex = (bytes) => nodeCrypto.createHash("sha256").update(bytes).digest("hex");
const pattern = (n) => Uint8Array.from({ length: n }, (_, i) => (7 * i + 3) % 256);

function plaintextOf(c) {
  if (typeof c.plaintext === "string") return fromHex(c.plaintext);
  return new Uint8Array(c.plaintext.len).fill(parseInt(c.plaintext.repeat, 16));
}

async function openWithPage(blob, epoch, privateKey, { blobId, pieces = 5000 } = {}) {
  const keys = new CaseKeys().add({ version: 2, epoch, key: privateKey });
  const d = new BlobDecryptor(keys, { blobId });
  const out = [];
  for (let at = 0; at < blob.length; at += pieces) out.push(...(await d.push(blob.subarray(at, at + pieces))));
  out.push(...(await d.finish()));
  return { meta: d.meta, plain: Buffer.concat(out) };
}

test("sealing with each envelope-v2.json vector's randomness gives its blob and blob id byte for byte", async () => {
  assert.ok(vectors.cases.length >= 3);
  for (const c of vectors.cases) {
    const header = JSON.parse(c.header_json);
    const plain = plaintextOf(c);
    const random = {
      contentKey: fromHex(c.content_key),
      noncePrefix: fromHex(c.nonce_prefix),
      ephemeralPrivateKey: fromHex(c.ephemeral_private_key),
    };
    // The header JSON alone first: the clearest failure if serde's bytes differ.
    assert.equal(
      new TextDecoder().decode(headerJson({ contentKey: random.contentKey, noncePrefix: random.noncePrefix, meta: header })),
      c.header_json,
      c.description,
    );
    const sealed = await sealFile(new Blob([plain]), { publicKey: fromHex(c.case_public_key), epoch: c.epoch }, {
      name: header.name,
      mediaType: header.media_type,
      capturedAt: header.captured_at,
      random,
    });
    const blob = joinParts(sealed);
    assert.equal(toHex(blob.subarray(8, 40)), c.enc, `${c.description}: enc`);
    assert.equal(toHex(blob), c.blob, `${c.description}: blob`);
    assert.equal(sealed.blobId, c.blob_id, `${c.description}: blob id`);
    assert.equal(sealed.blobId, sha256hex(blob));
    assert.equal(sealed.blobLen, blob.length);
    assert.deepEqual(sealed.meta, header_meta(header));
    assert.deepEqual(sealed.head, blob.subarray(0, sealed.head.length));
    // The head ends where the sealed header does.
    assert.equal(sealed.head.length, 44 + new DataView(blob.buffer, blob.byteOffset).getUint32(40));
  }
});

function header_meta(h) {
  return { name: h.name, media_type: h.media_type, size: h.size, sha256: h.sha256, captured_at: h.captured_at };
}

test("a fresh seal opens with the review page's open, at every chunk boundary", async () => {
  const c = vectors.cases[0];
  const priv = fromHex(c.case_private_key);
  const { publicKey } = await importX25519Private(priv);
  assert.equal(toHex(publicKey), c.case_public_key);
  const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, PART_CHUNKS * CHUNK, PART_CHUNKS * CHUNK + 5, 3 * PART_CHUNKS * CHUNK - 1];
  for (const size of sizes) {
    const plain = pattern(size);
    const parts = [];
    const sealed = await sealFile(new Blob([plain]), { publicKey, epoch: 7 }, {
      name: "Фото «площадь».jpg",
      mediaType: "image/jpeg",
      capturedAt: "2026-11-30T10:00:00+06:00",
      onPart: async (index, bytes) => {
        assert.equal(index, parts.length, "parts arrive in order");
        parts.push(bytes.slice());
      },
    });
    assert.equal(sealed.parts, null, "with onPart the parts are not kept");
    const blob = Buffer.concat(parts);
    assert.equal(blob.length, sealed.blobLen);
    assert.deepEqual(sealed.partSizes, parts.map((p) => p.length));
    assert.equal(sha256hex(blob), sealed.blobId);
    const chunks = Math.max(1, Math.ceil(size / CHUNK));
    assert.equal(blob.length, sealed.head.length + size + chunks * TAG, `size ${size}`);
    // Every part but the last is PART_CHUNKS sealed chunks (part 0 also has the head).
    for (let i = 0; i < parts.length - 1; i++) {
      assert.equal(parts[i].length, (i === 0 ? sealed.head.length : 0) + PART_CHUNKS * (CHUNK + TAG));
    }
    const opened = await openWithPage(blob, 7, priv, { blobId: sealed.blobId });
    assert.deepEqual(new Uint8Array(opened.plain), plain, `size ${size}`);
    assert.equal(opened.meta.name, "Фото «площадь».jpg");
    assert.equal(opened.meta.size, size);
    assert.equal(opened.meta.sha256, sha256hex(plain));
  }
});

test("a Uint8Array input seals like a Blob; two seals of one file differ (fresh keys and ephemeral key)", async () => {
  const { publicKey } = await importX25519Private(fromHex(vectors.cases[0].case_private_key));
  const plain = pattern(1000);
  const a = await sealFile(plain, { publicKey, epoch: 1 }, { name: "a.bin" });
  const b = await sealFile(plain, { publicKey, epoch: 1 }, { name: "a.bin" });
  assert.notEqual(a.blobId, b.blobId);
  assert.notDeepEqual(a.head.subarray(8, 40), b.head.subarray(8, 40));
  const opened = await openWithPage(joinParts(a), 1, fromHex(vectors.cases[0].case_private_key));
  assert.deepEqual(new Uint8Array(opened.plain), plain);
});

test("a sealed chunk altered, or a blob cut at a chunk boundary, does not open", async () => {
  const priv = fromHex(vectors.cases[0].case_private_key);
  const { publicKey } = await importX25519Private(priv);
  const sealed = await sealFile(pattern(3 * CHUNK), { publicKey, epoch: 1 }, {});
  const blob = joinParts(sealed);
  const flipped = blob.slice();
  flipped[sealed.head.length + CHUNK + 20] ^= 1;
  await assert.rejects(openWithPage(flipped, 1, priv), CryptoError);
  const cut = blob.slice(0, sealed.head.length + 2 * (CHUNK + TAG));
  await assert.rejects(openWithPage(cut, 1, priv), CryptoError);
});

test("a wrong-sized or low-order case public key is refused with a code, before anything is sealed", async () => {
  await assert.rejects(sealFile(pattern(10), { publicKey: new Uint8Array(31), epoch: 1 }, {}), (e) => e instanceof EnvelopeError && e.code === "bad_key");
  // The all-zero point has small order: its shared secret is all zeros.
  await assert.rejects(sealFile(pattern(10), { publicKey: new Uint8Array(32), epoch: 1 }, {}), (e) => e instanceof EnvelopeError && e.code === "bad_key");
  await assert.rejects(sealFile(pattern(10), { publicKey: new Uint8Array(32).fill(9), epoch: -1 }, {}), (e) => e instanceof EnvelopeError && e.code === "bad_key");
});

test("a file that changes between the hashing read and the sealing read is refused ('changed')", async () => {
  const { publicKey } = await importX25519Private(fromHex(vectors.cases[0].case_private_key));
  const plain = pattern(2 * CHUNK);
  let reads = 0;
  // A Blob-like whose second pass sees other bytes, as a recording still being written.
  const shifty = {
    size: plain.length,
    slice(start, end) {
      reads += 1;
      const bytes = plain.slice(start, end);
      if (reads > 1) bytes[0] ^= 0xff;
      return new Blob([bytes]);
    },
  };
  await assert.rejects(sealFile(shifty, { publicKey, epoch: 1 }, {}), (e) => e instanceof EnvelopeError && e.code === "changed");
});
