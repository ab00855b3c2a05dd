// Issue 13, "What must be shown" 1, 2, 3 and 5, on one phone:
// 1. an invite link minted on the coordinator's CLI device enrolls the phone;
// 2. offline, a reload opens the app from its service worker, and three
//    reports are recorded there, one with a photo;
// 3. back online the app syncs; the CLI coordinator sees all three, every
//    field as typed, every change signature-verified, the photo
//    byte-identical;
// 5. the coordinator sets a status and edits the description while the
//    phone edits it offline; after both sync both hold the same merged
//    text and the status (delete-after-sync is off on this phone).

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import {
  phone, enroll, recordReport, waitForOfflineReady, reportIds, reportStates, waitForStates,
  field, tab, waitUntil, shownText, TIMEOUT,
} from "./harness.mjs";

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

/** The three reports, as typed; `expect` is how the CLI must show each. */
export function reports(photo) {
  return [
    {
      title: "Arrest at the bus stop",
      when: "2016-05-21T10:40",
      approximate: true,
      place: { name: "Bus stop on Abay Avenue", lat: 43.25, lon: 76.95 },
      description: "Aleksey was arrested by two officers.\nThey took him to a grey van.",
      people: [
        { name: "Tulegen Shakirov", role: "officer", note: "car kz380KP02" },
        { name: "Aleksey Nurpeisov", role: "detainee", note: "" },
      ],
      tags: ["arrest", "bus stop"],
      timeline: [{ at: "2016-05-21T10:45", text: "The van left towards Abay Avenue", approximate: true }],
      files: [photo],
    },
    {
      title: "Разогнали митинг на площади",
      when: "2016-05-22T18:00",
      approximate: false,
      place: { name: "Площадь Республики" },
      description: "Около сорока человек; полиция оттеснила их к монументу.",
      people: [{ name: "Гульнара Ахметова", role: "witness", note: "видела всё с остановки" }],
      tags: ["митинг"],
      timeline: [],
      files: [],
    },
    {
      title: "Тінту кезінде телефон алынды",
      when: "2016-05-23T09:15",
      approximate: false,
      place: { name: "Жетісу ауданы", lat: 43.3, lon: 76.9 },
      description: "Екі полицей қызметкері телефонды алып кетті.",
      people: [],
      tags: [],
      timeline: [],
      files: [],
    },
  ];
}

/** How `fieldsync timeline --json` must show report `r` recorded in Almaty. */
export function expected(r) {
  const rfc = (local) => `${local}:00+06:00`;
  return {
    title: r.title,
    occurred_at: rfc(r.when),
    approximate: !!r.approximate,
    place: { name: r.place?.name ?? "", lat: r.place?.lat ?? null, lon: r.place?.lon ?? null },
    description: r.description,
    people: r.people.map((p) => ({ name: p.name, role: p.role, note: p.note ?? "" })),
    tags: [...r.tags].sort(),
    timeline: r.timeline.map((e) => ({ at: rfc(e.at), text: e.text, approximate: !!e.approximate })),
  };
}

export function shown(report) {
  return {
    title: report.title,
    occurred_at: report.occurred_at,
    approximate: report.approximate,
    place: report.place,
    description: report.description,
    people: report.people,
    tags: [...(report.tags ?? [])].sort(),
    timeline: report.timeline,
  };
}

/** Scenario 1: opens a fresh invite link on `p`; returns the phone's new device id. */
export async function enrollPhone({ p, coord, env, checks, deleteAfterSync = false, passphrase = null, base = env.url }) {
  const before = new Set((await coord.devices()).map((d) => d.device_id));
  const invite = await coord.inviteLink(base);
  checks.that(invite.link.startsWith(`${base}/app/#invite=`) && invite.link.includes("&fp="), "the invite link carries the token and the case key fingerprint in its fragment", invite.link);
  await enroll(p.page, invite.link, { deleteAfterSync, passphrase });
  const added = (await coord.devices()).filter((d) => !before.has(d.device_id));
  checks.must(added.length === 1, "opening the invite link enrolled exactly one new device (admin devices --json)", added);
  const device = added[0];
  checks.equal([device.role, device.case_name, device.revoked_at], ["reporter", env.caseName, null], "the new device is a reporter of the case");
  checks.that(!p.page.url().includes(invite.token), "the invite token is gone from the address bar", p.page.url());
  // The phone shows the id the server enrolled, and the case key whose
  // fingerprint the invite carried.
  await tab(p.page, "Settings");
  const about = await p.page.locator("dl.about").innerText({ timeout: TIMEOUT.ui });
  checks.that(about.includes(device.device_id), "Settings shows the enrolled device id", about);
  checks.that(about.includes(invite.case_key_fingerprint), "Settings shows the case key of the invite's fingerprint", about);
  return device.device_id;
}

export async function recordOffline({ env, coord, checks, phones }) {
  const photoPath = path.join(env.fixtures, "bus-stop-photo.png");
  const photo = readFileSync(photoPath);
  const p = await phone("record");
  phones.push(p);
  const page = p.page;

  // 1. Enrollment.
  const deviceId = await enrollPhone({ p, coord, env, checks });
  checks.step("device", deviceId);

  // 2. Offline: the service worker opens the app.
  await waitForOfflineReady(page);
  await p.context.setOffline(true);
  const response = await page.reload({ waitUntil: "load" });
  checks.must(response !== null, "the offline reload got a response");
  checks.that(response.fromServiceWorker(), "the offline reload was answered by the service worker", { status: response.status(), url: response.url() });
  // The app runs (it reloaded on Settings, the screen it was on).
  await page.locator("section.settings").waitFor({ timeout: TIMEOUT.ui });
  checks.equal(await page.evaluate(() => navigator.onLine), false, "the phone is offline");

  const typed = reports(photoPath);
  const ids = [];
  for (const r of typed) ids.push(await recordReport(page, r));
  checks.step("reports", ids);
  checks.equal(new Set(ids).size, 3, "three distinct reports listed");
  const offlineStates = await reportStates(page);
  checks.equal(ids.map((id) => offlineStates[id]), ["waiting", "waiting", "waiting"], "offline, each report waits on the phone");

  // 3. Online: the app syncs by itself (it listens for the network).
  await p.context.setOffline(false);
  await waitForStates(page, ids, "sent");
  await waitUntil(async () => (await page.getByText(/still to upload/).count()) === 0, "no file left to upload");

  await coord.sync();
  const mine = (await coord.timeline()).filter((r) => r.created_by === deviceId);
  checks.equal(mine.map((r) => r.id).sort(), [...ids].sort(), "the coordinator holds exactly the phone's three reports, once each");
  for (const [i, id] of ids.entries()) {
    const report = mine.find((r) => r.id === id);
    if (!report) continue;
    checks.equal(shown(report), expected(typed[i]), `report ${i + 1} as the coordinator sees it`);
    const { history } = await coord.show(id);
    checks.that(history.length >= 1, `report ${i + 1} has a change history`, history);
    for (const change of history) {
      checks.that(change.signature_verified === true && change.author === deviceId && change.via_web_session === false,
        `report ${i + 1}: change ${change.hash} signed by the phone and verified`, change);
    }
    checks.equal((report.attachments ?? []).length, typed[i].files.length, `report ${i + 1}: attachments`);
  }
  const attached = await coord.attachments(ids[0]);
  checks.must(attached.length === 1, "the photo is listed for the first report", attached);
  const a = attached[0];
  checks.equal(
    [a.name, a.media_type, a.size, a.sha256, a.waiting_for_upload],
    ["bus-stop-photo.png", "image/png", photo.length, sha256(photo), false],
    "the photo's header as the coordinator decrypts it",
  );
  const out = path.join(env.work, `record-${a.id}.png`);
  await coord.getAttachment(a.id, out);
  checks.that(readFileSync(out).equals(photo), "the photo decrypts byte-identical");

  // 5. Concurrent edits of the description, and the coordinator's review.
  await merge({ p, coord, checks, id: ids[0], original: typed[0].description });
}

/**
 * The phone edits the description offline; meanwhile the coordinator sets
 * the status and edits another line of it; both sync; both sides must hold
 * both edits and the status.
 */
async function merge({ p, coord, checks, id, original }) {
  const page = p.page;
  const [line1, line2] = original.split("\n");
  const phoneText = `${line1}\n${line2.replace(/\.$/, "")}, plate kz380KP02.`;
  const coordText = `${line1.replace("Aleksey", "Aleksey N.")}\n${line2}`;
  const merged = `${line1.replace("Aleksey", "Aleksey N.")}\n${line2.replace(/\.$/, "")}, plate kz380KP02.`;

  await p.context.setOffline(true);
  await page.evaluate((id) => { location.hash = `#report/${encodeURIComponent(id)}`; }, id);
  const description = field(page, "Description");
  await description.waitFor({ timeout: TIMEOUT.ui });
  checks.equal(await description.inputValue(), original, "the phone shows the description before the edit");
  await description.fill(phoneText);
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText("Changes saved.").first().waitFor({ timeout: TIMEOUT.ui });

  await coord.edit(id, ["--status", "verified", "--note", "two witnesses confirm", "--text", coordText]);
  await coord.sync();

  await p.context.setOffline(false);
  await reportIds(page);
  await waitForStates(page, [id], "reviewed");
  const item = page.locator(`[data-report-id="${id}"]`);
  const reviewShown = (text) => /verified/.test(text) && text.includes("two witnesses confirm");
  const itemText = await shownText(item, reviewShown);
  checks.that(reviewShown(itemText), "My reports shows the coordinator's status and note", itemText);
  // The phone's copy of the report: open it and read the merged description.
  await page.evaluate((id) => { location.hash = `#report/${encodeURIComponent(id)}`; }, id);
  await description.waitFor({ timeout: TIMEOUT.ui });
  checks.equal(await description.inputValue(), merged, "the phone's description after the merge");

  // Its edit is sent once the phone syncs again (it may have sent it in the
  // same round it received the coordinator's); the coordinator then holds it.
  let report = null;
  await waitUntil(async () => {
    await coord.sync();
    report = (await coord.show(id)).report;
    return report.description !== coordText;
  }, "the phone's edit at the coordinator", { timeout: TIMEOUT.sync, every: 1000, detail: () => report?.description });
  checks.equal(report.description, merged, "the coordinator's description after the merge");
  checks.equal([report.review.status, report.review.note], ["verified", "two witnesses confirm"], "the coordinator's review kept");
}
