// Registers the service worker and offers its updates. A new version
// installs in the background while this page keeps running on the old one;
// it takes over only when the reporter chooses "Reload" (or when no page of
// the app is open). Drafts and reports live in IndexedDB, apart from the
// app's files, so switching versions loses nothing; the draft on screen is
// saved first anyway.

import { h, on } from "./dom.mjs";
import { t } from "./i18n.mjs";

export async function registerServiceWorker(app) {
  const sw = navigator.serviceWorker;
  if (!sw) return null;
  let registration;
  try {
    registration = await sw.register("/app/sw.js", { scope: "/app/" });
  } catch {
    // No worker (private mode, blocked): the app still works while online.
    return null;
  }
  let asked = false;
  let shown = false;
  const offer = (worker) => {
    // Only a worker that is ready to take over, and only if a page is
    // already served by an older one (the very first install is no update).
    if (!worker || !sw.controller || shown) return;
    shown = true;
    const reload = h("button", { type: "button", class: "primary" }, t("update.reload"));
    on(reload, "click", async () => {
      reload.disabled = true;
      asked = true;
      await app.flush().catch(() => {});
      worker.postMessage({ type: "skip-waiting" });
    });
    app.notice(t("update.ready"), { action: reload });
  };
  let hadController = !!sw.controller;
  sw.addEventListener("controllerchange", async () => {
    if (asked) {
      location.reload();
    } else if (hadController && !shown) {
      // Another tab of the app switched to the new version: this page still
      // runs the old code, so offer a plain reload.
      shown = true;
      const reload = h("button", { type: "button", class: "primary" }, t("update.reload"));
      on(reload, "click", async () => {
        await app.flush().catch(() => {});
        location.reload();
      });
      app.notice(t("update.ready"), { action: reload });
    }
    hadController = true;
  });
  if (registration.waiting) offer(registration.waiting);
  registration.addEventListener("updatefound", () => {
    const installing = registration.installing;
    installing?.addEventListener("statechange", () => {
      if (installing.state === "installed") offer(installing);
    });
  });
  return registration;
}
