// The only way the page makes DOM: elements by name, attributes by
// setAttribute from an allow-list, text by text nodes. No HTML string is
// ever parsed, so report text (a title of `<img src=x onerror=...>`)
// can only ever become text. Event handlers are attached with
// addEventListener by the caller, never as attributes.

const ALLOWED = new Set([
  "class", "id", "href", "type", "name", "value", "placeholder", "title", "for", "role",
  "aria-live", "aria-label", "aria-current", "aria-busy", "hidden", "disabled", "checked", "selected",
  "min", "max", "step", "list", "autocomplete", "controls", "download", "src", "alt", "lang", "dir",
  "datetime", "colspan", "rel", "tabindex", "open", "inputmode", "pattern", "required", "spellcheck",
  // SVG
  "viewBox", "cx", "cy", "r", "x", "y", "x1", "y1", "x2", "y2", "width", "height", "preserveAspectRatio",
  "text-anchor", "focusable",
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

/** Only same-origin paths and blob: URLs of this page become links or sources. */
function checkUrl(value) {
  const text = String(value);
  if (!(text.startsWith("/") && !text.startsWith("//")) && !text.startsWith("blob:") && !text.startsWith("#") && !text.startsWith("?")) {
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

/** h("a", {href: "/"}, "text", child, ...) */
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
