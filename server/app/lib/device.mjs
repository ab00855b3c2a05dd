// The facade the app's UI calls: one reporter's phone. It composes the
// device modules (identity, requests, report, sync; the store, envelope,
// tus and bundle modules) and owns the records' layout in the store.
// No DOM: node's test runner drives it with an in-memory store and a fake
// or real server.
//
// Records (every value is encrypted by store.mjs; keys are ids only):
//   meta/identity     {pkcs8}                the device key; imported non-extractable
//   meta/enrollment   {server, deviceId, caseId, caseName, role, enrolledAt}
//   meta/sync         {cursor, clockOffset}  cursor only moves forward
//   meta/caseKeys     {trusted: [...], pin, onTrust, refused: [...]}
//   meta/removed      {count}                reports whose content left the phone
//   settings/settings {deleteAfterSync, lockAfterMinutes, language?}
//   drafts/<id>       the draft as the UI gave it
//   reports/<id>      {id, doc (Automerge save), acked, sigs {hash: sig}, refused
//                      {hash: {reason, message}}, mine, summary, updatedAt}
//                     or, once removed by delete-after-sync, {id, removed: true}
//   outbox/<fileId>   a sealed file: {fileId, draftId, reportId, blobId, size,
//                      header, keyEpoch, name, type, partSizes, tus, done}
//   blobs/<fileId>.<n> the sealed bytes, in ~1 MiB parts (never plaintext)
//
// Invariants kept here (as the CLI's replica keeps them):
// - acknowledged heads are what the server is known to hold: the heads it
//   returned for a report it answered completely, or, from an incomplete
//   feed answer, the changes it sent (never offered back); they and the
//   cursor only move forward;
// - a refused change and every change built on it stay on the phone, shown
//   with the server's reason, and are never offered again;
// - each round's results are written in one store transaction: a sync cut
//   at any moment loses nothing and, re-run, duplicates nothing;
// - with delete-after-sync on, a report leaves the phone only once every
//   change of it is acknowledged and all its files are uploaded; what the
//   feed brings later for it is dropped.

import { A, initAutomerge, createReport, editReport as editDoc, readReport, ReportError, rfc3339, isRfc3339 } from './report.mjs'
import { DeviceIdentity, generateDeviceKey, decideCaseKeys, parseFingerprint, caseKeyFingerprint } from './identity.mjs'
import { Client, AppError, RevokedError, enroll as enrollRequest } from './requests.mjs'
import { RequestBuilder, encodeRequest, parseResponse, absorb, pendingChanges, poisonedChanges, runRounds, changeHash, DEFAULT_MAX_REQUEST_BYTES } from './sync.mjs'
import { toBase64, toHex, randomBytes, fromHex, isHex, concat } from './bytes.mjs'

export { AppError } from './requests.mjs'
export { ReportError } from './report.mjs'

const DEFAULT_SETTINGS = Object.freeze({ deleteAfterSync: false, lockAfterMinutes: 0 })
const ID = /^[0-9a-f]{32}$/

function newId() {
  return toHex(randomBytes(16))
}

/** A time from the UI: RFC 3339 with offset (kept), a datetime-local string
 *  (read as this phone's local time, written with its offset), a Date or ms. */
function uiTime(value, field) {
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value === 'string') {
    if (isRfc3339(value)) return value
    const ms = new Date(value).getTime()
    if (!Number.isFinite(ms)) throw new ReportError(field, `${field} is not a time`)
    return rfc3339(ms)
  }
  const ms = value instanceof Date ? value.getTime() : Number(value)
  if (!Number.isFinite(ms)) throw new ReportError(field, `${field} is not a time`)
  return rfc3339(ms)
}

function coordinate(v) {
  if (v === undefined || v === null || v === '') return null
  const n = typeof v === 'number' ? v : Number(String(v).trim().replace(',', '.'))
  return Number.isFinite(n) ? n : NaN
}

function placeOf(place) {
  return { name: String(place?.name ?? ''), lat: coordinate(place?.lat), lon: coordinate(place?.lon) }
}

/** Report fields from a draft as the UI keeps it. */
function fieldsOfDraft(draft, nowMs) {
  return {
    title: String(draft.title ?? ''),
    occurredAt: uiTime(draft.when ?? draft.occurredAt, 'when') ?? rfc3339(nowMs),
    approximate: !!draft.approximate,
    place: placeOf(draft.place),
    description: String(draft.description ?? ''),
    people: (draft.people ?? []).filter((p) => String(p?.name ?? '').trim() !== '' || String(p?.note ?? '').trim() !== ''),
    tags: (draft.tags ?? []).map((t) => String(t).trim()).filter((t) => t !== ''),
    timeline: (draft.timeline ?? [])
      .filter((e) => String(e?.text ?? '').trim() !== '')
      .map((e) => ({ at: uiTime(e.at, "a timeline entry's time") ?? rfc3339(nowMs), text: e.text, approximate: !!e.approximate })),
  }
}

function sameHeads(a, b) {
  if (a.length !== b.length) return false
  const s = new Set(a)
  return b.every((h) => s.has(h))
}

/** A source over stored parts: {size, read(start, end)}. */
function partsSource(partSizes, loadPart) {
  const offsets = []
  let size = 0
  for (const n of partSizes) {
    offsets.push(size)
    size += n
  }
  return {
    size,
    async read(start, end) {
      const out = []
      for (let i = 0; i < partSizes.length && start < end; i++) {
        const from = offsets[i]
        const to = from + partSizes[i]
        if (to <= start || from >= end) continue
        const part = await loadPart(i)
        if (!part || part.length !== partSizes[i]) throw new AppError('local_damaged', 'a sealed file on this phone is damaged or missing; attach the file again')
        out.push(part.subarray(Math.max(0, start - from), Math.min(partSizes[i], end - from)))
      }
      return out.length === 1 ? out[0] : concat(...out)
    },
  }
}

export class Device {
  /**
   * Opens the device over an opened store. Options: store, fetch, now (ms),
   * wasm (Automerge's wasm bytes or Response; default fetched next to the
   * vendored library), maxRequestBytes.
   */
  static async open({ store, fetch = globalThis.fetch?.bind(globalThis), now = () => Date.now(), wasm, maxRequestBytes = DEFAULT_MAX_REQUEST_BYTES } = {}) {
    const device = new Device(store, fetch, now, maxRequestBytes)
    // The engine and the stored records load side by side.
    await Promise.all([initAutomerge(wasm), device._load()])
    return device
  }

  constructor(store, fetch, now, maxRequestBytes) {
    this.store = store
    this._fetch = fetch
    this.now = now
    this.maxRequestBytes = maxRequestBytes
    this._queue = Promise.resolve()
    this._syncing = null
    this._reset()
  }

  _reset() {
    this.identity = null
    this.enrollment = null
    this.caseKeys = { trusted: [], pin: null, onTrust: false, refused: [] }
    this.syncState = { cursor: 0, clockOffset: 0 }
    this._settings = { ...DEFAULT_SETTINGS }
    this._removed = 0
    // Loaded documents by report id, valid while the record's heads match:
    // loading a report with a long description from its bytes costs a
    // second or more, and one sync used to load each report three times.
    // Cleared on lock, so a locked phone holds no report in memory.
    this._docs = new Map()
  }

  /** Runs `fn` alone: report records are read, changed and written without interleaving. */
  _exclusive(fn) {
    const run = this._queue.then(fn, fn)
    this._queue = run.catch(() => {})
    return run
  }

  async _load() {
    this._reset()
    if (this.store.state === 'locked') return
    // Read together: each is its own transaction and decryption.
    const [ident, enrollment, caseKeys, syncState, settings, removed] = await Promise.all([
      this.store.get('meta', 'identity'),
      this.store.get('meta', 'enrollment'),
      this.store.get('meta', 'caseKeys'),
      this.store.get('meta', 'sync'),
      this.store.get('settings', 'settings'),
      this.store.get('meta', 'removed'),
    ])
    if (ident?.pkcs8) this.identity = await DeviceIdentity.fromPkcs8(ident.pkcs8)
    this.enrollment = enrollment ?? null
    this.caseKeys = caseKeys ?? this.caseKeys
    this.syncState = syncState ?? this.syncState
    this._settings = { ...DEFAULT_SETTINGS, ...(settings ?? {}) }
    this._removed = removed?.count ?? 0
  }

  get status() {
    if (this.store.state === 'locked') return 'locked'
    return this.enrollment && this.identity ? 'ready' : 'new'
  }

  get info() {
    if (!this.enrollment) return null
    const newest = this._sealingKey()
    return {
      deviceId: this.enrollment.deviceId,
      caseId: this.enrollment.caseId,
      caseName: this.enrollment.caseName,
      role: this.enrollment.role,
      server: this.enrollment.server,
      keyFingerprint: newest?.fingerprint ?? null,
      keyEpoch: newest?.epoch ?? null,
      keyOnTrust: !!this.caseKeys.onTrust,
      keyRefused: this.caseKeys.refused ?? [],
    }
  }

  get settings() {
    return { ...this._settings }
  }

  get removedCount() {
    return this._removed
  }

  _client() {
    const server = this.enrollment?.server
    return new Client({
      server,
      identity: this.identity,
      fetch: this._fetch,
      now: this.now,
      clockOffset: this.syncState.clockOffset ?? 0,
      onClockOffset: async (offset) => {
        this.syncState = { ...this.syncState, clockOffset: offset }
        await this.store.put('meta', 'sync', this.syncState)
      },
    })
  }

  _needReady() {
    if (this.store.state === 'locked') throw new AppError('locked', 'the app is locked; enter the passphrase')
    if (!this.enrollment || !this.identity) throw new AppError('not_enrolled', 'this phone is not enrolled in a case yet; open the invite link from your coordinator')
  }

  // ------------------------------------------------------------ enrollment

  /**
   * Enrolls with an invite token. `fingerprint` (from the link's `&fp=`)
   * pins the case key: only the key with that fingerprint is taken, and a
   * server offering another is refused (info.keyRefused). Without one the
   * keys the server offers are taken on trust, and info.keyOnTrust says so.
   */
  async enroll({ server, token, fingerprint = null, deleteAfterSync = false }) {
    if (this.store.state === 'locked') throw new AppError('locked', 'the app is locked; enter the passphrase')
    if (this.enrollment) throw new AppError('already_enrolled', `this phone is already enrolled in case ${this.enrollment.caseName}`)
    const tok = String(token ?? '').trim()
    if (!tok) throw new AppError('invite_unknown', 'the invite link carries no token; open the whole link again')
    let pin = null
    if (fingerprint !== null && fingerprint !== undefined && String(fingerprint).trim() !== '') {
      pin = parseFingerprint(fingerprint)
      if (!pin) throw new AppError('fingerprint_invalid', 'the case key fingerprint in the invite link is not 22 letters, digits, - and _; open the whole link again')
    }
    // The key is made once and kept before the request, so a retry after a
    // lost answer signs with the same key.
    if (!this.identity) {
      let stored = await this.store.get('meta', 'identity')
      if (!stored?.pkcs8) {
        const { pkcs8 } = await generateDeviceKey()
        stored = { pkcs8 }
        await this.store.put('meta', 'identity', stored)
      }
      this.identity = await DeviceIdentity.fromPkcs8(stored.pkcs8)
    }
    const origin = String(server).replace(/\/+$/, '')
    const client = new Client({
      server: origin,
      identity: this.identity,
      fetch: this._fetch,
      now: this.now,
      clockOffset: this.syncState.clockOffset ?? 0,
      onClockOffset: (offset) => {
        this.syncState = { ...this.syncState, clockOffset: offset }
      },
    })
    const answer = await enrollRequest(client, tok)
    if (!answer || !ID.test(answer.case_id) || answer.device_id !== this.identity.deviceId || typeof answer.case_name !== 'string') {
      throw new AppError('server', "the server's enrollment answer does not name this device and a case")
    }
    const decision = await decideCaseKeys(answer.case_id, [], pin, Array.isArray(answer.case_keys) ? answer.case_keys : [])
    const enrollment = {
      server: origin,
      deviceId: answer.device_id,
      caseId: answer.case_id,
      caseName: answer.case_name,
      role: answer.role === 'coordinator' ? 'coordinator' : 'reporter',
      enrolledAt: rfc3339(this.now(), 0),
    }
    const caseKeys = { trusted: decision.accepted.map(keyRecord), pin, onTrust: decision.onTrust, refused: decision.refused }
    const settings = { ...this._settings, deleteAfterSync: !!deleteAfterSync }
    const syncState = { cursor: 0, clockOffset: this.syncState.clockOffset ?? 0 }
    await this.store.putMany([
      { kind: 'meta', key: 'enrollment', value: enrollment },
      { kind: 'meta', key: 'caseKeys', value: caseKeys },
      { kind: 'meta', key: 'sync', value: syncState },
      { kind: 'settings', key: 'settings', value: settings },
    ])
    this.enrollment = enrollment
    this.caseKeys = caseKeys
    this.syncState = syncState
    this._settings = settings
    return { ...this.info, keysAccepted: decision.accepted.length }
  }

  _sealingKey() {
    const trusted = this.caseKeys?.trusted ?? []
    if (!trusted.length) return null
    return trusted.reduce((a, b) => (b.epoch > a.epoch ? b : a))
  }

  /** Takes the case keys the server publishes (GET /v1/case-keys) by the rotation rules. */
  async _refreshCaseKeys(client) {
    const answer = await client.json('GET', '/v1/case-keys')
    const offered = Array.isArray(answer?.case_keys) ? answer.case_keys : []
    const trusted = this.caseKeys.trusted ?? []
    const decision = await decideCaseKeys(this.enrollment.caseId, trusted, trusted.length ? null : this.caseKeys.pin, offered)
    const next = {
      ...this.caseKeys,
      trusted: [...trusted, ...decision.accepted.map(keyRecord)],
      onTrust: trusted.length ? this.caseKeys.onTrust : decision.onTrust,
      refused: decision.refused,
    }
    await this.store.put('meta', 'caseKeys', next)
    this.caseKeys = next
    return decision
  }

  // ------------------------------------------------------------ lock

  async unlock(passphrase) {
    const result = await this.store.unlock(passphrase)
    if (result.ok) await this._load()
    else if (result.wiped) this._reset()
    return result
  }

  async setPassphrase(old, next) {
    await this.store.setPassphrase(old, next)
  }

  async removePassphrase(old) {
    await this.store.removePassphrase(old)
  }

  async lock() {
    await this._exclusive(async () => {
      await this.store.lock()
      this._reset()
    })
  }

  async erase() {
    await this.store.erase()
    this._reset()
  }

  async setSettings(changes) {
    const next = { ...this._settings }
    if ('deleteAfterSync' in changes) next.deleteAfterSync = !!changes.deleteAfterSync
    if ('lockAfterMinutes' in changes) {
      const m = Number(changes.lockAfterMinutes)
      next.lockAfterMinutes = Number.isFinite(m) && m > 0 ? Math.round(m) : 0
    }
    if ('language' in changes) next.language = String(changes.language)
    await this.store.put('settings', 'settings', next)
    this._settings = next
    if (next.deleteAfterSync && this.enrollment) await this._removeSent()
    return this.settings
  }

  // ------------------------------------------------------------ drafts and files

  async saveDraft(draft) {
    if (this.store.state === 'locked') throw new AppError('locked', 'the app is locked; enter the passphrase')
    const id = draft.id && ID.test(draft.id) ? draft.id : newId()
    const value = { ...draft, id, savedAt: this.now() }
    await this.store.put('drafts', id, value)
    return id
  }

  async drafts() {
    const all = await this.store.list('drafts')
    return all.map((r) => r.value).filter((d) => !d.savedAs)
  }

  async deleteDraft(id) {
    await this._exclusive(async () => {
      const files = (await this.store.list('outbox')).filter((r) => r.value.draftId === id && !r.value.reportId)
      await this._dropFiles(files.map((r) => r.value))
      await this.store.delete('drafts', id)
    })
  }

  async _dropFiles(records) {
    const entries = []
    for (const rec of records) {
      entries.push({ kind: 'outbox', key: rec.fileId })
      ;(rec.partSizes ?? []).forEach((_, i) => entries.push({ kind: 'blobs', key: `${rec.fileId}.${i}` }))
    }
    if (entries.length) await this.store.deleteMany(entries)
  }

  /**
   * Seals a file at once to the case public key (no plaintext is stored)
   * and keeps it in the outbox for the draft. Returns {id, name, type, size}.
   */
  async addFile(draftId, file, { name, type, capturedAt = null } = {}) {
    this._needReady()
    const key = this._sealingKey()
    if (!key) throw new AppError('no_case_key', 'this phone has no case key to seal files to yet; sync once your coordinator has made one, then attach again')
    const { sealFile } = await import('./envelope.mjs')
    const fileId = newId()
    const fileName = String(name ?? file?.name ?? 'file')
    const mediaType = String(type ?? file?.type ?? 'application/octet-stream') || 'application/octet-stream'
    // Parts are written as they are sealed; if sealing or saving fails
    // midway (the file changed or went unreadable, the disk filled up),
    // the parts already written are removed: nothing sealed stays behind
    // without a record that would upload or delete it.
    const written = new Set()
    const cleanup = async (e) => {
      await this.store.deleteMany([...written].map((i) => ({ kind: 'blobs', key: `${fileId}.${i}` }))).catch(() => {})
      throw e
    }
    const sealed = await sealFile(file, { publicKey: fromHex(key.publicKey), epoch: key.epoch }, {
      name: fileName,
      mediaType,
      capturedAt,
      onPart: (index, bytes) => {
        written.add(index)
        return this.store.put('blobs', `${fileId}.${index}`, bytes)
      },
    }).catch(cleanup)
    const record = {
      fileId,
      draftId,
      reportId: null,
      blobId: sealed.blobId,
      size: sealed.blobLen,
      plainSize: sealed.meta.size,
      header: toBase64(sealed.head),
      keyEpoch: sealed.keyEpoch,
      name: fileName,
      type: mediaType,
      partSizes: sealed.partSizes,
      tus: null,
      done: false,
    }
    const entry = { id: fileId, name: fileName, type: mediaType, size: sealed.meta.size }
    const draft = await this.store.get('drafts', draftId)
    const writes = [{ kind: 'outbox', key: fileId, value: record }]
    if (draft && !draft.savedAs) writes.push({ kind: 'drafts', key: draftId, value: { ...draft, files: [...(draft.files ?? []).filter((f) => f.id !== fileId), entry] } })
    await this.store.putMany(writes).catch(cleanup)
    return entry
  }

  // ------------------------------------------------------------ reports

  /**
   * Turns a draft into a report: the creating change (no dependencies, the
   * whole report) and, with files, a second change listing them. The draft
   * is marked saved in the same transaction (and then deleted), so a crash
   * cannot make two reports of it.
   */
  async saveReport(draft) {
    this._needReady()
    return this._exclusive(async () => {
      const id = draft.id && ID.test(draft.id) ? draft.id : newId()
      const existing = await this.store.get('reports', id)
      if (existing) {
        await this.store.delete('drafts', id)
        return id
      }
      const nowMs = this.now()
      const files = []
      for (const f of draft.files ?? []) {
        const rec = await this.store.get('outbox', f.id)
        if (!rec) throw new AppError('local_damaged', `the file ${f.name ?? f.id} is no longer on this phone; attach it again`)
        files.push(rec)
      }
      const { doc, changes } = await createReport({
        identity: this.identity,
        caseId: this.enrollment.caseId,
        nowMs,
        fields: { ...fieldsOfDraft(draft, nowMs), id },
        attachments: files.map((r) => ({ id: r.fileId, blob: r.blobId, size: r.size, header: r.header, keyEpoch: r.keyEpoch })),
      })
      const record = this._record({ id, doc, acked: [], sigs: {}, refused: {}, mine: true }, changes)
      const writes = [{ kind: 'reports', key: id, value: record }]
      for (const r of files) writes.push({ kind: 'outbox', key: r.fileId, value: { ...r, reportId: id } })
      if (draft.id && ID.test(draft.id)) writes.push({ kind: 'drafts', key: id, value: { id, savedAs: id } })
      await this.store.putMany(writes)
      // Not waited for: the draft is already marked saved (drafts() skips
      // it) and the report is stored; this only tidies.
      this.store.delete('drafts', id).catch(() => {})
      return id
    })
  }

  /** A report record from a document: its bytes, signatures and a summary for listing. */
  _record(base, newChanges = []) {
    const sigs = { ...base.sigs }
    for (const c of newChanges) sigs[c.hash] = c.sig
    const view = readReport(base.doc)
    const refusedSet = new Set(Object.keys(base.refused ?? {}))
    const pending = pendingChanges(base.doc, base.acked, refusedSet).length > 0
    const heads = A.getHeads(base.doc)
    this._cacheDoc(base.id, heads, base.doc)
    return {
      id: base.id,
      doc: A.save(base.doc),
      heads,
      acked: base.acked,
      sigs,
      refused: base.refused ?? {},
      mine: base.mine ?? view.createdBy === this.enrollment?.deviceId,
      summary: {
        title: view.title,
        occurredAt: view.occurredAt,
        review: { status: view.review.status, note: view.review.note, reviewedAt: view.review.reviewedAt },
        pending,
        attachments: view.attachments.length,
      },
      updatedAt: this.now(),
    }
  }

  _loadDoc(record) {
    const cached = this._docs.get(record.id)
    if (cached && record.heads && sameHeads(cached.heads, record.heads)) return A.clone(cached.doc, { actor: this.identity.actorId })
    const doc = A.load(record.doc, { actor: this.identity.actorId })
    this._cacheDoc(record.id, A.getHeads(doc), doc)
    return doc
  }

  _cacheDoc(id, heads, doc) {
    this._docs.delete(id)
    this._docs.set(id, { heads, doc: A.clone(doc) })
    // Most recently used last; a phone rarely holds more reports than this in play.
    while (this._docs.size > 32) this._docs.delete(this._docs.keys().next().value)
  }

  async myReports() {
    const [reports, outbox] = await Promise.all([this.store.list('reports'), this.store.list('outbox')])
    const uploads = new Map()
    for (const { value } of outbox) {
      if (value.reportId && !value.done) uploads.set(value.reportId, (uploads.get(value.reportId) ?? 0) + 1)
    }
    const out = []
    for (const { value: r } of reports) {
      if (r.removed) {
        out.push({ id: r.id, title: null, occurredAt: null, state: 'sent', refusal: null, review: null, pendingUploads: 0, removed: true })
        continue
      }
      const refusals = Object.values(r.refused ?? {})
      const review = r.summary.review
      let state = 'sent'
      if (refusals.length) state = 'refused'
      else if (r.summary.pending || !r.acked.length) state = 'waiting'
      else if (review.status !== 'unverified') state = 'reviewed'
      out.push({
        id: r.id,
        title: r.summary.title,
        occurredAt: r.summary.occurredAt,
        state,
        refusal: refusals.length ? { reason: refusals[0].reason, message: refusals[0].message } : null,
        review: review.status !== 'unverified' || review.note ? review : null,
        pendingUploads: uploads.get(r.id) ?? 0,
        removed: false,
        mine: r.mine,
      })
    }
    out.sort((a, b) => String(b.occurredAt ?? '').localeCompare(String(a.occurredAt ?? '')))
    return out
  }

  /** Every field of a report, with its refusals and files; null once removed from the phone. */
  async report(id) {
    const r = await this.store.get('reports', id)
    if (!r || r.removed) return null
    const view = readReport(this._loadDoc(r))
    const files = (await this.store.list('outbox')).filter((o) => o.value.reportId === id).map((o) => o.value)
    return {
      ...view,
      refused: Object.entries(r.refused ?? {}).map(([hash, x]) => ({ hash, reason: x.reason, message: x.message })),
      pending: r.summary.pending,
      files: view.attachments.map((a) => {
        const f = files.find((x) => x.fileId === a.id)
        return { ...a, name: f?.name ?? null, type: f?.type ?? null, uploaded: f ? !!f.done : true }
      }),
    }
  }

  /**
   * Edits a report as one signed change. `edits`: title, description,
   * appendDescription, when/occurredAt (+ approximate), place, tags (the
   * whole new list), addTags, removeTags, addPeople, addTimeline.
   */
  async editReport(id, edits) {
    this._needReady()
    return this._exclusive(async () => {
      const r = await this.store.get('reports', id)
      if (!r || r.removed) throw new AppError('not_found', 'this report is no longer on this phone')
      const doc = this._loadDoc(r)
      const e = {}
      if (edits.title !== undefined) e.title = String(edits.title)
      if (edits.description !== undefined) e.description = String(edits.description)
      if (edits.appendDescription !== undefined) e.appendDescription = String(edits.appendDescription)
      const when = edits.when ?? edits.occurredAt
      if (when !== undefined || edits.approximate !== undefined) {
        const current = readReport(doc)
        e.occurredAt = uiTime(when, 'when') ?? current.occurredAt ?? rfc3339(this.now())
        e.approximate = edits.approximate ?? current.approximate
      }
      if (edits.place !== undefined) e.place = placeOf(edits.place)
      if (edits.tags !== undefined) {
        const current = readReport(doc).tags
        const next = edits.tags.map((t) => String(t).trim()).filter((t) => t)
        e.addTags = next.filter((t) => !current.includes(t))
        e.removeTags = current.filter((t) => !next.includes(t))
      }
      if (edits.addTags) e.addTags = [...(e.addTags ?? []), ...edits.addTags]
      if (edits.removeTags) e.removeTags = [...(e.removeTags ?? []), ...edits.removeTags]
      if (edits.addPeople) e.addPeople = edits.addPeople
      if (edits.addTimeline) e.addTimeline = edits.addTimeline.map((t) => ({ ...t, at: uiTime(t.at, "a timeline entry's time") ?? rfc3339(this.now()) }))
      const { doc: next, change } = await editDoc({ identity: this.identity, doc, edits: e, nowMs: this.now() })
      if (!change) return null
      await this.store.put('reports', id, this._record({ ...r, doc: next }, [change]))
      return change.hash
    })
  }

  async addTimelineEntry(id, entry) {
    return this.editReport(id, { addTimeline: [entry] })
  }

  // ------------------------------------------------------------ sync

  /**
   * Syncs: change rounds until nothing is pending and the feed is drained,
   * then uploads of sealed files, then the case keys. Never throws for the
   * server or the network: the result's `error` (typed, with `code`) says
   * what stopped it, and everything stays for the next sync.
   */
  sync({ onProgress = () => {} } = {}) {
    if (!this._syncing) {
      this._syncing = this._sync(onProgress).finally(() => {
        this._syncing = null
      })
    }
    return this._syncing
  }

  async _sync(onProgress) {
    this._needReady()
    const result = { rounds: 0, requests: 0, sent: 0, received: 0, refused: [], uploaded: 0, dropped: 0, error: null }
    const client = this._client()
    try {
      const total = await this._pendingCount()
      onProgress({ phase: 'changes', done: 0, total })
      const summary = await runRounds({
        maxBytes: this.maxRequestBytes,
        prepare: (maxBytes) => this._exclusive(() => this._prepare(maxBytes)),
        send: async (request) => {
          result.requests += 1
          const json = await client.json('POST', '/v1/sync', encodeRequest(request), { retryReplayed: true })
          return parseResponse(json)
        },
        complete: (request, response) => this._exclusive(() => this._complete(request, response, result)),
        onRound: (round, s) => onProgress({ phase: 'changes', done: Math.min(s.sent, total), total }),
      })
      result.rounds = summary.rounds
      result.sent = summary.sent
      result.received = summary.received
      result.refused = summary.refused
      result.uploaded = await this._uploadOutbox(client, onProgress)
      try {
        await this._refreshCaseKeys(client)
      } catch (e) {
        // Keys change rarely; a failure here loses nothing and is retried next sync.
        if (e?.code === 'revoked') throw e
      }
      if (this._settings.deleteAfterSync) await this._removeSent()
    } catch (e) {
      if (e?.code === 'revoked') e.unsent = await this._unsentCount()
      result.error = e instanceof Error && e.code ? e : new AppError('network', String(e?.message ?? e))
    }
    return result
  }

  async _pendingCount() {
    let n = 0
    for (const { value: r } of await this.store.list('reports')) {
      if (r.removed || !r.summary.pending) continue
      n += pendingChanges(this._loadDoc(r), r.acked, new Set(Object.keys(r.refused ?? {}))).length
    }
    return n
  }

  async _unsentCount() {
    const reports = await this.store.list('reports')
    const outbox = await this.store.list('outbox')
    const ids = new Set(reports.filter(({ value: r }) => !r.removed && (r.summary.pending || !r.acked.length)).map((r) => r.key))
    for (const { value } of outbox) if (value.reportId && !value.done) ids.add(value.reportId)
    return ids.size
  }

  async _prepare(maxBytes) {
    const sync = (await this.store.get('meta', 'sync')) ?? this.syncState
    const builder = new RequestBuilder(sync.cursor, maxBytes)
    const dirty = (await this.store.list('reports'))
      .map((x) => x.value)
      .filter((r) => !r.removed && r.summary.pending)
      .sort((a, b) => a.updatedAt - b.updatedAt || (a.id < b.id ? -1 : 1))
    for (const r of dirty) {
      const doc = this._loadDoc(r)
      const changes = pendingChanges(doc, r.acked, new Set(Object.keys(r.refused ?? {})))
      if (!changes.length) continue
      const signed = changes.map((c) => {
        const sig = r.sigs[c.hash]
        if (!sig) throw new AppError('local_damaged', `no signature is stored for change ${c.hash} of report ${r.id}`)
        return { bytes: c.bytes, sig }
      })
      if (!builder.offer({ id: r.id, baseHeads: r.acked, changes: signed })) break
    }
    return builder.finish()
  }

  /** Absorbs one response; everything it changes is written in one transaction. */
  async _complete(request, response, result) {
    const round = { sent: request.docs.reduce((n, d) => n + d.changes.length, 0), received: 0, refused: [], newReports: 0 }
    const writes = []
    for (const update of response.docs) {
      const r = await this.store.get('reports', update.id)
      if (r?.removed) {
        // Delete-after-sync: this report's content left the phone; what the
        // feed brings for it stays on the server.
        result.dropped += update.changes.length
        continue
      }
      if (!r && update.changes.length === 0) {
        for (const x of update.refused) round.refused.push({ report: update.id, change: x.hash, reason: x.reason, message: x.message })
        continue
      }
      const base = r ?? { id: update.id, doc: null, acked: [], sigs: {}, refused: {}, mine: undefined }
      const doc = r ? this._loadDoc(r) : A.init({ actor: this.identity.actorId })
      const absorbed = await absorb(doc, update, { acked: base.acked })
      const refused = { ...(base.refused ?? {}) }
      for (const x of update.refused) {
        refused[x.hash] = { reason: x.reason, message: x.message }
        round.refused.push({ report: update.id, change: x.hash, reason: x.reason, message: x.message })
      }
      // What the server holds: its complete heads, or what it acknowledged
      // before plus what it sent; those changes are never offered back.
      const acked = absorbed.held ?? base.acked
      const record = this._record({ ...base, doc: absorbed.doc, acked, refused }, absorbed.applied)
      writes.push({ kind: 'reports', key: update.id, value: record })
      round.received += absorbed.applied.length
      if (!r) round.newReports += 1
    }
    const sync = (await this.store.get('meta', 'sync')) ?? this.syncState
    const next = { ...sync, cursor: Math.max(sync.cursor ?? 0, response.cursor) }
    writes.push({ kind: 'meta', key: 'sync', value: next })
    await this.store.putMany(writes)
    this.syncState = next
    return round
  }

  /** Uploads every sealed file whose report the server holds; returns how many completed. */
  async _uploadOutbox(client, onProgress) {
    const outbox = (await this.store.list('outbox')).map((x) => x.value).filter((o) => o.reportId && !o.done)
    if (!outbox.length) return 0
    const reports = new Map((await this.store.list('reports')).map((x) => [x.key, x.value]))
    const ready = outbox.filter((o) => {
      const r = reports.get(o.reportId)
      return r && !r.removed && r.acked.length > 0
    })
    if (!ready.length) return 0
    const { uploadBlob } = await import('./tus.mjs')
    const total = ready.reduce((n, o) => n + o.size, 0)
    let base = 0
    let uploaded = 0
    let firstError = null
    onProgress({ phase: 'uploads', done: 0, total })
    for (const rec of ready) {
      let current = rec
      try {
        await uploadBlob({
          client,
          reportId: rec.reportId,
          blobId: rec.blobId,
          size: rec.size,
          source: partsSource(rec.partSizes, (i) => this.store.get('blobs', `${rec.fileId}.${i}`)),
          state: rec.tus,
          saveState: async (state) => {
            current = { ...current, tus: state }
            await this.store.put('outbox', rec.fileId, current)
          },
          onProgress: ({ sent }) => onProgress({ phase: 'uploads', done: base + sent, total }),
        })
        // The server holds the blob: the sealed copy is no longer needed here.
        await this.store.put('outbox', rec.fileId, { ...current, done: true, partSizes: [] })
        await this.store.deleteMany(rec.partSizes.map((_, i) => ({ kind: 'blobs', key: `${rec.fileId}.${i}` })))
        uploaded += 1
      } catch (e) {
        if (e?.code === 'revoked' || e?.code === 'server_full' || e?.code === 'clock') throw e
        firstError ??= e
      }
      base += rec.size
      onProgress({ phase: 'uploads', done: base, total })
    }
    if (firstError && uploaded === 0 && firstError.code === 'network') throw firstError
    return uploaded
  }

  /**
   * Delete-after-sync: a report whose every change is acknowledged, none
   * refused, and whose files are all uploaded leaves the phone; a
   * tombstone keeps its id (so later feed changes for it are dropped) and
   * the count grows.
   */
  async _removeSent() {
    return this._exclusive(async () => {
      const outbox = (await this.store.list('outbox')).map((x) => x.value)
      const removable = []
      for (const { value: r } of await this.store.list('reports')) {
        if (r.removed || !r.mine || r.summary.pending || !r.acked.length) continue
        if (Object.keys(r.refused ?? {}).length) continue
        if (outbox.some((o) => o.reportId === r.id && !o.done)) continue
        removable.push(r.id)
      }
      if (!removable.length) return 0
      const count = this._removed + removable.length
      const writes = removable.map((id) => ({ kind: 'reports', key: id, value: { id, removed: true } }))
      writes.push({ kind: 'meta', key: 'removed', value: { count } })
      await this.store.putMany(writes)
      for (const id of removable) this._docs.delete(id)
      this._removed = count
      await this._dropFiles(outbox.filter((o) => removable.includes(o.reportId)))
      return removable.length
    })
  }

  // ------------------------------------------------------------ bundle

  /**
   * A signed bundle (the CLI's format) of every report with changes the
   * server has not acknowledged (their whole signed history) and every
   * sealed file not yet uploaded, for `fieldsync import` by a coordinator.
   */
  async bundle() {
    this._needReady()
    const { writeBundle } = await import('./bundle.mjs')
    const reports = []
    const ids = new Set()
    for (const { value: r } of await this.store.list('reports')) {
      if (r.removed || (!r.summary.pending && r.acked.length)) continue
      const doc = this._loadDoc(r)
      const poisoned = poisonedChanges(doc, new Set(Object.keys(r.refused ?? {})))
      const changes = []
      for (const bytes of A.getAllChanges(doc)) {
        const hash = changeHash(bytes)
        if (poisoned.has(hash)) continue
        const sig = r.sigs[hash]
        if (!sig) throw new AppError('local_damaged', `no signature is stored for change ${hash} of report ${r.id}`)
        changes.push({ bytes, sig })
      }
      if (changes.length) {
        reports.push({ id: r.id, changes })
        ids.add(r.id)
      }
    }
    const blobs = []
    for (const { value: o } of await this.store.list('outbox')) {
      if (!o.reportId || o.done) continue
      blobs.push({
        blobId: o.blobId,
        report: o.reportId,
        attachmentId: o.fileId,
        size: o.size,
        source: partsSource(o.partSizes, (i) => this.store.get('blobs', `${o.fileId}.${i}`)),
      })
    }
    return writeBundle({
      identity: this.identity,
      caseId: this.enrollment.caseId,
      caseName: this.enrollment.caseName,
      createdAt: rfc3339(this.now(), 0),
      reports,
      blobs,
    })
  }
}

function keyRecord(v) {
  return { epoch: v.epoch, publicKey: v.publicKeyHex, publicKeyHex: v.publicKeyHex, signer: v.signer, signature: v.signature, fingerprint: v.fingerprint }
}

/**
 * Reads an invite link's fragment: `#invite=TOKEN` optionally followed by
 * `&fp=FINGERPRINT`. Returns {token, fingerprint|null} or null.
 */
export function parseInviteFragment(hash) {
  const text = String(hash ?? '').replace(/^#/, '')
  const params = new URLSearchParams(text)
  const token = params.get('invite')
  if (!token || !token.trim()) return null
  const fp = params.get('fp')
  return { token: token.trim(), fingerprint: fp && fp.trim() ? fp.trim() : null }
}

export { caseKeyFingerprint, isHex }
