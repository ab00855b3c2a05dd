// Timeline filters: read from and written to the URL query, so a view can be
// shared with another coordinator and restored on load, back and forward.
// `/?status=verified&tag=arrest&from=2016-05-21`

import { h, on } from "./dom.js";
import { shortId, timeRange } from "./format.js";

export const FILTER_NAMES = ["from", "to", "tag", "status", "reporter", "text"];
export const STATUSES = ["unverified", "verified", "disputed"];

/** The filters a URL query holds (unknown or empty values dropped). */
export function readFilters(search) {
  const params = new URLSearchParams(search);
  const filters = {};
  for (const name of FILTER_NAMES) {
    const value = (params.get(name) ?? "").trim();
    if (value) filters[name] = value;
  }
  if (filters.status && !STATUSES.includes(filters.status)) delete filters.status;
  return filters;
}

/** The URL query for filters (and a view), in a fixed order so equal views have equal URLs. */
export function filterQuery(filters, view) {
  const params = new URLSearchParams();
  if (view && view !== "timeline") params.set("view", view);
  for (const name of FILTER_NAMES) if (filters[name]) params.set(name, filters[name]);
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** The API's query for filters: { params: URLSearchParams, keep(row) }. */
export function apiQuery(filters) {
  const params = new URLSearchParams();
  const range = timeRange(filters.from, filters.to);
  if (range.from) params.set("from", range.from);
  if (range.to) params.set("to", range.to);
  for (const name of ["tag", "status", "reporter", "text"]) if (filters[name]) params.set(name, filters[name]);
  return { params, keep: range.keep };
}

/**
 * The filter bar. `apply(filters)` is called when a filter changes (select
 * and date at once, text after a pause in typing or on Enter).
 */
export function filterBar(filters, devices, apply) {
  const field = (label, input) => h("label", { class: "filter" }, h("span", null, label), input);
  const from = h("input", { name: "from", type: "text", value: filters.from ?? "", placeholder: "YYYY-MM-DD", autocomplete: "off", spellcheck: "false", "aria-label": "from (date or RFC 3339 time)" });
  const to = h("input", { name: "to", type: "text", value: filters.to ?? "", placeholder: "YYYY-MM-DD", autocomplete: "off", spellcheck: "false", "aria-label": "to (date or RFC 3339 time)" });
  const tag = h("input", { name: "tag", type: "text", value: filters.tag ?? "", placeholder: "arrest", autocomplete: "off", spellcheck: "false" });
  const status = h(
    "select",
    { name: "status" },
    h("option", { value: "" }, "any"),
    STATUSES.map((st) => h("option", { value: st, selected: filters.status === st }, st)),
  );
  const reporter = h(
    "select",
    { name: "reporter" },
    h("option", { value: "" }, "anyone"),
    (devices ?? []).map((d) =>
      h(
        "option",
        { value: d.device_id, selected: filters.reporter === d.device_id },
        `${shortId(d.device_id)} · ${d.role}${d.revoked_at ? " · revoked" : ""}`,
      ),
    ),
  );
  if (filters.reporter && !(devices ?? []).some((d) => d.device_id === filters.reporter)) {
    reporter.append(h("option", { value: filters.reporter, selected: true }, shortId(filters.reporter)));
  }
  const text = h("input", { name: "text", type: "search", value: filters.text ?? "", placeholder: "words in title, place, description", autocomplete: "off" });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "filter the timeline" },
    field("From", from),
    field("To", to),
    field("Tag", tag),
    field("Status", status),
    field("Reporter", reporter),
    field("Text", text),
    h("button", { type: "submit", class: "apply" }, "Apply"),
    h("a", { href: "/", "data-nav": "", class: "clear" }, "Clear"),
  );
  const current = () => {
    const out = {};
    for (const [name, input] of Object.entries({ from, to, tag, status, reporter, text })) {
      const value = input.value.trim();
      if (value) out[name] = value;
    }
    return out;
  };
  let timer = null;
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(() => apply(current()), 400);
  };
  on(form, "submit", (e) => {
    e.preventDefault();
    clearTimeout(timer);
    apply(current());
  });
  for (const input of [status, reporter]) on(input, "change", () => apply(current()));
  for (const input of [from, to, tag]) on(input, "change", () => apply(current()));
  on(text, "input", later);
  return form;
}
