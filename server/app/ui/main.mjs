// Entry point of the reporters' app. Builds the shell (header, sync strip,
// tabs), opens the device, and routes between screens by the URL fragment
// (#new, #draft/ID, #reports, #report/ID, #settings), so the phone's back
// button works and a reload returns to the same draft.
//
// The invite link's fragment (#invite=TOKEN&fp=…) is read once and removed
// from the address bar and history at once: the token must not linger on a
// phone that may be seized.

import { h, on, replace } from "./dom.mjs";
import { t, setLanguage, pickLanguage, language } from "./i18n.mjs";
import { describeError } from "./errors.mjs";
import { insecureScreen, firstRunScreen, enrollScreen, unlockScreen, parseInvite } from "./start.mjs";
import { recordScreen } from "./record.mjs";
import { reportsScreen, reportScreen } from "./reports.mjs";
import { settingsScreen } from "./settings.mjs";
import { SyncController } from "./sync.mjs";
import { IdleLock } from "./idle.mjs";
import { registerServiceWorker } from "./sw-update.mjs";
import { holdButton } from "./hold.mjs";

const LANGUAGE_KEY = "fieldsync-language";
const INFO_MS = 8000;
/** The idle time set with a first passphrase, if none was chosen yet. */
const DEFAULT_LOCK_MINUTES = 5;

class App {
  constructor() {
    this.root = document.body;
    this.device = null;
    this.store = null;
    this.screen = null; // { leave?(): Promise, onSync?(): void }
    this.invite = null;
  }

  async boot() {
    // Marks of the start's stages, for reading a profile of a slow start.
    performance.mark("boot");
    setLanguage(savedLanguage() ?? pickLanguage(navigator.languages ?? [navigator.language]));
    this.buildShell();
    if (!globalThis.isSecureContext || !globalThis.crypto?.subtle) {
      this.showScreen(insecureScreen(this));
      return;
    }
    registerServiceWorker(this);
    this.invite = parseInvite(location.hash);
    if (this.invite) history.replaceState(null, "", location.pathname + location.search);
    try {
      // Loaded only here: on plain http the modules' WebCrypto would not exist.
      const [{ openStore }, { Device }] = await Promise.all([
        import("../lib/store.mjs"),
        import("../lib/device.mjs"),
      ]);
      performance.mark("modules");
      this.store = await openStore();
      performance.mark("store");
      this.device = await Device.open({
        store: this.store,
        fetch: globalThis.fetch.bind(globalThis),
        now: () => Date.now(),
      });
    } catch (err) {
      this.fatal(err);
      return;
    }
    performance.mark("device");
    this.sync = new SyncController(this);
    this.idle = new IdleLock(this);
    on(window, "hashchange", () => this.route());
    await this.start();
  }

  /** Chooses the first screen by the device's state. */
  async start() {
    const status = this.device.status;
    if (status === "new") {
      this.setChrome(false);
      this.showScreen(this.invite ? enrollScreen(this, this.invite) : firstRunScreen(this));
    } else if (status === "locked") {
      this.setChrome(false);
      this.showScreen(unlockScreen(this));
    } else {
      if (this.invite) {
        this.notice(t("invite.already_enrolled"));
        this.invite = null;
      }
      this.applySettings();
      this.setChrome(true);
      if (this.device.info?.keyRefused?.length) this.notice(t("key.refused"), { kind: "warn" });
      await this.route();
      performance.mark("routed");
      // The sync on open reads every report (to find what to send): started
      // once the first screen is drawn and the page is idle, it does not
      // compete with the form or the list (at most a few seconds later).
      afterFirstScreen(() => {
        if (this.device?.status === "ready") this.sync?.start();
      });
      this.idle.start();
      this.requestPersistence();
    }
  }

  /** Language and similar settings that the device keeps. */
  applySettings() {
    const lang = this.device?.settings?.language;
    if (lang && lang !== language()) this.setLanguage(lang);
  }

  setLanguage(lang) {
    setLanguage(lang);
    try {
      localStorage.setItem(LANGUAGE_KEY, lang);
    } catch {
      // Storage blocked: the choice lasts for this page only.
    }
    // Kept in the device's encrypted settings too, so it follows a restore.
    if (this.device?.status === "ready") this.device.setSettings({ language: lang }).catch(() => {});
    this.buildShell();
    this.setChrome(this.device?.status === "ready");
  }

  buildShell() {
    this.header = h("header", { class: "header" });
    this.banner = h("div", { class: "banners", "aria-live": "polite" });
    this.syncbar = h("div", { class: "syncbar", hidden: true });
    this.main = h("main", { id: "main" });
    this.tabs = h("nav", { class: "tabs", hidden: true, "aria-label": t("nav.label") });
    replace(this.root, this.header, this.syncbar, this.banner, this.main, this.tabs);
    replace(this.header, h("span", { class: "brand" }, "fieldsync"));
  }

  /** Header, sync strip and tabs are shown only on an unlocked, enrolled phone. */
  setChrome(ready) {
    const brand = h("span", { class: "brand" }, "fieldsync");
    if (!ready) {
      replace(this.header, brand);
      this.syncbar.hidden = true;
      this.tabs.hidden = true;
      return;
    }
    const info = this.device.info ?? {};
    const items = [brand];
    if (info.caseName) items.push(h("span", { class: "case-name" }, info.caseName));
    if (this.hasPassphrase()) {
      items.push(on(h("button", { type: "button", class: "ghost lock" }, t("action.lock")), "click", () => this.lock()));
    }
    items.push(holdButton(t("quick_delete.button"), () => this.quickDelete()));
    replace(this.header, ...items);
    this.syncbar.hidden = false;
    this.sync?.renderBar();
    this.tabs.hidden = false;
    replace(
      this.tabs,
      h("a", { href: "#new", "data-tab": "new" }, t("nav.new")),
      h("a", { href: "#reports", "data-tab": "reports" }, t("nav.reports")),
      h("a", { href: "#settings", "data-tab": "settings" }, t("nav.settings")),
    );
    this.markTab();
  }

  markTab() {
    const hash = location.hash;
    const tab = hash.startsWith("#report") ? "reports" : hash.startsWith("#settings") ? "settings" : "new";
    for (const a of this.tabs.querySelectorAll("a")) {
      if (a.dataset.tab === tab) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  /** Shows the screen the fragment names. */
  async route() {
    if (this.device?.status !== "ready") return;
    const hash = decodeURIComponent(location.hash.slice(1));
    this.markTab();
    const [name, id] = splitRoute(hash);
    try {
      if (name === "reports") this.showScreen(await reportsScreen(this));
      else if (name === "report" && id) this.showScreen(await reportScreen(this, id));
      else if (name === "settings") this.showScreen(await settingsScreen(this));
      else if (name === "draft" && id) this.showScreen(await recordScreen(this, id));
      else if (name === "new") this.showScreen(await recordScreen(this, null));
      else this.showScreen(await recordScreen(this, await this.latestDraftId()));
    } catch (err) {
      this.showError(err);
    }
  }

  async latestDraftId() {
    const drafts = await this.device.drafts();
    if (!drafts?.length) return null;
    const latest = [...drafts].sort((a, b) => (b.savedAt ?? 0) - (a.savedAt ?? 0))[0];
    return latest.id;
  }

  /** Navigates; the hashchange listener renders. */
  go(hash) {
    if (location.hash === hash) this.route();
    else location.hash = hash;
  }

  async showScreen(screen) {
    const previous = this.screen;
    this.screen = screen;
    if (previous?.leave) await previous.leave().catch((err) => this.showError(err));
    replace(this.main, screen.el);
    window.scrollTo(0, 0);
    screen.focus?.focus({ preventScroll: true });
  }

  /** Saves what the current screen holds (a draft) before the phone locks or leaves. */
  async flush() {
    if (this.screen?.flush) await this.screen.flush();
  }

  async lock() {
    await this.flush();
    this.sync?.stop();
    this.idle?.stop();
    await this.device.lock();
    this.setChrome(false);
    this.clearBanners();
    this.showScreen(unlockScreen(this));
  }

  async unlocked() {
    await this.start();
  }

  async quickDelete() {
    this.sync?.stop();
    this.idle?.stop();
    try {
      await this.device.erase();
    } catch {
      // erase() goes on past failures; what it could not delete, reloading cannot fix.
    }
    try {
      sessionStorage.clear();
      localStorage.clear();
    } catch {
      // blocked storage holds nothing of ours
    }
    this.showErased();
  }

  /**
   * The first screen after an erase, shown in place: reloading would open a
   * new database and register the service worker again, and a seized phone
   * should hold no trace of the app (a fresh start from an invite link
   * loads everything anew).
   */
  showErased() {
    this.device = null;
    this.store = null;
    this.sync = null;
    this.idle = null;
    this.screen = null;
    this.clearBanners();
    this.setChrome(false);
    this.showScreen(firstRunScreen(this));
  }

  /** Whether a passphrase protects the data (the store knows; the device does not keep it). */
  hasPassphrase() {
    return !!this.store?.hasPassphrase;
  }

  /** A passphrase was just set: without an idle time it would never lock by itself. */
  async passphraseSet() {
    if (!Number(this.device.settings?.lockAfterMinutes)) {
      await this.device.setSettings({ lockAfterMinutes: DEFAULT_LOCK_MINUTES }).catch((err) => this.showError(err));
    }
  }

  async requestPersistence() {
    try {
      this.persistence = this.store?.persist
        ? await this.store.persist()
        : { persisted: await navigator.storage.persist(), supported: true };
    } catch {
      this.persistence = { persisted: false, supported: false };
    }
  }

  /**
   * A message above the screen. The same text is never shown twice; plain
   * information goes away by itself, warnings and errors stay until closed.
   */
  notice(text, { kind = "info", action = null } = {}) {
    for (const old of this.banner.querySelectorAll(".banner")) {
      if (old.dataset.text === text) old.remove();
    }
    const close = h("button", { type: "button", class: "ghost close", "aria-label": t("action.close") }, "×");
    const el = h("div", { class: `banner ${kind}`, role: kind === "error" ? "alert" : "status" },
      h("p", null, text), action, close);
    el.dataset.text = text;
    on(close, "click", () => el.remove());
    this.banner.append(el);
    if (kind === "info" && !action) setTimeout(() => el.remove(), INFO_MS);
    return el;
  }

  clearBanners() {
    this.banner.replaceChildren();
  }

  showError(err) {
    return this.notice(describeError(err).full, { kind: "error" });
  }

  fatal(err) {
    replace(this.main, h("section", { class: "screen" },
      h("h1", null, t("error.title")),
      h("p", { class: "text" }, describeError(err).full),
      on(h("button", { type: "button" }, t("action.reload")), "click", () => location.reload()),
    ));
  }
}

function afterFirstScreen(fn) {
  if (globalThis.requestIdleCallback) requestIdleCallback(() => fn(), { timeout: 3000 });
  else setTimeout(fn, 500);
}

function splitRoute(hash) {
  const slash = hash.indexOf("/");
  return slash < 0 ? [hash, null] : [hash.slice(0, slash), hash.slice(slash + 1)];
}

function savedLanguage() {
  try {
    return localStorage.getItem(LANGUAGE_KEY);
  } catch {
    return null;
  }
}

const app = new App();
app.boot().catch((err) => app.fatal(err));
