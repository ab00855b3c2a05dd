// Reads the sync server's storage directory, as the server's own storage
// adapter lays it out, and counts the documents whose stored heads equal the
// heads the clients hold. It only reads: the server is still running.
//
//   node checker.mjs STORAGE_DIR EXPECTED_JSON
//
// Prints "ready", then answers each "check" line on stdin with one JSON line,
// {"stored": N, "total": M}. A document found complete is not read again:
// stored Automerge history only grows.

import fs from "node:fs"
import readline from "node:readline"
import * as A from "@automerge/automerge"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const [storageDir, expectedPath] = process.argv.slice(2)
if (expectedPath === undefined) {
  console.error("usage: node checker.mjs STORAGE_DIR EXPECTED_JSON")
  process.exit(2)
}

const expected = JSON.parse(fs.readFileSync(expectedPath, "utf8"))
const pending = new Set(Object.keys(expected))
const total = pending.size
const storage = new NodeFSStorageAdapter(storageDir)

/** Whether the server's stored copy of `documentId` has the clients' heads. */
async function stored(documentId) {
  let chunks
  try {
    chunks = await storage.loadRange([documentId])
  } catch {
    // A chunk deleted by the server's compaction between listing and
    // reading: look again on the next check.
    return false
  }
  const history = chunks.filter(
    ({ key, data }) => data !== undefined && (key[1] === "snapshot" || key[1] === "incremental"),
  )
  if (history.length === 0) return false
  let doc = A.init()
  try {
    for (const { data } of history) doc = A.loadIncremental(doc, data)
  } catch {
    // A file the server is still writing.
    return false
  }
  return sameHeads(A.getHeads(doc), expected[documentId])
}

function sameHeads(a, b) {
  if (a.length !== b.length) return false
  const sorted = [...b].sort()
  return [...a].sort().every((head, i) => head === sorted[i])
}

async function check() {
  const ids = [...pending]
  // A bounded number of reads in flight: the server shares these two cores.
  for (let i = 0; i < ids.length; i += 64) {
    const batch = ids.slice(i, i + 64)
    const done = await Promise.all(batch.map(stored))
    batch.forEach((id, j) => done[j] && pending.delete(id))
  }
  return { stored: total - pending.size, total }
}

let queue = Promise.resolve()
const input = readline.createInterface({ input: process.stdin })
input.on("line", (line) => {
  if (line.trim() !== "check") return
  queue = queue.then(async () => console.log(JSON.stringify(await check())))
})
input.on("close", () => queue.then(() => process.exit(0)))
console.log("ready")
