// Shared by the browser scripts: launching Debian's chromium through
// playwright-core (no browser download: `npx playwright install` cannot
// work here), and collecting what a page does.

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.FIELDSYNC_CHROMIUM || "/usr/bin/chromium";

/** Chromium's flags for every browser test: headless, no network of its own. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * A fresh chromium with a fresh profile. Returns { context, page, close }.
 * `close()` ends the browser and deletes the profile.
 */
export async function launch({ viewport = { width: 1280, height: 900 } } = {}) {
  const profile = mkdtempSync(path.join(os.tmpdir(), "fieldsync-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    acceptDownloads: true,
    timezoneId: "UTC",
    locale: "en-GB",
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Records console errors, page errors, dialogs and CSP violations of a page. */
export function watch(page) {
  const seen = { console_errors: [], page_errors: [], dialogs: [], csp_violations: [] };
  page.on("console", (m) => {
    if (m.type() === "error") seen.console_errors.push(m.text());
  });
  page.on("pageerror", (e) => seen.page_errors.push(String(e.message ?? e)));
  page.on("dialog", async (d) => {
    seen.dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) seen.csp_violations.push(m.text());
  });
  return seen;
}

/** Milliseconds since `start` (process.hrtime.bigint()). */
export function since(start) {
  return Number(process.hrtime.bigint() - start) / 1e6;
}
