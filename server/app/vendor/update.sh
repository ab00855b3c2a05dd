#!/usr/bin/env bash
# Copies @automerge/automerge (the version pinned in tests/browser/package-lock.json)
# into server/app/vendor/automerge/, the files the app serves: the ES modules
# reachable from its `slim` entry point and the wasm they instantiate. The app
# loads nothing from another origin, so the library ships inside the binary.
# Run after changing the pinned version:
#   (cd tests/browser && npm ci) && server/app/vendor/update.sh
# tests/browser/unit/app-vendor.test.mjs fails if the copy and the package differ.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pkg="$here/../../../tests/browser/node_modules/@automerge/automerge"
out="$here/automerge"
[ -f "$pkg/package.json" ] || { echo "run npm ci in tests/browser first" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/entrypoints" "$out/generated" "$out/wasm_bindgen_output/web"
for f in "$pkg"/dist/mjs/*.js; do cp "$f" "$out/"; done
cp "$pkg/dist/mjs/entrypoints/slim.js" "$out/entrypoints/"
cp "$pkg/dist/mjs/generated/release-info.js" "$out/generated/"
cp "$pkg/dist/mjs/wasm_bindgen_output/web/automerge_wasm.js" "$out/wasm_bindgen_output/web/"
cp "$pkg/dist/automerge.wasm" "$out/"
cp "$pkg/LICENSE" "$out/LICENSE"
node -e 'const p=require(process.argv[1]);console.log(p.name+"@"+p.version)' "$pkg/package.json" > "$out/VERSION"
echo "copied $(cat "$out/VERSION") into $out"
