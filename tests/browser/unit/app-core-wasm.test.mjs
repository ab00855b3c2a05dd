// The Automerge engine compiled ahead (lib/wasm.mjs, started by ui/early.mjs
// before the app's modules load): it compiles from a streamed response, or
// from the bytes when the server's content type rules streaming out, shares
// one compilation between callers, and report.mjs instantiates the compiled
// module.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const APP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../server/app");
const WASM = readFileSync(path.join(APP, "vendor/automerge/automerge.wasm"));

test("automergeWasm compiles once from the app's own URL; initAutomerge takes the compiled module", async () => {
  const asked = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (url) => {
    asked.push(String(url));
    // No application/wasm: streaming compilation refuses, the bytes path compiles.
    return new Response(WASM, { status: 200, headers: { "content-type": asked.length === 1 ? "application/wasm" : "application/octet-stream" } });
  };
  try {
    const { automergeWasm } = await import("../../../server/app/lib/wasm.mjs");
    const first = automergeWasm();
    assert.equal(automergeWasm(), first, "one compilation shared by every caller");
    const module = await first;
    assert.ok(module instanceof WebAssembly.Module);
    assert.ok(asked.length >= 1 && asked.every((u) => u.endsWith("/vendor/automerge/automerge.wasm")), asked.join());

    const { initAutomerge, A } = await import("../../../server/app/lib/report.mjs");
    await initAutomerge(module);
    const doc = A.change(A.init(), (d) => {
      d.title = "compiled ahead";
    });
    assert.equal(A.load(A.save(doc)).title, "compiled ahead");
  } finally {
    globalThis.fetch = realFetch;
  }
});

test("a failed fetch is not kept: the next call tries again", async () => {
  const realFetch = globalThis.fetch;
  let calls = 0;
  globalThis.fetch = async () => {
    calls++;
    if (calls <= 2) return new Response("offline", { status: 503 });
    return new Response(WASM, { status: 200, headers: { "content-type": "application/wasm" } });
  };
  try {
    // A fresh copy of the module (its own memo).
    const { automergeWasm } = await import(`../../../server/app/lib/wasm.mjs?again=${Date.now()}`);
    await assert.rejects(automergeWasm(), /HTTP 503/);
    assert.ok((await automergeWasm()) instanceof WebAssembly.Module);
  } finally {
    globalThis.fetch = realFetch;
  }
});
