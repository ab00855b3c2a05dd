//! An in-memory [`ServerStore`]: the reference implementation used by the
//! core's tests, and a model of what the SQLite store must do.

use std::collections::HashMap;
use std::convert::Infallible;

use automerge::{Automerge, ChangeHash};

use crate::identity::PublicKey;
use crate::ids::{DeviceId, ReportId};
use crate::signed_change::{SignedChange, VerifiedChange};

use super::policy::Member;
use super::server::{DocumentTip, FeedEntry, ServerStore, StoredDocument};

/// One case's worth of server state, in memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    pub case: String,
    pub members: HashMap<PublicKey, Member>,
    docs: HashMap<ReportId, (Vec<u8>, DeviceId)>,
    signatures: HashMap<(ReportId, ChangeHash), Vec<u8>>,
    feed: Vec<FeedEntry>,
}

impl MemoryStore {
    pub fn new(case: &str) -> Self {
        Self {
            case: case.to_owned(),
            ..Self::default()
        }
    }

    pub fn enroll(&mut self, key: PublicKey, role: crate::model::DeviceRole) {
        self.members.insert(
            key,
            Member {
                device: key.device_id(),
                role,
                revoked: false,
            },
        );
    }

    /// Every stored document, loaded.
    pub fn documents(&self) -> Vec<(ReportId, Automerge)> {
        let mut out: Vec<(ReportId, Automerge)> = self
            .docs
            .iter()
            .map(|(id, (bytes, _))| {
                (
                    id.clone(),
                    Automerge::load(bytes).expect("stored documents load"),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Number of documents stored.
    pub fn documents_saved(&self) -> usize {
        self.docs.len()
    }

    pub fn feed_len(&self) -> usize {
        self.feed.len()
    }
}

impl ServerStore for MemoryStore {
    type Error = Infallible;

    fn case_id(&self) -> &str {
        &self.case
    }

    fn member(&mut self, key: &PublicKey) -> Result<Option<Member>, Infallible> {
        Ok(self.members.get(key).cloned())
    }

    fn load_document(&mut self, id: &ReportId) -> Result<Option<StoredDocument>, Infallible> {
        Ok(self.docs.get(id).map(|(bytes, creator)| StoredDocument {
            doc: Automerge::load(bytes).expect("stored documents load"),
            creator: creator.clone(),
        }))
    }

    fn held_by_another_case(&mut self, _id: &ReportId) -> Result<bool, Infallible> {
        Ok(false) // it holds one case
    }

    fn save_document(
        &mut self,
        id: &ReportId,
        creator: &DeviceId,
        doc: &Automerge,
        _report: Option<&crate::model::Report>,
        new_changes: &[VerifiedChange],
    ) -> Result<(), Infallible> {
        self.docs.insert(id.clone(), (doc.save(), creator.clone()));
        for change in new_changes {
            self.signatures
                .insert((id.clone(), change.hash()), change.signed.signature.clone());
            self.feed.push(FeedEntry {
                seq: self.feed.len() as u64 + 1,
                doc: id.clone(),
                doc_creator: creator.clone(),
                actor: change.actor.device_id(),
                change: Some(SignedChange::clone(&change.signed)),
            });
        }
        Ok(())
    }

    fn signature(
        &mut self,
        id: &ReportId,
        hash: &ChangeHash,
    ) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.signatures.get(&(id.clone(), *hash)).cloned())
    }

    fn feed_after(
        &mut self,
        _reader: &Member,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, Infallible> {
        // The reference store filters nothing: the algorithm's own checks
        // must be enough.
        let start = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(self.feed.len());
        Ok(self.feed[start..].iter().take(limit).cloned().collect())
    }

    fn document_tip(&mut self, id: &ReportId) -> Result<Option<DocumentTip>, Infallible> {
        let Some(last) = self.feed.iter().rev().find(|e| &e.doc == id) else {
            return Ok(None);
        };
        let last_seq = last.seq;
        let heads = self.docs.get(id).map(|(bytes, _)| {
            Automerge::load(bytes)
                .expect("stored documents load")
                .get_heads()
        });
        Ok(heads.map(|heads| DocumentTip { last_seq, heads }))
    }
}
