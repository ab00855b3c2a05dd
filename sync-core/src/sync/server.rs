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

use crate::document::{read_report, validate_report};
use crate::identity::PublicKey;
use crate::ids::{DeviceId, ReportId};
use crate::protocol::*;
use crate::signed_change::{
    causal_order, check_applicable, has_change, ChangeError, PendingObjects, SignedChange,
    VerifiedChange,
};

use super::policy::{check_change, check_creation, may_read, Member};
use crate::model::DeviceRole;

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
/// transaction. One bad change refuses the whole request.
pub fn verify_request(request: SyncRequest) -> Result<VerifiedRequest, InvalidChange> {
    let mut docs = Vec::with_capacity(request.docs.len());
    for offer in request.docs {
        let mut changes = Vec::with_capacity(offer.changes.len());
        for change in &offer.changes {
            let v = change.verify().map_err(|source| InvalidChange {
                doc: offer.id.clone(),
                source,
            })?;
            changes.push(v);
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
    let docs = apply_request(store, requester, verified.docs, live_session)?;
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
    offers: Vec<VerifiedOffer>,
    live_session: Option<&PublicKey>,
) -> Result<Vec<DocUpdate>, SyncError<S::Error>> {
    if requester.revoked {
        return Err(SyncError::Revoked);
    }
    offers
        .into_iter()
        .map(|offer| apply_offer(store, requester, offer, live_session))
        .collect()
}

/// How strictly [`admit_changes`] checks that the report stays readable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Readability {
    /// Once, after the whole batch: the common case, one read per report.
    AtEnd,
    /// After each change, on a copy: for a batch that ended unreadable, to
    /// refuse exactly the changes that made it so.
    EachChange,
}

/// The outcome of admitting one offer's changes to a document.
struct Admitted {
    doc: Automerge,
    creator: Option<DeviceId>,
    accepted: Vec<VerifiedChange>,
    refused: Vec<RefusedChange>,
}

fn apply_offer<S: ServerStore>(
    store: &mut S,
    requester: &Member,
    offer: VerifiedOffer,
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
    let mut admitted = admit_changes(store, &gate, stored, &ordered, Readability::AtEnd)?;
    if !admitted.accepted.is_empty() && readable(&admitted.doc).is_err() {
        // Some change of the batch leaves the report unreadable. Start
        // again from the stored report (nothing is saved yet) and find
        // which, checking after every change.
        let (stored, _) = visible_document(store, requester, &offer.id)?;
        admitted = admit_changes(store, &gate, stored, &ordered, Readability::EachChange)?;
    }
    let Admitted {
        doc,
        creator,
        accepted,
        refused,
    } = admitted;
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

/// Who is asking, for which report, through which route.
struct Gate<'a> {
    requester: &'a Member,
    id: &'a ReportId,
    live_session: Option<&'a PublicKey>,
    /// The id belongs to a report the requester may not see.
    taken: bool,
}

/// Applies, in causal order, the changes of one offer that may be applied,
/// starting from the stored report (or none). `mode` says when the report
/// must read back valid.
fn admit_changes<S: ServerStore>(
    store: &mut S,
    gate: &Gate<'_>,
    stored: Option<StoredDocument>,
    ordered: &[VerifiedChange],
    mode: Readability,
) -> Result<Admitted, SyncError<S::Error>> {
    let (mut doc, mut creator) = match stored {
        Some(s) => (s.doc, Some(s.creator)),
        None => (Automerge::new(), None),
    };
    let mut refused = Refused::default();
    let mut accepted: Vec<VerifiedChange> = Vec::new();
    let mut members: HashMap<PublicKey, Member> = HashMap::new();
    for v in ordered {
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
                        doc: gate.id.clone(),
                        hash,
                        device: v.author.device_id(),
                    })?;
                members.insert(v.author, m.clone());
                m
            }
        };
        if gate.taken && v.change.deps().is_empty() {
            refused.push(hash, Refusal::BadCreation, REPORT_EXISTS.into());
            continue;
        }
        if v.session.is_some() && gate.live_session != Some(&v.actor) {
            refused.push(
                hash,
                Refusal::SessionNotLive,
                "a change made in a web session reaches the server only through that session, while it lasts".into(),
            );
            continue;
        }
        let admitted = admit(
            store.case_id(),
            gate.requester,
            &member,
            gate.id,
            &doc,
            creator.as_ref(),
            &refused.hashes,
            v,
        );
        match admitted {
            Err((reason, message)) => refused.push(hash, reason, message),
            Ok(Some(new_doc)) => {
                doc = new_doc;
                creator = Some(member.device.clone());
                accepted.push(v.clone());
            }
            Ok(None) => {
                let applied = match mode {
                    Readability::AtEnd => doc.apply_changes([v.change.clone()]).map(|()| None),
                    Readability::EachChange => {
                        let mut trial = doc.clone();
                        trial
                            .apply_changes([v.change.clone()])
                            .map(|()| Some(trial))
                    }
                };
                match applied {
                    Err(e) => refused.push(
                        hash,
                        Refusal::BadCreation,
                        format!("the change does not apply: {e}"),
                    ),
                    Ok(None) => accepted.push(v.clone()),
                    Ok(Some(trial)) => match readable(&trial) {
                        Err(why) => refused.push(hash, Refusal::InvalidReport, why),
                        Ok(()) => {
                            doc = trial;
                            accepted.push(v.clone());
                        }
                    },
                }
            }
        }
    }
    Ok(Admitted {
        doc,
        creator,
        accepted,
        refused: refused.list,
    })
}

/// The changes of one offer refused so far; later changes that depend on
/// one of them are refused too.
#[derive(Default)]
struct Refused {
    list: Vec<RefusedChange>,
    hashes: HashSet<ChangeHash>,
}

impl Refused {
    fn push(&mut self, hash: ChangeHash, reason: Refusal, message: String) {
        self.hashes.insert(hash);
        self.list.push(RefusedChange {
            hash,
            reason,
            message,
        });
    }
}

/// Whether the report reads back with every field of its type, length and
/// set of values: what every client needs to list it.
fn readable(doc: &Automerge) -> Result<(), String> {
    let report = read_report(doc)
        .map_err(|e| format!("after this change the report would not read back: {e}"))?;
    validate_report(&report)
        .map_err(|e| format!("after this change the report would not be valid: {e}"))
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
    validate_report(&report).map_err(|e| (Refusal::InvalidReport, e.to_string()))?;
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
