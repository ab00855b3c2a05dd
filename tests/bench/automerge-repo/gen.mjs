// Makes every device's documents before the clock starts, as fieldsync's
// bench makes its replicas in process before it times the syncs: one
// Automerge document per report, created with a title and a description
// (one change), then `edits` appends to the description (one change each).
//
//   node gen.mjs OUT DEVICES REPORTS EDITS
//
// Writes OUT/<device>/<documentId> (each document saved whole, as a device
// would hold it after working offline) and OUT/expected.json, the heads of
// every document, which is what the server must end up storing.

import crypto from "node:crypto"
import fs from "node:fs"
import path from "node:path"
import * as A from "@automerge/automerge"
import { generateAutomergeUrl, parseAutomergeUrl } from "@automerge/automerge-repo"

const [out, devices, reports, edits] = process.argv.slice(2)
if (out === undefined || edits === undefined) {
  console.error("usage: node gen.mjs OUT DEVICES REPORTS EDITS")
  process.exit(2)
}

const expected = {}
for (let d = 0; d < Number(devices); d++) {
  const dir = path.join(out, String(d))
  fs.mkdirSync(dir, { recursive: true })
  // One actor per device, as each fieldsync device signs with its own key.
  const actor = crypto.randomBytes(16).toString("hex")
  for (let r = 0; r < Number(reports); r++) {
    const documentId = parseAutomergeUrl(generateAutomergeUrl()).documentId
    let doc = A.from(
      {
        case: "bench",
        title: `Report ${r}`,
        occurred_at: "2016-05-21T10:40:00+06:00",
        description: "Detained at the bus stop near the library.",
      },
      { actor },
    )
    for (let e = 0; e < Number(edits); e++) {
      doc = A.change(doc, (report) => {
        A.splice(report, ["description"], report.description.length, 0, ` Update ${e}.`)
      })
    }
    fs.writeFileSync(path.join(dir, documentId), A.save(doc))
    expected[documentId] = A.getHeads(doc)
  }
}
fs.writeFileSync(path.join(out, "expected.json"), JSON.stringify(expected))
