// Web-session signatures: a coordinator reviewing in the browser signs with
// a session key lent by a login certificate (sync-core/src/web_login.rs).
// The phone must take such a change as the coordinator's (the reference
// vector web-session-change.json, written by the Rust core) and refuse
// every forgery of it before anything is applied.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const lib = (m) => import(path.join(root, 'server/app/lib', m))
const R = await lib('report.mjs')
const S = await lib('sync.mjs')
const I = await lib('identity.mjs')
const B = await lib('bytes.mjs')
await R.initAutomerge(fs.readFileSync(path.join(root, 'server/app/vendor/automerge/automerge.wasm')))
const A = R.A
const V = JSON.parse(fs.readFileSync(path.join(root, 'sync-core/tests/vectors/web-session-change.json'), 'utf8'))
const signed = (c) => ({ bytes: B.fromBase64(c.bytes), sig: B.fromBase64(c.sig) })
const update = (id, changes) => ({ id, changes, heads: [], complete: false, refused: [] })
const CASE = 'c0ffee00c0ffee00c0ffee00c0ffee00'
const newIdentity = async () => I.DeviceIdentity.fromPkcs8((await I.generateDeviceKey()).pkcs8)

function be64(n) {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, BigInt(n), false)
  return out
}

/** A login certificate as LoginCertificate::issue makes it, signed by `device`. */
async function certificate(device, sessionPublicKey, loginUntil, sessionUntil) {
  const body = B.concat(B.utf8('FSW1'), device.publicKey, sessionPublicKey, be64(loginUntil), be64(sessionUntil), B.randomBytes(16))
  return B.concat(body, await device.sign(I.Domain.WebLogin, body))
}

test('web-session-change.json: the review made in a web session verifies and answers for the coordinator', async () => {
  const change = signed(V.change)
  assert.equal(change.sig.length, I.DELEGATED_SIGNATURE_LEN)
  assert.equal(B.toHex(change.sig.subarray(0, 164)), V.certificate_hex)
  const hash = S.changeHash(change.bytes)
  assert.equal(hash, V.hash_hex)
  const decoded = A.decodeChange(change.bytes)
  assert.equal(decoded.actor, V.session_public_key_hex)
  const who = await I.verifyChangeSignature({ hash: B.fromHex(hash), actor: B.fromHex(decoded.actor), signature: change.sig, timeMs: decoded.time })
  assert.deepEqual(who, { author: V.coordinator.public_key_hex, session: true })
  assert.equal(await I.deviceIdOf(B.fromHex(who.author)), V.author_device_id)

  // Absorbed by a phone with the reporter's creating change: applied, and
  // attributed to the coordinator's device, not to the session key.
  const created = signed(V.creating_change)
  const id = R.readReport(A.load(created.bytes)).id
  const out = await S.absorb(A.init(), update(id, [change, created]))
  assert.deepEqual(out.applied.map((a) => a.author), [V.reporter.public_key_hex, V.coordinator.public_key_hex])
  assert.equal(R.readReport(out.doc).review.status, 'disputed')
})

test('forged web-session signatures are refused before anything is applied', async () => {
  const change = signed(V.change)
  const created = signed(V.creating_change)
  const id = R.readReport(A.load(created.bytes)).id
  const mutate = (at, f) => {
    const sig = change.sig.slice()
    sig[at] = f(sig[at])
    return { bytes: change.bytes, sig }
  }
  const forgeries = {
    'the certificate magic': mutate(0, (b) => b ^ 1),
    "the certificate's device signature": mutate(120, (b) => b ^ 1),
    'the session until (signed by the device)': mutate(83, (b) => b ^ 1),
    "the session key's signature": mutate(170, (b) => b ^ 1),
    'a certificate cut short': { bytes: change.bytes, sig: change.sig.subarray(0, I.DELEGATED_SIGNATURE_LEN - 1) },
  }
  for (const [what, forged] of Object.entries(forgeries)) {
    await assert.rejects(S.absorb(A.init(), update(id, [created, forged])), (e) => e.code === 'server_change' && /does not verify/.test(e.message), what)
  }
})

test('a session change is refused outside its window, by another session key, or with the certificate ending before it starts', async () => {
  const reporter = await newIdentity()
  const coordinator = await newIdentity()
  const session = await newIdentity() // a session key is an Ed25519 key like a device's
  const T = 1_796_000_000_000
  const { doc, changes } = await R.createReport({ identity: reporter, caseId: CASE, nowMs: T, fields: { title: 'report', occurredAt: '2026-11-30T10:40:00+05:00', description: 'The van left.' } })
  const id = R.readReport(doc).id
  const sessionChange = async (nowMs, cert, signer = session) => {
    const { change } = await R.editReport({ identity: session, doc: A.clone(doc), edits: { title: `reviewed at ${nowMs}` }, nowMs })
    return { bytes: change.bytes, sig: B.concat(cert, await signer.signChangeHash(change.hash)) }
  }
  const until = Math.floor(T / 1000) + 3600
  const cert = await certificate(coordinator, session.publicKey, until - 60, until)
  // Inside the window: applied, answering for the coordinator.
  const ok = await S.absorb(A.clone(doc), update(id, [await sessionChange(T + 1000, cert)]))
  assert.equal(ok.applied[0].author, coordinator.actorId)
  const refusals = {
    'dated after the session ended': await sessionChange((until + 1) * 1000, cert),
    'signed by another key under the certificate': await sessionChange(T + 1000, cert, coordinator),
    "a certificate lending another session's key": await sessionChange(T + 1000, await certificate(coordinator, (await newIdentity()).publicKey, until - 60, until)),
    'a certificate ending before it starts': await sessionChange(T + 1000, await certificate(coordinator, session.publicKey, until + 60, until)),
  }
  for (const [what, change] of Object.entries(refusals)) {
    await assert.rejects(S.absorb(doc, update(id, [change])), (e) => e.code === 'server_change', what)
  }
  assert.equal(R.readReport(doc).title, 'report')
})
