// Envelope v2 ("FSA2", KEYMODEL.md) and v2 share codes in the page's
// crypto (server/web/crypto.js), in node. Two sources of sealed blobs:
// - sync-core/tests/vectors/envelope-v2.json, written by the Rust side
//   (the `hpke` crate), the same file its own tests check;
// - blobs sealed with node:crypto (X25519 and HMAC-SHA256, not WebCrypto)
//   from the documented layout by ../envelope-node.mjs, so tampering can
//   be tried on any size and any epoch.
import { test } from "node:test";
import assert from "node:assert/strict";
import nodeCrypto from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

import {
  BlobDecryptor,
  CaseKeys,
  CryptoError,
  fromBase64,
  fromHex,
  importX25519Private,
  openHeader,
  parseShareCode,
  parseShareCodes,
  toHex,
} from "../../../server/web/crypto.js";
import { caseKeyPair, hpkeSeal, sealV2 as sealV2Node, shareCode } from "../envelope-node.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const vectorsDir = path.join(here, "../vectors");
const RUST_V2 = path.join(repo, "sync-core/tests/vectors/envelope-v2.json");
const cli = JSON.parse(readFileSync(path.join(vectorsDir, "cli-vectors.json"), "utf8"));

const sha256 = (bytes) => nodeCrypto.createHash("sha256").update(bytes).digest();
const pattern = (n) => Buffer.from(Uint8Array.from({ length: n }, (_, i) => (7 * i + 3) % 256));

/** An FSA2 blob from envelope-node.mjs, as fresh Uint8Arrays (a Buffer's slice() is a view). */
function sealV2(plain, options) {
  const s = sealV2Node(plain, { name: "photo.jpg", mediaType: "image/jpeg", capturedAt: "2026-11-30T10:00:00+06:00", ...options });
  return { ...s, blob: new Uint8Array(s.blob), head: new Uint8Array(s.head) };
}

async function decryptInPieces(blob, keys, size, options = {}) {
  const d = new BlobDecryptor(keys, options);
  const parts = [];
  for (let at = 0; at < blob.length; at += size) parts.push(...(await d.push(blob.subarray(at, at + size))));
  parts.push(...(await d.finish()));
  return { meta: d.meta, plain: Buffer.concat(parts) };
}

// A coordinator's link as the CLI prints it once a case has moved to v2:
// the old symmetric keys (epochs 1 and 2, from the CLI vectors) and the
// case private key of epoch 3.
const pair3 = caseKeyPair();
const linkCodes = [...cli.share_codes, shareCode(2, 3, pair3.priv)];
const linkKeys = () => parseShareCodes(linkCodes.join(","));

// ------------------------------------------------------------------- tests

test("a link carries v1 and v2 share codes side by side; each code's version says which kind of key it is", async () => {
  const keys = linkKeys();
  assert.ok(keys instanceof CaseKeys);
  assert.deepEqual([...keys.v1.keys()], [1, 2]);
  assert.deepEqual([...keys.v2.keys()], [3]);
  assert.equal(keys.size, 3);
  assert.deepEqual(parseShareCode(shareCode(2, 3, pair3.priv)), { version: 2, epoch: 3, key: new Uint8Array(pair3.priv) });
  const recipient = await keys.recipient(3);
  assert.deepEqual(Buffer.from(recipient.publicKey), pair3.pub);
  assert.equal(await keys.recipient(1), null, "a v1 key is not an X25519 private key");
  // Same length as v1, same checksum rule, other versions refused.
  assert.throws(() => parseShareCode(shareCode(3, 3, pair3.priv)), /unknown version 3/);
  assert.throws(() => parseShareCode(shareCode(0, 3, pair3.priv)), /unknown version 0/);
  const code = shareCode(2, 3, pair3.priv);
  for (let i = 0; i < code.length; i++) {
    const typo = code.slice(0, i) + (code[i] === "A" ? "B" : "A") + code.slice(i + 1);
    assert.throws(() => parseShareCode(typo), CryptoError, `typo at ${i} accepted`);
  }
  // 41 bytes are 55 base64 characters whose last 2 bits are unused: a typo
  // there must be refused too (the Rust decoder refuses it), not read as
  // the same key.
  const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const last = B64URL.indexOf(code[code.length - 1]);
  for (const bits of [1, 2, 3]) {
    const loose = code.slice(0, -1) + B64URL[last ^ bits];
    assert.deepEqual(Buffer.from(loose, "base64url"), Buffer.from(code, "base64url"), "same bytes, other text");
    assert.throws(() => parseShareCode(loose), /not valid base64url/, `unused bits ${bits} accepted`);
  }
  // One epoch of one version with two different keys: the link is wrong,
  // and guessing which key is meant would hide it.
  assert.throws(() => parseShareCodes(`${code},${shareCode(2, 3, nodeCrypto.randomBytes(32))}`), /two different case keys for epoch 3/);
  assert.equal(parseShareCodes(`${code},${code}`).size, 1);
  // The same epoch number as a v1 and a v2 key are two keys, not a conflict.
  assert.equal(parseShareCodes(`${code},${shareCode(1, 3, nodeCrypto.randomBytes(32))}`).size, 2);
  assert.throws(() => parseShareCodes(Array(300).fill(code).join(",")), /too many case key codes/);
});

test("FSA2 blobs sealed with node's X25519 and HKDF open with the page's WebCrypto HPKE, chunk by chunk, in pieces of any size", async () => {
  const keys = linkKeys();
  for (const n of [0, 1, 65535, 65536, 65537, 3 * 65536 + 5]) {
    const plain = pattern(n);
    const { blob, head, id } = sealV2(plain, { ...pair3, epoch: 3, name: `file-${n}.bin` });
    const opened = await openHeader(head, keys);
    assert.equal(opened.version, 2);
    assert.equal(opened.epoch, 3);
    assert.equal(opened.headLen, head.length);
    assert.equal(opened.meta.name, `file-${n}.bin`);
    assert.equal(opened.meta.size, n);
    for (const size of [1000, 44, 65552, blob.length || 1]) {
      const { plain: got, meta } = await decryptInPieces(blob, keys, size, { blobId: id, expectedHead: head });
      assert.equal(meta.sha256, sha256(plain).toString("hex"));
      assert.ok(got.equals(plain), `${n} bytes in pieces of ${size}`);
    }
  }
});

test("one link opens old v1 attachments and new v2 attachments alike", async () => {
  const keys = linkKeys();
  for (const v of cli.vectors) {
    const blob = new Uint8Array(readFileSync(path.join(vectorsDir, v.file)));
    const { plain } = await decryptInPieces(blob, keys, 70001, { blobId: v.blob, expectedHead: fromBase64(v.header) });
    assert.ok(plain.equals(pattern(v.plaintext_len)), v.name);
    assert.equal((await openHeader(fromBase64(v.header), keys)).version, 1);
  }
  const { blob, id } = sealV2(pattern(70000), { ...pair3, epoch: 3 });
  assert.ok((await decryptInPieces(blob, keys, 70001, { blobId: id })).plain.equals(pattern(70000)));
});

test("a tampered enc, epoch, header length or sealed header of an FSA2 blob is refused with an error that says what failed", async () => {
  const keys = linkKeys();
  const { blob, head, headerLen } = sealV2(pattern(100000), { ...pair3, epoch: 3 });
  const refuse = (bytes, message, k = keys, options = {}) => assert.rejects(decryptInPieces(bytes, k, 8192, options), message);
  const altered = (at, change = (b) => b ^ 1) => {
    const out = blob.slice();
    out[at] = change(out[at]);
    return out;
  };

  // enc (bytes 8..40): another ephemeral key gives another shared secret.
  await refuse(altered(8), /header does not open with the case private key of epoch 3/);
  await refuse(altered(39), /header does not open with the case private key of epoch 3/);
  // The sealed header itself, first and last byte (its tag).
  await refuse(altered(44), /header does not open with the case private key of epoch 3/);
  await refuse(altered(44 + headerLen - 1), /header does not open with the case private key of epoch 3/);
  // The magic is in the associated data too, but first it is read as the version.
  await refuse(altered(3, () => "3".charCodeAt(0)), /not a fieldsync attachment this page can read \(FSA3\)/);
  // header_len: too long for the blob's first chunk, or impossible.
  await refuse(altered(43, (b) => b + 1), /does not open|final chunk/);
  const huge = blob.slice();
  huge.set([0x7f, 0xff, 0xff, 0xff], 40);
  await assert.rejects(new BlobDecryptor(keys).push(huge), /impossible length/);
  // An epoch the link does not carry: the message says how to get it.
  const epoch9 = blob.slice();
  epoch9[7] = 9;
  await refuse(epoch9, /sealed to case key epoch 9, which this login link does not carry.*fieldsync web-login/);
  // An epoch the link carries with the very same private key: only the
  // epoch in the associated data differs, and that alone is refused.
  const both = parseShareCodes([...linkCodes, shareCode(2, 4, pair3.priv)].join(","));
  const epoch4 = blob.slice();
  epoch4[7] = 4;
  await refuse(epoch4, /header does not open with the case private key of epoch 4/, both);
  assert.equal((await decryptInPieces(blob, both, 8192)).plain.length, 100000);
  // A link with only a v1 key of that epoch cannot open a v2 header.
  const v1Only = parseShareCodes(shareCode(1, 3, nodeCrypto.randomBytes(32)));
  await refuse(blob, /sealed to case key epoch 3, which this login link does not carry/, v1Only);
  // The right epoch with another case's private key.
  const other = parseShareCodes(shareCode(2, 3, caseKeyPair().priv));
  await refuse(blob, /header does not open with the case private key of epoch 3/, other);
  // Chunks and the head the report carries are checked exactly as in v1.
  await refuse(altered(head.length + 5), /chunk 0 does not authenticate/);
  await refuse(blob.slice(0, blob.length - 1), /final chunk does not authenticate/);
  const otherHead = sealV2(pattern(10), { ...pair3, epoch: 3 }).head;
  await refuse(blob, /header differs/, keys, { expectedHead: otherHead });
  await assert.rejects(openHeader(head.subarray(0, 60), keys), /cut short/);
  await assert.rejects(openHeader(head.subarray(0, 20), keys), /cut short/);
});

// ------------------------------------------------ the Rust side's vectors

/** A vector's plaintext: hex, or {"repeat": "<hex byte>", "len": N} (KEYMODEL.md). */
function plaintextOf(p) {
  if (typeof p === "string") return Buffer.from(fromHex(p));
  assert.ok(p && /^[0-9a-fA-F]{2}$/.test(p.repeat) && Number.isSafeInteger(p.len), `unreadable plaintext field ${JSON.stringify(p)}`);
  return Buffer.alloc(p.len, parseInt(p.repeat, 16));
}

test("the Rust envelope-v2 vectors (sync-core/tests/vectors/envelope-v2.json) open in the page, chunk by chunk", async () => {
  const file = JSON.parse(readFileSync(RUST_V2, "utf8"));
  assert.ok(Array.isArray(file.cases) && file.cases.length >= 2, "the file lists its cases under \"cases\"");
  const sizes = [];
  for (const c of file.cases) {
    const plain = plaintextOf(c.plaintext);
    sizes.push(plain.length);
    const parsed = parseShareCode(c.share_code);
    assert.deepEqual(parsed, { version: 2, epoch: c.epoch, key: fromHex(c.case_private_key) });
    const recipient = await importX25519Private(fromHex(c.case_private_key));
    assert.equal(toHex(recipient.publicKey), c.case_public_key);
    assert.equal(toHex((await importX25519Private(fromHex(c.ephemeral_private_key))).publicKey), c.enc);

    const blob = fromHex(c.blob);
    assert.equal(sha256(blob).toString("hex"), c.blob_id);
    assert.equal(Buffer.from(blob.subarray(0, 4)).toString("latin1"), "FSA2");
    assert.equal(Buffer.from(blob).readUInt32BE(4), c.epoch);
    assert.equal(toHex(blob.subarray(8, 40)), c.enc);

    const keys = parseShareCodes(c.share_code);
    const opened = await openHeader(blob, keys);
    const header = JSON.parse(c.header_json);
    assert.equal(opened.meta.name, header.name);
    assert.equal(opened.meta.media_type, header.media_type);
    assert.equal(opened.meta.size, plain.length);
    assert.equal(opened.meta.sha256, sha256(plain).toString("hex"));
    assert.equal(toHex(opened.noncePrefix), c.nonce_prefix);
    assert.equal(toHex(fromBase64(header.content_key)), c.content_key);
    const head = blob.subarray(0, opened.headLen);
    for (const size of [1, 4096, 65552, blob.length]) {
      if (size === 1 && blob.length > 70000) continue; // byte by byte is slow and adds nothing here
      const { plain: got } = await decryptInPieces(blob, keys, size, { blobId: c.blob_id, expectedHead: head });
      assert.ok(got.equals(plain), `case of ${plain.length} bytes in pieces of ${size}`);
    }
    // node's seal (envelope-node.mjs, which the other tests and the mock
    // server use) makes the Rust side's head byte for byte.
    const headerLen = Buffer.from(blob).readUInt32BE(40);
    const again = hpkeSeal(fromHex(c.case_public_key), Buffer.from("fieldsync attachment v2"), Buffer.from(blob.subarray(0, 8)), Buffer.from(c.header_json), Buffer.from(fromHex(c.ephemeral_private_key)));
    assert.equal(toHex(again.enc), c.enc);
    assert.equal(toHex(again.sealed), toHex(blob.subarray(44, 44 + headerLen)));
    assert.equal(opened.headLen, 44 + headerLen);
    // One flipped bit of enc, and the header no longer opens.
    const tampered = blob.slice();
    tampered[20] ^= 0x80;
    await assert.rejects(decryptInPieces(tampered, keys, 4096), /header does not open with the case private key/);
  }
  assert.ok(sizes.includes(0), "the vectors include an empty plaintext");
  assert.ok(sizes.some((n) => n > 65536), "the vectors include a plaintext of more than one chunk");
});
