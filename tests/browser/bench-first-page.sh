#!/usr/bin/env bash
# First page of the review timeline for a case of N reports, against a real
# `fieldsync serve` (release build recommended): N reports imported from a
# generated CSV on a coordinator device and synced, then first-page.mjs.
#
#   tests/browser/bench-first-page.sh path/to/fieldsync 100000 /tmp/first-page.png [WORKDIR]
#
# With WORKDIR, the server data and the device are kept there and reused by
# the next run (the import and sync of 100,000 reports take minutes).
# Prints first-page.mjs's JSON ({ms, rows, reload_ms, ...}).
set -euo pipefail
bin=$(realpath "$1")
n=$2
shot=$3
work=${4:-}
keep=1
if [ -z "$work" ]; then work=$(mktemp -d); keep=0; fi
mkdir -p "$work"
here=$(cd "$(dirname "$0")" && pwd)
port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port"
"$bin" serve --data "$work/data" --listen "127.0.0.1:$port" >>"$work/serve.log" 2>&1 &
server=$!
cleanup() { kill $server 2>/dev/null; wait $server 2>/dev/null || true; if [ $keep -eq 0 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT
for _ in $(seq 100); do curl -s "$url/" >/dev/null 2>&1 && break; sleep 0.1; done
coord=("$bin" --home "$work/coord")
if [ ! -e "$work/ready-$n" ]; then
  "$bin" admin --data "$work/data" case create bench >/dev/null
  "${coord[@]}" device init >/dev/null
  "${coord[@]}" device enroll --server "$url" --token "$("$bin" admin --data "$work/data" invite --case bench --role coordinator --expires 1h)" >/dev/null
  "${coord[@]}" key new --case bench >/dev/null 2>&1
  python3 - "$work/reports.csv" "$n" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
tags = ["arrest", "rally", "detention", "police", "eviction"]
with open(path, "w") as f:
    f.write("id,title,date,place,latitude,longitude,description,tags\n")
    for i in range(n):
        day = 1 + (i * 365 // n)
        month, dom = 1 + (day - 1) // 31 % 12, 1 + (day - 1) % 28
        f.write(f'{i},Detention {i},{dom:02}.{month:02}.2016 {8 + i % 12:02}:{i % 60:02},Republic square,43.{i % 10000:04},76.{(i * 7) % 10000:04},"Held at the district department, released after {1 + i % 5} hours.",{tags[i % 5]};{tags[(i + 2) % 5]}\n')
PY
  echo "importing $n reports…" >&2
  "${coord[@]}" import --case bench --timezone +06:00 "$work/reports.csv" >/dev/null
  echo "syncing them to the server…" >&2
  "${coord[@]}" sync >/dev/null
  touch "$work/ready-$n"
else
  # The device remembers the server by URL: point it at this run's port.
  echo "reusing $work" >&2
fi
link=$("${coord[@]}" web-login --json | python3 -c "import json,sys; print(json.load(sys.stdin)['link'])")
link="$url/login#${link#*#}"
node "$here/first-page.mjs" --link "$link" --screenshot "$shot"
