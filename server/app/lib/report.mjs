// A report as an Automerge document, with exactly the layout of
// sync-core/src/document.rs (schema 1), so that the Rust core (`read_report`,
// `validate_report`) reads what the app writes:
//
// | key | Automerge type |
// |---|---|
// | schema_version | uint |
// | id, case, created_by, created_at | str (scalar), written once by the creating change |
// | occurred_at | str, RFC 3339 with offset |
// | approximate | bool |
// | place | map {name: str, lat: f64|null, lon: f64|null} |
// | title | str |
// | description | text |
// | people | list of map {name, role, note: str} |
// | tags | map tag → true |
// | timeline | list of map {at: str RFC 3339, text: str, approximate: bool} |
// | review | map {status, reviewer, note, reviewed_at: str} |
// | attachments | list of map {id, blob, header: str, size, key_epoch: uint} |
//
// Traps this module exists to avoid: Automerge JS makes every JS string a
// Text object (the schema wants scalar strings: ImmutableString), every whole
// number an Int (lat/lon must be F64, schema_version/size/key_epoch Uint), and
// stamps changes in SECONDS by default (fieldsync stamps milliseconds).
//
// The creating change has no dependencies and writes every field, in the
// order ReportDocument::create writes them (so both write the same objects
// and, for the same input, the same ops); attachments go in a second change,
// as the CLI does.

import * as A from '../vendor/automerge/entrypoints/slim.js'
import { fromHex, randomBytes, sha256, toHex } from './bytes.mjs'
import { automergeWasm } from './wasm.mjs'

export { A }

export const SCHEMA_VERSION = 1
export const MAX_TITLE_BYTES = 1024
export const MAX_DESCRIPTION_BYTES = 256 * 1024
export const MAX_FIELD_BYTES = 8 * 1024
export const ROLES = Object.freeze(['officer', 'detainee', 'witness', 'victim', 'other'])
export const REVIEW_STATUSES = Object.freeze(['unverified', 'verified', 'disputed'])
const KNOWN_KEYS = new Set([
  'schema_version', 'id', 'case', 'created_by', 'created_at', 'occurred_at', 'approximate', 'place',
  'title', 'description', 'people', 'tags', 'timeline', 'review', 'attachments',
])

let wasmReady = null
/**
 * Loads Automerge's wasm once. `source`: bytes, a Response, a compiled
 * WebAssembly.Module, or nothing (then fetched next to the vendored
 * library, same origin, and compiled by wasm.mjs).
 */
export function initAutomerge(source) {
  if (A.isWasmInitialized()) return Promise.resolve()
  if (!wasmReady) {
    // Compiled already, or compiling, since ui/early.mjs started it.
    const input = source ?? automergeWasm()
    wasmReady = Promise.resolve(input).then((s) => A.initializeWasm(s))
    wasmReady.catch(() => {
      wasmReady = null
    })
  }
  return wasmReady
}

/** A field failed a check of document.rs; `field` names it. */
export class ReportError extends Error {
  constructor(field, message) {
    super(message)
    this.name = 'ReportError'
    this.code = 'invalid_report'
    this.field = field
  }
}

/** A document field has the wrong type (document.rs ViewError). */
export class ViewError extends Error {
  constructor(field, message) {
    super(message)
    this.name = 'ViewError'
    this.code = 'unreadable_report'
    this.field = field
  }
}

export const newReportId = () => toHex(randomBytes(16))
const utf8Len = (s) => new TextEncoder().encode(s).length
const S = (s) => new A.ImmutableString(String(s))

// ---- times ----

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/

/** Whether `text` is an RFC 3339 time with offset that chrono would parse. */
export function isRfc3339(text) {
  if (typeof text !== 'string') return false
  const m = RFC3339.exec(text)
  if (!m) return false
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number)
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 60) return false
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate()
  if (d > days) return false
  if (m[9] && (Number(m[10]) > 23 || Number(m[11]) > 59)) return false
  return true
}

/**
 * RFC 3339 as chrono's `to_rfc3339_opts(AutoSi, false)`: no fraction when
 * the milliseconds are zero, else 3 digits; the offset as ±HH:MM, never Z.
 * `offsetMinutes` east of UTC (default: this device's offset at that time).
 */
export function rfc3339(ms, offsetMinutes = -new Date(ms).getTimezoneOffset()) {
  const local = new Date(ms + offsetMinutes * 60000)
  const p = (n, w = 2) => String(n).padStart(w, '0')
  const frac = local.getUTCMilliseconds() ? `.${p(local.getUTCMilliseconds(), 3)}` : ''
  const sign = offsetMinutes < 0 ? '-' : '+'
  const off = Math.abs(offsetMinutes)
  return (
    `${p(local.getUTCFullYear(), 4)}-${p(local.getUTCMonth() + 1)}-${p(local.getUTCDate())}` +
    `T${p(local.getUTCHours())}:${p(local.getUTCMinutes())}:${p(local.getUTCSeconds())}${frac}` +
    `${sign}${p(Math.floor(off / 60))}:${p(off % 60)}`
  )
}

/** A time the user gave: an RFC 3339 string with offset (kept as is), a Date or ms. */
export function toRfc3339(value, field) {
  if (typeof value === 'string') {
    if (!isRfc3339(value)) throw new ReportError(field, `${field} ${JSON.stringify(value.slice(0, 60))} is not an RFC 3339 time with offset`)
    return value
  }
  const ms = value instanceof Date ? value.getTime() : value
  if (!Number.isFinite(ms)) throw new ReportError(field, `${field} is not a time`)
  return rfc3339(ms)
}

// ---- validation (document.rs validate_*; same limits, same words) ----

function checkText(field, text, max) {
  if (typeof text !== 'string') throw new ReportError(field, `${field} must be text`)
  const len = utf8Len(text)
  if (len > max) throw new ReportError(field, `${field} is too long: ${len} bytes, at most ${max}`)
}
function checkNonEmpty(field, text) {
  if (String(text ?? '').trim() === '') throw new ReportError(field, `${field} must not be empty`)
}
export const validateTitle = (t) => checkText('title', t, MAX_TITLE_BYTES)
export const validateDescription = (t) => checkText('description', t, MAX_DESCRIPTION_BYTES)
export function validatePlace(place) {
  checkText('place name', place.name ?? '', MAX_FIELD_BYTES)
  const { lat = null, lon = null } = place
  if (lat !== null && !(typeof lat === 'number' && lat >= -90 && lat <= 90)) throw new ReportError('place.lat', `latitude ${lat} is outside -90..=90`)
  if (lon !== null && !(typeof lon === 'number' && lon >= -180 && lon <= 180)) throw new ReportError('place.lon', `longitude ${lon} is outside -180..=180`)
  if ((lat === null) !== (lon === null)) throw new ReportError('place', 'latitude and longitude go together: give both or neither')
}
export function validatePerson(p) {
  checkNonEmpty("a person's name", p.name)
  checkText("a person's name", p.name, MAX_FIELD_BYTES)
  checkText("a person's note", p.note ?? '', MAX_FIELD_BYTES)
  if (!ROLES.includes(p.role ?? 'other')) throw new ReportError("a person's role", `unknown role ${JSON.stringify(p.role)}; expected one of: ${ROLES.join(', ')}`)
}
export function normalizeTag(tag) {
  const t = String(tag ?? '').trim()
  checkNonEmpty('a tag', t)
  checkText('a tag', t, MAX_FIELD_BYTES)
  return t
}
export function validateTimelineEntry(e) {
  checkNonEmpty("a timeline entry's text", e.text)
  checkText("a timeline entry's text", e.text, MAX_FIELD_BYTES)
  toRfc3339(e.at, "a timeline entry's time")
}

/** document.rs `validate_report` over a view as readReport returns it. */
export function validateReport(r) {
  validateTitle(r.title)
  validateDescription(r.description)
  validatePlace(r.place)
  r.people.forEach(validatePerson)
  r.tags.forEach(normalizeTag)
  r.timeline.forEach(validateTimelineEntry)
  checkText('a review note', r.review.note, MAX_FIELD_BYTES)
}

/** The fields of a new report, normalised and checked. */
export function normalizeFields(f) {
  const place = {
    name: String(f.place?.name ?? ''),
    lat: f.place?.lat ?? null,
    lon: f.place?.lon ?? null,
  }
  const out = {
    title: String(f.title ?? ''),
    occurredAt: toRfc3339(f.occurredAt ?? f.when, 'occurred_at'),
    approximate: !!f.approximate,
    place,
    description: String(f.description ?? ''),
    people: (f.people ?? []).map((p) => ({ name: String(p.name ?? ''), role: p.role || 'other', note: String(p.note ?? '') })),
    tags: (f.tags ?? []).map(normalizeTag),
    timeline: (f.timeline ?? []).map((e) => ({ at: toRfc3339(e.at, "a timeline entry's time"), text: String(e.text ?? ''), approximate: !!e.approximate })),
  }
  validateTitle(out.title)
  validatePlace(place)
  validateDescription(out.description)
  out.people.forEach(validatePerson)
  out.timeline.forEach(validateTimelineEntry)
  return out
}

// ---- writing ----

function putPlace(d, place) {
  d.place.name = S(place.name)
  d.place.lat = place.lat === null ? null : new A.Float64(place.lat)
  d.place.lon = place.lon === null ? null : new A.Float64(place.lon)
}
function pushPerson(d, p) {
  d.people.push({})
  const m = d.people[d.people.length - 1]
  m.name = S(p.name)
  m.role = S(p.role)
  m.note = S(p.note)
}
function pushTimeline(d, e) {
  d.timeline.push({})
  const m = d.timeline[d.timeline.length - 1]
  m.at = S(e.at)
  m.text = S(e.text)
  m.approximate = !!e.approximate
}
function pushAttachment(d, a) {
  d.attachments.push({})
  const m = d.attachments[d.attachments.length - 1]
  m.id = S(a.id)
  m.blob = S(a.blob)
  m.size = new A.Uint(a.size)
  m.header = S(a.header)
  m.key_epoch = new A.Uint(a.keyEpoch)
}

/** The last change the document made, as {bytes, hash (hex), sig (bytes)}. */
async function signedLast(doc, identity) {
  const bytes = A.getLastLocalChange(doc)
  // The hash from the bytes (SHA-256 from the chunk type on), not
  // decodeChange, which makes an object per op: seconds for a long text.
  const raw = await sha256(bytes.subarray(8))
  return { bytes, hash: toHex(raw), sig: await identity.signChangeHash(raw) }
}

/**
 * Creates a report. `fields`: {id?, title, occurredAt (RFC 3339 with offset,
 * or Date/ms), approximate, place:{name, lat, lon}, description,
 * people:[{name, role, note}], tags:[…], timeline:[{at, text, approximate}]}.
 * `caseId` is the case's id (32 hex), not its name; `nowMs` stamps created_at
 * and the change time (milliseconds); created_at is written with
 * `offsetMinutes` (default 0: UTC, as the CLI writes it).
 * Returns {doc, changes: [{bytes, hash, sig}], id}.
 */
export async function createReport({ identity, caseId, fields, nowMs, offsetMinutes = 0, attachments = [] }) {
  const id = fields.id ?? newReportId()
  if (!/^[0-9a-f]{32}$/.test(id)) throw new ReportError('id', 'a report id must be 32 lowercase hexadecimal characters')
  if (!/^[0-9a-f]{32}$/.test(caseId)) throw new ReportError('case', 'a case id must be 32 lowercase hexadecimal characters')
  const f = normalizeFields(fields)
  let doc = A.init({ actor: identity.actorId })
  doc = A.change(doc, { time: nowMs }, (d) => {
    d.schema_version = new A.Uint(SCHEMA_VERSION)
    d.id = S(id)
    d.case = S(caseId)
    d.created_by = S(identity.deviceId)
    d.created_at = S(rfc3339(nowMs, offsetMinutes))
    d.occurred_at = S(f.occurredAt)
    d.approximate = f.approximate
    d.title = S(f.title)
    d.place = {}
    d.description = ''
    d.people = []
    d.tags = {}
    d.timeline = []
    d.review = {}
    d.review.status = S('unverified')
    d.attachments = []
    putPlace(d, f.place)
    // One splice, not updateText: its diff against '' costs seconds for a
    // long text and writes the same ops (the creating-change vector checks).
    if (f.description) A.splice(d, ['description'], 0, 0, f.description)
    for (const p of f.people) pushPerson(d, p)
    for (const t of f.tags) if (d.tags[t] !== true) d.tags[t] = true
    for (const e of f.timeline) pushTimeline(d, e)
  })
  const changes = [await signedLast(doc, identity)]
  if (attachments.length) {
    doc = A.change(doc, { time: nowMs }, (d) => {
      for (const a of attachments) pushAttachment(d, a)
    })
    changes.push(await signedLast(doc, identity))
  }
  return { doc, changes, id }
}

/**
 * Applies edits as one signed change (document.rs `Edit`s). `edits`:
 * {title, description (diffed, so concurrent edits elsewhere survive),
 *  appendDescription, occurredAt + approximate, place, addTags, removeTags,
 *  addPeople, addTimeline, addAttachments}. Returns {doc, change|null}.
 */
export async function editReport({ identity, doc, edits, nowMs }) {
  const e = { ...edits }
  if (e.title !== undefined) validateTitle(e.title)
  if (e.description !== undefined) validateDescription(e.description)
  if (e.place !== undefined) {
    e.place = { name: String(e.place.name ?? ''), lat: e.place.lat ?? null, lon: e.place.lon ?? null }
    validatePlace(e.place)
  }
  if (e.occurredAt !== undefined) e.occurredAt = toRfc3339(e.occurredAt, 'occurred_at')
  const addTags = (e.addTags ?? []).map(normalizeTag)
  const removeTags = (e.removeTags ?? []).map(normalizeTag)
  const addPeople = (e.addPeople ?? []).map((p) => ({ name: String(p.name ?? ''), role: p.role || 'other', note: String(p.note ?? '') }))
  addPeople.forEach(validatePerson)
  const addTimeline = (e.addTimeline ?? []).map((t) => ({ at: toRfc3339(t.at, "a timeline entry's time"), text: String(t.text ?? ''), approximate: !!t.approximate }))
  addTimeline.forEach(validateTimelineEntry)
  if (e.appendDescription !== undefined) {
    const current = readReport(doc).description
    checkText('description', current + e.appendDescription, MAX_DESCRIPTION_BYTES)
  }
  // Wrong types in the document are errors, never silently replaced.
  readReport(doc)
  if (A.getActorId(doc) !== identity.actorId) doc = A.clone(doc, { actor: identity.actorId })
  const before = A.getHeads(doc)
  const next = A.change(doc, { time: nowMs }, (d) => {
    if (e.title !== undefined) d.title = S(e.title)
    if (e.description !== undefined) {
      if (d.description === undefined) d.description = ''
      A.updateText(d, ['description'], e.description)
    }
    if (e.appendDescription) {
      if (d.description === undefined) d.description = ''
      A.splice(d, ['description'], d.description.length, 0, e.appendDescription)
    }
    if (e.occurredAt !== undefined) {
      d.occurred_at = S(e.occurredAt)
      d.approximate = !!e.approximate
    }
    if (e.place !== undefined) {
      if (d.place === undefined) d.place = {}
      putPlace(d, e.place)
    }
    if (addTags.length || removeTags.length) {
      if (d.tags === undefined) d.tags = {}
      for (const t of addTags) d.tags[t] = true
      for (const t of removeTags) if (t in d.tags) delete d.tags[t]
    }
    if (addPeople.length && d.people === undefined) d.people = []
    for (const p of addPeople) pushPerson(d, p)
    if (addTimeline.length && d.timeline === undefined) d.timeline = []
    for (const t of addTimeline) pushTimeline(d, t)
    if (e.addAttachments?.length && d.attachments === undefined) d.attachments = []
    for (const a of e.addAttachments ?? []) pushAttachment(d, a)
  })
  const after = A.getHeads(next)
  if (after.length === before.length && after.every((h, i) => h === before[i])) return { doc: next, change: null }
  return { doc: next, change: await signedLast(next, identity) }
}

// ---- reading (document.rs read_report, by Automerge types) ----

function describe(entry) {
  if (!entry) return 'missing'
  const [t] = entry
  switch (t) {
    case 'map': case 'table': return 'a map'
    case 'list': return 'a list'
    case 'text': return 'text'
    case 'bytes': return 'bytes'
    case 'str': return 'a string'
    case 'int': case 'uint': case 'f64': return 'a number'
    case 'counter': return 'a counter'
    case 'timestamp': return 'a timestamp'
    case 'boolean': return 'a boolean'
    case 'null': return 'null'
    default: return 'a value of unknown type'
  }
}

/**
 * Reads the typed view of a report document. Missing fields get defaults;
 * unknown fields are listed; a field of the wrong type is a ViewError naming
 * it (as document.rs words it).
 */
export function readReport(doc) {
  const h = A.getBackend(doc)
  const get = (obj, prop) => h.getWithType(obj, prop) ?? null
  const wrong = (field, expected, found) =>
    new ViewError(field, `field \`${field}\` should be ${expected} but is ${describe(found)}` +
      (expected === 'a string' && found?.[0] === 'text'
        ? ' (Automerge JS strings default to Text; the schema needs a scalar string, ImmutableString)'
        : ''))
  const obj = (parent, prop, field, type) => {
    const v = get(parent, prop)
    if (v === null) return null
    const kind = v[0] === 'table' ? 'map' : v[0]
    if (kind === type) return v[1]
    throw wrong(field, type === 'map' ? 'a map' : type === 'list' ? 'a list' : 'text', v)
  }
  const str = (parent, prop, field) => {
    const v = get(parent, prop)
    if (v === null || v[0] === 'null') return null
    if (v[0] === 'str') return v[1]
    throw wrong(field, 'a string', v)
  }
  const bool = (parent, prop, field) => {
    const v = get(parent, prop)
    if (v === null || v[0] === 'null') return null
    if (v[0] === 'boolean') return v[1]
    throw wrong(field, 'a boolean', v)
  }
  const f64 = (parent, prop, field) => {
    const v = get(parent, prop)
    if (v === null || v[0] === 'null') return null
    if (v[0] === 'f64' || v[0] === 'int' || v[0] === 'uint') return Number(v[1])
    throw wrong(field, 'a number', v)
  }
  const u64 = (parent, prop, field) => {
    const v = get(parent, prop)
    if (v === null || v[0] === 'null') return null
    if (v[0] === 'uint' || (v[0] === 'int' && Number(v[1]) >= 0)) return Number(v[1])
    throw wrong(field, 'a whole number', v)
  }
  const time = (parent, prop, field) => {
    const t = str(parent, prop, field)
    if (t === null) return null
    if (!isRfc3339(t)) throw new ViewError(field, `field \`${field}\` holds an invalid value: ${JSON.stringify(t)} is not an RFC 3339 time with offset`)
    return t
  }
  const R = '_root'
  const unknownFields = h.keys(R).filter((k) => !KNOWN_KEYS.has(k)).sort()
  const placeObj = obj(R, 'place', 'place', 'map')
  const place = placeObj
    ? { name: str(placeObj, 'name', 'place.name') ?? '', lat: f64(placeObj, 'lat', 'place.lat'), lon: f64(placeObj, 'lon', 'place.lon') }
    : { name: '', lat: null, lon: null }
  const people = []
  const peopleObj = obj(R, 'people', 'people', 'list')
  if (peopleObj) {
    for (let i = 0; i < h.length(peopleObj); i++) {
      const field = `people[${i}]`
      const m = obj(peopleObj, i, field, 'map')
      if (!m) continue
      const role = str(m, 'role', `${field}.role`) ?? 'other'
      if (!ROLES.includes(role.toLowerCase())) {
        throw new ViewError(`${field}.role`, `field \`${field}.role\` holds an invalid value: unknown role ${JSON.stringify(role)}; expected one of: ${ROLES.join(', ')}`)
      }
      people.push({ name: str(m, 'name', `${field}.name`) ?? '', role: role.toLowerCase(), note: str(m, 'note', `${field}.note`) ?? '' })
    }
  }
  const tagsObj = obj(R, 'tags', 'tags', 'map')
  const tags = tagsObj ? [...h.keys(tagsObj)].sort() : []
  const timeline = []
  const timelineObj = obj(R, 'timeline', 'timeline', 'list')
  if (timelineObj) {
    for (let i = 0; i < h.length(timelineObj); i++) {
      const field = `timeline[${i}]`
      const m = obj(timelineObj, i, field, 'map')
      if (!m) continue
      const at = time(m, 'at', `${field}.at`)
      if (at === null) throw new ViewError(`${field}.at`, `field \`${field}.at\` holds an invalid value: a timeline entry needs a time`)
      timeline.push({ at, text: str(m, 'text', `${field}.text`) ?? '', approximate: bool(m, 'approximate', `${field}.approximate`) ?? false })
    }
  }
  const reviewObj = obj(R, 'review', 'review', 'map')
  let review = { status: 'unverified', reviewer: null, note: '', reviewedAt: null }
  if (reviewObj) {
    const status = str(reviewObj, 'status', 'review.status') ?? 'unverified'
    if (!REVIEW_STATUSES.includes(status.toLowerCase())) {
      throw new ViewError('review.status', `field \`review.status\` holds an invalid value: unknown review status ${JSON.stringify(status)}`)
    }
    review = {
      status: status.toLowerCase(),
      reviewer: str(reviewObj, 'reviewer', 'review.reviewer'),
      note: str(reviewObj, 'note', 'review.note') ?? '',
      reviewedAt: time(reviewObj, 'reviewed_at', 'review.reviewed_at'),
    }
  }
  const attachments = []
  const attObj = obj(R, 'attachments', 'attachments', 'list')
  if (attObj) {
    for (let i = 0; i < h.length(attObj); i++) {
      const field = `attachments[${i}]`
      const m = obj(attObj, i, field, 'map')
      if (!m) continue
      attachments.push({
        id: str(m, 'id', `${field}.id`) ?? '',
        blob: str(m, 'blob', `${field}.blob`) ?? '',
        size: u64(m, 'size', `${field}.size`) ?? 0,
        header: str(m, 'header', `${field}.header`) ?? '',
        keyEpoch: u64(m, 'key_epoch', `${field}.key_epoch`) ?? 0,
      })
    }
  }
  let description = ''
  const d = get(R, 'description')
  if (d === null) description = ''
  else if (d[0] === 'text') description = h.text(d[1])
  // A plain string is what an older or simpler writer would put.
  else if (d[0] === 'str') description = d[1]
  else throw wrong('description', 'text', d)
  return {
    id: str(R, 'id', 'id') ?? '',
    case: str(R, 'case', 'case') ?? '',
    createdBy: str(R, 'created_by', 'created_by') ?? '',
    createdAt: time(R, 'created_at', 'created_at'),
    schemaVersion: u64(R, 'schema_version', 'schema_version') ?? SCHEMA_VERSION,
    occurredAt: time(R, 'occurred_at', 'occurred_at'),
    approximate: bool(R, 'approximate', 'approximate') ?? false,
    place,
    title: str(R, 'title', 'title') ?? '',
    description,
    people,
    tags,
    timeline,
    review,
    attachments,
    unknownFields,
  }
}
