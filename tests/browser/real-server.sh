#!/usr/bin/env bash
# Runs review.mjs against a real `fieldsync serve`, the way the Rust scenario
# test (tests/scenarios/web_review.rs) does, with the CLI only: a case, a
# coordinator and a reporter device, the case key shared, reports recorded
# on the reporter (one with a photo, one hostile) and synced, a web-login
# link from the coordinator, the browser scenario, and then the reporter's
# sync must bring the status the browser set.
#
#   tests/browser/real-server.sh path/to/fieldsync [screenshot folder]
#
# Prints review.mjs's JSON and a last line "real-server: ok" or exits non-zero.
set -euo pipefail
bin=$(realpath "$1")
shots=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port"
"$bin" serve --data "$work/data" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -s "$url/" >/dev/null 2>&1 && break; sleep 0.1; done

admin=("$bin" admin --data "$work/data")
coord=("$bin" --home "$work/coord")
rep=("$bin" --home "$work/rep")
"${admin[@]}" case create almaty >/dev/null
"${coord[@]}" device init >/dev/null
"${coord[@]}" device enroll --server "$url" --token "$("${admin[@]}" invite --case almaty --role coordinator --expires 1h)" >/dev/null
"${rep[@]}" device init >/dev/null
"${rep[@]}" device enroll --server "$url" --token "$("${admin[@]}" invite --case almaty --role reporter --expires 1h)" >/dev/null
code=$("${coord[@]}" key new --case almaty 2>/dev/null)
"${rep[@]}" key add --case almaty "$code" >/dev/null

# A real PNG (a gradient), made without any image library.
python3 - "$work/bus-stop.png" <<'PY'
import struct, sys, zlib
w, h = 120, 80
raw = b"".join(b"\0" + bytes(v for x in range(w) for v in (x * 2 % 256, y * 3 % 256, (x ^ y) % 256)) for y in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
hostile='<img src=x onerror=alert(1)>'
script='<script>alert(2)</script>'
cp "$work/bus-stop.png" "$work/$hostile.png"

report=$("${rep[@]}" record --case almaty --title "Arrest at the bus stop" --at 2016-05-21T10:40:00+06:00 --approximate \
  --place "Bus stop" --lat 43.25 --lon 76.95 --text "Aleksey was arrested." --tag arrest \
  --person "Tulegen Shakirov:officer:car kz380KP02" --attach "$work/bus-stop.png")
"${rep[@]}" edit "$report" --timeline "2016-05-21T13:00:00+06:00 released" >/dev/null
"${rep[@]}" record --case almaty --title "Rally dispersed" --at 2016-05-22T18:00:00+06:00 --place "Republic Square" --lat 43.238 --lon 76.945 --tag rally >/dev/null
bad=$("${rep[@]}" record --case almaty --title "$hostile" --at 2016-05-23T09:00:00+06:00 --place "$script" \
  --text "$script $hostile" --tag "$hostile" --person "$hostile:officer:$script" --attach "$work/$hostile.png")
"${rep[@]}" edit "$bad" --timeline "2016-05-23T09:05:00+06:00 $hostile" >/dev/null
"${rep[@]}" sync >/dev/null

image_sha=$(sha256sum "$work/bus-stop.png" | cut -d' ' -f1)
python3 - "$work/expect.json" "$report" "$bad" "$image_sha" "$code" "$hostile" "$script" <<'PY'
import json, sys
out, report, bad, sha, code, hostile, script = sys.argv[1:]
json.dump({
    "titles": ["Arrest at the bus stop", "Rally dispersed", hostile],
    "filter": {"query": {"tag": "arrest"}, "includes": ["Arrest at the bus stop"], "excludes": ["Rally dispersed"], "every_row_has_tag": "arrest"},
    "report_id": report, "report_title": "Arrest at the bus stop",
    "image_sha256": sha, "image_name": "bus-stop.png",
    "secrets": [code],
    "hostile": {"report_id": bad, "title": hostile, "strings": [hostile, script]},
    "set_status": {"status": "verified", "note": "two witnesses (browser)"},
}, open(out, "w"), indent=2)
PY
link=$("${coord[@]}" web-login --json | python3 -c "import json,sys; print(json.load(sys.stdin)['link'])")
status=0
FIELDSYNC_URL="$url" FIELDSYNC_LOGIN_LINK="$link" FIELDSYNC_EXPECT="$work/expect.json" FIELDSYNC_SCREENSHOTS="$shots" \
  node "$here/review.mjs" || status=$?
if [ "$status" -ne 0 ]; then echo "real-server: review.mjs failed ($status)" >&2; exit "$status"; fi

"${rep[@]}" sync >/dev/null
shown=$("${rep[@]}" show "$report" --json)
python3 - "$shown" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
review = d["report"]["review"]
assert review["status"] == "verified", review
assert review["note"] == "two witnesses (browser)", review
last = d["history"][-1]
assert last.get("via_web_session") is True and last.get("signature_verified") is True, last
print("reporter sees:", json.dumps(review), "by", last.get("author"))
PY
if grep -q -- "$code" "$work/serve.log"; then echo "real-server: the case key is in the server log" >&2; exit 1; fi
echo "real-server: ok"
