-- A case's time zone (issue 15): the zone imports read times written
-- without an offset in, when the coordinator gives none. An IANA name or a
-- fixed offset, as `import --timezone` takes; NULL when the case has none.
ALTER TABLE cases ADD COLUMN timezone TEXT;
