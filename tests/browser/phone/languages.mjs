// Issue 13, "What must be shown" 8:
// - the Russian and Kazakh screens render with no missing strings: every
//   screen (first run, joining, a report being written with a person and a
//   timeline entry, a validation message, My reports, one report, Settings,
//   locked) is read in each language — its text, its labels, options,
//   aria-labels and placeholders — and must hold no i18n key name, no
//   unfilled {placeholder}, and no Latin-script word but those the reporter
//   typed and a few names (fieldsync, the case, the language menu's
//   "English", ids): an English fallback or an English date shows up as
//   such a word. Screenshots go to FIELDSYNC_SHOTS, outside the repository;
// - a report with hostile strings in every field (and the coordinator's
//   review note, and a file name) renders them as text: no element made from
//   them, no dialog, no script; the coordinator receives them unchanged.

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  phone, recordReport, waitForStates, field, tab, waitUntil, shownText, TIMEOUT,
} from "./harness.mjs";
import { enrollPhone, expected, shown } from "./record-offline.mjs";

const HOSTILE = "<img src=x onerror=alert(1)>";
const SCRIPT = "<script>alert(2)</script>";
const APP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../server/app");
const PASSPHRASE = "salt-lake-quiet-river-9";

export async function languages({ env, coord, checks, phones }) {
  const en = (await import(pathToFileURL(path.join(APP, "i18n/en.mjs")).href)).default;
  const keys = Object.keys(en);
  mkdirSync(env.shots, { recursive: true });

  const p = await phone("languages");
  phones.push(p);
  const page = p.page;
  const deviceId = await enrollPhone({ p, coord, env, checks });
  const invite = await coord.inviteLink();

  // The hostile report, recorded in English and synced.
  const hostileFile = path.join(env.work, `${HOSTILE}.png`);
  writeFileSync(hostileFile, Buffer.from("not really a png"));
  const hostile = {
    title: HOSTILE,
    when: "2016-06-04T10:00",
    approximate: false,
    place: { name: SCRIPT },
    description: `${SCRIPT} ${HOSTILE}`,
    people: [{ name: HOSTILE, role: "witness", note: SCRIPT }],
    tags: [HOSTILE],
    timeline: [{ at: "2016-06-04T10:05", text: `${HOSTILE} then ${SCRIPT}`, approximate: false }],
    files: [hostileFile],
  };
  const id = await recordReport(page, hostile);
  await waitForStates(page, [id], "sent");
  await coord.sync();
  const atCoordinator = (await coord.timeline()).find((r) => r.id === id);
  checks.must(atCoordinator, "the hostile report reached the coordinator");
  checks.equal(shown(atCoordinator), expected(hostile), "the hostile report's fields at the coordinator, unchanged");
  const note = `${HOSTILE} ${SCRIPT} reviewed`;
  await coord.edit(id, ["--status", "disputed", "--note", note]);
  await coord.sync();
  await page.getByRole("button", { name: "Sync now" }).click();
  await waitForStates(page, [id], "reviewed");

  const scriptsAtStart = await page.evaluate(() => document.scripts.length);
  const hostileChecks = async (where) => {
    const found = await page.evaluate(() => ({
      imgX: document.querySelectorAll('img[src="x"]').length,
      onerror: document.querySelectorAll("[onerror]").length,
      bodyScripts: document.body.querySelectorAll("script").length,
      scripts: document.scripts.length,
    }));
    checks.equal(found, { imgX: 0, onerror: 0, bodyScripts: 0, scripts: scriptsAtStart }, `${where}: elements made from hostile text`);
  };
  const listItem = page.locator(`[data-report-id="${id}"]`);
  const hostileShown = (text) => text.includes(HOSTILE) && text.includes(note);
  const listText = await shownText(listItem, hostileShown);
  checks.that(hostileShown(listText), "My reports shows the hostile title and review note as text", listText);
  await hostileChecks("My reports");
  await page.evaluate((id) => { location.hash = `#report/${encodeURIComponent(id)}`; }, id);
  await field(page, "Title").waitFor({ timeout: TIMEOUT.ui });
  checks.equal(await page.locator("main h1").innerText(), HOSTILE, "the report screen's heading is the hostile title, as text");
  checks.equal(await field(page, "Title").inputValue(), HOSTILE, "the title field holds the hostile text");
  checks.equal(await field(page, "Place").inputValue(), SCRIPT, "the place field holds the hostile text");
  checks.equal(await field(page, "Description").inputValue(), hostile.description, "the description holds the hostile text");
  const screenText = await page.locator("main").innerText();
  for (const s of [hostile.people[0].name, hostile.people[0].note, hostile.timeline[0].text, note]) {
    checks.that(screenText.includes(s), `the report screen shows ${JSON.stringify(s)} as text`, screenText.slice(0, 1500));
  }
  await hostileChecks("the report screen");

  // A draft with a person and a timeline entry, so their labels show.
  await tab(page, "New report");
  await field(page, "Title").fill("Черновик / Жоба");
  await page.getByRole("button", { name: "Add a person" }).click();
  await page.getByRole("button", { name: "Add a timeline entry" }).click();
  await field(page, "What happened").fill("Полиция / Полиция");
  await page.waitForURL(/#draft\//, { timeout: TIMEOUT.ui });
  const draftHash = new URL(page.url()).hash;

  // A passphrase, so the locked screen can be read too.
  await tab(page, "Settings");
  await field(page, "New passphrase").fill(PASSPHRASE);
  await field(page, "Repeat the passphrase").fill(PASSPHRASE);
  await page.getByRole("button", { name: "Set passphrase" }).click();
  await page.getByText("The passphrase is set.").first().waitFor({ timeout: 60_000 });

  // "ID" is how both translations name the phone's id (as Russian and
  // Kazakh interfaces commonly do); every other Latin word is a finding.
  const allowed = latinWords([
    "ID", "fieldsync", env.caseName, "English", env.url, ...contentStrings(hostile), note, "Черновик / Жоба", "Полиция / Полиция",
  ].join(" "));
  const ids = [deviceId, invite.case_key_fingerprint, id];

  const audit = async (lang, screen, on = page) => {
    const text = await screenText_(on);
    let rest = text;
    for (const x of ids) rest = rest.split(x).join(" ");
    const keyHits = keys.filter((k) => rest.includes(k));
    const placeholders = rest.match(/\{[A-Za-z_]+\}/g) ?? [];
    const latin = [...new Set(latinWordsOf(rest))].filter((w) => !allowed.has(w.toLowerCase()));
    const cyrillic = (rest.match(/[\u0400-\u04FF]/g) ?? []).length;
    checks.equal(keyHits, [], `${lang} ${screen}: i18n key names on screen`);
    checks.equal(placeholders, [], `${lang} ${screen}: unfilled placeholders`);
    checks.equal(latin, [], `${lang} ${screen}: Latin words (untranslated strings or English dates)`);
    checks.that(cyrillic > 20, `${lang} ${screen}: the screen is in Cyrillic`, rest.slice(0, 300));
    const shot = path.join(env.shots, `${lang}-${screen}.png`);
    await on.screenshot({ path: shot, fullPage: true });
    return shot;
  };
  const shots = [];
  const go = async (hash, selector) => {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await page.locator(selector).first().waitFor({ timeout: TIMEOUT.ui });
  };

  for (const lang of ["ru", "kk"]) {
    await go("#settings", "section.settings");
    await page.locator('select:has(option[value="kk"])').selectOption(lang);
    await waitUntil(() => page.evaluate((l) => document.documentElement.lang === l, lang), `the page in ${lang}`);
    await page.locator("section.settings").waitFor({ timeout: TIMEOUT.ui });
    shots.push(await audit(lang, "settings"));
    await go(draftHash, "section.record");
    await page.locator("section.record li.item").nth(1).waitFor({ timeout: TIMEOUT.ui });
    shots.push(await audit(lang, "draft"));
    await go("#new", "section.record");
    await page.locator("section.record .actions button.primary").click();
    await page.locator("section.record p.message.error:not([hidden])").waitFor({ timeout: TIMEOUT.ui });
    shots.push(await audit(lang, "new-report-with-error"));
    await go("#reports", `section.reports [data-report-id="${id}"]`);
    shots.push(await audit(lang, "my-reports"));
    await go(`#report/${id}`, "section.report h1");
    shots.push(await audit(lang, "report"));
    await hostileChecks(`${lang} report screen`);
    await page.locator("header button.lock").click();
    const pass = page.locator('main input[type="password"]');
    await pass.waitFor({ timeout: TIMEOUT.ui });
    shots.push(await audit(lang, "locked"));
    await pass.fill(PASSPHRASE);
    await pass.press("Enter");
    await page.getByRole("navigation").waitFor({ timeout: 60_000 });
  }

  // The first screens, in a browser whose language is Russian or Kazakh.
  for (const [lang, locale] of [["ru", "ru-RU"], ["kk", "kk-KZ"]]) {
    const fresh = await phone(`first-${lang}`, { locale });
    phones.push(fresh);
    // The invite link first: opened after /app/ it would only change the fragment.
    await fresh.page.goto(invite.link);
    await fresh.page.locator("main button.primary").waitFor({ timeout: TIMEOUT.ui });
    shots.push(await audit(lang, "join", fresh.page));
    await fresh.page.goto(`${env.url}/app/`);
    await fresh.page.locator('main input[type="url"]').waitFor({ timeout: TIMEOUT.ui });
    shots.push(await audit(lang, "first-run", fresh.page));
  }
  checks.step("screenshots", shots);
}

/** Everything a screen says: its text, and its labels that are not text. */
async function screenText_(page) {
  return page.evaluate(() => {
    const parts = [document.title, document.body.innerText];
    for (const el of document.querySelectorAll("[aria-label], [placeholder], [title], [alt]")) {
      for (const a of ["aria-label", "placeholder", "title", "alt"]) if (el.hasAttribute(a)) parts.push(el.getAttribute(a));
    }
    for (const o of document.querySelectorAll("option")) parts.push(o.textContent);
    return parts.join("\n");
  });
}

function latinWordsOf(text) {
  return text.match(/[A-Za-z][A-Za-z]+/g) ?? [];
}

function latinWords(text) {
  return new Set(latinWordsOf(text).map((w) => w.toLowerCase()));
}

function contentStrings(r) {
  return [
    r.title, r.place?.name ?? "", r.description, ...r.tags,
    ...r.people.flatMap((p) => [p.name, p.note ?? ""]),
    ...r.timeline.map((e) => e.text),
    ...(r.files ?? []).map((f) => path.basename(f)),
  ];
}
