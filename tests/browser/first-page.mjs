#!/usr/bin/env node
// Benchmark: time from navigation to the first page of timeline rows on
// screen, in headless chromium, for the case behind a login link.
//
//   FIELDSYNC_URL=… FIELDSYNC_LOGIN_LINK=… node tests/browser/first-page.mjs /tmp/first-page.png
//   node tests/browser/first-page.mjs --url URL --link LINK --screenshot PATH [--max-ms 1000]
//
// Prints JSON {ms, rows, ...}:
//   ms          navigation start of the login link → first rows laid out and
//               painted (performance marks "fieldsync:first-rows" and
//               "fieldsync:first-rows-painted" set by timeline.js), which
//               includes logging in (POST /web/session) and the first page
//               of the API;
//   rows        rows rendered then;
//   reload_ms   the same for a reload of the timeline with the session
//               already open (what a coordinator sees on later visits);
//   wall_ms     node's own clock around the first navigation.
// The screenshot (keep it out of the repository) shows the first page.
// Exits 1 when --max-ms (or FIELDSYNC_MAX_MS) is given and ms exceeds it,
// or when no row rendered.

import { launch, since } from "./lib.mjs";

const argv = process.argv.slice(2);
const flag = (name) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const positional = argv.filter((a, i) => !a.startsWith("--") && !(i > 0 && argv[i - 1].startsWith("--")));
const link = flag("link") ?? process.env.FIELDSYNC_LOGIN_LINK;
const screenshot = flag("screenshot") ?? positional[0];
const maxMs = Number(flag("max-ms") ?? process.env.FIELDSYNC_MAX_MS ?? 0);
if (!link || !screenshot) {
  console.error("usage: first-page.mjs SCREENSHOT_PATH (with FIELDSYNC_LOGIN_LINK set), or --link LINK --screenshot PATH");
  process.exit(2);
}

async function firstRows(page) {
  await page.waitForFunction(() => performance.getEntriesByName("fieldsync:first-rows-painted").length > 0 || document.querySelector(".view-message"), null, { timeout: 30000 });
  return page.evaluate(() => {
    const mark = (n) => performance.getEntriesByName(n)[0]?.startTime ?? null;
    return {
      ms: mark("fieldsync:first-rows-painted"),
      rows_ms: mark("fieldsync:first-rows"),
      rows: document.querySelectorAll(".view-timeline .report").length,
      message: document.querySelector(".view-message")?.textContent ?? null,
    };
  });
}

const browser = await launch({ viewport: { width: 1280, height: 900 } });
const { page } = browser;
let out;
try {
  const start = process.hrtime.bigint();
  await page.goto(link, { waitUntil: "commit" });
  const first = await firstRows(page);
  const wall = since(start);
  await page.screenshot({ path: screenshot });
  await page.reload({ waitUntil: "commit" });
  const again = await firstRows(page);
  out = {
    ms: first.ms === null ? null : Math.round(first.ms),
    rows: first.rows,
    rows_ms: first.rows_ms === null ? null : Math.round(first.rows_ms),
    reload_ms: again.ms === null ? null : Math.round(again.ms),
    wall_ms: Math.round(wall),
    screenshot,
    ...(first.message ? { message: first.message } : {}),
  };
} catch (e) {
  out = { ms: null, rows: 0, error: e.message };
}
await browser.close();
console.log(JSON.stringify(out));
const failed = !out.rows || out.ms === null || (maxMs && out.ms > maxMs);
process.exit(failed ? 1 : 0);
