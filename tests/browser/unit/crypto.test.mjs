// Unit tests of server/web/crypto.js, the page's key and byte handling, in
// node (node --test tests/browser/unit/). Vectors come from the Rust side:
// sync-core/tests/vectors/envelope-v1.json (seal_with) and
// tests/browser/vectors/ (made by the fieldsync CLI, see make-cli-vectors.sh).
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
  Sha256,
  changeMessage,
  decryptStream,
  fromBase64,
  fromHex,
  importSessionKey,
  openHeader,
  parseLoginFragment,
  parseLoginToken,
  parseShareCode,
  parseShareCodes,
  signChange,
  toBase64,
  toBase64Url,
  toHex,
  verifyLoginToken,
} from "../../../server/web/crypto.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const vectorsDir = path.join(here, "../vectors");
const cli = JSON.parse(readFileSync(path.join(vectorsDir, "cli-vectors.json"), "utf8"));
const rust = JSON.parse(readFileSync(path.join(repo, "sync-core/tests/vectors/envelope-v1.json"), "utf8"));

const sha256Hex = (bytes) => nodeCrypto.createHash("sha256").update(bytes).digest("hex");
const pattern = (n) => Uint8Array.from({ length: n }, (_, i) => (7 * i + 3) % 256);
const blobOf = (v) => new Uint8Array(readFileSync(path.join(vectorsDir, v.file)));
const cliKeys = () => parseShareCodes(cli.share_codes.join(","));

/** Feeds `blob` to a BlobDecryptor in pieces of `size` bytes; returns the plaintext. */
async function decryptInPieces(blob, keys, size, options = {}) {
  const d = new BlobDecryptor(keys, options);
  const parts = [];
  for (let at = 0; at < blob.length; at += size) parts.push(...(await d.push(blob.subarray(at, at + size))));
  parts.push(...(await d.finish()));
  return { meta: d.meta, plain: Buffer.concat(parts) };
}

function shareCode(epoch, key) {
  const raw = Buffer.alloc(37);
  raw[0] = 1;
  raw.writeUInt32BE(epoch, 1);
  Buffer.from(key).copy(raw, 5);
  const check = nodeCrypto.createHash("sha256").update(raw).digest().subarray(0, 4);
  return Buffer.concat([raw, check]).toString("base64url");
}

function nodeKeyFromSeed(seed) {
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(seed)]);
  return nodeCrypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" });
}

function publicKeyOf(privateKey) {
  const spki = nodeCrypto.createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return new Uint8Array(spki.subarray(spki.length - 32));
}

test("base64 and hex round-trip every length, standard and url-safe", () => {
  for (let n = 0; n < 70; n++) {
    const bytes = nodeCrypto.randomBytes(n);
    assert.equal(toBase64(bytes), bytes.toString("base64"));
    assert.equal(toBase64Url(bytes), bytes.toString("base64url"));
    assert.deepEqual(Buffer.from(fromBase64(bytes.toString("base64"))), bytes);
    assert.deepEqual(Buffer.from(fromBase64(bytes.toString("base64url"))), bytes);
    assert.deepEqual(Buffer.from(fromHex(toHex(bytes))), bytes);
  }
  assert.throws(() => fromBase64("ab!d"), CryptoError);
  assert.throws(() => fromBase64("abcde"), CryptoError);
  assert.throws(() => fromHex("abc"), CryptoError);
});

test("incremental SHA-256 equals node's for every split", () => {
  for (let n = 0; n < 300; n += 7) {
    const bytes = nodeCrypto.randomBytes(n);
    for (const step of [1, 3, 63, 64, 65, 1000]) {
      const h = new Sha256();
      for (let at = 0; at < n; at += step) h.update(bytes.subarray(at, at + step));
      assert.equal(h.hex(), sha256Hex(bytes), `n=${n} step=${step}`);
    }
  }
  const big = nodeCrypto.randomBytes(3 * 1024 * 1024 + 17);
  assert.equal(new Sha256().update(big).hex(), sha256Hex(big));
});

test("share codes from the CLI decode to their epochs; spaces are fine; every typo is refused", () => {
  const keys = cliKeys();
  assert.deepEqual([...keys.v1.keys()], [1, 2]);
  assert.equal(keys.v2.size, 0);
  for (const key of keys.v1.values()) assert.equal(key.length, 32);
  const code = cli.share_codes[1];
  const spaced = code.replace(/(.{6})/g, "$1 ");
  assert.deepEqual(parseShareCode(spaced), parseShareCode(code));
  for (let i = 0; i < code.length; i++) {
    const typo = code.slice(0, i) + (code[i] === "A" ? "B" : "A") + code.slice(i + 1);
    assert.throws(() => parseShareCode(typo), CryptoError, `typo at ${i} accepted`);
  }
  assert.throws(() => parseShareCode(code.slice(0, 20)), /bytes instead of 41/);
  assert.throws(() => parseShareCode("not a code!"), CryptoError);
  // A code made here from raw bytes, as case_key.rs makes it.
  const raw = nodeCrypto.randomBytes(32);
  assert.deepEqual(parseShareCode(shareCode(7, raw)), { version: 1, epoch: 7, key: new Uint8Array(raw) });
});

test("the Rust seal_with vector decrypts with bare WebCrypto, in pieces of any size", async () => {
  const v = rust[0];
  const keys = new CaseKeys().add({ version: 1, epoch: v.key_epoch, key: fromHex(v.case_key) });
  const blob = fromHex(v.ciphertext);
  assert.equal(sha256Hex(blob), v.blob_sha256);
  for (const size of [1, 5, 24, 100, blob.length]) {
    const { plain } = await decryptInPieces(blob, keys, size, { blobId: v.blob_sha256 });
    assert.equal(plain.toString("hex"), v.plaintext);
  }
  // The two-chunk vector ships only the blob's start: its header opens.
  const two = rust[1];
  const head = await openHeader(fromHex(two.ciphertext), keys);
  assert.equal(head.meta.size, two.plaintext_len);
  assert.deepEqual(Buffer.from(head.noncePrefix).toString("hex"), two.nonce_prefix);
});

test("attachments sealed by `fieldsync record --attach` decrypt to their plaintext", async () => {
  const keys = cliKeys();
  for (const v of cli.vectors) {
    const blob = blobOf(v);
    assert.equal(blob.length, v.size);
    const head = fromBase64(v.header);
    const opened = await openHeader(head, keys);
    assert.equal(opened.meta.name, v.name);
    assert.equal(opened.meta.size, v.plaintext_len);
    assert.equal(opened.meta.sha256, v.plaintext_sha256);
    for (const size of [1000, 65552, 70001, blob.length]) {
      const { plain, meta } = await decryptInPieces(blob, keys, size, { blobId: v.blob, expectedHead: head });
      assert.equal(meta.name, v.name);
      assert.deepEqual(new Uint8Array(plain), pattern(v.plaintext_len), `${v.name} in pieces of ${size}`);
    }
  }
  // Through a ReadableStream, as fetch() gives it.
  const v = cli.vectors[2];
  const blob = blobOf(v);
  const stream = new ReadableStream({
    start(c) {
      for (let at = 0; at < blob.length; at += 4096) c.enqueue(blob.slice(at, at + 4096));
      c.close();
    },
  });
  let seen = 0;
  const { parts } = await decryptStream(stream, keys, { blobId: v.blob }, (n) => (seen = n));
  assert.equal(seen, blob.length);
  assert.equal(sha256Hex(Buffer.concat(parts)), v.plaintext_sha256);
});

test("altered, truncated, reordered, swapped or wrongly keyed blobs are refused", async () => {
  const keys = cliKeys();
  const v = cli.vectors[2];
  const blob = blobOf(v);
  const headLen = (await openHeader(blob, keys)).headLen;
  const C = 65536 + 16;
  const refuse = async (bytes, pattern, options = {}) =>
    assert.rejects(decryptInPieces(bytes, keys, 8192, options), pattern);

  const flipped = blob.slice();
  flipped[headLen + 10] ^= 1;
  await refuse(flipped, /chunk 0 does not authenticate/);
  await refuse(blob.slice(0, headLen + 2 * C), /final chunk does not authenticate/);
  await refuse(blob.slice(0, headLen + 5), /without its final chunk/);
  await refuse(blob.slice(0, 30), /truncated/);
  const swapped = Buffer.concat([blob.subarray(0, headLen), blob.subarray(headLen + C, headLen + 2 * C), blob.subarray(headLen, headLen + C), blob.subarray(headLen + 2 * C)]);
  await refuse(new Uint8Array(swapped), /chunk 0 does not authenticate/);
  const header = blob.slice();
  header[headLen - 3] ^= 1;
  await refuse(header, /header does not open/);
  // A blob that decrypts but is not the one the report names.
  await refuse(blob, /does not hash to the id/, { blobId: "00".repeat(32) });
  // A valid blob whose head differs from the report's header (another attachment).
  await refuse(blob, /header differs/, { expectedHead: fromBase64(cli.vectors[0].header) });
  const wrong = new CaseKeys().add({ version: 1, epoch: 2, key: new Uint8Array(32) });
  await assert.rejects(decryptInPieces(blob, wrong, 8192), /does not open with the case key/);
  await assert.rejects(decryptInPieces(blob, new CaseKeys().add({ version: 1, epoch: 1, key: keys.symmetric(1) }), 8192), /epoch 2 \(an old, v1 key\), which this login link does not carry/);
  const hostile = blob.slice();
  hostile.set([0x7f, 0xff, 0xff, 0xff], 20);
  await assert.rejects(new BlobDecryptor(keys).push(hostile), /impossible length/);
});

function makeToken({ deviceSeed, sessionPub, loginUntil = 2000000000, sessionUntil = 2000003600 }) {
  const body = Buffer.alloc(100);
  body.write("FSW1", 0, "latin1");
  Buffer.from(publicKeyOf(nodeKeyFromSeed(deviceSeed))).copy(body, 4);
  Buffer.from(sessionPub).copy(body, 36);
  body.writeBigUInt64BE(BigInt(loginUntil), 68);
  body.writeBigUInt64BE(BigInt(sessionUntil), 76);
  nodeCrypto.randomBytes(16).copy(body, 84);
  const sig = nodeCrypto.sign(null, Buffer.concat([Buffer.from("fieldsync web-login v1\0", "latin1"), body]), nodeKeyFromSeed(deviceSeed));
  return Buffer.concat([body, sig]).toString("base64url");
}

test("login fragments and tokens parse; a forged or cut token is caught", async () => {
  const sessionSeed = nodeCrypto.randomBytes(32);
  const sessionPub = publicKeyOf(nodeKeyFromSeed(sessionSeed));
  const t = makeToken({ deviceSeed: nodeCrypto.randomBytes(32), sessionPub, loginUntil: 1700000000, sessionUntil: 1700028800 });
  const codes = cli.share_codes.join(",");
  const fragment = `#t=${t}&k=${codes}&s=${sessionSeed.toString("base64url")}`;
  const parsed = parseLoginFragment(fragment);
  assert.deepEqual(parsed, { t, k: codes, s: sessionSeed.toString("base64url") });
  assert.throws(() => parseLoginFragment(`#t=${t}&k=${codes}`), /incomplete/);
  // A device without case keys prints an empty k: the login still works.
  assert.equal(parseLoginFragment(`#t=${t}&k=&s=abc`).k, "");
  assert.equal(parseShareCodes("").size, 0);

  const token = parseLoginToken(t);
  assert.deepEqual(token.sessionPublicKey, sessionPub);
  assert.equal(token.loginUntil, 1700000000);
  assert.equal(token.sessionUntil, 1700028800);
  assert.equal(token.signature.length, 64);
  assert.equal(await verifyLoginToken(token), true);

  const forged = Buffer.from(t, "base64url");
  forged[70] ^= 1;
  assert.equal(await verifyLoginToken(parseLoginToken(forged.toString("base64url"))), false);
  assert.throws(() => parseLoginToken(t.slice(0, 100)), /bytes instead of 164/);
  const magic = Buffer.from(t, "base64url");
  magic[0] = 0x58;
  assert.throws(() => parseLoginToken(magic.toString("base64url")), /bad magic/);
});

test("Ed25519 in WebCrypto matches RFC 8032 test 1", async () => {
  const seed = fromHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
  const pub = fromHex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  const key = await importSessionKey(seed, pub);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, new Uint8Array(0)));
  assert.equal(
    toHex(sig),
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  );
});

test("a change signature is Ed25519 over the change domain and hash, identical to node's and verifiable", async () => {
  const seed = nodeCrypto.randomBytes(32);
  const nodeKey = nodeKeyFromSeed(seed);
  const pub = publicKeyOf(nodeKey);
  const hash = nodeCrypto.randomBytes(32).toString("hex");
  const key = await importSessionKey(new Uint8Array(seed), pub);
  const sig = await signChange(key, pub, hash);
  const framed = Buffer.concat([Buffer.from("fieldsync change v1\0", "latin1"), Buffer.from(hash, "hex")]);
  assert.deepEqual(Buffer.from(changeMessage(hash)), framed);
  // Ed25519 is deterministic: the same key and message give the same bytes
  // (ring, which verifies on the server, implements the same RFC 8032).
  assert.deepEqual(Buffer.from(sig), nodeCrypto.sign(null, framed, nodeKey));
  assert.equal(nodeCrypto.verify(null, framed, nodeCrypto.createPublicKey(nodeKey), Buffer.from(sig)), true);
  // A request-domain signature of the same hash differs: no cross-use.
  const asRequest = Buffer.concat([Buffer.from("fieldsync request v1\0", "latin1"), Buffer.from(hash, "hex")]);
  assert.equal(nodeCrypto.verify(null, asRequest, nodeCrypto.createPublicKey(nodeKey), Buffer.from(sig)), false);

  const other = publicKeyOf(nodeKeyFromSeed(nodeCrypto.randomBytes(32)));
  await assert.rejects(
    (async () => signChange(await importSessionKey(new Uint8Array(seed), other), other, hash))(),
    CryptoError,
  );
  assert.throws(() => changeMessage("abcd"), /not 32 bytes/);
});
