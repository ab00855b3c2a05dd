-- Schema 2. Statements are stored in sqlite_schema as written, indentation
-- and all: edit none of them, or an upgraded store's schema text would differ
-- from a fresh one's.
CREATE TABLE uploads (
                 id TEXT PRIMARY KEY,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 device_id TEXT NOT NULL REFERENCES devices(device_id),
                 blob_id TEXT NOT NULL,
                 report_id TEXT NOT NULL REFERENCES documents(id),
                 length INTEGER NOT NULL,
                 created_at TEXT NOT NULL,
                 expires_at TEXT NOT NULL,
                 completed_at TEXT,
                 deduplicated INTEGER NOT NULL);
             CREATE INDEX uploads_device ON uploads(device_id, blob_id);
             CREATE INDEX uploads_expiry ON uploads(expires_at) WHERE completed_at IS NULL;
             CREATE TABLE blobs (
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 blob_id TEXT NOT NULL,
                 size INTEGER NOT NULL,
                 uploaded_by TEXT NOT NULL,
                 report_id TEXT NOT NULL,
                 stored_at TEXT NOT NULL,
                 PRIMARY KEY (case_id, blob_id)) WITHOUT ROWID;
             CREATE TABLE blob_refs (
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 blob_id TEXT NOT NULL,
                 report_id TEXT NOT NULL REFERENCES documents(id),
                 device_id TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 PRIMARY KEY (case_id, blob_id, report_id)) WITHOUT ROWID;
