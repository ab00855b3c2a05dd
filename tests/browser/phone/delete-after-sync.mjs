// Issue 13, "What must be shown" 7, second half: a phone enrolled with
// "Delete from this phone once the server has it" on. Once the server has
// acknowledged a report and its photo, their content leaves the phone (only
// a count stays), while the coordinator still gets every field and the
// photo.
//
// The store encrypts every record, so a raw dump never shows a title either
// way; the check reads the app's records decrypted, with the app's own
// store module and key, in the page: before the sync the title, the
// description and the person are there (so the check can fail), after it
// they are not, and the stored bytes shrink by at least the sealed photo.

import { readFileSync } from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";
import {
  phone, recordReport, waitForStates, waitUntil, waitForOfflineReady, shownText, TIMEOUT,
  decryptedRecords, inRecords, dumpStorage, dumpSize, reportIds,
} from "./harness.mjs";
import { enrollPhone, expected, shown } from "./record-offline.mjs";

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

export async function deleteAfterSync({ env, coord, checks, phones }) {
  const photoPath = path.join(env.fixtures, "bus-stop-photo.png");
  const photo = readFileSync(photoPath);
  const p = await phone("delete-after-sync");
  phones.push(p);
  const page = p.page;
  await enrollPhone({ p, coord, env, checks, deleteAfterSync: true });
  await waitForOfflineReady(page);

  // Recorded offline, so the content is certainly on the phone first.
  await p.context.setOffline(true);
  const report = {
    title: "Detained outside the akimat",
    when: "2016-06-03T12:05",
    approximate: false,
    place: { name: "Akimat square, east gate" },
    description: "Three people with placards were put into a bus.",
    people: [{ name: "Yerlan Baimukhanov", role: "detainee", note: "held at district 4" }],
    tags: ["detention"],
    timeline: [],
    files: [photoPath],
  };
  const id = await recordReport(page, report);
  const secrets = [report.title, report.description, report.people[0].name];
  const before = await decryptedRecords(page);
  checks.must(before.state === "open", "the app's store opens in the page with its own key", before.state);
  const presentBefore = secrets.filter((s) => inRecords(before, s).length > 0);
  checks.equal(presentBefore, secrets, "before the sync, the phone holds the report's content (decrypted records)");
  const dumpBefore = await dumpStorage(page);
  const sizeBefore = dumpSize(dumpBefore).indexeddb;
  // With no passphrase the data key is a CryptoKey in IndexedDB, and it must
  // not be extractable (this also shows the dump sees CryptoKeys, which the
  // at-rest scenario requires to be absent once a passphrase is set).
  const storedKeys = dumpBefore.databases.flatMap((d) => d.stores.flatMap((s) => s.records.flatMap((r) => r.keys)));
  checks.that(storedKeys.length >= 1 && storedKeys.every((k) => k.extractable === false), "no passphrase: the stored data key is a non-extractable CryptoKey", storedKeys);

  await p.context.setOffline(false);
  await waitForStates(page, [id], "sent");
  let after = null;
  await waitUntil(async () => {
    after = await decryptedRecords(page);
    return secrets.every((s) => inRecords(after, s).length === 0);
  }, "the acknowledged content gone from the phone", { timeout: TIMEOUT.sync, every: 500, detail: () => secrets.map((s) => [s, inRecords(after, s)]) })
    .catch((err) => checks.fail("after the sync the report's content is still on the phone", err.message));
  const sizeAfter = dumpSize(await dumpStorage(page)).indexeddb;
  checks.step("indexeddb before and after", { before: sizeBefore, after: sizeAfter });
  checks.that(sizeBefore.bytes - sizeAfter.bytes >= photo.length, "the sealed photo left the phone (stored bytes shrank by at least its size)", { before: sizeBefore, after: sizeAfter });

  // What the reporter sees: the report listed as deleted from the phone, and a count.
  await reportIds(page);
  const item = page.locator(`[data-report-id="${id}"]`);
  const listedAsDeleted = (text) => text.includes("(deleted from this phone)") && !text.includes(report.title);
  const itemText = await shownText(item, listedAsDeleted);
  checks.that(listedAsDeleted(itemText), "My reports lists it without its title, as deleted from this phone", itemText);
  checks.that(await page.getByText("1 report was deleted from this phone after the server received it.").isVisible(), "My reports counts the deleted report");
  await page.evaluate((id) => { location.hash = `#report/${encodeURIComponent(id)}`; }, id);
  await page.getByText(/The content of this report was deleted from this phone/).waitFor({ timeout: TIMEOUT.ui });
  checks.that(!(await page.locator("main").innerText()).includes(report.description), "the report screen shows no content");

  // The server still has all of it.
  await coord.sync();
  const atCoordinator = (await coord.timeline()).find((r) => r.id === id);
  checks.must(atCoordinator, "the coordinator has the report");
  checks.equal(shown(atCoordinator), expected(report), "the report at the coordinator");
  const attached = await coord.attachments(id);
  checks.must(attached.length === 1, "the photo is attached", attached);
  checks.equal([attached[0].sha256, attached[0].waiting_for_upload], [sha256(photo), false], "the photo at the server");
  const out = path.join(env.work, "delete-after-sync.png");
  await coord.getAttachment(attached[0].id, out);
  checks.that(readFileSync(out).equals(photo), "the photo decrypts byte-identical at the coordinator");
}
