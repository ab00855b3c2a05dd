// The device's half of the sync protocol, over plain data, as
// sync-core/src/sync/device.rs and protocol.rs:
//
// request  {version: 1, cursor, docs: [{id, base_heads: [hex], changes: [{bytes: b64, sig: b64}]}]}
// response {version: 1, docs: [{id, changes, heads, complete, refused: [{hash, reason, message}]}], cursor, more}
//
// - A request stays under a byte bound (1 MiB): each report offers a causal
//   prefix of its pending changes; an empty request always takes at least
//   one change, so every round makes progress. Rounds continue until
//   everything pending went out and the server says `more: false`.
// - A refused change and every change built on it are never offered again
//   (the server would refuse them for a missing dependency); the device
//   keeps them and shows the reason.
// - Acknowledged heads are heads of what the server is known to hold: the
//   heads it returned with `complete` (once the device holds them), or,
//   from an incomplete feed answer, the heads of what was acknowledged plus
//   every change the server sent (it holds those and their dependencies).
//   So changes the feed brought are never offered back to the server,
//   which over a bad network would spend the reporter's bytes on nothing.
//   They only ever move forward, and the cursor only forward.
// - Absorbing is idempotent: changes the device has are skipped, so a
//   duplicated or late response changes nothing twice.

import { A } from './report.mjs'
import { base64Len, fromBase64, fromHex, isHex, toBase64 } from './bytes.mjs'
import { verifyChangeSignature } from './identity.mjs'
import { readChange } from './change_limits.mjs'
import { Sha256 } from './envelope.mjs'

export const PROTOCOL_VERSION = 1
export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
const OFFER_OVERHEAD = 64 + 32
const REQUEST_OVERHEAD = 64
const HASH_WIRE_LEN = 64 + 3

/** Every refusal reason the server sends (protocol.rs `Refusal`). */
export const REFUSAL_REASONS = Object.freeze([
  'bad_signature', 'unknown_author', 'revoked_author', 'not_your_report', 'review_is_for_coordinators',
  'immutable_field', 'bad_creation', 'missing_dependency', 'invalid_report', 'session_not_live',
])

export class SyncError extends Error {
  constructor(code, message, extra = {}) {
    super(message)
    this.name = 'SyncError'
    this.code = code
    Object.assign(this, extra)
  }
}

/** Size of a signed change in the JSON encoding (SignedChange::wire_len). */
export const wireLen = (c) => base64Len(c.bytes.length) + base64Len(c.sig.length) + 22

/** Builds one request under a byte bound (device.rs RequestBuilder). */
export class RequestBuilder {
  constructor(cursor, maxBytes = DEFAULT_MAX_REQUEST_BYTES) {
    this.request = { version: PROTOCOL_VERSION, cursor, docs: [] }
    this.used = REQUEST_OVERHEAD
    this.max = maxBytes
    this.complete = true
  }

  /**
   * Adds as much of `doc` ({id, baseHeads, changes: [{bytes, sig}]}, changes
   * in causal order) as fits. Returns false once the request is full.
   */
  offer(doc) {
    if (doc.changes.length === 0) return true
    let size = this.used + OFFER_OVERHEAD + doc.baseHeads.length * HASH_WIRE_LEN
    let taken = 0
    for (const change of doc.changes) {
      const next = size + wireLen(change)
      const firstEver = this.request.docs.length === 0 && taken === 0
      if (next > this.max && !firstEver) break
      size = next
      taken += 1
    }
    if (taken === 0) {
      this.complete = false
      return false
    }
    const all = taken === doc.changes.length
    this.request.docs.push({ id: doc.id, baseHeads: doc.baseHeads, changes: doc.changes.slice(0, taken) })
    this.used = size
    if (!all) this.complete = false
    return all
  }

  finish() {
    return { request: this.request, complete: this.complete }
  }
}

/** The request as the JSON the server reads. */
export function encodeRequest(request) {
  return {
    version: request.version,
    cursor: request.cursor,
    docs: request.docs.map((d) => ({
      id: d.id,
      base_heads: d.baseHeads,
      changes: d.changes.map((c) => ({ bytes: toBase64(c.bytes), sig: toBase64(c.sig) })),
    })),
  }
}

/**
 * Checks and decodes a sync response (the server's word is checked like any
 * input). Returns {version, docs: [{id, changes: [{bytes, sig}], heads,
 * complete, refused: [{hash, reason, message}]}], cursor, more}.
 */
export function parseResponse(json) {
  const bad = (why) => new SyncError('server', `the server's sync answer is malformed: ${why}`)
  if (!json || typeof json !== 'object') throw bad('not an object')
  if (json.version !== PROTOCOL_VERSION) {
    throw new SyncError('server', `protocol version ${json.version} is not supported (this app speaks ${PROTOCOL_VERSION}); update the app`)
  }
  if (!Number.isSafeInteger(json.cursor) || json.cursor < 0) throw bad('cursor')
  if (typeof json.more !== 'boolean') throw bad('more')
  if (!Array.isArray(json.docs)) throw bad('docs')
  const docs = json.docs.map((d, i) => {
    if (!d || !isHex(d.id, 32)) throw bad(`docs[${i}].id`)
    if (!Array.isArray(d.changes)) throw bad(`docs[${i}].changes`)
    const changes = d.changes.map((c, j) => {
      try {
        return { bytes: fromBase64(c.bytes), sig: fromBase64(c.sig) }
      } catch (e) {
        throw bad(`docs[${i}].changes[${j}]: ${e.message}`)
      }
    })
    const heads = d.heads ?? []
    if (!Array.isArray(heads) || !heads.every((h) => isHex(h, 64))) throw bad(`docs[${i}].heads`)
    const complete = d.complete ?? false
    if (typeof complete !== 'boolean') throw bad(`docs[${i}].complete`)
    const refused = d.refused ?? []
    if (!Array.isArray(refused)) throw bad(`docs[${i}].refused`)
    for (const r of refused) {
      if (!r || !isHex(r.hash, 64) || typeof r.reason !== 'string' || typeof r.message !== 'string') throw bad(`docs[${i}].refused`)
    }
    return { id: d.id, changes, heads, complete, refused: refused.map((r) => ({ hash: r.hash, reason: r.reason, message: r.message })) }
  })
  return { version: json.version, docs, cursor: json.cursor, more: json.more }
}

/** Whether `doc` holds the change `hash` (signed_change.rs has_change). */
export function hasChange(doc, hash) {
  return A.getMissingDeps(doc, [hash]).length === 0
}

const sha256 = (bytes) => new Sha256().update(bytes).digest()

/** A change's hash (hex) from its bytes: SHA-256 from the chunk type on, as Automerge hashes it. */
export const changeHash = (bytes) => toHexString(sha256(bytes.subarray(8)))
function toHexString(b) {
  let s = ''
  for (const x of b) s += x.toString(16).padStart(2, '0')
  return s
}

/**
 * Metadata ({hash, deps}) of the changes of `doc` past `heads`, in causal
 * order, without rebuilding or decoding them: for a report with a long
 * description, Automerge's decodeChange takes seconds where this takes
 * microseconds.
 */
export function changesMetaSince(doc, heads) {
  return causalOrder(A.getChangesMetaSince(doc, heads).map((m) => ({ hash: m.hash, deps: m.deps })))
}

/**
 * The device's pending changes for a document: everything past `acked`
 * (those of them it holds), less refused changes and everything built on
 * them. Returns [{hash, bytes}] in causal order; `bytes` is fetched from
 * the document when first read (only a request needs it).
 */
export function pendingChanges(doc, acked, refused) {
  const knownAcked = acked.filter((h) => hasChange(doc, h))
  const poisoned = new Set()
  const out = []
  for (const { hash, deps } of changesMetaSince(doc, knownAcked)) {
    if (refused.has(hash) || deps.some((d) => poisoned.has(d))) {
      poisoned.add(hash)
      continue
    }
    let bytes = null
    out.push({
      hash,
      get bytes() {
        bytes ??= A.getBackend(doc).getChangeByHash(hash)
        return bytes
      },
    })
  }
  return out
}

/**
 * Heads of everything the server is known to hold in `doc`: the closure of
 * `acked` and of `serverHashes` (changes the server sent; it holds their
 * dependencies too). Sorted; equal to the known `acked` when no sent change
 * lies past it.
 */
export function heldHeads(doc, acked, serverHashes) {
  const known = acked.filter((h) => hasChange(doc, h))
  const since = changesMetaSince(doc, known)
  const depsOf = new Map(since.map((c) => [c.hash, c.deps]))
  const held = new Set([...serverHashes].filter((h) => depsOf.has(h)))
  if (held.size === 0) return known.slice().sort()
  // A change a held change depends on is held too.
  const depsOfHeld = new Set()
  const todo = [...held]
  while (todo.length) {
    for (const d of depsOf.get(todo.pop())) {
      depsOfHeld.add(d)
      if (depsOf.has(d) && !held.has(d)) {
        held.add(d)
        todo.push(d)
      }
    }
  }
  const heads = [...known, ...held].filter((h) => !depsOfHeld.has(h))
  return [...new Set(heads)].sort()
}

/** Hashes of the changes that are refused or depend on a refused one. */
export function poisonedChanges(doc, refused) {
  const poisoned = new Set()
  if (refused.size === 0) return poisoned
  for (const { hash, deps } of changesMetaSince(doc, [])) {
    if (refused.has(hash) || deps.some((d) => poisoned.has(d))) poisoned.add(hash)
  }
  return poisoned
}

/** Orders changes so dependencies come first, keeping the given order where free. */
export function causalOrder(changes) {
  const inSet = new Set(changes.map((c) => c.hash))
  const missing = []
  const waiting = new Map()
  changes.forEach((c, i) => {
    missing.push(c.deps.filter((d) => inSet.has(d) && d !== c.hash).length)
    for (const d of c.deps) {
      if (!inSet.has(d)) continue
      if (!waiting.has(d)) waiting.set(d, [])
      waiting.get(d).push(i)
    }
  })
  const placed = new Set()
  const out = []
  const ready = []
  changes.forEach((_, i) => missing[i] === 0 && ready.push(i))
  const slots = changes.slice()
  while (ready.length) {
    const i = ready.shift()
    const c = slots[i]
    if (!c) continue
    slots[i] = null
    if (placed.has(c.hash)) continue
    placed.add(c.hash)
    for (const child of waiting.get(c.hash) ?? []) {
      missing[child] = Math.max(0, missing[child] - 1)
      if (missing[child] === 0) ready.push(child)
    }
    waiting.delete(c.hash)
    out.push(c)
  }
  for (const c of slots) if (c && !placed.has(c.hash)) out.push(c)
  return out
}

function objectExists(handle, obj) {
  try {
    handle.objInfo(obj)
    return true
  } catch {
    return false
  }
}

/**
 * Applies the changes of one document update to `doc` (device.rs absorb).
 * Every change is bounded (change_limits.mjs), decoded and its signature checked before anything is
 * applied; a change acting on an object that neither the document nor an
 * earlier change of the batch made is refused (Automerge's wasm would
 * abort on it). Returns {doc, applied: [{hash, bytes, sig, author, time}],
 * acked: heads|null, held: heads|null}: `acked` the server's heads when its
 * answer is complete and held here; `held` (given the device's acknowledged
 * heads `acked`) the heads of everything the server is now known to hold,
 * when that moved past `acked`. On error the caller must drop `doc`
 * (Automerge may have taken part of the batch) and keep what it had stored.
 */
export async function absorb(doc, update, { acked: before = [] } = {}) {
  const fail = (why) => new SyncError('server_change', `report ${update.id}: ${why}; nothing was applied, sync again`)
  const verified = []
  const sentHashes = new Set()
  for (const c of update.changes) {
    // Bounded from its bytes first: Automerge believes the counts a change
    // declares, and one change declaring 2^62 ops would freeze the phone.
    // Then read without Automerge (its decodeChange makes an object per op).
    let read
    try {
      read = readChange(c.bytes, sha256)
    } catch (e) {
      throw fail(`the server sent a change out of bounds (${e.message})`)
    }
    let who
    try {
      who = await verifyChangeSignature({ hash: fromHex(read.hash), actor: read.actorBytes, signature: c.sig, timeMs: read.time })
    } catch (e) {
      throw fail(`the server sent a change that does not verify (${e.message})`)
    }
    sentHashes.add(read.hash)
    if (!hasChange(doc, read.hash)) {
      verified.push({ hash: read.hash, deps: read.deps, bytes: c.bytes, sig: c.sig, author: who.author, time: read.time, read })
    }
  }
  const seen = new Set()
  const applied = causalOrder(verified).filter((v) => !seen.has(v.hash) && seen.add(v.hash))
  // check_applicable: every object an op acts on is the root, exists, or is
  // made by an earlier op of the change or by an earlier change of the batch.
  const handle = A.getBackend(doc)
  const exists = new Map()
  const madeInBatch = (obj, before) => {
    const at = obj.indexOf('@')
    const ctr = Number(obj.slice(0, at))
    const actor = obj.slice(at + 1)
    for (const v of before) {
      const { read } = v
      if (read.actor === actor && ctr >= read.startOp && ctr < read.startOp + read.ops && read.isMake(ctr - read.startOp)) return v
    }
    return null
  }
  applied.forEach((v, n) => {
    const { read } = v
    const maxOp = read.startOp + read.ops - 1
    if (read.seq > 2 ** 32 - 1 || maxOp > 2 ** 32 - 1) throw fail(`change ${v.hash} has a sequence number or op counter past 2^32`)
    for (const [obj, first] of read.objects) {
      if (!exists.has(obj)) exists.set(obj, objectExists(handle, obj))
      if (exists.get(obj)) continue
      const maker = madeInBatch(obj, applied.slice(0, n + 1))
      // Made by this very change: only an earlier op of it may have made it.
      if (maker && (maker !== v || Number(obj.slice(0, obj.indexOf('@'))) - read.startOp < first)) continue
      throw fail(`change ${v.hash}: op ${first} acts on object ${obj}, which does not exist`)
    }
  })
  let next = doc
  if (applied.length) {
    try {
      ;[next] = A.applyChanges(doc, applied.map((v) => v.bytes))
    } catch (e) {
      throw fail(`Automerge refused the server's changes (${e.message})`)
    }
    if (A.getMissingDeps(next, []).length) throw fail("the server sent changes whose dependencies are missing")
  }
  const acked = update.complete && update.heads.length > 0 && update.heads.every((h) => hasChange(next, h)) ? update.heads.slice() : null
  let held = acked
  if (!held && sentHashes.size) {
    const heads = heldHeads(next, before, sentHashes)
    const known = before.filter((h) => hasChange(next, h))
    if (!sameSet(heads, known)) held = heads
  }
  return { doc: next, applied: applied.map(({ read, deps, ...rest }) => rest), acked, held }
}

function sameSet(a, b) {
  if (a.length !== b.length) return false
  const s = new Set(a)
  return b.every((h) => s.has(h))
}

/**
 * Runs rounds until everything pending went out and the feed is drained
 * (Replica::sync). The caller supplies:
 *   prepare(maxBytes) → {request, complete}     (a RequestBuilder plan)
 *   send(request)     → parsed response         (may throw: the round is lost, nothing else)
 *   complete(request, response) → {sent, received, refused: [...], newReports}
 *                                               (commits the round; idempotent)
 * Each round commits on its own; an error leaves what earlier rounds did.
 */
export async function runRounds({ prepare, send, complete, maxBytes = DEFAULT_MAX_REQUEST_BYTES, onRound = () => {}, maxRounds = 10000 }) {
  const summary = { rounds: 0, sent: 0, received: 0, newReports: 0, refused: [] }
  for (;;) {
    const plan = await prepare(maxBytes)
    const cursorBefore = plan.request.cursor
    const response = await send(plan.request)
    const round = await complete(plan.request, response)
    summary.rounds += 1
    summary.sent += round.sent
    summary.received += round.received
    summary.newReports += round.newReports ?? 0
    summary.refused.push(...round.refused)
    onRound(round, summary)
    const more = response.more || !plan.complete
    if (!more) return summary
    const progressed = round.sent > 0 || round.received > 0 || response.cursor > cursorBefore
    if (!progressed || summary.rounds >= maxRounds) {
      throw new SyncError('no_progress', 'the server asked for another round but the last one moved nothing; nothing was lost, sync again later', { summary })
    }
  }
}
