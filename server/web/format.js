// Plain functions from values to display strings; no DOM. Times are shown
// as recorded: the day and the clock time at the reporter's own offset,
// read from the RFC 3339 text, never converted to the viewer's zone.

const TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/;
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/** "2016-05-21T10:40:00+06:00" → { day: "2016-05-21", clock: "10:40", offset: "+06:00" }, or null. */
export function splitTime(text) {
  const m = TIME.exec(String(text ?? ""));
  if (!m) return null;
  const [, y, mo, d, hh, mm, ss, off] = m;
  return {
    day: `${y}-${mo}-${d}`,
    clock: ss && ss !== "00" ? `${hh}:${mm}:${ss}` : `${hh}:${mm}`,
    offset: off.toUpperCase() === "Z" ? "+00:00" : off,
  };
}

/** "2016-05-21" → "Saturday 21 May 2016". */
export function dayLabel(day) {
  const [y, m, d] = day.split("-").map(Number);
  const weekday = DAYS[new Date(Date.UTC(y, m - 1, d)).getUTCDay()];
  return `${weekday} ${d} ${MONTHS[m - 1]} ${y}`;
}

/** "+06:00" → "UTC+06:00"; "+00:00" → "UTC". */
export function offsetLabel(offset) {
  return offset === "+00:00" || offset === "-00:00" ? "UTC" : `UTC${offset}`;
}

/** The clock time of a report or entry, "≈ 10:40" when approximate. */
export function clockLabel(text, approximate) {
  const t = splitTime(text);
  if (!t) return text ? String(text) : "no time";
  return approximate ? `≈ ${t.clock}` : t.clock;
}

/** A full time for details: "2016-05-21 10:40 UTC+06:00", "≈" in front when approximate. */
export function timeLabel(text, approximate = false) {
  if (!text) return "—";
  const t = splitTime(text);
  if (!t) return String(text);
  return `${approximate ? "≈ " : ""}${t.day} ${t.clock} ${offsetLabel(t.offset)}`;
}

export function shortId(id) {
  return String(id ?? "").slice(0, 8);
}

export function sizeLabel(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n)) return "?";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * The time-range filter. A bare date means a day as the reports recorded it
 * (at their own offsets), which no single instant range expresses: the API
 * gets the widest instants such a day can span (UTC+14 to UTC−12) and
 * `keep(row)` drops the few rows of the neighbouring days that brings in.
 * A full RFC 3339 time is an instant and goes to the API as it is.
 * Returns { from, to, keep } (from/to undefined when not set).
 */
export function timeRange(fromText, toText) {
  const from = (fromText ?? "").trim();
  const to = (toText ?? "").trim();
  const fromDay = DATE_ONLY.test(from) ? from : null;
  const toDay = DATE_ONLY.test(to) ? to : null;
  const keep = (row) => {
    if (!fromDay && !toDay) return true;
    const t = splitTime(row.occurred_at);
    if (!t) return false;
    return (!fromDay || t.day >= fromDay) && (!toDay || t.day <= toDay);
  };
  return {
    from: from ? (fromDay ? `${fromDay}T00:00:00+14:00` : from) : undefined,
    to: to ? (toDay ? `${toDay}T23:59:59.999-12:00` : to) : undefined,
    keep,
  };
}

/** Checks an RFC 3339 time with an offset as the API wants it; returns an error text or null. */
export function checkRfc3339(text) {
  return TIME.test(String(text).trim()) ? null : "write the time as 2016-05-21T10:40:00+06:00 (date, time and the offset it was recorded at)";
}
