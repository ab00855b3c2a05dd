// The app's storage (server/app/lib/store.mjs) over fake-indexeddb in node:
// every record encrypted (a raw dump holds no title, description, name or
// photo bytes, with and without a passphrase), the passphrase's life cycle
// keeps data, 10 wrong passphrases wipe, a full disk loses nothing already
// saved, a crash while re-encrypting loses nothing, erase() leaves nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { IDBFactory, IDBKeyRange } from "fake-indexeddb";
import FDBObjectStore from "fake-indexeddb/lib/FDBObjectStore";

import { openStore, encodeValue, decodeValue, MAX_FAILS, PBKDF2_ITERATIONS, StorageFullError, LockedError, WrongPassphraseError } from "../../../server/app/lib/store.mjs";

const TITLE = "Задержание на площади Республики";
const DESCRIPTION = "Three people were detained near the fountain at 14:05; police van 042.";
const PERSON = "Айгерим Сарсенбаева";
const PHOTO = Uint8Array.from({ length: 8192 }, (_, i) => (i * 131 + 7) % 251);
const encoder = new TextEncoder();

/** A browser-like environment: a fresh IndexedDB, caches, service workers and storages that record what is done to them. */
function environment() {
  const idb = new IDBFactory();
  const cacheNames = new Set(["app-shell-v1", "app-shell-v2"]);
  const registrations = [{ unregister: async () => true }];
  const storage = () => {
    const m = new Map([["lang", "kk"]]);
    return { m, clear: () => m.clear() };
  };
  const env = {
    caches: { keys: async () => [...cacheNames], delete: async (k) => cacheNames.delete(k) },
    navigator: {
      serviceWorker: { getRegistrations: async () => registrations.splice(0) },
      storage: { persisted: async () => false, persist: async () => true },
    },
    sessionStorage: storage(),
    localStorage: storage(),
  };
  const open = () => openStore({ indexedDB: idb, IDBKeyRange, env });
  return { idb, env, cacheNames, registrations, open };
}

function report() {
  return {
    id: "0123456789abcdef0123456789abcdef",
    title: TITLE,
    description: DESCRIPTION,
    people: [{ name: PERSON, role: "witness", note: "" }],
    when: 1700000000000,
    approximate: false,
    place: { name: "Almaty", lat: 43.238949, lon: 76.889709 },
    tags: ["detention"],
    photo: PHOTO,
    nested: { deeper: [{ bytes: new Uint8Array([1, 2, 3]) }, null, true] },
  };
}

/** Every record of every store of every database, raw, as IndexedDB holds them. */
async function dumpRaw(idb) {
  const out = [];
  for (const { name } of await idb.databases()) {
    const db = await new Promise((resolve, reject) => {
      const r = idb.open(name);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    for (const storeName of db.objectStoreNames) {
      const [keys, values] = await new Promise((resolve, reject) => {
        const tx = db.transaction(storeName, "readonly");
        const os = tx.objectStore(storeName);
        const k = os.getAllKeys();
        const v = os.getAll();
        tx.oncomplete = () => resolve([k.result, v.result]);
        tx.onerror = () => reject(tx.error);
      });
      keys.forEach((key, i) => out.push({ db: name, store: storeName, key, value: values[i] }));
    }
    db.close();
  }
  return out;
}

/** All bytes a raw record holds: its strings (UTF-8) and byte arrays, keys included. */
function rawBytes(record) {
  const parts = [];
  const walk = (v) => {
    if (v == null) return;
    if (typeof v === "string") parts.push(encoder.encode(v));
    else if (typeof v === "number") parts.push(encoder.encode(String(v)));
    else if (v instanceof Uint8Array) parts.push(v);
    else if (ArrayBuffer.isView(v)) parts.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    else if (v instanceof ArrayBuffer) parts.push(new Uint8Array(v));
    else if (typeof v === "object") for (const x of Object.values(v)) walk(x);
  };
  walk(record.key);
  walk(record.value);
  return parts;
}

function contains(haystack, needle) {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

async function assertNoPlaintext(idb) {
  const records = await dumpRaw(idb);
  assert.ok(records.length >= 3, "the dump sees the records");
  const needles = {
    title: encoder.encode(TITLE),
    titleWord: encoder.encode("Республики"),
    description: encoder.encode(DESCRIPTION),
    descriptionWord: encoder.encode("fountain"),
    person: encoder.encode(PERSON),
    photoStart: PHOTO.subarray(0, 24),
    photoMiddle: PHOTO.subarray(4000, 4024),
  };
  for (const record of records) {
    for (const part of rawBytes(record)) {
      for (const [what, needle] of Object.entries(needles)) {
        assert.ok(!contains(part, needle), `${what} found in raw record ${record.store} ${JSON.stringify(record.key)}`);
      }
    }
  }
  return records;
}

async function fillStore(store) {
  await store.put("reports", "0123456789abcdef0123456789abcdef", report());
  await store.put("drafts", "d-1", { title: TITLE, description: DESCRIPTION, people: [{ name: PERSON }] });
  await store.putMany([
    { kind: "blobs", key: "f1.0", value: PHOTO },
    { kind: "settings", key: "settings", value: { deleteAfterSync: false, lockAfterMinutes: 5 } },
  ]);
}

async function assertData(store) {
  assert.deepEqual(await store.get("reports", "0123456789abcdef0123456789abcdef"), report());
  assert.deepEqual(await store.get("blobs", "f1.0"), PHOTO);
  assert.equal((await store.get("drafts", "d-1")).title, TITLE);
  assert.deepEqual(await store.get("settings", "settings"), { deleteAfterSync: false, lockAfterMinutes: 5 });
}

test("values round-trip: JSON-like plus Uint8Array; list, keys, delete; unknown keys read as undefined", async () => {
  const { open } = environment();
  const store = await open();
  assert.equal(store.state, "empty");
  assert.equal(await store.get("reports", "nope"), undefined);
  assert.deepEqual(await store.list("reports"), []);
  await fillStore(store);
  assert.equal(store.state, "open");
  await assertData(store);
  await store.put("drafts", "d-2", { title: "second" });
  assert.deepEqual((await store.list("drafts")).map((r) => r.key), ["d-1", "d-2"]);
  assert.deepEqual(await store.keys("drafts"), ["d-1", "d-2"]);
  // Kinds do not bleed into each other.
  assert.deepEqual(await store.keys("reports"), ["0123456789abcdef0123456789abcdef"]);
  await store.delete("drafts", "d-1");
  assert.deepEqual(await store.keys("drafts"), ["d-2"]);
  await store.deleteMany([{ kind: "drafts", key: "d-2" }, { kind: "blobs", key: "f1.0" }]);
  assert.deepEqual(await store.keys("drafts"), []);
  assert.equal(await store.get("blobs", "f1.0"), undefined);
  // A new Store over the same database (a reload) reads the same data, without a passphrase.
  store.close();
  const again = await open();
  assert.equal(again.state, "open");
  assert.deepEqual(await again.get("reports", "0123456789abcdef0123456789abcdef"), report());
});

test("the codec refuses what JSON would silently change, and record keys that are not ids", async () => {
  for (const bad of [new Date(), NaN, Infinity, new Map(), new ArrayBuffer(2), new Uint16Array(2), [undefined], { "\u0000": 1 }, () => 1, 10n]) {
    assert.throws(() => encodeValue({ v: bad }), TypeError, String(bad));
  }
  const value = { a: [1, "два", null, false, { b: new Uint8Array(0) }], c: new Uint8Array([255]), u: undefined };
  assert.deepEqual(decodeValue(encodeValue(value)), { a: [1, "два", null, false, { b: new Uint8Array(0) }], c: new Uint8Array([255]) });
  const { open } = environment();
  const store = await open();
  await assert.rejects(store.put("drafts", TITLE, {}), /never content such as a title/);
  await assert.rejects(store.put("drafts", "", {}), TypeError);
  await assert.rejects(store.put("Drafts!", "x", {}), TypeError);
});

test("a raw dump of every record holds no title, description, person's name or photo bytes, with and without a passphrase", async () => {
  const { idb, open } = environment();
  const store = await open();
  await fillStore(store);
  // No passphrase: values are still encrypted (under the stored, non-extractable key).
  await assertNoPlaintext(idb);
  await store.setPassphrase(null, "correct horse battery staple");
  assert.equal(store.hasPassphrase, true);
  const records = await assertNoPlaintext(idb);
  // Every record was re-encrypted under the new key; the old key is gone from the keyring.
  const ring = records.find((r) => r.store === "keyring").value;
  assert.equal(ring.prev, null);
  assert.equal(ring.cur.mode, "passphrase");
  assert.equal(ring.cur.iterations, PBKDF2_ITERATIONS);
  assert.equal(ring.cur.salt.length, 16);
  assert.ok(!("key" in ring.cur), "no CryptoKey stored in passphrase mode");
  for (const r of records.filter((r) => r.store === "records")) assert.equal(r.value.g, ring.cur.gen);
  // Nothing in the keyring is a CryptoKey any more.
  const hasCryptoKey = (v) => v instanceof CryptoKey || (v && typeof v === "object" && Object.values(v).some(hasCryptoKey));
  assert.ok(!hasCryptoKey(ring));
  await assertData(store);
});

test("set, change and remove the passphrase: the data stays; a reload is locked until unlocked", async () => {
  const { open } = environment();
  let store = await open();
  await fillStore(store);
  await store.setPassphrase(null, "first pass");
  store.close();

  store = await open();
  assert.equal(store.state, "locked");
  await assert.rejects(store.get("drafts", "d-1"), (e) => e instanceof LockedError && e.code === "locked");
  await assert.rejects(store.put("drafts", "d-9", {}), LockedError);
  let result = await store.unlock("wrong");
  assert.deepEqual(result, { ok: false, attemptsLeft: MAX_FAILS - 1, wiped: false });
  assert.equal(store.failedAttempts, 1);
  result = await store.unlock("first pass");
  assert.equal(result.ok, true);
  assert.equal(store.failedAttempts, 0, "a right passphrase resets the count");
  await assertData(store);

  // Change: a wrong old passphrase is refused (and counted); the right one re-wraps.
  await assert.rejects(store.setPassphrase("nope", "second pass"), (e) => e instanceof WrongPassphraseError && e.attemptsLeft === MAX_FAILS - 1);
  await store.setPassphrase("first pass", "second pass");
  await store.lock();
  assert.equal(store.state, "locked");
  assert.equal((await store.unlock("first pass")).ok, false);
  assert.equal((await store.unlock("second pass")).ok, true);
  await assertData(store);

  // Remove: the app opens without a passphrase afterwards.
  await store.removePassphrase("second pass");
  assert.equal(store.hasPassphrase, false);
  store.close();
  store = await open();
  assert.equal(store.state, "open");
  await assertData(store);
  // lock() without a passphrase changes nothing.
  assert.equal(await store.lock(), "open");
});

test("a passphrase set before anything is stored protects the first records too; NFC and NFD spellings are one passphrase", async () => {
  const { idb, open } = environment();
  let store = await open();
  await store.setPassphrase(null, "Қазақ\u0301"); // a combining accent
  await fillStore(store);
  await assertNoPlaintext(idb);
  store.close();
  store = await open();
  assert.equal(store.state, "locked");
  assert.equal((await store.unlock("Қазақ\u0301".normalize("NFD"))).ok, true);
  await assertData(store);
});

test(`${MAX_FAILS} wrong passphrases in a row erase everything, also across reloads`, async () => {
  const { idb, env, cacheNames, registrations, open } = environment();
  let store = await open();
  await fillStore(store);
  await store.setPassphrase(null, "right one");
  await store.lock();
  for (let i = 1; i <= 4; i++) assert.equal((await store.unlock(`guess ${i}`)).attemptsLeft, MAX_FAILS - i);
  // A reload does not reset the count: it is written before the answer.
  store.close();
  store = await open();
  assert.equal(store.failedAttempts, 4);
  for (let i = 5; i < MAX_FAILS; i++) {
    const r = await store.unlock(`guess ${i}`);
    assert.deepEqual(r, { ok: false, attemptsLeft: MAX_FAILS - i, wiped: false });
  }
  const last = await store.unlock("guess 10");
  assert.deepEqual(last, { ok: false, attemptsLeft: 0, wiped: true });
  assert.equal(store.state, "empty");
  assert.deepEqual(await idb.databases(), [], "no IndexedDB database left");
  assert.equal(cacheNames.size, 0);
  assert.equal(registrations.length, 0);
  assert.equal(env.sessionStorage.m.size, 0);
  assert.equal(env.localStorage.m.size, 0);
  // The right passphrase is of no use now: the data is gone.
  store = await open();
  assert.equal(store.state, "empty");
  assert.equal(await store.get("reports", "0123456789abcdef0123456789abcdef"), undefined);
});

test("erase() removes every IndexedDB database, cache, service worker registration and session/local storage", async () => {
  const { idb, env, cacheNames, registrations, open } = environment();
  const store = await open();
  await fillStore(store);
  // Another database of the origin (an old version's, a library's) goes too.
  await new Promise((resolve) => {
    const r = idb.open("something-else");
    r.onsuccess = () => {
      r.result.close();
      resolve();
    };
  });
  assert.equal((await idb.databases()).length, 2);
  const done = await store.erase();
  assert.deepEqual(done.databases.sort(), ["fieldsync-app", "something-else"]);
  assert.deepEqual(done.caches.sort(), ["app-shell-v1", "app-shell-v2"]);
  assert.equal(done.registrations, 1);
  assert.deepEqual(done.errors, []);
  assert.deepEqual(await idb.databases(), []);
  assert.equal(cacheNames.size, 0);
  assert.equal(registrations.length, 0);
  assert.equal(env.sessionStorage.m.size + env.localStorage.m.size, 0);
  assert.equal(store.state, "empty");
  // Reading after erase does not make the database again; writing starts afresh.
  assert.equal(await store.get("drafts", "d-1"), undefined);
  assert.deepEqual(await idb.databases(), []);
  await store.put("drafts", "d-1", { title: "new" });
  assert.deepEqual(await store.get("drafts", "d-1"), { title: "new" });
});

test("a QuotaExceededError is a StorageFullError and loses nothing already saved (putMany is all or nothing)", async (t) => {
  const { open } = environment();
  const store = await open();
  await fillStore(store);
  const realPut = FDBObjectStore.prototype.put;
  let calls = 0;
  t.after(() => {
    FDBObjectStore.prototype.put = realPut;
  });
  FDBObjectStore.prototype.put = function (...args) {
    calls += 1;
    if (calls === 2) throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
    return realPut.apply(this, args);
  };
  await assert.rejects(
    store.putMany([
      { kind: "drafts", key: "d-1", value: { title: "overwritten?" } },
      { kind: "drafts", key: "d-3", value: { title: "new" } },
    ]),
    (e) => e instanceof StorageFullError && e.code === "storage_full" && /nothing already saved was lost/.test(e.message),
  );
  FDBObjectStore.prototype.put = realPut;
  // The first put of the failed transaction was rolled back with it.
  assert.equal((await store.get("drafts", "d-1")).title, TITLE);
  assert.equal(await store.get("drafts", "d-3"), undefined);
  await assertData(store);
});

test("a crash while re-encrypting under a new passphrase loses nothing: the next unlock finishes the job", async (t) => {
  const { idb, open } = environment();
  let store = await open();
  await fillStore(store);
  for (let i = 0; i < 70; i++) await store.put("blobs", `f2.${i}`, PHOTO.subarray(i, i + 100));
  const realPut = FDBObjectStore.prototype.put;
  let calls = 0;
  t.after(() => {
    FDBObjectStore.prototype.put = realPut;
  });
  // Let the keyring write and the first batch through, then fail: the tab dies mid-way.
  FDBObjectStore.prototype.put = function (...args) {
    calls += 1;
    if (calls > 1 + 32) throw new DOMException("simulated crash", "UnknownError");
    return realPut.apply(this, args);
  };
  await assert.rejects(store.setPassphrase(null, "mid-way"));
  FDBObjectStore.prototype.put = realPut;
  store.close();

  const half = await dumpRaw(idb);
  const ring = half.find((r) => r.store === "keyring").value;
  assert.ok(ring.prev, "the old key is kept while records are under it");
  const gens = new Set(half.filter((r) => r.store === "records").map((r) => r.value.g));
  assert.deepEqual([...gens].sort(), [ring.prev.gen, ring.cur.gen].sort(), "some records moved, some not");

  store = await open();
  assert.equal(store.state, "locked");
  assert.equal((await store.unlock("mid-way")).ok, true);
  await assertData(store);
  for (let i = 0; i < 70; i++) assert.deepEqual(await store.get("blobs", `f2.${i}`), PHOTO.subarray(i, i + 100));
  const after = await dumpRaw(idb);
  const ring2 = after.find((r) => r.store === "keyring").value;
  assert.equal(ring2.prev, null);
  for (const r of after.filter((r) => r.store === "records")) assert.equal(r.value.g, ring2.cur.gen);
});

test("a record moved to another key does not open (values are bound to their slot)", async () => {
  const { idb, open } = environment();
  const store = await open();
  await store.put("drafts", "d-1", { title: TITLE });
  const [raw] = (await dumpRaw(idb)).filter((r) => r.store === "records");
  await new Promise((resolve, reject) => {
    const r = idb.open("fieldsync-app");
    r.onsuccess = () => {
      const tx = r.result.transaction("records", "readwrite");
      tx.objectStore("records").put(raw.value, ["drafts", "d-2"]);
      tx.oncomplete = () => {
        r.result.close();
        resolve();
      };
      tx.onerror = () => reject(tx.error);
    };
  });
  await assert.rejects(store.get("drafts", "d-2"), (e) => e.code === "damaged");
});

test("persist() asks the browser and says whether it is supported", async () => {
  const { open, env } = environment();
  const store = await open();
  assert.deepEqual(await store.persist(), { persisted: true, supported: true });
  env.navigator.storage.persist = async () => false;
  assert.deepEqual(await store.persist(), { persisted: false, supported: true });
  delete env.navigator.storage;
  assert.deepEqual(await store.persist(), { persisted: false, supported: false });
});

test("reports read again are not decrypted again, yet every change is seen: a write, another tab's write, a delete; a lock forgets them", async () => {
  const { open } = environment();
  const store = await open();
  const id = (i) => i.toString(16).padStart(32, "0");
  await store.putMany(Array.from({ length: 20 }, (_, i) => ({ kind: "reports", key: id(i), value: { id: id(i), title: `report ${i}` } })));
  await store.put("drafts", "d-1", { title: "a draft" });
  const other = await open(); // another tab of the app, same database

  const subtle = globalThis.crypto.subtle;
  const decrypt = subtle.decrypt;
  let decrypts = 0;
  subtle.decrypt = function (...args) {
    decrypts++;
    return decrypt.apply(this, args);
  };
  try {
    const titles = async () => (await store.list("reports")).map((r) => r.value.title);
    assert.equal((await titles()).length, 20);
    decrypts = 0;
    assert.deepEqual(await titles(), Array.from({ length: 20 }, (_, i) => `report ${i}`));
    assert.equal((await store.get("reports", id(3))).title, "report 3");
    assert.equal(decrypts, 0, "unchanged reports are not decrypted again");
    await store.get("drafts", "d-1");
    await store.get("drafts", "d-1");
    assert.equal(decrypts, 2, "only reports are remembered");

    // A write here, a write by the other tab, a delete there: all seen, each costing one decryption.
    decrypts = 0;
    await store.put("reports", id(1), { id: id(1), title: "edited here" });
    await other.put("reports", id(2), { id: id(2), title: "edited in another tab" });
    await other.delete("reports", id(4));
    const after = await store.list("reports");
    assert.equal(after.length, 19);
    assert.equal(after.find((r) => r.key === id(1)).value.title, "edited here");
    assert.equal(after.find((r) => r.key === id(2)).value.title, "edited in another tab");
    assert.ok(!after.some((r) => r.key === id(4)));
    assert.equal(decrypts, 2);

    // Locked: nothing is served from memory; unlocked again, everything is decrypted anew.
    await store.setPassphrase(null, "a passphrase");
    await store.lock();
    await assert.rejects(store.list("reports"), LockedError);
    await assert.rejects(store.get("reports", id(0)), LockedError);
    assert.equal((await store.unlock("a passphrase")).ok, true);
    decrypts = 0;
    assert.equal((await titles()).length, 19);
    assert.equal(decrypts, 19);
  } finally {
    subtle.decrypt = decrypt;
    store.close();
    other.close();
  }
});
