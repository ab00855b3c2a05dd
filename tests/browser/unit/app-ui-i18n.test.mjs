// The app's three languages: the same keys, the plural forms each language
// needs, the same placeholders; every key the UI uses exists and every key
// exists for a reason; the English labels the browser tests rely on; and no
// text in ui/ reaches the reporter without going through t().

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import en from "../../../server/app/i18n/en.mjs";
import ru from "../../../server/app/i18n/ru.mjs";
import kk from "../../../server/app/i18n/kk.mjs";
import { ROLES } from "../../../server/app/ui/form.mjs";
import { STATES, STATUSES } from "../../../server/app/ui/reports.mjs";
import { REFUSAL_REASONS } from "../../../server/app/ui/errors.mjs";
import { LANGUAGE_NAMES } from "../../../server/app/ui/i18n.mjs";

const UI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../server/app/ui");
const DICTS = { en, ru, kk };
const sources = Object.fromEntries(
  readdirSync(UI).filter((f) => f.endsWith(".mjs")).map((f) => [f, readFileSync(path.join(UI, f), "utf8")]),
);

/** Source without comments (line and block), strings kept. */
function stripComments(src) {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/[^\n]*/g, "$1");
}

const placeholders = (s) => [...String(s).matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
const forms = (v) => (typeof v === "object" ? Object.values(v) : [v]);

test("every language has exactly the English keys", () => {
  for (const [lang, dict] of Object.entries(DICTS)) {
    const missing = Object.keys(en).filter((k) => !Object.hasOwn(dict, k));
    const extra = Object.keys(dict).filter((k) => !Object.hasOwn(en, k));
    assert.deepEqual(missing, [], `${lang} lacks keys`);
    assert.deepEqual(extra, [], `${lang} has keys English does not`);
  }
});

test("every message is non-empty, with the plural forms its language needs and the same placeholders as English", () => {
  for (const [lang, dict] of Object.entries(DICTS)) {
    const categories = new Intl.PluralRules(lang).resolvedOptions().pluralCategories;
    for (const [key, value] of Object.entries(dict)) {
      const enPlaceholders = [...new Set(forms(en[key]).flatMap(placeholders))].sort();
      if (typeof value === "object") {
        assert.equal(typeof en[key], "object", `${lang} ${key}: plural where English is not`);
        for (const c of categories) assert.ok(typeof value[c] === "string" && value[c].trim(), `${lang} ${key} lacks plural form ${c}`);
      } else {
        assert.equal(typeof value, "string", `${lang} ${key}`);
        assert.ok(value.trim(), `${lang} ${key} is empty`);
      }
      // Each language's date pattern uses the parts its own form needs.
      if (key === "date.pattern") continue;
      for (const form of forms(value)) {
        const got = [...new Set(placeholders(form))].sort();
        // A plural form may leave out {n} (Russian "one" often does not), never add one.
        for (const p of got) assert.ok(enPlaceholders.includes(p), `${lang} ${key}: unknown placeholder {${p}}`);
        for (const p of enPlaceholders) {
          if (p !== "n") assert.ok(got.includes(p), `${lang} ${key}: lacks placeholder {${p}}`);
        }
      }
    }
  }
});

test("the Russian and Kazakh texts are translated, not English left in place", () => {
  // Names and symbols the same in every language.
  const same = new Set(["about.server", "report.file_unnamed"]);
  for (const lang of ["ru", "kk"]) {
    for (const [key, value] of Object.entries(DICTS[lang])) {
      if (same.has(key) || key === "date.pattern") continue;
      for (const form of forms(value)) {
        const letters = form.replace(/\{\w+\}/g, "").replace(/https?:\/\/\S*|\bhttps?\b|#invite=|ID|iPhone|iPad|Safari|JavaScript/g, "");
        assert.ok(!/[A-Za-z]{3,}/.test(letters), `${lang} ${key} has Latin words: ${form}`);
        assert.ok(/[\u0400-\u04FF]/.test(form) || /^[\d\s{}.,:ж]+$/.test(form), `${lang} ${key} has no Cyrillic: ${form}`);
      }
    }
  }
});

test("the English labels the browser tests rely on are exact", () => {
  const contract = {
    "form.title": "Title",
    "form.when": "When",
    "form.approximate": "Approximate",
    "form.place": "Place",
    "form.use_location": "Use my location",
    "form.description": "Description",
    "form.save_report": "Save report",
    "files.add": "Add photo, video or audio",
    "sync.now": "Sync now",
    "bundle.button": "Save a sync bundle",
    "reports.title": "My reports",
    "nav.reports": "My reports",
    "settings.delete_after_sync": "Delete from this phone once the server has it",
    "quick_delete.button": "Quick delete",
  };
  for (const [key, text] of Object.entries(contract)) assert.equal(en[key], text, key);
  // getByLabel matches substrings: no other English label of the report form
  // may contain a contract label's words.
  const labelKeys = ["form.title", "form.when", "form.approximate", "form.place", "form.latitude", "form.longitude",
    "form.description", "form.person_name", "form.person_role", "form.person_note", "form.new_tag", "form.remove_tag",
    "form.entry_time", "form.entry_estimated", "form.entry_text", "files.add"];
  const formLabels = labelKeys.map((k) => [k, en[k]]);
  for (const word of ["Title", "When", "Approximate", "Place", "Description"]) {
    const holders = formLabels.filter(([, v]) => typeof v === "string" && v.toLowerCase().includes(word.toLowerCase()));
    assert.deepEqual(holders.map(([k]) => k), [`form.${word.toLowerCase()}`], `labels containing "${word}"`);
  }
});

// Keys built at run time, with the values they are built from.
const DYNAMIC = {
  "role.": ROLES,
  "state.": STATES,
  "status.": STATUSES,
  "refusal.": [...REFUSAL_REASONS, "other"],
  "month.": Array.from({ length: 12 }, (_, i) => String(i + 1)),
};

function usedKeys() {
  const fixed = new Set();
  const templates = [];
  for (const [file, src] of Object.entries(sources)) {
    const code = stripComments(src);
    for (const m of code.matchAll(/\bt\(\s*"([^"]+)"/g)) fixed.add(m[1]);
    for (const m of code.matchAll(/\bt\(\s*`([^`]+)`/g)) templates.push({ file, template: m[1] });
  }
  return { fixed, templates };
}

test("every key the UI uses exists, and every key is used", () => {
  const { fixed, templates } = usedKeys();
  for (const key of fixed) assert.ok(Object.hasOwn(en, key), `ui uses missing key ${key}`);
  const covered = new Set(fixed);
  for (const { file, template } of templates) {
    const prefix = template.slice(0, template.indexOf("${"));
    const suffix = template.slice(template.lastIndexOf("}") + 1);
    if (prefix === "error.") continue; // checked below, from the switch
    assert.ok(Object.hasOwn(DYNAMIC, prefix), `${file}: t(\`${template}\`) builds keys from values this test does not know`);
    for (const value of DYNAMIC[prefix]) {
      const key = `${prefix}${value}${suffix}`;
      assert.ok(Object.hasOwn(en, key), `${file}: t(\`${template}\`) needs ${key}`);
      covered.add(key);
    }
  }
  // errors.mjs: every `case "code":` whose text is t(`error.${code}`).
  const errors = stripComments(sources["errors.mjs"]);
  for (const m of errors.matchAll(/case "([a-z_]+)":/g)) {
    const key = `error.${m[1]}`;
    assert.ok(Object.hasOwn(en, key), `errors.mjs handles ${m[1]} but ${key} is missing`);
    covered.add(key);
  }
  const unused = Object.keys(en).filter((k) => !covered.has(k) && k !== "date.pattern");
  assert.deepEqual(unused, [], "keys no UI code uses");
});

test("no text in ui/ bypasses t(): no sentence-like or non-ASCII string literal outside the allowed few", () => {
  const allowed = new Set([
    "fieldsync", // the product's name
    "×", "—", "≈ ", " · ", " ",
    ...Object.values(LANGUAGE_NAMES), // each language's own name, the same in every language
  ]);
  const problems = [];
  for (const [file, src] of Object.entries(sources)) {
    const code = stripComments(src);
    for (const m of code.matchAll(/"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'|`((?:[^`\\]|\\.)*)`/g)) {
      const text = m[1] ?? m[2] ?? m[3];
      if (allowed.has(text)) continue;
      const before = code.slice(Math.max(0, m.index - 40), m.index);
      if (/\bt\(\s*$/.test(before)) continue; // a key
      if (/\b(import|from)\s*\(?\s*$/.test(before)) continue; // a module path
      if (/\bnew Error\(\s*$/.test(before)) continue; // programmer errors, never shown translated
      // Symbols read the same in every language.
      const plain = text.replace(/\$\{[^}]*\}/g, "").replace(/[≈×—…·←]/g, "");
      const sentence = /[A-Z][a-z]+/.test(plain) && /[a-z]{2,}\s+[a-z]{2,}/i.test(plain);
      const nonAscii = /[^\x00-\x7f]/.test(plain);
      if (sentence || nonAscii) problems.push(`${file}: ${JSON.stringify(text)}`);
    }
  }
  assert.deepEqual(problems, []);
});

test("ui/ never parses HTML or evaluates strings", () => {
  for (const [file, src] of Object.entries(sources)) {
    const code = stripComments(src);
    for (const bad of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"on", "DOMParser", "createContextualFragment"]) {
      assert.ok(!code.includes(bad), `${file} uses ${bad}`);
    }
  }
});
