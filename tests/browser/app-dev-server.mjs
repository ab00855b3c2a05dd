// A tiny server for looking at the app while it is written: serves
// server/app/ at /app/ with the CSP the real server sends, and passes every
// other path (/v1/…) to a real `fieldsync serve` given as UPSTREAM. Not a
// test and not shipped; the real server embeds server/app/ itself.
//
//   UPSTREAM=http://127.0.0.1:8080 PORT=8123 node tests/browser/app-dev-server.mjs

import http from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const APP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../server/app");
const PORT = Number(process.env.PORT ?? 8123);
const UPSTREAM = process.env.UPSTREAM ? new URL(process.env.UPSTREAM) : null;

export const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; worker-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".webmanifest": "application/manifest+json",
  ".json": "application/json",
};

export function start(port = PORT, upstream = UPSTREAM) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/app") {
      res.writeHead(308, { location: "/app/" }).end();
      return;
    }
    if (url.pathname.startsWith("/app/")) {
      let rel = decodeURIComponent(url.pathname.slice(5)) || "index.html";
      const file = path.resolve(APP, rel);
      if (!file.startsWith(APP + path.sep)) {
        res.writeHead(404).end();
        return;
      }
      try {
        let body = await readFile(file);
        // For trying the update path: SW_BUMP names a file whose text is
        // appended to sw.js as a comment, making a "new version".
        if (rel === "sw.js" && process.env.SW_BUMP) {
          const bump = await readFile(process.env.SW_BUMP, "utf8").catch(() => "");
          if (bump) body = Buffer.concat([body, Buffer.from(`\n// ${bump.replace(/\n/g, " ")}\n`)]);
        }
        res.writeHead(200, {
          "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
          "content-security-policy": CSP,
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
        });
        res.end(body);
      } catch {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      }
      return;
    }
    if (!upstream) {
      res.writeHead(502, { "content-type": "application/json" }).end(JSON.stringify({ error: "no upstream" }));
      return;
    }
    const proxied = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    proxied.on("error", () => res.writeHead(502).end());
    req.pipe(proxied);
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await start();
  console.log(`app on http://127.0.0.1:${PORT}/app/ (upstream ${UPSTREAM ?? "none"})`);
}
