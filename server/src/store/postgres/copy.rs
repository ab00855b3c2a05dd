//! Copying a SQLite store into a PostgreSQL one (`fieldsync admin migrate`):
//! every row of every table, in batches, each batch its own transaction
//! and every insert `ON CONFLICT DO NOTHING`, so an interrupted copy run
//! again picks up where it stopped and finishes. Feed sequence numbers and
//! audit ids are kept as they were: the cursors devices hold stay valid.
//! The source must not change meanwhile (stop its server first).

use postgres::types::ToSql;
use rusqlite::types::Value;

use super::PgStore;
use crate::store::error::StoreError;
use crate::store::pool::Store;

/// Rows written per transaction.
const BATCH: usize = 500;

/// How a column's SQLite value becomes the PostgreSQL column's.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
    Bytes,
    Float,
}

/// One table: its name, the SQLite query that reads it (columns in the
/// order of `columns`), and the PostgreSQL columns.
struct Table {
    name: &'static str,
    select: &'static str,
    columns: &'static [(&'static str, Kind)],
}

use Kind::{Bool, Bytes, Float, Int, Text};

/// In an order that satisfies the foreign keys. `timeline_tags` is not
/// copied: it is made again from `timeline`, as SQLite's triggers make it.
const TABLES: &[Table] = &[
    Table {
        name: "cases",
        select: "SELECT id, name, created_at, import_salt, timezone FROM cases",
        columns: &[("id", Text), ("name", Text), ("created_at", Text), ("import_salt", Text), ("timezone", Text)],
    },
    Table {
        name: "invites",
        select: "SELECT token_hash, case_id, role, created_at, expires_at, used_at, used_by FROM invites",
        columns: &[("token_hash", Text), ("case_id", Text), ("role", Text), ("created_at", Text), ("expires_at", Text), ("used_at", Text), ("used_by", Text)],
    },
    Table {
        name: "devices",
        select: "SELECT device_id, public_key, case_id, role, enrolled_at, revoked_at FROM devices",
        columns: &[("device_id", Text), ("public_key", Bytes), ("case_id", Text), ("role", Text), ("enrolled_at", Text), ("revoked_at", Text)],
    },
    Table {
        name: "documents",
        select: "SELECT id, case_id, creator, snapshot, heads, last_seq FROM documents",
        columns: &[("id", Text), ("case_id", Text), ("creator", Text), ("snapshot", Bytes), ("heads", Text), ("last_seq", Int)],
    },
    Table {
        name: "report_ids",
        select: "SELECT id, case_id FROM documents",
        columns: &[("id", Text), ("case_id", Text)],
    },
    Table {
        name: "changes",
        select: "SELECT seq, case_id, doc_id, hash, bytes, author_device, signature, received_at, actor_device, doc_creator FROM changes ORDER BY seq",
        columns: &[("seq", Int), ("case_id", Text), ("doc_id", Text), ("hash", Text), ("bytes", Bytes), ("author_device", Text), ("signature", Bytes), ("received_at", Text), ("actor_device", Text), ("doc_creator", Text)],
    },
    Table {
        name: "timeline",
        select: "SELECT report_id, case_id, occurred_utc, occurred_at, approximate, place, title, search_text, status, tags, reporter, updated_at, lat, lon, entries FROM timeline",
        columns: &[("report_id", Text), ("case_id", Text), ("occurred_utc", Text), ("occurred_at", Text), ("approximate", Bool), ("place", Text), ("title", Text), ("search_text", Text), ("status", Text), ("tags", Text), ("reporter", Text), ("updated_at", Text), ("lat", Float), ("lon", Float), ("entries", Text)],
    },
    Table {
        name: "nonces",
        select: "SELECT d.case_id, n.device_id, n.nonce, n.ts FROM nonces n JOIN devices d ON d.device_id = n.device_id",
        columns: &[("case_id", Text), ("device_id", Text), ("nonce", Text), ("ts", Int)],
    },
    Table {
        name: "audit_log",
        select: "SELECT a.id, COALESCE(d.case_id, ''), a.at, a.event, a.device_id, a.detail FROM audit_log a LEFT JOIN devices d ON d.device_id = a.device_id ORDER BY a.id",
        columns: &[("id", Int), ("case_id", Text), ("at", Text), ("event", Text), ("device_id", Text), ("detail", Text)],
    },
    Table {
        name: "uploads",
        select: "SELECT id, case_id, device_id, blob_id, report_id, length, created_at, expires_at, completed_at, deduplicated FROM uploads",
        columns: &[("id", Text), ("case_id", Text), ("device_id", Text), ("blob_id", Text), ("report_id", Text), ("length", Int), ("created_at", Text), ("expires_at", Text), ("completed_at", Text), ("deduplicated", Bool)],
    },
    Table {
        name: "blobs",
        select: "SELECT case_id, blob_id, size, uploaded_by, report_id, stored_at FROM blobs",
        columns: &[("case_id", Text), ("blob_id", Text), ("size", Int), ("uploaded_by", Text), ("report_id", Text), ("stored_at", Text)],
    },
    Table {
        name: "blob_refs",
        select: "SELECT case_id, blob_id, report_id, device_id, created_at FROM blob_refs",
        columns: &[("case_id", Text), ("blob_id", Text), ("report_id", Text), ("device_id", Text), ("created_at", Text)],
    },
    Table {
        name: "web_sessions",
        select: "SELECT w.cookie_hash, d.case_id, w.device_id, w.session_key, w.certificate, w.nonce, w.csrf, w.created_at, w.expires_at, w.ended_at FROM web_sessions w JOIN devices d ON d.device_id = w.device_id",
        columns: &[("cookie_hash", Text), ("case_id", Text), ("device_id", Text), ("session_key", Text), ("certificate", Bytes), ("nonce", Text), ("csrf", Text), ("created_at", Text), ("expires_at", Int), ("ended_at", Text)],
    },
    Table {
        name: "case_public_keys",
        select: "SELECT case_id, epoch, public_key, signer, signature, published_at FROM case_public_keys",
        columns: &[("case_id", Text), ("epoch", Int), ("public_key", Bytes), ("signer", Text), ("signature", Bytes), ("published_at", Text)],
    },
];

/// What one table's copy did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TableCopied {
    pub table: &'static str,
    /// Rows in the source.
    pub rows: u64,
    /// Rows the target did not hold yet and now does.
    pub inserted: u64,
}

impl PgStore {
    /// Copies every table of `source` into this database; `progress` hears
    /// of each batch (table, rows read so far). Rows already here are left
    /// as they are.
    pub fn copy_from_sqlite(
        &self,
        source: &Store,
        progress: &mut dyn FnMut(&str, u64),
    ) -> Result<Vec<TableCopied>, StoreError> {
        let src = source.conn()?;
        let mut dst = self.conn()?;
        let mut report = Vec::new();
        for table in TABLES {
            let mut stmt = src.prepare(table.select)?;
            let mut rows = stmt.query([])?;
            let mut batch: Vec<Vec<Box<dyn ToSql + Sync>>> = Vec::new();
            let (mut read, mut inserted) = (0u64, 0u64);
            while let Some(row) = rows.next()? {
                let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::new();
                for (i, (column, kind)) in table.columns.iter().enumerate() {
                    values.push(convert(table.name, column, *kind, row.get::<_, Value>(i)?)?);
                }
                batch.push(values);
                read += 1;
                if batch.len() == BATCH {
                    inserted += insert(&mut dst, table, &batch)?;
                    batch.clear();
                    progress(table.name, read);
                }
            }
            if !batch.is_empty() {
                inserted += insert(&mut dst, table, &batch)?;
                progress(table.name, read);
            }
            report.push(TableCopied {
                table: table.name,
                rows: read,
                inserted,
            });
        }
        // The tag index is made from the timeline, as SQLite's triggers do
        // (ASCII case folding, as its lower()); then the audit log's ids
        // continue after the copied ones. Feed numbers need nothing: a
        // round numbers its changes after its case's last.
        dst.batch_execute(
            "DELETE FROM timeline_tags;
             INSERT INTO timeline_tags (report_id, case_id, tag, occurred_utc)
             SELECT DISTINCT t.report_id, t.case_id,
                    translate(j.tag, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),
                    t.occurred_utc
             FROM timeline t, jsonb_array_elements_text(t.tags::jsonb) AS j(tag);
             SELECT setval(pg_get_serial_sequence('audit_log', 'id'),
                           GREATEST((SELECT max(id) FROM audit_log), 1));",
        )?;
        Ok(report)
    }

    /// Every report's stored heads, by case and report id, for comparing
    /// two stores.
    pub fn document_heads(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(self
            .conn()?
            .query(
                "SELECT case_id, id, heads FROM documents ORDER BY case_id, id",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// A stored report's snapshot.
    pub fn document_snapshot(&self, case: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT snapshot FROM documents WHERE case_id = $1 AND id = $2",
                &[&case, &id],
            )?
            .map(|r| r.get(0)))
    }
}

fn convert(
    table: &str,
    column: &str,
    kind: Kind,
    value: Value,
) -> Result<Box<dyn ToSql + Sync>, StoreError> {
    let wrong =
        |v: &Value| StoreError::Corrupt(format!("{table}.{column} holds {:?}", v.data_type()));
    Ok(match (kind, value) {
        (Text, Value::Null) => Box::new(None::<String>),
        (Text, Value::Text(s)) => Box::new(Some(s)),
        (Int, Value::Null) => Box::new(None::<i64>),
        (Int, Value::Integer(n)) => Box::new(Some(n)),
        (Bool, Value::Integer(n)) => Box::new(n != 0),
        (Bytes, Value::Blob(b)) => Box::new(b),
        (Float, Value::Null) => Box::new(None::<f64>),
        (Float, Value::Real(x)) => Box::new(Some(x)),
        (Float, Value::Integer(n)) => Box::new(Some(n as f64)),
        (_, other) => return Err(wrong(&other)),
    })
}

/// Inserts `rows` in one statement and one transaction; returns how many
/// were new.
fn insert(
    conn: &mut postgres::Client,
    table: &Table,
    rows: &[Vec<Box<dyn ToSql + Sync>>],
) -> Result<u64, StoreError> {
    let width = table.columns.len();
    let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let tuples: Vec<String> = (0..rows.len())
        .map(|r| {
            let slots: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", slots.join(", "))
        })
        .collect();
    // Names and shapes come from TABLES, never from the data.
    let sql = format!(
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT DO NOTHING",
        table.name,
        names.join(", "),
        tuples.join(", ")
    );
    let args: Vec<&(dyn ToSql + Sync)> = rows.iter().flatten().map(|v| v.as_ref()).collect();
    Ok(conn.execute(&sql, &args)?)
}
