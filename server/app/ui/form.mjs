// The report's fields as a form, shared by a new report (a draft) and the
// editing of a saved one. Every field of the report model has a visible
// label; the English labels "Title", "When", "Approximate", "Place",
// "Description" are a contract the browser tests use (getByLabel), so no
// other label on this form contains those words.

import { h, on, replace, field, checkbox, uid } from "./dom.mjs";
import { t } from "./i18n.mjs";
import { toLocalInput, fromLocalInput, nowRfc3339 } from "./time.mjs";

export const ROLES = ["witness", "victim", "detainee", "officer", "other"];

// Limits of sync-core/src/document.rs, in UTF-8 bytes.
export const MAX_TITLE_BYTES = 1024;
export const MAX_DESCRIPTION_BYTES = 256 * 1024;
export const MAX_FIELD_BYTES = 8 * 1024;
const MAX_TAGS = 100;
const MAX_PEOPLE = 200;
const MAX_TIMELINE = 500;

const utf8 = new TextEncoder();
export const byteLength = (s) => utf8.encode(String(s ?? "")).length;

/** A fresh, empty report's values. */
export function emptyValues(now = Date.now()) {
  return {
    title: "",
    when: nowRfc3339(now),
    approximate: false,
    place: { name: "", lat: null, lon: null },
    description: "",
    people: [],
    tags: [],
    timeline: [],
  };
}

/**
 * Builds the form over `values` (changed in place as the reporter types) and
 * calls `changed()` after every change. `fixed` = {people: n, timeline: n}:
 * that many first entries are already in a saved report and are shown read
 * only (the model can add people and timeline entries, not rewrite them).
 * Returns {el, validate(), titleInput}.
 */
export function reportForm(values, changed, { fixed = { people: 0, timeline: 0 }, formatTime } = {}) {
  const title = h("input", { type: "text", autocomplete: "off", maxlength: MAX_TITLE_BYTES, enterkeyhint: "next" });
  title.value = values.title ?? "";
  on(title, "input", () => {
    values.title = title.value;
    changed();
  });

  const when = h("input", { type: "datetime-local" });
  when.value = toLocalInput(values.when);
  on(when, "input", () => {
    const v = fromLocalInput(when.value);
    if (v) {
      values.when = v;
      changed();
    }
  });
  const approx = checkbox(t("form.approximate"), values.approximate);
  on(approx.input, "change", () => {
    values.approximate = approx.input.checked;
    changed();
  });

  const place = placeFields(values, changed);

  const description = h("textarea", { rows: "6" });
  description.value = values.description ?? "";
  on(description, "input", () => {
    values.description = description.value;
    changed();
  });

  const people = peopleList(values, changed, fixed.people ?? 0);
  const tags = tagList(values, changed);
  const timeline = timelineList(values, changed, fixed.timeline ?? 0, formatTime);

  const el = h("div", { class: "report-form" },
    field(t("form.title"), title),
    h("div", { class: "when-row" }, field(t("form.when"), when), approx.row),
    place.el,
    field(t("form.description"), description),
    people.el,
    tags.el,
    timeline.el,
  );

  /** The first problem as translated text, and the input to focus; null if none. */
  function validate() {
    if (!values.title.trim()) return { text: t("form.title_missing"), focus: title };
    if (byteLength(values.title) > MAX_TITLE_BYTES) return { text: t("form.too_long", { field: t("form.title") }), focus: title };
    if (byteLength(values.description) > MAX_DESCRIPTION_BYTES) return { text: t("form.too_long", { field: t("form.description") }), focus: description };
    if (byteLength(values.place.name) > MAX_FIELD_BYTES) return { text: t("form.too_long", { field: t("form.place") }), focus: place.name };
    const lat = values.place.lat;
    const lon = values.place.lon;
    if ((lat === null) !== (lon === null)) return { text: t("form.half_coordinate"), focus: place.lat };
    if (lat !== null && !(lat >= -90 && lat <= 90)) return { text: t("form.bad_latitude"), focus: place.lat };
    if (lon !== null && !(lon >= -180 && lon <= 180)) return { text: t("form.bad_longitude"), focus: place.lon };
    for (const p of values.people) {
      if ([p.name, p.note].some((s) => byteLength(s) > MAX_FIELD_BYTES)) return { text: t("form.too_long", { field: t("form.people") }), focus: null };
    }
    for (const tag of values.tags) {
      if (byteLength(tag) > MAX_FIELD_BYTES) return { text: t("form.too_long", { field: t("form.tags") }), focus: null };
    }
    for (const e of values.timeline) {
      if (byteLength(e.text) > MAX_FIELD_BYTES) return { text: t("form.too_long", { field: t("form.timeline") }), focus: null };
      if (!e.text.trim()) return { text: t("form.entry_empty"), focus: null };
    }
    return null;
  }

  return { el, validate, titleInput: title };
}

function placeFields(values, changed) {
  values.place ??= { name: "", lat: null, lon: null };
  const name = h("input", { type: "text", autocomplete: "off" });
  name.value = values.place.name ?? "";
  on(name, "input", () => {
    values.place.name = name.value;
    changed();
  });
  const coord = (v) => h("input", { type: "number", step: "any", inputmode: "decimal", value: v ?? "" });
  const lat = coord(values.place.lat);
  const lon = coord(values.place.lon);
  const readCoord = (input) => (input.value.trim() === "" ? null : Number(input.value));
  for (const input of [lat, lon]) {
    on(input, "input", () => {
      values.place.lat = readCoord(lat);
      values.place.lon = readCoord(lon);
      changed();
    });
  }
  const status = h("p", { class: "message", role: "status", hidden: true });
  const locate = h("button", { type: "button", class: "secondary" }, t("form.use_location"));
  on(locate, "click", () => {
    if (!navigator.geolocation) {
      say(status, t("error.location_unavailable"), true);
      return;
    }
    locate.disabled = true;
    say(status, t("form.locating"), false);
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        locate.disabled = false;
        // Six decimals is about 10 cm: more is noise.
        values.place.lat = Math.round(pos.coords.latitude * 1e6) / 1e6;
        values.place.lon = Math.round(pos.coords.longitude * 1e6) / 1e6;
        lat.value = String(values.place.lat);
        lon.value = String(values.place.lon);
        say(status, t("form.located", { accuracy: Math.round(pos.coords.accuracy) }), false);
        changed();
      },
      (err) => {
        locate.disabled = false;
        // 1 = PERMISSION_DENIED, 2 = POSITION_UNAVAILABLE, 3 = TIMEOUT
        say(status, err.code === 1 ? t("error.location_denied") : t("error.location_unavailable"), true);
      },
      { enableHighAccuracy: true, timeout: 30000, maximumAge: 60000 },
    );
  });
  const el = h("fieldset", { class: "group" },
    h("legend", null, t("form.place_legend")),
    field(t("form.place"), name),
    h("div", { class: "coords" }, field(t("form.latitude"), lat), field(t("form.longitude"), lon)),
    locate,
    status,
  );
  return { el, name, lat, lon };
}

function say(el, text, isError) {
  el.textContent = text;
  el.hidden = false;
  el.classList.toggle("error", isError);
}

function peopleList(values, changed, fixedCount) {
  values.people ??= [];
  const list = h("ul", { class: "items" });
  const add = h("button", { type: "button", class: "secondary" }, t("form.add_person"));
  const render = () => {
    replace(list, values.people.map((p, i) => (i < fixedCount ? fixedPerson(p) : personRow(p, i))));
    add.disabled = values.people.length >= MAX_PEOPLE;
  };
  const fixedPerson = (p) =>
    h("li", { class: "item fixed" },
      h("strong", { class: "text" }, p.name || "—"), " · ", t(`role.${ROLES.includes(p.role) ? p.role : "other"}`),
      p.note ? h("p", { class: "text" }, p.note) : null);
  const personRow = (p, i) => {
    const name = h("input", { type: "text", autocomplete: "off", value: p.name ?? "" });
    on(name, "input", () => {
      p.name = name.value;
      changed();
    });
    const role = h("select", null, ROLES.map((r) => h("option", { value: r, selected: p.role === r }, t(`role.${r}`))));
    on(role, "change", () => {
      p.role = role.value;
      changed();
    });
    const note = h("input", { type: "text", autocomplete: "off", value: p.note ?? "" });
    on(note, "input", () => {
      p.note = note.value;
      changed();
    });
    const remove = h("button", { type: "button", class: "ghost remove" }, t("action.remove"));
    on(remove, "click", () => {
      values.people.splice(i, 1);
      render();
      changed();
    });
    return h("li", { class: "item" },
      field(t("form.person_name"), name), field(t("form.person_role"), role), field(t("form.person_note"), note), remove);
  };
  on(add, "click", () => {
    values.people.push({ name: "", role: "witness", note: "" });
    render();
    changed();
    list.lastElementChild?.querySelector("input")?.focus();
  });
  render();
  const el = h("fieldset", { class: "group" }, h("legend", null, t("form.people")), list, add);
  return { el };
}

function tagList(values, changed) {
  values.tags ??= [];
  const chips = h("ul", { class: "chips" });
  const input = h("input", { type: "text", autocomplete: "off", autocapitalize: "off", enterkeyhint: "done" });
  const add = h("button", { type: "button", class: "secondary" }, t("action.add"));
  const render = () => {
    replace(chips, values.tags.map((tag, i) => {
      const x = h("button", { type: "button", class: "chip-remove", "aria-label": t("form.remove_tag", { tag }) }, "×");
      on(x, "click", () => {
        values.tags.splice(i, 1);
        render();
        changed();
      });
      return h("li", { class: "chip" }, h("span", { class: "text" }, tag), x);
    }));
  };
  const addTag = () => {
    // Commas separate tags typed in one go.
    const fresh = input.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (!fresh.length) return;
    for (const tag of fresh) if (!values.tags.includes(tag) && values.tags.length < MAX_TAGS) values.tags.push(tag);
    input.value = "";
    render();
    changed();
  };
  on(add, "click", addTag);
  on(input, "keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      addTag();
    }
  });
  render();
  const id = uid();
  input.id = id;
  const el = h("fieldset", { class: "group" },
    h("legend", null, t("form.tags")),
    chips,
    h("div", { class: "field" }, h("label", { for: id }, t("form.new_tag")), h("div", { class: "inline" }, input, add)),
  );
  return { el };
}

function timelineList(values, changed, fixedCount, formatTime) {
  values.timeline ??= [];
  const list = h("ul", { class: "items" });
  const add = h("button", { type: "button", class: "secondary" }, t("form.add_entry"));
  const render = () => {
    replace(list, values.timeline.map((e, i) => (i < fixedCount ? fixedEntry(e) : entryRow(e, i))));
    add.disabled = values.timeline.length >= MAX_TIMELINE;
  };
  const fixedEntry = (e) =>
    h("li", { class: "item fixed" },
      h("span", { class: "time" }, formatTime ? formatTime(e.at, e.approximate) : e.at), " ",
      h("span", { class: "text" }, e.text));
  const entryRow = (e, i) => {
    const at = h("input", { type: "datetime-local" });
    at.value = toLocalInput(e.at);
    on(at, "input", () => {
      const v = fromLocalInput(at.value);
      if (v) {
        e.at = v;
        changed();
      }
    });
    // Not labelled "Approximate": that label belongs to the report's "When".
    const est = checkbox(t("form.entry_estimated"), e.approximate);
    on(est.input, "change", () => {
      e.approximate = est.input.checked;
      changed();
    });
    const text = h("textarea", { rows: "2" });
    text.value = e.text ?? "";
    on(text, "input", () => {
      e.text = text.value;
      changed();
    });
    const remove = h("button", { type: "button", class: "ghost remove" }, t("action.remove"));
    on(remove, "click", () => {
      values.timeline.splice(i, 1);
      render();
      changed();
    });
    return h("li", { class: "item" }, field(t("form.entry_time"), at), est.row, field(t("form.entry_text"), text), remove);
  };
  on(add, "click", () => {
    values.timeline.push({ at: nowRfc3339(), text: "", approximate: false });
    render();
    changed();
    list.lastElementChild?.querySelector("textarea")?.focus();
  });
  render();
  const el = h("fieldset", { class: "group" }, h("legend", null, t("form.timeline")), list, add);
  return { el };
}
