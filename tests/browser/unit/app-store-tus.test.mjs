// The app's resumable upload client (server/app/lib/tus.mjs) against an
// in-process server that behaves as server/src/uploads.rs documents
// (offsets, 409 on a wrong offset, bytes of a cut body kept, 422 when the
// bytes do not hash to the blob id, 423, 413, 507), with cuts injected
// anywhere: it must resume from the server's offset, send no byte twice
// beyond the PATCH that was cut, report progress, and fail with typed
// errors where retrying cannot help. Also: through requests.mjs's Client,
// every upload request is signed over an empty body.
import { test } from "node:test";
import assert from "node:assert/strict";
import nodeCrypto from "node:crypto";

import { uploadBlob, partsSource, uploadMetadata, TusError, DEFAULT_CHUNK } from "../../../server/app/lib/tus.mjs";

const sha256hex = (b) => nodeCrypto.createHash("sha256").update(b).digest("hex");
const REPORT = "0123456789abcdef0123456789abcdef";
const blobOf = (n) => Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) % 256);
const noSleep = async () => {};

/**
 * A tus server in memory. `fault(req)` may return a Response (answered
 * instead), throw (the network failed before the server saw it), or
 * return {cutAfter: k} for a PATCH (the server keeps k bytes of the body
 * and the client gets a network error), or {loseAnswer: true} (the server
 * does it all, the answer is lost).
 */
function tusServer({ maxBlob = 1 << 30, fault = () => null } = {}) {
  const uploads = new Map();
  const log = [];
  let next = 1;
  const json = (status, error, headers = {}) =>
    new Response(JSON.stringify({ error, server_time: 0 }), { status, headers: { "content-type": "application/json", ...headers } });
  const fetch = async (method, path, { headers = {}, body } = {}) => {
    const h = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    const req = { method, path, headers: h, body: body ?? null };
    log.push(req);
    assert.equal(h["tus-resumable"], "1.0.0", `${method} ${path} carries Tus-Resumable`);
    const injected = fault(req, log);
    if (injected instanceof Response) return injected;
    if (method === "POST" && path === "/v1/uploads") {
      const length = Number(h["upload-length"]);
      const meta = Object.fromEntries(h["upload-metadata"].split(",").map((p) => p.split(" ")).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));
      if (length > maxBlob) return json(413, `the attachment is ${length} bytes, over this server's limit`);
      for (const u of uploads.values()) {
        if (u.blob === meta.blob) return new Response(null, { status: 201, headers: { location: `/v1/uploads/${u.id}`, "upload-offset": String(u.bytes.length) } });
      }
      const id = `u${next++}`;
      uploads.set(id, { id, length, blob: meta.blob, report: meta.report, bytes: new Uint8Array(0), completed: false });
      if (injected?.loseAnswer) throw new TypeError("Failed to fetch");
      return new Response(null, { status: 201, headers: { location: `http://127.0.0.1:1/v1/uploads/${id}`, "upload-offset": "0" } });
    }
    const id = path.replace("/v1/uploads/", "");
    const u = uploads.get(id);
    if (!u) return json(404, "there is no upload with this id for this device");
    if (method === "HEAD") return new Response(null, { status: 200, headers: { "upload-offset": String(u.bytes.length), "upload-length": String(u.length) } });
    if (method === "PATCH") {
      assert.equal(h["content-type"], "application/offset+octet-stream");
      const offset = Number(h["upload-offset"]);
      if (u.completed) return offset === u.length ? new Response(null, { status: 204, headers: { "upload-offset": String(u.length) } }) : json(409, "offset", { "upload-offset": String(u.length) });
      if (offset !== u.bytes.length) return json(409, `Upload-Offset is ${offset} but the upload is at offset ${u.bytes.length}`, { "upload-offset": String(u.bytes.length) });
      let bytes = body ?? new Uint8Array(0);
      if (bytes.length > u.length - u.bytes.length) return json(413, "this PATCH carries more than the upload lacks");
      if (injected?.corrupt) bytes = bytes.map((b, i) => (i === 0 ? b ^ 1 : b));
      if (injected?.cutAfter !== undefined) bytes = bytes.subarray(0, injected.cutAfter);
      u.bytes = Buffer.concat([u.bytes, bytes]);
      if (injected?.cutAfter !== undefined) throw new TypeError("network connection lost");
      if (u.bytes.length === u.length) {
        if (sha256hex(u.bytes) !== u.blob) {
          uploads.delete(id);
          return json(422, "the uploaded bytes do not match the blob id; upload again");
        }
        u.completed = true;
      }
      if (injected?.loseAnswer) throw new TypeError("Failed to fetch");
      return new Response(null, { status: 204, headers: { "upload-offset": String(u.bytes.length) } });
    }
    return json(405, "method");
  };
  const received = () => log.filter((r) => r.method === "PATCH").reduce((n, r) => n + (r.body?.length ?? 0), 0);
  return { fetch, uploads, log, received };
}

function run(server, blob, extra = {}) {
  const states = [];
  const progress = [];
  const promise = uploadBlob({
    signedFetch: server.fetch,
    reportId: REPORT,
    blobId: sha256hex(blob),
    bytes: blob,
    state: null,
    saveState: async (s) => states.push(s),
    onProgress: (p) => progress.push(p),
    sleep: noSleep,
    ...extra,
  });
  return { promise, states, progress };
}

test("Upload-Metadata is `blob <b64>,report <b64>` as the server parses it", () => {
  const blob = "a".repeat(64);
  assert.equal(uploadMetadata(blob, REPORT), `blob ${Buffer.from(blob).toString("base64")},report ${Buffer.from(REPORT).toString("base64")}`);
  assert.throws(() => uploadMetadata("A".repeat(64), REPORT), TypeError);
  assert.throws(() => uploadMetadata(blob, "x"), TypeError);
});

test("a clean upload: create, PATCHes of at most 1 MiB, progress to the end, the Location saved", async () => {
  const server = tusServer();
  const blob = blobOf(2.5 * DEFAULT_CHUNK);
  const { promise, states, progress } = run(server, blob);
  const done = await promise;
  assert.equal(done.size, blob.length);
  const u = [...server.uploads.values()][0];
  assert.ok(u.completed);
  assert.deepEqual(new Uint8Array(u.bytes), blob);
  // The absolute Location became a path (requests are signed over the path).
  assert.deepEqual(states, [{ location: "/v1/uploads/u1" }]);
  const patches = server.log.filter((r) => r.method === "PATCH");
  assert.deepEqual(patches.map((r) => r.body.length), [DEFAULT_CHUNK, DEFAULT_CHUNK, DEFAULT_CHUNK / 2]);
  assert.equal(server.received(), blob.length, "no byte sent twice");
  // Creation's Upload-Offset replaces the HEAD right after it.
  assert.deepEqual(server.log.map((r) => r.method), ["POST", "PATCH", "PATCH", "PATCH"]);
  assert.deepEqual(progress.at(-1), { sent: blob.length, total: blob.length });
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i].sent >= progress[i - 1].sent);
  const post = server.log[0];
  assert.equal(post.headers["upload-length"], String(blob.length));
  assert.equal(post.body.length, 0);
});

test("a PATCH cut mid-body resumes from the server's offset (HEAD); only the cut part is sent again", async () => {
  let patches = 0;
  const server = tusServer({
    fault: (req) => (req.method === "PATCH" && ++patches === 2 ? { cutAfter: 300_000 } : null),
  });
  const blob = blobOf(3 * DEFAULT_CHUNK + 17);
  const { promise } = run(server, blob);
  await promise;
  const u = [...server.uploads.values()][0];
  assert.ok(u.completed);
  assert.deepEqual(new Uint8Array(u.bytes), blob);
  // Sent twice: only the part of the cut PATCH the server did not keep.
  assert.equal(server.received(), blob.length + (DEFAULT_CHUNK - 300_000));
  const heads = server.log.filter((r) => r.method === "HEAD");
  assert.equal(heads.length, 1);
  const afterCut = server.log[server.log.indexOf(heads[0]) + 1];
  assert.equal(afterCut.headers["upload-offset"], String(DEFAULT_CHUNK + 300_000));
});

test("a lost answer to a PATCH (the server has the bytes) is not sent twice; a lost answer to the creation reuses the upload", async () => {
  let patches = 0;
  let posts = 0;
  const server = tusServer({
    fault: (req) => {
      if (req.method === "POST" && ++posts === 1) return { loseAnswer: true };
      if (req.method === "PATCH" && ++patches === 1) return { loseAnswer: true };
      return null;
    },
  });
  const blob = blobOf(2 * DEFAULT_CHUNK);
  const { promise } = run(server, blob);
  await promise;
  assert.equal(server.uploads.size, 1, "one upload on the server");
  assert.equal(server.received(), blob.length);
  assert.deepEqual(new Uint8Array([...server.uploads.values()][0].bytes), blob);
});

test("a tab closed mid-upload: the next sync resumes from the saved Location and the server's offset", async () => {
  let patches = 0;
  const abort = new Error("tab closed");
  abort.name = "AbortError";
  const server = tusServer({
    fault: (req) => {
      if (req.method === "PATCH" && ++patches === 3) throw abort;
      return null;
    },
  });
  const blob = blobOf(4 * DEFAULT_CHUNK);
  const first = run(server, blob);
  await assert.rejects(first.promise, (e) => e === abort);
  const saved = first.states.at(-1);
  assert.ok(saved.location);
  const second = run(server, blob, { state: saved });
  await second.promise;
  assert.equal(server.uploads.size, 1);
  // The log counts the PATCH the tab died in (it never reached the server); nothing else twice.
  assert.equal(server.received(), blob.length + DEFAULT_CHUNK);
  assert.deepEqual(second.progress[0], { sent: 2 * DEFAULT_CHUNK, total: blob.length }, "progress starts at the server's offset");
  const resumed = server.log.filter((r) => r.method !== "PATCH" || r.body.length);
  assert.ok(resumed.some((r) => r.method === "HEAD"));
});

test("an expired upload (HEAD 404) is created again and the new Location saved", async () => {
  const server = tusServer();
  const blob = blobOf(1000);
  const { promise, states } = run(server, blob, { state: { location: "/v1/uploads/gone" } });
  await promise;
  assert.deepEqual(states, [null, { location: "/v1/uploads/u1" }]);
});

test("a body altered on the way (422) is uploaded again when the copy here is whole; a damaged copy here is 'local_damaged'", async () => {
  let patches = 0;
  const server = tusServer({ fault: (req) => (req.method === "PATCH" && ++patches === 1 ? { corrupt: true } : null) });
  const blob = blobOf(5000);
  const { promise, states } = run(server, blob);
  await promise;
  assert.deepEqual(states, [{ location: "/v1/uploads/u1" }, null, { location: "/v1/uploads/u2" }]);
  assert.ok(server.uploads.get("u2").completed);

  const other = tusServer();
  const damaged = blob.slice();
  damaged[10] ^= 1;
  await assert.rejects(
    uploadBlob({ signedFetch: other.fetch, reportId: REPORT, blobId: sha256hex(blob), bytes: damaged, sleep: noSleep }),
    (e) => e instanceof TusError && e.code === "local_damaged" && e.retry === false,
  );
});

test("409 on an offset is resolved with HEAD; 423 waits and retries", async () => {
  let patches = 0;
  const server = tusServer({
    fault: (req) => {
      if (req.method !== "PATCH") return null;
      patches += 1;
      if (patches === 1) return new Response(JSON.stringify({ error: "another PATCH to this upload is in progress" }), { status: 423 });
      return null;
    },
  });
  const blob = blobOf(DEFAULT_CHUNK + 5);
  const sleeps = [];
  await run(server, blob, { sleep: async (ms) => sleeps.push(ms) }).promise;
  assert.equal(sleeps.length, 1, "one back-off after the 423");
  assert.ok([...server.uploads.values()][0].completed);
});

test("refusals that retrying cannot mend are typed errors with codes: 507, 413, 409 on creation, 403", async () => {
  const cases = [
    [507, "server_full", "the server's disk is full"],
    [413, "too_large", "over this device's quota"],
    [409, "conflict", "the report is not on the server yet; sync it first"],
    [403, "server", "forbidden"],
  ];
  for (const [status, code, message] of cases) {
    const server = tusServer({
      fault: (req) => (req.method === "POST" ? new Response(JSON.stringify({ error: message, server_time: 1 }), { status }) : null),
    });
    await assert.rejects(run(server, blobOf(100)).promise, (e) => {
      assert.ok(e instanceof TusError);
      assert.equal(e.code, code);
      assert.equal(e.status, status);
      assert.equal(e.retry, false);
      assert.equal(e.message, message, "the server's words");
      return true;
    });
    assert.equal(server.log.length, 1, `no retry after ${status}`);
  }
  // Over the server's per-blob limit: 413 from the real check, not injected.
  await assert.rejects(run(tusServer({ maxBlob: 10 }), blobOf(100)).promise, (e) => e.code === "too_large");
});

test("a network that never comes back gives up after 6 attempts without progress, as 'network'", async () => {
  let calls = 0;
  const server = tusServer({
    fault: () => {
      calls += 1;
      throw new TypeError("Failed to fetch");
    },
  });
  await assert.rejects(run(server, blobOf(100)).promise, (e) => e instanceof TusError && e.code === "network" && e.retry === true);
  assert.equal(calls, 6);
});

test("partsSource reads any range across stored parts, one part in memory at a time", async () => {
  const blob = blobOf(10_000);
  const sizes = [3000, 3000, 3000, 1000];
  const parts = [];
  let at = 0;
  for (const n of sizes) {
    parts.push(blob.slice(at, at + n));
    at += n;
  }
  const loads = [];
  const source = partsSource(sizes, async (i) => {
    loads.push(i);
    return parts[i];
  });
  assert.equal(source.size, 10_000);
  for (const [s, e] of [[0, 10_000], [2999, 3001], [5000, 9500], [9999, 10_000], [0, 1], [6000, 9000]]) {
    assert.deepEqual(await source.read(s, e), blob.subarray(s, e), `${s}..${e}`);
  }
  const server = tusServer();
  await uploadBlob({ signedFetch: server.fetch, reportId: REPORT, blobId: sha256hex(blob), source, sleep: noSleep, chunkSize: 4096 });
  assert.deepEqual(new Uint8Array([...server.uploads.values()][0].bytes), blob);
  // A missing part is a damaged local copy, not a network problem.
  const broken = partsSource(sizes, async (i) => (i === 2 ? undefined : parts[i]));
  await assert.rejects(
    uploadBlob({ signedFetch: tusServer().fetch, reportId: REPORT, blobId: sha256hex(blob), source: broken, sleep: noSleep }),
    (e) => e.code === "local_damaged",
  );
});

test("through requests.mjs's Client, every upload request is signed over an empty body", async () => {
  const requests = await import("../../../server/app/lib/requests.mjs");
  const identityMod = await import("../../../server/app/lib/identity.mjs");
  const { pkcs8, publicKey } = await identityMod.generateDeviceKey();
  const identity = await identityMod.DeviceIdentity.fromPkcs8(pkcs8);
  const server = tusServer();
  const verifyKey = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  const checked = [];
  const fetch = async (url, init) => {
    const u = new URL(url);
    const h = init.headers;
    const message = `${init.method}\n${u.pathname}${u.search}\n${h["x-fieldsync-timestamp"]}\n${h["x-fieldsync-nonce"]}\n${sha256hex(new Uint8Array(0))}`;
    const signed = Buffer.concat([Buffer.from("fieldsync request v1\0"), Buffer.from(message)]);
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, verifyKey, Buffer.from(h["x-fieldsync-signature"], "base64"), signed);
    checked.push([init.method, ok]);
    return server.fetch(init.method, u.pathname + u.search, { headers: h, body: init.body });
  };
  const client = new requests.Client({ server: "http://127.0.0.1:9", identity, fetch });
  const blob = blobOf(DEFAULT_CHUNK + 100);
  await uploadBlob({ client, reportId: REPORT, blobId: sha256hex(blob), bytes: blob, sleep: noSleep });
  assert.deepEqual(checked, [["POST", true], ["PATCH", true], ["PATCH", true]]);
});
