-- Schema 3. Statements are stored in sqlite_schema as written, indentation
-- and all: edit none of them, or an upgraded store's schema text would differ
-- from a fresh one's.
ALTER TABLE timeline ADD COLUMN lat REAL;
             ALTER TABLE timeline ADD COLUMN lon REAL;
             ALTER TABLE timeline ADD COLUMN entries TEXT NOT NULL DEFAULT '[]';
             CREATE TABLE web_sessions (
                 cookie_hash TEXT PRIMARY KEY,
                 device_id TEXT NOT NULL REFERENCES devices(device_id),
                 session_key TEXT NOT NULL,
                 certificate BLOB NOT NULL,
                 nonce TEXT NOT NULL UNIQUE,
                 csrf TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 expires_at INTEGER NOT NULL,
                 ended_at TEXT);
             CREATE INDEX web_sessions_device ON web_sessions(device_id);
