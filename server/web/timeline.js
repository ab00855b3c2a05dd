// The timeline: the case's reports in occurred_at order, grouped by the day
// each reporter recorded, a page of rows at a time over the API's cursor.
// Work is proportional to the rows loaded, never to the case: the next page
// is fetched when the end of the list scrolls into view.

import { SessionEnded, api } from "./api.js";
import { h, on, replace } from "./dom.js";
import { apiQuery, filterBar, filterQuery } from "./filters.js";
import { clockLabel, dayLabel, offsetLabel, shortId, splitTime } from "./format.js";

export const PAGE = 150;

export function statusBadge(status) {
  const known = ["unverified", "verified", "disputed"].includes(status) ? status : "unknown";
  return h("span", { class: `badge status-${known}`, "data-status": known }, String(status ?? "unknown"));
}

export function tagList(tags) {
  if (!tags?.length) return null;
  return h("ul", { class: "tags", "aria-label": "tags" }, tags.map((t) => h("li", { class: "tag" }, String(t))));
}

function entryList(row, day) {
  if (!row.entries?.length) return null;
  return h(
    "ol",
    { class: "entries", "aria-label": "timeline of the report" },
    row.entries.map((e) => {
      const t = splitTime(e.at);
      const when = t && t.day !== day ? `${t.day.slice(5)} ${clockLabel(e.at, e.approximate)}` : clockLabel(e.at, e.approximate);
      return h("li", { class: "entry" }, h("time", { class: "time", datetime: e.at ?? "" }, when), " ", h("span", { class: "entry-text" }, String(e.text ?? "")));
    }),
  );
}

/** One report in the list. `offset` is the day's offset, shown again only when the row's differs. */
export function reportRow(row, dayOffset) {
  const t = splitTime(row.occurred_at);
  const time = h("time", { class: "time", datetime: row.occurred_at ?? "", title: row.approximate ? "approximate time" : null }, clockLabel(row.occurred_at, row.approximate));
  const offset = t && t.offset !== dayOffset ? h("span", { class: "offset" }, offsetLabel(t.offset)) : null;
  return h(
    "li",
    { class: "report", "data-report-id": row.report_id },
    h(
      "div",
      { class: "row-main" },
      time,
      offset,
      h("a", { class: "title", href: `/report/${encodeURIComponent(row.report_id)}`, "data-nav": "" }, String(row.title || "(untitled)")),
      row.place ? h("span", { class: "place" }, String(row.place)) : null,
      statusBadge(row.status),
    ),
    h(
      "div",
      { class: "row-meta" },
      h("span", { class: "reporter", title: `reporter device ${row.reporter}` }, shortId(row.reporter)),
      tagList(row.tags),
    ),
    entryList(row, t?.day),
  );
}

/** Reports edited in this tab since their rows were rendered: id → report. */
const edited = new Map();

/** Called after a review edit, so a kept list shows the new values when it comes back. */
export function noteEdited(report) {
  edited.set(report.id, report);
}

function rowOf(report) {
  return {
    report_id: report.id,
    occurred_at: report.occurred_at,
    approximate: report.approximate,
    place: report.place?.name ?? "",
    title: report.title,
    status: report.review?.status,
    tags: report.tags ?? [],
    reporter: report.created_by,
    entries: report.timeline ?? [],
  };
}

export class TimelineView {
  constructor({ filters, devices, navigate, onUrl }) {
    this.onUrl = onUrl ?? (() => {});
    this.filters = filters;
    this.devices = devices;
    this.navigate = navigate;
    this.list = h("div", { class: "timeline", "aria-live": "polite" });
    this.status = h("p", { class: "list-status", role: "status" });
    this.more = h("button", { type: "button", class: "more" }, "Load more");
    on(this.more, "click", () => this.loadMore());
    this.sentinel = h("div", { class: "sentinel" }, this.status, this.more);
    this.bar = filterBar(filters, devices, (f) => this.apply(f));
    this.root = h(
      "section",
      { class: "view view-timeline" },
      h("div", { class: "toolbar" }, this.bar, h("a", { class: "to-map", href: `/${filterQuery(filters, "map")}`, "data-nav": "" }, "Map of these reports")),
      this.list,
      this.sentinel,
    );
    this.observer = new IntersectionObserver((items) => {
      if (items.some((i) => i.isIntersecting)) this.loadMore();
    }, { rootMargin: "800px 0px" });
    this.reset();
  }

  /** A filter changed in the bar: new URL (back returns to the old one), new list. */
  apply(filters) {
    const url = `/${filterQuery(filters)}`;
    if (url === location.pathname + location.search) return;
    history.pushState(null, "", url);
    this.onUrl(url);
    this.filters = filters;
    this.root.querySelector(".to-map")?.setAttribute("href", `/${filterQuery(filters, "map")}`);
    this.reset();
  }

  reset() {
    this.generation = (this.generation ?? 0) + 1;
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.count = 0;
    this.lastDay = undefined;
    this.lastDayList = null;
    this.lastOffset = null;
    this.firstRendered = false;
    this.query = apiQuery(this.filters);
    this.list.replaceChildren();
    this.status.textContent = "Loading…";
    this.more.hidden = true;
    this.loadMore();
  }

  mount(container) {
    for (const [id, report] of edited) {
      for (const li of this.list.querySelectorAll(`.report[data-report-id="${CSS.escape(id)}"]`)) {
        li.replaceWith(reportRow(rowOf(report), li.closest(".day")?.getAttribute("data-offset") ?? null));
      }
    }
    edited.clear();
    replace(container, this.root);
    this.observer.observe(this.sentinel);
  }

  unmount() {
    this.observer.disconnect();
  }

  async loadMore() {
    if (this.loading || this.done) return;
    this.loading = true;
    const generation = this.generation;
    const params = new URLSearchParams(this.query.params);
    params.set("limit", String(PAGE));
    if (this.cursor) params.set("after", this.cursor);
    this.more.hidden = true;
    try {
      const page = await api.timeline(params);
      if (generation !== this.generation) return;
      this.appendRows((page.reports ?? []).filter(this.query.keep));
      this.cursor = page.next ?? null;
      this.done = !this.cursor;
      if (!this.firstRendered) {
        this.firstRendered = true;
        performance.mark("fieldsync:first-rows");
        this.root.setAttribute("data-first-page", "rendered");
        // After the next frame the rows have been laid out and painted.
        requestAnimationFrame(() => setTimeout(() => performance.mark("fieldsync:first-rows-painted")));
      }
      this.status.textContent = this.done
        ? this.count ? `${this.count} reports · end of the timeline` : "No report matches these filters."
        : `${this.count} reports shown`;
      this.more.hidden = this.done;
    } catch (e) {
      if (generation !== this.generation) return;
      this.status.textContent = `Could not load the timeline: ${e.message}`;
      this.more.hidden = false;
      this.more.textContent = "Try again";
      if (e instanceof SessionEnded) throw e;
      return;
    } finally {
      if (generation === this.generation) this.loading = false;
    }
    // The end of the list may still be in view (a short page, or rows the
    // day filter dropped). Observing the sentinel anew makes the observer
    // report where it is after the next layout, which loads on if needed.
    if (!this.done && this.sentinel.isConnected) {
      this.observer.unobserve(this.sentinel);
      this.observer.observe(this.sentinel);
    }
  }

  appendRows(rows) {
    const fragment = document.createDocumentFragment();
    for (const row of rows) {
      const t = splitTime(row.occurred_at);
      const day = t ? t.day : null;
      if (day !== this.lastDay || !this.lastDayList) {
        this.lastDay = day;
        this.lastOffset = t ? t.offset : null;
        this.lastDayList = h("ol", { class: "day-rows" });
        fragment.append(
          h(
            "section",
            { class: "day", "data-day": day ?? "none", "data-offset": this.lastOffset ?? "" },
            h("h2", { class: "day-head" }, day ? dayLabel(day) : "No time recorded", t ? h("span", { class: "offset" }, offsetLabel(t.offset)) : null),
            this.lastDayList,
          ),
        );
      }
      this.lastDayList.append(reportRow(row, this.lastOffset));
      this.count += 1;
    }
    this.list.append(fragment);
  }
}
