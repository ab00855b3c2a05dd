//! The sync round on PostgreSQL: the core's [`apply_request`] over a
//! [`ServerStore`] view of one case, in one write transaction that holds
//! the case's advisory lock until it commits, then the feed read in a
//! read-only snapshot.
//!
//! The lock is what keeps the feed whole across processes. `changes.seq`
//! is handed out before commit; two rounds of one case could otherwise
//! commit in the other order than their numbers, and a reader between the
//! two commits would move its cursor past a change that was not yet
//! visible, and never read it. Under the lock, a case's rounds number
//! their changes after the case's last and commit one after another, so
//! what a reader sees of a case is always a prefix of its feed. Rounds of
//! different cases do not wait for each other. The numbers come from the
//! case's own rows, not a sequence, so they stay in commit order when the
//! schema is distributed by case (a Citus sequence hands each node its
//! own range).

use automerge::{Automerge, ChangeHash};
use fieldsync_core::model::{DeviceRole, Report};
use fieldsync_core::signed_change::{SignedChange, VerifiedChange};
use fieldsync_core::sync::policy::Member;
use fieldsync_core::sync::server::{
    answer_from_feed, apply_request, respond, DocumentTip, FeedEntry, ServerLimits, ServerStore,
    StoredDocument, VerifiedRequest,
};
use fieldsync_core::{DeviceId, PublicKey, ReportId};
use postgres::{GenericClient, IsolationLevel};

use super::membership::{device_by_id, member_by_key};
use super::{case_lock_key, PgStore};
use crate::store::error::StoreError;
use crate::store::membership::DeviceRecord;
use crate::store::sql::{format_heads, now_text, parse_heads, parse_stored, sql_count};
use crate::store::timeline::Projection;
use crate::store::{SyncRound, SyncStoreError};

impl PgStore {
    /// One sync round; see [`crate::store::Store::sync_verified`] for what
    /// it answers. Committed before it returns.
    pub fn sync_verified(
        &self,
        requester: &DeviceRecord,
        request: VerifiedRequest,
        limits: ServerLimits,
        live_session: Option<&PublicKey>,
    ) -> Result<SyncRound, SyncStoreError> {
        let cursor = request.cursor;
        let offered = request.offered();
        let case_id = requester.case_id.as_str().to_owned();
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(StoreError::from)?;
        // Only a round that may write waits for the case's lock: one that
        // offers no change writes nothing, and must not wait behind
        // another process's commit to read.
        let writes = request.docs.iter().any(|d| !d.changes.is_empty());
        if writes {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&case_lock_key(&case_id)],
            )
            .map_err(StoreError::from)?;
        }
        // Read again under the lock: a revocation that landed while the
        // request was in flight takes effect.
        let current = device_by_id(&mut tx, &requester.device_id)?
            .ok_or_else(|| StoreError::UnknownDevice(requester.device_id.clone()))?;
        let member = current.member();
        let mut case_store = CaseStore::new(&mut tx, &case_id, now_text(), writes);
        let docs = apply_request(&mut case_store, &member, &request.docs, live_session)?;
        let changes_stored = case_store.stored;
        #[cfg(test)]
        if let Some(hold) = &self.before_commit {
            hold();
        }
        // synchronous_commit = on: once this returns the round is in the
        // flushed WAL, so the response may acknowledge it.
        tx.commit().map_err(StoreError::from)?;

        let mut read = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(StoreError::from)?;
        let mut case_store = CaseStore::new(&mut read, &case_id, String::new(), false);
        let feed = answer_from_feed(&mut case_store, &member, cursor, &offered, limits)?;
        read.commit().map_err(StoreError::from)?;
        Ok(SyncRound {
            response: respond(docs, feed),
            changes_stored,
        })
    }
}

/// A reporter's feed: only changes to reports it created.
const REPORTER_FEED: &str = "SELECT seq, doc_id, doc_creator, actor_device,
        CASE WHEN actor_device = $4 THEN NULL ELSE bytes END,
        CASE WHEN actor_device = $4 THEN NULL ELSE signature END
    FROM changes
    WHERE case_id = $1 AND doc_creator = $4 AND seq > $2
    ORDER BY seq LIMIT $3";

/// A coordinator's feed: the whole case.
const COORDINATOR_FEED: &str = "SELECT seq, doc_id, doc_creator, actor_device,
        CASE WHEN actor_device = $4 THEN NULL ELSE bytes END,
        CASE WHEN actor_device = $4 THEN NULL ELSE signature END
    FROM changes
    WHERE case_id = $1 AND seq > $2
    ORDER BY seq LIMIT $3";

/// One case's view of the database inside an open transaction.
struct CaseStore<'a, C> {
    conn: &'a mut C,
    case_id: &'a str,
    /// When this round's changes were received.
    now: String,
    /// Whether the transaction holds the case's lock, which every write
    /// needs.
    locked: bool,
    /// Changes written so far.
    stored: usize,
}

impl<'a, C: GenericClient> CaseStore<'a, C> {
    fn new(conn: &'a mut C, case_id: &'a str, now: String, locked: bool) -> Self {
        Self {
            conn,
            case_id,
            now,
            locked,
            stored: 0,
        }
    }
}

impl<C: GenericClient> ServerStore for CaseStore<'_, C> {
    type Error = StoreError;

    fn case_id(&self) -> &str {
        self.case_id
    }

    fn member(&mut self, key: &PublicKey) -> Result<Option<Member>, StoreError> {
        member_by_key(self.conn, self.case_id, key)
    }

    fn load_document(&mut self, id: &ReportId) -> Result<Option<StoredDocument>, StoreError> {
        let Some(row) = self.conn.query_opt(
            "SELECT creator, snapshot FROM documents WHERE id = $1 AND case_id = $2",
            &[&id.as_str(), &self.case_id],
        )?
        else {
            return Ok(None);
        };
        let snapshot: Vec<u8> = row.get(1);
        let doc = Automerge::load(&snapshot)
            .map_err(|e| StoreError::Corrupt(format!("report {id} does not load: {e}")))?;
        Ok(Some(StoredDocument {
            doc,
            creator: parse_stored(&row.get::<_, String>(0), "creator device id")?,
        }))
    }

    fn held_by_another_case(&mut self, id: &ReportId) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT case_id FROM report_ids WHERE id = $1",
                &[&id.as_str()],
            )?
            .is_some_and(|r| r.get::<_, &str>(0) != self.case_id))
    }

    fn save_document(
        &mut self,
        id: &ReportId,
        creator: &DeviceId,
        doc: &Automerge,
        report: Option<&Report>,
        new_changes: &[VerifiedChange],
    ) -> Result<(), StoreError> {
        if !self.locked {
            return Err(StoreError::Corrupt(format!(
                "report {id} was to be written by a round that offered no change"
            )));
        }
        let projection = Projection::of_document(id, doc, report)?;
        self.stored += new_changes.len();
        write_document(
            self.conn,
            self.case_id,
            &self.now,
            id,
            creator,
            // Uncompressed, as the SQLite store keeps it.
            &doc.save_nocompress(),
            &format_heads(&doc.get_heads()),
            new_changes,
            &projection,
        )
    }

    fn signature(
        &mut self,
        id: &ReportId,
        hash: &ChangeHash,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT signature FROM changes WHERE doc_id = $1 AND hash = $2 AND case_id = $3",
                &[&id.as_str(), &hash.to_string(), &self.case_id],
            )?
            .map(|r| r.get(0)))
    }

    fn feed_after(
        &mut self,
        reader: &Member,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        let sql = match reader.role {
            DeviceRole::Reporter => REPORTER_FEED,
            DeviceRole::Coordinator => COORDINATOR_FEED,
        };
        let rows = self.conn.query(
            sql,
            &[
                &self.case_id,
                &i64::try_from(cursor).unwrap_or(i64::MAX),
                &sql_count(limit),
                &reader.device.as_str(),
            ],
        )?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let bytes: Option<Vec<u8>> = r.get(4);
                let signature: Option<Vec<u8>> = r.get(5);
                Ok(FeedEntry {
                    seq: u64::try_from(seq)
                        .map_err(|_| StoreError::Corrupt(format!("feed sequence number {seq}")))?,
                    doc: parse_stored(&r.get::<_, String>(1), "report id")?,
                    doc_creator: parse_stored(&r.get::<_, String>(2), "creator device id")?,
                    actor: parse_stored(&r.get::<_, String>(3), "actor device id")?,
                    change: bytes
                        .zip(signature)
                        .map(|(bytes, signature)| SignedChange { bytes, signature }),
                })
            })
            .collect()
    }

    fn document_tip(&mut self, id: &ReportId) -> Result<Option<DocumentTip>, StoreError> {
        let row = self.conn.query_opt(
            "SELECT last_seq, heads FROM documents WHERE id = $1 AND case_id = $2",
            &[&id.as_str(), &self.case_id],
        )?;
        row.map(|r| {
            let last_seq: i64 = r.get(0);
            Ok(DocumentTip {
                last_seq: u64::try_from(last_seq)
                    .map_err(|_| StoreError::Corrupt(format!("report {id} last_seq {last_seq}")))?,
                heads: parse_heads(&r.get::<_, String>(1))?,
            })
        })
        .transpose()
    }
}

/// Writes one report as a sync round does: the document (inserted, or
/// updated within its case), its new changes at the end of the case feed,
/// its timeline row and its tags.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_document(
    conn: &mut impl GenericClient,
    case_id: &str,
    now: &str,
    id: &ReportId,
    creator: &DeviceId,
    snapshot: &[u8],
    heads: &str,
    changes: &[VerifiedChange],
    p: &Projection,
) -> Result<(), StoreError> {
    let id = id.as_str();
    // `xmax = 0` only on a row this statement inserted.
    let inserted: bool = conn
        .query_one(
            "INSERT INTO documents (id, case_id, creator, snapshot, heads, last_seq)
             VALUES ($1, $2, $3, $4, $5, 0)
             ON CONFLICT (case_id, id) DO UPDATE SET snapshot = excluded.snapshot,
                                                     heads = excluded.heads
             RETURNING xmax = 0",
            &[&id, &case_id, &creator.as_str(), &snapshot, &heads],
        )?
        .get(0);
    // A new report takes its id for its case, once for all cases: the
    // round already asked `held_by_another_case`, so this refuses only a
    // copied id that another case's round took meanwhile.
    if inserted
        && conn.execute(
            "INSERT INTO report_ids (id, case_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&id, &case_id],
        )? != 1
    {
        return Err(StoreError::Corrupt(
            "report id belongs to another case".into(),
        ));
    }
    let mut last_seq: Option<i64> = None;
    if !changes.is_empty() {
        // The round holds the case's lock (`save_document` checks), so no
        // other round of the case numbers changes until this one commits:
        // the case's feed grows in commit order.
        let mut seq: i64 = conn
            .query_one(
                "SELECT COALESCE(max(seq), 0) FROM changes WHERE case_id = $1",
                &[&case_id],
            )?
            .get(0);
        let insert = conn.prepare(
            "INSERT INTO changes (case_id, seq, doc_id, hash, bytes, author_device, signature,
                                  received_at, actor_device, doc_creator)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )?;
        for change in changes {
            seq += 1;
            conn.execute(
                &insert,
                &[
                    &case_id,
                    &seq,
                    &id,
                    &change.hash().to_string(),
                    &change.signed.bytes,
                    &change.author.device_id().as_str(),
                    &change.signed.signature,
                    &now,
                    &change.actor.device_id().as_str(),
                    &creator.as_str(),
                ],
            )?;
            last_seq = Some(seq);
        }
    }
    if let Some(seq) = last_seq {
        conn.execute(
            "UPDATE documents SET last_seq = $3 WHERE id = $1 AND case_id = $2",
            &[&id, &case_id, &seq],
        )?;
    }
    conn.execute(
        "INSERT INTO timeline (report_id, case_id, occurred_utc, occurred_at, approximate, place,
                               title, search_text, status, tags, reporter, updated_at,
                               lat, lon, entries)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (case_id, report_id) DO UPDATE SET
             occurred_utc = excluded.occurred_utc, occurred_at = excluded.occurred_at,
             approximate = excluded.approximate, place = excluded.place,
             title = excluded.title, search_text = excluded.search_text,
             status = excluded.status, tags = excluded.tags,
             reporter = excluded.reporter, updated_at = excluded.updated_at,
             lat = excluded.lat, lon = excluded.lon, entries = excluded.entries",
        &[
            &id,
            &case_id,
            &p.occurred_utc,
            &p.occurred_at,
            &p.approximate,
            &p.place,
            &p.title,
            &p.search_text,
            &p.status,
            &p.tags,
            &creator.as_str(),
            &now,
            &p.lat,
            &p.lon,
            &p.entries,
        ],
    )?;
    write_tags(conn, case_id, id, p)
}

/// The report's entries in `timeline_tags`: what SQLite's triggers keep,
/// written here. Tags are folded to lower case in ASCII only, as SQLite's
/// `lower()` folds them, so both stores match a tag filter alike.
fn write_tags(
    conn: &mut impl GenericClient,
    case_id: &str,
    id: &str,
    p: &Projection,
) -> Result<(), StoreError> {
    let tags: Vec<String> = serde_json::from_str(&p.tags)
        .map_err(|_| StoreError::Corrupt(format!("timeline tags of report {id}")))?;
    let mut folded: Vec<String> = tags.iter().map(|t| t.to_ascii_lowercase()).collect();
    folded.sort();
    folded.dedup();
    conn.execute(
        "DELETE FROM timeline_tags WHERE case_id = $1 AND report_id = $2",
        &[&case_id, &id],
    )?;
    if !folded.is_empty() {
        conn.execute(
            "INSERT INTO timeline_tags (report_id, case_id, tag, occurred_utc)
             SELECT $1, $2, tag, $3 FROM unnest($4::text[]) AS tag",
            &[&id, &case_id, &p.occurred_utc, &folded],
        )?;
    }
    Ok(())
}
