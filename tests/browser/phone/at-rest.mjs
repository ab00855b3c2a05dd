// Issue 13, "What must be shown" 6 and the first half of 7, on one phone:
// 6. with a passphrase set in the app, a dump of every IndexedDB record and
//    every Cache API entry holds none of the title, the description, a
//    person's name, the draft's text, the passphrase, or the photo's bytes
//    (as text, UTF-8, UTF-16 or base64) — unlocked, and again locked after
//    a reload; and no CryptoKey is stored at all (a stored key lies in the
//    browser's files in plain form);
// 7. "Quick delete", held for 3 s (a shorter hold is cancelled), leaves no
//    IndexedDB database, cache, service worker registration or web storage,
//    and shows the first screen.
//
// The reports are recorded offline, so the sealed photo is still on the
// phone, waiting, when the dump is taken.

import { readFileSync } from "node:fs";
import path from "node:path";
import {
  phone, recordReport, newReport, waitForOfflineReady, field, tab, waitUntil, shownText, TIMEOUT,
  dumpStorage, dumpSize, findInDump, dumpControl, leftovers, hold, reportIds,
} from "./harness.mjs";
import { enrollPhone } from "./record-offline.mjs";

const PASSPHRASE = "kettle-orchard-57-lantern";

export async function atRest({ env, coord, checks, phones }) {
  const photo = readFileSync(path.join(env.fixtures, "bus-stop-photo.png"));
  const p = await phone("at-rest");
  phones.push(p);
  const page = p.page;
  await enrollPhone({ p, coord, env, checks });

  await waitForOfflineReady(page);
  await p.context.setOffline(true);
  const report = {
    title: "Night search at dormitory 7",
    when: "2016-06-02T23:40",
    place: { name: "Satpayev Street dormitory" },
    description: "Officers searched rooms 12 to 20 without a warrant.",
    people: [{ name: "Dinara Utegenova", role: "victim", note: "room 14, phone taken" }],
    tags: [],
    timeline: [],
    files: [path.join(env.fixtures, "bus-stop-photo.png")],
  };
  const id = await recordReport(page, report);
  // A draft too: typed, never saved as a report.
  await newReport(page);
  const draft = { title: "Unfinished: the second van", description: "Plate ends in 0417, seen by Marat Seitkali." };
  await field(page, "Title").fill(draft.title);
  await field(page, "Description").fill(draft.description);
  await page.getByText(/Draft saved at/).waitFor({ timeout: TIMEOUT.ui });

  // The passphrase, set in Settings.
  await tab(page, "Settings");
  await field(page, "New passphrase").fill(PASSPHRASE);
  await field(page, "Repeat the passphrase").fill(PASSPHRASE);
  await page.getByRole("button", { name: "Set passphrase" }).click();
  await page.getByText("The passphrase is set.").first().waitFor({ timeout: 60_000 });

  const secrets = [report.title, report.description, report.people[0].name, report.people[0].note, report.place.name, draft.title, draft.description, PASSPHRASE];
  // The dump and the search find what they look for (a scratch database
  // and cache holding the same kinds of thing), so an empty result means
  // something.
  const control = await dumpControl(page, report.title, photo);
  checks.that(control.some((h) => h.needle === JSON.stringify(report.title) && h.where.includes("#0")), "control: a title in a stored object is found", control);
  checks.that(control.some((h) => h.needle === JSON.stringify(report.title) && h.where.includes("#1")), "control: a title as UTF-16 bytes is found", control);
  checks.that(control.some((h) => h.needle.startsWith("control blob") && h.where.startsWith("indexeddb")), "control: photo bytes in a Blob are found", control);
  checks.that(control.some((h) => h.needle.startsWith("control blob") && h.where.startsWith("cache")), "control: photo bytes in a cache entry are found", control);

  const audit = (label, dump) => {
    const size = dumpSize(dump);
    checks.step(`${label}: dump`, size);
    checks.that(size.databases.includes("fieldsync-app") && size.indexeddb.records >= 3 && size.indexeddb.bytes > photo.length,
      `${label}: the dump holds the app's records (the sealed photo among them)`, size);
    const hits = findInDump(dump, { strings: secrets, blobs: [["photo", photo]] });
    checks.equal(hits, [], `${label}: plaintext found in storage`);
    const keys = [];
    for (const db of dump.databases) for (const s of db.stores) for (const r of s.records) keys.push(...r.keys);
    checks.equal(keys, [], `${label}: CryptoKeys stored (key material at rest outside the passphrase)`);
  };
  audit("unlocked", await dumpStorage(page));

  // Reloaded, the app is locked; storage still holds nothing readable.
  await page.reload();
  await page.getByRole("button", { name: "Unlock" }).waitFor({ timeout: TIMEOUT.ui });
  checks.that(await field(page, "Title").count() === 0, "locked: no report form on screen");
  audit("locked", await dumpStorage(page));

  // A wrong passphrase is refused and counted; the right one opens everything.
  await field(page, "Passphrase").fill("not the passphrase");
  await page.getByRole("button", { name: "Unlock" }).click();
  await page.getByText(/Wrong passphrase\. 9 tries left/).waitFor({ timeout: 60_000 });
  await field(page, "Passphrase").fill(PASSPHRASE);
  await page.getByRole("button", { name: "Unlock" }).click();
  await page.getByRole("navigation").waitFor({ timeout: 60_000 });
  const ids = await reportIds(page);
  checks.equal(ids, [id], "unlocked, the report is there");
  const titleText = await shownText(page.locator(`[data-report-id="${id}"]`), (text) => text.includes(report.title));
  checks.that(titleText.includes(report.title), "unlocked, its title reads again", titleText);

  // 7. Quick delete: a short hold does nothing...
  const button = page.getByRole("button", { name: "Quick delete" }).first();
  await hold(page, button, 1000);
  const kept = await leftovers(page);
  checks.that(kept.databases.includes("fieldsync-app") && kept.serviceWorkers.length === 1, "a 1 s hold is cancelled: the app's data stays", kept);
  checks.that(await page.getByRole("navigation").isVisible(), "a 1 s hold is cancelled: the app stays open");
  // ...3 s erases everything.
  await hold(page, button, 3200);
  await field(page, "Invite link").waitFor({ timeout: TIMEOUT.ui });
  checks.that(await page.getByRole("heading", { name: "Welcome" }).isVisible(), "after quick delete the first screen shows");
  let left = null;
  await waitUntil(async () => {
    left = await leftovers(page);
    return left.databases.length === 0 && left.caches.length === 0 && left.serviceWorkers.length === 0;
  }, "nothing left after quick delete", { timeout: 10_000, detail: () => left }).catch((err) => checks.fail("quick delete left data behind", err.message));
  checks.equal(left, { databases: [], caches: [], serviceWorkers: [], localStorage: 0, sessionStorage: 0 }, "what the origin holds after quick delete");
  const hash = await page.evaluate(() => location.hash);
  checks.that(!/report\/|draft\//.test(hash), "no report or draft named in the address after quick delete", hash);
}
