-- PostgreSQL schema 2: every key of a table that holds one case's rows
-- starts with the case id, so the schema can be distributed by case
-- (Citus: citus.sql) without change. Citus requires it: a distributed
-- table's primary and unique keys must include the distribution column,
-- and a foreign key between two distributed tables must join on it.
--
-- Report ids stay unique across cases (a copied id is answered as another
-- reporter's report, as on SQLite) through `report_ids`, a small table
-- looked up by report id alone: under Citus a reference table, copied to
-- every node, so the check never leaves the node a round runs on.
--
-- Feed numbers are no longer drawn from a sequence: a round that writes
-- holds its case's lock and numbers its changes after the case's last
-- (store/postgres/sync.rs). A sequence under Citus hands each node its
-- own range, which would break the feed's order within a case.

ALTER TABLE changes DROP CONSTRAINT changes_doc_id_fkey;
ALTER TABLE timeline DROP CONSTRAINT timeline_report_id_fkey;
ALTER TABLE uploads DROP CONSTRAINT uploads_report_id_fkey;
ALTER TABLE blob_refs DROP CONSTRAINT blob_refs_report_id_fkey;

CREATE TABLE report_ids (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(id));
INSERT INTO report_ids (id, case_id) SELECT id, case_id FROM documents;

ALTER TABLE documents DROP CONSTRAINT documents_pkey;
ALTER TABLE documents ADD PRIMARY KEY (case_id, id);
DROP INDEX documents_case;

ALTER TABLE changes DROP CONSTRAINT changes_pkey;
ALTER TABLE changes ADD PRIMARY KEY (case_id, seq);
ALTER TABLE changes DROP CONSTRAINT changes_doc_id_hash_key;
ALTER TABLE changes ADD UNIQUE (case_id, doc_id, hash);
ALTER TABLE changes ALTER COLUMN seq DROP DEFAULT;
DROP SEQUENCE changes_seq_seq;
DROP INDEX changes_feed;
ALTER TABLE changes ADD FOREIGN KEY (case_id, doc_id) REFERENCES documents(case_id, id);

ALTER TABLE timeline DROP CONSTRAINT timeline_pkey;
ALTER TABLE timeline ADD PRIMARY KEY (case_id, report_id);
ALTER TABLE timeline ADD FOREIGN KEY (case_id, report_id) REFERENCES documents(case_id, id);

ALTER TABLE nonces DROP CONSTRAINT nonces_pkey;
ALTER TABLE nonces ADD PRIMARY KEY (case_id, device_id, nonce);

-- A distributed table's rows need a case: server-wide events (a request
-- from a device nobody enrolled) are filed under the empty case id.
UPDATE audit_log SET case_id = '' WHERE case_id IS NULL;
ALTER TABLE audit_log ALTER COLUMN case_id SET DEFAULT '';
ALTER TABLE audit_log ALTER COLUMN case_id SET NOT NULL;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
ALTER TABLE audit_log ADD PRIMARY KEY (case_id, id);

ALTER TABLE uploads DROP CONSTRAINT uploads_pkey;
ALTER TABLE uploads ADD PRIMARY KEY (case_id, id);
ALTER TABLE uploads ADD FOREIGN KEY (case_id, report_id) REFERENCES documents(case_id, id);

ALTER TABLE blob_refs ADD FOREIGN KEY (case_id, report_id) REFERENCES documents(case_id, id);
