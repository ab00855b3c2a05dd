// Review and edits: each form turns into contract edit ops, which become a
// real Automerge change made by this web session's key. The server prepares
// the change; the page reads the change's bytes itself (change.js), checks
// they are exactly the edit asked for on the version of the report it shows,
// computes the hash from them and only then signs it (Ed25519 over
// "fieldsync change v1\0" ‖ hash); the server commits it. If the report
// moved on meanwhile (409) the report is loaded again and the change
// prepared and checked again, once.

import { ApiError, SessionEnded, api, currentSession } from "./api.js";
import { ChangeRefused, checkPreparedChange } from "./change.js";
import { fromBase64, signChange, toBase64, toHex } from "./crypto.js";
import { h, on } from "./dom.js";
import { checkRfc3339 } from "./format.js";
import { getSigningKey } from "./keys.js";
import { STATUSES } from "./filters.js";

/** What the page shows of a report answer, as the change check needs it. */
function shownOf(answer) {
  return { heads: answer?.heads ?? [], objects: answer?.objects ?? {}, report: answer?.report ?? {}, conflicts: answer?.conflicts ?? [] };
}

/**
 * The hash to sign for `prepared`, computed here from its bytes once they
 * are found to be exactly `edits` on `shown`; throws ChangeRefused (and
 * nothing is signed) otherwise.
 */
export function preparedHash(prepared, edits, shown, publicKey) {
  let bytes;
  try {
    bytes = fromBase64(prepared?.change ?? "");
  } catch {
    throw new ChangeRefused("the server's prepared change is not base64");
  }
  const session = { actor: toHex(publicKey), deviceId: currentSession()?.device_id ?? "" };
  try {
    return checkPreparedChange(bytes, { edits, shown, session, claimedHash: prepared?.hash });
  } catch (e) {
    if (!(e instanceof ChangeRefused)) throw e;
    throw new ChangeRefused(`nothing was signed: the server prepared a change that is not the edit you asked for (${e.message}). If this repeats, the server or the connection to it is not to be trusted; tell whoever runs it`);
  }
}

/**
 * Prepares, checks, signs and commits `edits` on the report answer `shown`
 * (the one the page shows); returns the report as the commit answers it.
 */
export async function applyEdits(id, edits, shown) {
  const key = await getSigningKey();
  if (!key) {
    throw new Error("this tab holds no session key (it lives only in the tab the login link was opened in); open a new link from `fieldsync web-login` here to make changes");
  }
  let answer = shown;
  for (let attempt = 0; ; attempt++) {
    const prepared = await api.prepare(id, edits);
    const hash = preparedHash(prepared, edits, shownOf(answer), key.publicKey);
    const sig = await signChange(key.privateKey, key.publicKey, hash);
    try {
      return await api.commit(id, prepared.change, toBase64(sig));
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && attempt === 0) {
        answer = await api.report(id);
        continue;
      }
      if (e instanceof ApiError && e.status === 409) {
        throw new ApiError(409, `the report kept changing while saving (${e.message}); reload it and try again`);
      }
      throw e;
    }
  }
}

function parseCoordinate(text, min, max, label) {
  const value = text.trim();
  if (!value) return null;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${label} must be a number from ${min} to ${max}`);
  return n;
}

/**
 * The review and edit panel for `report`. `save(edits, form)` applies edits
 * and re-renders the report; this module only builds the forms and the ops.
 */
export function reviewPanel(report, save) {
  const form = (cls, legend, fields, button, build) => {
    const message = h("p", { class: "form-message", role: "status" });
    const submit = h("button", { type: "submit" }, button);
    const el = h("form", { class: `edit ${cls}` }, h("fieldset", null, h("legend", null, legend), fields, h("div", { class: "form-actions" }, submit, message)));
    on(el, "submit", async (e) => {
      e.preventDefault();
      message.className = "form-message";
      let edits;
      try {
        edits = build();
      } catch (err) {
        message.className = "form-message error";
        message.setAttribute("role", "alert");
        message.textContent = err.message;
        return;
      }
      if (!edits.length) {
        message.textContent = "Nothing changed.";
        return;
      }
      submit.disabled = true;
      el.setAttribute("aria-busy", "true");
      message.textContent = "Signing and saving…";
      try {
        await save(edits);
        message.textContent = "Saved.";
      } catch (err) {
        message.className = "form-message error";
        message.setAttribute("role", "alert");
        message.textContent = `Not saved: ${err.message}`;
        if (err instanceof SessionEnded) throw err;
      } finally {
        submit.disabled = false;
        el.removeAttribute("aria-busy");
      }
    });
    return el;
  };
  const labelled = (text, input) => h("label", null, h("span", null, text), input);

  const current = report.review?.status ?? "unverified";
  const status = h("select", { name: "status" }, STATUSES.map((st) => h("option", { value: st, selected: st === current }, st)));
  const note = h("textarea", { name: "note", placeholder: "why: sources, witnesses, what was checked" });
  note.value = report.review?.note ?? "";
  const statusForm = form("edit-status", "Review status", [labelled("Status", status), labelled("Note", note)], "Set status", () => {
    if (status.value === current && note.value === (report.review?.note ?? "")) return [];
    return [{ op: "set_status", status: status.value, note: note.value }];
  });

  const title = h("input", { name: "title", type: "text", value: report.title ?? "" });
  const titleForm = form("edit-title", "Title", [labelled("Title", title)], "Save title", () => {
    const value = title.value.trim();
    if (!value) throw new Error("a report needs a title");
    return value === report.title ? [] : [{ op: "set_title", title: value }];
  });

  const place = report.place ?? {};
  const placeName = h("input", { name: "place", type: "text", value: place.name ?? "" });
  const lat = h("input", { name: "lat", type: "text", inputmode: "decimal", value: place.lat ?? "", placeholder: "43.25" });
  const lon = h("input", { name: "lon", type: "text", inputmode: "decimal", value: place.lon ?? "", placeholder: "76.95" });
  const placeForm = form("edit-place", "Place", [labelled("Name", placeName), labelled("Latitude", lat), labelled("Longitude", lon)], "Save place", () => {
    const la = parseCoordinate(lat.value, -90, 90, "latitude");
    const lo = parseCoordinate(lon.value, -180, 180, "longitude");
    if ((la === null) !== (lo === null)) throw new Error("give both latitude and longitude, or neither");
    const name = placeName.value.trim();
    if (name === (place.name ?? "") && la === (place.lat ?? null) && lo === (place.lon ?? null)) return [];
    return [{ op: "set_place", name, lat: la, lon: lo }];
  });

  const at = h("input", { name: "occurred_at", type: "text", value: report.occurred_at ?? "", placeholder: "2016-05-21T10:40:00+06:00", spellcheck: "false" });
  const approximate = h("input", { name: "approximate", type: "checkbox", checked: !!report.approximate });
  const timeForm = form("edit-time", "When it happened", [labelled("Time (with the offset it was recorded at)", at), h("label", { class: "check" }, approximate, h("span", null, "approximate"))], "Save time", () => {
    const value = at.value.trim();
    const problem = checkRfc3339(value);
    if (problem) throw new Error(problem);
    if (value === report.occurred_at && approximate.checked === !!report.approximate) return [];
    return [{ op: "set_occurred_at", occurred_at: value, approximate: approximate.checked }];
  });

  const removed = new Set();
  const tagItems = (report.tags ?? []).map((tag) => {
    const button = h("button", { type: "button", class: "remove-tag", "aria-label": `remove tag ${tag}` }, "×");
    const li = h("li", { class: "tag", "data-tag": tag }, String(tag), " ", button);
    on(button, "click", () => {
      if (removed.has(tag)) removed.delete(tag);
      else removed.add(tag);
      li.classList.toggle("removed", removed.has(tag));
    });
    return li;
  });
  const newTag = h("input", { name: "tag", type: "text", placeholder: "add a tag", autocomplete: "off" });
  const tagsForm = form("edit-tags", "Tags", [h("ul", { class: "tags editable" }, tagItems), labelled("New tag", newTag)], "Save tags", () => {
    const edits = [...removed].map((tag) => ({ op: "remove_tag", tag }));
    for (const tag of new Set(newTag.value.split(",").map((t) => t.trim()).filter(Boolean))) {
      if (!(report.tags ?? []).includes(tag)) edits.push({ op: "add_tag", tag });
    }
    return edits;
  });

  return h("section", { class: "review-panel", "aria-label": "review and edit" }, h("h2", null, "Review"), statusForm, titleForm, placeForm, timeForm, tagsForm);
}
