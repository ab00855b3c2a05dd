// The device's identity: an Ed25519 key made in the browser, and every
// signature the protocol asks of it, exactly as sync-core/src/identity.rs.
//
// - Actor id = the 32-byte public key, hex (every Automerge change the device
//   makes names it). Device id = hex of the first 16 bytes of
//   SHA-256(public key).
// - Every signature is Ed25519 over a domain tag followed by the message, so
//   a change signature can never be replayed as a request signature.
//
// The key is generated extractable exactly once, exported as PKCS#8 for the
// store (which keeps it only inside an encrypted record), and from then on
// imported NON-extractable into memory: WebCrypto cannot wrap a
// non-extractable key, and a CryptoKey persisted in IndexedDB lies in the
// browser's files as plain key bytes, so the PKCS#8 inside the store's
// encrypted record is the only form at rest.

import { concat, fromBase64Url, sha256, toBase64Url, toHex, utf8, u32be, fromHex, isHex } from './bytes.mjs'

const subtle = () => globalThis.crypto.subtle
const ED25519 = { name: 'Ed25519' }

/** Domain tags, byte for byte as identity.rs `Domain::tag` (NUL-terminated). */
export const Domain = Object.freeze({
  Change: utf8('fieldsync change v1\0'),
  Request: utf8('fieldsync request v1\0'),
  Bundle: utf8('fieldsync bundle v1\0'),
  WebLogin: utf8('fieldsync web-login v1\0'),
  CaseKey: utf8('fieldsync case-key v2\0'),
})

export class IdentityError extends Error {
  constructor(message) {
    super(message)
    this.name = 'IdentityError'
    this.code = 'identity'
  }
}

/** Device id of a public key: first 16 bytes of its SHA-256, hex. */
export async function deviceIdOf(publicKey) {
  return toHex((await sha256(publicKey)).slice(0, 16))
}

/**
 * Makes a new device key. Returns the PKCS#8 bytes (to be stored encrypted,
 * never elsewhere) and the public key. The extractable CryptoKey is dropped.
 */
export async function generateDeviceKey() {
  const pair = await subtle().generateKey(ED25519, true, ['sign', 'verify'])
  const pkcs8 = new Uint8Array(await subtle().exportKey('pkcs8', pair.privateKey))
  const publicKey = new Uint8Array(await subtle().exportKey('raw', pair.publicKey))
  return { pkcs8, publicKey }
}

/** A device key held in memory, non-extractable. */
export class DeviceIdentity {
  constructor(privateKey, publicKey, deviceId) {
    this.privateKey = privateKey
    this.publicKey = publicKey
    this.actorId = toHex(publicKey)
    this.deviceId = deviceId
    Object.freeze(this)
  }

  /**
   * Imports stored PKCS#8. The public key is derived from the private key
   * (through a short-lived extractable import) rather than trusted from
   * storage, so a damaged record cannot make the device sign as another actor.
   */
  static async fromPkcs8(pkcs8) {
    let publicKey
    try {
      const temp = await subtle().importKey('pkcs8', pkcs8, ED25519, true, ['sign'])
      const jwk = await subtle().exportKey('jwk', temp)
      publicKey = fromBase64Url(jwk.x)
    } catch (e) {
      throw new IdentityError(`the stored device key is not a valid Ed25519 PKCS#8 key; the app's storage is damaged (${e.message})`)
    }
    if (publicKey.length !== 32) throw new IdentityError('the stored device key has no 32-byte public key')
    const privateKey = await subtle().importKey('pkcs8', pkcs8, ED25519, false, ['sign'])
    return new DeviceIdentity(privateKey, publicKey, await deviceIdOf(publicKey))
  }

  /** Ed25519 signature (64 bytes) over `domain ‖ message`. */
  async sign(domain, message) {
    return new Uint8Array(await subtle().sign(ED25519, this.privateKey, concat(domain, message)))
  }

  /** Signature of a change: over its raw 32-byte hash, never its hex. */
  async signChangeHash(hash) {
    const raw = typeof hash === 'string' ? fromHex(hash) : hash
    if (raw.length !== 32) throw new IdentityError('a change hash is 32 bytes')
    return this.sign(Domain.Change, raw)
  }
}

/** Verifies an Ed25519 signature over `domain ‖ message` by `publicKey` (32 bytes). */
export async function verify(publicKey, domain, message, signature) {
  if (publicKey.length !== 32 || signature.length !== 64) return false
  try {
    const key = await subtle().importKey('raw', publicKey, ED25519, false, ['verify'])
    return await subtle().verify(ED25519, key, signature, concat(domain, message))
  } catch {
    return false
  }
}

// Web-session changes (a coordinator reviewing in the browser) carry
// certificate ‖ session signature (sync-core/src/web_login.rs).
const CERT_LEN = 4 + 32 + 32 + 8 + 8 + 16 + 64
export const DELEGATED_SIGNATURE_LEN = CERT_LEN + 64

function beU64(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, 8)
  return v.getBigUint64(0, false)
}

/**
 * Checks a change's signature as SignedChange::verify does: a 64-byte
 * signature by the actor over the change hash, or a web session's
 * certificate (signed by a device) plus the session key's signature, the
 * session key being the actor and the change dated within the session.
 * Returns {author: hex public key of the answerable device, session: bool};
 * throws IdentityError otherwise.
 */
export async function verifyChangeSignature({ hash, actor, signature, timeMs }) {
  if (actor.length !== 32) {
    throw new IdentityError(`change ${toHex(hash)} has an actor id that is not a fieldsync device key (${actor.length} bytes instead of 32)`)
  }
  if (signature.length === DELEGATED_SIGNATURE_LEN) {
    const cert = signature.subarray(0, CERT_LEN)
    if (toHex(cert.subarray(0, 4)) !== toHex(utf8('FSW1'))) throw new IdentityError('not a web-login certificate')
    const device = cert.subarray(4, 36)
    const session = cert.subarray(36, 68)
    const loginUntil = beU64(cert.subarray(68, 76))
    const sessionUntil = beU64(cert.subarray(76, 84))
    if (sessionUntil < loginUntil) throw new IdentityError('the login certificate ends before it starts')
    if (!(await verify(device, Domain.WebLogin, cert.subarray(0, 100), cert.subarray(100, CERT_LEN)))) {
      throw new IdentityError("the login certificate's signature does not verify against its device")
    }
    if (toHex(session) !== toHex(actor)) throw new IdentityError("the session key's signature does not verify")
    const secs = Math.floor(timeMs / 1000)
    if (secs < 0 || BigInt(secs) > sessionUntil) throw new IdentityError('the change is dated outside its web session')
    if (!(await verify(actor, Domain.Change, hash, signature.subarray(CERT_LEN)))) {
      throw new IdentityError("the session key's signature does not verify")
    }
    return { author: toHex(device), session: true }
  }
  if (signature.length !== 64) throw new IdentityError(`a signature must be 64 bytes, got ${signature.length}`)
  if (!(await verify(actor, Domain.Change, hash, signature))) {
    throw new IdentityError(`change ${toHex(hash)}: the signature does not verify against the author's public key`)
  }
  return { author: toHex(actor), session: false }
}

// ---- Case public keys (sync-core/src/case_key.rs, case_key_trust.rs) ----

const FINGERPRINT_DOMAIN = utf8('fieldsync case key v2\0')

/** Fingerprint of a case public key: base64url of the first 16 bytes of
 *  SHA-256("fieldsync case key v2\0" ‖ epoch (4, BE) ‖ key): 22 characters. */
export async function caseKeyFingerprint(epoch, publicKey) {
  return toBase64Url((await sha256(concat(FINGERPRINT_DOMAIN, u32be(epoch), publicKey))).slice(0, 16))
}

/** Reads a fingerprint as `device enroll --case-key-fingerprint` does
 *  (cli/src/keys.rs `parse_fingerprint`): trimmed, 22 base64url characters. */
export function parseFingerprint(text) {
  const fp = String(text ?? '').trim()
  if (fp.length !== 22 || !/^[A-Za-z0-9_-]*$/.test(fp)) return null
  return fp
}

/**
 * Checks a published case key's signature for `caseId` (32 hex): the signer
 * signed "fieldsync case-key v2\0" ‖ case id (32 ASCII) ‖ epoch (4, BE) ‖ key.
 * Returns {epoch, publicKey (bytes), publicKeyHex, signer (hex), signature (hex), fingerprint}
 * or throws with `reason` 'bad_signature'.
 */
export async function verifyPublishedCaseKey(caseId, published) {
  const bad = (why) => Object.assign(new IdentityError(why), { reason: 'bad_signature' })
  const epoch = published?.epoch
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffffffff) throw bad('the published case key has no valid epoch')
  if (!isHex(published.public_key, 64) || !isHex(published.signer, 64) || !isHex(published.signature, 128)) {
    throw bad(`the published case key of epoch ${epoch} is not well-formed hex of the right lengths`)
  }
  const publicKey = fromHex(published.public_key)
  const message = concat(utf8(caseId), u32be(epoch), publicKey)
  if (!(await verify(fromHex(published.signer), Domain.CaseKey, message, fromHex(published.signature)))) {
    throw bad(`the signature on the case key of epoch ${epoch} does not verify`)
  }
  return {
    epoch,
    publicKey,
    publicKeyHex: published.public_key,
    signer: published.signer,
    signature: published.signature,
    fingerprint: await caseKeyFingerprint(epoch, publicKey),
  }
}

/**
 * Which offered keys a device takes, by the rules of case_key_trust.rs
 * `decide`: while it trusts none, only the key whose fingerprint the invite
 * gave (`pin`), or without a pin everything offered, on trust (one per
 * epoch); once it trusts keys, a new epoch only if signed by a signer of a
 * trusted key, and a different key for a held epoch is a substitution.
 * `trusted` are records as verifyPublishedCaseKey returns them.
 * Returns {accepted: [...], refused: [{epoch, fingerprint, reason}], onTrust}.
 */
export async function decideCaseKeys(caseId, trusted, pin, offered) {
  const decision = { accepted: [], refused: [], onTrust: false }
  let verified = []
  for (const key of offered ?? []) {
    try {
      verified.push(await verifyPublishedCaseKey(caseId, key))
    } catch {
      let fingerprint = ''
      if (isHex(key?.public_key, 64) && Number.isInteger(key?.epoch)) {
        fingerprint = await caseKeyFingerprint(key.epoch, fromHex(key.public_key))
      }
      decision.refused.push({ epoch: key?.epoch ?? 0, fingerprint, reason: 'bad_signature' })
    }
  }
  verified.sort((a, b) => a.epoch - b.epoch)
  // dedup of identical consecutive records (same key, signer and signature)
  verified = verified.filter((v, i) => i === 0 || !sameRecord(v, verified[i - 1]))
  const held = [...trusted]
  if (held.length === 0) {
    if (pin != null) {
      const root = verified.find((v) => v.fingerprint === String(pin).trim())
      if (!root) {
        for (const v of verified) decision.refused.push({ epoch: v.epoch, fingerprint: v.fingerprint, reason: 'not_the_fingerprint' })
        return decision
      }
      held.push(root)
      decision.accepted.push(root)
    } else {
      decision.onTrust = verified.length > 0
      for (const v of verified) {
        if (decision.accepted.some((h) => h.epoch === v.epoch)) {
          decision.refused.push({ epoch: v.epoch, fingerprint: v.fingerprint, reason: 'substituted' })
        } else {
          decision.accepted.push(v)
        }
      }
      return decision
    }
  }
  const signers = new Set(held.map((h) => h.signer))
  for (const v of verified) {
    const h = held.find((x) => x.epoch === v.epoch)
    if (h) {
      if (h.publicKeyHex !== v.publicKeyHex) {
        decision.refused.push({ epoch: v.epoch, fingerprint: v.fingerprint, reason: 'substituted' })
      }
      continue
    }
    if (signers.has(v.signer)) {
      held.push(v)
      decision.accepted.push(v)
    } else {
      decision.refused.push({ epoch: v.epoch, fingerprint: v.fingerprint, reason: 'untrusted_signer' })
    }
  }
  return decision
}

function sameRecord(a, b) {
  return a.epoch === b.epoch && a.publicKeyHex === b.publicKeyHex && a.signer === b.signer && a.signature === b.signature
}
