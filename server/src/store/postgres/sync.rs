//! The sync round on PostgreSQL: the core's [`apply_request`] over a
//! [`ServerStore`] view of one case, planned in a read-only snapshot
//! outside any lock as on SQLite (`store/sync.rs` explains the plan), then
//! checked and written in one write transaction that holds the case's
//! advisory lock until it commits, then the feed read in a read-only
//! snapshot.
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
use postgres::{GenericClient, IsolationLevel, Transaction};

use super::membership::{device_by_id, member_by_key};
use super::{case_lock_key, PgStore};
use crate::store::error::StoreError;
use crate::store::membership::DeviceRecord;
use crate::store::sql::{now_text, parse_heads, parse_stored, sql_count};
use crate::store::sync_plan::{Plan, PlanRows, PlannedDocument};
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
        let now = now_text();
        let mut conn = self.conn()?;
        // Only a round that may write is planned and waits for the case's
        // lock: one that offers no change writes nothing, and must not
        // wait behind another process's commit to read.
        let writes = request.docs.iter().any(|d| !d.changes.is_empty());
        let planned = if writes {
            let mut read = snapshot(&mut conn)?;
            let seen = device_by_id(&mut read, &requester.device_id)?
                .ok_or_else(|| StoreError::UnknownDevice(requester.device_id.clone()))?
                .member();
            let mut planning = CaseStore::planning(&mut read, &case_id, &now);
            // A refusal of the whole request is decided under the lock,
            // against what is current then.
            let docs = apply_request(&mut planning, &seen, &request.docs, live_session).ok();
            let plan = planning.plan.take();
            read.commit().map_err(StoreError::from)?;
            docs.zip(plan).map(|outcome| (seen, outcome))
        } else {
            None
        };

        #[cfg(test)]
        if let Some(hook) = &self.before_lock {
            hook();
        }
        let mut tx = conn.transaction().map_err(StoreError::from)?;
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
        let (docs, changes_stored) = match planned {
            Some((seen, (docs, plan)))
                if seen == member && plan.still_holds(&mut PgRows(&mut tx))? =>
            {
                let stored = plan.write_all(&mut PgRows(&mut tx))?;
                (docs, stored)
            }
            _ => {
                let mut case_store = CaseStore::writing(&mut tx, &case_id, &now, writes);
                let docs = apply_request(&mut case_store, &member, &request.docs, live_session)?;
                (docs, case_store.stored)
            }
        };
        #[cfg(test)]
        if let Some(hold) = &self.before_commit {
            hold();
        }
        // synchronous_commit = on: once this returns the round is in the
        // flushed WAL, so the response may acknowledge it.
        tx.commit().map_err(StoreError::from)?;

        let mut read = snapshot(&mut conn)?;
        let mut case_store = CaseStore::reading(&mut read, &case_id);
        let feed = answer_from_feed(&mut case_store, &member, cursor, &offered, limits)?;
        read.commit().map_err(StoreError::from)?;
        Ok(SyncRound {
            response: respond(docs, feed),
            changes_stored,
        })
    }
}

/// A read-only transaction that sees one snapshot throughout.
fn snapshot(conn: &mut postgres::Client) -> Result<Transaction<'_>, StoreError> {
    Ok(conn
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?)
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

/// One case's view of the database inside an open transaction. Planning,
/// it writes nothing: it records what it read and what it would write in
/// a [`Plan`].
struct CaseStore<'a, C> {
    conn: &'a mut C,
    case_id: &'a str,
    /// When this round's changes were received.
    now: String,
    /// Whether the transaction holds the case's lock, which every write
    /// needs.
    locked: bool,
    plan: Option<Plan>,
    /// Changes written so far (writing, not planning).
    stored: usize,
}

impl<'a, C: GenericClient> CaseStore<'a, C> {
    /// Applies a round inside a transaction, which must hold the case's
    /// lock (`locked`) if the round writes.
    fn writing(conn: &'a mut C, case_id: &'a str, now: &str, locked: bool) -> Self {
        Self {
            conn,
            case_id,
            now: now.to_owned(),
            locked,
            plan: None,
            stored: 0,
        }
    }

    /// Reads the feed inside a read-only snapshot.
    fn reading(conn: &'a mut C, case_id: &'a str) -> Self {
        Self::writing(conn, case_id, "", false)
    }

    /// Plans a round inside a read-only snapshot.
    fn planning(conn: &'a mut C, case_id: &'a str, now: &str) -> Self {
        Self {
            plan: Some(Plan::new(case_id, now)),
            ..Self::writing(conn, case_id, now, false)
        }
    }
}

impl<C: GenericClient> ServerStore for CaseStore<'_, C> {
    type Error = StoreError;

    fn case_id(&self) -> &str {
        self.case_id
    }

    fn member(&mut self, key: &PublicKey) -> Result<Option<Member>, StoreError> {
        let member = member_by_key(self.conn, self.case_id, key)?;
        if let Some(plan) = &mut self.plan {
            plan.read_member(key, &member);
        }
        Ok(member)
    }

    fn load_document(&mut self, id: &ReportId) -> Result<Option<StoredDocument>, StoreError> {
        let row = self.conn.query_opt(
            "SELECT creator, snapshot, heads FROM documents WHERE case_id = $1 AND id = $2",
            &[&self.case_id, &id.as_str()],
        )?;
        if let Some(plan) = &mut self.plan {
            plan.read_document(id, row.as_ref().map(|r| r.get(2)));
        }
        let Some(row) = row else {
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
        let held = held_by_another_case(self.conn, self.case_id, id)?;
        if let Some(plan) = &mut self.plan {
            plan.read_elsewhere(id, held);
        }
        Ok(held)
    }

    fn save_document(
        &mut self,
        id: &ReportId,
        creator: &DeviceId,
        doc: &Automerge,
        report: Option<&Report>,
        new_changes: &[VerifiedChange],
    ) -> Result<(), StoreError> {
        let planned = PlannedDocument::new(id, creator, doc, report, new_changes)?;
        if let Some(plan) = &mut self.plan {
            plan.write(planned);
            return Ok(());
        }
        if !self.locked {
            return Err(StoreError::Corrupt(format!(
                "report {id} was to be written by a round that offered no change"
            )));
        }
        self.stored += PgRows(&mut *self.conn).write_document(self.case_id, &self.now, &planned)?;
        Ok(())
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

/// Whether a case other than `case_id` took report id `id`.
fn held_by_another_case(
    conn: &mut impl GenericClient,
    case_id: &str,
    id: &ReportId,
) -> Result<bool, StoreError> {
    Ok(conn
        .query_opt(
            "SELECT case_id FROM report_ids WHERE id = $1",
            &[&id.as_str()],
        )?
        .is_some_and(|r| r.get::<_, &str>(0) != case_id))
}

/// A PostgreSQL write transaction, as a plan's rows ([`PlanRows`]).
struct PgRows<'a, C>(&'a mut C);

impl<C: GenericClient> PlanRows for PgRows<'_, C> {
    fn member(&mut self, case_id: &str, key: &PublicKey) -> Result<Option<Member>, StoreError> {
        member_by_key(self.0, case_id, key)
    }

    fn document_heads(
        &mut self,
        case_id: &str,
        id: &ReportId,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .query_opt(
                "SELECT heads FROM documents WHERE case_id = $1 AND id = $2",
                &[&case_id, &id.as_str()],
            )?
            .map(|r| r.get(0)))
    }

    fn held_by_another_case(&mut self, case_id: &str, id: &ReportId) -> Result<bool, StoreError> {
        held_by_another_case(self.0, case_id, id)
    }

    /// The document (inserted, or updated within its case), its new
    /// changes at the end of the case feed, its timeline row and its tags,
    /// in six statements however many changes it has. The transaction
    /// holds the case's lock.
    fn write_document(
        &mut self,
        case_id: &str,
        now: &str,
        document: &PlannedDocument,
    ) -> Result<usize, StoreError> {
        let conn = &mut *self.0;
        let id = document.id.as_str();
        let count = document.changes.len();
        // Under the case's lock no other round of the case numbers changes
        // until this one commits, so the case's feed grows in commit order.
        let first: i64 = conn
            .query_one(
                "SELECT COALESCE(max(seq), 0) + 1 FROM changes WHERE case_id = $1",
                &[&case_id],
            )?
            .get(0);
        let last_seq = first + i64::try_from(count).unwrap_or(i64::MAX) - 1;
        // `xmax = 0` only on a row this statement inserted.
        let inserted: bool = conn
            .query_one(
                "INSERT INTO documents (id, case_id, creator, snapshot, heads, last_seq)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (case_id, id) DO UPDATE SET
                     snapshot = excluded.snapshot, heads = excluded.heads,
                     last_seq = GREATEST(documents.last_seq, excluded.last_seq)
                 RETURNING xmax = 0",
                &[
                    &id,
                    &case_id,
                    &document.creator.as_str(),
                    &document.snapshot,
                    &document.heads,
                    &if count == 0 { 0 } else { last_seq },
                ],
            )?
            .get(0);
        // A new report takes its id for its case, once for all cases: the
        // plan already asked `held_by_another_case`, so this refuses only
        // a copied id that another case's round took meanwhile.
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
        if count > 0 {
            let hashes: Vec<String> = document
                .changes
                .iter()
                .map(|c| c.hash.to_string())
                .collect();
            let bytes: Vec<&[u8]> = document
                .changes
                .iter()
                .map(|c| &c.signed.bytes[..])
                .collect();
            let signatures: Vec<&[u8]> = document
                .changes
                .iter()
                .map(|c| &c.signed.signature[..])
                .collect();
            let authors: Vec<&str> = document.changes.iter().map(|c| c.author.as_str()).collect();
            let actors: Vec<&str> = document.changes.iter().map(|c| c.actor.as_str()).collect();
            conn.execute(
                "INSERT INTO changes (case_id, seq, doc_id, hash, bytes, author_device, signature,
                                      received_at, actor_device, doc_creator)
                 SELECT $1, $2 + n - 1, $3, hash, bytes, author, signature, $4, actor, $5
                 FROM unnest($6::text[], $7::bytea[], $8::text[], $9::bytea[], $10::text[])
                      WITH ORDINALITY AS c(hash, bytes, author, signature, actor, n)",
                &[
                    &case_id,
                    &first,
                    &id,
                    &now,
                    &document.creator.as_str(),
                    &hashes,
                    &bytes,
                    &authors,
                    &signatures,
                    &actors,
                ],
            )?;
        }
        write_timeline(
            conn,
            case_id,
            now,
            id,
            &document.creator,
            &document.projection,
        )?;
        Ok(count)
    }
}

/// The report's timeline row.
fn write_timeline(
    conn: &mut impl GenericClient,
    case_id: &str,
    now: &str,
    id: &str,
    creator: &DeviceId,
    p: &Projection,
) -> Result<(), StoreError> {
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
