// applyEdits (server/web/review.js) in node with a fake fetch: prepare →
// sign with the session key → commit, the CSRF header on every POST, one
// retry after 409, and no secret in any request.
import { test } from "node:test";
import assert from "node:assert/strict";
import nodeCrypto from "node:crypto";

// The page keeps the link's secrets in sessionStorage; node has none.
const store = new Map();
globalThis.sessionStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k),
};

const A = await import("@automerge/automerge");
const { toHex } = await import("../../../server/web/crypto.js");
const { setSession } = await import("../../../server/web/api.js");
const { storeFromLink, clearKeys } = await import("../../../server/web/keys.js");
const { applyEdits } = await import("../../../server/web/review.js");

function nodeKeyFromSeed(seed) {
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  return nodeCrypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" });
}

const state = { pub: null };

function login() {
  const seed = nodeCrypto.randomBytes(32);
  const key = nodeKeyFromSeed(seed);
  const spki = nodeCrypto.createPublicKey(key).export({ format: "der", type: "spki" });
  const pub = spki.subarray(spki.length - 32);
  const token = Buffer.alloc(164);
  token.write("FSW1", 0, "latin1");
  pub.copy(token, 36);
  const caseKey = nodeCrypto.randomBytes(32);
  const raw = Buffer.concat([Buffer.from([1, 0, 0, 0, 1]), caseKey]);
  const code = Buffer.concat([raw, nodeCrypto.createHash("sha256").update(raw).digest().subarray(0, 4)]).toString("base64url");
  clearKeys();
  storeFromLink({ t: token.toString("base64url"), k: code, s: seed.toString("base64url") });
  setSession({ csrf: "csrf-token-1", device_id: DEVICE_ID });
  state.pub = pub;
  return { seed, key, pub, code, caseKey };
}

const REPORTER = "aa".repeat(32);
const OTHER = "0b".repeat(32);
const DEVICE_ID = "c0ffee".padEnd(32, "0");
const s = (text) => new A.ImmutableString(text);

/** The change ReportDocument::prepare_edit makes for `edits`, by `actor` at `time`. */
function prepareChange(doc, edits, { actor, time }) {
  const after = A.change(A.clone(doc, { actor }), { time }, (d) => {
    for (const e of edits) {
      if (e.op === "set_status") {
        d.review.status = s(e.status);
        d.review.note = s(e.note);
        d.review.reviewer = s(DEVICE_ID);
        d.review.reviewed_at = s(new Date(time).toISOString().replace("Z", "+00:00"));
      } else if (e.op === "set_title") {
        d.title = s(e.title);
      } else throw new Error(`the fake server cannot prepare ${e.op}`);
    }
  });
  return Buffer.from(A.getLastLocalChange(after));
}

function answerOf(doc) {
  return { report: { id: "r1", title: doc.title.toString(), review: { status: doc.review.status.toString() }, tags: Object.keys(doc.tags) }, heads: A.getHeads(doc), objects: { review: A.getObjectId(doc.review), tags: A.getObjectId(doc.tags) } };
}

/**
 * A fake server holding one report: `commitStatuses` are the statuses of
 * successive commits (a 409 also moves the report on, as another tab's
 * edit would); `tamper(edits, actor, doc)` returns what prepare answers
 * instead of the honest change.
 */
function fakeServer(commitStatuses, { tamper } = {}) {
  const requests = [];
  let doc = A.change(A.init({ actor: REPORTER }), { time: 1463805600000 }, (d) => {
    d.title = s("Arrest at the bus stop");
    d.review = { status: s("unverified"), note: s("") };
    d.tags = { arrest: true };
  });
  const actor = () => toHex(state.pub);
  globalThis.fetch = async (url, init) => {
    requests.push({ url, ...init });
    const body = JSON.parse(init.body ?? "{}");
    if (url.endsWith("/prepare")) {
      const honest = prepareChange(doc, body.edits, { actor: actor(), time: Date.now() });
      const answer = tamper ? tamper(body.edits, actor(), doc, honest) : { change: honest };
      const bytes = Buffer.from(answer.change);
      return Response.json({ change: bytes.toString("base64"), hash: answer.hash ?? A.decodeChange(bytes).hash });
    }
    if (url.endsWith("/commit")) {
      const status = commitStatuses.shift() ?? 200;
      if (status === 409) doc = A.change(A.clone(doc, { actor: OTHER }), (d) => (d.title = s("moved on")));
      if (status !== 200) return Response.json({ error: `refused with ${status}` }, { status });
      return Response.json({ ...answerOf(doc), change: body.change, sig: body.sig });
    }
    if (url.endsWith("/reports/r1")) return Response.json(answerOf(doc));
    return Response.json({ error: "not found" }, { status: 404 });
  };
  return { requests, shown: () => answerOf(doc) };
}

const edits = [{ op: "set_status", status: "verified", note: "two witnesses" }];

test("an edit is prepared, checked, signed with the session key over the change domain, and committed with the CSRF header", async () => {
  const { key, seed, code, caseKey } = login();
  const { requests, shown } = fakeServer([200]);
  const answer = await applyEdits("r1", edits, shown());
  assert.deepEqual(requests.map((r) => r.url), ["/web/api/reports/r1/prepare", "/web/api/reports/r1/commit"]);
  for (const r of requests) {
    assert.equal(r.method, "POST");
    assert.equal(r.headers["X-Fieldsync-CSRF"], "csrf-token-1");
    assert.equal(r.headers["Content-Type"], "application/json");
    for (const secret of [code, seed.toString("base64url"), seed.toString("base64"), seed.toString("hex"), caseKey.toString("hex"), caseKey.toString("base64")]) {
      assert.ok(!r.body.includes(secret) && !r.url.includes(secret), "a secret went into a request");
    }
  }
  assert.deepEqual(JSON.parse(requests[0].body), { edits });
  // The hash Automerge gives the change: SHA-256 over the chunk from its type byte on.
  const change = Buffer.from(answer.change, "base64");
  const hash = nodeCrypto.createHash("sha256").update(change.subarray(8)).digest();
  assert.equal(hash.toString("hex"), A.decodeChange(change).hash);
  const message = Buffer.concat([Buffer.from("fieldsync change v1\0", "latin1"), hash]);
  const sig = Buffer.from(answer.sig, "base64");
  assert.equal(sig.length, 64);
  assert.equal(nodeCrypto.verify(null, message, nodeCrypto.createPublicKey(key), sig), true);
});

test("a 409 loads the report again, prepares, checks and signs again once; a second 409 is an error that says to reload", async () => {
  login();
  let server = fakeServer([409, 200]);
  const answer = await applyEdits("r1", edits, server.shown());
  assert.deepEqual(server.requests.map((r) => r.url.split("/").pop()), ["prepare", "commit", "r1", "prepare", "commit"]);
  // It builds on the report as loaded again after the 409, not as first shown.
  assert.deepEqual(A.decodeChange(Buffer.from(answer.change, "base64")).deps, answer.heads);

  server = fakeServer([409, 409, 200]);
  await assert.rejects(applyEdits("r1", edits, server.shown()), /kept changing.*reload/);
  assert.equal(server.requests.length, 5);
});

test("a refusal keeps the server's words; no session key means no request", async () => {
  login();
  const { shown } = fakeServer([422]);
  await assert.rejects(applyEdits("r1", edits, shown()), (e) => e.status === 422 && /refused with 422/.test(e.message));
  clearKeys();
  const { requests } = fakeServer([200]);
  await assert.rejects(applyEdits("r1", edits, shown()), /no session key/);
  assert.equal(requests.length, 0);
});

// What a compromised server (or anyone on a plain-http path) could answer
// to `prepare` instead of the change for the edits asked.
const HOSTILE = {
  "a change that also touches another field": [/touches a field the edit does not \(title\)/, (e, actor, doc) => ({
    change: A.getLastLocalChange(
      A.change(A.clone(doc, { actor }), { time: Date.now() }, (d) => {
        d.review.status = s("verified");
        d.review.note = s("two witnesses");
        d.review.reviewer = s(DEVICE_ID);
        d.review.reviewed_at = s(new Date().toISOString().replace("Z", "+00:00"));
        d.title = s("Nothing happened");
      }),
    ),
  })],
  "the change for another edit": [/another value to review.status/, (e, actor, doc) => ({ change: prepareChange(doc, [{ op: "set_status", status: "disputed", note: "planted" }], { actor, time: Date.now() }) })],
  "a change on other dependencies": [/does not build on the version of the report this page shows/, (e, actor, doc) => ({ change: prepareChange(A.change(A.clone(doc, { actor: OTHER }), (d) => (d.title = s("unseen"))), e, { actor, time: Date.now() }) })],
  "a change by another actor": [/not made by this session's key/, (e, actor, doc) => ({ change: prepareChange(doc, e, { actor: OTHER, time: Date.now() }) })],
  "a change made at another time": [/time is not now/, (e, actor, doc) => ({ change: prepareChange(doc, e, { actor, time: Date.now() - 7 * 86400 * 1000 }) })],
  "a hash that is not the change's": [/different hash than its change's bytes/, (e, actor, doc, honest) => ({ change: honest, hash: A.decodeChange(prepareChange(doc, [{ op: "set_title", title: "x" }], { actor, time: Date.now() })).hash })],
  "a change whose bytes were altered": [/checksum does not match/, (e, actor, doc, honest) => {
    const bytes = Buffer.from(honest);
    bytes[bytes.indexOf(Buffer.from("two witnesses"))] ^= 0x20;
    return { change: bytes, hash: A.decodeChange(honest).hash };
  }],
};

for (const [name, [reason, tamper]] of Object.entries(HOSTILE)) {
  test(`${name} is refused in the page: nothing is signed or committed`, async () => {
    login();
    const { requests, shown } = fakeServer([200], { tamper });
    await assert.rejects(applyEdits("r1", edits, shown()), (e) => e.name === "ChangeRefused" && /nothing was signed/.test(e.message) && reason.test(e.message));
    assert.deepEqual(requests.map((r) => r.url.split("/").pop()), ["prepare"]);
  });
}
