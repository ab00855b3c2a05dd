// The app serves its own copy of @automerge/automerge (server/app/vendor/,
// made by server/app/vendor/update.sh). These tests fail when that copy is not
// byte for byte the pinned package's files, or does not work on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const vendored = join(root, 'server/app/vendor/automerge');
const pkg = join(root, 'tests/browser/node_modules/@automerge/automerge');

// Where each vendored file comes from in the package.
function sourceOf(rel) {
  if (rel === 'automerge.wasm') return 'dist/automerge.wasm';
  if (rel === 'LICENSE') return 'LICENSE';
  return join('dist/mjs', rel);
}

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

test('the vendored automerge is the pinned package, file for file', () => {
  const lock = JSON.parse(readFileSync(join(root, 'tests/browser/package-lock.json'), 'utf8'));
  const pinned = lock.packages['node_modules/@automerge/automerge'].version;
  assert.equal(readFileSync(join(vendored, 'VERSION'), 'utf8').trim(), `@automerge/automerge@${pinned}`);
  const copied = files(vendored).map((p) => relative(vendored, p)).filter((r) => r !== 'VERSION');
  assert.ok(copied.includes('automerge.wasm') && copied.includes('entrypoints/slim.js'));
  for (const rel of copied) {
    const ours = readFileSync(join(vendored, rel));
    const theirs = readFileSync(join(pkg, sourceOf(rel)));
    assert.ok(ours.equals(theirs), `${rel} differs from the package's ${sourceOf(rel)}: run server/app/vendor/update.sh`);
  }
});

test('every module the slim entry point imports is vendored', () => {
  const seen = new Set();
  const walk = (rel) => {
    if (seen.has(rel)) return;
    seen.add(rel);
    const text = readFileSync(join(vendored, rel), 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)[^'"]*?from\s+["']([^"']+)["']/gm)) {
      const spec = m[1];
      assert.ok(spec.startsWith('.'), `${rel} imports ${spec}, which is not a relative file`);
      walk(relative(vendored, join(vendored, dirname(rel), spec)));
    }
  };
  walk('entrypoints/slim.js');
  assert.ok(seen.size > 10, `only ${seen.size} modules reached`);
});

test('the vendored copy runs from its own files with the vendored wasm', async () => {
  const A = await import(join(vendored, 'entrypoints/slim.js'));
  await A.initializeWasm(readFileSync(join(vendored, 'automerge.wasm')));
  let doc = A.from({ title: new A.ImmutableString('x'), description: 'a' });
  doc = A.change(doc, (d) => A.splice(d, ['description'], 1, 0, 'b'));
  assert.equal(doc.description, 'ab');
});
