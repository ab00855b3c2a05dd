//! The server's side of a sync round trip.
//!
//! [`handle_sync`] applies the changes a device offers (verified, checked
//! against [`super::policy`], applied in causal order, already-known ones
//! skipped so a replay changes nothing) and answers with:
//! - for each offered document, every change the server has beyond the
//!   device's `base_heads` that the device did not just send;
//! - from the case feed after the device's cursor, changes to other
//!   documents the device may read, up to a byte budget.
//!
//! The caller commits the store's transaction before it sends the response.

use std::collections::{HashMap, HashSet};

use automerge::{Automerge, ChangeHash, ReadDoc};

use crate::document::read_report;
use crate::identity::PublicKey;
use crate::ids::{DeviceId, ReportId};
use crate::protocol::*;
use crate::signed_change::{
    causal_order, check_applicable, has_change, ChangeError, PendingObjects, SignedChange,
    VerifiedChange,
};

use super::policy::{check_change, check_creation, may_read, DeviceRole, Member};

/// A document as the server store holds it.
pub struct StoredDocument {
    pub doc: Automerge,
    pub creator: DeviceId,
}

/// One entry of a case's change feed.
#[derive(Clone, Debug)]
pub struct FeedEntry {
    pub seq: u64,
    pub doc: ReportId,
    pub doc_creator: DeviceId,
    pub author: DeviceId,
    pub change: SignedChange,
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
    /// the store keeps of `doc`.
    fn save_document(
        &mut self,
        id: &ReportId,
        creator: &DeviceId,
        doc: &Automerge,
        new_changes: &[VerifiedChange],
    ) -> Result<(), Self::Error>;
    /// The stored signature of a change of a document.
    fn signature(
        &mut self,
        id: &ReportId,
        hash: &ChangeHash,
    ) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Up to `limit` feed entries with `seq > cursor`, in order.
    fn feed_after(&mut self, cursor: u64, limit: usize) -> Result<Vec<FeedEntry>, Self::Error>;
    fn document_tip(&mut self, id: &ReportId) -> Result<Option<DocumentTip>, Self::Error>;
}

#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Budget for the feed part of a response (offered documents' answers
    /// are always complete).
    pub max_response_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
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

/// Runs one sync round for `requester` against `store`.
pub fn handle_sync<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    request: &SyncRequest,
    limits: ServerLimits,
) -> Result<SyncResponse, SyncError<S::Error>> {
    if requester.revoked {
        return Err(SyncError::Revoked);
    }
    // Verify every signature before writing anything, so a request with one
    // forged change is refused whole.
    let mut verified_offers = Vec::with_capacity(request.docs.len());
    for offer in &request.docs {
        let mut verified = Vec::with_capacity(offer.changes.len());
        for change in &offer.changes {
            let v = change.verify().map_err(|source| SyncError::InvalidChange {
                doc: offer.id.clone(),
                source,
            })?;
            verified.push(v);
        }
        verified_offers.push(verified);
    }

    let mut docs = Vec::new();
    let mut offered_ids = HashSet::new();
    for (offer, verified) in request.docs.iter().zip(verified_offers) {
        offered_ids.insert(offer.id.clone());
        docs.push(apply_offer(store, requester, offer, verified)?);
    }
    let (feed_docs, cursor, more) =
        feed_part(store, requester, request.cursor, &offered_ids, limits)?;
    docs.extend(feed_docs);
    Ok(SyncResponse {
        version: PROTOCOL_VERSION,
        docs,
        cursor,
        more,
    })
}

fn apply_offer<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    offer: &DocOffer,
    verified: Vec<VerifiedChange>,
) -> Result<DocUpdate, SyncError<S::Error>> {
    let stored = store.load_document(&offer.id).map_err(SyncError::Store)?;
    // A report the requester may not read (another reporter's, or one of
    // another case) is answered exactly as a report the server lacks:
    // every change is checked against an empty document, so an edit is
    // refused for its missing dependencies. Only a creation is refused
    // for the taken id, the same way whoever holds it; to get that far
    // the device must already know the id.
    let (mut doc, mut creator, taken) = match stored {
        Some(s) if may_read(requester, &s.creator) => (s.doc, Some(s.creator), false),
        Some(_) => (Automerge::new(), None, true),
        None => {
            let taken = store
                .held_by_another_case(&offer.id)
                .map_err(SyncError::Store)?;
            (Automerge::new(), None, taken)
        }
    };
    let sent: HashSet<ChangeHash> = verified.iter().map(|v| v.hash()).collect();
    let mut refused = Vec::new();
    let mut refused_hashes = HashSet::new();
    let mut accepted: Vec<VerifiedChange> = Vec::new();
    let mut members: HashMap<PublicKey, Member> = HashMap::new();
    for v in causal_order(verified) {
        let hash = v.hash();
        if has_change(&doc, &hash) {
            continue; // already stored: a retry or a relay
        }
        let member = match members.get(&v.author) {
            Some(m) => m.clone(),
            None => {
                let m = store
                    .member(&v.author)
                    .map_err(SyncError::Store)?
                    .ok_or_else(|| SyncError::UnknownAuthor {
                        doc: offer.id.clone(),
                        hash,
                        device: v.author.device_id(),
                    })?;
                members.insert(v.author, m.clone());
                m
            }
        };
        if taken && v.change.deps().is_empty() {
            refused_hashes.insert(hash);
            refused.push(RefusedChange {
                hash,
                reason: Refusal::BadCreation,
                message: REPORT_EXISTS.into(),
            });
            continue;
        }
        match admit(
            store.case_id(),
            requester,
            &member,
            &offer.id,
            &doc,
            creator.as_ref(),
            &refused_hashes,
            &v,
        ) {
            Err((reason, message)) => {
                refused_hashes.insert(hash);
                refused.push(RefusedChange {
                    hash,
                    reason,
                    message,
                });
            }
            Ok(created) => {
                match created {
                    Some(new_doc) => {
                        doc = new_doc;
                        creator = Some(member.device.clone());
                    }
                    None => {
                        if let Err(e) = doc.apply_changes([v.change.clone()]) {
                            refused_hashes.insert(hash);
                            refused.push(RefusedChange {
                                hash,
                                reason: Refusal::BadCreation,
                                message: format!("the change does not apply: {e}"),
                            });
                            continue;
                        }
                    }
                }
                accepted.push(v);
            }
        }
    }
    if let (Some(c), false) = (&creator, accepted.is_empty()) {
        store
            .save_document(&offer.id, c, &doc, &accepted)
            .map_err(SyncError::Store)?;
    }
    if creator.is_none() {
        // Nothing of this report was accepted: the device keeps its changes.
        return Ok(DocUpdate {
            id: offer.id.clone(),
            changes: vec![],
            heads: vec![],
            complete: true,
            refused,
        });
    }
    // What the device lacks: everything past its base heads, less what it
    // just sent. Unknown base heads mean the device knows something we
    // don't; then send everything rather than trust automerge's silent
    // fallback.
    let base: Vec<ChangeHash> = if offer.base_heads.iter().all(|h| has_change(&doc, h)) {
        offer.base_heads.clone()
    } else {
        Vec::new()
    };
    // Metadata first: rebuilding a change from the op set is the expensive
    // part, so rebuild only those the device lacks (usually none).
    let lacking: Vec<ChangeHash> = doc
        .get_changes_meta(&base)
        .iter()
        .map(|meta| meta.hash)
        .filter(|hash| !sent.contains(hash))
        .collect();
    let mut changes = Vec::with_capacity(lacking.len());
    for hash in lacking {
        let Some(change) = doc.get_change_by_hash(&hash) else {
            continue;
        };
        let signature = store
            .signature(&offer.id, &hash)
            .map_err(SyncError::Store)?
            .unwrap_or_default();
        changes.push(SignedChange {
            bytes: change.raw_bytes().to_vec(),
            signature,
        });
    }
    Ok(DocUpdate {
        id: offer.id.clone(),
        changes,
        heads: doc.get_heads(),
        complete: true,
        refused,
    })
}

/// Why a second creation of a report is refused.
const REPORT_EXISTS: &str =
    "the report exists already; a change without dependencies would create it again";

/// Decides whether one new change may be applied. For a report's first
/// change, returns the new document (built apart, so a refused creation
/// leaves nothing behind).
#[allow(clippy::too_many_arguments)]
fn admit(
    case: &str,
    requester: &Member,
    author: &Member,
    id: &ReportId,
    doc: &Automerge,
    creator: Option<&DeviceId>,
    refused: &HashSet<ChangeHash>,
    v: &VerifiedChange,
) -> Result<Option<Automerge>, (Refusal, String)> {
    if author.revoked {
        return Err((
            Refusal::RevokedAuthor,
            format!(
                "device {} was revoked before the server received this change",
                author.device
            ),
        ));
    }
    let deps = v.change.deps();
    if deps
        .iter()
        .any(|d| refused.contains(d) || !has_change(doc, d))
    {
        return Err((
            Refusal::MissingDependency,
            "the change depends on a change the server does not have or refused".into(),
        ));
    }
    let unapplicable = |e: String| {
        (
            Refusal::BadCreation,
            format!("the change does not apply: {e}"),
        )
    };
    if creator.is_some() {
        if deps.is_empty() {
            // Only a report's first change has no dependencies; another
            // would write the write-once fields a second time.
            return Err((Refusal::BadCreation, REPORT_EXISTS.into()));
        }
        check_applicable(doc, &mut PendingObjects::new(), &v.change).map_err(unapplicable)?;
        return check_change(author, doc, creator, &v.change).map(|()| None);
    }
    if !deps.is_empty() {
        return Err((
            Refusal::MissingDependency,
            "the report's first change is missing".into(),
        ));
    }
    if requester.role == DeviceRole::Reporter && author.device != requester.device {
        return Err((
            Refusal::NotYourReport,
            "a reporter may send only reports it created".into(),
        ));
    }
    let mut trial = Automerge::new();
    check_applicable(&trial, &mut PendingObjects::new(), &v.change).map_err(unapplicable)?;
    trial.apply_changes([v.change.clone()]).map_err(|e| {
        (
            Refusal::BadCreation,
            format!("the change does not apply: {e}"),
        )
    })?;
    let report = read_report(&trial).map_err(|e| (Refusal::BadCreation, e.to_string()))?;
    check_creation(author, case, &report)?;
    if report.id != id.as_str() {
        return Err((
            Refusal::BadCreation,
            "the report's id field does not match the id it was sent under".into(),
        ));
    }
    Ok(Some(trial))
}

const FEED_PAGE: usize = 512;

fn feed_part<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    mut cursor: u64,
    offered: &HashSet<ReportId>,
    limits: ServerLimits,
) -> Result<(Vec<DocUpdate>, u64, bool), SyncError<S::Error>> {
    let mut order: Vec<ReportId> = Vec::new();
    let mut by_doc: HashMap<ReportId, Vec<SignedChange>> = HashMap::new();
    let mut used = 0usize;
    let mut more = false;
    'pages: loop {
        let page = store
            .feed_after(cursor, FEED_PAGE)
            .map_err(SyncError::Store)?;
        if page.is_empty() {
            break;
        }
        for entry in page {
            let wanted = !offered.contains(&entry.doc)
                && entry.author != requester.device
                && may_read(requester, &entry.doc_creator);
            if wanted && used > 0 && used + entry.change.wire_len() > limits.max_response_bytes {
                more = true;
                break 'pages;
            }
            cursor = entry.seq;
            if !wanted {
                continue;
            }
            used += entry.change.wire_len();
            by_doc
                .entry(entry.doc.clone())
                .or_insert_with(|| {
                    order.push(entry.doc.clone());
                    Vec::new()
                })
                .push(entry.change);
        }
    }
    let mut docs = Vec::with_capacity(order.len());
    for id in order {
        let changes = by_doc.remove(&id).unwrap_or_default();
        let tip = store.document_tip(&id).map_err(SyncError::Store)?;
        let (heads, complete) = match tip {
            Some(tip) if tip.last_seq <= cursor => (tip.heads, true),
            _ => (Vec::new(), false),
        };
        docs.push(DocUpdate {
            id,
            changes,
            heads,
            complete,
            refused: vec![],
        });
    }
    Ok((docs, cursor, more))
}
