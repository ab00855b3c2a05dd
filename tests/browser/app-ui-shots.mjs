// Looks at the app the way a reporter's phone would (390×844, touch) and
// takes screenshots into a folder outside the repository. A development
// aid for the UI, not one of the .ci scenarios.
//
//   node tests/browser/app-ui-shots.mjs INVITE_URL [OUT_DIR=/tmp/app-shots]
//
// INVITE_URL is an `admin invite --link` link to the app served by
// app-dev-server.mjs or `fieldsync serve`. Prints what it saw as JSON: page
// errors, CSP violations, and English text left on the Russian and Kazakh
// screens.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, watch } from "./lib.mjs";
import en from "../../server/app/i18n/en.mjs";

const invite = process.argv[2];
const out = process.argv[3] ?? "/tmp/app-shots";
mkdirSync(out, { recursive: true });
const profile = mkdtempSync(path.join(os.tmpdir(), "fieldsync-app-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
  viewport: { width: 390, height: 844 },
  hasTouch: true,
  isMobile: true,
  deviceScaleFactor: 1,
  timezoneId: "Asia/Almaty",
  locale: "en-GB",
  permissions: [],
});
const page = context.pages()[0] ?? (await context.newPage());
const seen = watch(page);
const shot = async (name, full = true) => {
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: full });
};
const report = { shots: [], english_left: {} };

try {
  await page.goto(invite);
  await page.getByRole("button", { name: "Join the case" }).waitFor();
  await shot("01-enroll");
  await page.getByRole("button", { name: "Join the case" }).click();
  await page.getByLabel("Title").waitFor({ timeout: 20000 });
  await shot("02-new-report");

  await page.getByLabel("Title").fill("Arrest at the bus stop");
  await page.getByLabel("Approximate").check();
  await page.getByLabel("Place").fill("Bus stop, Abay avenue");
  await page.getByLabel("Description").fill("Aleksey was arrested by two officers.\nThey took his phone.");
  await page.getByRole("button", { name: "Add a person" }).click();
  await page.getByLabel("Name").fill("Tulegen Shakirov");
  await page.getByLabel("Role").selectOption("officer");
  await page.getByLabel("Note").fill("car KZ 380 KP 02");
  await page.getByLabel("New tag").fill("arrest, police");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("button", { name: "Add a timeline entry" }).click();
  await page.getByLabel("What happened").fill("Released without charge");
  await page.getByLabel("Add photo, video or audio").setInputFiles({ name: "bus-stop.png", mimeType: "image/png", buffer: Buffer.alloc(5000, 7) });
  await page.getByText("encrypted", { exact: true }).first().waitFor({ timeout: 20000 }).catch(() => {});
  await page.waitForTimeout(800);
  await shot("03-filled");

  // A reload keeps the draft.
  await page.reload();
  await page.getByLabel("Title").waitFor();
  report.draft_after_reload = await page.getByLabel("Title").inputValue();

  await page.getByRole("button", { name: "Save report" }).click();
  await page.locator("[data-report-id]").first().waitFor();

  // A hostile report.
  await page.getByRole("link", { name: "New report" }).click();
  await page.getByLabel("Title").fill("<img src=x onerror=alert(1)>");
  await page.getByLabel("Description").fill("<script>alert(2)</script>");
  await page.getByLabel("New tag").fill("<b>bold</b>");
  await page.getByLabel("New tag").press("Enter");
  await page.getByRole("button", { name: "Save report" }).click();
  await page.locator("[data-report-id]").nth(1).waitFor();
  await page.getByRole("button", { name: "Sync now" }).click();
  await page.waitForTimeout(3000);
  await shot("04-my-reports");
  report.items = await page.locator("[data-report-id]").evaluateAll((els) => els.map((e) => ({ id: e.dataset.reportId, state: e.dataset.state, title: e.querySelector(".title").textContent })));
  report.hostile_img_elements = await page.locator("main img").count();

  await page.locator("[data-report-id] a").first().click();
  await page.getByRole("button", { name: "Save changes" }).waitFor();
  await shot("05-report");

  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByLabel("Language").waitFor();
  await shot("06-settings");

  for (const lang of ["ru", "kk"]) {
    await page.getByRole("link", { name: /Settings|Настройки|Баптаулар/ }).click();
    await page.locator("select").filter({ has: page.locator('option[value="kk"]') }).selectOption(lang);
    await page.waitForTimeout(300);
    await shot(`07-${lang}-settings`);
    const left = [];
    const check = async (where) => {
      const text = await page.locator("body").innerText();
      for (const [key, value] of Object.entries(en)) {
        if (typeof value !== "string" || value.length < 4) continue;
        if (text.includes(value)) left.push(`${where}: ${key}`);
      }
    };
    await check("settings");
    await page.locator("nav.tabs a").nth(0).click();
    await page.waitForTimeout(300);
    await shot(`08-${lang}-new`);
    await check("new");
    await page.locator("nav.tabs a").nth(1).click();
    await page.waitForTimeout(300);
    await shot(`09-${lang}-reports`);
    await check("reports");
    report.english_left[lang] = left;
  }

  // Offline: the app opens from the service worker.
  await context.setOffline(true);
  await page.reload();
  await page.locator("nav.tabs").waitFor({ timeout: 10000 });
  await shot("10-offline");
  report.offline_reload = "ok";
  await context.setOffline(false);
  await page.reload();

  // An update: a new worker installs in the background; the page is offered
  // a reload and keeps its draft. (Needs the dev server run with SW_BUMP.)
  if (process.env.SW_BUMP) {
    await page.getByRole("link", { name: /New report|Новый отчёт|Жаңа есеп/ }).click();
    await page.locator("nav.tabs a").nth(0).click();
    await page.locator("input[type=text]").first().fill("Draft kept across an update");
    await page.waitForTimeout(800);
    writeFileSync(process.env.SW_BUMP, `bump ${Date.now()}`);
    await page.evaluate(async () => (await navigator.serviceWorker.getRegistration("/app/")).update());
    await page.locator(".banner").filter({ has: page.getByRole("button", { name: /Reload|Перезагрузить|Қайта жүктеу/ }) }).waitFor({ timeout: 20000 });
    await shot("10b-update-ready", false);
    const before = await page.evaluate(() => navigator.serviceWorker.controller?.scriptURL);
    await page.getByRole("button", { name: /Reload|Перезагрузить|Қайта жүктеу/ }).click();
    await page.waitForEvent("load", { timeout: 20000 });
    await page.locator("nav.tabs").waitFor();
    report.update = {
      draft_after_update: await page.locator("input[type=text]").first().inputValue(),
      caches: await page.evaluate(() => caches.keys()),
      controlled: await page.evaluate(() => !!navigator.serviceWorker.controller),
      had_controller_before: !!before,
    };
    writeFileSync(process.env.SW_BUMP, "");
  }

  // Location refused.
  await page.locator("nav.tabs a").nth(2).click();
  await page.locator("select").filter({ has: page.locator('option[value="kk"]') }).selectOption("en");
  await page.getByRole("link", { name: "New report" }).click();
  await page.getByRole("button", { name: "Use my location" }).click();
  await page.getByText(/Location access is blocked|could not be found/).waitFor({ timeout: 15000 });
  report.location_message = await page.getByText(/Location access is blocked|could not be found/).textContent();

  // Passphrase, lock, a wrong try, unlock.
  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByLabel("New passphrase").fill("correct horse battery");
  await page.getByLabel("Repeat the passphrase").fill("correct horse battery");
  await page.getByRole("button", { name: "Set passphrase" }).click();
  await page.getByRole("button", { name: "Lock", exact: true }).waitFor({ timeout: 30000 });
  await shot("11-passphrase-set", false);
  report.lock_minutes = await page.getByLabel("Lock after being idle for").inputValue();
  await page.getByRole("button", { name: "Lock", exact: true }).click();
  await page.getByLabel("Passphrase").waitFor();
  await page.getByLabel("Passphrase").fill("wrong one");
  await page.getByRole("button", { name: "Unlock" }).click();
  await page.getByText(/Wrong passphrase/).waitFor({ timeout: 30000 });
  await shot("12-unlock-wrong", false);
  await page.getByLabel("Passphrase").fill("correct horse battery");
  await page.getByRole("button", { name: "Unlock" }).click();
  await page.locator("nav.tabs").waitFor({ timeout: 30000 });

  // Quick delete: a short press does nothing, a 3 s hold erases.
  const qd = page.getByRole("button", { name: "Quick delete" });
  const box = await qd.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.waitForTimeout(1200);
  await shot("13-quick-delete-holding", false);
  await page.mouse.up();
  await page.waitForTimeout(2500);
  report.after_short_hold = await page.locator("nav.tabs").isVisible();
  await page.mouse.down();
  await page.waitForTimeout(3400);
  await page.mouse.up();
  await page.getByRole("heading", { name: "Welcome" }).waitFor({ timeout: 20000 });
  await shot("14-after-quick-delete", false);
  report.after_erase = await page.evaluate(async () => ({
    databases: (await indexedDB.databases()).map((d) => d.name),
    caches: await caches.keys(),
    localStorage: localStorage.length,
    registrations: (await navigator.serviceWorker.getRegistrations()).length,
  }));
} catch (err) {
  report.failure = String(err?.stack ?? err);
  await shot("99-failure").catch(() => {});
} finally {
  report.seen = seen;
  console.log(JSON.stringify(report, null, 2));
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
