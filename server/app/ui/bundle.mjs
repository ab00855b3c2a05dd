// "Save a sync bundle": everything the server has not acknowledged, in the
// CLI's signed bundle format, as a download a coordinator can
// `fieldsync import`. Nothing in it is readable without the case key.

import { h } from "./dom.mjs";
import { t } from "./i18n.mjs";

export async function downloadBundle(app) {
  let bytes;
  try {
    bytes = await app.device.bundle();
  } catch (err) {
    app.showError(err);
    return false;
  }
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  const day = new Date().toISOString().slice(0, 10);
  const a = h("a", { href: url, download: `fieldsync-${day}.bundle`, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later: some browsers read the URL after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  app.notice(t("bundle.saved"));
  return true;
}
