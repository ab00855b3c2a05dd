// The page's HPKE (RFC 9180) open, in server/web/crypto.js, checked against
// the RFC's own test vector A.1.1 (tests/browser/vectors/rfc9180-a1-1.json:
// X25519, HKDF-SHA256, AES-128-GCM, base mode). The envelope uses the same
// code with AES-256-GCM; the AEAD is a parameter, so this vector checks
// the KEM, the labels and the key schedule the envelope depends on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

import {
  AEAD_AES_128_GCM,
  CryptoError,
  fromHex,
  hpkeBaseContext,
  hpkeOpen,
  importX25519Private,
  toHex,
} from "../../../server/web/crypto.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const v = JSON.parse(readFileSync(path.join(here, "../vectors/rfc9180-a1-1.json"), "utf8"));

test("an X25519 private key imports without its public key, and the public key is derived (RFC 9180 A.1.1 pkRm, pkEm)", async () => {
  const recipient = await importX25519Private(fromHex(v.skRm));
  assert.equal(toHex(recipient.publicKey), v.pkRm);
  const sender = await importX25519Private(fromHex(v.skEm));
  assert.equal(toHex(sender.publicKey), v.pkEm);
  await assert.rejects(importX25519Private(new Uint8Array(31)), /not 32 bytes/);
});

test("HPKE base-mode key schedule equals RFC 9180 A.1.1: shared_secret, key and base_nonce", async () => {
  assert.equal(v.aead_id, AEAD_AES_128_GCM);
  const recipient = await importX25519Private(fromHex(v.skRm));
  const context = await hpkeBaseContext({ recipient, enc: fromHex(v.enc), info: fromHex(v.info), aeadId: v.aead_id });
  assert.equal(toHex(context.sharedSecret), v.shared_secret);
  assert.equal(toHex(context.key), v.key);
  assert.equal(toHex(context.baseNonce), v.base_nonce);
  assert.equal(v.encryption_0.nonce, v.base_nonce, "a single-shot open uses sequence number 0");
});

test("HPKE single-shot open of RFC 9180 A.1.1 encryption 0 gives its plaintext; any altered input is refused", async () => {
  const recipient = await importX25519Private(fromHex(v.skRm));
  const e = v.encryption_0;
  const args = { recipient, enc: fromHex(v.enc), info: fromHex(v.info), aad: fromHex(e.aad), ciphertext: fromHex(e.ct), aeadId: v.aead_id };
  assert.equal(toHex(await hpkeOpen(args)), e.pt);

  const flip = (bytes, at) => {
    const out = bytes.slice();
    out[at] ^= 1;
    return out;
  };
  const refused = (changed) => assert.rejects(hpkeOpen({ ...args, ...changed }), CryptoError);
  await refused({ ciphertext: flip(args.ciphertext, 0) });
  await refused({ ciphertext: flip(args.ciphertext, args.ciphertext.length - 1) });
  await refused({ aad: flip(args.aad, 6) });
  await refused({ info: flip(args.info, 0) });
  await refused({ enc: flip(args.enc, 5) });
  await refused({ recipient: await importX25519Private(fromHex(v.skEm)) });
  // An all-zero (low-order) enc makes an all-zero X25519 output, which
  // RFC 9180 section 7.1.4 requires the recipient to refuse.
  await assert.rejects(hpkeOpen({ ...args, enc: new Uint8Array(32) }), /encapsulated key/);
  await assert.rejects(hpkeOpen({ ...args, enc: new Uint8Array(31) }), /encapsulated key/);
  await assert.rejects(hpkeOpen({ ...args, aeadId: 3 }), /AEAD/);
});
