// Issue 13, "What must be shown" 4: the tab is closed while a sync request
// is in flight, and again while an upload is half done; on reopening the
// sync completes, the coordinator sees each report once and the file whole.
//
// The phone reaches the server through a relay the test controls
// (harness.mjs `cutRelay`), so each cut lands exactly where meant:
// - A: a /v1/sync request held before it reaches the server; the tab closes
//   with it in flight;
// - B: a /v1/sync request delivered to the server, its answer never given
//   back; the tab closes: the server has the change, the phone does not
//   know it;
// - C: a 3 MB file's upload: the first 1 MiB PATCH passes, the second is
//   delivered but its answer lost, the tab closes: the server holds part of
//   the file, more than the phone knows.

import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { phone, recordReport, reportIds, waitForStates, waitUntil, cutRelay, TIMEOUT } from "./harness.mjs";
import { enrollPhone } from "./record-offline.mjs";

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

export async function interrupted({ env, coord, checks, phones }) {
  let syncMode = "pass";
  let patchMode = "pass";
  let patches = 0;
  const relay = await cutRelay(env.url, ({ method, path: p }) => {
    if (p.startsWith("/v1/sync")) return syncMode;
    if (method === "PATCH" && p.startsWith("/v1/uploads/") && patchMode === "cut") {
      patches += 1;
      return patches === 1 ? "pass" : patches === 2 ? "drop-answer" : "hold";
    }
    return "pass";
  });
  const syncs = (verdict) => relay.log.filter((e) => e.path === "/v1/sync" && e.verdict === verdict);
  try {
    const p = await phone("interrupted");
    phones.push(p);
    const deviceId = await enrollPhone({ p, coord, env, checks, base: relay.url });
    // The sync the app runs on opening is over before any cut is set up.
    await p.page.getByText(/Last sync/).waitFor({ timeout: TIMEOUT.sync });

    // A: the sync after saving is held; the tab closes under it.
    syncMode = "hold";
    const first = { title: "Cut while syncing: checkpoint on Tole Bi", when: "2016-06-01T08:30", description: "Documents checked, two people taken aside.", people: [], tags: [], timeline: [], files: [] };
    const r1 = await recordReport(p.page, first);
    await waitUntil(() => syncs("hold").length > 0, "a /v1/sync request in flight", { timeout: TIMEOUT.sync });
    await p.page.close({ runBeforeUnload: false });
    await coord.sync();
    checks.that(!(await coord.timeline()).some((r) => r.id === r1), "A: the held sync never reached the server");

    // B: reopened, the app syncs at once; the server takes it, the answer is lost.
    syncMode = "drop-answer";
    await p.newTab();
    await p.page.goto(`${relay.url}/app/`);
    await waitUntil(() => syncs("drop-answer").some((e) => e.status), "a sync delivered with its answer withheld", { timeout: TIMEOUT.sync });
    await p.page.close({ runBeforeUnload: false });
    checks.equal(syncs("drop-answer").map((e) => e.status), [200], "B: the server answered the sync the phone never heard back from");
    await coord.sync();
    checks.equal((await coord.timeline()).filter((r) => r.id === r1).length, 1, "B: the server has the report whose answer the phone never saw");

    // C: a 3 MB file; the tab closes with its upload part done.
    syncMode = "pass";
    patchMode = "cut";
    await p.newTab();
    await p.page.goto(`${relay.url}/app/`);
    const big = randomBytes(3_000_000);
    const bigPath = path.join(env.work, "interview-recording.mp4");
    writeFileSync(bigPath, big);
    const second = { title: "Cut while uploading: interview recording", when: "2016-06-01T09:10", description: "Recorded at the courthouse.", people: [], tags: [], timeline: [], files: [bigPath] };
    const r2 = await recordReport(p.page, second);
    const patchLog = () => relay.log.filter((e) => e.method === "PATCH");
    await waitUntil(() => patchLog()[1]?.status !== undefined, "the second PATCH of the upload delivered", { timeout: TIMEOUT.sync, detail: () => patchLog().map(({ headers, ...e }) => e) });
    await p.page.close({ runBeforeUnload: false });
    const created = relay.log.find((e) => e.method === "POST" && e.path === "/v1/uploads");
    const uploadLength = Number(created?.headers["upload-length"]);
    const cut = { status: patchLog()[1].status, offset: Number(patchLog()[1].answerHeaders?.["upload-offset"]) };
    checks.that(cut.status === 204 && cut.offset > 0 && cut.offset < uploadLength,
      "C: the server holds part of the file when the tab closes", { cut, uploadLength });
    checks.step("cuts", { log: relay.log.map(({ headers, answerHeaders, ...e }) => e), cut, uploadLength });

    // Reopened with the network whole: the sync completes.
    patchMode = "pass";
    const mark = relay.log.length;
    await p.newTab();
    await p.page.goto(`${relay.url}/app/`);
    await reportIds(p.page);
    await waitForStates(p.page, [r1, r2], "sent");
    await waitUntil(async () => (await p.page.getByText(/still to upload/).count()) === 0, "no file left to upload", { timeout: TIMEOUT.sync });
    const resent = relay.log.slice(mark).filter((e) => e.method === "PATCH").reduce((n, e) => n + e.bytes, 0);
    checks.step("bytes sent after reopening", resent);
    checks.that(resent > 0 && resent <= uploadLength - cut.offset,
      "the upload resumed where the server was, not from the start", { resent, remaining: uploadLength - cut.offset });

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
  } finally {
    relay.close();
  }
}
