// Locks the app after the idle time set in the settings, when a passphrase
// is set (without one there is nothing to lock: the data key is on the
// phone). Idle = no touch, key or typing; time spent in the background
// counts, so a phone put down in another app is locked when it comes back.

const CHECK_MS = 10_000;
const EVENTS = ["pointerdown", "keydown", "input", "wheel"];

export class IdleLock {
  constructor(app) {
    this.app = app;
    this.last = Date.now();
    this.timer = null;
    this.onActivity = () => {
      this.last = Date.now();
    };
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.check();
    };
  }

  minutes() {
    const s = this.app.device?.settings ?? {};
    if (!this.app.hasPassphrase()) return 0;
    return Number(s.lockAfterMinutes ?? 0);
  }

  start() {
    this.stop();
    this.last = Date.now();
    for (const e of EVENTS) window.addEventListener(e, this.onActivity, { passive: true, capture: true });
    document.addEventListener("visibilitychange", this.onVisible);
    this.timer = setInterval(() => this.check(), CHECK_MS);
  }

  stop() {
    for (const e of EVENTS) window.removeEventListener(e, this.onActivity, { capture: true });
    document.removeEventListener("visibilitychange", this.onVisible);
    clearInterval(this.timer);
    this.timer = null;
  }

  check() {
    const minutes = this.minutes();
    if (minutes > 0 && Date.now() - this.last >= minutes * 60_000 && this.app.device?.status === "ready") {
      this.app.lock();
    }
  }
}
