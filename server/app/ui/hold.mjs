// "Quick delete": a button that acts only after being held for 3 seconds.
// Letting go, sliding off or a cancelled touch stops it; the remaining
// seconds are shown on the button while it is held. Keyboard: hold Space or
// Enter. The accessible name stays "Quick delete" throughout.

import { h, on } from "./dom.mjs";
import { t } from "./i18n.mjs";

export const HOLD_MS = 3000;

export function holdButton(label, action, { holdMs = HOLD_MS } = {}) {
  const text = h("span", { class: "hold-text" }, label);
  const fill = h("span", { class: "hold-fill", "aria-hidden": "true" });
  const button = h("button", { type: "button", class: "danger hold", "aria-label": label }, fill, text);
  let timer = null;
  let ticker = null;
  let started = 0;

  const reset = () => {
    clearTimeout(timer);
    clearInterval(ticker);
    timer = null;
    ticker = null;
    button.classList.remove("holding");
    fill.style.transform = "scaleX(0)";
    text.textContent = label;
  };
  const tick = () => {
    const left = Math.max(0, holdMs - (Date.now() - started));
    fill.style.transform = `scaleX(${1 - left / holdMs})`;
    text.textContent = t("quick_delete.holding", { n: Math.ceil(left / 1000) });
  };
  // No pointer capture: sliding the finger off the button must cancel.
  const start = () => {
    if (timer) return;
    started = Date.now();
    button.classList.add("holding");
    tick();
    ticker = setInterval(tick, 100);
    timer = setTimeout(() => {
      clearInterval(ticker);
      text.textContent = t("quick_delete.deleting");
      button.disabled = true;
      action();
    }, holdMs);
  };
  const cancel = () => {
    if (timer && !button.disabled) reset();
  };

  on(button, "pointerdown", (e) => {
    if (e.button !== undefined && e.button !== 0) return;
    e.preventDefault();
    start();
  });
  on(button, "pointerup", cancel);
  on(button, "pointercancel", cancel);
  on(button, "pointerleave", cancel);
  on(button, "contextmenu", (e) => e.preventDefault());
  on(button, "keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) {
      e.preventDefault();
      start();
    }
  });
  on(button, "keyup", (e) => {
    if (e.key === " " || e.key === "Enter") cancel();
  });
  on(button, "blur", cancel);
  // A click alone (a tap) only says how it works.
  on(button, "click", (e) => {
    e.preventDefault();
    if (!timer) {
      text.textContent = t("quick_delete.hint");
      setTimeout(() => {
        if (!timer) text.textContent = label;
      }, 2000);
    }
  });
  return button;
}
