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

const { setSession } = await import("../../../server/web/api.js");
const { storeFromLink, clearKeys } = await import("../../../server/web/keys.js");
const { applyEdits } = await import("../../../server/web/review.js");

function nodeKeyFromSeed(seed) {
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  return nodeCrypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" });
}

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
  setSession({ csrf: "csrf-token-1" });
  return { seed, key, pub, code, caseKey };
}

/** A fake server: `commitStatuses` are the statuses of successive commits. */
function fakeServer(commitStatuses) {
  const requests = [];
  let prepares = 0;
  globalThis.fetch = async (url, init) => {
    requests.push({ url, ...init });
    const body = JSON.parse(init.body ?? "{}");
    if (url.endsWith("/prepare")) {
      prepares += 1;
      const change = Buffer.from(`change ${prepares} ${JSON.stringify(body.edits)}`);
      const hash = nodeCrypto.createHash("sha256").update(change).digest("hex");
      return Response.json({ change: change.toString("base64"), hash });
    }
    if (url.endsWith("/commit")) {
      const status = commitStatuses.shift() ?? 200;
      if (status !== 200) return Response.json({ error: `refused with ${status}` }, { status });
      return Response.json({ report: { id: "r1", review: { status: "verified" } }, change: body.change, sig: body.sig });
    }
    return Response.json({ error: "not found" }, { status: 404 });
  };
  return requests;
}

const edits = [{ op: "set_status", status: "verified", note: "two witnesses" }];

test("an edit is prepared, signed with the session key over the change domain, and committed with the CSRF header", async () => {
  const { key, seed, code, caseKey } = login();
  const requests = fakeServer([200]);
  const answer = await applyEdits("r1", edits);
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
  const change = Buffer.from(answer.change, "base64");
  const hash = nodeCrypto.createHash("sha256").update(change).digest();
  const message = Buffer.concat([Buffer.from("fieldsync change v1\0", "latin1"), hash]);
  const sig = Buffer.from(answer.sig, "base64");
  assert.equal(sig.length, 64);
  assert.equal(nodeCrypto.verify(null, message, nodeCrypto.createPublicKey(key), sig), true);
});

test("a 409 prepares and signs again once; a second 409 is an error that says to reload", async () => {
  login();
  let requests = fakeServer([409, 200]);
  const answer = await applyEdits("r1", edits);
  assert.deepEqual(requests.map((r) => r.url.split("/").pop()), ["prepare", "commit", "prepare", "commit"]);
  assert.match(Buffer.from(answer.change, "base64").toString(), /^change 2 /);

  requests = fakeServer([409, 409, 200]);
  await assert.rejects(applyEdits("r1", edits), /kept changing.*reload/);
  assert.equal(requests.length, 4);
});

test("a refusal keeps the server's words; no session key means no request", async () => {
  login();
  fakeServer([422]);
  await assert.rejects(applyEdits("r1", edits), (e) => e.status === 422 && /refused with 422/.test(e.message));
  clearKeys();
  const requests = fakeServer([200]);
  await assert.rejects(applyEdits("r1", edits), /no session key/);
  assert.equal(requests.length, 0);
});
