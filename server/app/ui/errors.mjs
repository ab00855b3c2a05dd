// Errors from the device facade, in words the reporter can act on. The
// facade's errors carry a `code` (see /work/notes/app-plan.md); anything
// else becomes a general message with the error's own text as a detail
// line, so nothing is hidden, and nothing is parsed as HTML.

import { t } from "./i18n.mjs";

/** Refusal reason codes of the sync protocol (sync-core/src/protocol.rs `Refusal`). */
export const REFUSAL_REASONS = [
  "bad_signature",
  "unknown_author",
  "revoked_author",
  "not_your_report",
  "review_is_for_coordinators",
  "immutable_field",
  "bad_creation",
  "missing_dependency",
  "invalid_report",
  "session_not_live",
];

/** The words for a refused change's reason code. */
export function refusalText(reason) {
  return REFUSAL_REASONS.includes(reason) ? t(`refusal.${reason}`) : t("refusal.other");
}

/** The error's code, also for errors that are not the facade's own. */
export function errorCode(err) {
  if (!err) return "unknown";
  if (typeof err.code === "string" && err.code) {
    if (err.code === "invite" && err.reason) return `invite_${err.reason}`;
    return err.code;
  }
  if (err.name === "InviteError" && err.reason) return `invite_${err.reason}`;
  if (err.name === "QuotaExceededError" || err.name === "StorageFullError") return "storage_full";
  if (err.status === 507) return "server_full";
  if (err instanceof TypeError && /fetch|network/i.test(String(err.message))) return "network";
  return "unknown";
}

/**
 * { text, detail } for an error: `text` is the translated sentence, `detail`
 * the error's own message for unknown errors (shown small, as text).
 */
export function describeError(err) {
  const d = describe(err);
  return { ...d, full: d.detail ? `${d.text} (${d.detail})` : d.text };
}

function describe(err) {
  const code = errorCode(err);
  switch (code) {
    case "invite_expired":
    case "invite_used":
    case "invite_unknown":
    case "share_code_invalid":
    case "server_full":
    case "storage_full":
    case "clock":
    case "network":
    case "locked":
    case "wrong_passphrase":
    case "no_case_key":
    case "camera_denied":
    case "not_enrolled":
    case "local_damaged":
    case "not_found":
    case "changed":
    case "too_large":
    case "busy":
    case "location_denied":
      return { code, text: t(`error.${code}`), detail: null };
    case "revoked":
      return { code, text: t("error.revoked", { n: Number(err.unsent ?? 0) }), detail: null };
    case "invalid_report":
      return { code, text: t("error.invalid_report"), detail: err.message ? String(err.message) : null };
    case "server":
      return { code, text: t("error.server"), detail: err.message ? String(err.message) : null };
    case "refused":
      return { code, text: t("error.refused", { reason: refusalText(err.reason) }), detail: null };
    default:
      return { code, text: t("error.unknown"), detail: err?.message ? String(err.message) : null };
  }
}
