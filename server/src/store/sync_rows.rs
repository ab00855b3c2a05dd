//! The rows a sync round reads and writes for one report, as plain
//! functions over a connection: the round itself ([`super::sync`]) and its
//! plan ([`super::sync_plan`]) both go through them.

use automerge::ChangeHash;
use fieldsync_core::signed_change::SignedChange;
use fieldsync_core::sync::policy::Member;
use fieldsync_core::{DeviceId, PublicKey, ReportId};
use rusqlite::{params, Connection, OptionalExtension};

use super::error::StoreError;
use super::sql::parse_stored;
use super::sync_plan::{PlanRows, PlannedDocument};
use super::timeline::Projection;

/// A SQLite write transaction, as a plan's rows ([`PlanRows`]).
pub(super) struct SqliteRows<'a>(pub(super) &'a Connection);

impl PlanRows for SqliteRows<'_> {
    fn member(&mut self, case_id: &str, key: &PublicKey) -> Result<Option<Member>, StoreError> {
        member_by_key(self.0, case_id, key)
    }

    fn document_heads(
        &mut self,
        case_id: &str,
        id: &ReportId,
    ) -> Result<Option<String>, StoreError> {
        document_heads(self.0, case_id, id)
    }

    fn held_by_another_case(&mut self, case_id: &str, id: &ReportId) -> Result<bool, StoreError> {
        held_by_another_case(self.0, case_id, id)
    }

    fn write_document(
        &mut self,
        case_id: &str,
        now: &str,
        document: &PlannedDocument,
    ) -> Result<usize, StoreError> {
        let changes: Vec<ChangeRow<'_>> = document
            .changes
            .iter()
            .map(|c| ChangeRow {
                hash: c.hash,
                signed: &c.signed,
                author: c.author.clone(),
                actor: c.actor.clone(),
            })
            .collect();
        write_document(
            self.0,
            case_id,
            now,
            &DocumentRow {
                id: &document.id,
                creator: &document.creator,
                snapshot: &document.snapshot,
                heads: &document.heads,
                changes: &changes,
                projection: &document.projection,
            },
        )?;
        Ok(changes.len())
    }
}

/// The enrolled device of `case_id` whose public key this is.
pub(super) fn member_by_key(
    conn: &Connection,
    case_id: &str,
    key: &PublicKey,
) -> Result<Option<Member>, StoreError> {
    let row: Option<(String, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT device_id, role, revoked_at FROM devices WHERE public_key = ?1 AND case_id = ?2",
        )?
        .query_row(params![&key.as_bytes()[..], case_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    row.map(|(device, role, revoked_at)| {
        Ok(Member {
            device: parse_stored(&device, "device id")?,
            role: parse_stored(&role, "device role")?,
            revoked: revoked_at.is_some(),
        })
    })
    .transpose()
}

/// The heads of report `id` of `case_id`, as stored, if it is stored there.
pub(super) fn document_heads(
    conn: &Connection,
    case_id: &str,
    id: &ReportId,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT heads FROM documents WHERE id = ?1 AND case_id = ?2")?
        .query_row(params![id.as_str(), case_id], |r| r.get(0))
        .optional()?)
}

/// Whether a case other than `case_id` holds a report under `id`.
pub(super) fn held_by_another_case(
    conn: &Connection,
    case_id: &str,
    id: &ReportId,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM documents WHERE id = ?1 AND case_id != ?2")?
        .query_row(params![id.as_str(), case_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// What a sync round writes for one report: its document, the changes it
/// accepted and its timeline row.
pub(super) struct DocumentRow<'a> {
    pub(super) id: &'a ReportId,
    pub(super) creator: &'a DeviceId,
    pub(super) snapshot: &'a [u8],
    pub(super) heads: &'a str,
    pub(super) changes: &'a [ChangeRow<'a>],
    pub(super) projection: &'a Projection,
}

/// One new change of a report, as the case feed stores it.
pub(super) struct ChangeRow<'a> {
    pub(super) hash: ChangeHash,
    pub(super) signed: &'a SignedChange,
    /// The device answerable for it.
    pub(super) author: DeviceId,
    /// The device id of the key that signed it: the author, or the web
    /// session's key. The feed skips a reader's own changes by this.
    pub(super) actor: DeviceId,
}

/// Writes one report as a sync round does, received at `now`: the document
/// (inserted, or updated within its case), its new changes at the end of the
/// case feed, and its timeline row.
pub(super) fn write_document(
    tx: &Connection,
    case_id: &str,
    now: &str,
    row: &DocumentRow<'_>,
) -> Result<(), StoreError> {
    let id = row.id.as_str();
    let upserted = tx
        .prepare_cached(
            "INSERT INTO documents (id, case_id, creator, snapshot, heads, last_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, 0)
             ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, heads = excluded.heads
             WHERE documents.case_id = excluded.case_id",
        )?
        .execute(params![
            id,
            case_id,
            row.creator.as_str(),
            row.snapshot,
            row.heads
        ])?;
    if upserted != 1 {
        return Err(StoreError::Corrupt(
            "report id belongs to another case".into(),
        ));
    }
    let mut last_seq = None;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO changes (case_id, doc_id, hash, bytes, author_device, signature, received_at,
                                  actor_device, doc_creator)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for change in row.changes {
            insert.execute(params![
                case_id,
                id,
                change.hash.to_string(),
                change.signed.bytes,
                change.author.as_str(),
                change.signed.signature,
                now,
                change.actor.as_str(),
                row.creator.as_str(),
            ])?;
            last_seq = Some(tx.last_insert_rowid());
        }
    }
    if let Some(seq) = last_seq {
        tx.prepare_cached("UPDATE documents SET last_seq = ?2 WHERE id = ?1")?
            .execute(params![id, seq])?;
    }
    let p = row.projection;
    tx.prepare_cached(
        "INSERT INTO timeline (report_id, case_id, occurred_utc, occurred_at, approximate, place,
                               title, search_text, status, tags, reporter, updated_at,
                               lat, lon, entries)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (report_id) DO UPDATE SET
             occurred_utc = excluded.occurred_utc, occurred_at = excluded.occurred_at,
             approximate = excluded.approximate, place = excluded.place,
             title = excluded.title, search_text = excluded.search_text,
             status = excluded.status, tags = excluded.tags,
             reporter = excluded.reporter, updated_at = excluded.updated_at,
             lat = excluded.lat, lon = excluded.lon, entries = excluded.entries",
    )?
    .execute(params![
        id,
        case_id,
        p.occurred_utc,
        p.occurred_at,
        p.approximate,
        p.place,
        p.title,
        p.search_text,
        p.status,
        p.tags,
        row.creator.as_str(),
        now,
        p.lat,
        p.lon,
        p.entries,
    ])?;
    Ok(())
}
