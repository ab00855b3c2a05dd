//! Which of the PostgreSQL store's queries are not scoped to one case.
//!
//! The schema can be distributed by case (Citus: every table carries
//! `case_id`, the distribution column) only if the hot paths, sync, feed
//! and uploads, each touch one case. A query is scoped when it filters on
//! `case_id` (after its `WHERE`), or, an insert, writes it. The queries
//! below are the ones that are not; each is looked up by a key that is global by
//! design, and none is on a path that scans more than one row per request.
//! `the_unscoped_queries_are_exactly_the_listed_ones` reads this module's
//! sibling files and fails when a query without `case_id` appears that is
//! not listed here, or a listed one is gone. `copy.rs`, the offline copy
//! of a SQLite store (`admin migrate`), reads and writes every row of
//! every table by design and is not scanned.

/// The start of each query without `case_id` (whitespace collapsed), and
/// why it may stay so.
pub const UNSCOPED: &[(&str, &str)] = &[
    (
        "SELECT timezone FROM cases WHERE id = $1",
        "the cases table itself, by its key",
    ),
    (
        "SELECT import_salt FROM cases WHERE id = $1",
        "the cases table itself, by its key",
    ),
    (
        "UPDATE cases SET timezone = $2 WHERE id = $1",
        "the cases table itself, by its key (operator)",
    ),
    (
        "INSERT INTO cases (id, name, created_at, import_salt, timezone)",
        "the cases table itself: `id` is the case id",
    ),
    (
        "SELECT id, name, created_at, timezone FROM cases WHERE name = $1",
        "a case by its unique name (operator and enrollment)",
    ),
    (
        "UPDATE devices SET revoked_at = COALESCE(revoked_at, $2) WHERE device_id = $1",
        "a device by its global id, which names its case (operator)",
    ),
    (
        "SELECT case_id FROM devices WHERE device_id = $1",
        "what case a signed request's device is in: every request starts here",
    ),
    (
        "SELECT d.device_id, d.public_key, d.case_id, c.name, d.role, d.enrolled_at, d.revoked_at FROM devices d JOIN cases c ON c.id = d.case_id",
        "a device by its global id (request authentication), or the operator's list of all devices",
    ),
    (
        "SELECT case_id, role, expires_at, used_at, used_by FROM invites WHERE token_hash = $1 FOR UPDATE",
        "an invite by its token's hash: the enrolling device does not know its case yet",
    ),
    (
        "UPDATE invites SET used_at = $2, used_by = $3 WHERE token_hash = $1",
        "the invite just read, by its key",
    ),
    (
        "SELECT at, event, device_id, detail FROM audit_log ORDER BY id",
        "the operator's whole audit log",
    ),
    (
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 ORDER BY id LIMIT $2)",
        "retention: the hourly upkeep, across cases",
    ),
    (
        "SELECT id, case_id, device_id, blob_id, report_id, length, expires_at, completed_at, deduplicated FROM uploads WHERE id = $1",
        "an upload by its random global id, which names its case",
    ),
    (
        "UPDATE uploads SET expires_at = $2 WHERE id = $1",
        "an upload by its random global id",
    ),
    (
        "UPDATE uploads SET completed_at = COALESCE(completed_at, $2) WHERE id = $1",
        "an upload by its random global id",
    ),
    (
        "DELETE FROM uploads WHERE id = $1",
        "an upload by its random global id",
    ),
    (
        "SELECT id FROM uploads WHERE completed_at IS NULL",
        "the expiry sweep and the start-up sweep, across cases",
    ),
    (
        "SELECT device_id, certificate, csrf, expires_at FROM web_sessions WHERE cookie_hash = $1",
        "a browser session by its cookie's hash: the browser does not say its case",
    ),
    (
        "UPDATE web_sessions SET ended_at = $2 WHERE cookie_hash = $1 AND ended_at IS NULL",
        "a browser session by its cookie's hash",
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

    /// Whether a query touches one case only: filters on `case_id`, or
    /// (an insert) writes it.
    fn scoped(query: &str) -> bool {
        if query.starts_with("INSERT ") {
            let columns = query.split(" VALUES ").next().unwrap_or_default();
            return columns.contains("case_id");
        }
        query
            .split_once(" WHERE ")
            .is_some_and(|(_, filter)| filter.contains("case_id"))
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
