// Renders the app's PNG icons from SVG in Debian's chromium (no network,
// no image library): icons/icon-192.png and icon-512.png from icons/icon.svg,
// and icon-maskable-512.png from the maskable design below (full-bleed
// background, the mark inside the central 80 % circle that launchers keep).
//
//   node tests/browser/app-icons.mjs

import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch } from "./lib.mjs";

const ICONS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../server/app/icons");

// The same mark as icon.svg, scaled to 60 % around the centre, on a square.
const MASKABLE = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512"><rect width="512" height="512" fill="#1d3b53"/><g transform="translate(256 256) scale(0.6) translate(-256 -256)"><path d="M128 144h256M128 256h176M128 368h96" stroke="#f4f1e8" stroke-width="44" stroke-linecap="round"/><circle cx="368" cy="368" r="48" fill="#e0533d"/></g></svg>`;

async function render(page, svg, size, out) {
  await page.setViewportSize({ width: size, height: size });
  const src = `data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}`;
  await page.setContent(`<!doctype html><html><body style="margin:0;background:transparent"><img src="${src}" width="${size}" height="${size}" style="display:block"></body></html>`);
  await page.waitForFunction(() => document.images[0]?.complete);
  writeFileSync(path.join(ICONS, out), await page.screenshot({ omitBackground: true, clip: { x: 0, y: 0, width: size, height: size } }));
  console.log(`wrote icons/${out}`);
}

const { page, close } = await launch();
try {
  const svg = readFileSync(path.join(ICONS, "icon.svg"), "utf8");
  await render(page, svg, 192, "icon-192.png");
  await render(page, svg, 512, "icon-512.png");
  await render(page, MASKABLE, 512, "icon-maskable-512.png");
} finally {
  await close();
}
