//! The device's side of a sync round trip: build a request that stays under
//! a byte bound, and absorb the server's answer into documents.

use std::collections::HashSet;

use automerge::{AutoCommit, ChangeHash};

use super::apply::{apply_changes, ApplyError};
use crate::ids::ReportId;
use crate::protocol::*;
use crate::signed_change::{
    causal_order, check_applicable, has_change, ChangeError, PendingObjects, SignedChange,
    VerifiedChange,
};
use crate::verifying_keys::VerifyingKeys;

/// What a device has for one document that the server has not acknowledged.
#[derive(Clone, Debug)]
pub struct PendingDoc {
    pub id: ReportId,
    /// The server heads last acknowledged for this document.
    pub base_heads: Vec<ChangeHash>,
    /// Changes since `base_heads`, in causal order.
    pub changes: Vec<SignedChange>,
}

/// Builds one request under a byte bound. Offer pending documents until
/// [`RequestBuilder::offer`] says the request is full.
pub struct RequestBuilder {
    request: SyncRequest,
    used: usize,
    max: usize,
    complete: bool,
}

/// A request ready to send.
#[derive(Clone, Debug)]
pub struct RequestPlan {
    pub request: SyncRequest,
    /// Everything pending is in this request; otherwise another round is
    /// needed after this one.
    pub complete: bool,
}

impl RequestBuilder {
    pub fn new(cursor: u64, max_bytes: usize) -> Self {
        Self {
            request: SyncRequest {
                version: PROTOCOL_VERSION,
                cursor,
                docs: Vec::new(),
            },
            used: REQUEST_OVERHEAD,
            max: max_bytes,
            complete: true,
        }
    }

    /// Adds as much of `doc` as fits: a causal prefix of its changes, so the
    /// server can apply what arrives without what stays behind. Always takes
    /// at least one change into an empty request, so every round makes
    /// progress. Returns `false` once the request is full.
    pub fn offer(&mut self, doc: PendingDoc) -> bool {
        if doc.changes.is_empty() {
            return true;
        }
        let overhead = OFFER_OVERHEAD + doc.base_heads.len() * HASH_WIRE_LEN;
        let mut taken = 0;
        let mut size = self.used + overhead;
        for change in &doc.changes {
            let next = size + change.wire_len();
            let first_ever = self.request.docs.is_empty() && taken == 0;
            if next > self.max && !first_ever {
                break;
            }
            size = next;
            taken += 1;
        }
        if taken == 0 {
            self.complete = false;
            return false;
        }
        let all = taken == doc.changes.len();
        let mut changes = doc.changes;
        changes.truncate(taken);
        self.request.docs.push(DocOffer {
            id: doc.id,
            base_heads: doc.base_heads,
            changes,
        });
        self.used = size;
        if !all {
            self.complete = false;
        }
        all
    }

    pub fn finish(self) -> RequestPlan {
        RequestPlan {
            request: self.request,
            complete: self.complete,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AbsorbError {
    #[error("report {doc}: the server sent a change that does not verify: {source}")]
    BadChange {
        doc: ReportId,
        #[source]
        source: ChangeError,
    },
    #[error("report {doc}: the server sent changes whose dependencies are missing; nothing was applied, sync again")]
    MissingDependencies { doc: ReportId },
    #[error("report {doc}: the server sent change {hash}, which cannot apply ({message}); nothing was applied, sync again")]
    Unapplicable {
        doc: ReportId,
        hash: ChangeHash,
        message: String,
    },
    #[error("report {doc}: automerge refused the server's changes: {source}")]
    Automerge {
        doc: ReportId,
        #[source]
        source: Box<ApplyError>,
    },
}

/// What absorbing one document update did.
#[derive(Debug)]
pub struct Absorbed {
    /// Changes new to the device, in the order applied.
    pub applied: Vec<VerifiedChange>,
    /// Heads the device may now record as acknowledged by the server.
    pub acked: Option<Vec<ChangeHash>>,
}

/// Applies the changes of `update` to `doc`. On error the caller must drop
/// `doc` (automerge may have queued part of it) and keep its stored state.
pub fn absorb(doc: &mut AutoCommit, update: &DocUpdate) -> Result<Absorbed, AbsorbError> {
    let mut verified = Vec::with_capacity(update.changes.len());
    let mut keys = VerifyingKeys::new();
    for change in &update.changes {
        let v = change
            .verify_with(&mut keys)
            .map_err(|source| AbsorbError::BadChange {
                doc: update.id.clone(),
                source,
            })?;
        if !has_change(&*doc, &v.hash()) {
            verified.push(v);
        }
    }
    let mut seen = HashSet::new();
    let applied: Vec<VerifiedChange> = causal_order(verified)
        .into_iter()
        .filter(|v| seen.insert(v.hash()))
        .collect();
    let mut pending = PendingObjects::new();
    for v in &applied {
        check_applicable(doc.document(), &mut pending, &v.change).map_err(|message| {
            AbsorbError::Unapplicable {
                doc: update.id.clone(),
                hash: v.hash(),
                message,
            }
        })?;
    }
    if !applied.is_empty() {
        apply_changes(doc, applied.iter().map(|v| v.change.clone()).collect()).map_err(
            |source| AbsorbError::Automerge {
                doc: update.id.clone(),
                source: Box::new(source),
            },
        )?;
        if !doc.get_missing_deps(&[]).is_empty() {
            return Err(AbsorbError::MissingDependencies {
                doc: update.id.clone(),
            });
        }
    }
    let acked = (update.complete
        && !update.heads.is_empty()
        && update.heads.iter().all(|h| has_change(&*doc, h)))
    .then(|| update.heads.clone());
    Ok(Absorbed { applied, acked })
}

/// The device's pending changes for a document, by hash, in the order
/// Automerge keeps them (every change after its dependencies): everything
/// past `acked`, less changes the server refused and everything built on
/// them (the server would refuse those too, for a missing dependency).
/// Read from the document's metadata: no change is rebuilt from its ops.
pub fn pending_hashes(
    doc: &mut AutoCommit,
    acked: &[ChangeHash],
    refused: &HashSet<ChangeHash>,
) -> Vec<ChangeHash> {
    let known_acked: Vec<ChangeHash> = acked
        .iter()
        .copied()
        .filter(|h| has_change(&*doc, h))
        .collect();
    let mut poisoned: HashSet<ChangeHash> = HashSet::new();
    let mut out = Vec::new();
    for meta in doc.get_changes_meta(&known_acked) {
        if refused.contains(&meta.hash) || meta.deps.iter().any(|d| poisoned.contains(d)) {
            poisoned.insert(meta.hash);
            continue;
        }
        out.push(meta.hash);
    }
    out
}
