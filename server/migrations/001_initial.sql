-- Schema 1. Statements are stored in sqlite_schema as written, indentation
-- and all: edit none of them, or an upgraded store's schema text would differ
-- from a fresh one's.
CREATE TABLE cases (
                 id TEXT PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 created_at TEXT NOT NULL);
             CREATE TABLE invites (
                 token_hash TEXT PRIMARY KEY,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 role TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 expires_at TEXT NOT NULL,
                 used_at TEXT,
                 used_by TEXT) WITHOUT ROWID;
             CREATE TABLE devices (
                 device_id TEXT PRIMARY KEY,
                 public_key BLOB NOT NULL UNIQUE,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 role TEXT NOT NULL,
                 enrolled_at TEXT NOT NULL,
                 revoked_at TEXT);
             CREATE INDEX devices_case ON devices(case_id, enrolled_at);
             CREATE TABLE documents (
                 id TEXT PRIMARY KEY,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 creator TEXT NOT NULL,
                 snapshot BLOB NOT NULL,
                 heads TEXT NOT NULL,
                 last_seq INTEGER NOT NULL);
             CREATE TABLE changes (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 doc_id TEXT NOT NULL REFERENCES documents(id),
                 hash TEXT NOT NULL,
                 bytes BLOB NOT NULL,
                 author_device TEXT NOT NULL,
                 signature BLOB NOT NULL,
                 received_at TEXT NOT NULL,
                 UNIQUE (doc_id, hash));
             CREATE INDEX changes_feed ON changes(case_id, seq);
             CREATE TABLE timeline (
                 report_id TEXT PRIMARY KEY REFERENCES documents(id),
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 occurred_utc TEXT,
                 occurred_at TEXT,
                 approximate INTEGER NOT NULL,
                 place TEXT NOT NULL,
                 title TEXT NOT NULL,
                 search_text TEXT NOT NULL,
                 status TEXT NOT NULL,
                 tags TEXT NOT NULL,
                 reporter TEXT NOT NULL,
                 updated_at TEXT NOT NULL);
             CREATE INDEX timeline_order ON timeline(case_id, occurred_utc, report_id);
             CREATE TABLE nonces (
                 device_id TEXT NOT NULL,
                 nonce TEXT NOT NULL,
                 ts INTEGER NOT NULL,
                 PRIMARY KEY (device_id, nonce)) WITHOUT ROWID;
             CREATE INDEX nonces_ts ON nonces(ts);
             CREATE TABLE audit_log (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 at TEXT NOT NULL,
                 event TEXT NOT NULL,
                 device_id TEXT,
                 detail TEXT NOT NULL);
