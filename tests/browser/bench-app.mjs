// The phone app's benchmark, browser side (issue 13): headless Debian
// chromium through playwright-core, against a real `fieldsync serve` that
// the caller started (tests/bench/src/app.rs does, with a case, a
// coordinator and a case key, and mints the invite links).
//
//   node tests/browser/bench-app.mjs --url http://127.0.0.1:PORT \
//     --invite LINK_FOR_THE_START_PHONE --invite LINK_FOR_THE_SYNC_PHONE \
//     [--reports 2000] [--saves 20] [--throttled-saves 10] [--sync-reports 200] [--photo-kib 200] \
//     [--cold-runs 3] [--throttle 4]
//
// Prints one JSON object on stdout (progress goes to stderr):
// - size: the app's files as the server serves them (the service worker's
//   shell list, plus sw.js), gzip and uncompressed, and what the browser
//   actually transferred on a first visit (page and service worker);
// - first_visit: a fresh profile opening the invite link at the CPU
//   throttle, until "Join the case" is usable;
// - cold: a returning user (service worker installed, N local reports), a
//   new page after closing the previous one, at the CPU throttle, until the
//   "Title" field is visible and enabled, and (another load) until "My
//   reports" lists all N reports;
// - save: offline saves through the form, click → "saved" notice (the
//   device's saveReport resolved) and click → the report in "My reports",
//   unthrottled and at the throttle; plus device.saveReport() alone while
//   populating;
// - sync: M offline reports each with a photo of random bytes, synced by
//   the device module: rounds, requests by kind, bytes sent, seconds.
//
// Times in the page are performance.now() from the navigation's start or
// from the click's event time, taken by a MutationObserver the moment the
// DOM holds what we wait for (before it is painted).

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS as ARGS } from "./lib.mjs";


function parseArgs(argv) {
  const o = { invite: [], reports: 2000, saves: 20, throttledSaves: 10, syncReports: 200, photoKib: 200, coldRuns: 3, throttle: 4 };
  const num = { "--reports": "reports", "--saves": "saves", "--throttled-saves": "throttledSaves", "--sync-reports": "syncReports", "--photo-kib": "photoKib", "--cold-runs": "coldRuns", "--throttle": "throttle" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === "--url") o.url = v.replace(/\/$/, "");
    else if (a === "--invite") o.invite.push(v);
    else if (num[a]) o[num[a]] = Number(v);
    else throw new Error(`unknown argument ${a}`);
    i++;
  }
  if (!o.url || o.invite.length < 2) throw new Error("usage: bench-app.mjs --url URL --invite LINK --invite LINK [--reports N] [--saves N] [--throttled-saves N] [--sync-reports N] [--photo-kib N] [--cold-runs N] [--throttle N]");
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const log = (s) => process.stderr.write(`bench-app: ${s}\n`);
const t0 = Date.now();
const step = (s) => log(`${((Date.now() - t0) / 1000).toFixed(1)} s  ${s}`);

function quantile(xs, q) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  // Nearest rank: p95 of 20 is the 19th value.
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
const stats = (xs) => ({ n: xs.length, median: quantile(xs, 0.5), p95: quantile(xs, 0.95), min: Math.min(...xs), max: Math.max(...xs) });

// ------------------------------------------------------------ sizes over HTTP

/** The body's bytes as they travel (no decoding), and its content-encoding. */
function rawGet(url, encoding) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { "accept-encoding": encoding } }, (res) => {
        let n = 0;
        res.on("data", (d) => (n += d.length));
        res.on("end", () => resolve({ status: res.statusCode, bytes: n, encoding: res.headers["content-encoding"] ?? null }));
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

async function shellList() {
  const sw = await (await fetch(`${opts.url}/app/sw.js`)).text();
  const m = sw.match(/const SHELL = (\[[\s\S]*?\]);/);
  if (!m) throw new Error("no SHELL list in /app/sw.js");
  return [...JSON.parse(m[1].replace(/,\s*\]$/, "]")), "/app/sw.js"];
}

async function sizes() {
  const files = [];
  for (const p of await shellList()) {
    const gz = await rawGet(opts.url + p, "gzip");
    const plain = await rawGet(opts.url + p, "identity");
    if (gz.status !== 200 || plain.status !== 200) throw new Error(`${p}: HTTP ${gz.status}/${plain.status}`);
    files.push({ path: p, gzip: gz.bytes, identity: plain.bytes, gzipped: gz.encoding === "gzip" });
  }
  files.sort((a, b) => b.gzip - a.gzip);
  const sum = (k) => files.reduce((n, f) => n + f[k], 0);
  return { files: files.length, gzip: sum("gzip"), identity: sum("identity"), top: files.slice(0, 8) };
}

// ------------------------------------------------------------ browser

async function launch({ serviceWorkers = "allow" } = {}) {
  const profile = mkdtempSync(path.join(os.tmpdir(), "fieldsync-bench-app-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 390, height: 844 },
    hasTouch: true,
    timezoneId: "UTC",
    locale: "en-GB",
    serviceWorkers,
  });
  const errors = [];
  context.on("weberror", (e) => errors.push(String(e.error()?.message ?? e.error())));
  return {
    context,
    errors,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Runs before any of the page's scripts, in every document of the page:
 * a MutationObserver records performance.now() the first time each
 * condition holds. Conditions: {name, kind: 'label'|'button'|'count', text, n}.
 */
function watcher(conditions) {
  const marks = {};
  window.__bench = { marks };
  const usable = (el) => el && !el.matches(":disabled") && (el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null);
  const holds = (c) => {
    if (c.kind === "label") {
      for (const l of document.querySelectorAll("label")) if (l.textContent.trim() === c.text && usable(l.control)) return true;
      return false;
    }
    if (c.kind === "button") {
      for (const b of document.querySelectorAll("button")) if (b.textContent.trim() === c.text && usable(b)) return true;
      return false;
    }
    if (c.kind === "count") return document.querySelectorAll(c.text).length >= c.n;
    return false;
  };
  const check = () => {
    let open = 0;
    for (const c of conditions) {
      if (marks[c.name] !== undefined) continue;
      if (holds(c)) marks[c.name] = performance.now();
      else open++;
    }
    return open;
  };
  const observer = new MutationObserver(() => {
    if (!check()) observer.disconnect();
  });
  observer.observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ["disabled", "hidden", "class"] });
}

async function throttle(page, rate) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Emulation.setCPUThrottlingRate", { rate });
  return cdp;
}

/** A new page at the throttle with the watcher; loads `url`; waits for every condition. */
async function timedLoad(context, url, conditions, { rate = opts.throttle, timeout = 120_000 } = {}) {
  const page = await context.newPage();
  const cdp = await throttle(page, rate);
  await page.addInitScript(watcher, conditions);
  const response = await page.goto(url, { waitUntil: "commit" });
  await page.waitForFunction((names) => names.every((n) => window.__bench?.marks?.[n] !== undefined), conditions.map((c) => c.name), { timeout, polling: 100 });
  const marks = await page.evaluate(() => window.__bench.marks);
  const nav = await page.evaluate(() => {
    const e = performance.getEntriesByType("navigation")[0];
    return e ? { responseEnd: e.responseEnd, domContentLoaded: e.domContentLoadedEventEnd, workerStart: e.workerStart } : null;
  });
  return { page, cdp, marks, nav, fromServiceWorker: !!response?.fromServiceWorker() };
}

/** Transfer sizes of every request the context sees (page and service worker), after they finish. */
function recordTransfers(context) {
  const done = [];
  context.on("requestfinished", async (req) => {
    const s = await req.sizes().catch(() => null);
    const res = await req.response().catch(() => null);
    done.push({
      url: req.url(),
      method: req.method(),
      worker: !!req.serviceWorker(),
      fromServiceWorker: !!res?.fromServiceWorker(),
      status: res?.status() ?? 0,
      encoding: (await res?.headerValue("content-encoding").catch(() => null)) ?? null,
      body: s?.responseBodySize ?? 0,
      headers: s?.responseHeadersSize ?? 0,
    });
  });
  return done;
}

/** A fresh browser opening the invite link: first-visit load, then enrollment through the form. */
async function firstVisit(link) {
  const b = await launch();
  const transfers = recordTransfers(b.context);
  const first = await timedLoad(b.context, link, [{ name: "join", kind: "button", text: "Join the case" }]);
  step(`first visit: "Join the case" usable at ${first.marks.join.toFixed(0)} ms`);
  await first.cdp.send("Emulation.setCPUThrottlingRate", { rate: 1 });
  const page = first.page;
  await page.getByRole("button", { name: "Join the case" }).click();
  await page.getByLabel("Title", { exact: true }).waitFor({ state: "visible", timeout: 60_000 });
  // The service worker installed (its whole shell fetched) and controlling.
  await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 60_000 });
  const cached = await page.evaluate(async () => {
    let n = 0;
    for (const k of await caches.keys()) n += (await (await caches.open(k)).keys()).length;
    return n;
  });
  await page.waitForTimeout(500); // let the last requestfinished events arrive
  const app = transfers.filter((t) => new URL(t.url).pathname.startsWith("/app/") && !t.fromServiceWorker);
  const sum = (xs) => xs.reduce((n, t) => n + t.body + t.headers, 0);
  const byPage = app.filter((t) => !t.worker);
  const byWorker = app.filter((t) => t.worker);
  return {
    browser: b,
    page,
    first: { join_ms: first.marks.join, response_end_ms: first.nav?.responseEnd ?? null },
    transferred: {
      requests: app.length,
      page_requests: byPage.length,
      page_bytes: sum(byPage),
      worker_requests: byWorker.length,
      worker_bytes: sum(byWorker),
      bytes: sum(app),
      body_bytes: app.reduce((n, t) => n + t.body, 0),
      not_gzip: [...new Set(app.filter((t) => t.encoding !== "gzip" && t.body > 2048).map((t) => new URL(t.url).pathname))],
      cached_entries: cached,
    },
  };
}

// ------------------------------------------------------------ in-page work

/** Opens a second handle on the app's store and device in the page (same modules the UI uses). */
async function openDevice(page, { countBytes = false } = {}) {
  await page.evaluate(async (countBytes) => {
    const { openStore } = await import("/app/lib/store.mjs");
    const { Device } = await import("/app/lib/device.mjs");
    // Modules the device loads lazily (sealing, uploads): loaded now, since
    // a page without the service worker cannot fetch them once offline.
    await Promise.all([import("/app/lib/envelope.mjs"), import("/app/lib/tus.mjs")]);
    window.__sent = { bytes: 0 };
    const bodyBytes = (b) => (b == null ? 0 : typeof b === "string" ? new TextEncoder().encode(b).length : b.byteLength ?? b.size ?? 0);
    const f = countBytes
      ? (input, init = {}) => {
          window.__sent.bytes += bodyBytes(init.body);
          return fetch(input, init);
        }
      : fetch.bind(globalThis);
    const store = await openStore();
    window.__device = await Device.open({ store, fetch: f });
  }, countBytes);
}

/** `n` reports saved with device.saveReport (no photo); returns each save's ms. */
async function populate(page, n, label) {
  const times = [];
  const chunk = 250;
  for (let from = 0; from < n; from += chunk) {
    const part = await page.evaluate(
      async ({ from, to }) => {
        const d = window.__device;
        const out = [];
        const base = Date.UTC(2026, 0, 1);
        for (let i = from; i < to; i++) {
          const when = new Date(base + i * 3_600_000).toISOString().replace(/\.\d+Z$/, "+00:00");
          const draft = {
            title: `Report ${i}: detention near the market`,
            when,
            approximate: i % 3 === 0,
            place: { name: `Street ${i % 50}`, lat: 43.2 + (i % 100) / 1000, lon: 76.9 + (i % 70) / 1000 },
            description: `Witness account ${i}. ` + "Two people were taken into a van by officers without insignia. ".repeat(4),
            people: [{ name: `Person ${i}`, role: "witness", note: "" }],
            tags: ["detention", `district-${i % 7}`],
            timeline: [],
          };
          const s = performance.now();
          await d.saveReport(draft);
          out.push(performance.now() - s);
        }
        return out;
      },
      { from, to: Math.min(n, from + chunk) },
    );
    times.push(...part);
    step(`${label}: ${times.length}/${n} reports stored`);
  }
  return times;
}

// ------------------------------------------------------------ the runs

const out = { args: opts, chromium: null };

async function startPhone() {
  const fv = await firstVisit(opts.invite[0]);
  const { browser, page } = fv;
  const context = browser.context;
  out.chromium = context.browser()?.version() ?? null;
  out.first_visit = { throttle: opts.throttle, ...fv.first };
  out.size.first_visit = fv.transferred;
  step(`first visit transferred ${fv.transferred.bytes} bytes in ${fv.transferred.requests} requests`);

  // The N reports, saved offline through the device module in the app's page.
  await context.setOffline(true);
  await openDevice(page);
  const saveTimes = await populate(page, opts.reports, "local reports");
  out.save = { device_save_report_ms: stats(saveTimes) };

  // Online again: the app syncs them by itself (its 'online' listener), as a
  // returning user's phone would have long ago. Cold starts then measure a
  // phone with N sent reports.
  let syncPosts = 0;
  let lastSyncDone = null;
  const isSync = (r) => r.method() === "POST" && new URL(r.url()).pathname === "/v1/sync";
  const onReq = (r) => {
    if (isSync(r)) syncPosts++;
  };
  const onDone = (r) => {
    if (isSync(r)) lastSyncDone = Date.now();
  };
  page.on("request", onReq);
  page.on("requestfinished", onDone);
  const online = Date.now();
  await context.setOffline(false);
  // The 'online' event starts the app's sync (its button is disabled while
  // one runs; with many reports the first request takes a while to build);
  // if none has started within 3 s, "Sync now".
  let clicked = false;
  const syncNow = page.getByRole("button", { name: "Sync now" });
  for (let waited = 0; syncPosts === 0 && waited < 3000; waited += 100) await page.waitForTimeout(100);
  if (syncPosts === 0 && (await syncNow.isEnabled())) {
    clicked = true;
    await syncNow.click();
  }
  for (;;) {
    const left = await page.evaluate(async () => (await window.__device.myReports()).filter((r) => r.state !== "sent").length);
    if (left === 0) break;
    if (Date.now() - online > 600_000) throw new Error(`${left} reports still unsent after 10 minutes`);
    await page.waitForTimeout(500);
  }
  page.off("request", onReq);
  page.off("requestfinished", onDone);
  // Until the last sync answer arrived (the uploads phase has nothing to do).
  out.local_sync = { reports: opts.reports, sync_posts: syncPosts, started_by: clicked ? "Sync now" : "online event", seconds: ((lastSyncDone ?? Date.now()) - online) / 1000 };
  step(`the app sent the ${opts.reports} reports: ${syncPosts} sync requests, ${out.local_sync.seconds} s`);
  await page.close();

  // Cold starts of a returning user.
  const cold = { title_ms: [], list_ms: [], dcl_ms: [], from_service_worker: true };
  for (let r = 0; r < opts.coldRuns; r++) {
    const a = await timedLoad(context, `${opts.url}/app/`, [{ name: "title", kind: "label", text: "Title" }]);
    cold.title_ms.push(a.marks.title);
    cold.dcl_ms.push(a.nav?.domContentLoaded ?? null);
    cold.from_service_worker &&= a.fromServiceWorker;
    await a.page.waitForTimeout(300);
    await a.page.close();
    const b = await timedLoad(context, `${opts.url}/app/#reports`, [{ name: "list", kind: "count", text: "[data-report-id]", n: opts.reports }]);
    cold.list_ms.push(b.marks.list);
    cold.from_service_worker &&= b.fromServiceWorker;
    await b.page.waitForTimeout(300);
    await b.page.close();
    step(`cold start ${r + 1}: Title ${a.marks.title.toFixed(0)} ms, list of ${opts.reports} ${b.marks.list.toFixed(0)} ms`);
  }
  out.cold = { throttle: opts.throttle, reports: opts.reports, runs: opts.coldRuns, ...cold, title: stats(cold.title_ms), list: stats(cold.list_ms) };

  // Offline saves through the form.
  await context.setOffline(true);
  for (const [rate, count] of [[1, opts.saves], [opts.throttle, opts.throttledSaves]]) {
    const page = await context.newPage();
    const cdp = await throttle(page, rate);
    await page.goto(`${opts.url}/app/#new`);
    const saved = [];
    const listed = [];
    for (let i = 0; i < count; i++) {
      if (i > 0) await page.getByRole("link", { name: "New report" }).click();
      const title = `Offline save ${rate}x ${i} ${Math.random().toString(36).slice(2, 8)}`;
      const input = page.getByLabel("Title", { exact: true });
      await input.waitFor({ state: "visible" });
      await input.fill(title);
      await page.getByLabel("Description", { exact: true }).fill("Saved with no network.");
      await page.evaluate((title) => {
        const m = (window.__save = {});
        document.addEventListener("click", (e) => (m.click = e.timeStamp), { capture: true, once: true });
        const obs = new MutationObserver((records) => {
          for (const r of records) {
            for (const n of r.addedNodes) {
              if (n.nodeType !== 1) continue;
              if (m.saved === undefined && n.textContent.startsWith("Report saved.")) m.saved = performance.now();
              if (m.listed === undefined && (n.matches?.("[data-report-id]") ? [n] : n.querySelectorAll("[data-report-id]")).length) {
                for (const li of n.matches?.("[data-report-id]") ? [n] : n.querySelectorAll("[data-report-id]")) {
                  if (li.textContent.includes(title)) m.listed = performance.now();
                }
              }
            }
          }
          if (m.saved !== undefined && m.listed !== undefined) obs.disconnect();
        });
        obs.observe(document.body, { childList: true, subtree: true });
      }, title);
      await page.getByRole("button", { name: "Save report" }).click();
      await page.waitForFunction(() => window.__save.saved !== undefined && window.__save.listed !== undefined, null, { timeout: 60_000, polling: 50 });
      const m = await page.evaluate(() => window.__save);
      saved.push(m.saved - m.click);
      listed.push(m.listed - m.click);
    }
    out.save[`ui_${rate}x`] = { saved_ms: stats(saved), listed_ms: stats(listed), reports_stored: opts.reports };
    step(`offline saves at ${rate}x: saved median ${quantile(saved, 0.5).toFixed(0)} ms, listed median ${quantile(listed, 0.5).toFixed(0)} ms`);
    await cdp.detach().catch(() => {});
    await page.close();
  }
  await context.setOffline(false);
  out.errors = (out.errors ?? []).concat(browser.errors);
  await browser.close();
}

async function syncPhone() {
  // The device module alone, in a page of the app's origin and CSP with no
  // app UI (service workers blocked, a plain file of the app), so nothing
  // else syncs at the same time and the device's own result is the figure.
  const b = await launch({ serviceWorkers: "block" });
  const page = b.context.pages()[0] ?? (await b.context.newPage());
  await page.goto(`${opts.url}/app/vendor/automerge/LICENSE`);
  await openDevice(page, { countBytes: true });
  await page.evaluate(async (link) => {
    const { parseInviteFragment } = await import("/app/lib/device.mjs");
    const invite = parseInviteFragment(new URL(link).hash);
    await window.__device.enroll({ server: location.origin, token: invite.token, fingerprint: invite.fingerprint });
  }, opts.invite[1]);
  await b.context.setOffline(true);
  const seal = [];
  const chunk = 20;
  for (let from = 0; from < opts.syncReports; from += chunk) {
    const part = await page.evaluate(
      async ({ from, to, size }) => {
        const d = window.__device;
        const times = [];
        for (let i = from; i < to; i++) {
          const bytes = new Uint8Array(size);
          for (let k = 0; k < size; k += 65536) crypto.getRandomValues(bytes.subarray(k, Math.min(size, k + 65536)));
          const draft = { title: `Photo report ${i}`, when: new Date(Date.UTC(2026, 5, 1) + i * 60_000).toISOString().replace(/\.\d+Z$/, "+00:00"), description: "A photo of the scene." };
          const id = await d.saveDraft(draft);
          const s = performance.now();
          const file = await d.addFile(id, new File([bytes], `photo-${i}.jpg`, { type: "image/jpeg" }));
          times.push(performance.now() - s);
          await d.saveReport({ ...draft, id, files: [file] });
        }
        return times;
      },
      { from, to: Math.min(opts.syncReports, from + chunk), size: opts.photoKib * 1024 },
    );
    seal.push(...part);
    step(`sync phone: ${seal.length}/${opts.syncReports} reports with a photo stored offline`);
  }
  await b.context.setOffline(false);

  const requests = [];
  page.on("request", (r) => requests.push(r));
  const result = await page.evaluate(async () => {
    window.__sent.bytes = 0;
    const s = performance.now();
    const r = await window.__device.sync();
    const ms = performance.now() - s;
    const left = (await window.__device.myReports()).filter((x) => x.state !== "sent" || x.pendingUploads > 0).length;
    return { ms, rounds: r.rounds, requests: r.requests, sent: r.sent, uploaded: r.uploaded, refused: r.refused.length ?? r.refused, error: r.error ? String(r.error.message ?? r.error) : null, bytes: window.__sent.bytes, left };
  });
  await page.waitForTimeout(300);
  const kind = (r) => {
    const p = new URL(r.url()).pathname;
    if (p === "/v1/sync") return `${r.method()} /v1/sync`;
    if (p.startsWith("/v1/uploads")) return `${r.method()} /v1/uploads`;
    return `${r.method()} ${p.replace(/[0-9a-f]{16,}/g, ":id")}`;
  };
  const byKind = {};
  for (const r of requests) byKind[kind(r)] = (byKind[kind(r)] ?? 0) + 1;
  if (result.error) throw new Error(`the sync failed: ${result.error}`);
  if (result.left) throw new Error(`${result.left} reports not sent or with uploads pending after the sync`);
  out.sync = {
    reports: opts.syncReports,
    photo_bytes: opts.photoKib * 1024,
    seconds: result.ms / 1000,
    rounds: result.rounds,
    device_requests: result.requests,
    changes_sent: result.sent,
    uploaded: result.uploaded,
    requests_seen: requests.length,
    requests_by_kind: byKind,
    sync_posts: byKind["POST /v1/sync"] ?? 0,
    bytes_sent: result.bytes,
    seal_photo_ms: stats(seal),
  };
  step(`sync: ${result.rounds} rounds, ${requests.length} requests, ${result.bytes} bytes, ${(result.ms / 1000).toFixed(1)} s`);
  out.errors = (out.errors ?? []).concat(b.errors);
  await b.close();
}

try {
  out.loadavg_start = readFileSync("/proc/loadavg", "utf8").trim();
  step("sizes over HTTP");
  out.size = await sizes();
  await startPhone();
  await syncPhone();
  out.loadavg_end = readFileSync("/proc/loadavg", "utf8").trim();
  process.stdout.write(JSON.stringify(out) + "\n");
} catch (err) {
  log(`failed: ${err.stack ?? err}`);
  process.exit(1);
}
