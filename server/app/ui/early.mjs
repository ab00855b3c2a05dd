// Runs first, on its own (index.html loads it async, before the app's
// modules): starts compiling the Automerge engine, the app's one big file,
// in parallel with loading the rest, so the form is usable sooner.

import { automergeWasm } from "../lib/wasm.mjs";

if (globalThis.isSecureContext && globalThis.WebAssembly) {
  // Errors surface where the engine is awaited (Device.open), in words.
  automergeWasm().catch(() => {});
}
