// Attachments, decrypted in this browser only: the sealed header (which the
// report carries) opens with the case key of its epoch to give the name,
// type and size: an FSA1 header with that epoch's v1 symmetric key, an
// FSA2 header with that epoch's case private key (HPKE); crypto.js
// dispatches on the magic. The blob is fetched as ciphertext and decrypted
// chunk by chunk (crypto.js BlobDecryptor, the same for both versions),
// checked against the blob id the signed report names and the SHA-256 its
// header records, and shown through a blob: URL. Any failure shows what
// failed and nothing of the file.

import { ApiError, SessionEnded, api } from "./api.js";
import { BlobDecryptor, fromBase64, openHeader } from "./crypto.js";
import { h, on, replace } from "./dom.js";
import { shortId, sizeLabel, timeLabel } from "./format.js";
import { MISSING_KEYS, getCaseKeys } from "./keys.js";

/** Images at most this large are decrypted as soon as the report opens. */
const AUTO_IMAGE_BYTES = 25 * 1024 * 1024;

const IMAGE = /^image\/(jpeg|png|gif|webp|avif|bmp)$/;
const MEDIA = /^(audio|video)\/[a-z0-9][a-z0-9.+-]*$/;

/** What the page may show inline: images as <img>, audio and video as players; nothing else (no SVG, no HTML). */
export function inlineKind(mediaType) {
  const type = String(mediaType).toLowerCase();
  if (IMAGE.test(type)) return "image";
  if (MEDIA.test(type)) return type.startsWith("audio/") ? "audio" : "video";
  return null;
}

/** A file name safe to offer as a download name (no path, no control characters). */
export function downloadName(name) {
  const base = String(name).split(/[\\/]/).pop().replace(/[\u0000-\u001f\u007f]/g, "").trim();
  return base && base !== "." && base !== ".." ? base.slice(0, 200) : "attachment";
}

/**
 * Every attachment of one report view. Keeps decrypted files across
 * re-renders (an edit re-renders the report) and revokes their blob: URLs
 * when the view closes.
 */
export class Attachments {
  constructor() {
    this.items = new Map();
    this.urls = [];
    this.closed = false;
    this.abort = new AbortController();
  }

  close() {
    this.closed = true;
    this.abort.abort();
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }

  /** The list for a report's `attachments`. */
  render(attachments) {
    if (!attachments?.length) return h("p", { class: "empty" }, "No attachment.");
    return h("ul", { class: "attachments" }, attachments.map((a) => this.item(a)));
  }

  item(att) {
    const known = this.items.get(att.id);
    if (known && known.blob === att.blob) return known.el;
    const el = h("li", { class: "attachment", "data-attachment-id": att.id, "data-blob": att.blob });
    const entry = { el, blob: att.blob };
    this.items.set(att.id, entry);
    this.describe(att, el).catch((e) => {
      if (e instanceof SessionEnded) throw e;
      replace(el, h("p", { class: "error", role: "alert" }, `Attachment ${shortId(att.id)}: ${e.message}`));
    });
    return el;
  }

  async describe(att, el) {
    const keys = getCaseKeys();
    const info = h("div", { class: "att-info" });
    const status = h("p", { class: "att-status", role: "status" });
    const view = h("div", { class: "att-view" });
    const actions = h("div", { class: "att-actions" });
    replace(el, info, view, status, actions);
    if (!keys) {
      replace(info, h("span", { class: "att-name" }, `Attachment ${shortId(att.id)}`), ` · ${sizeLabel(att.size)} encrypted`);
      status.textContent = `Cannot decrypt: ${MISSING_KEYS}.`;
      status.classList.add("error");
      return;
    }
    const head = fromBase64(att.header ?? "");
    const { meta, epoch, version } = await openHeader(head, keys);
    if (Number(att.key_epoch) !== epoch) throw new Error(`the header says case key epoch ${epoch} but the report says ${att.key_epoch}`);
    el.setAttribute("data-name", meta.name);
    el.setAttribute("data-envelope", `v${version}`);
    replace(
      info,
      h("span", { class: "att-name" }, meta.name || "(no name)"),
      h("span", { class: "att-type" }, meta.media_type || "unknown type"),
      h("span", { class: "att-size" }, sizeLabel(meta.size)),
      meta.captured_at ? h("span", { class: "att-captured" }, `captured ${timeLabel(meta.captured_at)}`) : null,
    );
    const kind = inlineKind(meta.media_type);
    const go = h("button", { type: "button", class: "decrypt" }, kind === "image" ? "Decrypt and show" : kind ? "Decrypt and play" : "Decrypt for download");
    on(go, "click", () => {
      go.disabled = true;
      this.decrypt(att, head, meta, kind, { view, status, actions }).finally(() => {
        go.disabled = false;
      });
    });
    actions.append(go);
    if (kind === "image" && meta.size <= AUTO_IMAGE_BYTES) go.click();
  }

  async decrypt(att, head, meta, kind, { view, status, actions }) {
    status.classList.remove("error");
    status.textContent = "Fetching the encrypted file…";
    try {
      const response = await api.blob(att.blob);
      const total = Number(att.size) || Number(response.headers.get("Content-Length")) || 0;
      const decryptor = new BlobDecryptor(getCaseKeys(), { blobId: att.blob, expectedHead: head });
      const parts = [];
      const reader = response.body.getReader();
      let received = 0;
      this.abort.signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
      for (;;) {
        const { done, value } = await reader.read();
        if (done || this.closed) break;
        received += value.length;
        parts.push(...(await decryptor.push(value)));
        status.textContent = `Decrypting… ${total ? Math.floor((100 * received) / total) : 0}%`;
      }
      if (this.closed) return;
      parts.push(...(await decryptor.finish()));
      const type = kind ? meta.media_type : "application/octet-stream";
      const file = new Blob(parts, { type });
      const url = URL.createObjectURL(file);
      const downloadUrl = URL.createObjectURL(new Blob([file], { type: "application/octet-stream" }));
      this.urls.push(url, downloadUrl);
      const attrs = { src: url, "data-sha256": meta.sha256, "data-verified": "sha256" };
      if (kind === "image") replace(view, h("img", { ...attrs, class: "att-image", alt: meta.name }));
      else if (kind === "audio") replace(view, h("audio", { ...attrs, controls: true, class: "att-audio" }));
      else if (kind === "video") replace(view, h("video", { ...attrs, controls: true, class: "att-video" }));
      else replace(view);
      status.textContent = `Decrypted in this browser; SHA-256 matches (${meta.sha256.slice(0, 16)}…).`;
      replace(actions, h("a", { class: "download button", href: downloadUrl, download: downloadName(meta.name) }, `Download ${downloadName(meta.name)}`));
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      replace(view);
      status.classList.add("error");
      status.setAttribute("role", "alert");
      status.textContent = e instanceof ApiError
        ? e.status === 404
          ? `The encrypted file is not on the server (yet): ${e.message}. The reporter's device uploads it on its next sync.`
          : `Could not fetch the encrypted file: ${e.message}.`
        : `Refused: ${e.message}. Nothing of this file is shown.`;
    }
  }
}
