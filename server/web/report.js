// One report: every field, the conflicting concurrent values the merge
// kept, the signed change history, the attachments (decrypted here), and
// the review and edit forms.

import { SessionEnded, api } from "./api.js";
import { Attachments } from "./attachments.js";
import { h, replace } from "./dom.js";
import { shortId, timeLabel } from "./format.js";
import { applyEdits, reviewPanel } from "./review.js";
import { noteEdited, statusBadge, tagList } from "./timeline.js";

const FIELD_NAMES = {
  "review.status": "status",
  "review.note": "review note",
  occurred_at: "time",
  "place.name": "place",
};

function field(label, ...value) {
  return [h("dt", null, label), h("dd", null, ...value)];
}

function text(value, empty = "—") {
  const s = String(value ?? "");
  return s ? s : h("span", { class: "none" }, empty);
}

function device(id, full = false) {
  if (!id) return h("span", { class: "none" }, "—");
  return h("code", { class: "device", title: `device ${id}` }, full ? String(id) : shortId(id));
}

function fieldsTable(r) {
  const place = r.place ?? {};
  const coords = place.lat !== null && place.lat !== undefined && place.lon !== null && place.lon !== undefined
    ? h("span", { class: "coords" }, ` (${place.lat}, ${place.lon})`)
    : null;
  const review = r.review ?? {};
  return h(
    "dl",
    { class: "fields" },
    field("When", h("span", { class: "occurred-at" }, timeLabel(r.occurred_at, r.approximate)), r.approximate ? h("span", { class: "approx" }, " approximate") : null),
    field("Place", h("span", { class: "place-name" }, text(place.name)), coords),
    field("Status", statusBadge(review.status), review.note ? h("p", { class: "review-note" }, String(review.note)) : null,
      review.by || review.reviewer ? h("p", { class: "review-by" }, "by ", device(review.by ?? review.reviewer), review.at || review.reviewed_at ? ` at ${timeLabel(review.at ?? review.reviewed_at)}` : null) : null),
    field("Tags", tagList(r.tags) ?? text("")),
    field("Description", h("p", { class: "description" }, text(r.description))),
    field("People", r.people?.length
      ? h("table", { class: "people" },
        h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Role"), h("th", null, "Note"))),
        h("tbody", null, r.people.map((p) => h("tr", null, h("td", { class: "person-name" }, String(p.name ?? "")), h("td", null, String(p.role ?? "")), h("td", null, String(p.note ?? ""))))))
      : text("")),
    field("Timeline", r.timeline?.length
      ? h("ol", { class: "entries" }, r.timeline.map((e) => h("li", { class: "entry" }, h("time", { class: "time", datetime: e.at ?? "" }, timeLabel(e.at, e.approximate)), " ", h("span", { class: "entry-text" }, String(e.text ?? "")))))
      : text("")),
    field("Recorded by", device(r.created_by, true), r.created_at ? ` at ${timeLabel(r.created_at)}` : null),
    field("Report id", h("code", null, String(r.id ?? ""))),
  );
}

function conflictsSection(conflicts) {
  if (!conflicts?.length) return null;
  return h(
    "section",
    { class: "conflicts" },
    h("h2", null, "Concurrent values"),
    h("p", { class: "hint" }, "Devices changed these fields at the same time without seeing each other's change. The merge shows one value above; every value is kept. Edit the field to settle it."),
    h("dl", null, conflicts.map((c) => [h("dt", null, FIELD_NAMES[c.field] ?? String(c.field)), h("dd", null, h("ul", null, (c.values ?? []).map((v) => h("li", { class: "conflict-value" }, typeof v === "string" ? v : JSON.stringify(v)))))])),
  );
}

function historySection(history) {
  return h(
    "section",
    { class: "history" },
    h("h2", null, "Change history"),
    history?.length
      ? h(
        "table",
        { class: "history-table" },
        h("thead", null, h("tr", null, h("th", null, "Made"), h("th", null, "Received"), h("th", null, "By"), h("th", null, "Changed"), h("th", null, "Signature"))),
        h(
          "tbody",
          null,
          history.map((c) =>
            h(
              "tr",
              { class: "change", "data-hash": c.hash ?? "" },
              h("td", null, timeLabel(c.time)),
              h("td", null, timeLabel(c.received_at)),
              h("td", null, device(c.device_id), c.via_web_session ? h("span", { class: "via-web" }, " via web session") : null),
              h("td", null, (c.fields ?? []).map((f) => FIELD_NAMES[f] ?? String(f)).join(", ") || "—", c.message ? h("p", { class: "change-message" }, String(c.message)) : null),
              h("td", null, c.signature_verified
                ? h("span", { class: "sig sig-ok" }, "✓ verified")
                : h("span", { class: "sig sig-bad" }, "✗ not verified")),
            ),
          ),
        ),
      )
      : h("p", { class: "empty" }, "No history."),
  );
}

export class ReportView {
  constructor({ id, backUrl }) {
    this.id = id;
    this.backUrl = backUrl || "/";
    this.attachments = new Attachments();
    this.body = h("div", { class: "report-body" }, h("p", { class: "list-status", role: "status" }, "Loading the report…"));
    this.root = h("article", { class: "view view-report", "data-report-id": id }, h("p", { class: "back" }, h("a", { href: this.backUrl, "data-nav": "" }, "← Timeline")), this.body);
  }

  mount(container) {
    replace(container, this.root);
    api.report(this.id).then(
      (data) => this.render(data),
      (e) => {
        if (e instanceof SessionEnded) throw e;
        replace(this.body, h("p", { class: "error", role: "alert" }, e.status === 404 ? "There is no such report in this case." : `Could not load the report: ${e.message}`));
      },
    );
  }

  unmount() {
    this.attachments.close();
  }

  render(data) {
    const r = data.report ?? {};
    document.title = `${r.title || "Report"} · fieldsync`;
    replace(
      this.body,
      h("header", { class: "report-head" }, h("h1", { class: "report-title" }, String(r.title || "(untitled)")), statusBadge(r.review?.status)),
      fieldsTable(r),
      conflictsSection(data.conflicts),
      h("section", { class: "attachments-section" }, h("h2", null, "Attachments"), this.attachments.render(r.attachments)),
      reviewPanel(r, async (edits) => {
        const after = await applyEdits(this.id, edits, data);
        noteEdited(after.report ?? {});
        this.render(after);
      }),
      historySection(data.history),
    );
  }
}
