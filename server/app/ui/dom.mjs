// The only way the app makes DOM (as the review page's dom.js): elements by
// name, attributes by setAttribute from an allow-list, text by text nodes.
// No HTML string is ever parsed, so a report titled `<img src=x onerror=…>`
// can only ever become text. Handlers are attached with addEventListener,
// never as attributes (the CSP forbids inline handlers anyway).
// A copy, not an import of /assets/dom.js: the app must work offline from
// its own cache, and /assets/ is not part of it.

const ALLOWED = new Set([
  "class", "id", "href", "type", "name", "value", "placeholder", "title", "for", "role",
  "aria-live", "aria-label", "aria-current", "aria-busy", "aria-describedby", "aria-pressed",
  "aria-hidden", "aria-invalid", "aria-valuenow", "aria-valuemin", "aria-valuemax", "aria-labelledby",
  "hidden", "disabled", "checked", "selected", "multiple", "accept", "capture",
  "min", "max", "step", "list", "autocomplete", "autocapitalize", "enterkeyhint", "download", "src", "alt",
  "lang", "dir", "datetime", "rel", "tabindex", "open", "inputmode", "pattern", "required",
  "spellcheck", "maxlength", "rows", "readonly",
  // SVG
  "viewBox", "d", "cx", "cy", "r", "x", "y", "width", "height", "focusable", "fill", "stroke", "stroke-width",
]);

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("data-")) {
      el.setAttribute(key, String(value));
    } else if (ALLOWED.has(key)) {
      if (key === "href" || key === "src") checkUrl(value);
      el.setAttribute(key, value === true ? "" : String(value));
    } else {
      throw new Error(`attribute ${key} is not allowed`);
    }
  }
  append(el, children);
  return el;
}

/** Only same-origin paths, fragments and blob: URLs become links or sources. */
function checkUrl(value) {
  const text = String(value);
  if (!(text.startsWith("/") && !text.startsWith("//")) && !text.startsWith("blob:") && !text.startsWith("#")) {
    throw new Error(`refusing URL ${text}`);
  }
}

/** Appends children: nodes as they are, strings and numbers as text, arrays flattened. */
export function append(el, children) {
  for (const child of children ?? []) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** h("a", {href: "#reports"}, "text", child, ...) */
export function h(tag, attrs, ...children) {
  return apply(document.createElement(tag), attrs, children);
}

/** An SVG element, built the same way. */
export function s(tag, attrs, ...children) {
  return apply(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Listens, and returns the element (for building inline). */
export function on(el, event, handler, options) {
  el.addEventListener(event, handler, options);
  return el;
}

let nextId = 0;
/** A fresh element id, for <label for>. */
export function uid(prefix = "f") {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * A labelled control: <div class="field"><label for=id>text</label>control</div>.
 * `page.getByLabel(text)` finds the control.
 */
export function field(labelText, control, ...extra) {
  const id = control.id || uid();
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, labelText), control, ...extra);
}

/** A checkbox with its label after it, the whole row tappable. */
export function checkbox(labelText, checked, attrs = {}) {
  const input = h("input", { type: "checkbox", id: uid(), ...attrs, checked: !!checked });
  const row = h("div", { class: "check" }, input, h("label", { for: input.id }, labelText));
  return { row, input };
}
