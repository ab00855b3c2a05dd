// The app's storage: the only module that touches IndexedDB. Every record
// value is encrypted before it is written; nothing the reporter typed,
// photographed or signed is ever stored in plain form.
//
// Layout: one database `fieldsync-app`, two object stores:
// - `records`: key [kind, key], value { g, iv, ct } where
//     ct = AES-256-GCM(DEK of generation g, iv, aad = "kind\0key",
//                      plaintext = the value's encoding, see `encodeValue`).
//   The aad binds a value to its slot: a record copied under another key
//   or kind does not open. Record keys are ids (see KEY_PATTERN), never a
//   title or a name, because keys are not encrypted.
// - `keyring`: one record "ring" = { cur, prev, fails }, not encrypted:
//   it holds only key material that is useless without the passphrase
//   (or, with none set, the non-extractable DEK itself), and the count of
//   wrong passphrases, which must be readable while locked.
//
// The data key (DEK), two modes:
// - no passphrase ("device"): the DEK is a *non-extractable* AES-256-GCM
//   CryptoKey stored in IndexedDB. It keeps record bytes out of plain
//   sight (a dump of the database shows no content), but the browser
//   keeps a stored CryptoKey's bytes in its files: on a seized phone it is
//   obfuscation, not protection. That is what the passphrase is for.
// - passphrase: the DEK is a fresh random key, wrapped (AES-256-GCM) under
//   a key derived from the passphrase with PBKDF2-SHA256, 600,000
//   iterations (OWASP's 2023 figure for PBKDF2-SHA256), random 16-byte
//   salt. PBKDF2 and not Argon2id: WebCrypto has PBKDF2 in every browser,
//   Argon2id would mean shipping a WebAssembly/JS implementation of a
//   password hash, which this project would then have to vet and pin. The
//   unwrapped DEK lives only in memory, non-extractable.
//
// Changing modes:
// - setting a passphrase when there was none: the old DEK may already lie
//   in the browser's files, so a *new* DEK is made and every record is
//   re-encrypted under it, in batches; `prev` keeps the old DEK until the
//   last batch, so a crash in the middle loses nothing (the next open or
//   unlock finishes the job, as each record names its generation `g`);
// - changing the passphrase: the DEK never lay in plain form, so it is
//   re-wrapped under the new passphrase (one keyring write);
// - removing the passphrase: the DEK is stored non-extractable (one write).
//
// A wrong passphrase increments `fails` (stored at once, before the answer
// is given, so closing the tab does not reset it); after MAX_FAILS the
// store erases everything (`erase`).
//
// Writes: one IndexedDB transaction per logical write (`put`, `putMany`,
// `delete`, `deleteMany`), durability "strict" (a draft saved is on disk
// when the promise resolves). A QuotaExceededError aborts the transaction,
// so earlier records stay as they were, and surfaces as StorageFullError.

const subtle = () => globalThis.crypto.subtle;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export const DB_NAME = "fieldsync-app";
const DB_VERSION = 1;
const RECORDS = "records";
const KEYRING = "keyring";
const RING = "ring";
export const PBKDF2_ITERATIONS = 600_000;
export const MAX_FAILS = 10;
const SALT_LEN = 16;
const WRAP_AAD = encoder.encode("fieldsync-app dek v1");
/** Record keys: ids only, so a key never carries content. */
const KEY_PATTERN = /^[A-Za-z0-9._:/-]{1,200}$/;
const KIND_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
/** Records re-encrypted per transaction when a passphrase is set. */
const MIGRATE_BATCH = 32;
/** Nesting of a stored value; far past any report, short of a stack overflow. */
const MAX_DEPTH = 64;

// ----------------------------------------------------------------- errors

export class StoreError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = "StoreError";
    this.code = code;
    Object.assign(this, extra);
  }
}

/** The browser refused to store more (QuotaExceededError). Nothing already saved was lost. */
export class StorageFullError extends StoreError {
  constructor(cause) {
    super(
      "storage_full",
      "this phone has no room left for the app's data; nothing already saved was lost. Free some space (delete photos or apps), then try again",
    );
    this.name = "StorageFullError";
    this.cause = cause;
  }
}

/** The store is locked: unlock it with the passphrase first. */
export class LockedError extends StoreError {
  constructor() {
    super("locked", "the app is locked; enter the passphrase");
    this.name = "LockedError";
  }
}

/** A wrong passphrase; `attemptsLeft` before the wipe, `wiped` once it happened. */
export class WrongPassphraseError extends StoreError {
  constructor(attemptsLeft, wiped) {
    super(
      "wrong_passphrase",
      wiped
        ? "too many wrong passphrases: everything the app stored on this phone was erased"
        : `wrong passphrase; ${attemptsLeft} attempts left before the app erases everything it stored`,
      { attemptsLeft, wiped },
    );
    this.name = "WrongPassphraseError";
  }
}

function mapError(e) {
  if (e instanceof StoreError) return e;
  if (e && (e.name === "QuotaExceededError" || e.code === 22)) return new StorageFullError(e);
  if (e instanceof Error) return e;
  return new StoreError("storage", `the app's storage failed: ${e?.name ?? e}`);
}

// ------------------------------------------------------------ value codec
// JSON-like values plus Uint8Array. Encoding: u32 BE length of the JSON ‖
// JSON (UTF-8) ‖ for each Uint8Array, u32 BE length ‖ its bytes. In the
// JSON a Uint8Array is {"\u0000": index}; a value's own object with the
// key "\u0000" is refused, so the marker cannot be forged by content.
// Anything else that JSON would silently change (Date, Map, ArrayBuffer,
// other typed arrays, NaN, class instances, undefined in arrays) is
// refused too, so what is read back is what was written.

const BIN = "\u0000";

function toTree(value, bins, depth) {
  if (depth > MAX_DEPTH) throw new TypeError("store: value nested too deeply");
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("store: numbers must be finite");
    return value;
  }
  if (value instanceof Uint8Array) {
    bins.push(value);
    return { [BIN]: bins.length - 1 };
  }
  if (Array.isArray(value)) {
    return value.map((v) => {
      if (v === undefined) throw new TypeError("store: undefined in an array");
      return toTree(v, bins, depth + 1);
    });
  }
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError(`store: cannot store a ${value.constructor?.name ?? "non-plain object"} (JSON-like values and Uint8Array only)`);
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === BIN) throw new TypeError("store: an object key may not be U+0000");
      if (v === undefined) continue;
      out[k] = toTree(v, bins, depth + 1);
    }
    return out;
  }
  throw new TypeError(`store: cannot store a ${typeof value}`);
}

/** A value as bytes (before encryption). Exported for tests. */
export function encodeValue(value) {
  const bins = [];
  const json = encoder.encode(JSON.stringify(toTree(value, bins, 0)));
  let total = 4 + json.length;
  for (const b of bins) total += 4 + b.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, json.length);
  out.set(json, 4);
  let at = 4 + json.length;
  for (const b of bins) {
    view.setUint32(at, b.length);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  return out;
}

export function decodeValue(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const jsonLen = view.getUint32(0);
  const json = decoder.decode(bytes.subarray(4, 4 + jsonLen));
  const bins = [];
  let at = 4 + jsonLen;
  while (at < bytes.length) {
    const n = view.getUint32(at);
    bins.push(bytes.slice(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return JSON.parse(json, (_k, v) => {
    if (v && typeof v === "object" && !Array.isArray(v) && Object.prototype.hasOwnProperty.call(v, BIN)) {
      const bin = bins[v[BIN]];
      if (!bin) throw new StoreError("damaged", "a stored record is damaged (missing bytes)");
      return bin;
    }
    return v;
  });
}

// ---------------------------------------------------------- IDB plumbing

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(mapError(request.error));
  });
}

/**
 * Runs `fn(tx)` in one transaction and resolves once it committed, with
 * what `fn` returned (a function is called after commit: for reads, to
 * collect request results). Any error aborts the whole transaction.
 */
function transact(db, stores, mode, fn) {
  return new Promise((resolve, reject) => {
    let tx;
    try {
      tx = db.transaction(stores, mode, mode === "readwrite" ? { durability: "strict" } : undefined);
    } catch (e) {
      reject(mapError(e));
      return;
    }
    let result;
    let failed = null;
    tx.oncomplete = () => {
      if (failed) return;
      try {
        resolve(typeof result === "function" ? result() : result);
      } catch (e) {
        reject(mapError(e));
      }
    };
    // A request error bubbles to the transaction and aborts it; the
    // abort carries the first error (QuotaExceededError among them).
    tx.onabort = () => reject(failed ?? mapError(tx.error ?? new StoreError("storage", "the storage transaction was aborted")));
    try {
      result = fn(tx);
    } catch (e) {
      failed = mapError(e);
      try {
        tx.abort();
      } catch {
        // already finished
      }
      reject(failed);
    }
  });
}

/** Kinds whose decrypted values are remembered (see Store #memo): read whole, often. */
const MEMO_KINDS = new Set(["reports"]);

function sameBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function checkKind(kind) {
  if (typeof kind !== "string" || !KIND_PATTERN.test(kind)) throw new TypeError(`store: bad record kind ${JSON.stringify(kind)}`);
}

function checkKey(key) {
  if (typeof key !== "string" || !KEY_PATTERN.test(key)) {
    // Not echoed: a key that fails may be content passed by mistake.
    throw new TypeError("store: a record key must be an id ([A-Za-z0-9._:/-], 1 to 200 characters), never content such as a title");
  }
}

const slotAad = (kind, key) => encoder.encode(`${kind}\0${key}`);

// ------------------------------------------------------------- key pieces

async function newDeviceDek() {
  return subtle().generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

function normalizePassphrase(passphrase) {
  if (typeof passphrase !== "string" || passphrase.length === 0) throw new TypeError("store: a passphrase is a non-empty string");
  // The same words typed on another keyboard may arrive decomposed.
  return encoder.encode(passphrase.normalize("NFC"));
}

async function passphraseKek(passphrase, salt, iterations) {
  const base = await subtle().importKey("raw", normalizePassphrase(passphrase), "PBKDF2", false, ["deriveKey"]);
  return subtle().deriveKey({ name: "PBKDF2", salt, iterations, hash: "SHA-256" }, base, { name: "AES-GCM", length: 256 }, false, [
    "wrapKey",
    "unwrapKey",
  ]);
}

/** Wraps an extractable DEK under a passphrase: the keyring's `cur` for passphrase mode. */
async function wrapUnder(passphrase, extractableDek, gen) {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_LEN));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const kek = await passphraseKek(passphrase, salt, PBKDF2_ITERATIONS);
  const wrapped = new Uint8Array(await subtle().wrapKey("raw", extractableDek, kek, { name: "AES-GCM", iv, additionalData: WRAP_AAD }));
  return { gen, mode: "passphrase", salt, iv, iterations: PBKDF2_ITERATIONS, wrapped };
}

/** The DEK of a passphrase-mode entry, or null when the passphrase is wrong. */
async function unwrapWith(entry, passphrase, extractable = false) {
  const kek = await passphraseKek(passphrase, entry.salt, entry.iterations);
  try {
    return await subtle().unwrapKey(
      "raw",
      entry.wrapped,
      kek,
      { name: "AES-GCM", iv: entry.iv, additionalData: WRAP_AAD },
      { name: "AES-GCM", length: 256 },
      extractable,
      ["encrypt", "decrypt"],
    );
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ store

function openDb(idb, name) {
  return new Promise((resolve, reject) => {
    const request = idb.open(name, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(RECORDS)) db.createObjectStore(RECORDS);
      if (!db.objectStoreNames.contains(KEYRING)) db.createObjectStore(KEYRING);
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(mapError(request.error));
    request.onblocked = () => reject(new StoreError("storage", "the app is open in another tab with an older version; close the other tab"));
  });
}

/**
 * Opens the store. Options (for tests): `indexedDB`, `IDBKeyRange`, `env`
 * (where caches, navigator, sessionStorage and localStorage are looked
 * up; globalThis by default), `name` (database name).
 */
export async function openStore(options = {}) {
  const store = new Store(options);
  await store._open();
  return store;
}

class Store {
  #idb;
  #range;
  #env;
  #name;
  #db = null;
  #stopped = false;
  #ring = null;
  /** gen → CryptoKey, the keys in memory. */
  #keys = new Map();
  /**
   * Decrypted values of the kinds in MEMO_KINDS: "kind\0key" → {g, iv,
   * value}. A record read again whose stored iv is the one remembered is
   * the same ciphertext (every write draws a fresh iv), so its value is
   * reused instead of decrypted: "My reports" and each sync read every
   * report, which at 2,000 reports cost most of a second a time on a
   * phone. Checked against the stored record on every read, so a write by
   * another tab is seen; cleared with the keys (lock, erase, wipe), so a
   * locked app holds nothing decrypted. Values are shared between reads:
   * callers must not change them (the device copies before changing).
   */
  #memo = new Map();
  #state = "empty";
  #gate = Promise.resolve();

  constructor({ indexedDB = globalThis.indexedDB, IDBKeyRange = globalThis.IDBKeyRange, env = globalThis, name = DB_NAME } = {}) {
    if (!indexedDB) throw new StoreError("unsupported", "this browser has no IndexedDB (a private window may disable it); the app cannot store reports here");
    this.#idb = indexedDB;
    this.#range = IDBKeyRange;
    this.#env = env;
    this.#name = name;
  }

  /** 'empty' (nothing stored yet), 'locked' (passphrase needed) or 'open'. */
  get state() {
    return this.#state;
  }

  /** Whether a passphrase protects the data key. */
  get hasPassphrase() {
    return this.#ring?.cur?.mode === "passphrase";
  }

  /** Wrong passphrases entered since the last right one. */
  get failedAttempts() {
    return this.#ring?.fails ?? 0;
  }

  async _open() {
    await this.#conn();
    this.#ring = await this.#readRing();
    this.#keys.clear();
    this.#memo.clear();
    if (!this.#ring) {
      this.#state = "empty";
      return;
    }
    if (this.#ring.prev?.mode === "device") this.#keys.set(this.#ring.prev.gen, this.#ring.prev.key);
    if (this.#ring.cur.mode === "device") {
      this.#keys.set(this.#ring.cur.gen, this.#ring.cur.key);
      this.#state = "open";
      if (this.#ring.prev) await this.#exclusive(() => this.#migrate());
    } else {
      this.#state = "locked";
    }
  }

  /**
   * The connection. After this store's own erase() it is opened again on
   * the next write only, so an erased app leaves no database behind; after
   * another tab erased or upgraded the database, this one stops.
   */
  async #conn() {
    if (this.#db) return this.#db;
    if (this.#stopped) throw new StoreError("closed", "the app's storage was closed (erased, or updated in another tab); reload the app");
    this.#db = await openDb(this.#idb, this.#name);
    this.#db.onversionchange = () => {
      this.#db?.close();
      this.#db = null;
      this.#stopped = true;
      this.#keys.clear();
      this.#memo.clear();
      this.#state = "locked";
    };
    return this.#db;
  }

  async #readRing() {
    const db = await this.#conn();
    return transact(db, [KEYRING], "readonly", (tx) => {
      const req = tx.objectStore(KEYRING).get(RING);
      return () => req.result ?? null;
    });
  }

  async #writeRing(ring) {
    await transact(await this.#conn(), [KEYRING], "readwrite", (tx) => {
      tx.objectStore(KEYRING).put(ring, RING);
    });
    this.#ring = ring;
  }

  /** Runs `fn` with every other operation waiting. */
  #exclusive(fn) {
    const run = this.#gate.then(fn);
    this.#gate = run.catch(() => {});
    return run;
  }

  /** Waits for an exclusive operation (a migration) to end. */
  async #ready() {
    await this.#gate;
  }

  #needOpen() {
    if (this.#state === "locked") throw new LockedError();
  }

  async #ensureRing() {
    if (this.#ring) return;
    const key = await newDeviceDek();
    await this.#writeRing({ cur: { gen: 1, mode: "device", key }, prev: null, fails: 0 });
    this.#keys.set(1, key);
    this.#state = "open";
  }

  async #seal(kind, key, value) {
    const gen = this.#ring.cur.gen;
    const dek = this.#keys.get(gen);
    if (!dek) throw new LockedError();
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await subtle().encrypt({ name: "AES-GCM", iv, additionalData: slotAad(kind, key) }, dek, encodeValue(value)));
    return { g: gen, iv, ct };
  }

  async #open(kind, key, record) {
    const dek = this.#keys.get(record.g);
    if (!dek) throw new LockedError();
    let plain;
    try {
      plain = new Uint8Array(await subtle().decrypt({ name: "AES-GCM", iv: record.iv, additionalData: slotAad(kind, key) }, dek, record.ct));
    } catch {
      throw new StoreError("damaged", "a stored record does not decrypt: the app's storage is damaged or was altered");
    }
    return decodeValue(plain);
  }

  /** #open, through the memo for MEMO_KINDS. */
  async #openMemo(kind, key, record) {
    if (!MEMO_KINDS.has(kind)) return this.#open(kind, key, record);
    const slot = `${kind}\u0000${key}`;
    const hit = this.#memo.get(slot);
    if (hit && hit.g === record.g && this.#keys.has(record.g) && sameBytes(hit.iv, record.iv)) return hit.value;
    const value = await this.#open(kind, key, record);
    // Only while the key is still in memory (a lock may have come meanwhile).
    if (this.#keys.has(record.g)) this.#memo.set(slot, { g: record.g, iv: record.iv, value });
    return value;
  }

  #kindRange(kind) {
    return this.#range.bound([kind], [kind, []]);
  }

  // ---------------------------------------------------------- records

  async get(kind, key) {
    checkKind(kind);
    checkKey(key);
    await this.#ready();
    this.#needOpen();
    if (!this.#ring) return undefined;
    const record = await transact(await this.#conn(), [RECORDS], "readonly", (tx) => {
      const req = tx.objectStore(RECORDS).get([kind, key]);
      return () => req.result;
    });
    return record === undefined ? undefined : this.#openMemo(kind, key, record);
  }

  async put(kind, key, value) {
    return this.putMany([{ kind, key, value }]);
  }

  /** Writes every entry in one transaction: all of them, or none. */
  async putMany(entries) {
    for (const { kind, key } of entries) {
      checkKind(kind);
      checkKey(key);
    }
    await this.#ready();
    this.#needOpen();
    await this.#ensureRing();
    const sealed = [];
    for (const { kind, key, value } of entries) sealed.push([[kind, key], await this.#seal(kind, key, value)]);
    // What is remembered of these records is of their old version (and a
    // value replaced to drop content must not linger in memory either).
    for (const { kind, key } of entries) this.#memo.delete(`${kind}\u0000${key}`);
    await transact(await this.#conn(), [RECORDS], "readwrite", (tx) => {
      const os = tx.objectStore(RECORDS);
      for (const [k, v] of sealed) os.put(v, k);
    });
  }

  async delete(kind, key) {
    return this.deleteMany([{ kind, key }]);
  }

  /** Deletes every entry in one transaction. */
  async deleteMany(entries) {
    for (const { kind, key } of entries) {
      checkKind(kind);
      checkKey(key);
    }
    await this.#ready();
    if (!this.#ring) return;
    for (const { kind, key } of entries) this.#memo.delete(`${kind}\u0000${key}`);
    // Deleting needs no key: a locked app may still drop what it no longer needs.
    await transact(await this.#conn(), [RECORDS], "readwrite", (tx) => {
      const os = tx.objectStore(RECORDS);
      for (const { kind, key } of entries) os.delete([kind, key]);
    });
  }

  /** Every record of a kind, decrypted: [{key, value}] in key order. */
  async list(kind) {
    checkKind(kind);
    await this.#ready();
    this.#needOpen();
    if (!this.#ring) return [];
    const [keys, values] = await transact(await this.#conn(), [RECORDS], "readonly", (tx) => {
      const os = tx.objectStore(RECORDS);
      const k = os.getAllKeys(this.#kindRange(kind));
      const v = os.getAll(this.#kindRange(kind));
      return () => [k.result, v.result];
    });
    // All decrypted at once: WebCrypto works them off the main thread, and
    // one at a time waited for each hop (2,000 reports: seconds on a phone).
    return Promise.all(keys.map(async (k, i) => ({ key: k[1], value: await this.#openMemo(kind, k[1], values[i]) })));
  }

  /** The keys of a kind, without reading the values (ids only; works locked). */
  async keys(kind) {
    checkKind(kind);
    await this.#ready();
    if (!this.#ring) return [];
    const keys = await transact(await this.#conn(), [RECORDS], "readonly", (tx) => {
      const req = tx.objectStore(RECORDS).getAllKeys(this.#kindRange(kind));
      return () => req.result;
    });
    return keys.map((k) => k[1]);
  }

  // -------------------------------------------------------- passphrase

  /**
   * Unlocks with the passphrase. Returns {ok, attemptsLeft, wiped}: after
   * MAX_FAILS wrong ones in a row everything is erased (wiped: true).
   */
  async unlock(passphrase) {
    await this.#ready();
    if (this.#state !== "locked") return { ok: true, attemptsLeft: MAX_FAILS, wiped: false };
    return this.#exclusive(async () => {
      const dek = await this.#checkPassphrase(passphrase);
      if (dek.error) return { ok: false, attemptsLeft: dek.error.attemptsLeft, wiped: dek.error.wiped };
      this.#keys.set(this.#ring.cur.gen, dek.key);
      this.#state = "open";
      if (this.#ring.prev) await this.#migrate();
      return { ok: true, attemptsLeft: MAX_FAILS, wiped: false };
    });
  }

  /**
   * The current passphrase DEK for `passphrase` ({key}), or {error} after
   * counting a failure (and wiping at MAX_FAILS). The count is written
   * before the answer is given.
   */
  async #checkPassphrase(passphrase, extractable = false) {
    const key = await unwrapWith(this.#ring.cur, passphrase, extractable);
    if (key) {
      if (this.#ring.fails) await this.#writeRing({ ...this.#ring, fails: 0 });
      return { key };
    }
    const fails = (this.#ring.fails ?? 0) + 1;
    if (fails >= MAX_FAILS) {
      await this.#eraseNow();
      return { error: new WrongPassphraseError(0, true) };
    }
    await this.#writeRing({ ...this.#ring, fails });
    return { error: new WrongPassphraseError(MAX_FAILS - fails, false) };
  }

  /**
   * Sets or changes the passphrase. `old` is the current passphrase (null
   * when there is none). A wrong `old` counts as a wrong passphrase and
   * throws WrongPassphraseError.
   */
  async setPassphrase(old, next) {
    normalizePassphrase(next);
    await this.#ready();
    return this.#exclusive(async () => {
      if (!this.#ring) {
        // Nothing stored yet: start in passphrase mode directly.
        const fresh = await subtle().generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
        const cur = await wrapUnder(next, fresh, 1);
        await this.#writeRing({ cur, prev: null, fails: 0 });
        this.#keys.set(1, await unwrapWith(cur, next));
        this.#state = "open";
        return;
      }
      if (this.#ring.cur.mode === "passphrase") {
        // The DEK never lay in plain form: re-wrap it under the new passphrase.
        const checked = await this.#checkPassphrase(old, true);
        if (checked.error) throw checked.error;
        const cur = await wrapUnder(next, checked.key, this.#ring.cur.gen);
        await this.#writeRing({ ...this.#ring, cur, fails: 0 });
        this.#keys.set(cur.gen, await unwrapWith(cur, next));
        this.#state = "open";
        // A re-encryption cut short earlier finishes now.
        if (this.#ring.prev) await this.#migrate();
        return;
      }
      // From no passphrase: the old DEK may be in the browser's files, so
      // a new one, and every record re-encrypted under it.
      const gen = this.#ring.cur.gen + 1;
      const fresh = await subtle().generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
      const cur = await wrapUnder(next, fresh, gen);
      await this.#writeRing({ cur, prev: this.#ring.cur, fails: 0 });
      this.#keys.set(gen, await unwrapWith(cur, next));
      await this.#migrate();
    });
  }

  /** Removes the passphrase: the data key is then stored on the phone, non-extractable. */
  async removePassphrase(old) {
    await this.#ready();
    return this.#exclusive(async () => {
      if (!this.#ring || this.#ring.cur.mode !== "passphrase") return;
      const checked = await this.#checkPassphrase(old, true);
      if (checked.error) throw checked.error;
      const raw = await subtle().exportKey("raw", checked.key);
      const key = await subtle().importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
      new Uint8Array(raw).fill(0);
      await this.#writeRing({ ...this.#ring, cur: { gen: this.#ring.cur.gen, mode: "device", key }, fails: 0 });
      this.#keys.set(this.#ring.cur.gen, key);
      this.#state = "open";
      if (this.#ring.prev) await this.#migrate();
    });
  }

  /** Forgets the data key (passphrase mode only); returns the state. */
  async lock() {
    await this.#ready();
    if (this.#ring?.cur.mode === "passphrase") {
      this.#keys.clear();
      this.#memo.clear();
      if (this.#ring.prev?.mode === "device") this.#keys.set(this.#ring.prev.gen, this.#ring.prev.key);
      this.#state = "locked";
    }
    return this.#state;
  }

  /**
   * Re-encrypts every record still under `prev` with `cur`, in batches
   * (IndexedDB commits a transaction that waits on anything else, such as
   * WebCrypto, so encryption happens between transactions), then drops
   * `prev`. Runs exclusive; resumable after a crash.
   */
  async #migrate() {
    const prev = this.#ring.prev;
    if (!prev) return;
    const db = await this.#conn();
    const keys = await transact(db, [RECORDS], "readonly", (tx) => {
      const req = tx.objectStore(RECORDS).getAllKeys();
      return () => req.result;
    });
    for (let i = 0; i < keys.length; i += MIGRATE_BATCH) {
      const batch = keys.slice(i, i + MIGRATE_BATCH);
      const records = await transact(db, [RECORDS], "readonly", (tx) => {
        const os = tx.objectStore(RECORDS);
        const reqs = batch.map((k) => os.get(k));
        return () => reqs.map((r) => r.result);
      });
      const rewritten = [];
      for (let j = 0; j < batch.length; j++) {
        const record = records[j];
        if (!record || record.g !== prev.gen) continue;
        const [kind, key] = batch[j];
        rewritten.push([batch[j], await this.#seal(kind, key, await this.#open(kind, key, record))]);
      }
      if (rewritten.length) {
        await transact(db, [RECORDS], "readwrite", (tx) => {
          const os = tx.objectStore(RECORDS);
          for (const [k, v] of rewritten) os.put(v, k);
        });
      }
    }
    await this.#writeRing({ ...this.#ring, prev: null });
    this.#keys.delete(prev.gen);
  }

  // ---------------------------------------------------- erase, persist

  /**
   * Erases everything the app stored in this browser: every IndexedDB
   * database of the origin, every Cache Storage cache, every service
   * worker registration, session and local storage. Each step is tried
   * even if another fails; returns what was removed and what failed.
   */
  async erase() {
    return this.#exclusive(() => this.#eraseNow());
  }

  async #eraseNow() {
    const env = this.#env;
    const report = { databases: [], caches: [], registrations: 0, errors: [] };
    this.#keys.clear();
    this.#memo.clear();
    this.#ring = null;
    this.#state = "empty";
    if (this.#db) {
      this.#db.close();
      this.#db = null;
    }
    let names = [this.#name];
    try {
      if (typeof this.#idb.databases === "function") {
        for (const d of await this.#idb.databases()) if (d?.name && !names.includes(d.name)) names.push(d.name);
      }
    } catch (e) {
      report.errors.push(`listing databases: ${e?.message ?? e}`);
    }
    for (const name of names) {
      try {
        await new Promise((resolve, reject) => {
          const req = this.#idb.deleteDatabase(name);
          req.onsuccess = () => resolve();
          req.onerror = () => reject(req.error);
          // Another tab holds it open; it gets versionchange and closes,
          // then this request goes on by itself.
          req.onblocked = () => {};
        });
        report.databases.push(name);
      } catch (e) {
        report.errors.push(`database ${name}: ${e?.message ?? e}`);
      }
    }
    try {
      if (env.caches?.keys) {
        for (const key of await env.caches.keys()) {
          if (await env.caches.delete(key)) report.caches.push(key);
        }
      }
    } catch (e) {
      report.errors.push(`caches: ${e?.message ?? e}`);
    }
    try {
      const sw = env.navigator?.serviceWorker;
      if (sw?.getRegistrations) {
        for (const registration of await sw.getRegistrations()) {
          if (await registration.unregister()) report.registrations += 1;
        }
      }
    } catch (e) {
      report.errors.push(`service workers: ${e?.message ?? e}`);
    }
    for (const name of ["sessionStorage", "localStorage"]) {
      try {
        env[name]?.clear?.();
      } catch (e) {
        report.errors.push(`${name}: ${e?.message ?? e}`);
      }
    }
    // The store object stays usable: the next write starts afresh (and
    // only then makes a database again).
    return report;
  }

  /** Asks the browser not to evict the app's data. */
  async persist() {
    const storage = this.#env.navigator?.storage;
    if (!storage?.persist) return { persisted: false, supported: false };
    try {
      if (storage.persisted && (await storage.persisted())) return { persisted: true, supported: true };
      return { persisted: Boolean(await storage.persist()), supported: true };
    } catch {
      return { persisted: false, supported: true };
    }
  }

  /** Closes the database connection (tests, and before a reload). */
  close() {
    this.#db?.close();
    this.#db = null;
  }
}
