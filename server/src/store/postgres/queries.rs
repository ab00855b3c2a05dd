//! Which of the PostgreSQL store's queries are not scoped to one case.
//!
//! The schema can be distributed by case (Citus, `migrations/postgres/
//! citus.sql`) only if the hot paths, sync, feed and uploads, each touch
//! one case. A query is scoped when it filters on `case_id =` (after its
//! `WHERE`), or, an insert, writes `case_id`, or when it touches only
//! reference tables (small tables copied to every node, named in
//! `citus.sql`). The queries below are the ones that are not: the
//! operator's and the upkeep's, which run across cases by design and are
//! on no request's path. `the_unscoped_queries_are_exactly_the_listed_ones`
//! reads this module's sibling files and fails when a query that is not
//! scoped appears and is not listed here, or a listed one is gone.
//! `copy.rs`, the offline copy of a SQLite store (`admin migrate`), reads
//! and writes every row of every table by design and is not scanned.

/// The start of each query that is not scoped (whitespace collapsed), and
/// why it may stay so.
pub const UNSCOPED: &[(&str, &str)] = &[
    (
        "SELECT at, event, device_id, detail FROM audit_log ORDER BY id",
        "the operator's whole audit log",
    ),
    (
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 ORDER BY id LIMIT $2)",
        "retention: the hourly upkeep, across cases",
    ),
    (
        "SELECT case_id, id FROM uploads WHERE completed_at IS NULL AND expires_at <= $1",
        "the expiry sweep, across cases; what it finds it deletes by case and id",
    ),
    (
        "SELECT case_id, id FROM uploads WHERE completed_at IS NULL",
        "the start-up sweep and the uploads-in-progress gauge, across cases",
    ),
    (
        "SELECT row_to_json(t)::text FROM",
        "`dump`, every row of every table, for tests",
    ),
];

#[cfg(test)]
mod tests {
    use super::UNSCOPED;

    /// The sibling files that hold SQL.
    const SOURCES: &[(&str, &str)] = &[
        ("blobs.rs", include_str!("blobs.rs")),
        ("dump.rs", include_str!("dump.rs")),
        ("membership.rs", include_str!("membership.rs")),
        ("schema.rs", include_str!("schema.rs")),
        ("sync.rs", include_str!("sync.rs")),
        ("timeline.rs", include_str!("timeline.rs")),
        ("web.rs", include_str!("web.rs")),
    ];

    /// Every string literal in `source` that is a data query (not the
    /// schema's own statements), whitespace collapsed.
    fn queries(source: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find('"') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('"') else { break };
            let literal = after[..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            rest = &after[end + 1..];
            let is_data_query = ["SELECT ", "INSERT ", "UPDATE ", "DELETE "]
                .iter()
                .any(|k| literal.starts_with(k))
                && !literal.contains("fieldsync_schema")
                && !literal.contains("pg_advisory");
            if is_data_query {
                found.push(literal);
            }
        }
        found
    }

    /// The tables `citus.sql` makes reference tables.
    pub(super) fn reference_tables() -> Vec<&'static str> {
        include_str!("../../../migrations/postgres/citus.sql")
            .lines()
            .filter_map(|l| l.strip_prefix("SELECT create_reference_table('"))
            .filter_map(|rest| rest.split('\'').next())
            .collect()
    }

    /// The tables a query names after FROM, JOIN, INTO or UPDATE.
    fn tables(query: &str) -> Vec<&str> {
        let words: Vec<&str> = query.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| ["FROM", "JOIN", "INTO", "UPDATE"].contains(&w[0]))
            .map(|w| w[1].trim_end_matches(','))
            // `FROM unnest(…)` and subqueries `FROM (…)` name no table.
            .filter(|t| !t.contains('('))
            .collect()
    }

    /// Whether a query touches one case only: filters on `case_id =`, or
    /// (an insert) writes it, or touches only reference tables.
    fn scoped(query: &str) -> bool {
        let reference = reference_tables();
        if tables(query).iter().all(|t| reference.contains(t)) {
            return true;
        }
        if query.starts_with("INSERT ") {
            let columns = query.split(" VALUES ").next().unwrap_or_default();
            return columns.contains("case_id");
        }
        query
            .split_once(" WHERE ")
            .is_some_and(|(_, filter)| filter.contains("case_id = "))
    }

    #[test]
    fn a_query_that_excludes_a_case_is_not_scoped_to_one() {
        assert!(scoped(
            "SELECT 1 FROM documents WHERE case_id = $1 AND id = $2"
        ));
        assert!(!scoped(
            "SELECT 1 FROM documents WHERE id = $1 AND case_id <> $2"
        ));
        assert!(!scoped("SELECT id FROM uploads WHERE id = $1"));
        assert!(scoped("SELECT case_id FROM devices WHERE device_id = $1"));
        assert!(!scoped(
            "SELECT d.id FROM devices d JOIN documents x ON x.creator = d.device_id"
        ));
    }

    #[test]
    fn the_unscoped_queries_are_exactly_the_listed_ones() {
        let mut unscoped: Vec<String> = SOURCES
            .iter()
            .flat_map(|(_, source)| queries(source))
            .filter(|q| !scoped(q))
            .collect();
        unscoped.sort();
        unscoped.dedup();
        let unlisted: Vec<&String> = unscoped
            .iter()
            .filter(|q| !UNSCOPED.iter().any(|(start, _)| q.starts_with(start)))
            .collect();
        let gone: Vec<&str> = UNSCOPED
            .iter()
            .map(|(start, _)| *start)
            .filter(|start| !unscoped.iter().any(|q| q.starts_with(start)))
            .collect();
        assert!(
            unlisted.is_empty() && gone.is_empty(),
            "queries without case_id that UNSCOPED does not list: {unlisted:#?}\nlisted but not found: {gone:#?}"
        );
        // The scan finds the scoped queries too: it is reading the files.
        let all: usize = SOURCES.iter().map(|(_, s)| queries(s).len()).sum();
        assert!(all > 40, "only {all} queries found");
    }
}
