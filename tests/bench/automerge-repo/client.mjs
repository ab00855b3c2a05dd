// One device: a Repo with no storage of its own and a WebSocket connection
// to the sync server, holding the documents gen.mjs made for it.
//
//   node client.mjs URL DIR PEER_ID
//
// It reads its documents from DIR, prints "ready" and waits for "go" on
// stdin, so that node's start-up and file reads stay off the clock. On "go"
// it connects and hands every document to its Repo, which announces them to
// the server and syncs them. It stays connected until stdin closes: only the
// checker, reading the server's storage, decides when the server has them.

import fs from "node:fs"
import path from "node:path"
import readline from "node:readline"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const [url, dir, peerId] = process.argv.slice(2)
if (peerId === undefined) {
  console.error("usage: node client.mjs URL DIR PEER_ID")
  process.exit(2)
}

const documents = fs
  .readdirSync(dir)
  .map((documentId) => [documentId, new Uint8Array(fs.readFileSync(path.join(dir, documentId)))])

let repo
const input = readline.createInterface({ input: process.stdin })
input.on("line", (line) => {
  if (line.trim() !== "go" || repo !== undefined) return
  repo = new Repo({
    network: [new WebSocketClientAdapter(url)],
    peerId,
    // A device shares everything it holds with the server.
    sharePolicy: async () => true,
  })
  for (const [documentId, binary] of documents) {
    repo.import(binary, { docId: documentId })
  }
})
input.on("close", () => process.exit(0))
console.log("ready")
