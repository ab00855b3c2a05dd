// Bounds on an Automerge change, read from its raw bytes before Automerge
// parses anything: a port of sync-core/src/change_limits.rs, with the same
// verdicts (sync-core/tests/vectors/hostile-changes.json checks both).
//
// Why: Automerge trusts what a change declares. A run-length column may say
// its value repeats 2^62 times and a compressed chunk may inflate to
// gigabytes; parsing either takes unbounded time and memory. On a phone
// that freezes the app (the wasm heap grows until the tab dies) on one
// change from a hostile server or a relayed bundle. So every change from
// outside passes `checkChange` first: it walks the chunk header and column
// metadata and sums the run lengths without expanding them, in time linear
// in the bytes and with no allocation proportional to a declared count.
//
// What is refused (as in Rust):
// - any chunk but an uncompressed change;
// - compressed columns, columns past the end;
// - more inserts and puts than the change's bytes can honestly carry
//   (`maxOps`: two per byte plus 4096);
// - more deletes than DELETE_ALLOWANCE (the longest description deleted in
//   one change, plus room), since deletes of consecutive characters
//   compress to a few bytes;
// - more predecessors in all than both allowances, and a column declaring
//   more rows than the ops it describes could use;
// - an actor index past the change's actors (Automerge panics on it).
//
// Counts are JS numbers, saturating at 2^64 like Rust's saturating u64
// arithmetic. Every limit is far below 2^53 and rounding is monotone, so a
// count past 2^53 (inexact) is still past every limit: the verdicts equal
// Rust's; only an absurd `declared` in a message may be rounded.

/** document.rs MAX_DESCRIPTION_BYTES (report.mjs exports the same number). */
export const MAX_DESCRIPTION_BYTES = 256 * 1024
/** Deletes one change may make beyond what its bytes pay for. */
export const DELETE_ALLOWANCE = MAX_DESCRIPTION_BYTES + 16 * 1024

const MAGIC = [0x85, 0x6f, 0x4a, 0x83]
const CHUNK_CHANGE = 1
const CHUNK_COMPRESSED = 2
const MAX_COLUMNS = 64
const DEFLATE_BIT = 8
const ACTION_COLUMN = (4 << 4) | 2
const ACTION_DELETE = 3
const U64_MAX = 2 ** 64
const U32_MAX = 2 ** 32 - 1

const sat = (x) => (x > U64_MAX ? U64_MAX : x)

/** The most non-delete operations a change of `len` bytes may declare. */
export const maxOps = (len) => sat(len * 2 + 4096)

export class LimitError extends Error {
  /**
   * kind: 'not_a_change' | 'compressed' | 'too_many_ops' | 'malformed'
   * (LimitError's variants); `what`, `declared`, `limit`, `len` for
   * too_many_ops; `detail` for not_a_change and malformed.
   */
  constructor(kind, fields = {}) {
    super(describe(kind, fields))
    this.name = 'LimitError'
    this.code = 'out_of_bounds'
    this.kind = kind
    Object.assign(this, fields)
  }
}

// The words of LimitError's Display in Rust, so a phone's message and the
// server's read the same.
function describe(kind, f) {
  switch (kind) {
    case 'not_a_change':
      return `the bytes are not an Automerge change chunk: ${f.detail}`
    case 'compressed':
      return 'the change is compressed; send changes uncompressed (as Automerge makes them)'
    case 'too_many_ops':
      return `the change declares ${BigInt(f.declared)} operations (${f.what}) but a change of ${f.len} bytes may carry at most ${BigInt(f.limit)}`
    default:
      return `the change is truncated or malformed: ${f.detail}`
  }
}

const malformed = (detail) => new LimitError('malformed', { detail })

class Reader {
  constructor(bytes, start = 0, end = bytes.length) {
    this.bytes = bytes
    this.pos = start
    this.end = end
  }

  done() {
    return this.pos >= this.end
  }

  /** Skips `n` bytes; returns where they start. */
  take(n) {
    const at = this.pos
    if (!(n <= this.end - at)) throw malformed('a field runs past the end')
    this.pos = at + n
    return at
  }

  byte() {
    if (this.pos >= this.end) throw malformed('a field runs past the end')
    return this.bytes[this.pos++]
  }

  uleb() {
    let value = 0
    let scale = 1
    for (let shift = 0; shift < 64; shift += 7) {
      const b = this.byte()
      const part = b & 0x7f
      if (shift === 63 && part > 1) throw malformed('an integer past 64 bits')
      value += part * scale
      if ((b & 0x80) === 0) return value
      scale *= 128
    }
    throw malformed('an integer past 64 bits')
  }

  sleb() {
    const start = this.pos
    let value = 0
    let scale = 1
    let shift = 0
    for (;;) {
      const b = this.byte()
      if (shift >= 64) throw malformed('an integer past 64 bits')
      shift += 7
      if (shift > 49) {
        // Past 49 bits a number loses exactness: redo this one as Rust's i64.
        return this._slebExact(start)
      }
      value += (b & 0x7f) * scale
      scale *= 128
      if ((b & 0x80) === 0) {
        if (b & 0x40) value -= scale
        return value
      }
    }
  }

  _slebExact(start) {
    this.pos = start
    let value = 0n
    let shift = 0n
    for (;;) {
      const b = this.byte()
      if (shift >= 64n) throw malformed('an integer past 64 bits')
      value |= BigInt(b & 0x7f) << shift
      shift += 7n
      if ((b & 0x80) === 0) {
        if (shift < 64n && b & 0x40) value |= -1n << shift
        return Number(BigInt.asIntN(64, value))
      }
    }
  }

  /** Skips any LEB128 number. */
  lebAny() {
    for (let i = 0; i < 10; i++) if ((this.byte() & 0x80) === 0) return
    throw malformed('an integer past 64 bits')
  }

  bytesPrefixed() {
    return this.take(this.uleb())
  }

  /** One value of a run-length column of `kind`: unsigned ones returned, others skipped. */
  value(kind) {
    if (kind === 3) {
      this.sleb()
      return 0
    }
    if (kind === 5) {
      this.bytesPrefixed()
      return 0
    }
    return this.uleb()
  }
}

/** Sums the rows a column declares; records ops (action column) and predecessors (group columns). */
function scanColumn(spec, bytes, start, end, actors, shape) {
  const r = new Reader(bytes, start, end)
  let rows = 0
  const kind = spec & 7
  if (kind === 4) {
    // Boolean: alternating run lengths.
    while (!r.done()) rows = sat(rows + r.uleb())
    return rows
  }
  if (kind === 7) return 0 // raw values: their length comes from the metadata column
  const isAction = spec === ACTION_COLUMN
  const isGroup = kind === 0
  const checkActor = (value) => {
    // Automerge unwraps an actor index past the change's actors.
    if (kind === 1 && value >= actors) throw malformed("an actor index past the change's actors")
    return value
  }
  while (!r.done()) {
    const count = r.sleb()
    if (count > 0) {
      rows = sat(rows + count)
      const value = checkActor(r.value(kind))
      if (isAction && value === ACTION_DELETE) shape.deletes = sat(shape.deletes + count)
      if (isGroup) shape.preds = sat(shape.preds + sat(count * value))
    } else if (count < 0) {
      // Each literal costs bytes, so this loop is bounded by the column's length.
      for (let n = -count; n > 0; n--) {
        const value = checkActor(r.value(kind))
        rows += 1
        if (isAction && value === ACTION_DELETE) shape.deletes += 1
        if (isGroup) shape.preds = sat(shape.preds + value)
      }
    } else {
      rows = sat(rows + r.uleb()) // a run of nulls
    }
  }
  if (isAction) shape.ops = sat(shape.ops + rows)
  return rows
}

/**
 * Checks a change's bytes against the bounds above without expanding
 * anything. Returns its shape {ops, deletes, preds}; throws LimitError.
 */
export function checkChange(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new LimitError('not_a_change', { detail: 'not bytes' })
  const len = bytes.length
  const r = new Reader(bytes)
  r.take(4)
  if (MAGIC.some((m, i) => bytes[i] !== m)) throw new LimitError('not_a_change', { detail: 'bad magic bytes' })
  r.take(4) // checksum, which Automerge checks
  const type = r.byte()
  if (type === CHUNK_COMPRESSED) throw new LimitError('compressed')
  if (type !== CHUNK_CHANGE) throw new LimitError('not_a_change', { detail: 'not a change chunk' })
  const bodyLen = r.uleb()
  if (bodyLen !== len - r.pos) throw malformed('the chunk length does not match its bytes')
  const deps = r.uleb()
  for (let i = 0; i < deps; i++) r.take(32)
  r.bytesPrefixed() // actor
  r.uleb() // seq
  r.uleb() // start op
  r.lebAny() // time
  r.bytesPrefixed() // message
  const others = r.uleb()
  for (let i = 0; i < others; i++) r.bytesPrefixed()
  // Actor columns index the change's actor (0) and its other actors.
  const actors = sat(others + 1)
  const columns = r.uleb()
  if (columns > MAX_COLUMNS) throw malformed('too many columns')
  const specs = []
  for (let i = 0; i < columns; i++) {
    const spec = r.uleb()
    if (spec > U32_MAX) throw malformed('a column specification past 32 bits')
    const colLen = r.uleb()
    if (spec & DEFLATE_BIT) throw new LimitError('compressed')
    specs.push([spec, colLen])
  }
  const shape = { ops: 0, deletes: 0, preds: 0 }
  let maxRows = 0
  for (const [spec, colLen] of specs) {
    const start = r.take(colLen)
    maxRows = Math.max(maxRows, scanColumn(spec, bytes, start, start + colLen, actors, shape))
  }
  const tooMany = (what, declared, limit) => new LimitError('too_many_ops', { what, declared, limit, len })
  const nonDeletes = Math.max(0, shape.ops - shape.deletes)
  const putLimit = maxOps(len)
  if (nonDeletes > putLimit) throw tooMany('inserts and puts', nonDeletes, putLimit)
  if (shape.deletes > DELETE_ALLOWANCE) throw tooMany('deletes', shape.deletes, DELETE_ALLOWANCE)
  const all = sat(putLimit + DELETE_ALLOWANCE)
  if (shape.preds > all) throw tooMany('predecessors', shape.preds, all)
  // A column longer than every op and predecessor together is never read to
  // its end by an honest parser; refuse it rather than reason about what a
  // parser might do with it.
  const most = Math.max(shape.ops, shape.preds)
  if (maxRows > sat(most + 1)) throw tooMany('rows of one column', maxRows, most)
  return shape
}

// ---- reading a bounded change without Automerge ----
//
// Automerge's decodeChange turns every op into a JS object: 4.8 s for a
// change carrying a 256 KiB description on a laptop-class core, more on a
// phone. What the device needs from a change it receives is its header
// (hash, deps, actor, seq, start op, time) and, to refuse ops on objects
// that do not exist (Automerge's wasm aborts on them), the distinct
// objects its ops act on and the ops that make objects. Those come from
// three run-length columns, read here in time linear in the bytes.

const OBJ_ACTOR_COLUMN = 0x01
const OBJ_CTR_COLUMN = 0x02
/** Automerge's make actions: map, list, text, table. */
const MAKE_ACTIONS = new Set([0, 2, 4, 6])

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
function hexOf(bytes, start, end) {
  let s = ''
  for (let i = start; i < end; i++) s += HEX[bytes[i]]
  return s
}

/** Runs [count, value|null] of an unsigned run-length column (literals become runs of 1). */
function runsOf(bytes, start, end) {
  const r = new Reader(bytes, start, end)
  const out = []
  while (!r.done()) {
    const count = r.sleb()
    if (count > 0) out.push([count, r.uleb()])
    else if (count < 0) for (let n = -count; n > 0; n--) out.push([1, r.uleb()])
    else {
      const nulls = r.uleb()
      if (nulls > 0) out.push([nulls, null])
    }
  }
  return out
}

/**
 * A change's header and the objects its ops touch, after `checkChange`
 * bounded it (so it throws LimitError like checkChange). `sha256` is a
 * synchronous SHA-256 (bytes → 32 bytes) for the change hash.
 * Returns {hash, deps, actor, actorBytes, seq, startOp, time, ops, deletes,
 * objects: Map(objId → first op index), isMake(index) → bool}; objId is
 * Automerge's `${counter}@${actorHex}`; ops on the root are not listed.
 */
export function readChange(bytes, sha256) {
  const shape = checkChange(bytes)
  const r = new Reader(bytes)
  r.take(8)
  r.byte()
  r.uleb()
  const deps = []
  const ndeps = r.uleb()
  for (let i = 0; i < ndeps; i++) {
    const at = r.take(32)
    deps.push(hexOf(bytes, at, at + 32))
  }
  const actorLen = r.uleb()
  const actorAt = r.take(actorLen)
  const actors = [hexOf(bytes, actorAt, actorAt + actorLen)]
  const seq = r.uleb()
  const startOp = r.uleb()
  const time = r.sleb()
  r.bytesPrefixed() // message
  const others = r.uleb()
  for (let i = 0; i < others; i++) {
    const n = r.uleb()
    const at = r.take(n)
    actors.push(hexOf(bytes, at, at + n))
  }
  const columns = r.uleb()
  const specs = []
  for (let i = 0; i < columns; i++) specs.push([r.uleb(), r.uleb()])
  const found = new Map()
  for (const [spec, len] of specs) {
    const at = r.take(len)
    if (!found.has(spec)) found.set(spec, [at, at + len])
  }
  const column = (spec) => (found.has(spec) ? runsOf(bytes, ...found.get(spec)) : [])
  const objActors = column(OBJ_ACTOR_COLUMN)
  const objCtrs = column(OBJ_CTR_COLUMN)
  const actions = column(ACTION_COLUMN)
  // Walk both object columns together, one segment of equal values at a time.
  const objects = new Map()
  let i = 0
  let a = 0
  let c = 0
  let aLeft = objActors[0]?.[0] ?? 0
  let cLeft = objCtrs[0]?.[0] ?? 0
  while (i < shape.ops) {
    const actor = a < objActors.length ? objActors[a][1] : null
    const ctr = c < objCtrs.length ? objCtrs[c][1] : null
    const n = Math.min(a < objActors.length ? aLeft : Infinity, c < objCtrs.length ? cLeft : Infinity, shape.ops - i)
    if ((actor === null) !== (ctr === null)) throw malformed('an op names an object by half an id')
    if (actor !== null) {
      if (actor >= actors.length) throw malformed("an actor index past the change's actors")
      const id = `${ctr}@${actors[actor]}`
      if (!objects.has(id)) objects.set(id, i)
    }
    i += n
    if (a < objActors.length && (aLeft -= n) === 0) aLeft = objActors[++a]?.[0] ?? 0
    if (c < objCtrs.length && (cLeft -= n) === 0) cLeft = objCtrs[++c]?.[0] ?? 0
  }
  const isMake = (index) => {
    let at = 0
    for (const [count, value] of actions) {
      if (index < at + count) return MAKE_ACTIONS.has(value)
      at += count
    }
    return false
  }
  const hash = hexOf(sha256(bytes.subarray(8)), 0, 32)
  return { hash, deps, actor: actors[0], actorBytes: bytes.subarray(actorAt, actorAt + actorLen), seq, startOp, time, ops: shape.ops, deletes: shape.deletes, objects, isMake }
}
