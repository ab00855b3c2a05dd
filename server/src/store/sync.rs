//! The sync round: the core's [`apply_request`] over a [`ServerStore`]
//! view of one case ([`CaseStore`]), planned in a read transaction and
//! written in one write transaction ([`Store::sync_verified`]).

use automerge::{Automerge, ChangeHash};
use fieldsync_core::model::{DeviceRole, Report};
use fieldsync_core::protocol::{DocUpdate, SyncRequest, SyncResponse};
use fieldsync_core::signed_change::{SignedChange, VerifiedChange};
use fieldsync_core::sync::policy::Member;
use fieldsync_core::sync::server::{
    answer_from_feed, apply_request, respond, verify_request, DocumentTip, FeedEntry, ServerLimits,
    ServerStore, StoredDocument, SyncError, VerifiedRequest,
};
use fieldsync_core::{DeviceId, PublicKey, ReportId};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::error::StoreError;
use super::membership::{device_by_id, DeviceRecord};
use super::pool::Store;
use super::sql::{now_text, parse_heads, parse_stored, sql_count};
use super::sync_plan::{Plan, PlanRows, PlannedDocument};
use super::sync_rows::{held_by_another_case, member_by_key, SqliteRows};

/// A sync round, committed: the answer for the device, and what the round
/// added to the store (for the operators' metrics, `metrics.rs`).
#[derive(Debug)]
pub struct SyncRound {
    pub response: SyncResponse,
    /// Changes this round wrote to the store: new rows of the case's feed.
    /// Changes the server refused, and changes it already held (a retry, a
    /// relay of another device's change), are not counted; changes the
    /// answer sends the device are not either.
    pub changes_stored: usize,
}

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
        Ok(self
            .sync_verified(requester, verified, limits, None)?
            .response)
    }

    /// Applies a request whose changes [`verify_request`] already checked
    /// (call that outside any lock: it is the expensive part), committed
    /// before this returns, then reads the feed part of the answer in a read
    /// transaction of its own, so the feed is never scanned while other
    /// devices wait for the write lock.
    ///
    /// The apply runs twice over, optimistically: first in a read
    /// transaction, where the Automerge work (checking, applying, saving
    /// the report and its timeline row) runs beside other requests and
    /// records every row it read and every row it would write; then, in one
    /// `BEGIN IMMEDIATE` transaction, the rows it read are read again and,
    /// if none changed, its writes are made. The outcome of a round is a
    /// function of what it read, so it is the outcome it would have had
    /// inside the write transaction. If any changed (another round wrote
    /// the same report, a device was revoked), the round is applied again
    /// inside the write transaction.
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
    ) -> Result<SyncRound, SyncStoreError> {
        let planned = self.plan_round(requester, request, live_session)?;
        self.finish_round(planned, limits)
    }

    /// Step one of [`Store::sync_verified`]: the round applied in a read
    /// transaction, written nowhere.
    pub(super) fn plan_round(
        &self,
        requester: &DeviceRecord,
        request: VerifiedRequest,
        live_session: Option<&PublicKey>,
    ) -> Result<PlannedRound, StoreError> {
        let mut conn = self.conn()?;
        let now = now_text();
        let read = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let seen = device_by_id(&read, &requester.device_id)?
            .ok_or_else(|| StoreError::UnknownDevice(requester.device_id.clone()))?;
        let mut planning = CaseStore::planning(&read, &seen, &now);
        // A refusal of the whole request is decided in the write
        // transaction, against what is current then.
        let docs = apply_request(&mut planning, &seen.member(), &request.docs, live_session).ok();
        let plan = planning.into_plan();
        read.finish()?;
        Ok(PlannedRound {
            requester: seen,
            request,
            live_session: live_session.copied(),
            now,
            outcome: docs.zip(plan),
        })
    }

    /// Steps two and three of [`Store::sync_verified`]: the planned round
    /// written (or applied again) in one write transaction, then the feed.
    pub(super) fn finish_round(
        &self,
        planned: PlannedRound,
        limits: ServerLimits,
    ) -> Result<SyncRound, SyncStoreError> {
        let PlannedRound {
            requester,
            request,
            live_session,
            now,
            outcome,
        } = planned;
        let cursor = request.cursor;
        let offered = request.offered();
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let current = device_by_id(&tx, &requester.device_id)?
            .ok_or_else(|| StoreError::UnknownDevice(requester.device_id.clone()))?;
        let member = current.member();
        let (docs, changes_stored) = match outcome {
            Some((docs, plan))
                if member == requester.member() && plan.still_holds(&mut SqliteRows(&tx))? =>
            {
                let stored = plan.write_all(&mut SqliteRows(&tx))?;
                (docs, stored)
            }
            _ => {
                let mut case_store = CaseStore::writing(&tx, &current, &now);
                let docs = apply_request(
                    &mut case_store,
                    &member,
                    &request.docs,
                    live_session.as_ref(),
                )?;
                (docs, case_store.stored)
            }
        };
        // synchronous=FULL: once this returns the round is on disk, so the
        // response may acknowledge it.
        tx.commit().map_err(StoreError::from)?;

        let read = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let mut case_store = CaseStore::reading(&read, &current);
        let feed = answer_from_feed(&mut case_store, &member, cursor, &offered, limits)?;
        drop(case_store);
        read.finish().map_err(StoreError::from)?;
        Ok(SyncRound {
            response: respond(docs, feed),
            changes_stored,
        })
    }
}

/// A round planned by [`Store::plan_round`], for
/// [`Store::finish_round`].
pub(super) struct PlannedRound {
    /// The requester as the plan read it.
    requester: DeviceRecord,
    request: VerifiedRequest,
    live_session: Option<PublicKey>,
    now: String,
    /// The answer for the offered reports and the plan, unless planning
    /// refused the request.
    outcome: Option<(Vec<DocUpdate>, Plan)>,
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

/// One case's view of the store inside an open transaction: what the
/// core's sync algorithm reads and writes. Planning, it writes nothing: it
/// records what it read and what it would write in a [`Plan`].
struct CaseStore<'a> {
    tx: &'a Transaction<'a>,
    case_id: String,
    /// When this round's changes were received.
    now: String,
    plan: Option<Plan>,
    /// Changes written so far (writing, not planning).
    stored: usize,
}

impl<'a> CaseStore<'a> {
    /// Applies a round inside the write transaction `tx`.
    fn writing(tx: &'a Transaction<'a>, requester: &DeviceRecord, now: &str) -> Self {
        Self {
            tx,
            case_id: requester.case_id.as_str().to_owned(),
            now: now.to_owned(),
            plan: None,
            stored: 0,
        }
    }

    /// Plans a round inside the read transaction `tx`.
    fn planning(tx: &'a Transaction<'a>, requester: &DeviceRecord, now: &str) -> Self {
        Self {
            plan: Some(Plan::new(requester.case_id.as_str(), now)),
            ..Self::writing(tx, requester, now)
        }
    }

    /// Reads the feed inside the read transaction `tx`.
    fn reading(tx: &'a Transaction<'a>, requester: &DeviceRecord) -> Self {
        Self::writing(tx, requester, "")
    }

    fn into_plan(self) -> Option<Plan> {
        self.plan
    }
}

impl ServerStore for CaseStore<'_> {
    type Error = StoreError;

    fn case_id(&self) -> &str {
        &self.case_id
    }

    fn member(&mut self, key: &PublicKey) -> Result<Option<Member>, StoreError> {
        let member = member_by_key(self.tx, &self.case_id, key)?;
        if let Some(plan) = &mut self.plan {
            plan.read_member(key, &member);
        }
        Ok(member)
    }

    fn load_document(&mut self, id: &ReportId) -> Result<Option<StoredDocument>, StoreError> {
        let row: Option<(String, Vec<u8>, String)> = self
            .tx
            .prepare_cached(
                "SELECT creator, snapshot, heads FROM documents WHERE id = ?1 AND case_id = ?2",
            )?
            .query_row(params![id.as_str(), self.case_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        if let Some(plan) = &mut self.plan {
            plan.read_document(id, row.as_ref().map(|(_, _, heads)| heads.clone()));
        }
        let Some((creator, snapshot, _)) = row else {
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
        let held = held_by_another_case(self.tx, &self.case_id, id)?;
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
        match &mut self.plan {
            Some(plan) => {
                plan.write(planned);
                Ok(())
            }
            None => {
                self.stored +=
                    SqliteRows(self.tx).write_document(&self.case_id, &self.now, &planned)?;
                Ok(())
            }
        }
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
