// The screens before the app proper: not a secure context, not enrolled
// yet, enrolling from an invite link, and unlocking.

import { h, on, field, checkbox } from "./dom.mjs";
import { t } from "./i18n.mjs";
import { describeError } from "./errors.mjs";
import { holdButton } from "./hold.mjs";

const MAX_TOKEN = 512;
const MAX_FINGERPRINT = 256;

/**
 * The invite in a fragment or a whole link: "#invite=TOKEN&fp=FP" →
 * {token, fingerprint|null}, or null when there is none or it is malformed.
 */
export function parseInvite(text) {
  const raw = String(text ?? "").trim();
  const hashAt = raw.indexOf("#");
  const fragment = hashAt >= 0 ? raw.slice(hashAt + 1) : raw;
  let params;
  try {
    params = new URLSearchParams(fragment);
  } catch {
    return null;
  }
  const token = params.get("invite");
  if (!token || token.length > MAX_TOKEN || /\s/.test(token)) return null;
  const fp = params.get("fp");
  const fingerprint = fp && fp.length <= MAX_FINGERPRINT && !/\s/.test(fp) ? fp : null;
  return { token, fingerprint };
}

function screen(...children) {
  return h("section", { class: "screen start" }, ...children);
}

export function insecureScreen() {
  const el = screen(
    h("h1", null, t("insecure.title")),
    h("p", null, t("insecure.body")),
    h("p", { class: "hint" }, t("insecure.hint")),
  );
  return { el };
}

export function firstRunScreen(app) {
  const link = h("input", { type: "url", autocomplete: "off", autocapitalize: "off", spellcheck: "false", inputmode: "url" });
  const message = h("p", { class: "message", role: "alert", hidden: true });
  const go = h("button", { type: "button", class: "primary" }, t("action.continue"));
  on(go, "click", () => {
    const invite = parseInvite(link.value);
    if (!invite) {
      message.textContent = t("first_run.bad_link");
      message.hidden = false;
      return;
    }
    if (!app.device) {
      // After an erase nothing is open: start the app anew with the invite.
      const fp = invite.fingerprint ? `&fp=${encodeURIComponent(invite.fingerprint)}` : "";
      location.replace(`${location.pathname}#invite=${encodeURIComponent(invite.token)}${fp}`);
      location.reload();
      return;
    }
    app.invite = invite;
    app.showScreen(enrollScreen(app, invite));
  });
  const el = screen(
    h("h1", null, t("first_run.title")),
    h("p", null, t("first_run.body")),
    field(t("first_run.link_label"), link),
    message,
    go,
  );
  return { el };
}

export function enrollScreen(app, invite) {
  const del = checkbox(t("settings.delete_after_sync"), false);
  const pass = h("input", { type: "password", autocomplete: "new-password" });
  const repeat = h("input", { type: "password", autocomplete: "new-password" });
  const message = h("p", { class: "message error", role: "alert", hidden: true });
  const join = h("button", { type: "button", class: "primary big" }, t("enroll.join"));

  on(join, "click", async () => {
    message.hidden = true;
    if (pass.value !== repeat.value) {
      showMessage(message, t("passphrase.mismatch"));
      return;
    }
    if (pass.value && pass.value.length < 8) {
      showMessage(message, t("passphrase.too_short"));
      return;
    }
    join.disabled = true;
    join.textContent = t("enroll.joining");
    try {
      await app.device.enroll({
        server: location.origin,
        token: invite.token,
        fingerprint: invite.fingerprint,
        deleteAfterSync: del.input.checked,
      });
    } catch (err) {
      showMessage(message, describeError(err).full);
      join.disabled = false;
      join.textContent = t("enroll.join");
      return;
    }
    app.invite = null;
    try {
      if (pass.value) {
        await app.device.setPassphrase(null, pass.value);
        await app.passphraseSet();
      }
    } catch (err) {
      // Enrolled: the passphrase can be set again in the settings.
      app.showError(err);
    }
    await app.unlocked();
  });

  const el = screen(
    h("h1", null, t("enroll.title")),
    h("p", null, t("enroll.body", { server: location.host })),
    invite.fingerprint ? null : h("p", { class: "hint warn" }, t("enroll.no_fingerprint")),
    h("fieldset", { class: "choice" },
      h("legend", null, t("enroll.delete_legend")),
      del.row,
      h("ul", { class: "explain" },
        h("li", null, t("settings.delete_off")),
        h("li", null, t("settings.delete_on")),
      ),
    ),
    h("fieldset", { class: "choice" },
      h("legend", null, t("enroll.passphrase_legend")),
      field(t("passphrase.new_optional"), pass),
      field(t("passphrase.repeat"), repeat),
      h("p", { class: "hint" }, t("passphrase.explain")),
    ),
    message,
    join,
  );
  return { el };
}

export function unlockScreen(app) {
  const pass = h("input", { type: "password", autocomplete: "current-password", enterkeyhint: "go" });
  const message = h("p", { class: "message error", role: "alert", hidden: true });
  const button = h("button", { type: "button", class: "primary big" }, t("unlock.button"));
  const submit = async () => {
    if (!pass.value) return;
    button.disabled = true;
    let result;
    try {
      result = await app.device.unlock(pass.value);
    } catch (err) {
      showMessage(message, describeError(err).full);
      button.disabled = false;
      return;
    }
    pass.value = "";
    button.disabled = false;
    if (result?.wiped) {
      app.showScreen(wipedScreen(app));
    } else if (result?.ok) {
      await app.unlocked();
    } else {
      showMessage(message, t("unlock.wrong", { n: Number(result?.attemptsLeft ?? 0) }));
      pass.focus();
    }
  };
  on(button, "click", submit);
  on(pass, "keydown", (e) => {
    if (e.key === "Enter") submit();
  });
  const el = screen(
    h("h1", null, t("unlock.title")),
    h("p", null, t("unlock.body")),
    field(t("passphrase.label"), pass),
    message,
    button,
    h("div", { class: "danger-zone" }, holdButton(t("quick_delete.button"), () => app.quickDelete()),
      h("p", { class: "hint" }, t("quick_delete.explain"))),
  );
  return { el, focus: pass };
}

function wipedScreen(app) {
  const el = screen(
    h("h1", null, t("wiped.title")),
    h("p", null, t("wiped.body")),
    on(h("button", { type: "button", class: "primary" }, t("action.continue")), "click", () => app.showErased()),
  );
  return { el };
}

export function showMessage(el, text) {
  el.textContent = text;
  el.hidden = false;
}
