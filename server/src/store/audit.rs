//! The audit log: who did what, when (never report contents), and its
//! retention: rows older than `--audit-retention-days`
//! are deleted, in small batches so the write lock is never held long.
//!
//! The log holds device ids and the times they acted or were refused: a
//! record of a reporter's activity that a seized server would hand over.
//! It is kept long enough to look into a seized phone or a leaked invite
//! after the fact, and no longer.

use chrono::{DateTime, Utc};
use fieldsync_core::DeviceId;
use rusqlite::{params, Connection};

use super::error::StoreError;
use super::pool::Store;
use super::sql::{now_text, time_text};

/// One audit log entry: (at, event, device, detail).
pub type AuditEntry = (String, String, Option<String>, String);

impl Store {
    /// Appends to the audit log. `detail` must never hold report contents.
    pub fn audit(
        &self,
        event: &str,
        device: Option<&DeviceId>,
        detail: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        write_audit(&conn, event, device, detail)
    }

    /// The audit log, oldest first: (at, event, device, detail).
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare("SELECT at, event, device_id, detail FROM audit_log ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

pub(super) fn write_audit(
    conn: &Connection,
    event: &str,
    device: Option<&DeviceId>,
    detail: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit_log (at, event, device_id, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now_text(), event, device.map(DeviceId::as_str), detail],
    )?;
    Ok(())
}

/// Rows deleted per transaction.
const PRUNE_BATCH: i64 = 5_000;

impl Store {
    /// Deletes audit rows written before `before`; returns how many.
    pub fn prune_audit_log(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let cutoff = time_text(before);
        let conn = self.conn()?;
        let mut deleted = 0;
        loop {
            let n = conn.execute(
                "DELETE FROM audit_log WHERE id IN
                     (SELECT id FROM audit_log WHERE at < ?1 ORDER BY id LIMIT ?2)",
                params![cutoff, PRUNE_BATCH],
            )?;
            deleted += n;
            if n < PRUNE_BATCH as usize {
                return Ok(deleted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_deletes_the_rows_older_than_the_retention_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let conn = store.conn().unwrap();
        // 12,000 rows older than 90 days (more than two batches), one just
        // inside, and today's.
        let days_ago = |d: i64| time_text(now - chrono::Duration::days(d));
        for i in 0..12_000 {
            conn.execute(
                "INSERT INTO audit_log (at, event, device_id, detail) VALUES (?1, 'old', NULL, ?2)",
                params![days_ago(91 + i % 300), i.to_string()],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO audit_log (at, event, device_id, detail) VALUES (?1, 'recent', NULL, '')",
            [days_ago(89)],
        )
        .unwrap();
        drop(conn);
        store.audit("today", None, "").unwrap();

        let deleted = store
            .prune_audit_log(now - chrono::Duration::days(90))
            .unwrap();
        assert_eq!(deleted, 12_000);
        let left: Vec<String> = store
            .audit_log()
            .unwrap()
            .into_iter()
            .map(|(_, event, _, _)| event)
            .collect();
        assert_eq!(left, ["recent", "today"]);
        assert_eq!(
            store
                .prune_audit_log(now - chrono::Duration::days(90))
                .unwrap(),
            0
        );
    }
}
