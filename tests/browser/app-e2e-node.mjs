// End to end, in node, against a real `fieldsync serve`: the app's device
// modules (server/app/lib/, with store.mjs over fake-indexeddb) enroll a
// phone from an invite link minted on a coordinator's CLI device, record
// reports (one with a photo), sync them, and the CLI coordinator reads them
// back: every field equal, every change signature_verified, the photo
// byte-identical. Then a concurrent description edit on both sides merges,
// and delete-after-sync removes acknowledged content from the phone.
//
//   node tests/browser/app-e2e-node.mjs [path/to/fieldsync]
//
// Default binary: target/debug/fieldsync. Exit code 0 when every check holds.

import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { indexedDB, IDBKeyRange } from 'fake-indexeddb'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '../..')
const lib = path.join(root, 'server/app/lib')
const { Device, parseInviteFragment } = await import(path.join(lib, 'device.mjs'))
const { openStore } = await import(path.join(lib, 'store.mjs'))
const BIN = path.resolve(process.argv[2] ?? path.join(root, 'target/debug/fieldsync'))
const wasm = fs.readFileSync(path.join(root, 'server/app/vendor/automerge/automerge.wasm'))

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fieldsync-app-e2e-'))
const data = path.join(tmp, 'data')
const coord = path.join(tmp, 'coordinator')
const step = (s) => console.log(`-- ${s}`)

function cli(args, opts = {}) {
  return execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', opts.stderr ?? 'pipe'], env: { ...process.env, FIELDSYNC_PASSPHRASE_FILE: '' } })
}
const coordCli = (...args) => cli(['--home', coord, ...args])

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

const port = await freePort()
const url = `http://127.0.0.1:${port}`
const server = spawn(BIN, ['serve', '--data', data, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] })
let serverLog = ''
server.stderr.on('data', (d) => (serverLog += d))
process.on('exit', () => server.kill('SIGKILL'))

async function waitHealthy() {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return
    } catch {}
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`the server did not start:\n${serverLog}`)
}

let failed = false
try {
  await waitHealthy()
  step('case, coordinator device, case key')
  cli(['admin', '--data', data, 'case', 'create', 'riverside'])
  const coordToken = cli(['admin', '--data', data, 'invite', '--case', 'riverside', '--role', 'coordinator']).trim()
  coordCli('device', 'init')
  coordCli('device', 'enroll', '--server', url, '--token', coordToken)
  coordCli('key', 'new', '--case', 'riverside')
  const link = coordCli('invite', '--role', 'reporter', '--link', url).trim().split('\n')[0]
  assert.match(link, /\/app\/#invite=[^&]+&fp=[A-Za-z0-9_-]{22}$/, `invite link: ${link}`)

  step('the phone enrolls from the link, with the fingerprint pinned')
  const store = await openStore({ indexedDB, IDBKeyRange, name: `e2e-${port}` })
  const phone = await Device.open({ store, fetch: globalThis.fetch, wasm })
  assert.equal(phone.status, 'new')
  const invite = parseInviteFragment(new URL(link).hash)
  const info = await phone.enroll({ server: new URL(link).origin, token: invite.token, fingerprint: invite.fingerprint })
  assert.equal(phone.status, 'ready')
  assert.equal(info.role, 'reporter')
  assert.equal(info.keyFingerprint, invite.fingerprint)
  assert.equal(info.keyOnTrust, false)
  // Another phone with the same link: the invite is used, a typed error.
  const other = await Device.open({ store: await openStore({ indexedDB, IDBKeyRange, name: `e2e-other-${port}` }), fetch: globalThis.fetch, wasm })
  await assert.rejects(other.enroll({ server: url, token: invite.token }), { code: 'invite_used' })
  await assert.rejects(other.enroll({ server: url, token: 'not-a-token' }), { code: 'invite_unknown' })
  assert.equal(other.status, 'new')

  step('three reports offline, one with a photo')
  const photo = new Uint8Array(200 * 1024)
  for (let i = 0; i < photo.length; i += 65536) crypto.getRandomValues(photo.subarray(i, i + 65536))
  const drafts = [
    { title: 'Detention at the bus station', when: '2026-11-30T10:40:00+05:00', approximate: true, place: { name: 'Central bus station', lat: 43.2567, lon: 76.9286 },
      description: 'Two people were taken into a van.', people: [{ name: 'A. B.', role: 'detainee', note: 'student' }], tags: ['police', 'detention'],
      timeline: [{ at: '2026-11-30T10:42:00+05:00', text: 'The van left north.', approximate: false }] },
    { title: 'Ünïcödé — «кириллица» 😀', when: '2026-11-30T11:00:00+05:00', place: { name: '' }, description: 'Қазақша мәтін\nsecond line' },
    { title: 'Photo of the van', when: '2026-11-30T11:05:00+05:00', description: 'see photo' },
  ]
  const ids = []
  for (const d of drafts) {
    const id = await phone.saveDraft(d)
    if (d.title.startsWith('Photo')) {
      const f = await phone.addFile(id, photo, { name: 'van.jpg', type: 'image/jpeg' })
      d.files = [f]
    }
    ids.push(await phone.saveReport({ ...d, id }))
  }
  assert.equal((await phone.drafts()).length, 0)
  assert.deepEqual((await phone.myReports()).map((r) => r.state), ['waiting', 'waiting', 'waiting'])

  step('the phone syncs')
  const progress = []
  const result = await phone.sync({ onProgress: (p) => progress.push(p) })
  if (result.error) throw result.error
  assert.equal(result.sent, 4, JSON.stringify(result))
  assert.equal(result.uploaded, 1)
  assert.deepEqual(result.refused, [])
  assert.deepEqual((await phone.myReports()).map((r) => r.state), ['sent', 'sent', 'sent'])
  assert.ok(progress.some((p) => p.phase === 'uploads'))

  step('the coordinator syncs and reads every field, every signature, the photo')
  coordCli('sync')
  for (const [i, id] of ids.entries()) {
    const shown = JSON.parse(coordCli('show', id, '--json'))
    const r = shown.report ?? shown
    const d = drafts[i]
    assert.equal(r.title, d.title)
    assert.equal(r.description, d.description)
    assert.equal(r.occurred_at, d.when)
    assert.equal(r.approximate, !!d.approximate)
    assert.equal(r.place.name, d.place?.name ?? '')
    assert.equal(r.place.lat, d.place?.lat ?? null)
    assert.equal(r.place.lon, d.place?.lon ?? null)
    assert.deepEqual(r.people, d.people ?? [])
    assert.deepEqual([...r.tags].sort(), [...(d.tags ?? [])].sort())
    assert.deepEqual(r.timeline, d.timeline ?? [])
    assert.equal(r.created_by, info.deviceId)
    assert.equal(r.case, info.caseId)
    const history = shown.history ?? shown.changes
    assert.ok(Array.isArray(history) && history.length >= 1, 'a change history')
    for (const c of history) assert.equal(c.signature_verified, true, JSON.stringify(c))
    if (d.files) {
      assert.equal(r.attachments.length, 1)
      const out = path.join(tmp, 'van.jpg')
      coordCli('attachment', 'get', r.attachments[0].id, '--out', out)
      assert.ok(Buffer.from(fs.readFileSync(out)).equals(Buffer.from(photo)), 'the photo decrypts byte-identical')
    }
  }

  step('concurrent edits: the coordinator reviews and edits the description, the phone edits it offline')
  const first = ids[0]
  coordCli('edit', first, '--status', 'verified', '--note', 'two witnesses confirm', '--text', 'Two people were taken into a white van.')
  coordCli('sync')
  await phone.editReport(first, { description: 'Two people were taken into a van at 10:40.' })
  const r2 = await phone.sync()
  if (r2.error) throw r2.error
  coordCli('sync')
  const mine = await phone.report(first)
  const theirs = JSON.parse(coordCli('show', first, '--json'))
  const tr = theirs.report ?? theirs
  assert.equal(mine.description, tr.description)
  assert.equal(mine.description, 'Two people were taken into a white van at 10:40.')
  assert.equal(mine.review.status, 'verified')
  assert.equal(tr.review.status, 'verified')
  assert.equal((await phone.myReports()).find((r) => r.id === first).state, 'reviewed')

  step('a sync bundle carried by hand: the coordinator imports it, signatures and the photo intact')
  const photo2 = crypto.getRandomValues(new Uint8Array(50 * 1024))
  const bundled = { title: 'Carried by hand', when: '2026-11-30T12:00:00+05:00', description: 'no network at all' }
  const bid = await phone.saveDraft(bundled)
  bundled.files = [await phone.addFile(bid, photo2, { name: 'b.jpg', type: 'image/jpeg' })]
  const bundledId = await phone.saveReport({ ...bundled, id: bid })
  const bundleFile = path.join(tmp, 'phone.fsb')
  fs.writeFileSync(bundleFile, await phone.bundle())
  coordCli('import', bundleFile)
  coordCli('sync')
  const shownB = JSON.parse(coordCli('show', bundledId, '--json'))
  assert.equal((shownB.report ?? shownB).title, bundled.title)
  for (const c of shownB.history ?? shownB.changes) assert.equal(c.signature_verified, true)
  const outB = path.join(tmp, 'b.jpg')
  coordCli('attachment', 'get', (shownB.report ?? shownB).attachments[0].id, '--out', outB)
  assert.ok(Buffer.from(fs.readFileSync(outB)).equals(Buffer.from(photo2)), 'the bundled photo decrypts byte-identical')
  // The phone's own sync later finds the server has it all: nothing doubles.
  const r4 = await phone.sync()
  if (r4.error) throw r4.error
  assert.equal((await phone.myReports()).find((r) => r.id === bundledId).state, 'sent')

  step('delete-after-sync: acknowledged content leaves the phone, the server keeps it')
  await phone.setSettings({ deleteAfterSync: true })
  assert.equal(phone.removedCount, 4)
  assert.equal(await phone.report(first), null)
  assert.equal((await store.list('blobs')).length, 0)
  coordCli('edit', first, '--append-text', ' (later note)')
  coordCli('sync')
  const r3 = await phone.sync()
  if (r3.error) throw r3.error
  assert.equal(r3.dropped, 1)
  assert.equal(await phone.report(first), null)
  const still = JSON.parse(coordCli('show', first, '--json'))
  assert.equal((still.report ?? still).title, drafts[0].title)
  console.log('ok: every check held')
} catch (e) {
  failed = true
  console.error('FAILED:', e)
  console.error(serverLog.split('\n').slice(-20).join('\n'))
} finally {
  server.kill('SIGTERM')
  if (!failed) fs.rmSync(tmp, { recursive: true, force: true })
  else console.error(`kept ${tmp}`)
}
process.exit(failed ? 1 : 0)
