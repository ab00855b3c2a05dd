//! The sync round: the core's [`apply_request`] over a [`ServerStore`]
//! view of one case ([`CaseStore`]) inside one write transaction, and the
//! rows a round writes for one report ([`write_document`]).

use automerge::{Automerge, ChangeHash};
use fieldsync_core::document::read_report;
use fieldsync_core::model::DeviceRole;
use fieldsync_core::protocol::{SyncRequest, SyncResponse};
use fieldsync_core::signed_change::{SignedChange, VerifiedChange};
use fieldsync_core::sync::policy::Member;
use fieldsync_core::sync::server::{
    answer_from_feed, apply_request, respond, verify_request, DocumentTip, FeedEntry, ServerLimits,
    ServerStore, StoredDocument, SyncError, VerifiedRequest,
};
use fieldsync_core::{DeviceId, PublicKey, ReportId};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::error::StoreError;
use super::membership::{device_by_id, DeviceRecord};
use super::pool::Store;
use super::sql::{format_heads, now_text, parse_heads, parse_stored, sql_count};
use super::timeline::Projection;

/// Why a sync round failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SyncStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError<StoreError>),
}

impl Store {
    /// Runs one sync round for `requester`: verifies every change, then
    /// applies them in one write transaction, committed before this
    /// returns, then answers from the feed in a read transaction. On any
    /// error nothing is written. See [`Store::sync_verified`].
    pub fn sync(
        &self,
        requester: &DeviceRecord,
        request: &SyncRequest,
        limits: ServerLimits,
    ) -> Result<SyncResponse, SyncStoreError> {
        let verified = verify_request(request.clone()).map_err(SyncError::from)?;
        self.sync_verified(requester, verified, limits, None)
    }

    /// Applies a request whose changes [`verify_request`] already checked
    /// (call that outside any lock: it is the expensive part) in one
    /// `BEGIN IMMEDIATE` transaction, committed before the answer is built,
    /// then reads the feed part of the answer in a read transaction of its
    /// own, so the feed is never scanned while other devices wait for the
    /// write lock.
    ///
    /// The requester's role and revocation are read again inside the write
    /// transaction, so a revocation that lands while the request is in
    /// flight takes effect. `live_session` is the key of the web session
    /// whose commit route sends this request, if any.
    pub fn sync_verified(
        &self,
        requester: &DeviceRecord,
        request: VerifiedRequest,
        limits: ServerLimits,
        live_session: Option<&PublicKey>,
    ) -> Result<SyncResponse, SyncStoreError> {
        let cursor = request.cursor;
        let offered = request.offered();
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let current = device_by_id(&tx, &requester.device_id)?
            .ok_or_else(|| StoreError::UnknownDevice(requester.device_id.clone()))?;
        let member = current.member();
        let mut case_store = CaseStore {
            tx: &tx,
            case_id: current.case_id.as_str().to_owned(),
            now: now_text(),
        };
        let docs = apply_request(&mut case_store, &member, request.docs, live_session)?;
        drop(case_store);
        // synchronous=FULL: once this returns the round is on disk, so the
        // response may acknowledge it.
        tx.commit().map_err(StoreError::from)?;

        let read = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let mut case_store = CaseStore {
            tx: &read,
            case_id: current.case_id.as_str().to_owned(),
            now: String::new(),
        };
        let feed = answer_from_feed(&mut case_store, &member, cursor, &offered, limits)?;
        drop(case_store);
        read.finish().map_err(StoreError::from)?;
        Ok(respond(docs, feed))
    }
}

/// A reporter's feed: only changes to reports it created, by the index
/// `changes_creator_feed`; bytes left unread for its own changes.
pub(super) const REPORTER_FEED: &str = "SELECT seq, doc_id, doc_creator, actor_device,
        CASE WHEN actor_device = ?4 THEN NULL ELSE bytes END,
        CASE WHEN actor_device = ?4 THEN NULL ELSE signature END
    FROM changes
    WHERE case_id = ?1 AND doc_creator = ?4 AND seq > ?2
    ORDER BY seq LIMIT ?3";

/// A coordinator's feed: the whole case, by the index `changes_feed`.
pub(super) const COORDINATOR_FEED: &str = "SELECT seq, doc_id, doc_creator, actor_device,
        CASE WHEN actor_device = ?4 THEN NULL ELSE bytes END,
        CASE WHEN actor_device = ?4 THEN NULL ELSE signature END
    FROM changes
    WHERE case_id = ?1 AND seq > ?2
    ORDER BY seq LIMIT ?3";

/// One case's view of the store inside an open `BEGIN IMMEDIATE`
/// transaction: what the core's sync algorithm reads and writes.
struct CaseStore<'a> {
    tx: &'a Transaction<'a>,
    case_id: String,
    /// When this round's changes were received.
    now: String,
}

impl ServerStore for CaseStore<'_> {
    type Error = StoreError;

    fn case_id(&self) -> &str {
        &self.case_id
    }

    fn member(&mut self, key: &PublicKey) -> Result<Option<Member>, StoreError> {
        let row: Option<(String, String, Option<String>)> = self
            .tx
            .prepare_cached(
                "SELECT device_id, role, revoked_at FROM devices WHERE public_key = ?1 AND case_id = ?2",
            )?
            .query_row(params![&key.as_bytes()[..], self.case_id], |r| {
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

    fn load_document(&mut self, id: &ReportId) -> Result<Option<StoredDocument>, StoreError> {
        let row: Option<(String, Vec<u8>)> = self
            .tx
            .prepare_cached(
                "SELECT creator, snapshot FROM documents WHERE id = ?1 AND case_id = ?2",
            )?
            .query_row(params![id.as_str(), self.case_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((creator, snapshot)) = row else {
            return Ok(None);
        };
        let doc = Automerge::load(&snapshot)
            .map_err(|e| StoreError::Corrupt(format!("report {id} does not load: {e}")))?;
        Ok(Some(StoredDocument {
            doc,
            creator: parse_stored(&creator, "creator device id")?,
        }))
    }

    fn held_by_another_case(&mut self, id: &ReportId) -> Result<bool, StoreError> {
        // Report ids are 128 random bits: one taken in another case was
        // copied, and the sync answers as for another reporter's report.
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM documents WHERE id = ?1 AND case_id != ?2")?
            .query_row(params![id.as_str(), self.case_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn save_document(
        &mut self,
        id: &ReportId,
        creator: &DeviceId,
        doc: &Automerge,
        new_changes: &[VerifiedChange],
    ) -> Result<(), StoreError> {
        let projection = match read_report(doc) {
            Ok(report) => Projection::of(&report)?,
            Err(e) => {
                // The field name only: values would be report contents.
                let field = e.field();
                tracing::warn!(report = %id, field, "report does not read; its timeline row is left empty");
                Projection::empty()
            }
        };
        let changes: Vec<ChangeRow<'_>> = new_changes
            .iter()
            .map(|change| ChangeRow {
                hash: change.hash(),
                signed: &change.signed,
                author: change.author.device_id(),
                actor: change.actor.device_id(),
            })
            .collect();
        write_document(
            self.tx,
            &self.case_id,
            &self.now,
            &DocumentRow {
                id,
                creator,
                snapshot: &doc.save(),
                heads: &format_heads(&doc.get_heads()),
                changes: &changes,
                projection: &projection,
            },
        )
    }

    fn signature(
        &mut self,
        id: &ReportId,
        hash: &ChangeHash,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT signature FROM changes WHERE doc_id = ?1 AND hash = ?2 AND case_id = ?3",
            )?
            .query_row(params![id.as_str(), hash.to_string(), self.case_id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn feed_after(
        &mut self,
        reader: &Member,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        // A reporter reads only the reports it created, by the creator
        // index; a coordinator the whole case. Changes the reader's own key
        // signed come without their bytes: it has them.
        let sql = match reader.role {
            DeviceRole::Reporter => REPORTER_FEED,
            DeviceRole::Coordinator => COORDINATOR_FEED,
        };
        let mut stmt = self.tx.prepare_cached(sql)?;
        let rows = stmt
            .query_map(
                params![
                    self.case_id,
                    i64::try_from(cursor).unwrap_or(i64::MAX),
                    sql_count(limit),
                    reader.device.as_str(),
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<Vec<u8>>>(4)?,
                        r.get::<_, Option<Vec<u8>>>(5)?,
                    ))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(seq, doc, creator, actor, bytes, signature)| {
                Ok(FeedEntry {
                    seq: u64::try_from(seq)
                        .map_err(|_| StoreError::Corrupt(format!("feed sequence number {seq}")))?,
                    doc: parse_stored(&doc, "report id")?,
                    doc_creator: parse_stored(&creator, "creator device id")?,
                    actor: parse_stored(&actor, "actor device id")?,
                    change: bytes
                        .zip(signature)
                        .map(|(bytes, signature)| SignedChange { bytes, signature }),
                })
            })
            .collect()
    }

    fn document_tip(&mut self, id: &ReportId) -> Result<Option<DocumentTip>, StoreError> {
        let row: Option<(i64, String)> = self
            .tx
            .prepare_cached("SELECT last_seq, heads FROM documents WHERE id = ?1 AND case_id = ?2")?
            .query_row(params![id.as_str(), self.case_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        row.map(|(last_seq, heads)| {
            Ok(DocumentTip {
                last_seq: u64::try_from(last_seq)
                    .map_err(|_| StoreError::Corrupt(format!("report {id} last_seq {last_seq}")))?,
                heads: parse_heads(&heads)?,
            })
        })
        .transpose()
    }
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
