// The fieldsync review page: routes, login, the header, and the "session
// ended" screen. Views live in timeline.js, map.js and report.js.
//
// Routes (the server answers each with index.html):
//   /login#t=..&k=..&s=..   the link `fieldsync web-login` prints
//   /?tag=..&status=..      the timeline, filters in the query
//   /?view=map&...          the map of the same filters
//   /report/{id}            one report

import { SessionEnded, api, currentSession } from "./api.js";
import { CryptoError, parseLoginFragment } from "./crypto.js";
import { h, on, replace } from "./dom.js";
import { readFilters } from "./filters.js";
import { shortId } from "./format.js";
import { clearKeys, getCaseKeys, storeFromLink } from "./keys.js";
import { MapView } from "./map.js";
import { ReportView } from "./report.js";
import { TimelineView } from "./timeline.js";

const main = document.getElementById("main");
const header = document.getElementById("header");

let view = null;
let devices = null;
let lastListUrl = "/";
/** The last list view and its scroll position, kept for "back" from a report. */
let kept = null;

function navigate(url, { replace: replaceEntry = false } = {}) {
  if (replaceEntry) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  route();
}

function showHeader() {
  const me = currentSession();
  const logout = h("button", { type: "button", class: "logout" }, "Log out");
  on(logout, "click", async () => {
    try {
      await api.logout();
    } catch {
      // ended either way
    }
    clearKeys();
    showMessage("Logged out", "This session has ended and this tab has forgotten the case keys.", true);
  });
  replace(
    header,
    h("a", { class: "brand", href: "/", "data-nav": "" }, "fieldsync"),
    h("nav", null, h("a", { href: lastListUrl.includes("view=map") ? "/" : lastListUrl, "data-nav": "" }, "Timeline"), " ", h("a", { href: "/?view=map", "data-nav": "" }, "Map")),
    h(
      "p",
      { class: "who" },
      h("span", { class: "case" }, `case ${me?.case ?? ""}`),
      " · ",
      h("span", { title: `device ${me?.device_id ?? ""}` }, `coordinator ${shortId(me?.device_id)}`),
      getCaseKeys() ? null : h("span", { class: "no-keys" }, " · no case key in this tab"),
    ),
    logout,
  );
}

function showMessage(title, text, loginHint = false) {
  view?.unmount();
  view = null;
  kept = null;
  replace(header, h("span", { class: "brand" }, "fieldsync"));
  replace(
    main,
    h(
      "section",
      { class: "view view-message", role: "alert" },
      h("h1", null, title),
      h("p", null, text),
      loginHint
        ? h("p", null, "To review again, run on your coordinator device ", h("code", { class: "command" }, "fieldsync --home H web-login"), " (H: that device's home) and open the link it prints in this browser.")
        : null,
    ),
  );
}

export function sessionEnded(detail) {
  showMessage(
    "Session ended",
    `The server no longer accepts this session${detail ? ` (${detail})` : ""}: it expired, was logged out, or the device was revoked.`,
    true,
  );
}

async function login() {
  let link;
  try {
    link = parseLoginFragment(location.hash);
  } catch (e) {
    history.replaceState(null, "", "/login");
    // A reload of /login after a successful login: the session may still be live.
    try {
      await api.me();
      navigate("/", { replace: true });
    } catch {
      showMessage("Open your login link", e.message, true);
    }
    return;
  }
  // The fragment never reaches a server; keep it out of the address bar and history too.
  history.replaceState(null, "", "/login");
  try {
    storeFromLink(link);
  } catch (e) {
    showMessage("This login link is damaged", e instanceof CryptoError ? e.message : String(e), true);
    return;
  }
  replace(main, h("p", { class: "list-status", role: "status" }, "Logging in…"));
  try {
    await api.login(link.t);
  } catch (e) {
    clearKeys();
    const why = e.status === 401
      ? `the link has expired or was already used (${e.message})`
      : e.status === 403
        ? `this device may not review (${e.message})`
        : e.message;
    showMessage("Login refused", `The server refused this login link: ${why}.`, true);
    return;
  }
  navigate("/", { replace: true });
}

async function route() {
  const path = location.pathname;
  if (path === "/login") return login();
  if (!currentSession()) {
    try {
      await api.me();
    } catch (e) {
      if (e instanceof SessionEnded) return sessionEnded();
      return showMessage("The server cannot be reached", e.message);
    }
  }
  if (!devices) devices = await api.devices().catch((e) => {
    if (e instanceof SessionEnded) throw e;
    return [];
  });
  showHeader();
  const url = location.pathname + location.search;
  if (view && view === kept?.view) kept.scroll = window.scrollY;
  view?.unmount();
  const report = /^\/report\/([^/]+)$/.exec(path);
  if (report) {
    view = new ReportView({ id: decodeURIComponent(report[1]), backUrl: lastListUrl });
    view.mount(main);
    window.scrollTo(0, 0);
    return;
  }
  if (path !== "/") return showMessage("Not found", "There is no such page.");
  document.title = "Timeline · fieldsync";
  const params = new URLSearchParams(location.search);
  lastListUrl = url;
  if (kept && kept.url === url) {
    view = kept.view;
    view.mount(main);
    window.scrollTo(0, kept.scroll ?? 0);
    return;
  }
  const filters = readFilters(location.search);
  const View = params.get("view") === "map" ? MapView : TimelineView;
  view = new View({ filters, devices, navigate, onUrl: (moved) => {
    lastListUrl = moved;
    if (kept) kept.url = moved;
  } });
  view.mount(main);
  window.scrollTo(0, 0);
  kept = { url, view, scroll: 0 };
}

// Same-origin links marked data-nav go through the router (modifier clicks
// open new tabs as usual).
document.addEventListener("click", (e) => {
  const a = e.target instanceof Element ? e.target.closest("a[data-nav]") : null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  const href = a.getAttribute("href");
  if (href !== location.pathname + location.search) navigate(href);
});

window.addEventListener("popstate", () => route());

// Any request that meets a dead session, wherever it was made, ends here.
window.addEventListener("unhandledrejection", (e) => {
  if (e.reason instanceof SessionEnded) {
    e.preventDefault();
    sessionEnded(e.reason.message);
  }
});

route().catch((e) => {
  if (e instanceof SessionEnded) sessionEnded(e.message);
  else showMessage("Something went wrong", e.message);
});
