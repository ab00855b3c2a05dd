// A new report: the form over a draft, saved on every change (debounced)
// and at once when the page is hidden or left, so a reload, a crash or a
// killed tab loses at most the last fraction of a second of typing.

import { h, on, replace, uid } from "./dom.mjs";
import { t, formatTime, formatSize, formatDateTime } from "./i18n.mjs";
import { describeError } from "./errors.mjs";
import { reportForm, emptyValues } from "./form.mjs";

export const SAVE_DELAY_MS = 400;

export async function recordScreen(app, draftId) {
  const device = app.device;
  let stored = null;
  if (draftId) stored = (await device.drafts()).find((d) => d.id === draftId) ?? null;
  const draft = stored ?? { id: newId(), ...emptyValues(), files: [] };
  draft.files ??= [];
  let exists = !!stored; // in the store already
  let timer = null;
  let saving = Promise.resolve();
  let dirty = false;

  const status = h("p", { class: "draft-status", role: "status" },
    exists ? t("draft.saved_at", { time: formatTime(stored.savedAt ?? Date.now()) }) : t("draft.new"));

  const save = () => {
    clearTimeout(timer);
    timer = null;
    if (!dirty) return saving;
    dirty = false;
    const snapshot = structuredClone(draft);
    saving = saving.then(async () => {
      try {
        const id = await device.saveDraft(snapshot);
        // The device keeps the id it was given when it has the right form.
        if (typeof id === "string" && id !== draft.id) draft.id = id;
        if (!exists) {
          exists = true;
          // A reload now comes back to this draft, not to an empty form.
          if (!location.hash.startsWith("#draft/")) history.replaceState(null, "", `#draft/${encodeURIComponent(draft.id)}`);
        }
        status.textContent = t("draft.saved_at", { time: formatTime(Date.now()) });
        status.classList.remove("error");
      } catch (err) {
        dirty = true;
        status.textContent = describeError(err).full;
        status.classList.add("error");
      }
    });
    return saving;
  };
  const changed = () => {
    dirty = true;
    status.textContent = t("draft.saving");
    clearTimeout(timer);
    timer = setTimeout(save, SAVE_DELAY_MS);
  };

  const form = reportForm(draft, changed, { formatTime: (at, approximate) => formatDateTime(at, { approximate }) });
  const files = fileSection(app, draft, { save: async () => { dirty = true; await save(); }, changed });

  const message = h("p", { class: "message error", role: "alert", hidden: true });
  const saveButton = h("button", { type: "button", class: "primary big" }, t("form.save_report"));
  on(saveButton, "click", async () => {
    const problem = form.validate();
    if (problem) {
      message.textContent = problem.text;
      message.hidden = false;
      problem.focus?.focus();
      return;
    }
    message.hidden = true;
    saveButton.disabled = true;
    // No draft write first: saveReport stores the report and marks the draft
    // saved in one transaction, so a crash leaves one or the other. A draft
    // write still waiting is dropped, one under way is waited for (landing
    // after the report, it would bring the draft back).
    clearTimeout(timer);
    timer = null;
    await saving;
    const wasDirty = dirty;
    dirty = false;
    try {
      await device.saveReport(structuredClone(draft));
    } catch (err) {
      message.textContent = describeError(err).full;
      message.hidden = false;
      saveButton.disabled = false;
      // Not saved: what is on screen is kept as a draft.
      if (wasDirty || !exists) {
        dirty = true;
        save();
      }
      return;
    }
    exists = false;
    app.notice(t("form.saved"));
    app.go("#reports");
    app.sync?.soon();
  });

  const discard = h("button", { type: "button", class: "ghost" }, t("draft.discard"));
  let armed = false;
  on(discard, "click", async () => {
    // Two taps, no dialog: the first only asks.
    if (!armed) {
      armed = true;
      discard.textContent = t("draft.discard_confirm");
      setTimeout(() => {
        armed = false;
        discard.textContent = t("draft.discard");
      }, 4000);
      return;
    }
    clearTimeout(timer);
    dirty = false;
    await saving;
    if (exists) await device.deleteDraft(draft.id).catch((err) => app.showError(err));
    exists = false;
    app.go("#new");
  });

  const flushNow = () => {
    if (dirty) save();
  };
  const onHidden = () => {
    if (document.visibilityState === "hidden") flushNow();
  };
  document.addEventListener("visibilitychange", onHidden);
  window.addEventListener("pagehide", flushNow);

  const el = h("section", { class: "screen record" },
    h("div", { class: "screen-head" }, h("h1", null, t("record.title")), status),
    form.el,
    files.el,
    message,
    h("div", { class: "actions" }, saveButton, discard),
  );
  return {
    el,
    async flush() {
      if (dirty) await save();
      await saving;
    },
    async leave() {
      document.removeEventListener("visibilitychange", onHidden);
      window.removeEventListener("pagehide", flushNow);
      if (dirty) await save();
      await saving;
    },
  };
}

/** 32 hex digits: the draft's id becomes the report's id (sync-core's ReportId form). */
function newId() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** "Add photo, video or audio": each file is sealed at once by the device. */
function fileSection(app, draft, { save, changed }) {
  const input = h("input", { type: "file", accept: "image/*,video/*,audio/*", capture: "environment", multiple: true, class: "file-input" });
  input.id = uid();
  const list = h("ul", { class: "files" });
  const status = h("p", { class: "message", role: "status", hidden: true });
  const render = () =>
    replace(list, draft.files.map((f) =>
      h("li", { class: "file" }, h("span", { class: "text name" }, f.name || "—"), h("span", { class: "size" }, formatSize(f.size)),
        h("span", { class: "sealed" }, t("files.sealed")))));
  on(input, "change", async () => {
    const chosen = [...(input.files ?? [])];
    input.value = "";
    if (!chosen.length) return;
    // The draft must exist before a file can belong to it.
    await save();
    for (const file of chosen) {
      status.hidden = false;
      status.classList.remove("error");
      status.textContent = t("files.sealing", { name: file.name || "—" });
      try {
        const entry = await app.device.addFile(draft.id, file);
        if (!draft.files.some((f) => f.id === entry.id)) draft.files.push(entry);
        render();
        changed();
      } catch (err) {
        status.textContent = describeError(err).full;
        status.classList.add("error");
        return;
      }
    }
    status.hidden = true;
  });
  // The picker closed with nothing chosen: perhaps the camera was refused.
  on(input, "cancel", () => {
    status.hidden = false;
    status.classList.remove("error");
    status.textContent = t("error.camera_denied");
  });
  render();
  const el = h("fieldset", { class: "group files-group" },
    h("legend", null, t("files.legend")),
    list,
    h("label", { for: input.id, class: "button secondary file-button" }, t("files.add")),
    input,
    status,
    h("p", { class: "hint" }, t("files.explain")),
  );
  return { el };
}
