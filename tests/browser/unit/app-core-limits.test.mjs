// change_limits.mjs: a change from a hostile server or a relayed bundle is
// bounded from its bytes before Automerge reads it, with the verdicts of
// sync-core/src/change_limits.rs. Cases: the app's own honest changes (which
// must pass, counted as Automerge counts them), changes crafted byte by byte
// as change_limits/craft.rs crafts them, the fuzz seeds and regressions the
// Rust fuzzer keeps, and (when present) the Rust-written vector file
// sync-core/tests/vectors/hostile-changes.json.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const lib = (m) => import(path.join(root, 'server/app/lib', m))
const L = await lib('change_limits.mjs')
const R = await lib('report.mjs')
const S = await lib('sync.mjs')
const I = await lib('identity.mjs')
const B = await lib('bytes.mjs')
await R.initAutomerge(fs.readFileSync(path.join(root, 'server/app/vendor/automerge/automerge.wasm')))
const A = R.A
const CASE = 'c0ffee00c0ffee00c0ffee00c0ffee00'
const T0 = 1_796_000_000_000
const newIdentity = async () => I.DeviceIdentity.fromPkcs8((await I.generateDeviceKey()).pkcs8)

// ---- craft.rs, in JS: chunks Automerge would never make.
function uleb(out, v) {
  let x = BigInt(v)
  for (;;) {
    const b = Number(x & 0x7fn)
    x >>= 7n
    if (x === 0n) return out.push(b)
    out.push(b | 0x80)
  }
}
function sleb(out, v) {
  let x = BigInt(v)
  for (;;) {
    const b = Number(x & 0x7fn)
    x >>= 7n
    const done = (x === 0n && (b & 0x40) === 0) || (x === -1n && (b & 0x40) !== 0)
    if (done) return out.push(b)
    out.push(b | 0x80)
  }
}
function chunk(kind, body) {
  const hashed = [kind]
  uleb(hashed, body.length)
  hashed.push(...body)
  const hash = crypto.createHash('sha256').update(Uint8Array.from(hashed)).digest()
  return Uint8Array.from([0x85, 0x6f, 0x4a, 0x83, ...hash.subarray(0, 4), ...hashed])
}
function changeChunk({ deps = [], actor, seq = 1, startOp = 1, timeMs = T0, others = [] }, columns) {
  const body = []
  uleb(body, deps.length)
  for (const d of deps) body.push(...d)
  uleb(body, actor.length)
  body.push(...actor)
  uleb(body, seq)
  uleb(body, startOp)
  sleb(body, timeMs)
  uleb(body, 0) // message
  uleb(body, others.length)
  for (const o of others) {
    uleb(body, o.length)
    body.push(...o)
  }
  uleb(body, columns.length)
  for (const [spec, data] of columns) {
    uleb(body, spec)
    uleb(body, data.length)
  }
  for (const [, data] of columns) body.push(...data)
  return chunk(1, body)
}
const run = (n, value) => {
  const d = []
  sleb(d, n > 2n ** 63n - 1n ? 2n ** 63n - 1n : n)
  value(d)
  return d
}
function runOfPuts(header, key, n) {
  const big = BigInt(n)
  const inserts = []
  uleb(inserts, big)
  return changeChunk(header, [
    [(1 << 4) | 5, run(big, (d) => { uleb(d, key.length); d.push(...Buffer.from(key)) })],
    [(3 << 4) | 4, inserts],
    [(4 << 4) | 2, run(big, (d) => uleb(d, 1))],
    [(5 << 4) | 6, run(big, (d) => uleb(d, 0))],
    [7 << 4, run(big, (d) => uleb(d, 0))],
  ])
}
const one = (v) => run(1n, (d) => uleb(d, v))
const oneTitle = () => run(1n, (d) => { uleb(d, 5); d.push(...Buffer.from('title')) })
const ACTOR = new Uint8Array(32).fill(7)
const hashOf = (bytes) => crypto.createHash('sha256').update(bytes.subarray(8)).digest()

const verdict = (bytes) => {
  try {
    return { ok: L.checkChange(bytes) }
  } catch (e) {
    if (!(e instanceof L.LimitError)) throw e
    return { error: e }
  }
}

test('the limits are the Rust ones', () => {
  assert.equal(L.MAX_DESCRIPTION_BYTES, R.MAX_DESCRIPTION_BYTES)
  assert.equal(L.DELETE_ALLOWANCE, 256 * 1024 + 16 * 1024)
  assert.equal(L.maxOps(100), 4296)
})

test("every change the app makes passes and is counted as Automerge counts it, the longest description's deletion included", async () => {
  const identity = await newIdentity()
  const { doc: d0, changes } = await R.createReport({ identity, caseId: CASE, nowMs: T0, fields: { title: 'Arrests at the bus stop', occurredAt: '2016-05-21T10:40:00+06:00', description: 'Aleksey was arrested.', tags: ['arrest', 'police'], place: { name: 'Almaty', lat: 43.2, lon: 76.9 } } })
  let doc = d0
  const all = [...changes]
  for (const edits of [
    { appendDescription: ' Two officers.' },
    { title: 'Arrests', addTags: ['night'] },
    { removeTags: ['police'] },
    { appendDescription: 'x'.repeat(R.MAX_DESCRIPTION_BYTES - 35) },
  ]) {
    const out = await R.editReport({ identity, doc, edits, nowMs: T0 + all.length })
    doc = out.doc
    all.push(out.change)
  }
  // Then the whole description deleted in one change: the most deletes an honest change makes.
  doc = A.change(doc, { time: T0 + 100 }, (d) => A.splice(d, ['description'], 0, R.MAX_DESCRIPTION_BYTES, ''))
  const emptied = A.getLastLocalChange(doc)
  for (const c of all) {
    const shape = L.checkChange(c.bytes)
    assert.equal(shape.ops, A.decodeChange(c.bytes).ops.length)
  }
  const shape = L.checkChange(emptied)
  assert.equal(shape.deletes, R.MAX_DESCRIPTION_BYTES)
  assert.ok(emptied.length < 1024, 'deleting a whole description costs few bytes, which is why deletes have an allowance')
})

test('a crafted run is what Automerge reads it as', () => {
  const bytes = runOfPuts({ actor: ACTOR }, 'title', 3)
  assert.equal(A.decodeChange(bytes).ops.length, 3)
  assert.equal(L.checkChange(bytes).ops, 3)
})

test('runs declaring millions of operations are refused unexpanded, in time linear in their bytes', () => {
  for (const n of [1_000_000n, 10_000_000n, 1n << 62n]) {
    const bytes = runOfPuts({ actor: ACTOR }, 'title', n)
    assert.ok(bytes.length < 200, `${bytes.length} bytes`)
    const started = performance.now()
    const { error } = verdict(bytes)
    assert.equal(error?.kind, 'too_many_ops')
    assert.equal(error.what, 'inserts and puts')
    assert.equal(BigInt(error.declared), n)
    assert.match(error.message, new RegExp(`declares ${n} operations \\(inserts and puts\\) but a change of ${bytes.length} bytes may carry at most ${2 * bytes.length + 4096}`))
    assert.ok(performance.now() - started < 50)
  }
})

test('predecessor bombs, delete runs past the allowance and over-long columns are refused', () => {
  const pred = run(1n, (d) => uleb(d, 1n << 40n))
  const bomb = changeChunk({ actor: ACTOR }, [[(1 << 4) | 5, oneTitle()], [(4 << 4) | 2, one(1)], [(5 << 4) | 6, one(0)], [7 << 4, pred]])
  assert.equal(verdict(bomb).error?.what, 'predecessors')
  // Deletes of consecutive characters cost a few bytes: held to the allowance.
  const deletes = (n) => changeChunk({ actor: ACTOR }, [[(4 << 4) | 2, run(BigInt(n), (d) => uleb(d, 3))], [7 << 4, run(BigInt(n), (d) => uleb(d, 1))]])
  assert.equal(L.checkChange(deletes(L.DELETE_ALLOWANCE)).deletes, L.DELETE_ALLOWANCE)
  const past = verdict(deletes(L.DELETE_ALLOWANCE + 1)).error
  assert.equal(past?.what, 'deletes')
  assert.equal(past.declared, L.DELETE_ALLOWANCE + 1)
  // One op, but a key column declaring a million rows.
  const rows = changeChunk({ actor: ACTOR }, [[(1 << 4) | 5, run(1_000_000n, (d) => { uleb(d, 5); d.push(...Buffer.from('title')) })], [(4 << 4) | 2, one(1)], [(5 << 4) | 6, one(0)], [7 << 4, one(0)]])
  assert.equal(verdict(rows).error?.what, 'rows of one column')
})

test('compressed chunks, compressed columns, other chunk kinds and every truncation are refused without a throw of another kind', async () => {
  const identity = await newIdentity()
  const { changes } = await R.createReport({ identity, caseId: CASE, nowMs: T0, fields: { title: 'report', occurredAt: '2026-11-30T10:40:00+05:00', description: 'The van left.' } })
  const bytes = changes[0].bytes
  const compressed = bytes.slice()
  compressed[8] = 2
  assert.equal(verdict(compressed).error?.kind, 'compressed')
  assert.equal(verdict(changeChunk({ actor: ACTOR }, [[(4 << 4) | 8 | 2, [1, 1]]])).error?.kind, 'compressed')
  const docChunk = bytes.slice()
  docChunk[8] = 0
  assert.equal(verdict(docChunk).error?.kind, 'not_a_change')
  for (let cut = 0; cut < bytes.length; cut++) assert.ok(verdict(bytes.subarray(0, cut)).error, `cut at ${cut}`)
  assert.ok(verdict(Uint8Array.from([...bytes, 0])).error)
  // Bad magic, too many columns, a spec past 32 bits, an integer past 64 bits.
  const magic = bytes.slice()
  magic[0] = 0
  assert.equal(verdict(magic).error?.detail, 'bad magic bytes')
  const cols = Array.from({ length: 65 }, (_, i) => [(i + 1) << 4, []])
  assert.equal(verdict(changeChunk({ actor: ACTOR }, cols)).error?.detail, 'too many columns')
  assert.equal(verdict(changeChunk({ actor: ACTOR }, [[2 ** 33, []]])).error?.detail, 'a column specification past 32 bits')
  const body = [0, 32, ...ACTOR, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
  assert.equal(verdict(chunk(1, body)).error?.detail, 'an integer past 64 bits')
})

test("an actor index past the change's actors is refused (Automerge's decode panics on it)", () => {
  const bytes = changeChunk({ actor: ACTOR }, [
    [(1 << 4) | 5, oneTitle()],
    [(3 << 4) | 4, [1]],
    [(4 << 4) | 2, one(1)],
    [(5 << 4) | 6, one(0)],
    [7 << 4, one(1)],
    [(7 << 4) | 1, one(3)],
    [(7 << 4) | 3, one(1)],
  ])
  assert.equal(verdict(bytes).error?.detail, "an actor index past the change's actors")
})

test("the Rust fuzzer's hostile seeds and regressions get the Rust verdicts", () => {
  const changesOf = (file) => {
    const raw = fs.readFileSync(path.join(root, 'tests/fuzz', file))
    const json = JSON.parse(raw.subarray(1).toString()) // the first byte picks the fuzzer's requester
    return json.docs.flatMap((d) => d.changes.map((c) => B.fromBase64(c.bytes)))
  }
  const kinds = (file) => changesOf(file).map((b) => verdict(b).error?.kind ?? 'ok')
  assert.deepEqual(kinds('seeds/sync_request/ops-10-million.json'), ['too_many_ops'])
  assert.deepEqual(kinds('seeds/sync_request/ops-2-pow-62.json'), ['too_many_ops'])
  assert.deepEqual(kinds('seeds/sync_request/inflation-bomb.json'), ['compressed'])
  const regression = changesOf('regressions/sync_request/actor-index-past-the-changes-actors').map((b) => verdict(b).error?.detail ?? 'ok')
  assert.ok(regression.includes("an actor index past the change's actors"), regression.join())
  for (const f of ['create.json', 'edit.json', 'relay-two-reports.json', 'review-by-coordinator.json', 'web-session-relayed.json']) {
    for (const k of kinds(`seeds/sync_request/${f}`)) assert.equal(k, 'ok', f)
  }
})

const VECTORS = path.join(root, 'sync-core/tests/vectors/hostile-changes.json')
test('the Rust-written hostile change vectors (hostile-changes.json) get the same verdicts and messages', () => {
  const v = JSON.parse(fs.readFileSync(VECTORS, 'utf8'))
  assert.ok(v.cases.length >= 15)
  for (const c of v.cases) {
    const got = verdict(B.fromBase64(c.bytes_b64))
    if (c.verdict === 'ok') {
      assert.ok(got.ok, `${c.name}: ${got.error?.message}`)
      assert.deepEqual(got.ok, { ops: Number(c.ops), deletes: Number(c.deletes), preds: Number(c.preds) }, c.name)
      continue
    }
    assert.equal(got.error?.kind, c.verdict, `${c.name}: ${got.error?.message ?? 'passed'}`)
    assert.equal(got.error.message, c.message, c.name)
  }
})

test("absorb refuses a signed change out of bounds before Automerge reads it, and the phone's document is untouched", async () => {
  const identity = await newIdentity()
  const { doc, changes } = await R.createReport({ identity, caseId: CASE, nowMs: T0, fields: { title: 'report', occurredAt: '2026-11-30T10:40:00+05:00', description: 'The van left.' } })
  // A change by an enrolled actor, correctly signed, declaring a million puts in ~100 bytes.
  const header = { actor: identity.publicKey, seq: 2, startOp: 100, deps: [B.fromHex(changes[0].hash)] }
  for (const n of [1_000_000n, 1n << 62n]) {
    const bytes = runOfPuts(header, 'title', n)
    const sig = await identity.signChangeHash(hashOf(bytes))
    const started = performance.now()
    await assert.rejects(S.absorb(doc, { id: 'a'.repeat(32), changes: [{ bytes, sig }], heads: [], complete: false, refused: [] }), (e) => e.code === 'server_change' && /out of bounds/.test(e.message))
    assert.ok(performance.now() - started < 100, `${performance.now() - started} ms`)
  }
  assert.equal(R.readReport(doc).title, 'report')
  // Automerge is still sound afterwards: an honest change applies.
  const next = await R.editReport({ identity, doc, edits: { title: 'after' }, nowMs: T0 + 5 })
  assert.equal(R.readReport(next.doc).title, 'after')
})
