// When the phone syncs: on open, when the network comes back, every few
// minutes while the app is open and visible, after a save, and from the
// "Sync now" button. One sync at a time; a sync cut short is safe to run
// again (the device resumes it), so every trigger simply calls run().

import { h, on, replace } from "./dom.mjs";
import { t, formatTime } from "./i18n.mjs";
import { describeError } from "./errors.mjs";
import { downloadBundle } from "./bundle.mjs";

export const SYNC_EVERY_MS = 3 * 60 * 1000;
const SOON_MS = 1000;

export class SyncController {
  constructor(app) {
    this.app = app;
    this.running = null;
    this.lastOk = null;
    this.progress = null; // {phase, done, total}
    this.error = null;
    this.waiting = null;
    this.interval = null;
    this.soonTimer = null;
    this.onOnline = () => this.run();
    this.onOffline = () => this.renderBar();
    this.onVisible = () => {
      if (document.visibilityState === "visible" && (!this.lastOk || Date.now() - this.lastOk > SYNC_EVERY_MS)) this.auto();
    };
  }

  start() {
    this.stop();
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    document.addEventListener("visibilitychange", this.onVisible);
    this.interval = setInterval(() => {
      if (document.visibilityState === "visible") this.auto();
    }, SYNC_EVERY_MS);
    this.auto();
  }

  stop() {
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    document.removeEventListener("visibilitychange", this.onVisible);
    clearInterval(this.interval);
    clearTimeout(this.soonTimer);
    this.interval = null;
  }

  /** A sync shortly, after a save (so several saves make one sync). */
  soon() {
    clearTimeout(this.soonTimer);
    this.soonTimer = setTimeout(() => this.auto(), SOON_MS);
  }

  /**
   * A sync nobody asked for (open, timer, after a save): not while the
   * browser knows it is offline, where it could only fail after reading
   * every report, and would hold up the reporter's next save meanwhile;
   * the 'online' event syncs once the network is back. "Sync now" always tries.
   */
  auto() {
    if (navigator.onLine === false) {
      this.renderBar();
      return Promise.resolve(null);
    }
    return this.run();
  }

  run() {
    if (this.running) return this.running;
    if (this.app.device?.status !== "ready") return Promise.resolve(null);
    this.running = this.#run().finally(() => {
      this.running = null;
      this.progress = null;
      this.renderBar();
    });
    return this.running;
  }

  async #run() {
    this.error = null;
    this.progress = { phase: "changes", done: 0, total: 0 };
    this.renderBar();
    let result = null;
    try {
      result = await this.app.device.sync({
        onProgress: (p) => {
          this.progress = p;
          this.renderBar();
        },
      });
      if (result?.error) throw result.error;
      this.lastOk = Date.now();
      if (result?.refused > 0) this.app.notice(t("sync.refused", { n: Number(result.refused) }), { kind: "warn" });
      // The server may hold a newer app: look for it while we are online.
      navigator.serviceWorker?.getRegistration?.("/app/").then((r) => r?.update()).catch(() => {});
    } catch (err) {
      this.error = err;
      this.report(err);
    }
    await this.countWaiting();
    await this.app.screen?.onSync?.().catch?.(() => {});
    return result;
  }

  report(err) {
    const { code, text } = describeError(err);
    if (code === "network") return; // the bar says so; no banner every three minutes
    if (code === "revoked") {
      const action = h("button", { type: "button", class: "secondary" }, t("bundle.button"));
      on(action, "click", () => downloadBundle(this.app));
      if (!this.revokedShown) this.app.notice(text, { kind: "error", action });
      this.revokedShown = true;
      return;
    }
    this.app.showError(err);
  }

  async countWaiting() {
    try {
      const list = await this.app.device.myReports();
      this.waiting = list.filter((r) => r.state === "waiting" || r.pendingUploads > 0).length;
    } catch {
      this.waiting = null;
    }
  }

  renderBar() {
    const bar = this.app.syncbar;
    if (!bar || bar.hidden) return;
    const button = h("button", { type: "button", class: "secondary sync-now", disabled: !!this.running }, t("sync.now"));
    on(button, "click", () => this.run());
    const text = h("span", { class: "sync-text", role: "status" }, this.statusText());
    const parts = [h("div", { class: "sync-row" }, text, button)];
    if (this.running && this.progress) {
      const { phase, done, total } = this.progress;
      const bar = h("progress", { class: "sync-progress", "aria-label": t("sync.progress_label") });
      // Without a total the bar runs indeterminate.
      if (total > 0) {
        bar.max = total;
        bar.value = Math.min(done, total);
      }
      parts.push(bar);
      if (phase === "uploads" && total > 0) text.textContent = t("sync.uploading", { done: Math.round((100 * done) / total) });
    }
    replace(this.app.syncbar, ...parts);
  }

  statusText() {
    if (this.running) return t("sync.running");
    if (navigator.onLine === false) return t("sync.offline");
    if (this.error) {
      const code = describeError(this.error).code;
      if (code === "network") return t("sync.no_network");
      if (code === "revoked") return t("sync.revoked");
      return t("sync.failed");
    }
    const waiting = this.waiting ? t("sync.waiting", { n: this.waiting }) + " · " : "";
    if (this.lastOk) return waiting + t("sync.last", { time: formatTime(this.lastOk) });
    return waiting + t("sync.never");
  }
}
