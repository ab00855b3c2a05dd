#!/usr/bin/env node
// A stand-in for `fieldsync serve`'s web side, implementing
// /work/web-contract.md closely enough to develop and test the page
// without the Rust server: static assets from server/web/ with the
// contract's headers, one-time login tokens checked like the server does,
// sessions, CSRF, the read API with filters and cursors, blobs sealed in
// the envelope formats (FSA1 and FSA2), and prepare/commit with a real Ed25519 check of the
// page's signature. A dev tool: the real checks run against the real server.
//
//   node tests/browser/mock-server.mjs [--port 0] [--reports 300] [--expect /tmp/expect.json]
//
// Prints one JSON line: {"url", "login_link", "expect"}. POST /mock/login-link
// gives a fresh one-time link (for repeated benchmark runs).

import http from "node:http";
import crypto from "node:crypto";
import zlib from "node:zlib";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { caseKeyPair, sealV1, sealV2, shareCode } from "./envelope-node.mjs";
import * as A from "@automerge/automerge";

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.resolve(here, "../../server/web");

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const PORT = Number(args.port ?? 0);
const REPORTS = Number(args.reports ?? 300);
const EXPECT_PATH = args.expect ?? null;

export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
export const HOSTILE = "<img src=x onerror=alert(1)>";
const HOSTILE_SCRIPT = "<script>alert(2)</script>";
const HOSTILE_SVG = '"><svg onload=alert(3)>';

// ------------------------------------------------------------ keys, tokens

let seed = 42;
function rand() {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
}
const pick = (list) => list[Math.floor(rand() * list.length)];

function keyFromSeed(s) {
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), s]);
  return crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" });
}
function publicOf(privateKey) {
  const spki = crypto.createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - 32);
}
function publicKeyObject(raw) {
  return crypto.createPublicKey({ key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), raw]), format: "der", type: "spki" });
}
const deviceIdOf = (pub) => crypto.createHash("sha256").update(pub).digest("hex").slice(0, 32);

const caseName = "almaty-2016";
const caseId = crypto.randomBytes(16).toString("hex");
// A case that moved to key model v2: epochs 1 and 2 are old symmetric keys
// (FSA1 attachments), epoch 3 is the case key pair (FSA2 attachments). The
// link carries all three, as `fieldsync web-login` prints them.
const caseKeys = new Map([[1, crypto.randomBytes(32)], [2, crypto.randomBytes(32)]]);
const casePair = caseKeyPair();
const V2_EPOCH = 3;
const shareCodes = () => [...[...caseKeys].map(([e, key]) => shareCode(1, e, key)), shareCode(2, V2_EPOCH, casePair.priv)];

const coordSeed = crypto.randomBytes(32);
const coordKey = keyFromSeed(coordSeed);
const coordPub = publicOf(coordKey);
const coordinator = deviceIdOf(coordPub);
const reporters = Array.from({ length: 4 }, () => deviceIdOf(crypto.randomBytes(32)));
const devices = [
  { device_id: coordinator, role: "coordinator", revoked_at: null },
  ...reporters.map((id, i) => ({ device_id: id, role: "reporter", revoked_at: i === 3 ? "2016-06-01T00:00:00Z" : null })),
];

const usedNonces = new Set();
const sessions = new Map();

function makeLoginLink(base) {
  const sessionSeed = crypto.randomBytes(32);
  const sessionPub = publicOf(keyFromSeed(sessionSeed));
  const now = Math.floor(Date.now() / 1000);
  const body = Buffer.alloc(100);
  body.write("FSW1", 0, "latin1");
  coordPub.copy(body, 4);
  sessionPub.copy(body, 36);
  body.writeBigUInt64BE(BigInt(now + 300), 68);
  body.writeBigUInt64BE(BigInt(now + 8 * 3600), 76);
  crypto.randomBytes(16).copy(body, 84);
  const sig = crypto.sign(null, Buffer.concat([Buffer.from("fieldsync web-login v1\0", "latin1"), body]), coordKey);
  const t = Buffer.concat([body, sig]).toString("base64url");
  const k = shareCodes().join(",");
  return `${base}/login#t=${t}&k=${k}&s=${sessionSeed.toString("base64url")}`;
}

// --------------------------------------------------------------- envelopes

function seal(plain, { name, mediaType, epoch = 2, capturedAt = null }) {
  const options = { name, mediaType, capturedAt, epoch };
  return epoch === V2_EPOCH ? sealV2(plain, { ...options, pub: casePair.pub }) : sealV1(plain, { ...options, key: caseKeys.get(epoch) });
}

function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = y * (width * 3 + 1) + 1 + x * 3;
      raw[o] = (x * 255) / width;
      raw[o + 1] = (y * 255) / height;
      raw[o + 2] = ((x ^ y) * 7) & 0xff;
    }
  }
  return Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

// ------------------------------------------------------------------ reports

const blobs = new Map();
const reports = [];
const byId = new Map();

const PLACES = [
  ["Bus stop, Abai Ave", 43.2389, 76.8897], ["Republic Square", 43.2383, 76.9453], ["District police station", 43.2565, 76.9286],
  ["Central Park gate", 43.2625, 76.9667], ["Old Square", 43.2601, 76.9456], ["Railway station Almaty-2", 43.2775, 76.9389], ["", null, null],
];
const TAGS = ["arrest", "detention", "police", "rally", "eviction", "violence", "journalist", "court"];
const TITLES = ["Arrest at the bus stop", "Detention near the square", "Journalist stopped", "Rally dispersed", "Eviction notice served", "Search of an apartment", "Court hearing", "Release from custody"];

function addReport(r) {
  reports.push(r);
  byId.set(r.id, r);
}

function baseReport(i, extra = {}) {
  const day = 1 + Math.floor((i / Math.max(REPORTS, 1)) * 60);
  const date = new Date(Date.UTC(2016, 4, day, 0, 0, 0));
  const ymd = date.toISOString().slice(0, 10);
  const hh = String(6 + Math.floor(rand() * 16)).padStart(2, "0");
  const mm = String(Math.floor(rand() * 60)).padStart(2, "0");
  const offset = rand() < 0.9 ? "+06:00" : pick(["+03:00", "Z"]);
  const [place, lat, lon] = pick(PLACES);
  const jitter = () => (rand() - 0.5) * 0.01;
  const tags = [...new Set([pick(TAGS), ...(rand() < 0.4 ? [pick(TAGS)] : [])])].sort();
  const reporter = pick(reporters);
  const occurred = `${ymd}T${hh}:${mm}:00${offset}`;
  const status = pick(["unverified", "unverified", "verified", "disputed"]);
  return {
    id: crypto.createHash("sha256").update(`report ${i}`).digest("hex").slice(0, 32),
    case: caseId,
    created_by: reporter,
    created_at: `${ymd}T${hh}:${mm}:30Z`,
    occurred_at: occurred,
    approximate: rand() < 0.3,
    place: { name: place, lat: lat === null ? null : +(lat + jitter()).toFixed(5), lon: lon === null ? null : +(lon + jitter()).toFixed(5) },
    title: `${pick(TITLES)} #${i}`,
    description: `Report number ${i}. Two officers approached and asked for documents.\nThe person was taken to a car.`,
    people: [{ name: `Person ${i}`, role: "detainee", note: "" }],
    tags,
    timeline: rand() < 0.5 ? [{ at: `${ymd}T${hh}:${mm}:00${offset}`, approximate: false, text: "taken to the police car" }] : [],
    review: { status, note: status === "unverified" ? "" : "checked with a witness", by: status === "unverified" ? null : coordinator, at: status === "unverified" ? null : `${ymd}T23:00:00+06:00` },
    attachments: [],
    history: [{ actor: reporter, device_id: reporter, via_web_session: false, time: `${ymd}T${hh}:${mm}:30Z`, received_at: `${ymd}T${hh}:${mm}:45Z`, signature_verified: true, message: "", fields: ["title", "occurred_at", "place", "description", "tags"] }],
    conflicts: [],
    ...extra,
  };
}

for (let i = 0; i < REPORTS; i++) addReport(baseReport(i));

const image = png(96, 64);
const sealedImage = seal(image, { name: "bus-stop.png", mediaType: "image/png", epoch: V2_EPOCH, capturedAt: "2016-05-21T10:41:00+06:00" });
blobs.set(sealedImage.id, sealedImage.blob);
const big = crypto.randomBytes(200_000);
const sealedBig = seal(big, { name: "statement.bin", mediaType: "application/octet-stream", epoch: 1 });
blobs.set(sealedBig.id, sealedBig.blob);
function wav(seconds) {
  const rate = 8000;
  const samples = Buffer.alloc(rate * seconds * 2);
  for (let i = 0; i < rate * seconds; i++) samples.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 2 * i);
  const head = Buffer.alloc(44);
  head.write("RIFF", 0, "latin1");
  head.writeUInt32LE(36 + samples.length, 4);
  head.write("WAVEfmt ", 8, "latin1");
  head.writeUInt32LE(16, 16);
  head.writeUInt16LE(1, 20);
  head.writeUInt16LE(1, 22);
  head.writeUInt32LE(rate, 24);
  head.writeUInt32LE(rate * 2, 28);
  head.writeUInt16LE(2, 32);
  head.writeUInt16LE(16, 34);
  head.write("data", 36, "latin1");
  head.writeUInt32LE(samples.length, 40);
  return Buffer.concat([head, samples]);
}
const sealedAudio = seal(wav(2), { name: "statement.wav", mediaType: "audio/wav", epoch: 1 });
blobs.set(sealedAudio.id, sealedAudio.blob);
const sealedNotes = seal(crypto.randomBytes(150_000), { name: "notes.bin", mediaType: "application/octet-stream", epoch: V2_EPOCH });
blobs.set(sealedNotes.id, sealedNotes.blob);
const attachment = (s, i) => ({ id: crypto.createHash("sha256").update(`att ${i}`).digest("hex").slice(0, 32), blob: s.id, size: s.blob.length, header: s.head.toString("base64"), key_epoch: s.epoch });

const featured = baseReport(0, {
  id: "f00dfeedf00dfeedf00dfeedf00dfeed",
  title: "Arrest at the bus stop",
  occurred_at: "2016-05-21T10:40:00+06:00",
  approximate: true,
  place: { name: "Bus stop, Abai Ave", lat: 43.2389, lon: 76.8897 },
  tags: ["arrest", "police"],
  timeline: [{ at: "2016-05-21T10:40:00+06:00", approximate: true, text: "arrested at the bus stop" }, { at: "2016-05-21T13:00:00+06:00", approximate: false, text: "released" }],
  review: { status: "unverified", note: "", by: null, at: null },
  attachments: [attachment(sealedImage, 1), attachment(sealedBig, 2), attachment(sealedAudio, 4), attachment(sealedNotes, 5)],
  conflicts: [{ field: "title", values: ["Arrest at the bus stop", "Arrest near the bus stop"] }],
});
addReport(featured);

const sealedHostile = seal(Buffer.from("hostile attachment"), { name: `${HOSTILE}.png`, mediaType: "text/html", capturedAt: null });
blobs.set(sealedHostile.id, sealedHostile.blob);
const hostile = baseReport(1, {
  id: "bad0bad0bad0bad0bad0bad0bad0bad0",
  title: HOSTILE,
  occurred_at: "2016-05-22T09:00:00+06:00",
  description: `${HOSTILE_SCRIPT} ${HOSTILE}`,
  place: { name: HOSTILE_SVG, lat: 43.25, lon: 76.95 },
  tags: [HOSTILE, "hostile"],
  people: [{ name: HOSTILE, role: "officer", note: HOSTILE_SCRIPT }],
  timeline: [{ at: "2016-05-22T09:05:00+06:00", approximate: false, text: HOSTILE }],
  review: { status: "disputed", note: HOSTILE, by: coordinator, at: "2016-05-22T12:00:00+06:00" },
  attachments: [attachment(sealedHostile, 3)],
  conflicts: [{ field: "title", values: [HOSTILE, HOSTILE_SCRIPT] }],
});
hostile.history[0].message = HOSTILE;
addReport(hostile);

const instant = (r) => (r.occurred_at ? Date.parse(r.occurred_at) : Infinity);
function sortReports() {
  reports.sort((a, b) => instant(a) - instant(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  reports.forEach((r, i) => (r.index = i));
}
sortReports();
for (const r of reports) r.version = 1;

function row(r) {
  return {
    report_id: r.id, occurred_at: r.occurred_at, approximate: r.approximate, place: r.place.name, lat: r.place.lat, lon: r.place.lon,
    title: r.title, status: r.review.status, tags: r.tags, reporter: r.created_by, updated_at: r.created_at,
    entries: r.timeline,
  };
}

// Each report's fields also live in a real Automerge document (made when
// the report is first opened), so `prepare` answers a real change, built as
// ReportDocument::prepare_edit builds it, which the page decodes and checks
// before signing. (JS Automerge writes a whole-number latitude as an
// integer where the Rust side writes a float; the page refuses that, so
// give coordinates with decimals here.)
const REPORTER_ACTOR = "7e".repeat(32);
const docs = new Map();
const am = (text) => new A.ImmutableString(String(text ?? ""));

function docOf(r) {
  if (!docs.has(r.id)) {
    docs.set(
      r.id,
      A.change(A.init({ actor: REPORTER_ACTOR }), { time: Date.parse(r.created_at) || 0 }, (d) => {
        d.title = am(r.title);
        d.occurred_at = am(r.occurred_at);
        d.approximate = !!r.approximate;
        d.place = { name: am(r.place.name), lat: r.place.lat ?? null, lon: r.place.lon ?? null };
        d.review = { status: am(r.review.status), note: am(r.review.note) };
        d.tags = {};
        for (const tag of r.tags) d.tags[tag] = true;
      }),
    );
  }
  return docs.get(r.id);
}

function editDoc(d, edits, deviceId, time) {
  for (const e of edits) {
    if (e.op === "set_status") {
      d.review.status = am(e.status);
      d.review.note = am(e.note);
      d.review.reviewer = am(deviceId);
      d.review.reviewed_at = am(new Date(time).toISOString().replace("Z", "+00:00"));
    } else if (e.op === "set_title") d.title = am(e.title);
    else if (e.op === "set_place") {
      d.place.name = am(e.name);
      d.place.lat = e.lat ?? null;
      d.place.lon = e.lon ?? null;
    } else if (e.op === "set_occurred_at") {
      d.occurred_at = am(e.occurred_at);
      d.approximate = !!e.approximate;
    } else if (e.op === "add_tag") d.tags[String(e.tag).trim()] = true;
    else if (e.op === "remove_tag" && String(e.tag).trim() in d.tags) delete d.tags[String(e.tag).trim()];
  }
}

function reportBody(r) {
  const { history, conflicts, version, index, ...report } = r;
  const doc = docOf(r);
  return {
    report,
    heads: A.getHeads(doc),
    objects: { review: A.getObjectId(doc.review), place: A.getObjectId(doc.place), tags: A.getObjectId(doc.tags) },
    history: history.map((c, i) => ({ hash: crypto.createHash("sha256").update(`${r.id} change ${i}`).digest("hex"), seq: i + 1, ...c })),
    conflicts,
  };
}

// ---------------------------------------------------------------- the API

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function filterRows(query) {
  const bad = (m) => { throw new HttpError(400, m); };
  const from = query.get("from") ? Date.parse(query.get("from")) : null;
  const to = query.get("to") ? Date.parse(query.get("to")) : null;
  if (Number.isNaN(from) || Number.isNaN(to)) bad("`from`/`to` must be RFC 3339 times such as 2024-05-01T10:40:00+02:00");
  const status = query.get("status") || null;
  if (status && !["unverified", "verified", "disputed"].includes(status)) bad("`status` must be unverified, verified or disputed");
  const tag = (query.get("tag") || "").toLowerCase() || null;
  const reporter = query.get("reporter") || null;
  const text = (query.get("text") || "").toLowerCase() || null;
  const limit = Math.min(Math.max(Number(query.get("limit") || 100), 1), 1000);
  let start = 0;
  if (query.get("after")) {
    const after = byId.get(Buffer.from(query.get("after"), "base64url").toString());
    if (!after) bad("bad cursor");
    start = after.index + 1;
  }
  const out = [];
  let next = null;
  for (let i = start; i < reports.length; i++) {
    const r = reports[i];
    const t = instant(r);
    if (from !== null && !(t >= from)) continue;
    if (to !== null && !(t <= to)) continue;
    if (status && r.review.status !== status) continue;
    if (tag && !r.tags.some((x) => x.toLowerCase() === tag)) continue;
    if (reporter && r.created_by !== reporter) continue;
    if (text && !`${r.title}\n${r.place.name}\n${r.description}`.toLowerCase().includes(text)) continue;
    if (out.length === limit) {
      next = Buffer.from(reports[i - 1].id).toString("base64url");
      break;
    }
    out.push(row(r));
  }
  if (out.length === limit && !next) next = null;
  return { reports: out, next };
}

function applyEdit(r, e, session) {
  const now = new Date().toISOString();
  switch (e.op) {
    case "set_status":
      if (!["verified", "disputed", "unverified"].includes(e.status)) throw new HttpError(422, "status must be verified, disputed or unverified");
      r.review = { status: e.status, note: String(e.note ?? ""), reviewer: session.device_id, reviewed_at: now };
      return ["review.status", "review.note"];
    case "set_title":
      if (!String(e.title ?? "").trim()) throw new HttpError(422, "a title cannot be empty");
      r.title = e.title;
      return ["title"];
    case "set_place":
      r.place = { name: String(e.name ?? ""), lat: e.lat ?? null, lon: e.lon ?? null };
      return ["place"];
    case "set_occurred_at":
      if (Number.isNaN(Date.parse(e.occurred_at))) throw new HttpError(422, "occurred_at must be RFC 3339 with an offset");
      r.occurred_at = e.occurred_at;
      r.approximate = !!e.approximate;
      return ["occurred_at", "approximate"];
    case "add_tag":
      if (!String(e.tag ?? "").trim()) throw new HttpError(422, "a tag cannot be empty");
      if (!r.tags.includes(e.tag)) r.tags = [...r.tags, e.tag].sort();
      return ["tags"];
    case "remove_tag":
      r.tags = r.tags.filter((t) => t !== e.tag);
      return ["tags"];
    default:
      throw new HttpError(422, `unknown edit op ${JSON.stringify(e.op)}`);
  }
}

const prepared = new Map();
export const requestLog = [];

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}

const TYPES = { ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml" };
const ASSETS = new Set(["index.html", "app.js", "app.css", "api.js", "attachments.js", "change.js", "crypto.js", "dom.js", "filters.js", "format.js", "keys.js", "map.js", "report.js", "review.js", "timeline.js", "icon.svg"]);

// Like the Rust side, serve a fixed list; refuse to start when the folder differs from it.
const onDisk = readdirSync(webDir).filter((f) => f !== "index.html");
const missing = [...ASSETS].filter((f) => f !== "index.html" && !onDisk.includes(f));
const unlisted = onDisk.filter((f) => !ASSETS.has(f));
if (missing.length || unlisted.length) {
  console.error(`mock-server: the asset list differs from server/web: missing ${missing}, unlisted ${unlisted}`);
  process.exit(1);
}

function securityHeaders(res) {
  res.setHeader("Content-Security-Policy", CSP);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
}

function sendJson(res, status, body, headers = {}) {
  securityHeaders(res);
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers });
  res.end(body === null ? undefined : JSON.stringify(body));
}

function cookieSession(req) {
  const m = /(?:^|;\s*)fs_session=([^;]+)/.exec(req.headers.cookie ?? "");
  const s = m && sessions.get(m[1]);
  if (!s || s.expires < Date.now()) return null;
  return s;
}

async function handle(req, res, base) {
  const url = new URL(req.url, base);
  const body = req.method === "POST" ? await readBody(req) : Buffer.alloc(0);
  requestLog.push({ method: req.method, url: req.url, headers: req.headers, body: body.toString("latin1") });
  const p = url.pathname;

  if (req.method === "GET" && (p === "/" || p === "/login" || /^\/report\/[^/]+$/.test(p))) {
    securityHeaders(res);
    res.writeHead(200, { "Content-Type": TYPES[".html"], "Cache-Control": "no-store" });
    return res.end(readFileSync(path.join(webDir, "index.html")));
  }
  const asset = /^\/assets\/([a-z]+\.(?:js|css|svg))$/.exec(p);
  if (req.method === "GET" && asset && ASSETS.has(asset[1])) {
    securityHeaders(res);
    res.writeHead(200, { "Content-Type": TYPES[path.extname(asset[1])], "Cache-Control": "no-cache" });
    return res.end(readFileSync(path.join(webDir, asset[1])));
  }
  if (req.method === "POST" && p === "/mock/login-link") return sendJson(res, 200, { login_link: makeLoginLink(base) });

  if (req.method === "POST") {
    const origin = req.headers.origin;
    if (origin && origin !== base) throw new HttpError(403, "cross-origin request refused");
  }
  if (req.method === "POST" && p === "/web/session") {
    const { token } = JSON.parse(body.toString() || "{}");
    const t = Buffer.from(String(token ?? ""), "base64url");
    if (t.length !== 164 || t.subarray(0, 4).toString("latin1") !== "FSW1") throw new HttpError(401, "this login token is malformed");
    const ok = crypto.verify(null, Buffer.concat([Buffer.from("fieldsync web-login v1\0", "latin1"), t.subarray(0, 100)]), publicKeyObject(t.subarray(4, 36)), t.subarray(100));
    if (!ok || !t.subarray(4, 36).equals(coordPub)) throw new HttpError(401, "this login token's signature does not verify");
    if (Number(t.readBigUInt64BE(68)) < Date.now() / 1000) throw new HttpError(401, "this login link has expired; run `fieldsync web-login` again");
    const nonce = t.subarray(84, 100).toString("hex");
    if (usedNonces.has(nonce)) throw new HttpError(401, "this login link was already used; run `fieldsync web-login` again");
    usedNonces.add(nonce);
    const id = crypto.randomBytes(32).toString("base64url");
    const session = {
      csrf: crypto.randomBytes(24).toString("base64url"), device_id: coordinator, case: caseName, role: "coordinator",
      session_public_key: t.subarray(36, 68).toString("hex"), expires_at: new Date(Number(t.readBigUInt64BE(76)) * 1000).toISOString(),
      expires: Number(t.readBigUInt64BE(76)) * 1000,
    };
    sessions.set(id, session);
    const { expires, ...me } = session;
    return sendJson(res, 200, me, { "Set-Cookie": `fs_session=${id}; Path=/; HttpOnly; SameSite=Strict` });
  }

  if (p.startsWith("/web/")) {
    const session = cookieSession(req);
    if (!session) throw new HttpError(401, "no live session; run `fieldsync web-login` again");
    if (req.method === "POST" && req.headers["x-fieldsync-csrf"] !== session.csrf) throw new HttpError(403, "missing or wrong CSRF token");
    const { expires, ...me } = session;
    if (req.method === "GET" && p === "/web/api/me") return sendJson(res, 200, me);
    if (req.method === "POST" && p === "/web/logout") {
      for (const [k, v] of sessions) if (v === session) sessions.delete(k);
      return sendJson(res, 204, null);
    }
    if (req.method === "GET" && p === "/web/api/timeline") return sendJson(res, 200, filterRows(url.searchParams));
    if (req.method === "GET" && p === "/web/api/devices") return sendJson(res, 200, devices);
    let m = /^\/web\/api\/reports\/([0-9a-f]{32})(\/prepare|\/commit)?$/.exec(p);
    if (m) {
      const r = byId.get(m[1]);
      if (!r) throw new HttpError(404, "no such report in this case");
      if (req.method === "GET" && !m[2]) return sendJson(res, 200, reportBody(r));
      const input = JSON.parse(body.toString() || "{}");
      if (req.method === "POST" && m[2] === "/prepare") {
        if (!Array.isArray(input.edits) || !input.edits.length) throw new HttpError(422, "no edits");
        const trial = structuredClone({ ...r, index: 0 });
        for (const e of input.edits) applyEdit(trial, e, session);
        const time = Date.now();
        const edited = A.change(A.clone(docOf(r), { actor: session.session_public_key }), { time }, (d) => editDoc(d, input.edits, session.device_id, time));
        const made = A.getLastLocalChange(edited);
        if (!made) throw new HttpError(422, "the edits change nothing");
        const change = Buffer.from(made);
        const hash = A.decodeChange(made).hash;
        prepared.set(hash, { change, report: r.id, base: r.version, edits: input.edits });
        return sendJson(res, 200, { change: change.toString("base64"), hash });
      }
      if (req.method === "POST" && m[2] === "/commit") {
        const change = Buffer.from(String(input.change ?? ""), "base64");
        let hash;
        try {
          hash = A.decodeChange(change).hash;
        } catch {
          throw new HttpError(422, "`change` is not an Automerge change");
        }
        const prep = prepared.get(hash);
        if (!prep || prep.report !== r.id) throw new HttpError(422, "this change was not prepared here");
        const sig = Buffer.from(String(input.sig ?? ""), "base64");
        const message = Buffer.concat([Buffer.from("fieldsync change v1\0", "latin1"), Buffer.from(hash, "hex")]);
        if (sig.length !== 64 || !crypto.verify(null, message, publicKeyObject(Buffer.from(session.session_public_key, "hex")), sig)) {
          throw new HttpError(422, "the change's signature does not verify with this session's key");
        }
        if (prep.base !== r.version) throw new HttpError(409, "the report changed since this change was prepared; prepare again");
        prepared.delete(hash);
        docs.set(r.id, A.applyChanges(docOf(r), [change])[0]);
        const fields = input.edits ?? [];
        const changed = prep.edits.flatMap((e) => applyEdit(r, e, session));
        r.version += 1;
        const now = new Date().toISOString();
        r.history.push({ actor: session.session_public_key, device_id: session.device_id, via_web_session: true, time: now, received_at: now, signature_verified: true, message: "", fields: [...new Set(changed)] });
        void fields;
        if (changed.includes("occurred_at")) sortReports();
        return sendJson(res, 200, reportBody(r));
      }
    }
    m = /^\/web\/api\/blobs\/([0-9a-f]{64})$/.exec(p);
    if (req.method === "GET" && m) {
      const blob = blobs.get(m[1]);
      if (!blob) throw new HttpError(404, "no such blob in this case");
      securityHeaders(res);
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": blob.length, ETag: `"${m[1]}"` });
      return res.end(blob);
    }
  }
  throw new HttpError(404, "not found");
}

const server = http.createServer((req, res) => {
  const base = `http://${req.headers.host}`;
  handle(req, res, base).catch((e) => {
    const status = e instanceof HttpError ? e.status : 500;
    if (status === 500) console.error(e);
    if (!res.headersSent) sendJson(res, status, { error: e instanceof HttpError ? e.message : "internal error" });
    else res.end();
  });
});

server.listen(PORT, "127.0.0.1", () => {
  const url = `http://127.0.0.1:${server.address().port}`;
  const expect = {
    titles: ["Arrest at the bus stop"],
    filter: { query: { tag: "arrest" }, includes: ["Arrest at the bus stop"], every_row_has_tag: "arrest" },
    report_id: featured.id,
    report_title: featured.title,
    image_sha256: sealedImage.sha256,
    image_name: "bus-stop.png",
    attachments: [
      { name: "bus-stop.png", envelope: "v2", sha256: sealedImage.sha256 },
      { name: "statement.bin", envelope: "v1", sha256: sealedBig.sha256 },
      { name: "statement.wav", envelope: "v1" },
      { name: "notes.bin", envelope: "v2", sha256: sealedNotes.sha256 },
    ],
    secrets: shareCodes(),
    hostile: { report_id: hostile.id, title: HOSTILE, strings: [HOSTILE, HOSTILE_SCRIPT, HOSTILE_SVG] },
    set_status: { status: "verified", note: "checked with two witnesses (browser test)" },
  };
  if (EXPECT_PATH) writeFileSync(EXPECT_PATH, JSON.stringify(expect, null, 2));
  console.log(JSON.stringify({ url, login_link: makeLoginLink(url), expect: EXPECT_PATH, reports: reports.length }));
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
process.on("SIGINT", () => server.close(() => process.exit(0)));
