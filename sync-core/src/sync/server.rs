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

use automerge::{ChangeHash, ReadDoc};

use crate::identity::PublicKey;
use crate::ids::ReportId;
use crate::protocol::*;
use crate::signed_change::{causal_order, has_change, ChangeError, SignedChange, VerifiedChange};
use crate::verifying_keys::VerifyingKeys;

use super::admission::{admit_changes, Gate, Mode};
use super::policy::{may_read, Member};
pub use super::store::{
    DocumentTip, FeedEntry, InvalidChange, ServerStore, StoredDocument, SyncError,
};

#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Budget for the feed part of a response (offered documents' answers
    /// are always complete).
    pub max_response_bytes: usize,
    /// Feed entries one response may look at, wanted or not, so that no
    /// request makes the server scan a whole case.
    pub max_feed_scan: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_feed_scan: DEFAULT_MAX_FEED_SCAN,
        }
    }
}

/// Feed entries one response looks at by default: a few milliseconds of
/// index reads. A device behind by more makes more rounds (`more`).
pub const DEFAULT_MAX_FEED_SCAN: usize = 8 * FEED_PAGE;

/// A request whose every change is bounded, parsed and signature-checked:
/// the expensive part of a round, done by [`verify_request`] before any
/// lock is taken.
pub struct VerifiedRequest {
    pub cursor: u64,
    pub docs: Vec<VerifiedOffer>,
}

/// One offered report with its verified changes.
pub struct VerifiedOffer {
    pub id: ReportId,
    pub base_heads: Vec<ChangeHash>,
    pub changes: Vec<VerifiedChange>,
}

impl VerifiedRequest {
    /// The reports the request offers, which the feed part leaves out.
    pub fn offered(&self) -> HashSet<ReportId> {
        self.docs.iter().map(|d| d.id.clone()).collect()
    }
}

/// Bounds, parses and verifies every change of `request`
/// ([`SignedChange::verify`]). Needs no store: call it outside any
/// transaction. One bad change refuses the whole request (the first in
/// request order, whichever thread found it).
///
/// A large request is verified on every core: an Ed25519 verification is
/// the largest single cost of a change, and each is independent.
pub fn verify_request(request: SyncRequest) -> Result<VerifiedRequest, InvalidChange> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all: Vec<&SignedChange> = request
        .docs
        .iter()
        .flat_map(|offer| &offer.changes)
        .collect();
    let verify = |part: &[&SignedChange]| -> Vec<Result<VerifiedChange, ChangeError>> {
        let mut keys = VerifyingKeys::new();
        part.iter()
            .map(|change| change.verify_with(&mut keys))
            .collect()
    };
    let results: Vec<Result<VerifiedChange, ChangeError>> =
        if threads < 2 || all.len() < PARALLEL_VERIFY_MIN {
            verify(&all)
        } else {
            let chunk = all.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let parts: Vec<_> = all
                    .chunks(chunk)
                    .map(|part| scope.spawn(move || verify(part)))
                    .collect();
                parts
                    .into_iter()
                    .flat_map(|part| part.join().expect("verifying a change does not panic"))
                    .collect()
            })
        };
    let mut results = results.into_iter();
    let mut docs = Vec::with_capacity(request.docs.len());
    for offer in request.docs {
        let mut changes = Vec::with_capacity(offer.changes.len());
        for result in results.by_ref().take(offer.changes.len()) {
            changes.push(result.map_err(|source| InvalidChange {
                doc: offer.id.clone(),
                source,
            })?);
        }
        docs.push(VerifiedOffer {
            id: offer.id,
            base_heads: offer.base_heads,
            changes,
        });
    }
    Ok(VerifiedRequest {
        cursor: request.cursor,
        docs,
    })
}

/// Changes below which a request is verified on the calling thread alone:
/// starting threads costs more than it saves.
const PARALLEL_VERIFY_MIN: usize = 64;

/// Runs one whole sync round for `requester` against `store`: verify,
/// apply, answer from the feed. A store that can should run the three
/// apart, as the SQLite store does: verification before its write
/// transaction, the feed after the commit in a read transaction.
pub fn handle_sync<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    request: &SyncRequest,
    limits: ServerLimits,
) -> Result<SyncResponse, SyncError<S::Error>> {
    round(store, requester, request, limits, None)
}

/// [`handle_sync`] for a request sent by the live web session whose key is
/// `session`: the one route by which a change signed under that session's
/// certificate may reach the server new.
pub fn handle_session_commit<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    request: &SyncRequest,
    limits: ServerLimits,
    session: &PublicKey,
) -> Result<SyncResponse, SyncError<S::Error>> {
    round(store, requester, request, limits, Some(session))
}

fn round<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    request: &SyncRequest,
    limits: ServerLimits,
    live_session: Option<&PublicKey>,
) -> Result<SyncResponse, SyncError<S::Error>> {
    if requester.revoked {
        return Err(SyncError::Revoked);
    }
    let verified = verify_request(request.clone())?;
    let cursor = verified.cursor;
    let offered = verified.offered();
    let docs = apply_request(store, requester, &verified.docs, live_session)?;
    let feed = answer_from_feed(store, requester, cursor, &offered, limits)?;
    Ok(respond(docs, feed))
}

/// The response to a round: the offered reports' answers, then the feed's.
pub fn respond(mut docs: Vec<DocUpdate>, feed: FeedAnswer) -> SyncResponse {
    docs.extend(feed.docs);
    SyncResponse {
        version: PROTOCOL_VERSION,
        docs,
        cursor: feed.cursor,
        more: feed.more,
        case_timezone: None,
    }
}

/// Applies the offered changes (already verified) inside the caller's
/// transaction and answers each offered report. `live_session` is the key
/// of the web session whose commit route sent the request, if any: only it
/// may bring changes signed under its own certificate that the server has
/// not seen.
pub fn apply_request<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    offers: &[VerifiedOffer],
    live_session: Option<&PublicKey>,
) -> Result<Vec<DocUpdate>, SyncError<S::Error>> {
    if requester.revoked {
        return Err(SyncError::Revoked);
    }
    offers
        .iter()
        .map(|offer| apply_offer(store, requester, offer, live_session))
        .collect()
}

fn apply_offer<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    offer: &VerifiedOffer,
    live_session: Option<&PublicKey>,
) -> Result<DocUpdate, SyncError<S::Error>> {
    let (stored, taken) = visible_document(store, requester, &offer.id)?;
    let sent: HashSet<ChangeHash> = offer.changes.iter().map(|v| v.hash()).collect();
    let ordered = causal_order(offer.changes.clone());
    let gate = Gate {
        requester,
        id: &offer.id,
        live_session,
        taken,
    };
    let admitted = match admit_changes(store, &gate, stored, &ordered, Mode::Batch)? {
        Some(batch) if batch.accepted.is_empty() || batch.report.is_some() => batch,
        _ => {
            // The batch does not apply, or leaves the report unreadable.
            // Start again from the stored report (nothing is saved yet) and
            // find which change, applying and checking one at a time.
            let (stored, _) = visible_document(store, requester, &offer.id)?;
            admit_changes(store, &gate, stored, &ordered, Mode::EachChange)?
                .expect("admitting one change at a time always answers")
        }
    };
    let creator = admitted.creator;
    let doc = admitted.doc;
    let refused = admitted.refused;
    if let (Some(c), false) = (&creator, admitted.accepted.is_empty()) {
        store
            .save_document(
                &offer.id,
                c,
                &doc,
                admitted.report.as_ref(),
                &admitted.accepted,
            )
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

/// The stored report as `requester` may see it, and whether its id is
/// taken by a report it may not see. A report the requester may not read
/// (another reporter's, or one of another case) is answered exactly as a
/// report the server lacks: every change is checked against an empty
/// document, so an edit is refused for its missing dependencies. Only a
/// creation is refused for the taken id, the same way whoever holds it; to
/// get that far the device must already know the id.
fn visible_document<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    id: &ReportId,
) -> Result<(Option<StoredDocument>, bool), SyncError<S::Error>> {
    Ok(match store.load_document(id).map_err(SyncError::Store)? {
        Some(s) if may_read(requester, &s.creator) => (Some(s), false),
        Some(_) => (None, true),
        None => (
            None,
            store.held_by_another_case(id).map_err(SyncError::Store)?,
        ),
    })
}

const FEED_PAGE: usize = 512;

/// The feed part of a response.
pub struct FeedAnswer {
    pub docs: Vec<DocUpdate>,
    pub cursor: u64,
    pub more: bool,
}

/// Answers from the case feed after `cursor`: changes to reports the
/// requester may read, not offered in this request and not signed by its
/// own key, up to the response's byte budget, looking at no more than
/// `limits.max_feed_scan` entries. Reads only: run it after the round's
/// write transaction committed, in a read transaction of its own.
pub fn answer_from_feed<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    mut cursor: u64,
    offered: &HashSet<ReportId>,
    limits: ServerLimits,
) -> Result<FeedAnswer, SyncError<S::Error>> {
    let mut order: Vec<ReportId> = Vec::new();
    let mut by_doc: HashMap<ReportId, Vec<SignedChange>> = HashMap::new();
    let mut used = 0usize;
    let mut scanned = 0usize;
    let mut more = false;
    'pages: loop {
        let budget = limits.max_feed_scan.saturating_sub(scanned).min(FEED_PAGE);
        if budget == 0 {
            // Scanned enough for one request: say there is more, and let the
            // device come back for it.
            more = !store
                .feed_after(requester, cursor, 1)
                .map_err(SyncError::Store)?
                .is_empty();
            break;
        }
        let page = store
            .feed_after(requester, cursor, budget)
            .map_err(SyncError::Store)?;
        if page.is_empty() {
            break;
        }
        let full = page.len() == budget;
        for entry in page {
            scanned += 1;
            let change = match entry.change {
                Some(change)
                    if !offered.contains(&entry.doc)
                        && entry.actor != requester.device
                        && may_read(requester, &entry.doc_creator) =>
                {
                    change
                }
                _ => {
                    cursor = entry.seq;
                    continue;
                }
            };
            if used > 0 && used + change.wire_len() > limits.max_response_bytes {
                more = true;
                break 'pages;
            }
            cursor = entry.seq;
            used += change.wire_len();
            by_doc
                .entry(entry.doc.clone())
                .or_insert_with(|| {
                    order.push(entry.doc.clone());
                    Vec::new()
                })
                .push(change);
        }
        if !full {
            break;
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
    Ok(FeedAnswer { docs, cursor, more })
}
