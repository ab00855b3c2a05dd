// "My reports": the reporter's own reports with their state (waiting, sent,
// refused with the reason in words, reviewed with the coordinator's status
// and note), the drafts not yet saved, and one report opened to edit it and
// add timeline entries. Report text is hostile input: it only ever becomes
// text nodes (dom.mjs).

import { h, on, replace } from "./dom.mjs";
import { t, formatDateTime, formatSize } from "./i18n.mjs";
import { describeError, refusalText } from "./errors.mjs";
import { reportForm } from "./form.mjs";

export const STATES = ["waiting", "sent", "refused", "reviewed"];
export const STATUSES = ["unverified", "verified", "disputed"];
/** Reports drawn before the screen shows, then per slice (see fill). */
const FIRST_ITEMS = 50;
const MORE_ITEMS = 250;

export async function reportsScreen(app) {
  const [reports, drafts] = await Promise.all([app.device.myReports(), app.device.drafts()]);
  const list = h("ul", { class: "report-list" });
  const draftList = h("ul", { class: "report-list drafts" });
  const el = h("section", { class: "screen reports" },
    h("h1", null, t("reports.title")),
    draftList,
    list,
    h("p", { class: "hint removed-count", hidden: true }),
  );
  // The newest reports are drawn at once, the rest in slices after the
  // screen shows: a phone with thousands of reports has the top of its
  // list in front of it instead of waiting for all of it. A newer fill
  // (after a sync) stops an older one.
  let generation = 0;
  let left = false;
  const fill = (items, pending) => {
    const mine = ++generation;
    replace(draftList, (pending ?? []).map(draftItem));
    const sorted = [...(items ?? [])].sort((a, b) => timeOf(b.occurredAt) - timeOf(a.occurredAt));
    replace(list, sorted.length ? sorted.slice(0, FIRST_ITEMS).map(reportItem) : h("li", { class: "empty" }, t("reports.empty")));
    let at = FIRST_ITEMS;
    const more = () => {
      if (mine !== generation || at >= sorted.length) return;
      list.append(...sorted.slice(at, at + MORE_ITEMS).map(reportItem));
      at += MORE_ITEMS;
      setTimeout(more, 0);
    };
    if (at < sorted.length) setTimeout(more, 0);
    const removed = Number(app.device.removedCount ?? 0);
    const note = el.querySelector(".removed-count");
    note.textContent = t("reports.removed_count", { n: removed });
    note.hidden = removed === 0;
  };
  fill(reports, drafts);
  return {
    el,
    // After a sync the states change: redraw in place.
    async onSync() {
      const [items, pending] = await Promise.all([app.device.myReports(), app.device.drafts()]);
      if (!left) fill(items, pending);
    },
    // Gone from the screen: the slices still to draw are not drawn (they
    // would take the phone's time from the next screen, a save among them).
    async leave() {
      left = true;
      generation++;
    },
  };
}

function timeOf(text) {
  const n = new Date(text ?? 0).getTime();
  return Number.isNaN(n) ? 0 : n;
}

function draftItem(d) {
  return h("li", { class: "report-item draft", "data-draft-id": d.id },
    h("a", { href: `#draft/${encodeURIComponent(d.id)}`, class: "open" },
      h("span", { class: "title text" }, d.title?.trim() ? d.title : t("reports.untitled")),
      h("span", { class: "meta" }, formatDateTime(d.when, { approximate: d.approximate })),
      h("span", { class: "badge state-draft" }, t("state.draft")),
    ));
}

function reportItem(r) {
  const state = STATES.includes(r.state) ? r.state : "waiting";
  return h("li", { class: `report-item state-${state}`, "data-report-id": r.id, "data-state": state },
    h("a", { href: `#report/${encodeURIComponent(r.id)}`, class: "open" },
      h("span", { class: "title text" }, r.removed && !r.title ? t("reports.removed_title") : r.title || t("reports.untitled")),
      h("span", { class: "meta" }, formatDateTime(r.occurredAt)),
      h("span", { class: `badge state-${state}` }, t(`state.${state}`)),
    ),
    stateDetails(r, state),
  );
}

/** What the state means for this report, in words. */
function stateDetails(r, state) {
  const lines = [];
  if (state === "refused") {
    lines.push(h("p", { class: "refusal" }, t("reports.refused_because", { reason: refusalText(r.refusal?.reason) })));
  }
  if (state === "reviewed" && r.review) {
    lines.push(reviewLine(r.review));
  }
  if (r.pendingUploads > 0) lines.push(h("p", { class: "hint" }, t("reports.pending_uploads", { n: Number(r.pendingUploads) })));
  if (r.removed) lines.push(h("p", { class: "hint" }, t("reports.removed")));
  return lines.length ? h("div", { class: "details" }, lines) : null;
}

function reviewLine(review) {
  const status = STATUSES.includes(review.status) ? review.status : "unverified";
  return h("div", { class: "review" },
    h("p", null, h("span", { class: `badge status-${status}` }, t(`status.${status}`)),
      review.reviewedAt ? h("span", { class: "meta" }, " ", formatDateTime(review.reviewedAt)) : null),
    review.note ? h("p", { class: "note text" }, review.note) : null,
  );
}

/** Report fields as the form wants them, whatever the facade's spelling. */
function formValues(r) {
  return {
    title: r.title ?? "",
    when: r.when ?? r.occurredAt ?? r.occurred_at ?? "",
    approximate: !!r.approximate,
    place: { name: r.place?.name ?? "", lat: r.place?.lat ?? null, lon: r.place?.lon ?? null },
    description: r.description ?? "",
    people: (r.people ?? []).map((p) => ({ name: p.name ?? "", role: p.role ?? "other", note: p.note ?? "" })),
    tags: [...(r.tags ?? [])],
    timeline: (r.timeline ?? []).map((e) => ({ at: e.at ?? "", text: e.text ?? "", approximate: !!e.approximate })),
  };
}

export async function reportScreen(app, id) {
  const [full, list] = await Promise.all([app.device.report(id), app.device.myReports()]);
  const summary = (list ?? []).find((r) => r.id === id) ?? null;
  const back = h("a", { href: "#reports", class: "back" }, t("action.back"));
  if (!full) {
    const el = h("section", { class: "screen report" }, back,
      h("h1", null, summary?.title || t("reports.removed_title")),
      summary ? stateBlock(summary) : null,
      h("p", null, summary ? t("report.removed_body") : t("report.not_found")));
    return { el };
  }

  const original = formValues(full);
  const values = structuredClone(original);
  const fixed = { people: original.people.length, timeline: original.timeline.length };
  let dirty = false;
  const saveButton = h("button", { type: "button", class: "primary big", disabled: true }, t("report.save_changes"));
  const message = h("p", { class: "message", role: "status", hidden: true });
  const changed = () => {
    dirty = true;
    saveButton.disabled = false;
    message.hidden = true;
  };
  const form = reportForm(values, changed, { fixed, formatTime: (at, approximate) => formatDateTime(at, { approximate }) });

  on(saveButton, "click", async () => {
    const problem = form.validate();
    if (problem) {
      say(message, problem.text, true);
      problem.focus?.focus();
      return;
    }
    saveButton.disabled = true;
    try {
      const edits = diff(original, values);
      if (Object.keys(edits).length) await app.device.editReport(id, edits);
      for (const entry of values.timeline.slice(fixed.timeline)) await app.device.addTimelineEntry(id, entry);
    } catch (err) {
      say(message, describeError(err).full, true);
      saveButton.disabled = false;
      return;
    }
    dirty = false;
    app.notice(t("report.changes_saved"));
    app.sync?.soon();
    app.go(`#report/${encodeURIComponent(id)}`);
  });

  const files = full.files ?? full.attachments ?? [];
  const el = h("section", { class: "screen report" },
    back,
    h("h1", { class: "text" }, original.title || t("reports.untitled")),
    summary ? stateBlock(summary) : null,
    files.length ? fileList(files) : null,
    h("h2", null, t("report.edit")),
    form.el,
    message,
    h("div", { class: "actions" }, saveButton),
  );
  return {
    el,
    async leave() {
      if (dirty) app.notice(t("report.unsaved_dropped"), { kind: "warn" });
    },
  };
}

function fileList(files) {
  const total = files.reduce((sum, f) => sum + Number(f.size ?? 0), 0);
  return h("div", { class: "card" },
    h("h2", null, t("report.attachments", { n: files.length, size: formatSize(total) })),
    h("ul", { class: "files" }, files.map((f) =>
      h("li", { class: "file" },
        h("span", { class: "text name" }, f.name || t("report.file_unnamed")),
        h("span", { class: "size" }, formatSize(f.size)),
        h("span", { class: "sealed" }, f.uploaded === false ? t("report.file_waiting") : t("report.file_uploaded")))),
    ));
}

function stateBlock(r) {
  const state = STATES.includes(r.state) ? r.state : "waiting";
  return h("div", { class: `state-block state-${state}`, "data-state": state },
    h("p", null, h("span", { class: `badge state-${state}` }, t(`state.${state}`)), " ", t(`state.${state}.explain`)),
    stateDetails(r, state));
}

/** Only what changed, so a coordinator's concurrent edit of another field is not overwritten. */
function diff(before, after) {
  const edits = {};
  if (after.title !== before.title) edits.title = after.title;
  if (after.when !== before.when || after.approximate !== before.approximate) {
    edits.when = after.when;
    edits.approximate = after.approximate;
  }
  if (JSON.stringify(after.place) !== JSON.stringify(before.place)) edits.place = after.place;
  if (after.description !== before.description) edits.description = after.description;
  if (JSON.stringify([...after.tags].sort()) !== JSON.stringify([...before.tags].sort())) edits.tags = after.tags;
  const newPeople = after.people.slice(before.people.length);
  if (newPeople.length) edits.addPeople = newPeople;
  return edits;
}

function say(el, text, isError) {
  el.textContent = text;
  el.hidden = false;
  el.classList.toggle("error", isError);
}
