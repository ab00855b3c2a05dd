// The map: reports with coordinates as points on a plain SVG coordinate
// plot (equirectangular, longitude scaled by the cosine of the mean
// latitude). No tiles, nothing fetched but the timeline API. It plots the
// matching reports a few pages at a time, never the whole case at once.

import { SessionEnded, api } from "./api.js";
import { h, on, replace, s } from "./dom.js";
import { apiQuery, filterBar, filterQuery } from "./filters.js";
import { timeLabel } from "./format.js";

const PAGE = 1000;
const PAGES_PER_LOAD = 3;
const W = 1000;
const H = 640;
const PAD = 40;

/** Projects points {lat, lon} into the plot box; returns a function and the bounds. */
export function projection(points) {
  let minLat = Infinity, maxLat = -Infinity, minLon = Infinity, maxLon = -Infinity;
  for (const p of points) {
    minLat = Math.min(minLat, p.lat);
    maxLat = Math.max(maxLat, p.lat);
    minLon = Math.min(minLon, p.lon);
    maxLon = Math.max(maxLon, p.lon);
  }
  const k = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180) || 1;
  const spanX = Math.max((maxLon - minLon) * k, 1e-4);
  const spanY = Math.max(maxLat - minLat, 1e-4);
  const scale = Math.min((W - 2 * PAD) / spanX, (H - 2 * PAD) / spanY);
  const offX = (W - spanX * scale) / 2;
  const offY = (H - spanY * scale) / 2;
  const project = (p) => [offX + (p.lon - minLon) * k * scale, H - (offY + (p.lat - minLat) * scale)];
  return { project, bounds: { minLat, maxLat, minLon, maxLon } };
}

export class MapView {
  constructor({ filters, devices, navigate }) {
    this.filters = filters;
    this.navigate = navigate;
    this.points = [];
    this.seen = 0;
    this.cursor = null;
    this.done = false;
    this.plot = h("div", { class: "map-plot" });
    this.status = h("p", { class: "list-status", role: "status" }, "Loading…");
    this.more = h("button", { type: "button", class: "more", hidden: true }, "Plot more reports");
    on(this.more, "click", () => this.load());
    const bar = filterBar(filters, devices, (f) => {
      navigate(`/${filterQuery(f, "map")}`);
    });
    this.root = h(
      "section",
      { class: "view view-map" },
      h("div", { class: "toolbar" }, bar, h("a", { class: "to-map", href: `/${filterQuery(filters)}`, "data-nav": "" }, "Back to the list")),
      this.plot,
      h("div", { class: "sentinel" }, this.status, this.more),
    );
  }

  mount(container) {
    replace(container, this.root);
    this.load();
  }

  unmount() {
    this.closed = true;
  }

  async load() {
    this.more.hidden = true;
    const { params, keep } = apiQuery(this.filters);
    params.set("limit", String(PAGE));
    try {
      for (let i = 0; i < PAGES_PER_LOAD && !this.done && !this.closed; i++) {
        if (this.cursor) params.set("after", this.cursor);
        const page = await api.timeline(params);
        for (const row of (page.reports ?? []).filter(keep)) {
          this.seen += 1;
          if (Number.isFinite(row.lat) && Number.isFinite(row.lon)) this.points.push(row);
        }
        this.cursor = page.next ?? null;
        this.done = !this.cursor;
      }
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      this.status.textContent = `Could not load the reports: ${e.message}`;
      this.more.hidden = false;
      return;
    }
    if (this.closed) return;
    this.draw();
    this.status.textContent = `${this.points.length} of ${this.seen}${this.done ? "" : "+"} matching reports have coordinates${this.done ? "." : "; more match."}`;
    this.more.hidden = this.done;
  }

  draw() {
    if (!this.points.length) {
      replace(this.plot, h("p", { class: "empty" }, "No matching report has coordinates."));
      return;
    }
    const { project, bounds } = projection(this.points);
    const fmt = (v) => v.toFixed(4);
    const svg = s(
      "svg",
      { viewBox: `0 0 ${W} ${H}`, class: "map", role: "img", "aria-label": "reports by coordinates", preserveAspectRatio: "xMidYMid meet" },
      s("rect", { x: 0, y: 0, width: W, height: H, class: "map-bg" }),
      s("text", { x: PAD, y: H - 10, class: "map-axis" }, `${fmt(bounds.minLat)}, ${fmt(bounds.minLon)}`),
      s("text", { x: W - PAD, y: 24, class: "map-axis", "text-anchor": "end" }, `${fmt(bounds.maxLat)}, ${fmt(bounds.maxLon)}`),
      this.points.map((row) => {
        const [x, y] = project(row);
        return s(
          "a",
          { href: `/report/${encodeURIComponent(row.report_id)}`, "data-nav": "", class: "map-point", "data-report-id": row.report_id },
          s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 6, class: `dot status-${["verified", "disputed"].includes(row.status) ? row.status : "unverified"}` }),
          s("title", null, `${row.title} · ${row.place || ""} · ${timeLabel(row.occurred_at, row.approximate)}`),
        );
      }),
    );
    replace(this.plot, svg, h("p", { class: "legend" }, h("span", { class: "dot-key status-verified" }, "verified"), h("span", { class: "dot-key status-disputed" }, "disputed"), h("span", { class: "dot-key status-unverified" }, "unverified")));
  }
}
