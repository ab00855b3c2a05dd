//! The schema and its migrations (`server/migrations/NNN_*.sql`), and a
//! dump of every stored row for tests that compare whole stores.
//!
//! A fresh store runs every migration in order, so it and an upgraded one
//! have the same schema by construction.

use automerge::Automerge;
use fieldsync_core::document::read_report;
use fieldsync_core::web_login::{LoginCertificate, CERT_LEN, DELEGATED_SIGNATURE_LEN};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, TransactionBehavior};

use super::error::{StoreError, SCHEMA_VERSION};
use super::pool::Store;
use super::sql::{random_token, sql_count};
use super::timeline::Projection;

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found: version });
    }
    if version < 1 {
        tx.execute_batch(include_str!("../../migrations/001_initial.sql"))?;
        set_version(&tx, 1)?;
    }
    if version < 2 {
        tx.execute_batch(include_str!("../../migrations/002_blobs.sql"))?;
        set_version(&tx, 2)?;
    }
    if version < 3 {
        // The review app shows coordinates and a report's own timeline
        // entries in the case timeline, and keeps browser sessions.
        tx.execute_batch(include_str!("../../migrations/003_review_app.sql"))?;
        reproject_places_and_entries(&tx)?;
        set_version(&tx, 3)?;
    }
    if version < 4 {
        // A tag filter read every row of the case in timeline order until it
        // had a page: 30-40 ms for a tag one report in a hundred carries,
        // seconds for a rare tag in a large case. Each (report, tag) now has
        // an entry in timeline order, kept by triggers from the timeline row
        // (tags folded as the filter folds them: SQLite's ASCII lower()).
        tx.execute_batch(include_str!("../../migrations/004_timeline_tags.sql"))?;
        set_version(&tx, 4)?;
    }
    if version < 5 {
        // The feed skips a reader's own changes by the key that signed them
        // (a coordinator's device must receive what its browser sessions
        // wrote, which are attributed to it), and a reporter's feed reads
        // only the reports it created, through an index, instead of
        // scanning the whole case. Before this schema only web sessions
        // signed with a key other than the author's, and their signatures
        // are the only ones of 228 bytes.
        tx.execute_batch(include_str!("../../migrations/005_change_actors.sql"))?;
        set_web_session_actors(&tx)?;
        set_version(&tx, 5)?;
    }
    if version < 6 {
        // A secret per case for the ids of imported reports (issue 14,
        // finding 10): they derived from the case, the file's name and
        // the row alone, which a reporter could know and take first.
        tx.execute_batch(include_str!("../../migrations/006_import_salt.sql"))?;
        let ids: Vec<String> = tx
            .prepare("SELECT id FROM cases")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in ids {
            tx.execute(
                "UPDATE cases SET import_salt = ?2 WHERE id = ?1",
                params![id, random_token()?],
            )?;
        }
        set_version(&tx, 6)?;
    }
    if version < 7 {
        // Case public keys (issue 14): each epoch's key as a coordinator's
        // device published it, with its signature; never replaced.
        tx.execute_batch(include_str!("../../migrations/007_case_public_keys.sql"))?;
        set_version(&tx, 7)?;
    }
    if version < 8 {
        // A time zone per case (issue 15), which devices learn on sync.
        tx.execute_batch(include_str!("../../migrations/008_case_timezone.sql"))?;
        set_version(&tx, 8)?;
    }
    tx.commit()?;
    Ok(())
}

/// Records that the schema is at `version`, in the migration's transaction.
fn set_version(tx: &Connection, version: i64) -> Result<(), StoreError> {
    tx.pragma_update(None, "user_version", version)?;
    Ok(())
}

/// Sets the actor of each stored web-session change (schema 5) to its
/// session key's device id, read from the certificate in its signature.
fn set_web_session_actors(tx: &Connection) -> Result<(), StoreError> {
    let mut select =
        tx.prepare("SELECT seq, signature FROM changes WHERE length(signature) = ?1")?;
    let mut update = tx.prepare("UPDATE changes SET actor_device = ?2 WHERE seq = ?1")?;
    let mut rows = select.query([sql_count(DELEGATED_SIGNATURE_LEN)])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let signature: Vec<u8> = row.get(1)?;
        let cert = LoginCertificate::parse(&signature[..CERT_LEN])
            .map_err(|e| StoreError::Corrupt(format!("change {seq}: {e}")))?;
        update.execute(params![seq, cert.session.device_id().as_str()])?;
    }
    Ok(())
}

/// Fills the timeline columns added in schema 3 from the stored documents.
fn reproject_places_and_entries(tx: &Connection) -> Result<(), StoreError> {
    let mut select = tx.prepare("SELECT id, snapshot FROM documents")?;
    let mut update =
        tx.prepare("UPDATE timeline SET lat = ?2, lon = ?3, entries = ?4 WHERE report_id = ?1")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let snapshot: Vec<u8> = row.get(1)?;
        let Ok(doc) = Automerge::load(&snapshot) else {
            tracing::warn!(report = %id, "stored document does not load; its timeline row keeps no coordinates");
            continue;
        };
        let Ok(report) = read_report(&doc) else {
            continue;
        };
        let p = Projection::of(&report)?;
        update.execute(params![id, p.lat, p.lon, p.entries])?;
    }
    Ok(())
}

impl Store {
    /// Every table but `nonces` and `audit_log`, rows sorted, as text: two
    /// dumps are equal exactly when the stored state is.
    pub fn dump(&self) -> Result<String, StoreError> {
        let conn = self.conn()?;
        let mut tables_stmt = conn.prepare(
            "SELECT name FROM sqlite_schema
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
               AND name NOT IN ('nonces', 'audit_log')
             ORDER BY name",
        )?;
        let tables = tables_stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = String::new();
        for table in tables {
            // Table names come from the schema, not from outside.
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\""))?;
            let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
            let mut lines = Vec::new();
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let mut line = String::new();
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        line.push_str(", ");
                    }
                    line.push_str(name);
                    line.push('=');
                    line.push_str(&dump_value(row.get_ref(i)?));
                }
                lines.push(line);
            }
            lines.sort();
            out.push_str(&format!("[{table}] {} rows\n", lines.len()));
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
        Ok(out)
    }
}

pub(super) fn dump_value(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("x'{}'", hex::encode(b)),
    }
}
