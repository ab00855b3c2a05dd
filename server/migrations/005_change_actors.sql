-- Schema 5. Statements are stored in sqlite_schema as written, indentation
-- and all: edit none of them, or an upgraded store's schema text would differ
-- from a fresh one's.
ALTER TABLE changes ADD COLUMN actor_device TEXT NOT NULL DEFAULT '';
             ALTER TABLE changes ADD COLUMN doc_creator TEXT NOT NULL DEFAULT '';
             UPDATE changes SET
                 actor_device = author_device,
                 doc_creator = (SELECT creator FROM documents d WHERE d.id = changes.doc_id);
             CREATE INDEX changes_creator_feed ON changes(case_id, doc_creator, seq);
