//! Migrations of a PostgreSQL database, applied once however many
//! processes start together.

use postgres::Client;

use crate::store::error::StoreError;

/// Schema version of a PostgreSQL database this build writes.
pub const PG_SCHEMA_VERSION: i64 = 2;

/// Any number 64 bits wide; it only has to differ from the case locks'
/// keys, which are SHA-256 prefixes.
const MIGRATION_LOCK: i64 = 0x6669_656c_6473_796e; // "fieldsyn"

pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    // Serialises processes that start together: the second waits here and
    // then finds the schema current.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS fieldsync_schema (version BIGINT NOT NULL)")?;
    let version: i64 = match tx.query_opt("SELECT version FROM fieldsync_schema", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO fieldsync_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    if version > PG_SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found: version });
    }
    if version < 1 {
        tx.batch_execute(include_str!("../../../migrations/postgres/001_initial.sql"))?;
    }
    if version < 2 {
        tx.batch_execute(include_str!(
            "../../../migrations/postgres/002_keys_by_case.sql"
        ))?;
    }
    tx.execute(
        "UPDATE fieldsync_schema SET version = $1",
        &[&PG_SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}
