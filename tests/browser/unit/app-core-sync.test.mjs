// The sync and report modules on their own: request bounds, the checks on
// the server's answers, idempotent absorption of duplicated and reordered
// answers, and a concurrent text merge between two app replicas.
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
const CASE = 'c0ffee00c0ffee00c0ffee00c0ffee00'
const newIdentity = async () => I.DeviceIdentity.fromPkcs8((await I.generateDeviceKey()).pkcs8)
const T0 = 1_796_000_000_000

async function created(identity, fields = {}) {
  return R.createReport({ identity, caseId: CASE, nowMs: T0, fields: { title: 'report', occurredAt: '2026-11-30T10:40:00+05:00', description: 'The van left.', ...fields } })
}
const update = (id, changes, extra = {}) => ({ id, changes: changes.map((c) => ({ bytes: c.bytes, sig: c.sig })), heads: [], complete: false, refused: [], ...extra })

test('a request keeps under its bound with causal prefixes, and an empty request takes one change whatever its size', () => {
  const change = (n) => ({ bytes: new Uint8Array(n), sig: new Uint8Array(64) })
  const b = new S.RequestBuilder(7, 1500)
  assert.equal(b.offer({ id: 'a'.repeat(32), baseHeads: [], changes: [change(600), change(600), change(600)] }), false)
  const plan = b.finish()
  assert.equal(plan.complete, false)
  assert.equal(plan.request.docs[0].changes.length, 1, 'a causal prefix')
  assert.ok(JSON.stringify(S.encodeRequest(plan.request)).length <= 1500)
  const big = new S.RequestBuilder(0, 1000)
  big.offer({ id: 'b'.repeat(32), baseHeads: [], changes: [change(5000)] })
  assert.equal(big.finish().request.docs[0].changes.length, 1, 'progress even past the bound')
  // wire_len as protocol.rs counts it: base64 of bytes and sig, plus 22.
  assert.equal(S.wireLen(change(175)), 236 + 88 + 22)
  // A JSON request of many offers stays within the bound the builder counted.
  const many = new S.RequestBuilder(0, 64 * 1024)
  for (let i = 0; i < 500; i++) if (!many.offer({ id: i.toString(16).padStart(32, '0'), baseHeads: ['0'.repeat(64)], changes: [change(200)] })) break
  assert.ok(JSON.stringify(S.encodeRequest(many.finish().request)).length <= 64 * 1024)
})

test("the server's answer is checked: version, ids, hashes, base64, types", () => {
  const ok = { version: 1, docs: [{ id: 'a'.repeat(32), changes: [], heads: ['b'.repeat(64)], complete: true, refused: [] }], cursor: 3, more: false }
  assert.equal(S.parseResponse(ok).cursor, 3)
  const bad = [
    { ...ok, version: 2 },
    { ...ok, cursor: -1 },
    { ...ok, cursor: 1.5 },
    { ...ok, more: 'no' },
    { ...ok, docs: [{ ...ok.docs[0], id: '../etc' }] },
    { ...ok, docs: [{ ...ok.docs[0], heads: ['B'.repeat(64)] }] },
    { ...ok, docs: [{ ...ok.docs[0], changes: [{ bytes: 'not base64!', sig: '' }] }] },
    { ...ok, docs: [{ ...ok.docs[0], refused: [{ hash: 'x', reason: 'r', message: 'm' }] }] },
  ]
  for (const b of bad) assert.throws(() => S.parseResponse(b), /malformed|version/)
  // Defaults as serde's: heads, complete and refused may be absent.
  assert.deepEqual(S.parseResponse({ version: 1, docs: [{ id: 'a'.repeat(32), changes: [] }], cursor: 0, more: false }).docs[0], {
    id: 'a'.repeat(32), changes: [], heads: [], complete: false, refused: [],
  })
})

test('absorb refuses a change whose signature does not verify, a foreign actor, and an op on an object nobody made; nothing is applied', async () => {
  const me = await newIdentity()
  const other = await newIdentity()
  const { doc, changes } = await created(me)
  const id = R.readReport(doc).id
  const { change } = await R.editReport({ identity: other, doc: A.clone(doc, { actor: other.actorId }), edits: { title: 'edited' }, nowMs: T0 + 1 })
  // Signed by the wrong key.
  const forged = { ...change, sig: await me.signChangeHash(B.fromHex(change.hash)) }
  await assert.rejects(S.absorb(A.clone(doc), update(id, [forged])), /does not verify/)
  // A signature over the hex instead of the raw hash.
  const hexSigned = { ...change, sig: await other.sign(I.Domain.Change, B.utf8(change.hash)) }
  await assert.rejects(S.absorb(A.clone(doc), update(id, [hexSigned])), /does not verify/)
  // An actor that is not a 32-byte key.
  let foreign = A.change(A.clone(doc, { actor: 'abcd' }), { time: T0 }, (d) => { d.title = new A.ImmutableString('x') })
  const fb = A.getLastLocalChange(foreign)
  await assert.rejects(S.absorb(A.clone(doc), update(id, [{ bytes: fb, sig: new Uint8Array(64) }])), /not a fieldsync device key/)
  // An op on an object that exists nowhere (a change made on another report).
  const { doc: elsewhere } = await created(other, { id: 'f'.repeat(32) })
  const { change: stray } = await R.editReport({ identity: other, doc: elsewhere, edits: { addPeople: [{ name: 'X', role: 'witness', note: '' }] }, nowMs: T0 })
  await assert.rejects(S.absorb(A.clone(doc), update(id, [stray])), /does not exist|dependencies/)
  // The good change applies.
  const res = await S.absorb(A.clone(doc), update(id, [change]))
  assert.equal(R.readReport(res.doc).title, 'edited')
  assert.equal(res.applied[0].author, other.actorId)
  assert.equal(changes.length, 1)
})

test('absorbing duplicated and reordered answers gives the same document; heads are acknowledged only when complete and held', async () => {
  const me = await newIdentity()
  const coord = await newIdentity()
  const { doc } = await created(me)
  const id = R.readReport(doc).id
  let theirs = A.clone(doc, { actor: coord.actorId })
  const made = []
  for (let i = 0; i < 4; i++) {
    const r = await R.editReport({ identity: coord, doc: theirs, edits: { appendDescription: ` ${i}` }, nowMs: T0 + i })
    theirs = r.doc
    made.push(r.change)
  }
  const heads = A.getHeads(theirs)
  // Reordered within an answer: causal order is restored.
  const a = await S.absorb(A.clone(doc), update(id, [made[3], made[1], made[0], made[2]], { heads, complete: true }))
  assert.equal(R.readReport(a.doc).description, 'The van left. 0 1 2 3')
  assert.deepEqual(a.acked, heads)
  // Answers arriving out of order and twice.
  let d = A.clone(doc)
  let r = await S.absorb(d, update(id, [made[0], made[1]], { heads: A.getHeads(theirs), complete: true }))
  assert.equal(r.acked, null, 'heads the device does not hold yet are not acknowledged')
  d = r.doc
  r = await S.absorb(d, update(id, [made[0], made[1]]))
  assert.deepEqual(r.applied, [])
  d = r.doc
  r = await S.absorb(d, update(id, made, { heads }))
  assert.equal(r.acked, null, 'not complete: nothing acknowledged')
  assert.equal(r.applied.length, 2)
  assert.equal(R.readReport(r.doc).description, 'The van left. 0 1 2 3')
  // A change whose dependency never arrives: refused as a whole.
  await assert.rejects(S.absorb(A.clone(doc), update(id, [made[2]])), /dependencies are missing/)
})

test('a refused change poisons every change built on it, not its siblings', async () => {
  const me = await newIdentity()
  const { doc: d0, changes } = await created(me)
  let doc = d0
  const r1 = await R.editReport({ identity: me, doc, edits: { title: 'one' }, nowMs: T0 + 1 })
  const r2 = await R.editReport({ identity: me, doc: r1.doc, edits: { title: 'two' }, nowMs: T0 + 2 })
  doc = r2.doc
  const acked = [changes[0].hash]
  assert.deepEqual(S.pendingChanges(doc, acked, new Set()).map((c) => c.hash), [r1.change.hash, r2.change.hash])
  assert.deepEqual(S.pendingChanges(doc, acked, new Set([r1.change.hash])), [])
  assert.deepEqual([...S.poisonedChanges(doc, new Set([r1.change.hash]))].sort(), [r1.change.hash, r2.change.hash].sort())
  assert.deepEqual(S.pendingChanges(doc, acked, new Set([r2.change.hash])).map((c) => c.hash), [r1.change.hash])
  // Acked heads the device does not hold (a restored server) mean "send everything".
  assert.equal(S.pendingChanges(doc, ['0'.repeat(64)], new Set()).length, 3)
})

test('two app replicas edit the description concurrently; after exchanging changes both hold the same merged text', async () => {
  const phone = await newIdentity()
  const coord = await newIdentity()
  const { doc: base, changes } = await created(phone, { description: 'Two people were taken into a van.' })
  const id = R.readReport(base).id
  let mine = base
  let [theirs] = A.applyChanges(A.init({ actor: coord.actorId }), [changes[0].bytes])
  const m = await R.editReport({ identity: phone, doc: mine, edits: { description: 'Two people were taken into a van at 10:40.' }, nowMs: T0 + 5 })
  const t = await R.editReport({ identity: coord, doc: theirs, edits: { description: 'Two people were taken into a white van.' }, nowMs: T0 + 6 })
  const onMine = await S.absorb(m.doc, update(id, [t.change]))
  const onTheirs = await S.absorb(t.doc, update(id, [m.change]))
  const a = R.readReport(onMine.doc).description
  const b = R.readReport(onTheirs.doc).description
  assert.equal(a, b)
  assert.equal(a, 'Two people were taken into a white van at 10:40.')
  assert.deepEqual(A.getHeads(onMine.doc).sort(), A.getHeads(onTheirs.doc).sort())
  // Types survive edits: scalar strings stay scalar, the description stays text.
  const h = A.getBackend(onMine.doc)
  assert.equal(h.getWithType('_root', 'title')[0], 'str')
  assert.equal(h.getWithType('_root', 'description')[0], 'text')
})

test('report fields keep document.rs limits and types', async () => {
  const me = await newIdentity()
  await assert.rejects(created(me, { title: 'x'.repeat(1025) }), { code: 'invalid_report', field: 'title' })
  await assert.rejects(created(me, { place: { name: '', lat: 91, lon: 0 } }), /latitude 91/)
  await assert.rejects(created(me, { place: { name: '', lat: 1, lon: null } }), /give both or neither/)
  await assert.rejects(created(me, { people: [{ name: ' ', role: 'witness' }] }), /must not be empty/)
  await assert.rejects(created(me, { people: [{ name: 'a', role: 'bystander' }] }), /unknown role/)
  await assert.rejects(created(me, { occurredAt: '2026-11-30 noon' }), /RFC 3339/)
  await assert.rejects(created(me, { tags: ['  '] }), /must not be empty/)
  const { doc, changes } = await created(me, { place: { name: 'p', lat: 43, lon: 77 }, tags: [' a ', 'a'] })
  const ops = A.decodeChange(changes[0].bytes).ops
  const lat = ops.find((o) => o.key === 'lat')
  assert.equal(lat.datatype, 'float64', 'a whole-number latitude is still F64')
  assert.equal(ops.find((o) => o.key === 'schema_version').datatype, 'uint')
  assert.deepEqual(R.readReport(doc).tags, ['a'])
  const withFile = await R.createReport({ identity: me, caseId: CASE, nowMs: T0, fields: { title: 't', occurredAt: T0 }, attachments: [{ id: 'e'.repeat(32), blob: 'd'.repeat(64), size: 10, header: 'aGVhZA==', keyEpoch: 1 }] })
  assert.equal(withFile.changes.length, 2, 'attachments in a second change, as the CLI')
  assert.deepEqual(A.decodeChange(withFile.changes[1].bytes).deps, [withFile.changes[0].hash])
  const att = A.decodeChange(withFile.changes[1].bytes).ops.filter((o) => o.key === 'size' || o.key === 'key_epoch')
  assert.deepEqual(att.map((o) => o.datatype), ['uint', 'uint'])
  assert.deepEqual(R.readReport(withFile.doc).attachments, [{ id: 'e'.repeat(32), blob: 'd'.repeat(64), size: 10, header: 'aGVhZA==', keyEpoch: 1 }])
  assert.equal(R.rfc3339(Date.UTC(2026, 0, 2, 3, 4, 5, 0), 330), '2026-01-02T08:34:05+05:30')
  assert.equal(R.rfc3339(Date.UTC(2026, 0, 2, 3, 4, 5, 7), -60), '2026-01-02T02:04:05.007-01:00')
})
