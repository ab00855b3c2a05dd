#!/usr/bin/env bash
# Makes the attachment vectors in this folder with the real `fieldsync` CLI:
# a throwaway server and coordinator device, two case-key epochs, and files
# attached with `record --attach`; the sealed blobs are copied from the
# device home's outbox/ before any sync. The unit tests decrypt them with
# the page's own code (server/web/crypto.js).
#
#   tests/browser/vectors/make-cli-vectors.sh path/to/fieldsync
#
# Plaintext byte i of each file is (7*i + 3) mod 256, so a test regenerates
# it instead of shipping it.
set -euo pipefail
bin=$(realpath "$1")
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
"$bin" serve --data "$work/data" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
"$bin" admin --data "$work/data" case create vectors >/dev/null
token=$("$bin" admin --data "$work/data" invite --case vectors --role coordinator --expires 1h)
dev=("$bin" --home "$work/home")
"${dev[@]}" device init >/dev/null
"${dev[@]}" device enroll --server "http://127.0.0.1:$port" --token "$token" >/dev/null
"${dev[@]}" key new --case vectors >/dev/null
"${dev[@]}" key rotate --case vectors >/dev/null

pattern() { python3 -c "import sys; sys.stdout.buffer.write(bytes((7*i+3)%256 for i in range($1)))"; }
entries=()
for spec in "empty.bin:0" "one-chunk-exactly.bin:65536" "three-chunks.bin:150000"; do
  name=${spec%%:*}; len=${spec##*:}
  pattern "$len" >"$work/$name"
  id=$("${dev[@]}" record --case vectors --title "vector $name" --at 2016-05-21T10:40:00+06:00 --attach "$work/$name")
  entries+=("$id:$name:$len")
done
"${dev[@]}" timeline --case vectors --json >"$work/timeline.json"
codes=$("${dev[@]}" key show --case vectors | paste -sd, -)
python3 - "$work" "$out" "$codes" "${entries[@]}" <<'PY'
import hashlib, json, os, shutil, sys
work, out, codes, *entries = sys.argv[1:]
reports = {r["id"]: r for r in json.load(open(os.path.join(work, "timeline.json")))}
vectors = []
for entry in entries:
    rid, name, length = entry.split(":")
    att = reports[rid]["attachments"][0]
    blob = os.path.join(work, "home", "outbox", att["blob"])
    shutil.copy(blob, os.path.join(out, name + ".fsa"))
    plain = bytes((7 * i + 3) % 256 for i in range(int(length)))
    vectors.append({
        "file": name + ".fsa", "name": name, "plaintext_len": int(length),
        "plaintext_sha256": hashlib.sha256(plain).hexdigest(),
        "blob": att["blob"], "size": att["size"], "key_epoch": att["key_epoch"],
        "header": att["header"],
    })
json.dump({"made_by": "make-cli-vectors.sh (fieldsync record --attach)",
           "plaintext": "byte i = (7*i + 3) mod 256",
           "share_codes": codes.split(","), "vectors": vectors},
          open(os.path.join(out, "cli-vectors.json"), "w"), indent=2)
PY
echo "wrote $out/cli-vectors.json"
