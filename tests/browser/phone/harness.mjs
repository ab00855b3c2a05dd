// Shared by the phone app's browser scenarios (tests/browser/phone/*.mjs,
// run by run.mjs from tests/scenarios/phone_app.rs): a phone (headless
// Debian chromium at 390×844 with touch, a persistent profile so the
// service worker and IndexedDB outlive a closed tab), the CLI coordinator as
// a process, the app's screens driven by their English labels (the label
// contract of /work/notes/app-plan.md), and a dump of everything the
// browser stores for this origin.

import { execFile } from "node:child_process";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS as ARGS, watch } from "../lib.mjs";

const run = promisify(execFile);

/** What the Rust scenario hands over, from the environment. */
export function environment() {
  const need = (name) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set (run through tests/scenarios/phone_app.rs)`);
    return v;
  };
  return {
    // The address the phone opens (the server, or a dev proxy in front of it).
    url: need("FIELDSYNC_URL"),
    bin: need("FIELDSYNC_BIN"),
    data: need("FIELDSYNC_DATA"),
    coordinatorHome: need("FIELDSYNC_COORDINATOR_HOME"),
    caseName: need("FIELDSYNC_CASE"),
    fixtures: need("FIELDSYNC_FIXTURES"),
    work: need("FIELDSYNC_WORK"),
    shots: need("FIELDSYNC_SHOTS"),
    only: (process.env.FIELDSYNC_PHONE_ONLY ?? "").split(",").map((s) => s.trim()).filter(Boolean),
  };
}

// ------------------------------------------------------------- the CLI

/** `fieldsync` as a process, on a device home (or with none, for admin). */
export class Cli {
  constructor(bin, home = null) {
    this.bin = bin;
    this.home = home;
  }

  async ok(args, { timeout = 60_000 } = {}) {
    const all = this.home ? ["--home", this.home, ...args] : args;
    try {
      const { stdout } = await run(this.bin, all, {
        timeout,
        maxBuffer: 64 * 1024 * 1024,
        env: cliEnv(),
      });
      return stdout;
    } catch (err) {
      throw new Error(`fieldsync ${all.join(" ")} failed: ${err.stderr || err.message}`);
    }
  }

  async json(args) {
    const out = await this.ok([...args, "--json"]);
    try {
      return JSON.parse(out);
    } catch {
      throw new Error(`fieldsync ${args.join(" ")} --json printed no JSON: ${out.slice(0, 500)}`);
    }
  }
}

/** The environment without a device home or passphrase file of the caller's. */
function cliEnv() {
  const env = { ...process.env };
  for (const k of ["FIELDSYNC_HOME", "FIELDSYNC_PASSPHRASE_FILE", "FIELDSYNC_NEW_PASSPHRASE_FILE"]) delete env[k];
  return env;
}

/** The coordinator's CLI device and the server's admin commands. */
export function coordinator(env) {
  const cli = new Cli(env.bin, env.coordinatorHome);
  const admin = new Cli(env.bin);
  return {
    cli,
    /** A one-time reporter invite link with this coordinator's own case-key fingerprint. */
    async inviteLink(base = env.url) {
      const out = await cli.json(["invite", "--role", "reporter", "--link", base]);
      if (!out.link?.includes("#invite=")) throw new Error(`invite --link printed no link: ${JSON.stringify(out)}`);
      return out;
    },
    async devices() {
      return JSON.parse(await admin.ok(["admin", "--data", env.data, "devices", "--json"]));
    },
    async sync() {
      return cli.ok(["sync"]);
    },
    async timeline() {
      return cli.json(["timeline", "--case", env.caseName]);
    },
    async show(id) {
      return cli.json(["show", id]);
    },
    async attachments(id) {
      return cli.json(["attachment", "list", id]);
    },
    /** Fetches and decrypts an attachment into `out`. */
    async getAttachment(id, out) {
      await cli.ok(["attachment", "get", id, "--out", out], { timeout: 120_000 });
    },
    async edit(id, args) {
      return cli.ok(["edit", id, ...args]);
    },
  };
}

// ------------------------------------------------------------- checks

/** Collects the failures of one scenario; `fatal` stops the scenario. */
export class Checks {
  constructor() {
    this.failures = [];
    this.steps = {};
  }

  /** A failed check, recorded; the scenario goes on. */
  fail(what, detail) {
    this.failures.push(detail === undefined ? what : `${what}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }

  that(condition, what, detail) {
    if (!condition) this.fail(what, detail);
    return !!condition;
  }

  equal(actual, expected, what) {
    const same = JSON.stringify(actual) === JSON.stringify(expected);
    if (!same) this.fail(what, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
    return same;
  }

  /** A check the rest of the scenario builds on: throws when it fails. */
  must(condition, what, detail) {
    if (!condition) {
      const err = new Error(detail === undefined ? what : `${what}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
      err.fatalCheck = true;
      throw err;
    }
  }

  step(name, value) {
    this.steps[name] = value;
  }
}

// ------------------------------------------------------------- the phone


export const PHONE = {
  viewport: { width: 390, height: 844 },
  hasTouch: true,
  isMobile: true,
  deviceScaleFactor: 2,
  // Almaty: the reporters' zone, so times carry the +06:00 of 2016.
  timezoneId: "Asia/Almaty",
  locale: "en-GB",
};

/**
 * A phone: a fresh chromium profile, opened as a persistent context (the
 * service worker, caches and IndexedDB stay in the profile when a tab or
 * the whole browser closes; `restart()` opens the same profile again).
 */
export async function phone(name, options = {}) {
  const profile = mkdtempSync(path.join(os.tmpdir(), `fieldsync-phone-${name}-`));
  const p = {
    name,
    profile,
    context: null,
    page: null,
    seen: null,
    async open() {
      this.context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ARGS,
        ...PHONE,
        ...options,
        acceptDownloads: true,
        serviceWorkers: "allow",
      });
      this.page = this.context.pages()[0] ?? (await this.context.newPage());
      this.seen = watch(this.page);
      return this;
    },
    /** A new tab in the same browser (after the old one was closed). */
    async newTab() {
      this.page = await this.context.newPage();
      const earlier = this.seen;
      this.seen = watch(this.page);
      // Keep what the closed tabs saw.
      for (const k of Object.keys(earlier)) this.seen[k].unshift(...earlier[k]);
      return this.page;
    },
    async restart() {
      await this.context.close().catch(() => {});
      const earlier = this.seen;
      await this.open();
      for (const k of Object.keys(earlier)) this.seen[k].unshift(...earlier[k]);
    },
    async close() {
      await this.context?.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
  return p.open();
}

/** Problems the page itself showed: script errors and CSP violations. */
export function pageProblems(seen) {
  return { page_errors: seen.page_errors, csp_violations: seen.csp_violations, dialogs: seen.dialogs };
}

export const TIMEOUT = { ui: 20_000, sync: 60_000 };

/** An input by its visible label, exactly. */
export function field(page, label) {
  return page.getByLabel(label, { exact: true });
}

/** The record form is on screen (the app is enrolled, unlocked and running). */
export async function waitForForm(page, timeout = TIMEOUT.ui) {
  await field(page, "Title").waitFor({ state: "visible", timeout });
}

/**
 * Opens an invite link and joins: the enroll screen, the delete-after-sync
 * choice, an optional passphrase, "Join the case"; waits for the form.
 */
export async function enroll(page, link, { deleteAfterSync = false, passphrase = null } = {}) {
  await page.goto(link);
  const join = page.getByRole("button", { name: "Join the case" });
  await join.waitFor({ timeout: TIMEOUT.ui });
  const box = field(page, "Delete from this phone once the server has it");
  if ((await box.isChecked()) !== deleteAfterSync) await box.setChecked(deleteAfterSync);
  if (passphrase) {
    await field(page, "Passphrase (optional)").fill(passphrase);
    await field(page, "Repeat the passphrase").fill(passphrase);
  }
  await join.click();
  await waitForForm(page, TIMEOUT.sync);
}

/**
 * Waits until the app can work with no network: its service worker active,
 * its shell cached, and this page controlled by it.
 */
export async function waitForOfflineReady(page) {
  let last = null;
  await waitUntil(async () => {
    last = await page.evaluate(async () => {
      const r = await navigator.serviceWorker.getRegistration("/app/");
      return { active: !!r?.active, controlled: !!navigator.serviceWorker.controller, caches: (await caches.keys()).length };
    });
    return last.active && last.controlled && last.caches > 0;
  }, "the service worker active, its cache filled, the page controlled", { timeout: TIMEOUT.sync, detail: () => last });
}

/** Goes to a screen by its tab (New report, My reports, Settings). */
export async function tab(page, name) {
  await page.getByRole("navigation").getByRole("link", { name, exact: true }).click();
}

/** A fresh, empty form ("New report" tab). */
export async function newReport(page) {
  await tab(page, "New report");
  await waitForForm(page);
}

/**
 * Fills the record form with `r` = {title, when: "YYYY-MM-DDTHH:MM",
 * approximate, place: {name, lat, lon}, description, people: [{name, role,
 * note}], tags, timeline: [{at, text, approximate}], files: [path]} and
 * saves it. Returns the new report's id, read from My reports.
 */
export async function recordReport(page, r) {
  const before = await reportIds(page);
  await newReport(page);
  await field(page, "Title").fill(r.title);
  if (r.when) await field(page, "When").fill(r.when);
  if (r.approximate) await field(page, "Approximate").check();
  if (r.place?.name) await field(page, "Place").fill(r.place.name);
  if (r.place?.lat !== undefined && r.place?.lat !== null) await field(page, "Latitude").fill(String(r.place.lat));
  if (r.place?.lon !== undefined && r.place?.lon !== null) await field(page, "Longitude").fill(String(r.place.lon));
  if (r.description) await field(page, "Description").fill(r.description);
  for (const [i, p] of (r.people ?? []).entries()) {
    await page.getByRole("button", { name: "Add a person" }).click();
    await field(page, "Name").nth(i).fill(p.name);
    await field(page, "Role").nth(i).selectOption(p.role);
    if (p.note) await field(page, "Note").nth(i).fill(p.note);
  }
  for (const tag of r.tags ?? []) {
    await field(page, "New tag").fill(tag);
    await field(page, "New tag").press("Enter");
  }
  for (const [i, e] of (r.timeline ?? []).entries()) {
    await page.getByRole("button", { name: "Add a timeline entry" }).click();
    await field(page, "Time").nth(i).fill(e.at);
    if (e.approximate) await field(page, "Time is an estimate").nth(i).check();
    await field(page, "What happened").nth(i).fill(e.text);
  }
  for (const file of r.files ?? []) {
    await field(page, "Add photo, video or audio").setInputFiles(file);
    // Sealed at once: the file is listed once the device holds its envelope.
    await page.locator("ul.files li", { hasText: path.basename(file) }).waitFor({ timeout: TIMEOUT.sync });
  }
  await page.getByRole("button", { name: "Save report" }).click();
  // Saved: the app goes to My reports, where the new report is listed.
  await page.waitForURL(/#reports$/, { timeout: TIMEOUT.ui });
  let fresh = [];
  await waitUntil(async () => {
    const now = await reportIds(page, { go: false });
    fresh = now.filter((id) => !before.includes(id));
    return fresh.length === 1;
  }, `the report "${r.title}" listed in My reports`);
  return fresh[0];
}

/** The ids of the reports in My reports (going there unless `go` is false). */
export async function reportIds(page, { go = true } = {}) {
  if (go) await tab(page, "My reports");
  await page.locator("section.reports").waitFor({ timeout: TIMEOUT.ui });
  return page.locator("[data-report-id]").evaluateAll((els) => els.map((e) => e.dataset.reportId));
}

/** {id: state} of My reports' list items. */
export async function reportStates(page) {
  return page.locator("[data-report-id]").evaluateAll((els) =>
    Object.fromEntries(els.map((e) => [e.dataset.reportId, e.dataset.state])));
}

/**
 * Waits until My reports shows every id of `ids` in `state` (the list is
 * redrawn after each sync). Returns the states seen last.
 */
export async function waitForStates(page, ids, state, { timeout = TIMEOUT.sync } = {}) {
  let last = {};
  await waitUntil(async () => {
    last = await reportStates(page).catch(() => ({}));
    return ids.every((id) => last[id] === state);
  }, `reports ${ids.join(", ")} ${state} in My reports`, { timeout, detail: () => last });
  return last;
}

/** Polls `condition` until true; throws with `what` (and `detail()`) on timeout. */
export async function waitUntil(condition, what, { timeout = TIMEOUT.ui, every = 200, detail = null } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail ? `; last seen ${JSON.stringify(detail())}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, every));
  }
}

/**
 * The text a list item shows once Chromium has drawn it, polled until
 * `shows(text)` holds or the time is up; returns the text seen last.
 * Report items are `content-visibility: auto`: right after the list is
 * redrawn (a tab switch, a sync) and before the next frame, Chromium has
 * not yet decided they are on screen, and their innerText is "". Reading
 * once at that moment sees nothing although the reporter, a frame later,
 * sees everything (CI failed on exactly that read).
 */
export async function shownText(locator, shows, { timeout = TIMEOUT.ui } = {}) {
  let text = "";
  await waitUntil(async () => {
    text = await locator.innerText({ timeout }).catch(() => "");
    return shows(text);
  }, "the item's text", { timeout, every: 100 }).catch(() => {});
  return text;
}

/** Holds a button pressed (pointer down, `ms`, pointer up), as a finger would. */
export async function hold(page, locator, ms) {
  const box = await locator.boundingBox();
  if (!box) throw new Error("the button to hold is not on screen");
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.waitForTimeout(ms); // the hold itself is what is tested
  await page.mouse.up();
}

// ------------------------------------------------------------- storage dump

/**
 * Every IndexedDB record (every database, every object store) and every
 * Cache API entry of the page's origin, as byte strings: each value is walked
 * and every string, ArrayBuffer, typed array and Blob in it is kept
 * (strings as given, binary as base64). CryptoKeys are listed by kind.
 */
export async function dumpStorage(page) {
  return page.evaluate(async () => {
    const b64 = (u8) => {
      let s = "";
      for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
      return btoa(s);
    };
    const walk = async (v, out, depth = 0) => {
      if (depth > 100 || v === null || v === undefined) return;
      if (typeof v === "string") out.strings.push(v);
      else if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") out.strings.push(String(v));
      else if (v instanceof ArrayBuffer) out.bytes.push(b64(new Uint8Array(v)));
      else if (ArrayBuffer.isView(v)) out.bytes.push(b64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
      else if (v instanceof Blob) out.bytes.push(b64(new Uint8Array(await v.arrayBuffer())));
      else if (typeof CryptoKey !== "undefined" && v instanceof CryptoKey) out.keys.push({ type: v.type, extractable: v.extractable, algorithm: v.algorithm.name });
      else if (v instanceof Date) out.strings.push(v.toISOString());
      else if (v instanceof Map) for (const [k, x] of v) { await walk(k, out, depth + 1); await walk(x, out, depth + 1); }
      else if (v instanceof Set || Array.isArray(v)) for (const x of v) await walk(x, out, depth + 1);
      else if (typeof v === "object") for (const [k, x] of Object.entries(v)) { out.strings.push(k); await walk(x, out, depth + 1); }
    };
    const req = (r) => new Promise((ok, bad) => { r.onsuccess = () => ok(r.result); r.onerror = () => bad(r.error); });
    const databases = [];
    for (const info of await indexedDB.databases()) {
      const db = await new Promise((ok, bad) => {
        const r = indexedDB.open(info.name);
        r.onsuccess = () => ok(r.result);
        r.onerror = () => bad(r.error);
        r.onupgradeneeded = () => r.transaction.abort();
      });
      const stores = [];
      for (const name of db.objectStoreNames) {
        const tx = db.transaction(name, "readonly");
        const store = tx.objectStore(name);
        const [keys, values] = await Promise.all([req(store.getAllKeys()), req(store.getAll())]);
        const records = [];
        for (let i = 0; i < values.length; i++) {
          const out = { strings: [], bytes: [], keys: [] };
          await walk(keys[i], out);
          await walk(values[i], out);
          records.push(out);
        }
        stores.push({ name, records });
      }
      db.close();
      databases.push({ name: info.name, stores });
    }
    const caches_ = [];
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      const entries = [];
      for (const request of await cache.keys()) {
        const response = await cache.match(request);
        const body = response ? new Uint8Array(await response.arrayBuffer()) : new Uint8Array();
        const headers = response ? [...response.headers].map(([k, v]) => `${k}: ${v}`) : [];
        entries.push({ strings: [request.url, ...headers], bytes: [b64(body)], keys: [] });
      }
      caches_.push({ name, entries });
    }
    return { databases, caches: caches_ };
  });
}

/** Counts of a dump, to show it was not empty. */
export function dumpSize(dump) {
  let records = 0;
  let bytes = 0;
  const count = (r) => {
    records += 1;
    for (const b of r.bytes) bytes += Buffer.from(b, "base64").length;
    for (const s of r.strings) bytes += s.length;
  };
  for (const db of dump.databases) for (const s of db.stores) s.records.forEach(count);
  const indexeddb = { records, bytes };
  for (const c of dump.caches) c.entries.forEach(count);
  return { records, bytes, indexeddb, databases: dump.databases.map((d) => d.name), caches: dump.caches.map((c) => c.name) };
}

/**
 * Every form `needle` (a string) could take in storage: the JS string
 * itself, and as bytes its UTF-8, UTF-16LE and UTF-16BE encodings and the
 * base64 of its UTF-8 at each of the three alignments.
 */
function forms(needle) {
  const utf8 = Buffer.from(needle, "utf8");
  const utf16le = Buffer.from(needle, "utf16le");
  const utf16be = Buffer.from(utf16le).swap16();
  return { text: [needle], bytes: [utf8, utf16le, utf16be], base64: base64Forms(utf8) };
}

/** Substrings any base64 text holding `bytes` must contain, whatever its alignment. */
function base64Forms(bytes) {
  const out = [];
  for (let shift = 0; shift < 3; shift++) {
    const text = Buffer.from(bytes.subarray(shift)).toString("base64").replace(/=+$/, "");
    // Drop the last (partial) quantum; keep only whole ones.
    const whole = text.slice(0, Math.floor(text.length / 4) * 4 - 4);
    if (whole.length >= 8) out.push(whole);
  }
  return out;
}

/**
 * Finds each needle in a dump. `strings`: text (titles, names...);
 * `blobs`: byte arrays (a photo), searched raw and as base64, by 64-byte
 * windows from across the file (a whole photo split into records would
 * still show). Returns [{needle, where}] for every hit.
 */
export function findInDump(dump, { strings = [], blobs = [] }) {
  const hits = [];
  const places = [];
  for (const db of dump.databases) for (const s of db.stores) s.records.forEach((r, i) => places.push([`indexeddb ${db.name}/${s.name}#${i}`, r]));
  for (const c of dump.caches) c.entries.forEach((r) => places.push([`cache ${c.name} ${r.strings[0]}`, r]));
  const decoded = places.map(([where, r]) => [where, r, r.bytes.map((b) => Buffer.from(b, "base64"))]);
  const search = (label, f) => {
    for (const [where, r, bins] of decoded) {
      const texts = r.strings;
      const hit =
        f.text.some((n) => texts.some((t) => t.includes(n))) ||
        f.bytes.some((n) => bins.some((b) => b.includes(n)) || texts.some((t) => Buffer.from(t, "latin1").includes(n))) ||
        f.base64.some((n) => texts.some((t) => t.includes(n)) || bins.some((b) => b.includes(Buffer.from(n))) || r.bytes.some((b) => b.includes(n)));
      if (hit) hits.push({ needle: label, where });
    }
  };
  for (const s of strings) search(JSON.stringify(s), forms(s));
  for (const [label, blob] of blobs) {
    const windows = [];
    for (let at = 0; at + 64 <= blob.length; at += Math.max(64, Math.floor(blob.length / 16))) windows.push(blob.subarray(at, at + 64));
    for (const [i, w] of windows.entries()) {
      search(`${label}[window ${i}]`, { text: [], bytes: [w], base64: base64Forms(w) });
    }
  }
  return hits;
}

/**
 * Proves the dump and the search can find what they look for: writes a
 * scratch database (the needle as a string, as UTF-16 bytes, the blob as a
 * Blob) and a scratch cache entry, checks each is found, and deletes both.
 */
export async function dumpControl(page, needle, blob) {
  await page.evaluate(async ({ needle, blob }) => {
    const bytes = Uint8Array.from(atob(blob), (c) => c.charCodeAt(0));
    const db = await new Promise((ok, bad) => {
      const r = indexedDB.open("fieldsync-test-control", 1);
      r.onupgradeneeded = () => r.result.createObjectStore("s");
      r.onsuccess = () => ok(r.result);
      r.onerror = () => bad(r.error);
    });
    await new Promise((ok, bad) => {
      const tx = db.transaction("s", "readwrite");
      const s = tx.objectStore("s");
      s.put({ nested: [{ text: needle }] }, "a");
      const u16 = new Uint16Array([...needle].map((c) => c.charCodeAt(0)));
      s.put(u16.buffer, "b");
      s.put(new Blob([bytes]), "c");
      tx.oncomplete = ok;
      tx.onerror = () => bad(tx.error);
    });
    db.close();
    const cache = await caches.open("fieldsync-test-control");
    await cache.put("/app/__control__", new Response(bytes));
  }, { needle, blob: Buffer.from(blob).toString("base64") });
  const dump = await dumpStorage(page);
  await page.evaluate(async () => {
    await new Promise((ok, bad) => {
      const r = indexedDB.deleteDatabase("fieldsync-test-control");
      r.onsuccess = ok;
      r.onerror = () => bad(r.error);
    });
    await caches.delete("fieldsync-test-control");
  });
  const only = {
    databases: dump.databases.filter((d) => d.name === "fieldsync-test-control"),
    caches: dump.caches.filter((c) => c.name === "fieldsync-test-control"),
  };
  return findInDump(only, { strings: [needle], blobs: [["control blob", blob]] });
}

/** What the origin still holds: IndexedDB databases, caches, service workers, web storage. */
export async function leftovers(page) {
  return page.evaluate(async () => ({
    databases: (await indexedDB.databases()).map((d) => d.name),
    caches: await caches.keys(),
    serviceWorkers: (await navigator.serviceWorker.getRegistrations()).map((r) => r.scope),
    localStorage: localStorage.length,
    sessionStorage: sessionStorage.length,
  }));
}

/**
 * The app's own store opened in the page (the app's module, its key): every
 * record decrypted, as {kind: [{key, value}]} with binary as base64. Only
 * for a phone with no passphrase (the store opens with the stored key).
 */
export async function decryptedRecords(page) {
  return page.evaluate(async () => {
    const { openStore } = await import("/app/lib/store.mjs");
    const store = await openStore();
    if (store.state !== "open") return { state: store.state };
    const db = await new Promise((ok, bad) => {
      const r = indexedDB.open("fieldsync-app");
      r.onsuccess = () => ok(r.result);
      r.onerror = () => bad(r.error);
    });
    const kinds = new Set();
    for (const name of db.objectStoreNames) {
      const keys = await new Promise((ok, bad) => {
        const r = db.transaction(name).objectStore(name).getAllKeys();
        r.onsuccess = () => ok(r.result);
        r.onerror = () => bad(r.error);
      });
      for (const k of keys) if (Array.isArray(k) && typeof k[0] === "string") kinds.add(k[0]);
    }
    db.close();
    const b64 = (u8) => {
      let s = "";
      for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
      return btoa(s);
    };
    // Automerge documents keep their strings in compressed columns: load
    // them with the app's own copy of Automerge and keep their content.
    const A = await import("/app/vendor/automerge/entrypoints/slim.js");
    await A.initializeWasm(await fetch("/app/vendor/automerge/automerge.wasm"));
    const MAGIC = [0x85, 0x6f, 0x4a, 0x83];
    const plain = (v) => {
      if (v instanceof Uint8Array && MAGIC.every((m, i) => v[i] === m)) {
        try {
          return { base64: b64(v), automerge: JSON.parse(JSON.stringify(A.toJS(A.load(v)), (k, x) => (typeof x === "bigint" ? String(x) : x))) };
        } catch (err) {
          // not a whole document: kept as bytes, and why
          return { base64: b64(v), automergeError: String(err?.message ?? err) };
        }
      }
      if (v instanceof Uint8Array) return { base64: b64(v) };
      if (Array.isArray(v)) return v.map(plain);
      if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
      return v;
    };
    const out = { state: "open", kinds: {} };
    for (const kind of kinds) out.kinds[kind] = plain(await store.list(kind));
    store.close?.();
    return out;
  });
}

/** Whether `needle` occurs in decrypted records (as text, or inside binary as UTF-8). */
export function inRecords(records, needle) {
  const utf8 = Buffer.from(needle, "utf8");
  const found = [];
  const walk = (v, where) => {
    if (typeof v === "string") {
      if (v.includes(needle)) found.push(where);
    } else if (v && typeof v === "object" && typeof v.base64 === "string") {
      if (Buffer.from(v.base64, "base64").includes(utf8)) found.push(where);
      if (v.automerge) walk(v.automerge, `${where}(automerge)`);
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${where}[${i}]`));
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, `${where}.${k}`);
  };
  for (const [kind, list] of Object.entries(records.kinds ?? {})) walk(list, kind);
  return found;
}

// ------------------------------------------------------------- a network to cut

/**
 * A relay between a phone and the server, where a test cuts the network
 * exactly: `decide({method, path, headers, body})` says, per request, "pass"
 * (relayed), "hold" (never relayed, never answered: in flight until the tab
 * closes) or "drop-answer" (relayed to the server, its answer never given
 * back). Playwright's own routing cannot hold a request: when the tab
 * closes it lets held requests through. `log` lists what happened.
 */
export async function cutRelay(upstream, decide) {
  const target = new URL(upstream);
  const log = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const seen = { method: req.method, path: req.url, headers: req.headers, body };
      const verdict = decide(seen) ?? "pass";
      const entry = { method: req.method, path: req.url.split("?")[0], bytes: body.length, verdict, headers: req.headers };
      log.push(entry);
      if (verdict === "hold") return;
      const out = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        (answer) => {
          const back = [];
          answer.on("data", (c) => back.push(c));
          answer.on("end", () => {
            entry.status = answer.statusCode;
            entry.answerHeaders = answer.headers;
            if (verdict === "drop-answer") return;
            res.writeHead(answer.statusCode, answer.headers);
            res.end(Buffer.concat(back));
          });
        },
      );
      out.on("error", (err) => {
        entry.error = err.message;
        res.destroy();
      });
      out.end(body);
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    log,
    close() {
      server.closeAllConnections?.();
      server.close();
    },
  };
}
