//! A sync round planned outside the write lock: what it read and what it
//! would write, so that the write transaction only checks the reads and
//! makes the writes ([`super::sync`] explains the scheme).

use automerge::ChangeHash;
use fieldsync_core::signed_change::SignedChange;
use fieldsync_core::sync::policy::Member;
use fieldsync_core::{DeviceId, PublicKey, ReportId};
use rusqlite::Connection;

use super::error::StoreError;
use super::sync_rows::{
    document_heads, held_by_another_case, member_by_key, write_document, ChangeRow, DocumentRow,
};
use super::timeline::Projection;

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

    /// Whether every row the plan read reads the same through `conn`
    /// (inside the write transaction): then the round's outcome is the
    /// plan's.
    pub(super) fn still_holds(&self, conn: &Connection) -> Result<bool, StoreError> {
        if self.reloaded {
            return Ok(false);
        }
        for (key, member) in &self.members {
            if &member_by_key(conn, &self.case_id, key)? != member {
                return Ok(false);
            }
        }
        for (id, heads) in &self.documents {
            if &document_heads(conn, &self.case_id, id)? != heads {
                return Ok(false);
            }
        }
        for (id, held) in &self.elsewhere {
            if held_by_another_case(conn, &self.case_id, id)? != *held {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Makes the plan's writes through `conn`, inside the write
    /// transaction in which [`Plan::still_holds`] said yes.
    /// Returns how many changes it wrote.
    pub(super) fn write_all(self, conn: &Connection) -> Result<usize, StoreError> {
        let mut stored = 0;
        for document in &self.writes {
            stored += document.write(conn, &self.case_id, &self.now)?;
        }
        Ok(stored)
    }
}

impl PlannedDocument {
    /// Writes this report's rows for a round of `case_id` received at `now`;
    /// returns how many changes it wrote (each is a new row: a duplicate
    /// would fail the round, not be skipped).
    pub(super) fn write(
        &self,
        conn: &Connection,
        case_id: &str,
        now: &str,
    ) -> Result<usize, StoreError> {
        let changes: Vec<ChangeRow<'_>> = self
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
            conn,
            case_id,
            now,
            &DocumentRow {
                id: &self.id,
                creator: &self.creator,
                snapshot: &self.snapshot,
                heads: &self.heads,
                changes: &changes,
                projection: &self.projection,
            },
        )?;
        Ok(changes.len())
    }
}
