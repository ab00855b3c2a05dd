// Automerge's wasm, compiled once per page. The page starts this at once
// (ui/early.mjs, a tiny module of its own), so the 3.6 MB engine compiles
// off the main thread while the app's modules load, instead of after them;
// report.mjs's initAutomerge() then only instantiates it. No DOM; node
// tests pass the wasm bytes to initAutomerge and never call this.

const URL_OF_WASM = new URL('../vendor/automerge/automerge.wasm', import.meta.url)

let compiled = null

/** → a WebAssembly.Module of vendor/automerge/automerge.wasm (the same promise every call). */
export function automergeWasm() {
  compiled ??= compile().catch((err) => {
    compiled = null // a later call tries again (say the first ran offline with no service worker yet)
    throw err
  })
  return compiled
}

async function compile() {
  if (typeof WebAssembly.compileStreaming === 'function') {
    try {
      return await WebAssembly.compileStreaming(globalThis.fetch(URL_OF_WASM))
    } catch {
      // A server that does not send application/wasm: compile from the bytes below.
    }
  }
  const response = await globalThis.fetch(URL_OF_WASM)
  if (!response.ok) throw new Error(`the Automerge engine did not load (HTTP ${response.status}); reload the app`)
  return WebAssembly.compile(await response.arrayBuffer())
}
