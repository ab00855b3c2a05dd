// Times as the report model wants them: RFC 3339 with this phone's offset
// at that moment ("2024-05-21T10:40:00+06:00"), to and from the value of an
// <input type=datetime-local> ("2024-05-21T10:40").

const pad = (n) => String(n).padStart(2, "0");

/** RFC 3339 with the local offset, to the minute. */
export function rfc3339(date) {
  const off = -date.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const abs = Math.abs(off);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:00${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

export function nowRfc3339(now = Date.now()) {
  return rfc3339(new Date(now));
}

/** RFC 3339 (any offset) → the local "YYYY-MM-DDTHH:MM" a datetime-local input shows; "" if unreadable. */
export function toLocalInput(text) {
  const date = new Date(text ?? "");
  if (Number.isNaN(date.getTime())) return "";
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local value → RFC 3339 with the offset in force at that local time; null if empty or invalid. */
export function fromLocalInput(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(String(value ?? ""));
  if (!m) return null;
  const date = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
  return Number.isNaN(date.getTime()) ? null : rfc3339(date);
}
