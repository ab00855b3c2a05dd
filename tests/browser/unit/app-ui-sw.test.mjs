// The app's service worker (server/app/sw.js), run in node's vm with fake
// caches, fetch and clients: it caches the whole shell or nothing, never
// replaces the running version by itself, deletes old caches only once the
// new one is complete (enketo#986), serves the app offline, and never
// touches /v1/ or stores anything at fetch time. It revalidates instead of
// downloading again (the page's first visit already fetched the files) and
// stores only bytes whose SHA-256 is this version's, so neither a stale
// HTTP-cache copy nor a file of another version gets in. Also: its shell
// list, hashes and version are those of the files under server/app/.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import vm from "node:vm";
import { APP_DIR, computeShell, rewrite } from "../app-sw-version.mjs";

const SOURCE = readFileSync(path.join(APP_DIR, "sw.js"), "utf8");
const SHELL_PATHS = new Set(computeShell().shell);
const ORIGIN = "https://reports.example";

test("sw.js lists every file of the app and its version is current (run tests/browser/app-sw-version.mjs)", () => {
  assert.equal(rewrite(SOURCE, computeShell()), SOURCE);
  const { shell } = computeShell();
  for (const must of ["/app/", "/app/ui/main.mjs", "/app/app.css", "/app/manifest.webmanifest", "/app/i18n/kk.mjs", "/app/lib/device.mjs", "/app/vendor/automerge/automerge.wasm", "/app/icons/icon-maskable-512.png"]) {
    assert.ok(shell.includes(must), `shell lacks ${must}`);
  }
  assert.ok(!shell.includes("/app/sw.js"), "the worker is not in its own cache");
  assert.ok(!shell.some((p) => p.endsWith(".sh")), "scripts are not shipped");
});

test("the version changes when any byte of any shipped file changes, and only then", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "fieldsync-sw-"));
  try {
    mkdirSync(path.join(dir, "ui"));
    writeFileSync(path.join(dir, "index.html"), "<!doctype html>");
    writeFileSync(path.join(dir, "ui", "main.mjs"), "export {}");
    writeFileSync(path.join(dir, "sw.js"), "// worker");
    writeFileSync(path.join(dir, "update.sh"), "#!/bin/sh");
    const first = computeShell(dir);
    assert.deepEqual(first.shell, ["/app/", "/app/ui/main.mjs"]);
    writeFileSync(path.join(dir, "sw.js"), "// worker, edited");
    writeFileSync(path.join(dir, "update.sh"), "#!/bin/sh\n");
    assert.equal(computeShell(dir).version, first.version, "files not shipped do not count");
    writeFileSync(path.join(dir, "ui", "main.mjs"), "export { }");
    assert.notEqual(computeShell(dir).version, first.version);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

class FakeCache {
  constructor() {
    this.entries = new Map();
    this.puts = 0;
  }
  key(req) {
    return typeof req === "string" ? new URL(req, ORIGIN).pathname : new URL(req.url).pathname;
  }
  async match(req) {
    const hit = this.entries.get(this.key(req));
    return hit ? hit.clone() : undefined;
  }
  async put(req, res) {
    this.puts += 1;
    this.entries.set(this.key(req), res);
  }
}

class FakeCaches {
  constructor() {
    this.map = new Map();
    this.opens = 0;
  }
  async open(name) {
    this.opens += 1;
    if (!this.map.has(name)) this.map.set(name, new FakeCache());
    return this.map.get(name);
  }
  async keys() {
    return [...this.map.keys()];
  }
  async delete(name) {
    return this.map.delete(name);
  }
  async match(req) {
    for (const cache of this.map.values()) {
      const hit = await cache.match(req);
      if (hit) return hit;
    }
    return undefined;
  }
  puts() {
    return [...this.map.values()].reduce((n, c) => n + c.puts, 0);
  }
}

/** The shipped bytes of a shell path, as the server sends them ("/app/" is index.html). */
function shipped(pathname) {
  const rel = pathname === "/app/" ? "index.html" : pathname.slice("/app/".length);
  return readFileSync(path.join(APP_DIR, rel));
}

/**
 * Loads sw.js with fakes. fetch answers shell paths with their real bytes
 * (other paths: "body of PATH"); `files` limits what exists (missing → 404),
 * `failPath` answers 404, `altered` maps a path to other bytes (a stale or
 * foreign copy), `state.offline` makes fetch throw.
 */
function worker({ caches = new FakeCaches(), files = null, failPath = null, altered = {} } = {}) {
  const listeners = {};
  const state = { skipWaiting: 0, claimed: 0, fetched: [], modes: [], offline: false };
  class SwRequest extends Request {
    constructor(input, init) {
      super(typeof input === "string" ? new URL(input, `${ORIGIN}/app/sw.js`) : input, init);
    }
  }
  const fetch = async (req) => {
    const url = new URL(typeof req === "string" ? req : req.url, ORIGIN);
    state.fetched.push(url.pathname);
    state.modes.push(typeof req === "string" ? "default" : req.cache);
    if (state.offline) throw new TypeError("Failed to fetch");
    if (url.pathname === failPath) return new Response("nope", { status: 404 });
    if (files && !files.has(url.pathname)) return new Response("nope", { status: 404 });
    if (url.pathname in altered) return new Response(altered[url.pathname], { status: 200 });
    const body = SHELL_PATHS.has(url.pathname) ? shipped(url.pathname) : `body of ${url.pathname}`;
    return new Response(body, { status: 200 });
  };
  const self = {
    location: new URL(`${ORIGIN}/app/sw.js`),
    addEventListener: (type, fn) => {
      listeners[type] = fn;
    },
    skipWaiting: async () => {
      state.skipWaiting += 1;
    },
    clients: {
      claim: async () => {
        state.claimed += 1;
      },
    },
  };
  const context = vm.createContext({ self, caches, fetch, crypto: globalThis.crypto, Request: SwRequest, Response, URL, Set, Map, Promise, Error, TypeError, Array, Uint8Array, console });
  vm.runInContext(SOURCE, context);
  const SHELL = vm.runInContext("SHELL", context);
  const CACHE = vm.runInContext("CACHE", context);

  const extendable = () => {
    const ev = { promise: null, waitUntil: (p) => (ev.promise = p) };
    return ev;
  };
  return {
    caches,
    state,
    context,
    SHELL,
    CACHE,
    async install() {
      const ev = extendable();
      listeners.install(ev);
      return ev.promise;
    },
    async activate() {
      const ev = extendable();
      listeners.activate(ev);
      return ev.promise;
    },
    message(data) {
      listeners.message({ data });
    },
    /** → the Response the worker gives, or null when it leaves the request to the network. */
    async fetch(url, init = {}) {
      let responded = null;
      const request = new Request(new URL(url, ORIGIN), { method: init.method ?? "GET", body: init.body });
      const ev = {
        request: init.mode ? Object.defineProperty(request, "mode", { value: init.mode }) : request,
        respondWith: (p) => (responded = p),
      };
      listeners.fetch(ev);
      return responded ? await responded : null;
    },
  };
}

test("install caches every shell file under the versioned name, and does not take over by itself", async () => {
  const w = worker();
  await w.install();
  assert.ok(w.CACHE.startsWith("fieldsync-app-"));
  const cache = w.caches.map.get(w.CACHE);
  for (const p of w.SHELL) assert.ok(await cache.match(p), `${p} cached`);
  assert.equal(w.state.skipWaiting, 0, "no skipWaiting during install");
  // Each file once, revalidated with the server ("no-cache": a 304 for what
  // the page already fetched, never an unchecked HTTP-cache copy).
  assert.deepEqual([...w.state.fetched].sort(), [...w.SHELL].sort());
  assert.deepEqual([...new Set(w.state.modes)], ["no-cache"]);
  // What is cached is the shipped bytes.
  assert.deepEqual(new Uint8Array(await (await cache.match("/app/ui/main.mjs")).arrayBuffer()), new Uint8Array(shipped("/app/ui/main.mjs")));
});

test("sw.js carries each shell file's SHA-256", () => {
  const { sha256, shell } = computeShell();
  const w = worker();
  const hashes = vm.runInContext("SHA256", w.context);
  assert.deepEqual(Object.keys(hashes).sort(), [...shell].sort());
  for (const p of shell) assert.equal(hashes[p], sha256[p], p);
});

test("a file that is not this version's (stale copy, server updated mid-install) fails the install and caches nothing", async () => {
  for (const [file, bytes] of [["/app/ui/main.mjs", "export const stale = 1;\n"], ["/app/vendor/automerge/automerge.wasm", new Uint8Array([0, 97, 115, 109])], ["/app/", "<!doctype html><title>another version</title>"]]) {
    const caches = new FakeCaches();
    const old = await caches.open("fieldsync-app-oldversion");
    await old.put("/app/", new Response("old index"));
    const w = worker({ caches, altered: { [file]: bytes } });
    await assert.rejects(w.install(), (err) => err.message.startsWith(`${file}: not the file of version`));
    assert.ok(!caches.map.has(w.CACHE), `${file}: no partial cache`);
    assert.equal(await (await caches.match("/app/")).text(), "old index", `${file}: the old version still serves`);
    // The next attempt, with the right files, installs.
    const again = worker({ caches });
    await again.install();
    assert.ok(await (await caches.open(again.CACHE)).match(file));
  }
});

test("the worker opens its cache once, not per request", async () => {
  const w = worker();
  await w.install();
  await w.activate();
  const before = w.caches.opens;
  for (const p of w.SHELL.slice(0, 20)) assert.ok(await w.fetch(p));
  await w.fetch("/app/", { mode: "navigate" });
  assert.ok(w.caches.opens - before <= 1, `caches.open called ${w.caches.opens - before} times for 21 requests`);
});

test("a failed file fails the install, leaves no partial cache and keeps the old version's cache", async () => {
  const caches = new FakeCaches();
  const old = await caches.open("fieldsync-app-oldversion");
  await old.put("/app/", new Response("old index"));
  const w = worker({ caches, failPath: "/app/ui/main.mjs" });
  await assert.rejects(w.install(), /main\.mjs: HTTP 404/);
  assert.ok(!caches.map.has(w.CACHE), "the new, incomplete cache is deleted");
  assert.equal(await (await caches.match("/app/")).text(), "old index");

  const offline = worker({ caches });
  offline.state.offline = true;
  await assert.rejects(offline.install(), /Failed to fetch/);
  assert.ok(caches.map.has("fieldsync-app-oldversion"));
});

test("activation deletes older app caches only when the new cache is complete, and leaves other caches alone", async () => {
  const caches = new FakeCaches();
  await (await caches.open("fieldsync-app-oldversion")).put("/app/", new Response("old"));
  await (await caches.open("someone-else")).put("/x", new Response("x"));
  const w = worker({ caches });
  await w.install();
  // Damage the new cache: activation must keep the old one.
  w.caches.map.get(w.CACHE).entries.delete("/app/app.css");
  await w.activate();
  assert.ok(caches.map.has("fieldsync-app-oldversion"), "old kept while the new cache is incomplete");
  // …and the missing file is still served, from the old cache's copy or the network.
  await (await caches.open("fieldsync-app-oldversion")).put("/app/app.css", new Response("old css"));
  w.state.offline = true;
  assert.equal(await (await w.fetch("/app/app.css")).text(), "old css");

  const w2 = worker({ caches });
  await w2.install();
  await w2.activate();
  assert.deepEqual((await caches.keys()).sort(), [w2.CACHE, "someone-else"].sort());
  assert.equal(w2.state.claimed, 1);
});

test("offline, the app is served from the cache: navigations get the index, shell files themselves", async () => {
  const w = worker();
  await w.install();
  await w.activate();
  w.state.offline = true;
  const index = shipped("/app/").toString();
  const nav = await w.fetch("/app/?x=1", { mode: "navigate" });
  assert.equal(await nav.text(), index);
  const navIndex = await w.fetch("/app/index.html", { mode: "navigate" });
  assert.equal(await navIndex.text(), index);
  const module = await w.fetch("/app/ui/main.mjs");
  assert.equal(await module.text(), shipped("/app/ui/main.mjs").toString());
  const wasm = await w.fetch("/app/vendor/automerge/automerge.wasm");
  assert.ok(wasm, "the wasm is served offline");
});

test("the API and anything outside the shell go to the network untouched, and nothing is ever stored at fetch time", async () => {
  const w = worker();
  await w.install();
  await w.activate();
  const putsAfterInstall = w.caches.puts();
  assert.equal(await w.fetch("/v1/sync", { method: "POST", body: "{}" }), null);
  assert.equal(await w.fetch("/v1/reports?since=0"), null);
  assert.equal(await w.fetch("/v1/blobs/abc"), null);
  assert.equal(await w.fetch("/app/not-a-shell-file.json"), null);
  assert.equal(await w.fetch("https://elsewhere.example/app/ui/main.mjs"), null);
  assert.equal(await w.fetch("/app/ui/main.mjs", { method: "POST", body: "x" }), null);
  // A shell file missing from every cache comes from the network but is not stored.
  for (const c of w.caches.map.values()) c.entries.delete("/app/app.css");
  const res = await w.fetch("/app/app.css");
  assert.equal(await res.text(), shipped("/app/app.css").toString());
  assert.equal(w.caches.puts(), putsAfterInstall, "no cache write outside install");
});

test("the waiting worker takes over only when the page asks", async () => {
  const w = worker();
  await w.install();
  assert.equal(w.state.skipWaiting, 0);
  w.message({ type: "something-else" });
  w.message(null);
  assert.equal(w.state.skipWaiting, 0);
  w.message({ type: "skip-waiting" });
  assert.equal(w.state.skipWaiting, 1);
});
