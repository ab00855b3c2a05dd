-- Schema 7. Statements are stored in sqlite_schema as written, indentation
-- and all: edit none of them, or an upgraded store's schema text would differ
-- from a fresh one's.
CREATE TABLE case_public_keys (
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 epoch INTEGER NOT NULL,
                 public_key BLOB NOT NULL,
                 signer TEXT NOT NULL REFERENCES devices(device_id),
                 signature BLOB NOT NULL,
                 published_at TEXT NOT NULL,
                 PRIMARY KEY (case_id, epoch)) WITHOUT ROWID;
