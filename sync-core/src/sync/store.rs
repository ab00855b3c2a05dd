//! What the server's sync algorithm needs from storage ([`ServerStore`],
//! scoped to one case and one transaction) and how a round fails
//! ([`SyncError`]).

use automerge::{Automerge, ChangeHash};

use crate::identity::PublicKey;
use crate::ids::{DeviceId, ReportId};
use crate::model::Report;
use crate::signed_change::{ChangeError, SignedChange, VerifiedChange};

use super::policy::Member;

/// A document as the server store holds it.
pub struct StoredDocument {
    pub doc: Automerge,
    pub creator: DeviceId,
}

/// One entry of a case's change feed, as the store read it for one reader.
#[derive(Clone, Debug)]
pub struct FeedEntry {
    pub seq: u64,
    pub doc: ReportId,
    pub doc_creator: DeviceId,
    /// The device id of the key that signed the change (its Automerge
    /// actor): the device itself, or a web session's key. Not the device a
    /// web session's change is attributed to: a coordinator's device must
    /// receive what its own browser sessions wrote.
    pub actor: DeviceId,
    /// The change, unless its actor is the reader: then the store may leave
    /// the bytes unread, since the reader made it.
    pub change: Option<SignedChange>,
}

/// Where a document stands in the feed.
#[derive(Clone, Debug)]
pub struct DocumentTip {
    /// Feed sequence number of the document's newest change.
    pub last_seq: u64,
    pub heads: Vec<ChangeHash>,
}

/// What the server algorithm needs from storage, scoped to one case and one
/// transaction. The SQLite store in `fieldsync-server` implements it, and so
/// does [`super::memory::MemoryStore`].
pub trait ServerStore {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The case this store is scoped to.
    fn case_id(&self) -> &str;
    /// The enrolled device of this case whose public key this is.
    fn member(&mut self, key: &PublicKey) -> Result<Option<Member>, Self::Error>;
    /// The document of this case stored under `id`, if any.
    fn load_document(&mut self, id: &ReportId) -> Result<Option<StoredDocument>, Self::Error>;
    /// Whether another case holds a report under `id`. Report ids are
    /// global, so such an id is taken here too.
    fn held_by_another_case(&mut self, id: &ReportId) -> Result<bool, Self::Error>;
    /// Persists `new_changes` (already applied to `doc`, in causal order)
    /// with their signatures, one feed entry each, and whatever projections
    /// the store keeps of `doc`. `report` is `doc` read, when it reads back
    /// valid (it does unless it was stored unreadable before this round).
    fn save_document(
        &mut self,
        id: &ReportId,
        creator: &DeviceId,
        doc: &Automerge,
        report: Option<&Report>,
        new_changes: &[VerifiedChange],
    ) -> Result<(), Self::Error>;
    /// The stored signature of a change of a document.
    fn signature(
        &mut self,
        id: &ReportId,
        hash: &ChangeHash,
    ) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Up to `limit` feed entries with `seq > cursor`, in order, that
    /// `reader` may read: a store may (and the SQLite store does) read only
    /// the reports a reporter created, through an index, so a reporter's
    /// round never scans other reporters' work. Entries whose actor is the
    /// reader's own key may come without their bytes.
    fn feed_after(
        &mut self,
        reader: &Member,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, Self::Error>;
    fn document_tip(&mut self, id: &ReportId) -> Result<Option<DocumentTip>, Self::Error>;
}

/// Why a whole request was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SyncError<E: std::error::Error + 'static> {
    #[error("the requesting device was revoked")]
    Revoked,
    #[error("report {doc}: {source}")]
    InvalidChange {
        doc: ReportId,
        #[source]
        source: ChangeError,
    },
    #[error("report {doc}: change {hash} is signed by device {device}, which is not enrolled in this case")]
    UnknownAuthor {
        doc: ReportId,
        hash: ChangeHash,
        device: DeviceId,
    },
    #[error("storage failed: {0}")]
    Store(#[source] E),
}

/// A change of a request that is malformed, out of bounds or not signed by
/// its actor: the whole request is refused.
#[derive(Debug, thiserror::Error)]
#[error("report {doc}: {source}")]
pub struct InvalidChange {
    pub doc: ReportId,
    #[source]
    pub source: ChangeError,
}

impl<E: std::error::Error + 'static> From<InvalidChange> for SyncError<E> {
    fn from(e: InvalidChange) -> Self {
        SyncError::InvalidChange {
            doc: e.doc,
            source: e.source,
        }
    }
}
