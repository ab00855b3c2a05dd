#!/usr/bin/env node
// The coordinator's review, end to end, in headless chromium against a
// running server (the real `fieldsync serve`, or mock-server.mjs while
// developing). Driven by a Rust scenario test through environment variables:
//
//   FIELDSYNC_URL         the server's base URL, e.g. http://127.0.0.1:41234
//   FIELDSYNC_LOGIN_LINK  a fresh link from `fieldsync web-login` (one-time)
//   FIELDSYNC_EXPECT      path of a JSON file:
//     {
//       "titles": ["Arrest at the bus stop", ...],      // must be on the timeline
//       "filter": {                                     // applied through the filter bar
//         "query": {"tag": "arrest"},                   // any of from, to, tag, status, reporter, text
//         "includes": ["Arrest at the bus stop"],       // titles that must match
//         "excludes": ["Rally dispersed"],              // titles that must not (optional)
//         "every_row_has_tag": "arrest",                // optional
//         "every_row_has_status": "unverified"          // optional
//       },
//       "report_id": "…",  "report_title": "…",         // the report to open and review
//       "image_sha256": "…", "image_name": "photo.png", // its image attachment's plaintext
//       "attachments": [                                // optional: more of that report's attachments,
//         {"name": "statement.bin", "envelope": "v1",   //   each shown by name, with its envelope
//          "sha256": "…"}                               //   version, decrypted and downloaded (sha256)
//       ],
//       "secrets": ["share code", ...],                 // case key codes (the link's k is added)
//       "hostile": {"report_id": "…", "title": "<img src=x onerror=alert(1)>",
//                   "strings": ["<img src=x onerror=alert(1)>", ...]},   // must all show as text
//       "set_status": {"status": "verified", "note": "two witnesses"}
//     }
//   FIELDSYNC_SCREENSHOTS optional folder for a screenshot of each step
//
// Prints one JSON object on stdout: {"ok", "failures": [...], "steps": {...},
// "requests": {...}}, and exits 1 when a check failed (2 on a crash).
//
// Every request the page makes is captured (URL, every header, body) and
// searched for the case keys and the session seed in every encoding a
// mistake could produce; cookies and localStorage are searched too.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { launch, watch } from "./lib.mjs";

const URL_BASE = (process.env.FIELDSYNC_URL ?? "").replace(/\/+$/, "");
const LOGIN_LINK = process.env.FIELDSYNC_LOGIN_LINK ?? "";
const EXPECT_PATH = process.env.FIELDSYNC_EXPECT ?? "";
const SHOTS = process.env.FIELDSYNC_SCREENSHOTS ?? "";
const WAIT = Number(process.env.FIELDSYNC_WAIT_MS ?? 20000);
const DEADLINE_MS = Number(process.env.FIELDSYNC_DEADLINE_MS ?? 180000);

const result = { ok: false, failures: [], steps: {}, requests: {} };
const fail = (step, message) => result.failures.push(`${step}: ${message}`);

function finish(code) {
  result.ok = code === 0 && result.failures.length === 0;
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.exit(result.ok ? 0 : code || 1);
}

if (!URL_BASE || !LOGIN_LINK || !EXPECT_PATH) {
  fail("setup", "FIELDSYNC_URL, FIELDSYNC_LOGIN_LINK and FIELDSYNC_EXPECT must all be set");
  finish(2);
}
const expect = JSON.parse(readFileSync(EXPECT_PATH, "utf8"));
setTimeout(() => {
  fail("deadline", `the scenario did not finish within ${DEADLINE_MS} ms`);
  finish(1);
}, DEADLINE_MS).unref();

// ------------------------------------------------------------- the secrets

/** Every encoding of the link's secrets that must never leave the browser. */
function secretNeedles() {
  const fragment = new URLSearchParams(LOGIN_LINK.split("#")[1] ?? "");
  const codes = new Set([...(expect.secrets ?? []), ...(fragment.get("k") ?? "").split(",")].filter(Boolean));
  const seed = fragment.get("s");
  const needles = [];
  const add = (label, bytes, text) => {
    const b64 = bytes.toString("base64");
    for (const [form, value] of [
      ["hex", bytes.toString("hex")],
      ["HEX", bytes.toString("hex").toUpperCase()],
      ["base64", b64],
      ["base64 unpadded", b64.replace(/=+$/, "")],
      ["base64url", bytes.toString("base64url")],
      ["base64 url-encoded", encodeURIComponent(b64)],
      ...(text ? [["as given", text], ["url-encoded", encodeURIComponent(text)]] : []),
    ]) needles.push({ label: `${label} (${form})`, text: value });
    needles.push({ label: `${label} (raw bytes)`, bytes });
  };
  for (const code of codes) {
    const raw = Buffer.from(code.replace(/\s+/g, ""), "base64url");
    add(`case key code ${code.slice(0, 6)}…`, raw, code);
    if (raw.length === 41) add(`case key epoch ${raw.readUInt32BE(1)}`, raw.subarray(5, 37));
  }
  if (seed) add("session seed", Buffer.from(seed, "base64url"), seed);
  return { needles, codes: codes.size, seed: !!seed };
}

function findSecrets(where, text, bytes, needles) {
  const hits = [];
  for (const n of needles) {
    if (n.text && text.includes(n.text)) hits.push(`${n.label} in ${where}`);
    if (n.bytes && bytes && bytes.includes(n.bytes)) hits.push(`${n.label} in ${where}`);
  }
  return hits;
}

// ------------------------------------------------------------------ helpers

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true }).catch(() => {});
}

/** Text of the message view, if the page shows one instead of a list. */
async function pageMessage(page) {
  return page.locator(".view-message").first().textContent({ timeout: 200 }).catch(() => null);
}

async function waitForList(page, step) {
  try {
    await page.waitForSelector(".view-timeline[data-first-page='rendered'], .view-message", { timeout: WAIT });
  } catch {
    fail(step, "the timeline did not render within the wait");
    return false;
  }
  const message = await pageMessage(page);
  if (message) {
    fail(step, `the page shows a message instead of the timeline: ${message.trim()}`);
    return false;
  }
  return true;
}

/** Rows currently in the list: [{id, title, status, tags}]. */
function rows(page) {
  return page.$$eval(".view-timeline .report", (els) =>
    els.map((el) => ({
      id: el.getAttribute("data-report-id"),
      title: el.querySelector(".title")?.textContent ?? "",
      status: el.querySelector(".badge")?.getAttribute("data-status") ?? "",
      tags: [...el.querySelectorAll(".row-meta .tag")].map((t) => t.textContent),
    })),
  );
}

/** Scrolls until every title is listed or the list ends (at most `pages` more pages). */
async function scrollFor(page, titles, pages = 30) {
  for (let i = 0; i <= pages; i++) {
    const have = new Set((await rows(page)).map((r) => r.title));
    const missing = titles.filter((t) => !have.has(t));
    if (!missing.length) return [];
    const ended = await page.locator(".view-timeline .more").isHidden();
    const status = await page.locator(".view-timeline .list-status").textContent();
    if (ended && /end of the timeline|No report/.test(status ?? "")) return missing;
    const before = have.size;
    await page.locator(".view-timeline .sentinel").scrollIntoViewIfNeeded();
    await page.waitForFunction((n) => document.querySelectorAll(".view-timeline .report").length > n || /end of the timeline|No report/.test(document.querySelector(".view-timeline .list-status")?.textContent ?? ""), before, { timeout: WAIT }).catch(() => {});
  }
  const have = new Set((await rows(page)).map((r) => r.title));
  return titles.filter((t) => !have.has(t));
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

// ---------------------------------------------------------------- scenario

const { needles, codes, seed } = secretNeedles();
if (!codes) fail("setup", "the login link carries no case key code (k=) and FIELDSYNC_EXPECT lists none");
if (!seed) fail("setup", "the login link carries no session seed (s=)");

const browser = await launch();
const { page, context } = browser;
const seen = watch(page);
const captured = [];
const pending = [];
context.on("request", (req) => {
  pending.push(
    (async () => {
      const url = req.url();
      // Playwright reports a navigation's URL with its fragment; browsers
      // never send the fragment, so it is cut before the search.
      const sent = url.split("#")[0];
      const headers = await req.allHeaders().catch(() => req.headers());
      captured.push({
        method: req.method(),
        url: sent,
        fragment_cut: sent !== url,
        headers,
        body: req.postDataBuffer() ?? Buffer.alloc(0),
      });
    })(),
  );
});
// Instrumentation, not part of the page: remember the Blob behind each
// blob: URL (the page's CSP forbids fetch() of blob: URLs, so the test
// reads the very Blob an <img> shows), and record any element with an
// event-handler attribute or any script added after the page loaded.
await context.addInitScript(() => {
  const blobs = new Map();
  const create = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (obj) => {
    const url = create(obj);
    blobs.set(url, obj);
    return url;
  };
  Object.defineProperty(window, "__fieldsyncTestBlobs", { value: blobs });
  const hostile = [];
  Object.defineProperty(window, "__fieldsyncTestHostile", { value: hostile });
  new MutationObserver((records) => {
    for (const r of records) {
      for (const node of r.addedNodes) {
        if (!(node instanceof Element)) continue;
        for (const el of [node, ...node.querySelectorAll("*")]) {
          if (el.tagName === "SCRIPT" && el.getAttribute("src") !== "/assets/app.js") hostile.push(`script element added: ${el.outerHTML.slice(0, 120)}`);
          for (const a of el.attributes) if (/^on/i.test(a.name)) hostile.push(`${el.tagName} with ${a.name}=${a.value.slice(0, 60)}`);
          if (el.tagName === "IMG" && !String(el.getAttribute("src") ?? "").startsWith("blob:")) hostile.push(`img with src ${el.getAttribute("src")}`);
          if (el.tagName === "svg" && !el.classList.contains("map")) hostile.push("svg element outside the map");
        }
      }
    }
  }).observe(document, { childList: true, subtree: true });
});

async function step(name, fn) {
  const started = Date.now();
  try {
    result.steps[name] = { ...(await fn()), ms: Date.now() - started };
  } catch (e) {
    fail(name, `crashed: ${e.message}`);
    result.steps[name] = { crashed: true, ms: Date.now() - started };
    await shot(page, `${name}-crash`);
  }
}

await step("login", async () => {
  await page.goto(LOGIN_LINK);
  const ok = await waitForList(page, "login");
  const url = page.url();
  if (url.includes("#")) fail("login", `the fragment is still in the address bar: ${url}`);
  if (new URL(url).pathname !== "/") fail("login", `after login the page is at ${url}, not the timeline`);
  const history = await page.evaluate(() => history.length);
  await shot(page, "1-timeline");
  return { ok, url, history_entries: history };
});

await step("timeline", async () => {
  const titles = expect.titles ?? [];
  const missing = await scrollFor(page, titles);
  if (missing.length) fail("timeline", `not on the timeline: ${JSON.stringify(missing)}`);
  const listed = await rows(page);
  const days = await page.locator(".view-timeline .day-head").count();
  if (listed.length && !days) fail("timeline", "rows are not grouped by day");
  return { rows: listed.length, days, missing };
});

await step("filter", async () => {
  const f = expect.filter ?? {};
  const query = f.query ?? {};
  if (!Object.keys(query).length) {
    fail("filter", "FIELDSYNC_EXPECT has no filter.query");
    return {};
  }
  const before = page.url();
  for (const [name, value] of Object.entries(query)) {
    const input = page.locator(`.filters [name="${name}"]`);
    if ((await input.evaluate((el) => el.tagName)) === "SELECT") await input.selectOption(String(value));
    else await input.fill(String(value));
  }
  await page.locator(".filters button[type=submit]").click();
  const wanted = new URLSearchParams(query);
  await page.waitForFunction((q) => {
    const have = new URLSearchParams(location.search);
    return [...new URLSearchParams(q)].every(([k, v]) => have.get(k) === v);
  }, wanted.toString(), { timeout: WAIT }).catch(() => fail("filter", `the URL did not take the filter: ${page.url()}`));
  await waitForList(page, "filter");
  const missing = await scrollFor(page, f.includes ?? []);
  if (missing.length) fail("filter", `filtered list lacks ${JSON.stringify(missing)}`);
  const listed = await rows(page);
  const bad = [];
  for (const r of listed) {
    if ((f.excludes ?? []).includes(r.title)) bad.push(`${r.title}: excluded by the filter but listed`);
    if (f.every_row_has_tag && !r.tags.some((t) => t.toLowerCase() === f.every_row_has_tag.toLowerCase())) bad.push(`${r.title}: no tag ${f.every_row_has_tag} (${r.tags})`);
    if (f.every_row_has_status && r.status !== f.every_row_has_status) bad.push(`${r.title}: status ${r.status}`);
    if (query.status && r.status !== query.status) bad.push(`${r.title}: status ${r.status}, filter ${query.status}`);
  }
  if (bad.length) fail("filter", `rows that do not match: ${JSON.stringify(bad.slice(0, 5))}`);
  if (!listed.length) fail("filter", "the filter left no row");
  const filteredUrl = page.url();
  const firstIds = listed.slice(0, 20).map((r) => r.id);
  await shot(page, "2-filtered");

  // A shared URL restores the view: reload it.
  await page.reload();
  await waitForList(page, "filter (reload)");
  const restored = (await rows(page)).slice(0, 20).map((r) => r.id);
  if (JSON.stringify(restored) !== JSON.stringify(firstIds)) fail("filter", "reloading the filtered URL shows other rows");
  for (const [name, value] of Object.entries(query)) {
    const v = await page.locator(`.filters [name="${name}"]`).inputValue();
    if (v !== String(value)) fail("filter", `after reload the ${name} filter shows ${JSON.stringify(v)}`);
  }
  // Back returns to the unfiltered list, forward to the filtered one.
  await page.goBack();
  await page.waitForFunction((u) => location.href === u, before, { timeout: WAIT }).catch(() => fail("filter", `back went to ${page.url()}, not ${before}`));
  await waitForList(page, "filter (back)");
  await page.goForward();
  await page.waitForFunction((u) => location.href === u, filteredUrl, { timeout: WAIT }).catch(() => fail("filter", `forward went to ${page.url()}`));
  await waitForList(page, "filter (forward)");
  const forward = (await rows(page)).slice(0, 20).map((r) => r.id);
  if (JSON.stringify(forward) !== JSON.stringify(firstIds)) fail("filter", "forward shows other rows than the filtered view");
  return { url: filteredUrl, rows: listed.length, restored_on_reload: restored.length };
});

await step("open_report", async () => {
  const id = expect.report_id;
  if (!id) {
    fail("open_report", "FIELDSYNC_EXPECT has no report_id");
    return {};
  }
  const link = page.locator(`.view-timeline .report[data-report-id="${id}"] a.title`);
  let how = "click";
  if (await link.count()) await link.first().click();
  else {
    how = "address";
    await page.goto(`${URL_BASE}/report/${id}`);
  }
  await page.waitForSelector(".report-title, .view-report .error, .view-message", { timeout: WAIT });
  const title = await page.locator(".report-title").textContent({ timeout: 1000 }).catch(() => null);
  if (title === null) fail("open_report", `the report did not open: ${await page.locator("main").textContent()}`);
  if (expect.report_title && title !== expect.report_title) fail("open_report", `title ${JSON.stringify(title)}, expected ${JSON.stringify(expect.report_title)}`);
  if (new URL(page.url()).pathname !== `/report/${id}`) fail("open_report", `the address is ${page.url()}`);
  const history = await page.locator(".history-table .change").count();
  if (!history) fail("open_report", "no change history shown");
  return { how, title, history_rows: history };
});

await step("image", async () => {
  if (!expect.image_sha256) return { skipped: "no image_sha256 expected" };
  const img = page.locator(".attachment img.att-image");
  try {
    await page.waitForSelector(".attachment img.att-image, .attachment .error", { timeout: WAIT });
  } catch {
    fail("image", "no image was decrypted within the wait");
    return {};
  }
  const errors = await page.locator(".attachment .error").allTextContents();
  if (errors.length) fail("image", `attachment errors shown: ${JSON.stringify(errors)}`);
  const shown = [];
  for (let i = 0; i < (await img.count()); i++) {
    shown.push(
      await img.nth(i).evaluate(async (el) => {
        await el.decode().catch(() => {});
        const blob = window.__fieldsyncTestBlobs.get(el.src);
        const bytes = blob ? new Uint8Array(await blob.arrayBuffer()) : null;
        const digest = bytes ? [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((b) => b.toString(16).padStart(2, "0")).join("") : null;
        return {
          src_scheme: el.src.split(":")[0],
          width: el.naturalWidth,
          height: el.naturalHeight,
          size: bytes?.length ?? null,
          sha256: digest,
          name: el.closest(".attachment")?.querySelector(".att-name")?.textContent ?? null,
        };
      }),
    );
  }
  const match = shown.find((s) => s.sha256 === expect.image_sha256);
  if (!match) fail("image", `no displayed image has SHA-256 ${expect.image_sha256}: ${JSON.stringify(shown)}`);
  else {
    if (match.src_scheme !== "blob") fail("image", `image source is ${match.src_scheme}:, not blob:`);
    if (!(match.width > 0 && match.height > 0)) fail("image", "the image did not decode to pixels");
    if (expect.image_name && match.name !== expect.image_name) fail("image", `decrypted name ${JSON.stringify(match.name)}, expected ${JSON.stringify(expect.image_name)}`);
  }
  // The download button gives the same decrypted bytes.
  let download = null;
  const button = page.locator(".attachment", { has: page.locator("img.att-image") }).locator("a.download").first();
  if (match && (await button.count())) {
    const [dl] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), button.click()]);
    const file = await dl.path();
    download = { name: dl.suggestedFilename(), sha256: sha256(readFileSync(file)) };
    if (download.sha256 !== expect.image_sha256) fail("image", `the download's SHA-256 is ${download.sha256}`);
    if (expect.image_name && download.name !== expect.image_name) fail("image", `download named ${download.name}`);
  } else if (match) fail("image", "no download button for the decrypted image");
  await shot(page, "3-report");
  return { images: shown, download };
});

await step("attachments", async () => {
  if (!expect.attachments?.length) return { skipped: "no attachments expected" };
  const seen = [];
  for (const want of expect.attachments) {
    const item = page.locator(`.attachment[data-name="${want.name.replace(/["\\]/g, "\\$&")}"]`);
    try {
      await item.waitFor({ timeout: WAIT });
    } catch {
      const errors = await page.locator(".attachment .error").allTextContents();
      fail("attachments", `${want.name} was not shown by name within the wait; errors: ${JSON.stringify(errors)}`);
      continue;
    }
    const envelope = await item.getAttribute("data-envelope");
    const type = await item.locator(".att-type").textContent();
    if (want.envelope && envelope !== want.envelope) fail("attachments", `${want.name} shows envelope ${envelope}, expected ${want.envelope}`);
    let download = null;
    if (want.sha256) {
      const link = item.locator("a.download");
      if (!(await link.count())) await item.locator("button.decrypt").click();
      try {
        await link.waitFor({ timeout: WAIT });
        const [dl] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), link.click()]);
        download = sha256(readFileSync(await dl.path()));
        if (download !== want.sha256) fail("attachments", `${want.name} downloads with SHA-256 ${download}, expected ${want.sha256}`);
      } catch {
        fail("attachments", `${want.name} was not decrypted: ${await item.locator(".att-status").textContent()}`);
      }
    }
    seen.push({ name: want.name, envelope, type, download });
  }
  return { seen };
});

// The server (or anyone on a plain-http path) answers `prepare` with a
// change that is not the edit asked for: once a genuine change for another
// edit (the request's edits swapped on the way), once the right change with
// one byte altered. The page must say so and sign and commit nothing.
await step("tampered", async () => {
  const tamper = expect.tamper;
  if (!tamper) return { skipped: "no tamper expected" };
  const want = expect.set_status ?? { status: "verified", note: "" };
  const outcomes = {};
  for (const kind of ["another edit", "altered bytes"]) {
    const statusBefore = await page.locator(".report-head .badge").getAttribute("data-status");
    let commits = 0;
    const onRequest = (r) => {
      if (r.url().endsWith("/commit")) commits += 1;
    };
    page.on("request", onRequest);
    await page.route("**/prepare", async (route) => {
      if (kind === "another edit") {
        const body = JSON.parse(route.request().postData() ?? "{}");
        body.edits = [{ op: "set_status", status: tamper.status, note: tamper.note ?? "" }];
        return route.continue({ postData: JSON.stringify(body) });
      }
      const response = await route.fetch();
      const json = await response.json();
      const bytes = Buffer.from(json.change ?? "", "base64");
      bytes[bytes.length - 1] ^= 1;
      json.change = bytes.toString("base64");
      return route.fulfill({ response, json });
    });
    await page.locator(".edit-status select[name=status]").selectOption(want.status);
    await page.locator(".edit-status textarea[name=note]").fill(want.note ?? "");
    await page.locator(".edit-status button[type=submit]").click();
    await page.waitForSelector(".edit-status .form-message.error", { timeout: WAIT }).catch(() => {});
    const error = (await page.locator(".edit-status .form-message.error").textContent({ timeout: 200 }).catch(() => null)) ?? "";
    await page.unroute("**/prepare");
    page.off("request", onRequest);
    await shot(page, `4-tampered-${kind.replace(/ /g, "-")}`);
    await page.reload();
    await page.waitForSelector(".report-head .badge", { timeout: WAIT });
    const statusAfter = await page.locator(".report-head .badge").getAttribute("data-status");
    if (!error.includes("nothing was signed")) fail("tampered", `${kind}: the page did not refuse the change (message: ${JSON.stringify(error)})`);
    if (commits) fail("tampered", `${kind}: the page sent ${commits} commit(s) of a change it should have refused`);
    if (statusAfter !== statusBefore) fail("tampered", `${kind}: the report's status went from ${statusBefore} to ${statusAfter}`);
    outcomes[kind] = { message: error, commits, status_before: statusBefore, status_after: statusAfter };
  }
  return outcomes;
});

await step("set_status", async () => {
  const want = expect.set_status;
  if (!want) return { skipped: "no set_status expected" };
  const already = (await page.locator(".report-head .badge").getAttribute("data-status")) === want.status &&
    (await page.locator(".edit-status textarea[name=note]").inputValue()) === (want.note ?? "");
  await page.locator(".edit-status select[name=status]").selectOption(want.status);
  await page.locator(".edit-status textarea[name=note]").fill(want.note ?? "");
  const historyBefore = await page.locator(".history-table .change").count();
  await page.locator(".edit-status button[type=submit]").click();
  await page.waitForSelector(`.report-head .badge[data-status="${want.status}"], .edit-status .form-message.error`, { timeout: WAIT }).catch(() => {});
  const error = await page.locator(".edit-status .form-message.error").textContent({ timeout: 200 }).catch(() => null);
  if (error) fail("set_status", `saving refused: ${error}`);
  const badge = await page.locator(".report-head .badge").getAttribute("data-status");
  if (badge !== want.status) fail("set_status", `status shows ${badge}, expected ${want.status}`);
  const note = await page.locator(".fields .review-note").textContent({ timeout: 1000 }).catch(() => "");
  if ((want.note ?? "") && note !== want.note) fail("set_status", `note shows ${JSON.stringify(note)}`);
  const history = await page.locator(".history-table .change").count();
  const viaWeb = await page.locator(".history-table .change .via-web").count();
  if (!already && history <= historyBefore) fail("set_status", "the change history did not grow");
  if (!viaWeb) fail("set_status", "no change in the history is marked via web session");
  await shot(page, "4-verified");
  // The timeline's projection has the new status.
  const title = await page.locator(".report-title").textContent();
  await page.goto(`${URL_BASE}/?status=${want.status}&text=${encodeURIComponent(title.slice(0, 60))}`);
  await waitForList(page, "set_status (timeline)");
  const listed = await rows(page);
  const row = listed.find((r) => r.id === expect.report_id);
  if (!row) fail("set_status", `the timeline filtered by status=${want.status} does not list the report`);
  return { status: badge, already, history_rows: history, via_web_rows: viaWeb, timeline_row: row ?? null };
});

await step("hostile", async () => {
  const hostile = expect.hostile;
  if (!hostile) return { skipped: "no hostile report expected" };
  const strings = hostile.strings ?? [hostile.title];
  // On the timeline, found by its title.
  await page.goto(`${URL_BASE}/?text=${encodeURIComponent(hostile.title)}`);
  await waitForList(page, "hostile (timeline)");
  const row = page.locator(`.view-timeline .report[data-report-id="${hostile.report_id}"]`);
  let rowTitle = null;
  if (await row.count()) {
    rowTitle = await row.locator("a.title").evaluate((el) => ({ text: el.textContent, children: el.children.length }));
    if (rowTitle.text !== hostile.title || rowTitle.children) fail("hostile", `timeline row title is ${JSON.stringify(rowTitle)}`);
  } else fail("hostile", "the hostile report is not on the timeline when searched by its title");
  // Its report page.
  await page.goto(`${URL_BASE}/report/${hostile.report_id}`);
  await page.waitForSelector(".report-title, .view-message", { timeout: WAIT });
  await page.waitForSelector(".attachment .att-name, .attachment .error, .attachments-section .empty", { timeout: WAIT }).catch(() => {});
  await page.waitForTimeout(300);
  const title = await page.locator(".report-title").evaluate((el) => ({ text: el.textContent, children: el.children.length }));
  if (title.text !== hostile.title || title.children) fail("hostile", `report title is ${JSON.stringify(title)}`);
  const dom = await page.evaluate((needles) => {
    const texts = [...document.querySelectorAll("main *")].filter((el) => !el.children.length).map((el) => el.textContent);
    const inputs = [...document.querySelectorAll("main input, main textarea")].map((el) => el.value);
    const handlers = [];
    for (const el of document.querySelectorAll("*")) for (const a of el.attributes) if (/^on/i.test(a.name)) handlers.push(`${el.tagName} ${a.name}`);
    return {
      as_text: needles.map((n) => texts.filter((t) => t.includes(n)).length + inputs.filter((v) => v.includes(n)).length),
      handlers,
      scripts: [...document.scripts].map((s) => s.getAttribute("src")),
      images: [...document.images].map((i) => i.getAttribute("src")),
      svgs: document.querySelectorAll("svg:not(.map)").length,
      recorded: window.__fieldsyncTestHostile,
    };
  }, strings);
  strings.forEach((s, i) => {
    if (!dom.as_text[i]) fail("hostile", `${JSON.stringify(s)} is not shown as text anywhere`);
  });
  if (dom.handlers.length) fail("hostile", `elements with event-handler attributes: ${JSON.stringify(dom.handlers)}`);
  if (dom.scripts.some((s) => s !== "/assets/app.js")) fail("hostile", `unexpected scripts: ${JSON.stringify(dom.scripts)}`);
  if (dom.images.some((s) => !String(s).startsWith("blob:"))) fail("hostile", `unexpected images: ${JSON.stringify(dom.images)}`);
  if (dom.svgs) fail("hostile", `${dom.svgs} svg elements outside the map`);
  if (dom.recorded.length) fail("hostile", `elements created from report content: ${JSON.stringify(dom.recorded.slice(0, 5))}`);
  await shot(page, "5-hostile");
  return { title, as_text: dom.as_text, recorded: dom.recorded.length };
});

await step("requests", async () => {
  await Promise.all(pending);
  const hits = [];
  for (const r of captured) {
    const headerText = Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`).join("\n");
    const text = `${r.method} ${r.url}\n${headerText}\n${r.body.toString("latin1")}\n${r.body.toString("utf8")}`;
    hits.push(...findSecrets(`${r.method} ${r.url.slice(0, 80)}`, text, r.body, needles));
  }
  // Cookies and localStorage, as the browser keeps them.
  const cookies = await context.cookies();
  hits.push(...findSecrets("cookies", JSON.stringify(cookies), null, needles));
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage })).catch(() => "{}");
  hits.push(...findSecrets("localStorage", storage, null, needles));
  for (const h of [...new Set(hits)]) fail("requests", `secret sent or stored: ${h}`);
  const foreign = captured.filter((r) => !r.url.startsWith(URL_BASE) && !r.url.startsWith("blob:") && !r.url.startsWith("data:"));
  if (foreign.length) fail("requests", `requests to other origins: ${JSON.stringify(foreign.map((r) => r.url).slice(0, 5))}`);
  const posts = captured.filter((r) => r.method === "POST");
  const noCsrf = posts.filter((r) => !r.url.endsWith("/web/session") && !r.headers["x-fieldsync-csrf"]);
  if (noCsrf.length) fail("requests", `POSTs without X-Fieldsync-CSRF: ${JSON.stringify(noCsrf.map((r) => r.url))}`);
  const sessionCookie = cookies.find((c) => c.name === "fs_session");
  if (!sessionCookie) fail("requests", "no fs_session cookie");
  else if (!sessionCookie.httpOnly || sessionCookie.sameSite !== "Strict") fail("requests", `fs_session cookie is not HttpOnly + SameSite=Strict: ${JSON.stringify({ httpOnly: sessionCookie.httpOnly, sameSite: sessionCookie.sameSite })}`);
  result.requests = {
    count: captured.length,
    posts: posts.map((r) => r.url.replace(URL_BASE, "")),
    checked_needles: needles.length,
    fragment_cut_from: captured.filter((r) => r.fragment_cut).map((r) => r.url.replace(URL_BASE, "")),
  };
  return { count: captured.length, secrets_found: hits.length };
});

if (seen.dialogs.length) fail("page", `dialogs opened: ${JSON.stringify(seen.dialogs)}`);
if (seen.page_errors.length) fail("page", `uncaught errors: ${JSON.stringify(seen.page_errors)}`);
if (seen.csp_violations.length) fail("page", `CSP violations: ${JSON.stringify(seen.csp_violations)}`);
result.console_errors = seen.console_errors;
await browser.close();
finish(0);
