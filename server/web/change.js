// The check the page makes before it signs anything: the server builds the
// change for an edit (`prepare`), and the page signs its hash only after it
// has read the change's bytes itself and found exactly the edit the
// coordinator asked for. A server that tampers with the data it answers
// (or anyone on the path) cannot get another change signed: the hash is
// computed here from the bytes, and the bytes must decode to the session's
// actor, the heads the page was shown, the change time now, and one write per
// field asked for with the value asked for, and nothing else.
//
// This is a minimal reader of one Automerge change chunk (the binary format
// automerge 0.12 writes, storage/change.rs and storage/columns/ of the Rust
// crate), not a use of @automerge/automerge in the page: that library ships a
// 3.5 MB wasm module the page would download on every visit and would need
// 'wasm-unsafe-eval' in the page's CSP. The node unit tests
// (tests/browser/unit/change.test.mjs) decode changes made by
// @automerge/automerge with both and compare. Anything this reader does not
// know (a compressed chunk or column, an unknown column, an action other
// than a map write) is refused, never skipped.
//
// Chunk: magic(4) ‖ checksum(4) ‖ type(1) = 1 ‖ uleb len ‖ body. The change
// hash is SHA-256 over type ‖ uleb len ‖ body (bytes 8..), and the checksum
// is its first 4 bytes. Body: deps (uleb n, n × 32 bytes) ‖ actor (uleb len,
// bytes) ‖ seq ‖ start op ‖ time (sleb, ms) ‖ message (uleb len, utf-8) ‖
// other actors (uleb n, each uleb len + bytes) ‖ columns (uleb n, n × (uleb
// spec, uleb len)) ‖ column data ‖ extra bytes (refused here).

import { sha256, toHex } from "./crypto.js";

/** Why the page refused to sign what the server prepared. */
export class ChangeRefused extends Error {
  name = "ChangeRefused";
}

const MAGIC = [0x85, 0x6f, 0x4a, 0x83];
const CHANGE_CHUNK = 1;
/** A review edit's change is a few hundred bytes; the web API's bodies are at most 256 KiB. */
export const MAX_CHANGE_BYTES = 256 * 1024;
/** More ops than any edit the page offers makes (one per field or tag). */
export const MAX_OPS = 4096;
const MAX_DEPS = 256;
const MAX_ACTORS = 256;
const MAX_PRED = 64;
/** How far the change's time may be from this computer's clock. */
export const TIME_WINDOW_MS = 2 * 60 * 1000;

// Column specs: id << 4 | deflate << 3 | type (storage/columns/column_specification.rs).
const COLUMNS = {
  0x01: "objActor",
  0x02: "objCtr",
  0x11: "keyActor",
  0x13: "keyCtr",
  0x15: "keyStr",
  0x34: "insert",
  0x42: "action",
  0x56: "valMeta",
  0x57: "val",
  0x70: "predGroup",
  0x71: "predActor",
  0x73: "predCtr",
  0x94: "expand",
  0xa5: "markName",
};

// Op actions (automerge's OpType numbering).
export const ACTION = { makeMap: 0, set: 1, makeList: 2, del: 3, makeText: 4, inc: 5, makeTable: 6, mark: 7 };

const refuse = (why) => {
  throw new ChangeRefused(why);
};

class Reader {
  constructor(bytes, what) {
    this.bytes = bytes;
    this.pos = 0;
    this.what = what;
  }

  get done() {
    return this.pos >= this.bytes.length;
  }

  byte() {
    if (this.pos >= this.bytes.length) refuse(`the change ends inside ${this.what}`);
    return this.bytes[this.pos++];
  }

  take(n) {
    if (n > this.bytes.length - this.pos) refuse(`the change ends inside ${this.what}`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Unsigned LEB128, canonical (no padding bytes), at most 64 bits, as a BigInt. */
  ulebBig() {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; ; i++) {
      if (i >= 10) refuse(`a number in ${this.what} is longer than 64 bits`);
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (!(b & 0x80)) {
        if (b === 0 && i > 0) refuse(`a number in ${this.what} is not minimally encoded`);
        break;
      }
    }
    if (result >= 1n << 64n) refuse(`a number in ${this.what} is longer than 64 bits`);
    return result;
  }

  /** Signed LEB128, at most 64 bits, as a BigInt. */
  slebBig() {
    let result = 0n;
    let shift = 0n;
    let b;
    for (let i = 0; ; i++) {
      if (i >= 10) refuse(`a number in ${this.what} is longer than 64 bits`);
      b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (!(b & 0x80)) break;
    }
    if (b & 0x40) result -= 1n << shift;
    if (result < -(1n << 63n) || result >= 1n << 63n) refuse(`a number in ${this.what} is longer than 64 bits`);
    return result;
  }

  uleb() {
    return safe(this.ulebBig(), this.what);
  }

  sleb() {
    return safe(this.slebBig(), this.what);
  }
}

function safe(big, what) {
  if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < -BigInt(Number.MAX_SAFE_INTEGER)) {
    refuse(`a number in ${what} is too large`);
  }
  return Number(big);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
function text(bytes, what) {
  try {
    return utf8.decode(bytes);
  } catch {
    return refuse(`${what} is not valid UTF-8`);
  }
}

/**
 * Decodes a run-length column (storage/columns/raw_column.rs, rle.rs) into
 * at most `max` values; `read` reads one value. A run longer than `max` is
 * refused before anything is allocated for it.
 */
function rle(bytes, what, max, read) {
  const r = new Reader(bytes, what);
  const out = [];
  while (!r.done) {
    const n = r.sleb();
    if (n > 0) {
      if (out.length + n > max) refuse(`${what} holds more values than the change has ops`);
      const v = read(r);
      for (let i = 0; i < n; i++) out.push(v);
    } else if (n < 0) {
      if (out.length - n > max) refuse(`${what} holds more values than the change has ops`);
      for (let i = 0; i < -n; i++) out.push(read(r));
    } else {
      const nulls = r.uleb();
      if (out.length + nulls > max) refuse(`${what} holds more values than the change has ops`);
      for (let i = 0; i < nulls; i++) out.push(null);
    }
  }
  return out;
}

function boolColumn(bytes, what, max) {
  const r = new Reader(bytes, what);
  const out = [];
  let value = false;
  while (!r.done) {
    const n = r.uleb();
    if (out.length + n > max) refuse(`${what} holds more values than the change has ops`);
    for (let i = 0; i < n; i++) out.push(value);
    value = !value;
  }
  return out;
}

function deltaColumn(bytes, what, max) {
  let abs = 0;
  return rle(bytes, what, max, (r) => r.sleb()).map((d) => {
    if (d === null) return null;
    abs += d;
    if (!Number.isSafeInteger(abs)) refuse(`${what} is out of range`);
    return abs;
  });
}

const uintColumn = (bytes, what, max) => rle(bytes, what, max, (r) => r.uleb());
const stringColumn = (bytes, what, max) => rle(bytes, what, max, (r) => text(r.take(r.uleb()), what));

/** One value of the value column, by its metadata (len << 4 | type). */
function readValue(meta, raw, what) {
  const type = meta % 16;
  const len = Math.floor(meta / 16);
  const bytes = raw.take(len);
  const exact = (n) => {
    if (len !== n) refuse(`${what} has a value of the wrong length`);
  };
  switch (type) {
    case 0:
      exact(0);
      return { type: "null", value: null };
    case 1:
      exact(0);
      return { type: "boolean", value: false };
    case 2:
      exact(0);
      return { type: "boolean", value: true };
    case 5:
      exact(8);
      return { type: "f64", value: new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0, true) };
    case 6:
      return { type: "str", value: text(bytes, what) };
    case 3:
    case 4:
    case 7:
    case 8:
    case 9: {
      const names = { 3: "uint", 4: "int", 7: "bytes", 8: "counter", 9: "timestamp" };
      return { type: names[type], value: toHex(bytes) };
    }
    default:
      return refuse(`${what} has a value of an unknown type (${type})`);
  }
}

/**
 * Reads a change chunk. Returns { hash, checksum, deps, actor, seq, startOp,
 * time, message, otherActors, ops } with hashes and actors in lowercase hex
 * and ops as { obj, key, insert, action, value, pred } (obj is "_root" or
 * "counter@actor"; pred a list of "counter@actor").
 */
export function decodeChange(bytes) {
  if (!(bytes instanceof Uint8Array)) refuse("the change is not bytes");
  if (bytes.length > MAX_CHANGE_BYTES) refuse(`the change is ${bytes.length} bytes, more than the ${MAX_CHANGE_BYTES} an edit can take`);
  const head = new Reader(bytes, "the chunk header");
  const magic = head.take(4);
  if (MAGIC.some((b, i) => magic[i] !== b)) refuse("this is not an Automerge chunk (bad magic bytes)");
  const checksum = toHex(head.take(4));
  const type = head.byte();
  if (type !== CHANGE_CHUNK) refuse(`this is not an uncompressed change chunk (chunk type ${type})`);
  const len = head.uleb();
  if (len !== bytes.length - head.pos) refuse("the chunk's length does not match its bytes (cut short or with bytes after it)");
  const hash = toHex(sha256(bytes.subarray(8)));
  if (hash.slice(0, 8) !== checksum) refuse("the chunk's checksum does not match its bytes: they were altered");

  const r = new Reader(bytes.subarray(head.pos), "the change header");
  const nDeps = r.uleb();
  if (nDeps > MAX_DEPS) refuse(`the change has ${nDeps} dependencies`);
  const deps = [];
  for (let i = 0; i < nDeps; i++) deps.push(toHex(r.take(32)));
  const actorLen = r.uleb();
  if (actorLen > 64) refuse("the change's actor id is too long");
  const actor = toHex(r.take(actorLen));
  const seq = r.uleb();
  const startOp = r.uleb();
  if (startOp < 1) refuse("the change's start op is 0");
  const time = r.sleb();
  const message = text(r.take(r.uleb()), "the change message");
  const nActors = r.uleb();
  if (nActors > MAX_ACTORS) refuse(`the change names ${nActors} other actors`);
  const otherActors = [];
  for (let i = 0; i < nActors; i++) {
    const n = r.uleb();
    if (n > 64) refuse("an actor id in the change is too long");
    otherActors.push(toHex(r.take(n)));
  }
  const nCols = r.uleb();
  if (nCols > Object.keys(COLUMNS).length) refuse(`the change has ${nCols} op columns`);
  const specs = [];
  let last = -1;
  for (let i = 0; i < nCols; i++) {
    const spec = r.uleb();
    const size = r.uleb();
    if (spec & 0x08) refuse("the change has a compressed column");
    if (!(spec in COLUMNS)) refuse(`the change has an op column this page does not know (${spec})`);
    if (spec <= last) refuse("the change's op columns are out of order or repeated");
    last = spec;
    specs.push([COLUMNS[spec], size]);
  }
  const data = {};
  for (const [name, size] of specs) data[name] = r.take(size);
  if (!r.done) refuse("the change carries extra bytes after its ops");

  const empty = new Uint8Array(0);
  const col = (name) => data[name] ?? empty;
  const actions = uintColumn(col("action"), "the action column", MAX_OPS);
  const n = actions.length;
  const pad = (list, fill) => list.concat(Array(n - list.length).fill(fill));
  const objActor = pad(uintColumn(col("objActor"), "the object actor column", n), null);
  const objCtr = pad(uintColumn(col("objCtr"), "the object counter column", n), null);
  const keyActor = pad(uintColumn(col("keyActor"), "the key actor column", n), null);
  const keyCtr = pad(deltaColumn(col("keyCtr"), "the key counter column", n), null);
  const keyStr = pad(stringColumn(col("keyStr"), "the key column", n), null);
  const insert = pad(boolColumn(col("insert"), "the insert column", n), false);
  const valMeta = pad(uintColumn(col("valMeta"), "the value metadata column", n), 0);
  const predGroup = pad(uintColumn(col("predGroup"), "the pred column", n), 0);
  const expand = pad(boolColumn(col("expand"), "the expand column", n), false);
  const markName = pad(stringColumn(col("markName"), "the mark name column", n), null);
  const nPred = predGroup.reduce((a, b) => a + (b ?? 0), 0);
  if (predGroup.some((g) => g > MAX_PRED)) refuse("an op of the change overwrites too many values");
  const predActor = pad(uintColumn(col("predActor"), "the pred actor column", nPred), null);
  const predCtr = pad(deltaColumn(col("predCtr"), "the pred counter column", nPred), null);

  const actors = [actor, ...otherActors];
  const actorAt = (i, what) => {
    if (i === null || i >= actors.length) refuse(`${what} names no actor of the change`);
    return actors[i];
  };
  const raw = new Reader(col("val"), "the value column");
  const ops = [];
  let p = 0;
  for (let i = 0; i < n; i++) {
    let obj = "_root";
    if (objActor[i] !== null || objCtr[i] !== null) {
      if (objCtr[i] === null) refuse("an op names an object with no counter");
      obj = `${objCtr[i]}@${actorAt(objActor[i], "an op's object")}`;
    }
    let key;
    if (keyStr[i] !== null) {
      if (keyActor[i] !== null || keyCtr[i] !== null) refuse("an op has both a map key and a list position");
      key = keyStr[i];
    } else {
      key = keyCtr[i] === 0 ? "_head" : `${keyCtr[i]}@${actorAt(keyActor[i], "an op's list position")}`;
    }
    const value = readValue(valMeta[i] ?? 0, raw, "the value column");
    const pred = [];
    for (let j = 0; j < (predGroup[i] ?? 0); j++, p++) {
      if (predCtr[p] === null) refuse("an op overwrites a value with no counter");
      pred.push(`${predCtr[p]}@${actorAt(predActor[p], "an op's pred")}`);
    }
    ops.push({ id: `${startOp + i}@${actor}`, obj, key, insert: insert[i], action: actions[i], value, pred, expand: expand[i], markName: markName[i] });
  }
  if (!raw.done) refuse("the value column carries bytes no op uses");
  return { hash, checksum, deps, actor, seq, startOp, time, message, otherActors, ops };
}

// ------------------------------------------------------------- the check

/** Normalizes an RFC 3339 time to [instant in ms, offset "+hh:mm"] for comparison. */
function instant(textValue) {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.exec(String(textValue).trim());
  if (!m) return null;
  const ms = Date.parse(`${m[1]}T${m[2]}${(m[3] ?? "").slice(0, 4)}${m[4]}`);
  if (!Number.isFinite(ms)) return null;
  const offset = m[4].toUpperCase() === "Z" ? "+00:00" : m[4];
  return [ms, offset === "-00:00" ? "+00:00" : offset];
}

function sameTime(a, b) {
  const x = instant(a);
  const y = instant(b);
  return !!x && !!y && x[0] === y[0] && x[1] === y[1];
}

/**
 * What each edit must write: { map, key, test(value) → ok, same, del }.
 * `map` is "_root" or the name of a root-level map (review, place, tags);
 * `same` says the report as shown already holds the value asked for there.
 */
function expectedWrites(edits, { deviceId, time, report }) {
  const writes = [];
  const put = (map, key, test, same) => writes.push({ map, key, test, same: !!same, del: false });
  const str = (s) => (v) => v.type === "str" && v.value === s;
  const num = (n) => (v) => (n === null || n === undefined ? v.type === "null" : v.type === "f64" && v.value === n);
  const review = report.review ?? {};
  const place = report.place ?? {};
  const tags = report.tags ?? [];
  for (const e of edits) {
    switch (e?.op) {
      case "set_status":
        put("review", "status", str(e.status), review.status === e.status);
        put("review", "note", str(e.note ?? ""), review.note === (e.note ?? ""));
        put("review", "reviewer", str(deviceId), review.reviewer === deviceId);
        put("review", "reviewed_at", (v) => v.type === "str" && !!instant(v.value) && Math.abs(instant(v.value)[0] - time) <= 1000, false);
        break;
      case "set_title":
        put("_root", "title", str(e.title), report.title === e.title);
        break;
      case "set_place":
        put("place", "name", str(e.name), place.name === e.name);
        put("place", "lat", num(e.lat), (place.lat ?? null) === (e.lat ?? null));
        put("place", "lon", num(e.lon), (place.lon ?? null) === (e.lon ?? null));
        break;
      case "set_occurred_at":
        put("_root", "occurred_at", (v) => v.type === "str" && sameTime(v.value, e.occurred_at), report.occurred_at && sameTime(report.occurred_at, e.occurred_at));
        put("_root", "approximate", (v) => v.type === "boolean" && v.value === !!e.approximate, !!report.approximate === !!e.approximate);
        break;
      case "add_tag": {
        const tag = String(e.tag).trim();
        put("tags", tag, (v) => v.type === "boolean" && v.value === true, tags.includes(tag));
        break;
      }
      case "remove_tag": {
        const tag = String(e.tag).trim();
        if (!tags.includes(tag)) refuse(`the tag ${JSON.stringify(tag)} to remove is not on the report`);
        writes.push({ map: "tags", key: tag, del: true, same: false });
        break;
      }
      default:
        refuse(`this page does not know the edit ${JSON.stringify(e?.op)}`);
    }
  }
  const seen = new Set();
  for (const w of writes) {
    const id = `${w.map}\0${w.key}`;
    if (seen.has(id)) refuse(`two edits write ${w.map}.${w.key}; save them one at a time`);
    seen.add(id);
  }
  return writes;
}

/**
 * Checks that `bytes` are exactly the change for `edits` and returns its
 * hash (hex), computed here, for signing. Throws ChangeRefused otherwise.
 *
 * `shown` is what the page was shown of the report before the edit:
 * { heads: [hex], objects: {review?, place?, tags?} ("counter@actor" of
 * each root map that exists), report: the report's fields, conflicts:
 * [{field}] }, as the report answer gives them. `session` is
 * { actor: hex of the session public key, deviceId }.
 */
export function checkPreparedChange(bytes, { edits, shown, session, claimedHash, now = Date.now() }) {
  const c = decodeChange(bytes);
  if (claimedHash !== undefined && claimedHash !== c.hash) {
    refuse("the server names a different hash than its change's bytes have");
  }
  if (c.actor !== session.actor) refuse("the change is not made by this session's key");
  const heads = [...(shown.heads ?? [])].sort();
  const deps = [...c.deps].sort();
  if (deps.length !== heads.length || deps.some((d, i) => d !== heads[i])) {
    refuse("the change does not build on the version of the report this page shows; reload the report");
  }
  if (Math.abs(c.time - now) > TIME_WINDOW_MS) {
    refuse("the change's time is not now (is this computer's clock, or the server's, wrong?)");
  }
  if (c.message !== "") refuse("the change carries a message nobody wrote");
  if (c.seq < 1) refuse("the change's sequence number is 0");

  const writes = expectedWrites(edits, { deviceId: session.deviceId, time: c.time, report: shown.report ?? {} });
  const conflicted = new Set((shown.conflicts ?? []).map((x) => x?.field));
  const maps = new Set(writes.map((w) => w.map).filter((m) => m !== "_root"));
  // Each map the edits write: the object the report answer names, or one
  // this change makes at that root key.
  const objectOf = { _root: "_root" };
  const used = new Set();
  for (const map of maps) {
    const existing = shown.objects?.[map];
    const made = c.ops.filter((op) => op.obj === "_root" && op.key === map);
    if (existing) {
      if (made.length) refuse(`the change replaces the report's ${map}`);
      objectOf[map] = existing;
    } else {
      if (made.length !== 1 || made[0].action !== ACTION.makeMap || made[0].insert || made[0].value.type !== "null") {
        refuse(`the change does not make the report's ${map} as asked`);
      }
      objectOf[map] = made[0].id;
      used.add(made[0]);
    }
  }
  for (const w of writes) {
    const obj = objectOf[w.map];
    const field = w.map === "_root" ? w.key : `${w.map}.${w.key}`;
    const found = c.ops.filter((op) => op.obj === obj && op.key === w.key);
    const existed = w.map === "_root" || !!shown.objects?.[w.map];
    // Automerge writes nothing for a value a field already holds alone, and
    // a delete of the other values when it holds it among concurrent ones.
    if (!found.length && w.same && existed) continue;
    if (found.length !== 1) refuse(`the change does not write ${field} exactly once`);
    const op = found[0];
    const resolves = !w.del && w.same && existed && conflicted.has(field) && op.action === ACTION.del && op.value.type === "null" && op.pred.length > 0;
    const ok = w.del ? op.action === ACTION.del && op.value.type === "null" && op.pred.length > 0 : resolves || (op.action === ACTION.set && w.test(op.value));
    if (!ok) refuse(`the change writes another value to ${field} than the one asked for`);
    used.add(op);
  }
  for (const op of c.ops) {
    if (!used.has(op)) {
      const where = op.obj === "_root" ? op.key : `${op.obj} ${op.key}`;
      refuse(`the change touches a field the edit does not (${where})`);
    }
    if (op.insert || op.expand || op.markName !== null) refuse("the change holds an op no edit of this page makes");
  }
  return c.hash;
}
