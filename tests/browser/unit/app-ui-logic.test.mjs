// The app UI's plain logic, without a DOM: invite links, language choice,
// messages with plurals and placeholders, times for datetime-local inputs,
// errors in words, and the installable shell (manifest, index.html).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { parseInvite } from "../../../server/app/ui/start.mjs";
import { pickLanguage, setLanguage, t, formatDateTime } from "../../../server/app/ui/i18n.mjs";
import { rfc3339, toLocalInput, fromLocalInput } from "../../../server/app/ui/time.mjs";
import { describeError, errorCode, refusalText } from "../../../server/app/ui/errors.mjs";
import { byteLength } from "../../../server/app/ui/form.mjs";

const APP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../server/app");

test("invite links: the token and fingerprint from the fragment or a whole pasted link; junk refused", () => {
  assert.deepEqual(parseInvite("#invite=Ctc_d63eBiI7&fp=4v8e5tGI"), { token: "Ctc_d63eBiI7", fingerprint: "4v8e5tGI" });
  assert.deepEqual(parseInvite("  https://r.example/app/#invite=abc-_9  "), { token: "abc-_9", fingerprint: null });
  assert.deepEqual(parseInvite("#invite=abc&fp="), { token: "abc", fingerprint: null });
  assert.equal(parseInvite(""), null);
  assert.equal(parseInvite("#reports"), null);
  assert.equal(parseInvite("https://r.example/app/"), null);
  assert.equal(parseInvite("#invite="), null);
  assert.equal(parseInvite(`#invite=${"a".repeat(513)}`), null, "bounded");
  assert.equal(parseInvite("#invite=a%20b"), null, "no whitespace in a token");
  assert.equal(parseInvite(`#invite=ok&fp=${"f".repeat(300)}`).fingerprint, null);
});

test("the language comes from the browser's list, else English", () => {
  assert.equal(pickLanguage(["kk-KZ", "ru-RU", "en"]), "kk");
  assert.equal(pickLanguage(["de-DE", "ru"]), "ru");
  assert.equal(pickLanguage(["RU_ru"]), "ru");
  assert.equal(pickLanguage(["de", "fr"]), "en");
  assert.equal(pickLanguage([]), "en");
  assert.equal(pickLanguage(undefined), "en");
});

test("messages: plural forms by language, placeholders filled as plain text", () => {
  setLanguage("en");
  assert.equal(t("unlock.wrong", { n: 1 }), "Wrong passphrase. 1 try left before the app erases everything.");
  assert.equal(t("unlock.wrong", { n: 3 }), "Wrong passphrase. 3 tries left before the app erases everything.");
  setLanguage("ru");
  assert.match(t("error.revoked", { n: 1 }), /^Этот телефон исключён из дела; 1 отчёт не отправлен/);
  assert.match(t("error.revoked", { n: 3 }), /3 отчёта не отправлены/);
  assert.match(t("error.revoked", { n: 5 }), /5 отчётов не отправлены/);
  assert.match(t("error.revoked", { n: 21 }), /21 отчёт не отправлен/);
  setLanguage("kk");
  assert.match(t("error.revoked", { n: 2 }), /2 есеп жіберілмеді/);
  // A placeholder value is text: braces and markup in it are kept as they are.
  setLanguage("en");
  assert.equal(t("form.remove_tag", { tag: "<b>{n}</b>" }), "Remove tag <b>{n}</b>");
  assert.equal(t("no.such.key"), "no.such.key");
  setLanguage("xx");
  assert.equal(t("nav.new"), "New report", "unknown language → English");
  setLanguage("en");
});

test("the revoked-phone message says how many reports were not sent and what to do", () => {
  setLanguage("en");
  const { text } = describeError({ code: "revoked", unsent: 4 });
  assert.equal(text, "This phone was removed from the case; 4 reports were not sent — save a sync bundle and give it to your coordinator.");
});

test("errors become words the reporter can act on, in the chosen language", () => {
  setLanguage("en");
  assert.match(describeError({ code: "invite_expired" }).text, /expired/);
  assert.match(describeError({ name: "InviteError", reason: "used" }).text, /already used/);
  assert.match(describeError({ code: "server_full" }).text, /out of disk space/);
  assert.match(describeError({ status: 507 }).text, /out of disk space/);
  assert.match(describeError({ name: "QuotaExceededError" }).text, /storage for the app is full/);
  assert.match(describeError({ code: "share_code_invalid" }).text, /mistyped/);
  assert.match(describeError({ code: "refused", reason: "not_your_report" }).text, /only the phone that created a report/);
  assert.equal(refusalText("something_new"), "for a reason this version of the app does not know.");
  assert.match(describeError({ code: "no_case_key" }).text, /case key has not arrived/);
  const unknown = describeError(new Error("disk on fire <b>"));
  assert.equal(unknown.code, "unknown");
  assert.equal(unknown.full, `${t("error.unknown")} (disk on fire <b>)`);
  assert.equal(errorCode(new TypeError("Failed to fetch")), "network");
  setLanguage("kk");
  assert.match(describeError({ code: "invite_used" }).text, /қолданылып қойған/);
  setLanguage("en");
});

test("times: datetime-local values round-trip through RFC 3339 with the phone's offset", () => {
  const d = new Date(2024, 4, 21, 10, 40);
  const text = rfc3339(d);
  assert.match(text, /^2024-05-21T10:40:00[+-]\d{2}:\d{2}$/);
  assert.equal(new Date(text).getTime(), d.getTime());
  assert.equal(toLocalInput(text), "2024-05-21T10:40");
  assert.equal(fromLocalInput("2024-05-21T10:40"), text);
  assert.equal(fromLocalInput(""), null);
  assert.equal(fromLocalInput("garbage"), null);
  assert.equal(toLocalInput("not a time"), "");
  // A time recorded elsewhere is shown in this phone's zone.
  assert.equal(new Date(fromLocalInput(toLocalInput("2016-05-21T10:40:00+06:00"))).getTime(), new Date("2016-05-21T10:40:00+06:00").getTime());
});

test("dates are shown in the chosen locale; unreadable ones as they are", () => {
  setLanguage("ru");
  assert.match(formatDateTime("2024-05-21T10:40:00Z"), /мая 2024|05\.2024|2024/);
  setLanguage("en");
  assert.match(formatDateTime("2024-05-21T10:40:00Z", { approximate: true }), /^≈ .*2024/);
  assert.equal(formatDateTime("yesterday-ish"), "yesterday-ish");
  assert.equal(formatDateTime(null), "—");
});

test("field limits are counted in UTF-8 bytes, as the server counts them", () => {
  assert.equal(byteLength("abc"), 3);
  assert.equal(byteLength("Жылдам"), 12);
  assert.equal(byteLength(null), 0);
});

test("the manifest makes the app installable: name, icons incl. maskable, start_url and scope /app/, standalone", () => {
  const m = JSON.parse(readFileSync(path.join(APP, "manifest.webmanifest"), "utf8"));
  assert.ok(m.name && m.short_name);
  assert.equal(m.start_url, "/app/");
  assert.equal(m.scope, "/app/");
  assert.equal(m.display, "standalone");
  assert.match(m.theme_color, /^#[0-9a-f]{6}$/i);
  assert.ok(m.icons.some((i) => i.purpose === "maskable"));
  for (const size of ["192x192", "512x512"]) assert.ok(m.icons.some((i) => i.sizes === size && i.type === "image/png"), size);
  for (const icon of m.icons) {
    assert.ok(icon.src.startsWith("/app/"), icon.src);
    const file = path.join(APP, icon.src.slice("/app/".length));
    assert.ok(existsSync(file), `${icon.src} exists`);
    if (icon.type === "image/png") {
      const png = readFileSync(file);
      const [w, h] = [png.readUInt32BE(16), png.readUInt32BE(20)];
      assert.equal(`${w}x${h}`, icon.sizes, icon.src);
    }
  }
});

test("index.html: no inline script, style or handler (the CSP forbids them); every local reference exists", () => {
  const html = readFileSync(path.join(APP, "index.html"), "utf8");
  assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html), "inline script");
  assert.ok(!/<style/i.test(html), "inline style element");
  assert.ok(!/\sstyle=/i.test(html), "style attribute");
  assert.ok(!/\son[a-z]+=/i.test(html), "inline handler");
  assert.ok(!/(src|href)="(https?:)?\/\//i.test(html), "nothing from another origin");
  for (const m of html.matchAll(/(?:src|href)="(\/app\/[^"]*)"/g)) {
    const rel = m[1].slice("/app/".length);
    assert.ok(existsSync(path.join(APP, rel)), `${m[1]} exists`);
  }
  assert.match(html, /<script type="module" src="\/app\/ui\/main\.mjs"><\/script>/);
});

/** Modules statically imported from `entries` (import/export … from), relative to server/app. */
function staticGraph(entries) {
  const seen = new Set();
  const walk = (rel) => {
    if (seen.has(rel)) return;
    seen.add(rel);
    const src = readFileSync(path.join(APP, rel), "utf8");
    for (const m of src.matchAll(/(?:^|[;\n}])\s*(?:import|export)\s*(?:[\w*{}\s,$]+?\s*from\s*)?["']([^"']+)["']/g)) {
      if (m[1].startsWith(".")) walk(path.posix.normalize(path.posix.join(path.posix.dirname(rel), m[1])));
    }
  };
  entries.forEach(walk);
  return seen;
}

test("index.html preloads every module of the first screen and starts the wasm early", () => {
  const html = readFileSync(path.join(APP, "index.html"), "utf8");
  const preloaded = new Set([...html.matchAll(/<link rel="modulepreload" href="\/app\/([^"]+)">/g)].map((m) => m[1]));
  // main.mjs, and what it imports once it runs (store and device, with the Automerge library).
  const wanted = staticGraph(["ui/main.mjs", "lib/store.mjs", "lib/device.mjs"]);
  wanted.delete("ui/main.mjs");
  assert.ok(wanted.has("vendor/automerge/wasm_bindgen_output/web/automerge_wasm.js"), "the graph reaches the Automerge glue");
  assert.deepEqual([...preloaded].sort(), [...wanted].sort(), "modulepreload links = the first screen's modules");
  const early = html.indexOf('<script type="module" async src="/app/ui/early.mjs"></script>');
  assert.ok(early >= 0 && early < html.indexOf('src="/app/ui/main.mjs"'), "early.mjs, async, before main.mjs");
});
