// Issue 13, "What must be shown" 4: the tab is closed while a sync request
// is in flight, and again while an upload is half done; on reopening the
// sync completes, the coordinator sees each report once and the file whole.
//
// The cuts are made at the network layer of the phone's browser
// (context.route), so they land exactly where meant:
// - A: a /v1/sync request held before it reaches the server, tab closed;
// - B: a /v1/sync request delivered to the server, its answer never given
//   to the page, tab closed: the server has the change, the phone does not
//   know it;
// - C: a 3 MB file's upload: the first 1 MiB PATCH passes, the second is
//   delivered but its answer lost, tab closed: the server holds part of the
//   file, more than the phone knows.

import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { phone, recordReport, reportIds, waitForStates, waitUntil, TIMEOUT } from "./harness.mjs";
import { enrollPhone } from "./record-offline.mjs";

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

export async function interrupted({ env, coord, checks, phones }) {
  const p = await phone("interrupted");
  phones.push(p);
  const deviceId = await enrollPhone({ p, coord, env, checks });
  // The sync the app runs on opening is over before any cut is set up.
  await p.page.getByText(/Last sync/).waitFor({ timeout: TIMEOUT.sync });

  let syncMode = "pass";
  const held = [];
  const net = { sync: [], patches: [], uploadLength: null, patchBytesAfterReopen: 0, reopened: false };
  await p.context.route("**/v1/sync", async (route) => {
    const mode = syncMode;
    net.sync.push(mode);
    if (mode === "hold") {
      held.push(route); // never answered: the request is still in flight when the tab closes
    } else if (mode === "drop-answer") {
      const answer = await route.fetch(); // the server gets it...
      net.sync.push(`server answered ${answer.status()}`);
      held.push(route); // ...the page never hears back
    } else {
      await route.continue();
    }
  });
  let patchMode = "pass";
  let cut = null;
  await p.context.route(/\/v1\/uploads\/[^/?]+/, async (route) => {
    const request = route.request();
    if (request.method() !== "PATCH" || patchMode !== "cut") return route.continue();
    const n = net.patches.push({ offset: request.headers()["upload-offset"], bytes: request.postDataBuffer()?.length ?? 0 });
    if (n === 1) return route.continue();
    if (n === 2) {
      const answer = await route.fetch();
      cut = { status: answer.status(), offset: Number(answer.headers()["upload-offset"]) };
    }
    held.push(route);
  });
  p.context.on("request", (request) => {
    if (!request.url().includes("/v1/uploads")) return;
    if (request.method() === "POST") net.uploadLength = Number(request.headers()["upload-length"]);
    if (request.method() === "PATCH" && net.reopened) net.patchBytesAfterReopen += request.postDataBuffer()?.length ?? 0;
  });

  // A: the sync after saving is held; the tab closes under it.
  syncMode = "hold";
  const first = { title: "Cut while syncing: checkpoint on Tole Bi", when: "2016-06-01T08:30", description: "Documents checked, two people taken aside.", people: [], tags: [], timeline: [], files: [] };
  const r1 = await recordReport(p.page, first);
  await waitUntil(() => net.sync.includes("hold"), "a /v1/sync request in flight", { timeout: TIMEOUT.sync });
  await p.page.close({ runBeforeUnload: false });
  await coord.sync();
  checks.that(!(await coord.timeline()).some((r) => r.id === r1), "A: the held sync never reached the server");

  // B: reopened, the app syncs at once; the server takes it, the answer is lost.
  syncMode = "drop-answer";
  await p.newTab();
  await p.page.goto(`${env.url}/app/`);
  await waitUntil(() => net.sync.some((s) => s.startsWith("server answered")), "a sync delivered with its answer withheld", { timeout: TIMEOUT.sync });
  await p.page.close({ runBeforeUnload: false });
  await coord.sync();
  checks.equal((await coord.timeline()).filter((r) => r.id === r1).length, 1, "B: the server has the report whose answer the phone never saw");

  // C: a 3 MB file; the tab closes with its upload part done.
  syncMode = "pass";
  patchMode = "cut";
  await p.newTab();
  await p.page.goto(`${env.url}/app/`);
  const big = randomBytes(3_000_000);
  const bigPath = path.join(env.work, "interview-recording.mp4");
  writeFileSync(bigPath, big);
  const second = { title: "Cut while uploading: interview recording", when: "2016-06-01T09:10", description: "Recorded at the courthouse.", people: [], tags: [], timeline: [], files: [bigPath] };
  const r2 = await recordReport(p.page, second);
  await waitUntil(() => cut !== null, "the second PATCH of the upload delivered", { timeout: TIMEOUT.sync, detail: () => net });
  await p.page.close({ runBeforeUnload: false });
  checks.that(cut.status === 204 && cut.offset > 0 && cut.offset < net.uploadLength,
    "C: the server holds part of the file when the tab closes", { cut, uploadLength: net.uploadLength });
  checks.step("cuts", { sync: net.sync, patches: net.patches, cut, uploadLength: net.uploadLength });

  // Reopened with the network whole: the sync completes.
  patchMode = "pass";
  net.reopened = true;
  await p.newTab();
  await p.page.goto(`${env.url}/app/`);
  await reportIds(p.page);
  await waitForStates(p.page, [r1, r2], "sent");
  await waitUntil(async () => (await p.page.getByText(/still to upload/).count()) === 0, "no file left to upload", { timeout: TIMEOUT.sync });
  checks.step("bytes sent after reopening", net.patchBytesAfterReopen);
  checks.that(net.patchBytesAfterReopen <= net.uploadLength - cut.offset,
    "the upload resumed where the server was, not from the start", { resent: net.patchBytesAfterReopen, remaining: net.uploadLength - cut.offset });

  await coord.sync();
  const mine = (await coord.timeline()).filter((r) => r.created_by === deviceId);
  checks.equal(mine.map((r) => r.title).sort(), [first.title, second.title].sort(), "the coordinator sees each report once");
  for (const id of [r1, r2]) {
    const { history } = await coord.show(id);
    // Nothing was edited: r1 is its creating change alone; r2's attachment
    // may come as a change of its own, but none may come twice.
    if (id === r1) checks.equal(history.length, 1, `report ${id}: one creating change, not repeated`);
    checks.equal(new Set(history.map((c) => c.hash)).size, history.length, `report ${id}: no change twice in its history`);
    checks.that(history.every((c) => c.signature_verified === true), `report ${id}: signature verified`, history);
  }
  const attached = await coord.attachments(r2);
  checks.must(attached.length === 1, "the file is attached once", attached);
  checks.equal([attached[0].size, attached[0].sha256, attached[0].waiting_for_upload], [big.length, sha256(big), false], "the file's header at the coordinator");
  const out = path.join(env.work, "interrupted-file.mp4");
  await coord.getAttachment(attached[0].id, out);
  checks.that(readFileSync(out).equals(big), "the file decrypts whole and byte-identical");
  await p.context.unrouteAll({ behavior: "ignoreErrors" });
}
