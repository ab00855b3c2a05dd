-- Schema 4. Statements are stored in sqlite_schema as written, indentation
-- and all: edit none of them, or an upgraded store's schema text would differ
-- from a fresh one's.
CREATE TABLE timeline_tags (
                 report_id TEXT NOT NULL,
                 case_id TEXT NOT NULL,
                 tag TEXT NOT NULL,
                 occurred_utc TEXT);
             CREATE INDEX timeline_tags_order
                 ON timeline_tags(case_id, tag, occurred_utc, report_id);
             CREATE INDEX timeline_tags_report ON timeline_tags(report_id);
             CREATE TRIGGER timeline_tags_insert AFTER INSERT ON timeline BEGIN
                 INSERT INTO timeline_tags (report_id, case_id, tag, occurred_utc)
                 SELECT DISTINCT new.report_id, new.case_id, lower(value), new.occurred_utc
                 FROM json_each(new.tags);
             END;
             CREATE TRIGGER timeline_tags_update
             AFTER UPDATE OF case_id, occurred_utc, tags ON timeline BEGIN
                 DELETE FROM timeline_tags WHERE report_id = old.report_id;
                 INSERT INTO timeline_tags (report_id, case_id, tag, occurred_utc)
                 SELECT DISTINCT new.report_id, new.case_id, lower(value), new.occurred_utc
                 FROM json_each(new.tags);
             END;
             CREATE TRIGGER timeline_tags_delete AFTER DELETE ON timeline BEGIN
                 DELETE FROM timeline_tags WHERE report_id = old.report_id;
             END;
             INSERT INTO timeline_tags (report_id, case_id, tag, occurred_utc)
             SELECT DISTINCT t.report_id, t.case_id, lower(j.value), t.occurred_utc
             FROM timeline t, json_each(t.tags) j;
