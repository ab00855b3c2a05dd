// server/web/change.js: the page reads a prepared change itself and signs
// only the edit the coordinator asked for. Changes here are made by
// @automerge/automerge (the reference implementation, pinned in
// package-lock.json) the way the server's ReportDocument::prepare_edit
// makes them: plain string scalars, maps at the root, one change by the
// session key on top of the report's heads. Hostile ones are built the same
// way with one thing changed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as A from "@automerge/automerge";
import { ChangeRefused, checkPreparedChange, decodeChange } from "../../../server/web/change.js";

const REPORTER = "aa".repeat(32);
const SESSION = "5e".repeat(32);
const OTHER = "0b".repeat(32);
const DEVICE_ID = "c0ffee".padEnd(32, "0");
const s = (text) => new A.ImmutableString(text);

function reportDoc({ review = true, tags = true, place = false } = {}) {
  return A.change(A.init({ actor: REPORTER }), { time: 1463805600000 }, (d) => {
    d.title = s("Arrest at the bus stop");
    d.occurred_at = s("2016-05-21T10:40:00+06:00");
    d.approximate = false;
    if (review) d.review = { status: s("unverified"), note: s("") };
    if (tags) d.tags = { arrest: true, night: true };
    if (place) d.place = { name: s("Bus stop"), lat: 43.25, lon: 76.95 };
  });
}

function shownOf(doc) {
  const objects = {};
  for (const key of ["review", "place", "tags"]) if (doc[key]) objects[key] = A.getObjectId(doc[key]);
  const text = (v) => (v === undefined || v === null ? v : String(v));
  const report = {
    title: text(doc.title),
    occurred_at: text(doc.occurred_at),
    approximate: doc.approximate,
    place: doc.place ? { name: text(doc.place.name), lat: doc.place.lat, lon: doc.place.lon } : { name: "", lat: null, lon: null },
    review: doc.review ? { status: text(doc.review.status), note: text(doc.review.note), reviewer: text(doc.review.reviewer) ?? null } : { status: "unverified", note: "" },
    tags: Object.keys(doc.tags ?? {}),
  };
  const conflicts = [];
  for (const [label, obj, key] of [["title", doc, "title"], ["review.status", doc.review, "status"], ["review.note", doc.review, "note"]]) {
    if (obj && Object.keys(A.getConflicts(obj, key) ?? {}).length > 1) conflicts.push({ field: label });
  }
  return { heads: A.getHeads(doc), objects, report, conflicts };
}

/** The change `edit` makes on `doc` as `actor` at `time`, and the doc after it. */
function changeOf(doc, edit, { actor = SESSION, time = Date.now() } = {}) {
  const after = A.change(A.clone(doc, { actor }), { time }, edit);
  return A.getLastLocalChange(after);
}

const session = { actor: SESSION, deviceId: DEVICE_ID };

function reviewEdit(status, note, time) {
  return (d) => {
    d.review.status = s(status);
    d.review.note = s(note);
    d.review.reviewer = s(DEVICE_ID);
    d.review.reviewed_at = s(new Date(time).toISOString().replace("Z", "+00:00"));
  };
}

const setStatus = [{ op: "set_status", status: "verified", note: "two witnesses" }];

function check(bytes, doc, edits, extra = {}) {
  return checkPreparedChange(bytes, { edits, shown: shownOf(doc), session, ...extra });
}

function refused(fn, pattern) {
  assert.throws(fn, (e) => e instanceof ChangeRefused && pattern.test(e.message), `expected a refusal matching ${pattern}`);
}

test("the reader decodes changes exactly as @automerge/automerge does", () => {
  const doc = reportDoc({ place: true });
  const now = Date.now();
  const changes = [
    A.getLastLocalChange(doc),
    changeOf(doc, reviewEdit("verified", "two witnesses ✓", now), { time: now }),
    changeOf(doc, (d) => {
      d.place.lat = -12.5;
      d.place.lon = null;
      delete d.tags.arrest;
      d.tags["police station"] = true;
      d.count = 7;
      d.big = -123456789;
    }),
    changeOf(A.merge(A.clone(doc), A.change(A.clone(doc, { actor: OTHER }), (d) => (d.title = s("concurrent")))), (d) => (d.title = s("merged"))),
  ];
  for (const bytes of changes) {
    const mine = decodeChange(bytes);
    const ref = A.decodeChange(bytes);
    assert.equal(mine.hash, ref.hash);
    assert.equal(mine.actor, ref.actor);
    assert.equal(mine.seq, ref.seq);
    assert.equal(mine.startOp, ref.startOp);
    assert.equal(mine.time, ref.time);
    assert.deepEqual([...mine.deps].sort(), [...ref.deps].sort());
    assert.equal(mine.message, ref.message ?? "");
    const names = { 0: "makeMap", 1: "set", 3: "del" };
    assert.deepEqual(
      mine.ops.map((op) => ({ action: names[op.action], obj: op.obj, key: op.key, pred: op.pred, value: op.action === 1 ? op.value.value : undefined })),
      ref.ops.map((op) => ({ action: op.action, obj: op.obj, key: op.key, pred: op.pred, value: op.action === "set" ? (op.datatype === "int" || op.datatype === "uint" ? "int" : op.value) : undefined })).map((op, i) =>
        // integers are kept as their raw LEB bytes here: no edit writes one
        op.value === "int" ? { ...op, value: mine.ops[i].value.value } : op,
      ),
    );
  }
});

test("the honest change of each edit is accepted and its hash is the one computed from its bytes", () => {
  const now = Date.now();
  const doc = reportDoc({ place: true });
  const cases = [
    [setStatus, reviewEdit("verified", "two witnesses", now)],
    [[{ op: "set_title", title: "Arrest at the north bus stop" }], (d) => (d.title = s("Arrest at the north bus stop"))],
    [
      [{ op: "set_place", name: "North bus stop", lat: 43.5, lon: null }],
      (d) => {
        d.place.name = s("North bus stop");
        d.place.lat = 43.5;
        d.place.lon = null;
      },
    ],
    [
      [{ op: "set_occurred_at", occurred_at: "2016-05-21T10:45:00Z", approximate: true }],
      (d) => {
        d.occurred_at = s("2016-05-21T10:45:00+00:00");
        d.approximate = true;
      },
    ],
    [
      [{ op: "remove_tag", tag: "night" }, { op: "add_tag", tag: "police" }],
      (d) => {
        delete d.tags.night;
        d.tags.police = true;
      },
    ],
  ];
  for (const [edits, edit] of cases) {
    const bytes = changeOf(doc, edit, { time: now });
    assert.equal(check(bytes, doc, edits, { claimedHash: A.decodeChange(bytes).hash }), A.decodeChange(bytes).hash, JSON.stringify(edits));
  }
});

test("a map the report lacks may be made by the change, at its root key only", () => {
  const now = Date.now();
  const doc = reportDoc({ review: false, tags: false });
  const bytes = changeOf(
    doc,
    (d) => {
      d.review = {};
      reviewEdit("disputed", "", now)(d);
    },
    { time: now },
  );
  assert.equal(check(bytes, doc, [{ op: "set_status", status: "disputed", note: "" }]), A.decodeChange(bytes).hash);
  const elsewhere = changeOf(doc, (d) => {
    d.review = {};
    d.place = {};
    d.place.status = s("disputed");
  });
  refused(() => check(elsewhere, doc, [{ op: "set_status", status: "disputed", note: "" }]), /review|place/);
});

test("a field that already holds the value asked for may be left unwritten, as Automerge does, but only then", () => {
  const now = Date.now();
  const base = reportDoc();
  // The same coordinator reviews again, keeping the note: Automerge writes
  // only status and reviewed_at.
  const doc = A.change(A.clone(base, { actor: SESSION }), { time: now - 60000 }, reviewEdit("disputed", "two witnesses", now - 60000));
  const again = changeOf(doc, reviewEdit("verified", "two witnesses", now), { time: now });
  assert.deepEqual(A.decodeChange(again).ops.map((op) => op.key).sort(), ["reviewed_at", "status"]);
  assert.equal(check(again, doc, setStatus), A.decodeChange(again).hash);
  // A change that leaves out a field whose value differs is refused.
  const noStatus = changeOf(doc, (d) => (d.review.reviewed_at = s(new Date(now).toISOString().replace("Z", "+00:00"))), { time: now });
  refused(() => check(noStatus, doc, setStatus), /does not write review.status exactly once/);
});

test("keeping the winning value of a conflicted field deletes the others; a delete elsewhere is refused", () => {
  const now = Date.now();
  const base = reportDoc();
  const b = A.change(A.clone(base, { actor: OTHER }), (d) => (d.review.note = s("from b")));
  const c = A.change(A.clone(base, { actor: "0c".repeat(32) }), (d) => (d.review.note = s("from c")));
  const doc = A.merge(b, c);
  const winner = doc.review.note.toString();
  assert.ok(shownOf(doc).conflicts.some((x) => x.field === "review.note"));
  const edits = [{ op: "set_status", status: "verified", note: winner }];
  const keep = changeOf(doc, reviewEdit("verified", winner, now), { time: now });
  assert.ok(A.decodeChange(keep).ops.some((op) => op.key === "note" && op.action === "del"));
  assert.equal(check(keep, doc, edits), A.decodeChange(keep).hash);
  // The same delete when the note asked for is another one is refused.
  refused(() => check(keep, doc, [{ op: "set_status", status: "verified", note: "a new note" }]), /another value to review.note/);
  // And a delete of a field that shows no conflict.
  const plain = reportDoc();
  const gone = changeOf(plain, (d) => {
    reviewEdit("verified", "", now)(d);
    delete d.review.note;
  }, { time: now });
  refused(() => check(gone, plain, [{ op: "set_status", status: "verified", note: "" }]), /review.note/);
});

test("a change that touches another field besides the one asked for is refused", () => {
  const now = Date.now();
  const doc = reportDoc();
  const bytes = changeOf(
    doc,
    (d) => {
      reviewEdit("verified", "two witnesses", now)(d);
      d.title = s("Nothing happened");
    },
    { time: now },
  );
  refused(() => check(bytes, doc, setStatus), /touches a field the edit does not \(title\)/);
  const tag = changeOf(doc, (d) => {
    reviewEdit("verified", "two witnesses", now)(d);
    delete d.tags.arrest;
  }, { time: now });
  refused(() => check(tag, doc, setStatus), /touches a field/);
});

test("a change that writes another value than the one asked for is refused", () => {
  const now = Date.now();
  const doc = reportDoc();
  refused(() => check(changeOf(doc, reviewEdit("disputed", "two witnesses", now), { time: now }), doc, setStatus), /another value to review.status/);
  refused(() => check(changeOf(doc, reviewEdit("verified", "no witnesses", now), { time: now }), doc, setStatus), /another value to review.note/);
  const backdated = changeOf(doc, reviewEdit("verified", "two witnesses", now - 86400000), { time: now });
  refused(() => check(backdated, doc, setStatus), /review.reviewed_at/);
});

test("a change with other dependencies than the heads shown is refused", () => {
  const now = Date.now();
  const doc = reportDoc();
  const moved = A.change(A.clone(doc, { actor: OTHER }), (d) => (d.title = s("moved on")));
  const bytes = changeOf(moved, reviewEdit("verified", "two witnesses", now), { time: now });
  refused(() => check(bytes, doc, setStatus), /does not build on the version of the report this page shows/);
  const none = changeOf(A.init({ actor: REPORTER }), (d) => (d.review = {}), { time: now });
  refused(() => check(none, doc, setStatus), /does not build on/);
});

test("a change by another actor than the session key is refused", () => {
  const now = Date.now();
  const doc = reportDoc();
  const bytes = changeOf(doc, reviewEdit("verified", "two witnesses", now), { time: now, actor: OTHER });
  refused(() => check(bytes, doc, setStatus), /not made by this session's key/);
});

test("a change whose time is not now is refused", () => {
  const now = Date.now();
  const doc = reportDoc();
  for (const time of [now - 3600 * 1000, now + 10 * 60 * 1000, 0]) {
    const bytes = changeOf(doc, reviewEdit("verified", "two witnesses", time), { time });
    refused(() => check(bytes, doc, setStatus), /time is not now/);
  }
});

test("a change whose bytes do not match its hash or the hash the server names is refused", () => {
  const now = Date.now();
  const doc = reportDoc();
  const good = changeOf(doc, reviewEdit("verified", "two witnesses", now), { time: now });
  const hash = A.decodeChange(good).hash;
  const other = A.decodeChange(changeOf(doc, reviewEdit("disputed", "", now), { time: now })).hash;
  refused(() => check(good, doc, setStatus, { claimedHash: other }), /different hash than its change's bytes/);
  // Flip one byte of the value column (inside "two witnesses"): the checksum no longer matches.
  const altered = Uint8Array.from(good);
  const at = Buffer.from(altered).indexOf(Buffer.from("two witnesses"));
  assert.ok(at > 0);
  altered[at] ^= 0x20;
  refused(() => check(altered, doc, setStatus, { claimedHash: hash }), /checksum does not match/);
  // The same alteration with its checksum made to match is a change to another value.
  const rechecked = Uint8Array.from(altered);
  rechecked.set(createHash("sha256").update(rechecked.subarray(8)).digest().subarray(0, 4), 4);
  refused(() => check(rechecked, doc, setStatus), /another value to review.note/);
  refused(() => check(good.subarray(0, good.length - 1), doc, setStatus), /length does not match/);
  refused(() => check(Uint8Array.from([...good, 0]), doc, setStatus), /length does not match/);
});

test("bytes that are not one plain change chunk are refused before anything is decoded", () => {
  const doc = reportDoc();
  refused(() => decodeChange(A.save(doc)), /not an uncompressed change chunk|checksum/);
  refused(() => decodeChange(new Uint8Array(300 * 1024)), /more than/);
  refused(() => decodeChange(Uint8Array.from([0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2, 0])), /chunk type 2/);
  refused(() => decodeChange(new TextEncoder().encode("change 1")), /bad magic/);
});

test("a column run that claims more values than the change has ops is refused, not expanded", () => {
  // A change chunk by hand: no deps, the session actor, seq 1, start op 1,
  // time now, no message, no other actors, one action column whose single
  // run claims 2^52 ops.
  const uleb = (n) => {
    const out = [];
    do {
      let b = n % 128;
      n = Math.floor(n / 128);
      if (n) b |= 0x80;
      out.push(b);
    } while (n);
    return out;
  };
  const sleb = (n) => {
    const out = [];
    for (;;) {
      const b = Number(BigInt.asUintN(7, BigInt(n)));
      n = Math.floor(n / 128);
      if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
      out.push(b | 0x80);
    }
  };
  const run = [...sleb(2 ** 52), 1];
  const body = [0, 32, ...Buffer.from(SESSION, "hex"), 1, 1, ...sleb(Date.now()), 0, 0, 1, 0x42, run.length, ...run];
  const typed = [1, ...uleb(body.length), ...body];
  const hash = createHash("sha256").update(Uint8Array.from(typed)).digest();
  const chunk = Uint8Array.from([0x85, 0x6f, 0x4a, 0x83, ...hash.subarray(0, 4), ...typed]);
  const started = Date.now();
  refused(() => decodeChange(chunk), /more values than the change has ops/);
  assert.ok(Date.now() - started < 1000);
});
