// The app's device modules against the protocol vectors the Rust side
// writes and checks (sync-core/tests/vectors/): a signed request, a signed
// creating change, and sync rounds with the reference server's answers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const lib = (m) => import(path.join(root, 'server/app/lib', m))
const vector = (name) => JSON.parse(fs.readFileSync(path.join(root, 'sync-core/tests/vectors', name), 'utf8'))

const R = await lib('report.mjs')
const { DeviceIdentity, Domain, verify } = await lib('identity.mjs')
const { signRequest, requestMessage } = await lib('requests.mjs')
const S = await lib('sync.mjs')
const { fromHex, toHex, toBase64, fromBase64, utf8 } = await lib('bytes.mjs')
await R.initAutomerge(fs.readFileSync(path.join(root, 'server/app/vendor/automerge/automerge.wasm')))
const A = R.A

const identityOf = (d) => DeviceIdentity.fromPkcs8(fromHex(d.pkcs8_v1_hex))

test('signed-request.json: the same message, headers and signature, and it verifies', async () => {
  const v = vector('signed-request.json')
  const id = await identityOf(v.device)
  assert.equal(id.actorId, v.device.public_key_hex)
  assert.equal(id.deviceId, v.device.device_id)
  assert.equal(toHex(Domain.Request), v.domain_tag_hex)
  const message = await requestMessage(v.method, v.path, v.timestamp, v.nonce, utf8(v.body))
  assert.equal(new TextDecoder().decode(message), v.message)
  const headers = await signRequest(id, v.method, v.path, utf8(v.body), v.timestamp, v.nonce)
  assert.deepEqual(headers, v.headers)
  assert.equal(headers['x-fieldsync-signature'], v.signature_b64)
  assert.equal(toHex(new Uint8Array([...Domain.Request, ...message])), v.signed_bytes_hex)
  assert.ok(await verify(id.publicKey, Domain.Request, message, fromBase64(v.signature_b64)))
  // Any other domain, path or body does not verify.
  assert.ok(!(await verify(id.publicKey, Domain.Change, message, fromBase64(v.signature_b64))))
  const other = await requestMessage(v.method, '/v1/timeline', v.timestamp, v.nonce, utf8(v.body))
  assert.ok(!(await verify(id.publicKey, Domain.Request, other, fromBase64(v.signature_b64))))
})

test('creating-change.json: the app makes the same change bytes, hash and signature, and reads the same report', async () => {
  const v = vector('creating-change.json')
  const id = await identityOf(v.device)
  const r = v.report
  const m = /([+-])(\d\d):(\d\d)$/.exec(v.now)
  const offset = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]))
  const { doc, changes } = await R.createReport({
    identity: id,
    caseId: r.case,
    nowMs: v.time_ms,
    offsetMinutes: offset,
    fields: { id: r.id, title: r.title, occurredAt: r.occurred_at, approximate: r.approximate, place: r.place, description: r.description, people: r.people, tags: r.tags, timeline: r.timeline },
  })
  assert.equal(changes.length, 1)
  const [c] = changes
  assert.equal(c.hash, v.hash_hex)
  assert.equal(toBase64(c.bytes), v.change.bytes)
  assert.equal(toBase64(c.sig), v.change.sig)
  assert.equal(toHex(Domain.Change), v.domain_tag_hex)
  // Over the raw 32-byte hash, not its hex.
  assert.equal(toHex(new Uint8Array([...Domain.Change, ...fromHex(c.hash)])), v.signed_bytes_hex)
  const decoded = A.decodeChange(c.bytes)
  assert.deepEqual(decoded.deps, [])
  assert.equal(decoded.time, v.time_ms)
  assert.equal(decoded.actor, v.device.actor_id_hex)
  const view = R.readReport(doc)
  assert.deepEqual(
    {
      id: view.id, case: view.case, created_by: view.createdBy, created_at: view.createdAt, schema_version: view.schemaVersion,
      occurred_at: view.occurredAt, approximate: view.approximate, place: view.place, title: view.title, description: view.description,
      people: view.people, tags: view.tags, timeline: view.timeline,
      review: { status: view.review.status, reviewer: view.review.reviewer, note: view.review.note, reviewed_at: view.review.reviewedAt },
      attachments: view.attachments, unknown_fields: view.unknownFields,
    },
    r,
  )
  // The vector's change, loaded by the app, reads back as the same report.
  const [loaded] = A.applyChanges(A.init(), [fromBase64(v.change.bytes)])
  assert.deepEqual(R.readReport(loaded), view)
})

test('a plain JS string where the schema wants a scalar string is named as the Text trap', () => {
  let doc = A.from({ title: 'typed as Text by default' })
  assert.throws(() => R.readReport(doc), /field `title` should be a string but is text.*ImmutableString/)
  doc = A.from({ title: new A.ImmutableString('scalar') })
  assert.equal(R.readReport(doc).title, 'scalar')
})

test('sync-round.json: the reporter builds the same requests and absorbs the answers as the reference device does', async () => {
  const v = vector('sync-round.json')
  const reporter = await identityOf(v.reporter)
  const [r1, r2, r3, r4] = v.rounds
  const first = r1.request.docs[0].changes[0]
  const id = r1.request.docs[0].id
  // Round 1: a new report, nothing acknowledged yet.
  let doc = A.load(fromBase64(first.bytes), { actor: reporter.actorId })
  const sigs = { [A.decodeChange(fromBase64(first.bytes)).hash]: fromBase64(first.sig) }
  const offer = (d, acked, refused = new Set()) =>
    S.pendingChanges(d, acked, refused).map((c) => ({ bytes: c.bytes, sig: sigs[c.hash] }))
  let b = new S.RequestBuilder(0)
  b.offer({ id, baseHeads: [], changes: offer(doc, []) })
  let plan = b.finish()
  assert.equal(plan.complete, true)
  assert.deepEqual(S.encodeRequest(plan.request), r1.request)
  let res = await S.absorb(doc, S.parseResponse(r1.response).docs[0])
  assert.deepEqual(res.applied, [])
  let acked = res.acked
  assert.deepEqual(acked, r1.response.docs[0].heads)
  doc = res.doc
  assert.equal(S.pendingChanges(doc, acked, new Set()).length, 0)

  // Round 2: a coordinator's first sync takes the report from the feed.
  b = new S.RequestBuilder(0)
  assert.deepEqual(S.encodeRequest(b.finish().request), r2.request)
  const feed = S.parseResponse(r2.response)
  const coord = await S.absorb(A.init(), feed.docs[0])
  assert.equal(coord.applied.length, 1)
  assert.equal(coord.applied[0].author, v.reporter.public_key_hex)
  assert.deepEqual(coord.acked, r2.response.docs[0].heads)
  assert.equal(R.readReport(coord.doc).id, id)
  // Round 3 is the coordinator's review: its request offers it on the acked heads.
  assert.deepEqual(r3.request.docs[0].base_heads, acked)

  // Round 4: the reporter's timeline entry and (refused) review.
  const local = r4.request.docs[0].changes.map((c) => ({ bytes: fromBase64(c.bytes), sig: fromBase64(c.sig) }))
  for (const c of local) sigs[A.decodeChange(c.bytes).hash] = c.sig
  ;[doc] = A.applyChanges(doc, local.map((c) => c.bytes))
  b = new S.RequestBuilder(r4.request.cursor)
  b.offer({ id, baseHeads: acked, changes: offer(doc, acked) })
  plan = b.finish()
  assert.deepEqual(S.encodeRequest(plan.request), r4.request)
  const update = S.parseResponse(r4.response).docs[0]
  res = await S.absorb(doc, update)
  assert.equal(res.applied.length, 1, 'the coordinator review arrives')
  assert.equal(res.applied[0].author, v.coordinator.public_key_hex)
  assert.deepEqual(res.acked, r4.response.docs[0].heads)
  doc = res.doc
  acked = res.acked
  const refused = new Set(update.refused.map((x) => x.hash))
  assert.equal(update.refused[0].reason, 'review_is_for_coordinators')
  // The refused change stays in the document, is never offered again.
  assert.ok(S.hasChange(doc, update.refused[0].hash))
  assert.deepEqual(S.pendingChanges(doc, acked, refused), [])
  assert.equal(R.readReport(doc).review.status, 'verified')
  // A duplicated or late copy of the same answer changes nothing.
  const again = await S.absorb(doc, update)
  assert.deepEqual(again.applied, [])
  assert.deepEqual(again.acked, acked)
  assert.deepEqual(A.getHeads(again.doc).sort(), A.getHeads(doc).sort())
})
