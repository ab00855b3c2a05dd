// Translated text and locale formatting. Every string a reporter sees comes
// from t(key): the three dictionaries have the same keys (a node test
// checks), and a test also checks that every key used in ui/ exists.
//
// A message is a string with {name} placeholders, or a plural object keyed
// by Intl.PluralRules categories ({one, few, many, other}) chosen by the
// parameter `n`.

import en from "../i18n/en.mjs";
import ru from "../i18n/ru.mjs";
import kk from "../i18n/kk.mjs";

export const LANGUAGES = { en, ru, kk };
/** Each language's own name, shown in the language switch whatever the current language. */
export const LANGUAGE_NAMES = { en: "English", ru: "Русский", kk: "Қазақша" };

let current = "en";
let intlDates = true;

/**
 * Whether this browser's Intl knows the language's month names. Some builds
 * ship ICU without Kazakh data and print "2024 M05 21"; then dates are put
 * together from the dictionary's month names and pattern instead.
 */
function hasIntlMonths(lang) {
  try {
    const may = new Intl.DateTimeFormat(lang, { month: "long" }).format(new Date(2024, 4, 15));
    return may.toLowerCase() === String(LANGUAGES[lang]["month.5"]).toLowerCase();
  } catch {
    return false;
  }
}
let plural = new Intl.PluralRules("en");

/** The first of the browser's languages we have, else English. */
export function pickLanguage(languages) {
  for (const tag of languages ?? []) {
    const base = String(tag).toLowerCase().split(/[-_]/)[0];
    if (Object.hasOwn(LANGUAGES, base)) return base;
  }
  return "en";
}

export function setLanguage(lang) {
  current = Object.hasOwn(LANGUAGES, lang) ? lang : "en";
  plural = new Intl.PluralRules(current);
  intlDates = hasIntlMonths(current);
  if (typeof document !== "undefined") document.documentElement.lang = current;
  return current;
}

export function language() {
  return current;
}

/** The message for `key` in the current language, placeholders filled as text. */
export function t(key, params = {}) {
  let msg = LANGUAGES[current][key];
  // A missing key is a bug the unit test catches; show English rather than nothing.
  if (msg === undefined) msg = en[key];
  if (msg === undefined) return key;
  if (typeof msg === "object") {
    const n = Number(params.n ?? 0);
    msg = msg[plural.select(n)] ?? msg.other;
  }
  return msg.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(params, name) ? formatParam(params[name]) : whole,
  );
}

function formatParam(value) {
  return typeof value === "number" ? formatter(Intl.NumberFormat, "number", {}).format(value) : String(value);
}

/**
 * Intl formatters by locale and kind, made once: making one costs far more
 * than formatting with it, and "My reports" formats a date per report
 * (2,000 reports took seconds at a phone's speed). A formatter keeps the
 * time zone it was made in: a phone that changes zone shows the new one
 * after a reload.
 */
const formatters = new Map();
function formatter(Kind, name, options) {
  const key = `${current}\u0000${name}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Kind(current, options);
    formatters.set(key, f);
  }
  return f;
}

/**
 * An RFC 3339 time ("2024-05-21T10:40:00+06:00") or epoch ms, as a date and
 * time in the chosen locale. Shown in this phone's zone: the reporter wrote it
 * here. Unparseable text is shown as it is.
 */
export function formatDateTime(value, { approximate = false } = {}) {
  if (value === null || value === undefined || value === "") return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  let text;
  if (intlDates) {
    text = formatter(Intl.DateTimeFormat, "datetime", { dateStyle: "medium", timeStyle: "short" }).format(date);
  } else {
    text = t("date.pattern", {
      year: String(date.getFullYear()),
      month: t(`month.${date.getMonth() + 1}`),
      day: String(date.getDate()),
      dd: String(date.getDate()).padStart(2, "0"),
      mm: String(date.getMonth() + 1).padStart(2, "0"),
      time: formatTime(date),
    });
  }
  return approximate ? `≈ ${text}` : text;
}

export function formatTime(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return formatter(Intl.DateTimeFormat, "time", { timeStyle: "short" }).format(date);
}

/**
 * A byte count: "1.2 MB" in the locale's digits, with the dictionary's unit
 * words: Chromium's ICU lacks Kazakh unit names and would print English.
 */
export function formatSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return "?";
  let v = n;
  let u = 0;
  while (v >= 1000 && u < 3) {
    v /= 1000;
    u += 1;
  }
  const digits = new Intl.NumberFormat(current, { maximumFractionDigits: u === 0 ? 0 : 1 }).format(v);
  if (u === 0) return t("size.bytes", { n, v: digits });
  if (u === 1) return t("size.kb", { v: digits });
  if (u === 2) return t("size.mb", { v: digits });
  return t("size.gb", { v: digits });
}
