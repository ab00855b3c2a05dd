// The app's device facade (server/app/lib/device.mjs) over the real store
// (fake-indexeddb) against a small in-process server that checks request
// signatures, clocks and nonces and keeps reports as the real one does
// (changes by hash, heads, a feed with a cursor). The real server is
// exercised by tests/browser/app-e2e-node.mjs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { indexedDB, IDBKeyRange } from 'fake-indexeddb'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const lib = (m) => import(path.join(root, 'server/app/lib', m))
const { Device, parseInviteFragment } = await lib('device.mjs')
const { openStore } = await lib('store.mjs')
const R = await lib('report.mjs')
const S = await lib('sync.mjs')
const I = await lib('identity.mjs')
const { requestMessage } = await lib('requests.mjs')
const B = await lib('bytes.mjs')
const wasm = fs.readFileSync(path.join(root, 'server/app/vendor/automerge/automerge.wasm'))
await R.initAutomerge(wasm)
const A = R.A

const CASE = 'c0ffee00c0ffee00c0ffee00c0ffee00'
let dbCount = 0
const newStore = () => openStore({ indexedDB, IDBKeyRange, name: `app-core-device-${process.pid}-${dbCount++}` })

/** A case key a coordinator's device published, and its fingerprint. */
async function publishedKey(epoch = 1) {
  const signer = await I.DeviceIdentity.fromPkcs8((await I.generateDeviceKey()).pkcs8)
  const pub = B.randomBytes(32)
  const sig = await signer.sign(I.Domain.CaseKey, B.concat(B.utf8(CASE), B.u32be(epoch), pub))
  const record = { epoch, public_key: B.toHex(pub), signer: signer.actorId, signature: B.toHex(sig) }
  return { record, fingerprint: await I.caseKeyFingerprint(epoch, pub) }
}

class FakeServer {
  constructor() {
    this.clockMs = Date.now()
    this.tokens = new Map([['good', 'ok']])
    this.devices = new Map() // device id -> {publicKey, revoked}
    this.nonces = new Set()
    this.docs = new Map() // report id -> Automerge doc
    this.sigs = new Map() // hash -> sig
    this.feed = [] // {seq, id, hash, device}
    this.caseKeys = []
    this.refuseTitle = 'REFUSE ME'
    this.requests = []
    this.maxFeedChanges = 1000
    this.fetch = this.fetch.bind(this)
    this.afterCommit = null
  }

  json(status, body) {
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
  }
  error(status, error, extra = {}) {
    return this.json(status, { error, server_time: Math.floor(this.clockMs / 1000), ...extra })
  }

  async auth(method, pathq, headers, body, publicKey) {
    const ts = Number(headers['x-fieldsync-timestamp'])
    const nonce = headers['x-fieldsync-nonce']
    const message = await requestMessage(method, pathq, ts, nonce, body)
    if (!(await I.verify(publicKey, I.Domain.Request, message, B.fromBase64(headers['x-fieldsync-signature'])))) {
      return this.error(401, 'the request signature does not verify for this device')
    }
    const skew = ts - Math.floor(this.clockMs / 1000)
    if (Math.abs(skew) > 300) return this.error(401, `the request's timestamp is ${skew} seconds away`, { clock_skew_secs: skew })
    if (this.nonces.has(nonce)) return this.error(401, 'this request was already received (replayed nonce)', { replayed: true })
    this.nonces.add(nonce)
    return null
  }

  async fetch(url, init) {
    const u = new URL(url)
    const pathq = u.pathname + u.search
    const body = init.body ? new Uint8Array(init.body) : new Uint8Array()
    const headers = init.headers
    this.requests.push({ path: pathq, bytes: body.length })
    if (pathq === '/v1/enroll') {
      const req = JSON.parse(B.fromUtf8(body))
      const refusal = await this.auth('POST', pathq, headers, body, B.fromHex(req.public_key))
      if (refusal) return refusal
      const state = this.tokens.get(req.token)
      if (state === 'used') return this.error(403, 'this enrollment token has already been used; ask the case\'s operator for a new invite')
      if (state === 'expired') return this.error(403, "this enrollment token has expired; ask the case's operator for a new invite")
      if (state !== 'ok') return this.error(403, 'the enrollment token is not one this server issued')
      this.tokens.set(req.token, 'used')
      const deviceId = await I.deviceIdOf(B.fromHex(req.public_key))
      this.devices.set(deviceId, { publicKey: B.fromHex(req.public_key), revoked: false })
      return this.json(200, { device_id: deviceId, case_id: CASE, case_name: 'riverside', role: 'reporter', case_keys: this.caseKeys })
    }
    const device = this.devices.get(headers['x-fieldsync-device'])
    if (!device) return this.error(401, 'device is not enrolled on this server')
    const signedBody = pathq.startsWith('/v1/uploads') ? new Uint8Array() : body
    const refusal = await this.auth(init.method, pathq, headers, signedBody, device.publicKey)
    if (refusal) return refusal
    if (device.revoked) return this.error(403, `device ${headers['x-fieldsync-device']} was revoked; it can no longer sync`)
    if (pathq === '/v1/case-keys') return this.json(200, { case_keys: this.caseKeys })
    if (pathq === '/v1/sync') {
      const response = await this.sync(headers['x-fieldsync-device'], JSON.parse(B.fromUtf8(body)))
      if (this.afterCommit) {
        const hook = this.afterCommit
        this.afterCommit = null
        return hook(response)
      }
      return this.json(200, response)
    }
    return this.error(404, 'no such route')
  }

  /** Adds a change made elsewhere (a coordinator) to a report, into the feed. */
  async inject(id, bytes, sig, deviceId = 'coordinator') {
    const doc = this.docs.get(id)
    const [next] = A.applyChanges(doc, [bytes])
    this.docs.set(id, next)
    const { hash } = A.decodeChange(bytes)
    this.sigs.set(hash, sig)
    this.feed.push({ seq: this.feed.length + 1, id, hash, device: deviceId })
  }

  async sync(deviceId, req) {
    assert.equal(req.version, 1)
    const docs = []
    for (const offer of req.docs) {
      let doc = this.docs.get(offer.id) ?? A.init()
      const sent = new Set()
      const refused = []
      const refusedHashes = new Set()
      for (const c of offer.changes) {
        const bytes = B.fromBase64(c.bytes)
        const d = A.decodeChange(bytes)
        sent.add(d.hash)
        if (S.hasChange(doc, d.hash)) continue
        if (d.deps.some((h) => refusedHashes.has(h) || !S.hasChange(doc, h))) {
          refused.push({ hash: d.hash, reason: 'missing_dependency', message: 'the change depends on a change the server does not have or refused' })
          refusedHashes.add(d.hash)
          continue
        }
        const [trial] = A.applyChanges(A.clone(doc), [bytes])
        if (R.readReport(trial).title === this.refuseTitle) {
          refused.push({ hash: d.hash, reason: 'invalid_report', message: 'the title is refused by this test server' })
          refusedHashes.add(d.hash)
          continue
        }
        doc = trial
        this.sigs.set(d.hash, B.fromBase64(c.sig))
        this.feed.push({ seq: this.feed.length + 1, id: offer.id, hash: d.hash, device: deviceId })
      }
      if (A.getHeads(doc).length) this.docs.set(offer.id, doc)
      const known = offer.base_heads.filter((h) => S.hasChange(doc, h))
      const changes = A.getHeads(doc).length
        ? A.getChangesSince(doc, known).filter((b) => !sent.has(A.decodeChange(b).hash))
        : []
      docs.push({
        id: offer.id,
        changes: changes.map((b) => ({ bytes: B.toBase64(b), sig: B.toBase64(this.sigs.get(A.decodeChange(b).hash)) })),
        heads: A.getHeads(doc),
        complete: true,
        refused,
      })
    }
    // The feed: others' changes after the cursor, bounded.
    let cursor = req.cursor
    let n = 0
    let more = false
    for (const e of this.feed) {
      if (e.seq <= req.cursor) continue
      if (n >= this.maxFeedChanges) {
        more = true
        break
      }
      cursor = e.seq
      if (e.device === deviceId || req.docs.some((d) => d.id === e.id)) continue
      const bytes = A.getChangesSince(this.docs.get(e.id), []).find((b) => A.decodeChange(b).hash === e.hash)
      let doc = docs.find((d) => d.id === e.id)
      if (!doc) docs.push((doc = { id: e.id, changes: [], heads: [], complete: false, refused: [] }))
      doc.changes.push({ bytes: B.toBase64(bytes), sig: B.toBase64(this.sigs.get(e.hash)) })
      n += 1
    }
    // As answer_from_feed: heads only once the device has caught up on that report.
    for (const d of docs) {
      if (d.complete) continue
      const last = Math.max(...this.feed.filter((e) => e.id === d.id).map((e) => e.seq))
      if (last <= cursor) Object.assign(d, { heads: A.getHeads(this.docs.get(d.id)), complete: true })
    }
    return { version: 1, docs, cursor, more }
  }
}

async function enrolledPhone(server, opts = {}) {
  const store = await newStore()
  const phone = await Device.open({ store, fetch: server.fetch, wasm, ...opts })
  await phone.enroll({ server: 'http://127.0.0.1:9', token: 'good', fingerprint: opts.fingerprint ?? null })
  return { phone, store }
}

const draft = (title, extra = {}) => ({ title, when: '2026-11-30T10:40:00+05:00', description: `about ${title}`, ...extra })

test('an invite link gives the token and the fingerprint; the pinned key is taken, a substituted one refused', async () => {
  assert.deepEqual(parseInviteFragment('#invite=tok123&fp=abcdefghijklmnopqrstuv'), { token: 'tok123', fingerprint: 'abcdefghijklmnopqrstuv' })
  assert.deepEqual(parseInviteFragment('#invite=tok123'), { token: 'tok123', fingerprint: null })
  assert.equal(parseInviteFragment('#nothing'), null)

  const real = await publishedKey(1)
  const fake = await publishedKey(1)
  let server = new FakeServer()
  server.caseKeys = [fake.record, real.record]
  let { phone } = await enrolledPhone(server, { fingerprint: real.fingerprint })
  assert.equal(phone.status, 'ready')
  assert.equal(phone.info.keyFingerprint, real.fingerprint)
  assert.equal(phone.info.keyOnTrust, false)

  server = new FakeServer()
  server.caseKeys = [fake.record]
  ;({ phone } = await enrolledPhone(server, { fingerprint: real.fingerprint }))
  assert.equal(phone.info.keyFingerprint, null, 'the substituted key is not taken')
  assert.deepEqual(phone.info.keyRefused.map((r) => r.reason), ['not_the_fingerprint'])
  const id = await phone.saveDraft(draft('x'))
  await assert.rejects(phone.addFile(id, new Uint8Array(10), { name: 'a.jpg', type: 'image/jpeg' }), { code: 'no_case_key' })
  // A later sync brings the real key: taken, as the pin names it.
  server.caseKeys = [fake.record, real.record]
  const result = await phone.sync()
  assert.equal(result.error, null)
  assert.equal(phone.info.keyFingerprint, real.fingerprint)

  // Without a fingerprint: on trust, and said so.
  server = new FakeServer()
  server.caseKeys = [fake.record]
  ;({ phone } = await enrolledPhone(server))
  assert.equal(phone.info.keyFingerprint, fake.fingerprint)
  assert.equal(phone.info.keyOnTrust, true)
  // A rotation signed by another device is refused; the held epoch's substitute too.
  const other = await publishedKey(2)
  server.caseKeys = [fake.record, other.record, real.record]
  await phone.sync()
  assert.equal(phone.info.keyFingerprint, fake.fingerprint)
  assert.deepEqual(phone.info.keyRefused.map((r) => r.reason).sort(), ['substituted', 'untrusted_signer'])
})

test('a file whose sealing fails midway leaves no sealed part behind (changed, unreadable, disk full)', async () => {
  const server = new FakeServer()
  server.caseKeys = [(await publishedKey(1)).record]
  const { phone, store } = await enrolledPhone(server)
  const id = await phone.saveDraft(draft('with photo'))
  const MiB = 1024 * 1024
  // A 3 MiB file read in 1 MiB slices: the hash pass, then the sealing pass.
  const file = (onRead) => {
    let reads = 0
    return {
      size: 3 * MiB,
      name: 'clip.mp4',
      type: 'video/mp4',
      slice: (start, end) => ({ arrayBuffer: async () => onRead(++reads, start, end) }),
    }
  }
  const changed = file((n, start, end) => new Uint8Array(end - start).fill(n > 3 ? 2 : 1))
  await assert.rejects(phone.addFile(id, changed), { code: 'changed' })
  const unreadable = file((n, start, end) => {
    if (n === 6) throw Object.assign(new Error('the file could not be read'), { name: 'NotReadableError' })
    return new Uint8Array(end - start)
  })
  await assert.rejects(phone.addFile(id, unreadable), /could not be read/)
  const put = store.put.bind(store)
  store.put = async (kind, key, value) => {
    if (kind === 'blobs' && key.endsWith('.2')) throw Object.assign(new Error('the disk is full'), { code: 'storage_full' })
    return put(kind, key, value)
  }
  await assert.rejects(phone.addFile(id, file((n, start, end) => new Uint8Array(end - start))), { code: 'storage_full' })
  store.put = put
  assert.deepEqual(await store.keys('blobs'), [], 'no sealed part is left behind')
  assert.deepEqual(await store.keys('outbox'), [])
  assert.deepEqual((await store.get('drafts', id)).files ?? [], [])
  // The same file attached again once it can be read goes in whole.
  const entry = await phone.addFile(id, file((n, start, end) => new Uint8Array(end - start)))
  assert.equal(entry.size, 3 * MiB)
  assert.ok((await store.keys('blobs')).length >= 3)
})

test('used, expired and unknown invites are typed errors; a bad fingerprint is refused before any request', async () => {
  const server = new FakeServer()
  server.tokens.set('old', 'expired').set('spent', 'used')
  for (const [token, code] of [['old', 'invite_expired'], ['spent', 'invite_used'], ['made-up', 'invite_unknown']]) {
    const phone = await Device.open({ store: await newStore(), fetch: server.fetch, wasm })
    await assert.rejects(phone.enroll({ server: 'http://x', token }), { code })
    assert.equal(phone.status, 'new')
  }
  const phone = await Device.open({ store: await newStore(), fetch: server.fetch, wasm })
  const before = server.requests.length
  await assert.rejects(phone.enroll({ server: 'http://x', token: 'good', fingerprint: 'short' }), { code: 'fingerprint_invalid' })
  assert.equal(server.requests.length, before)
})

test('the device key is stored only as PKCS#8 in a store record and held non-extractable', async () => {
  const server = new FakeServer()
  const { phone, store } = await enrolledPhone(server)
  const rec = await store.get('meta', 'identity')
  assert.ok(rec.pkcs8 instanceof Uint8Array)
  assert.equal(phone.identity.privateKey.extractable, false)
  const reopened = await Device.open({ store, fetch: server.fetch, wasm })
  assert.equal(reopened.identity.actorId, phone.identity.actorId)
  assert.equal(reopened.status, 'ready')
})

test('a clock a day off is corrected once and kept; ten years off is refused and changes nothing', async () => {
  const server = new FakeServer()
  const { phone, store } = await enrolledPhone(server)
  await phone.saveReport(draft('one'))
  server.clockMs = Date.now() + 86_400_000
  let result = await phone.sync()
  assert.equal(result.error, null)
  assert.equal(result.sent, 1)
  const kept = (await store.get('meta', 'sync')).clockOffset
  assert.ok(Math.abs(kept - 86_400) <= 2, `offset ${kept}`)
  server.clockMs = Date.now() + 10 * 365 * 86_400_000
  result = await phone.sync()
  assert.equal(result.error.code, 'clock')
  assert.equal((await store.get('meta', 'sync')).clockOffset, kept)
})

test('many reports go in bounded rounds, each request under the bound, each report once', async () => {
  // The bound is 1 MiB by default (DEFAULT_MAX_REQUEST_BYTES); a small one
  // here keeps the test fast: Automerge text costs one op per character.
  assert.equal(S.DEFAULT_MAX_REQUEST_BYTES, 1024 * 1024)
  const BOUND = 16 * 1024
  const server = new FakeServer()
  const { phone } = await enrolledPhone(server, { maxRequestBytes: BOUND })
  const ids = []
  for (let i = 0; i < 12; i++) ids.push(await phone.saveReport(draft(`big ${i}`, { description: 'x'.repeat(3000) })))
  const result = await phone.sync()
  assert.equal(result.error, null)
  const syncs = server.requests.filter((r) => r.path === '/v1/sync')
  assert.ok(syncs.length >= 2, `${syncs.length} requests`)
  for (const r of syncs) assert.ok(r.bytes <= BOUND, `a request of ${r.bytes} bytes`)
  assert.equal(result.sent, 12)
  assert.equal(result.rounds, syncs.length)
  assert.deepEqual([...server.docs.keys()].sort(), [...ids].sort())
  assert.ok((await phone.myReports()).every((r) => r.state === 'sent'))
  // Nothing left: the next sync sends nothing.
  const again = await phone.sync()
  assert.equal(again.sent, 0)
})

test('the feed drains in rounds while more is true, and the cursor only moves forward', async () => {
  const server = new FakeServer()
  const { phone, store } = await enrolledPhone(server)
  const id = await phone.saveReport(draft('watched'))
  const first = await phone.sync()
  assert.equal(first.sent, 1)
  const coord = await I.DeviceIdentity.fromPkcs8((await I.generateDeviceKey()).pkcs8)
  let doc = A.clone(server.docs.get(id), { actor: coord.actorId })
  for (let i = 0; i < 5; i++) {
    const { doc: next, change } = await R.editReport({ identity: coord, doc, edits: { appendDescription: ` +${i}` }, nowMs: Date.now() })
    doc = next
    await server.inject(id, change.bytes, change.sig)
  }
  server.maxFeedChanges = 2
  const result = await phone.sync()
  assert.equal(result.error, null)
  assert.equal(result.received, 5)
  // Round 1 brings two of five and the report is not caught up; the next
  // rounds bring the rest from the feed (nothing is offered back).
  assert.ok(result.rounds >= 2, JSON.stringify({ ...result, error: String(result.error) }))
  assert.equal((await phone.report(id)).description, 'about watched +0 +1 +2 +3 +4')
  const cursor = (await store.get('meta', 'sync')).cursor
  assert.equal(cursor, server.feed.length)
  // A late answer with an older cursor does not move it back, nor change the report.
  await phone._complete({ docs: [] }, { version: 1, docs: [], cursor: 1, more: false }, { dropped: 0 })
  assert.equal((await store.get('meta', 'sync')).cursor, cursor)
})

test('changes the feed brought are never offered back to the server, even before the report is caught up', async () => {
  const server = new FakeServer()
  const { phone, store } = await enrolledPhone(server)
  const id = await phone.saveReport(draft('watched'))
  assert.equal((await phone.sync()).sent, 1)
  const coord = await I.DeviceIdentity.fromPkcs8((await I.generateDeviceKey()).pkcs8)
  const fromServer = new Set()
  let doc = A.clone(server.docs.get(id), { actor: coord.actorId })
  for (let i = 0; i < 12; i++) {
    const { doc: next, change } = await R.editReport({ identity: coord, doc, edits: { appendDescription: ` +${i} ${'words '.repeat(40)}` }, nowMs: Date.now() })
    doc = next
    await server.inject(id, change.bytes, change.sig)
    fromServer.add(change.hash)
  }
  // A report this phone never had (a coordinator's phone reads others' reports).
  const other = await R.createReport({ identity: coord, caseId: CASE, nowMs: Date.now(), fields: { title: 'theirs', occurredAt: '2026-11-30T10:40:00+05:00', description: 'x'.repeat(2000) } })
  const otherId = R.readReport(other.doc).id
  server.docs.set(otherId, A.init())
  for (const c of other.changes) {
    await server.inject(otherId, c.bytes, c.sig)
    fromServer.add(c.hash)
  }
  // The phone's own new report goes out once, alongside.
  const mine = await phone.saveReport(draft('mine'))
  const offered = []
  const answer = server.sync.bind(server)
  server.sync = async (device, req) => {
    for (const d of req.docs) for (const c of d.changes) offered.push({ id: d.id, hash: A.decodeChange(B.fromBase64(c.bytes)).hash, bytes: B.fromBase64(c.bytes).length })
    return answer(device, req)
  }
  server.maxFeedChanges = 3
  const result = await phone.sync()
  assert.equal(result.error, null)
  const back = offered.filter((o) => fromServer.has(o.hash))
  assert.equal(back.reduce((n, o) => n + o.bytes, 0), 0, `${back.length} changes the server sent were offered back`)
  assert.ok(result.rounds >= 4, `${result.rounds} rounds`)
  assert.deepEqual(offered.map((o) => o.id), [mine], "the phone's own report, once")
  assert.equal(result.received, 12 + other.changes.length)
  assert.match((await phone.report(id)).description, /\+11 /)
  assert.equal((await phone.report(otherId)).title, 'theirs')
  // Caught up, the phone acknowledges exactly the server's heads, and nothing is pending.
  assert.deepEqual([...(await store.get('reports', id)).acked].sort(), [...A.getHeads(server.docs.get(id))].sort())
  for (const r of await phone.myReports()) assert.equal(r.state, 'sent', r.id)
  offered.length = 0
  assert.equal((await phone.sync()).sent, 0)
  assert.equal(offered.length, 0)
})

test('a refused change and everything built on it stay on the phone with the reason and are never sent again', async () => {
  const server = new FakeServer()
  const { phone } = await enrolledPhone(server)
  const ok = await phone.saveReport(draft('fine'))
  const bad = await phone.saveReport(draft('REFUSE ME'))
  await phone.editReport(bad, { description: 'built on the refused creation' })
  let result = await phone.sync()
  assert.equal(result.error, null)
  assert.deepEqual(result.refused.map((r) => r.reason), ['invalid_report', 'missing_dependency'])
  const list = await phone.myReports()
  const badRow = list.find((r) => r.id === bad)
  assert.equal(badRow.state, 'refused')
  assert.equal(badRow.refusal.reason, 'invalid_report')
  assert.equal(list.find((r) => r.id === ok).state, 'sent')
  const kept = await phone.report(bad)
  assert.equal(kept.description, 'built on the refused creation')
  assert.equal(kept.refused.length, 2)
  // An edit on top of the refused chain is not offered either.
  await phone.editReport(bad, { title: 'REFUSE ME again' })
  const before = server.requests.length
  result = await phone.sync()
  assert.equal(result.sent, 0)
  const body = server.requests.slice(before).find((r) => r.path === '/v1/sync')
  assert.ok(body.bytes < 200, 'an empty offer')
  assert.equal(server.docs.has(bad), false)
})

test('an answer lost after the server committed: the next sync resends, the server keeps one copy, the phone acknowledges once', async () => {
  const server = new FakeServer()
  const { phone } = await enrolledPhone(server)
  const id = await phone.saveReport(draft('cut'))
  let captured
  server.afterCommit = (response) => {
    captured = response
    throw new TypeError('fetch failed: connection reset')
  }
  let result = await phone.sync()
  assert.equal(result.error.code, 'network')
  assert.equal((await phone.myReports())[0].state, 'waiting')
  assert.equal(server.feed.length, 1)
  result = await phone.sync()
  assert.equal(result.error, null)
  assert.equal(server.feed.length, 1, 'one copy on the server')
  assert.equal((await phone.myReports())[0].state, 'sent')
  // The lost answer arriving late (duplicated) changes nothing.
  const before = await phone.report(id)
  await phone._complete({ docs: [{ changes: [] }] }, S.parseResponse(captured), { dropped: 0 })
  assert.deepEqual(await phone.report(id), before)
  assert.equal((await phone.myReports())[0].state, 'sent')
})

test('a revoked phone is told how many reports did not go out', async () => {
  const server = new FakeServer()
  const { phone } = await enrolledPhone(server)
  await phone.saveReport(draft('a'))
  await phone.sync()
  await phone.saveReport(draft('b'))
  await phone.saveReport(draft('c'))
  for (const d of server.devices.values()) d.revoked = true
  const result = await phone.sync()
  assert.equal(result.error.code, 'revoked')
  assert.equal(result.error.unsent, 2)
})

test('delete-after-sync removes acknowledged content, keeps a count, and drops what the feed brings later for it', async () => {
  const server = new FakeServer()
  const { phone, store } = await enrolledPhone(server)
  await phone.setSettings({ deleteAfterSync: true })
  const id = await phone.saveReport(draft('secret title', { people: [{ name: 'Witness Name', role: 'witness', note: '' }] }))
  const waiting = await phone.saveReport(draft('REFUSE ME'))
  let result = await phone.sync()
  assert.equal(result.error, null)
  assert.equal(phone.removedCount, 1)
  assert.equal(await phone.report(id), null)
  assert.notEqual(await phone.report(waiting), null, 'a refused report stays to show why')
  const rec = await store.get('reports', id)
  assert.deepEqual(rec, { id, removed: true })
  const coord = await I.DeviceIdentity.fromPkcs8((await I.generateDeviceKey()).pkcs8)
  const { change } = await R.editReport({ identity: coord, doc: A.clone(server.docs.get(id), { actor: coord.actorId }), edits: { appendDescription: ' reviewed' }, nowMs: Date.now() })
  await server.inject(id, change.bytes, change.sig)
  result = await phone.sync()
  assert.equal(result.error, null)
  assert.equal(result.dropped, 1)
  assert.deepEqual(await store.get('reports', id), { id, removed: true })
  // Reopened, the count is still there.
  const reopened = await Device.open({ store, fetch: server.fetch, wasm })
  assert.equal(reopened.removedCount, 1)
})
