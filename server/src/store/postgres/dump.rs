//! The whole stored state as text, for tests that check a refusal wrote
//! nothing.

use super::PgStore;
use crate::store::error::StoreError;

impl PgStore {
    /// Every table but `nonces`, `audit_log` and the schema version, rows
    /// sorted, as text: two dumps are equal exactly when the stored state
    /// is (as [`crate::store::Store::dump`] for SQLite).
    pub fn dump(&self) -> Result<String, StoreError> {
        let mut conn = self.conn()?;
        let tables: Vec<String> = conn
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema()
                   AND table_name NOT IN ('nonces', 'audit_log', 'fieldsync_schema')
                 ORDER BY table_name",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = String::new();
        for table in tables {
            // Table names come from the schema, not from outside.
            let rows = conn.query(
                &format!("SELECT row_to_json(t)::text FROM \"{table}\" t ORDER BY 1"),
                &[],
            )?;
            out.push_str(&format!("{table}:\n"));
            for row in rows {
                out.push_str(&row.get::<_, String>(0));
                out.push('\n');
            }
        }
        Ok(out)
    }
}
