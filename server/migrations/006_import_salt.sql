-- Schema 6. Statements are stored in sqlite_schema as written, indentation
-- and all: edit none of them, or an upgraded store's schema text would differ
-- from a fresh one's.
ALTER TABLE cases ADD COLUMN import_salt TEXT;
