//! A sync round planned outside the write lock: what it read and what it
//! would write, so that the write transaction only checks the reads and
//! makes the writes ([`super::sync`] explains the scheme).

use automerge::{Automerge, ChangeHash};
use fieldsync_core::model::Report;
use fieldsync_core::signed_change::{SignedChange, VerifiedChange};
use fieldsync_core::sync::policy::Member;
use fieldsync_core::{DeviceId, PublicKey, ReportId};

use super::error::StoreError;
use super::sql::format_heads;
use super::timeline::Projection;

/// The rows a plan is checked against and written to: one store's write
/// transaction (`sync_rows.rs` for SQLite, `postgres/sync.rs`).
pub(super) trait PlanRows {
    /// The enrolled device of `case_id` whose public key this is.
    fn member(&mut self, case_id: &str, key: &PublicKey) -> Result<Option<Member>, StoreError>;
    /// The heads of report `id` of `case_id`, as stored, if it is stored
    /// there.
    fn document_heads(
        &mut self,
        case_id: &str,
        id: &ReportId,
    ) -> Result<Option<String>, StoreError>;
    /// The stored heads of each of `ids`, in their order; one look-up
    /// each unless a store does better.
    fn documents_heads(
        &mut self,
        case_id: &str,
        ids: &[ReportId],
    ) -> Result<Vec<Option<String>>, StoreError> {
        ids.iter()
            .map(|id| self.document_heads(case_id, id))
            .collect()
    }
    /// Whether a case other than `case_id` holds a report under `id`.
    fn held_by_another_case(&mut self, case_id: &str, id: &ReportId) -> Result<bool, StoreError>;
    /// Writes one report as a round of `case_id` received at `now` does;
    /// returns how many changes it wrote (each a new row: a duplicate
    /// fails the round, it is not skipped).
    fn write_document(
        &mut self,
        case_id: &str,
        now: &str,
        document: &PlannedDocument,
    ) -> Result<usize, StoreError>;
    /// Writes every report of a round; returns how many changes it wrote.
    /// One report at a time unless a store does better.
    fn write_documents(
        &mut self,
        case_id: &str,
        now: &str,
        documents: &[PlannedDocument],
    ) -> Result<usize, StoreError> {
        let mut stored = 0;
        for document in documents {
            stored += self.write_document(case_id, now, document)?;
        }
        Ok(stored)
    }
}

/// Every row a planned round read, with what it read, and every report it
/// would write.
pub(super) struct Plan {
    case_id: String,
    now: String,
    members: Vec<(PublicKey, Option<Member>)>,
    /// Each report loaded, with its heads as stored (`None`: not stored in
    /// this case).
    documents: Vec<(ReportId, Option<String>)>,
    elsewhere: Vec<(ReportId, bool)>,
    writes: Vec<PlannedDocument>,
    /// A report was loaded twice: the second load saw the row as it was
    /// before the first one's planned write, so the plan cannot stand.
    reloaded: bool,
}

/// A report as the round would write it.
pub(super) struct PlannedDocument {
    pub(super) id: ReportId,
    pub(super) creator: DeviceId,
    pub(super) snapshot: Vec<u8>,
    pub(super) heads: String,
    pub(super) changes: Vec<PlannedChange>,
    pub(super) projection: Projection,
}

/// One new change of a planned report.
pub(super) struct PlannedChange {
    pub(super) hash: ChangeHash,
    pub(super) signed: SignedChange,
    pub(super) author: DeviceId,
    pub(super) actor: DeviceId,
}

impl Plan {
    /// A plan for a round of `case_id` received at `now`.
    pub(super) fn new(case_id: &str, now: &str) -> Self {
        Self {
            case_id: case_id.to_owned(),
            now: now.to_owned(),
            members: Vec::new(),
            documents: Vec::new(),
            elsewhere: Vec::new(),
            writes: Vec::new(),
            reloaded: false,
        }
    }

    pub(super) fn read_member(&mut self, key: &PublicKey, member: &Option<Member>) {
        self.members.push((*key, member.clone()));
    }

    pub(super) fn read_document(&mut self, id: &ReportId, heads: Option<String>) {
        self.reloaded |= self.documents.iter().any(|(seen, _)| seen == id);
        self.documents.push((id.clone(), heads));
    }

    pub(super) fn read_elsewhere(&mut self, id: &ReportId, held: bool) {
        self.elsewhere.push((id.clone(), held));
    }

    pub(super) fn write(&mut self, document: PlannedDocument) {
        self.writes.push(document);
    }

    /// Whether every row the plan read reads the same through `rows`
    /// (inside the write transaction): then the round's outcome is the
    /// plan's.
    pub(super) fn still_holds(&self, rows: &mut impl PlanRows) -> Result<bool, StoreError> {
        if self.reloaded {
            return Ok(false);
        }
        for (key, member) in &self.members {
            if &rows.member(&self.case_id, key)? != member {
                return Ok(false);
            }
        }
        if !self.documents.is_empty() {
            let ids: Vec<ReportId> = self.documents.iter().map(|(id, _)| id.clone()).collect();
            let current = rows.documents_heads(&self.case_id, &ids)?;
            if current
                .iter()
                .zip(&self.documents)
                .any(|(now, (_, then))| now != then)
            {
                return Ok(false);
            }
        }
        for (id, held) in &self.elsewhere {
            if rows.held_by_another_case(&self.case_id, id)? != *held {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Makes the plan's writes through `rows`, inside the write
    /// transaction in which [`Plan::still_holds`] said yes.
    /// Returns how many changes it wrote.
    pub(super) fn write_all(self, rows: &mut impl PlanRows) -> Result<usize, StoreError> {
        rows.write_documents(&self.case_id, &self.now, &self.writes)
    }
}

impl PlannedDocument {
    /// Report `id` as a round saves it: `doc` after the round's changes,
    /// `new_changes` those of them the store does not hold yet.
    pub(super) fn new(
        id: &ReportId,
        creator: &DeviceId,
        doc: &Automerge,
        report: Option<&Report>,
        new_changes: &[VerifiedChange],
    ) -> Result<Self, StoreError> {
        Ok(PlannedDocument {
            id: id.clone(),
            creator: creator.clone(),
            // Uncompressed: deflating a report's columns costs twenty times
            // the save itself and takes a fifth off its size (measured with
            // `--example apply_parts`); `Automerge::load` reads both.
            snapshot: doc.save_nocompress(),
            heads: format_heads(&doc.get_heads()),
            changes: new_changes
                .iter()
                .map(|change| PlannedChange {
                    hash: change.hash(),
                    signed: change.signed.clone(),
                    author: change.author.device_id(),
                    actor: change.actor.device_id(),
                })
                .collect(),
            projection: Projection::of_document(id, doc, report)?,
        })
    }
}
