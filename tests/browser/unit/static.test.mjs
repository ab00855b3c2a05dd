// Static checks of server/web/: what the CSP and the escaping rule forbid
// is not in the source at all, and every file the page loads exists (the
// server embeds the folder's files by a fixed list; see README).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../server/web");
const files = readdirSync(web).sort();
const scripts = files.filter((f) => f.endsWith(".js"));
const read = (f) => readFileSync(path.join(web, f), "utf8");

test("no script builds markup from strings, evaluates code or sets inline styles", () => {
  const forbidden = [
    /\.innerHTML\b/, /\.outerHTML\s*=/, /insertAdjacentHTML/, /document\.write/, /\beval\s*\(/, /new Function\s*\(/,
    /setAttribute\(\s*["']style/, /setAttribute\(\s*["']on/, /\.style\.\w+\s*=/, /createContextualFragment/, /DOMParser/,
    /localStorage/, /document\.cookie/, /https?:\/\//,
  ];
  for (const f of scripts) {
    // The SVG namespace is a name, not an address anything fetches.
    const text = read(f).replaceAll('"http://www.w3.org/2000/svg"', "SVG_NS");
    for (const pattern of forbidden) assert.ok(!pattern.test(text), `${f} matches ${pattern}`);
  }
});

test("index.html has no inline script, style or handler and no external URL", () => {
  const html = read("index.html");
  for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
    assert.match(m[1], /src="\/assets\/[a-z]+\.js"/, "a script without src");
    assert.equal(m[2].trim(), "", "an inline script");
  }
  assert.ok(!/<style\b/.test(html) && !/\sstyle=/.test(html), "inline style");
  assert.ok(!/\son[a-z]+=/.test(html), "an event-handler attribute");
  assert.ok(!/(href|src)="(?!\/assets\/)/.test(html), "a URL outside /assets/");
});

test("every file the page loads is in server/web, and every file there is loaded", () => {
  const loaded = new Set(["index.html"]);
  const html = read("index.html");
  for (const m of html.matchAll(/(?:href|src)="\/assets\/([^"]+)"/g)) loaded.add(m[1]);
  const queue = ["app.js"];
  while (queue.length) {
    const f = queue.pop();
    assert.ok(files.includes(f), `${f} is imported but not in server/web`);
    for (const m of read(f).matchAll(/from\s+"\.\/([^"]+)"/g)) {
      if (!loaded.has(m[1])) queue.push(m[1]);
      loaded.add(m[1]);
    }
  }
  assert.deepEqual([...loaded].sort(), files, "files in server/web that nothing loads, or loads that are missing");
});
