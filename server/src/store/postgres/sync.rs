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

use std::collections::{HashMap, HashSet};

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

    /// One statement for all of them.
    fn documents_heads(
        &mut self,
        case_id: &str,
        ids: &[ReportId],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let wanted: Vec<&str> = ids.iter().map(ReportId::as_str).collect();
        let found: HashMap<String, String> = self
            .0
            .query(
                "SELECT id, heads FROM documents WHERE case_id = $1 AND id = ANY($2)",
                &[&case_id, &wanted],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(wanted.iter().map(|id| found.get(*id).cloned()).collect())
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
        self.write_documents(case_id, now, std::slice::from_ref(document))
    }

    /// The documents (inserted, or updated within their case), their new
    /// changes at the end of the case feed, their timeline rows and tags:
    /// seven statements for the round however many reports and changes it
    /// writes. The transaction holds the case's lock.
    fn write_documents(
        &mut self,
        case_id: &str,
        now: &str,
        documents: &[PlannedDocument],
    ) -> Result<usize, StoreError> {
        let distinct: HashSet<&ReportId> = documents.iter().map(|d| &d.id).collect();
        if distinct.len() < documents.len() {
            // One statement may not upsert a row twice; a plan never holds
            // a report twice (a second load makes it stale), this is for
            // any other caller.
            let mut stored = 0;
            for document in documents {
                stored += self.write_documents(case_id, now, std::slice::from_ref(document))?;
            }
            return Ok(stored);
        }
        let conn = &mut *self.0;
        // Under the case's lock no other round of the case numbers changes
        // until this one commits, so the case's feed grows in commit order.
        let mut seq: i64 = conn
            .query_one(
                "SELECT COALESCE(max(seq), 0) FROM changes WHERE case_id = $1",
                &[&case_id],
            )?
            .get(0);
        let rows = Rows::of(documents, &mut seq)?;
        let inserted = conn.query(
            "INSERT INTO documents (id, case_id, creator, snapshot, heads, last_seq)
             SELECT id, $1, creator, snapshot, heads, last_seq
             FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::bigint[])
                  AS d(id, creator, snapshot, heads, last_seq)
             ON CONFLICT (case_id, id) DO UPDATE SET
                 snapshot = excluded.snapshot, heads = excluded.heads,
                 last_seq = GREATEST(documents.last_seq, excluded.last_seq)
             RETURNING id, xmax = 0",
            &[
                &case_id,
                &rows.ids,
                &rows.creators,
                &rows.snapshots,
                &rows.heads,
                &rows.last_seqs,
            ],
        )?;
        // `xmax = 0` only on a row the statement inserted. A new report
        // takes its id for its case, once for all cases: the plan already
        // asked `held_by_another_case`, so this refuses only a copied id
        // that another case's round took meanwhile.
        let new: Vec<String> = inserted
            .iter()
            .filter(|r| r.get::<_, bool>(1))
            .map(|r| r.get(0))
            .collect();
        if !new.is_empty() {
            let taken = conn.execute(
                "INSERT INTO report_ids (id, case_id)
                 SELECT id, $1 FROM unnest($2::text[]) AS r(id) ON CONFLICT DO NOTHING",
                &[&case_id, &new],
            )?;
            if usize::try_from(taken).ok() != Some(new.len()) {
                return Err(StoreError::Corrupt(
                    "report id belongs to another case".into(),
                ));
            }
        }
        let c = &rows.changes;
        if !c.seqs.is_empty() {
            conn.execute(
                "INSERT INTO changes (case_id, seq, doc_id, hash, bytes, author_device, signature,
                                      received_at, actor_device, doc_creator)
                 SELECT $1, seq, doc, hash, bytes, author, signature, $2, actor, creator
                 FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bytea[], $7::text[],
                             $8::bytea[], $9::text[], $10::text[])
                      AS c(seq, doc, hash, bytes, author, signature, actor, creator)",
                &[
                    &case_id,
                    &now,
                    &c.seqs,
                    &c.docs,
                    &c.hashes,
                    &c.bytes,
                    &c.authors,
                    &c.signatures,
                    &c.actors,
                    &c.creators,
                ],
            )?;
        }
        write_timeline(conn, case_id, now, &rows)?;
        Ok(c.seqs.len())
    }
}

/// A round's reports as columns, for `unnest`.
struct Rows<'a> {
    ids: Vec<&'a str>,
    creators: Vec<&'a str>,
    snapshots: Vec<&'a [u8]>,
    heads: Vec<&'a str>,
    last_seqs: Vec<i64>,
    projections: Vec<&'a Projection>,
    changes: ChangeColumns<'a>,
}

#[derive(Default)]
struct ChangeColumns<'a> {
    seqs: Vec<i64>,
    docs: Vec<&'a str>,
    hashes: Vec<String>,
    bytes: Vec<&'a [u8]>,
    authors: Vec<&'a str>,
    signatures: Vec<&'a [u8]>,
    actors: Vec<&'a str>,
    creators: Vec<&'a str>,
}

impl<'a> Rows<'a> {
    /// Numbers the changes after `seq`, which ends at the last.
    fn of(documents: &'a [PlannedDocument], seq: &mut i64) -> Result<Self, StoreError> {
        let mut rows = Rows {
            ids: Vec::with_capacity(documents.len()),
            creators: Vec::with_capacity(documents.len()),
            snapshots: Vec::with_capacity(documents.len()),
            heads: Vec::with_capacity(documents.len()),
            last_seqs: Vec::with_capacity(documents.len()),
            projections: Vec::with_capacity(documents.len()),
            changes: ChangeColumns::default(),
        };
        for d in documents {
            let c = &mut rows.changes;
            for change in &d.changes {
                *seq = seq
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Corrupt("the feed's numbers ran out".into()))?;
                c.seqs.push(*seq);
                c.docs.push(d.id.as_str());
                c.hashes.push(change.hash.to_string());
                c.bytes.push(&change.signed.bytes);
                c.authors.push(change.author.as_str());
                c.signatures.push(&change.signed.signature);
                c.actors.push(change.actor.as_str());
                c.creators.push(d.creator.as_str());
            }
            rows.ids.push(d.id.as_str());
            rows.creators.push(d.creator.as_str());
            rows.snapshots.push(&d.snapshot);
            rows.heads.push(&d.heads);
            // 0 keeps a stored report's number (GREATEST), and is a new
            // report's without changes.
            rows.last_seqs
                .push(if d.changes.is_empty() { 0 } else { *seq });
            rows.projections.push(&d.projection);
        }
        Ok(rows)
    }
}

/// The reports' timeline rows and their entries in `timeline_tags` (what
/// SQLite's triggers keep, written here). Tags are folded to lower case in
/// ASCII only, as SQLite's `lower()` folds them, so both stores match a
/// tag filter alike.
fn write_timeline(
    conn: &mut impl GenericClient,
    case_id: &str,
    now: &str,
    rows: &Rows<'_>,
) -> Result<(), StoreError> {
    let p = &rows.projections;
    let occurred_utc: Vec<Option<&str>> = p.iter().map(|p| p.occurred_utc.as_deref()).collect();
    let occurred_at: Vec<Option<&str>> = p.iter().map(|p| p.occurred_at.as_deref()).collect();
    let approximate: Vec<bool> = p.iter().map(|p| p.approximate).collect();
    let place: Vec<&str> = p.iter().map(|p| p.place.as_str()).collect();
    let title: Vec<&str> = p.iter().map(|p| p.title.as_str()).collect();
    let search_text: Vec<&str> = p.iter().map(|p| p.search_text.as_str()).collect();
    let status: Vec<&str> = p.iter().map(|p| p.status.as_str()).collect();
    let tags: Vec<&str> = p.iter().map(|p| p.tags.as_str()).collect();
    let lat: Vec<Option<f64>> = p.iter().map(|p| p.lat).collect();
    let lon: Vec<Option<f64>> = p.iter().map(|p| p.lon).collect();
    let entries: Vec<&str> = p.iter().map(|p| p.entries.as_str()).collect();
    conn.execute(
        "INSERT INTO timeline (report_id, case_id, occurred_utc, occurred_at, approximate, place,
                               title, search_text, status, tags, reporter, updated_at,
                               lat, lon, entries)
         SELECT id, $1, occurred_utc, occurred_at, approximate, place, title, search_text,
                status, tags, reporter, $2, lat, lon, entries
         FROM unnest($3::text[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::text[], $13::float8[],
                     $14::float8[], $15::text[])
              AS t(id, occurred_utc, occurred_at, approximate, place, title, search_text,
                   status, tags, reporter, lat, lon, entries)
         ON CONFLICT (case_id, report_id) DO UPDATE SET
             occurred_utc = excluded.occurred_utc, occurred_at = excluded.occurred_at,
             approximate = excluded.approximate, place = excluded.place,
             title = excluded.title, search_text = excluded.search_text,
             status = excluded.status, tags = excluded.tags,
             reporter = excluded.reporter, updated_at = excluded.updated_at,
             lat = excluded.lat, lon = excluded.lon, entries = excluded.entries",
        &[
            &case_id,
            &now,
            &rows.ids,
            &occurred_utc,
            &occurred_at,
            &approximate,
            &place,
            &title,
            &search_text,
            &status,
            &tags,
            &rows.creators,
            &lat,
            &lon,
            &entries,
        ],
    )?;
    let (mut tag_reports, mut tag_names, mut tag_times) = (Vec::new(), Vec::new(), Vec::new());
    for (id, p) in rows.ids.iter().zip(p) {
        let tags: Vec<String> = serde_json::from_str(&p.tags)
            .map_err(|_| StoreError::Corrupt(format!("timeline tags of report {id}")))?;
        let mut folded: Vec<String> = tags.iter().map(|t| t.to_ascii_lowercase()).collect();
        folded.sort();
        folded.dedup();
        for tag in folded {
            tag_reports.push(*id);
            tag_names.push(tag);
            tag_times.push(p.occurred_utc.as_deref());
        }
    }
    conn.execute(
        "DELETE FROM timeline_tags WHERE case_id = $1 AND report_id = ANY($2)",
        &[&case_id, &rows.ids],
    )?;
    if !tag_reports.is_empty() {
        conn.execute(
            "INSERT INTO timeline_tags (report_id, case_id, tag, occurred_utc)
             SELECT report_id, $1, tag, occurred_utc
             FROM unnest($2::text[], $3::text[], $4::text[]) AS t(report_id, tag, occurred_utc)",
            &[&case_id, &tag_reports, &tag_names, &tag_times],
        )?;
    }
    Ok(())
}
