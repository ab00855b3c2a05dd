// Settings: passphrase, auto-lock, delete-after-sync, language, whether the
// browser will keep the data, the sync bundle, and what this phone is.

import { h, on, field, checkbox } from "./dom.mjs";
import { t, language, LANGUAGES, LANGUAGE_NAMES, formatSize } from "./i18n.mjs";
import { describeError } from "./errors.mjs";
import { downloadBundle } from "./bundle.mjs";
import { showMessage } from "./start.mjs";

const LOCK_CHOICES = [1, 2, 5, 10, 30, 0];

export async function settingsScreen(app) {
  const device = app.device;
  const settings = device.settings ?? {};
  const el = h("section", { class: "screen settings" },
    h("h1", null, t("settings.title")),
    passphraseSection(app, settings),
    lockSection(app, settings),
    deleteSection(app, settings),
    languageSection(app),
    await storageSection(app),
    bundleSection(app),
    aboutSection(app),
  );
  return { el };
}

function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), ...children);
}

function passphraseSection(app, settings) {
  const has = app.hasPassphrase();
  const current = h("input", { type: "password", autocomplete: "current-password" });
  const next = h("input", { type: "password", autocomplete: "new-password" });
  const repeat = h("input", { type: "password", autocomplete: "new-password" });
  const message = h("p", { class: "message", role: "status", hidden: true });
  const button = h("button", { type: "button", class: "primary" }, has ? t("passphrase.change") : t("passphrase.set"));
  on(button, "click", async () => {
    message.classList.add("error");
    if (next.value.length < 8) return showMessage(message, t("passphrase.too_short"));
    if (next.value !== repeat.value) return showMessage(message, t("passphrase.mismatch"));
    button.disabled = true;
    showMessage(message, t("passphrase.working"));
    message.classList.remove("error");
    try {
      await app.device.setPassphrase(has ? current.value : null, next.value);
    } catch (err) {
      message.classList.add("error");
      showMessage(message, describeError(err).full);
      button.disabled = false;
      return;
    }
    await app.passphraseSet();
    app.notice(t("passphrase.done"));
    // The header gains "Lock"; the form changes to "change".
    app.setChrome(true);
    app.route();
  });
  return section(t("passphrase.section"),
    h("p", { class: "hint" }, has ? t("passphrase.is_set") : t("passphrase.not_set")),
    has ? field(t("passphrase.current"), current) : null,
    field(t("passphrase.new"), next),
    field(t("passphrase.repeat"), repeat),
    h("p", { class: "hint" }, t("passphrase.explain")),
    message,
    button,
  );
}

function lockSection(app, settings) {
  const has = app.hasPassphrase();
  const current = Number(settings.lockAfterMinutes ?? 5);
  const select = h("select", { disabled: !has },
    LOCK_CHOICES.map((m) => h("option", { value: String(m), selected: m === current },
      m === 0 ? t("lock.never") : t("lock.minutes", { n: m }))));
  on(select, "change", async () => {
    try {
      await app.device.setSettings({ lockAfterMinutes: Number(select.value) });
    } catch (err) {
      app.showError(err);
    }
  });
  return section(t("lock.section"),
    field(t("lock.label"), select),
    h("p", { class: "hint" }, has ? t("lock.explain") : t("lock.needs_passphrase")),
  );
}

function deleteSection(app, settings) {
  const box = checkbox(t("settings.delete_after_sync"), !!settings.deleteAfterSync);
  on(box.input, "change", async () => {
    try {
      await app.device.setSettings({ deleteAfterSync: box.input.checked });
    } catch (err) {
      box.input.checked = !box.input.checked;
      app.showError(err);
    }
  });
  const removed = Number(app.device.removedCount ?? 0);
  return section(t("settings.delete_section"),
    box.row,
    h("ul", { class: "explain" }, h("li", null, t("settings.delete_off")), h("li", null, t("settings.delete_on"))),
    removed ? h("p", { class: "hint" }, t("reports.removed_count", { n: removed })) : null,
  );
}

function languageSection(app) {
  const select = h("select", { autocomplete: "off" },
    Object.keys(LANGUAGES).map((code) => h("option", { value: code, selected: code === language(), lang: code }, LANGUAGE_NAMES[code])));
  on(select, "change", () => {
    app.setLanguage(select.value);
    app.route();
  });
  return section(t("settings.language_section"), field(t("settings.language"), select));
}

/** Whether the browser may delete the data, said plainly. */
async function storageSection(app) {
  if (!app.persistence) await app.requestPersistence();
  const p = app.persistence ?? { persisted: false, supported: false };
  const ios = isIos();
  const standalone = isStandalone();
  const lines = [];
  if (p.persisted) lines.push(h("p", { class: "ok" }, t("storage.persisted")));
  else lines.push(h("p", { class: "warn" }, p.supported === false ? t("storage.unsupported") : t("storage.not_persisted")));
  if (ios && !standalone) lines.push(h("p", { class: "warn" }, t("storage.ios_home_screen")));
  try {
    const est = await navigator.storage?.estimate?.();
    if (est?.quota) lines.push(h("p", { class: "hint" }, t("storage.usage", { used: formatSize(est.usage ?? 0), quota: formatSize(est.quota) })));
  } catch {
    // No estimate: nothing to show.
  }
  return section(t("storage.section"), ...lines);
}

export function isIos() {
  const ua = navigator.userAgent ?? "";
  // iPadOS reports itself as a Mac; its touch points give it away.
  return /iP(hone|ad|od)/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1);
}

export function isStandalone() {
  return navigator.standalone === true || matchMedia("(display-mode: standalone)").matches;
}

function bundleSection(app) {
  const button = h("button", { type: "button", class: "secondary" }, t("bundle.button"));
  on(button, "click", async () => {
    button.disabled = true;
    await downloadBundle(app);
    button.disabled = false;
  });
  return section(t("bundle.section"), h("p", { class: "hint" }, t("bundle.explain")), button);
}

function aboutSection(app) {
  const info = app.device.info ?? {};
  const row = (label, value) => [h("dt", null, label), h("dd", { class: "text" }, value)];
  return section(t("about.section"),
    h("dl", { class: "about" },
      row(t("about.case"), info.caseName || info.caseId || "—"),
      row(t("about.server"), info.server || location.origin),
      row(t("about.device"), info.deviceId || "—"),
      row(t("about.key"), info.keyFingerprint || t("about.no_key")),
    ),
    keyWarnings(info),
    h("p", { class: "hint" }, t("quick_delete.explain")),
  );
}

/** The case key was taken without a fingerprint, or the server offered one that did not match. */
export function keyWarnings(info) {
  const out = [];
  if (info?.keyOnTrust) out.push(h("p", { class: "warn" }, t("key.on_trust")));
  if (info?.keyRefused?.length) out.push(h("p", { class: "warn" }, t("key.refused")));
  return out;
}
