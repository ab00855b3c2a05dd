-- PostgreSQL schema 1: the SQLite store's schema 8, with the case id on
-- every table so the schema can be distributed by case (Citus) unchanged.
-- Times are RFC 3339 text with fixed-width fractions, as in SQLite, so text
-- order is time order and both stores answer alike; the columns the
-- timeline orders by compare bytes (COLLATE "C"), as SQLite's do.
CREATE TABLE cases (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    import_salt TEXT,
    timezone TEXT);
CREATE TABLE invites (
    token_hash TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(id),
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    used_by TEXT);
CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL UNIQUE,
    case_id TEXT NOT NULL REFERENCES cases(id),
    role TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    revoked_at TEXT);
CREATE INDEX devices_case ON devices(case_id, enrolled_at);
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(id),
    creator TEXT NOT NULL,
    snapshot BYTEA NOT NULL,
    heads TEXT NOT NULL,
    last_seq BIGINT NOT NULL);
CREATE INDEX documents_case ON documents(case_id, id);
-- `seq` is handed out before commit; feed appends of one case hold that
-- case's advisory lock until they commit, so a case's changes become
-- visible in `seq` order (ARCHITECTURE.md, "Several processes").
CREATE TABLE changes (
    seq BIGSERIAL PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(id),
    doc_id TEXT NOT NULL REFERENCES documents(id),
    hash TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    author_device TEXT NOT NULL,
    signature BYTEA NOT NULL,
    received_at TEXT NOT NULL,
    actor_device TEXT NOT NULL,
    doc_creator TEXT NOT NULL,
    UNIQUE (doc_id, hash));
CREATE INDEX changes_feed ON changes(case_id, seq);
CREATE INDEX changes_creator_feed ON changes(case_id, doc_creator, seq);
CREATE TABLE timeline (
    report_id TEXT COLLATE "C" PRIMARY KEY REFERENCES documents(id),
    case_id TEXT NOT NULL REFERENCES cases(id),
    occurred_utc TEXT COLLATE "C",
    occurred_at TEXT,
    approximate BOOLEAN NOT NULL,
    place TEXT NOT NULL,
    title TEXT NOT NULL,
    search_text TEXT NOT NULL,
    status TEXT NOT NULL,
    tags TEXT NOT NULL,
    reporter TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    entries TEXT NOT NULL);
CREATE INDEX timeline_order ON timeline(case_id, occurred_utc, report_id);
CREATE TABLE timeline_tags (
    report_id TEXT COLLATE "C" NOT NULL,
    case_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    occurred_utc TEXT COLLATE "C");
CREATE INDEX timeline_tags_order
    ON timeline_tags(case_id, tag, occurred_utc, report_id);
CREATE INDEX timeline_tags_report ON timeline_tags(case_id, report_id);
CREATE TABLE nonces (
    case_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce));
CREATE INDEX nonces_ts ON nonces(case_id, ts);
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    case_id TEXT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    device_id TEXT,
    detail TEXT NOT NULL);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(id),
    device_id TEXT NOT NULL REFERENCES devices(device_id),
    blob_id TEXT NOT NULL,
    report_id TEXT NOT NULL REFERENCES documents(id),
    length BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    completed_at TEXT,
    deduplicated BOOLEAN NOT NULL);
CREATE INDEX uploads_device ON uploads(case_id, device_id, blob_id);
CREATE INDEX uploads_expiry ON uploads(expires_at) WHERE completed_at IS NULL;
CREATE TABLE blobs (
    case_id TEXT NOT NULL REFERENCES cases(id),
    blob_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    uploaded_by TEXT NOT NULL,
    report_id TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    PRIMARY KEY (case_id, blob_id));
CREATE TABLE blob_refs (
    case_id TEXT NOT NULL REFERENCES cases(id),
    blob_id TEXT NOT NULL,
    report_id TEXT NOT NULL REFERENCES documents(id),
    device_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (case_id, blob_id, report_id));
CREATE TABLE web_sessions (
    cookie_hash TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(id),
    device_id TEXT NOT NULL REFERENCES devices(device_id),
    session_key TEXT NOT NULL,
    certificate BYTEA NOT NULL,
    nonce TEXT NOT NULL UNIQUE,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at TEXT);
CREATE INDEX web_sessions_device ON web_sessions(device_id);
CREATE TABLE case_public_keys (
    case_id TEXT NOT NULL REFERENCES cases(id),
    epoch BIGINT NOT NULL,
    public_key BYTEA NOT NULL,
    signer TEXT NOT NULL REFERENCES devices(device_id),
    signature BYTEA NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (case_id, epoch));
