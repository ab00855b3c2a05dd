//! Which of one offer's changes the server admits to a report, and the
//! report they leave: the policy ([`super::policy`]), dependencies,
//! applicability and readability, checked per change.
//!
//! Two ways, one outcome:
//! - [`Mode::Batch`], the common case: every change is checked against the
//!   stored report plus what the changes admitted before it in the batch
//!   add (their hashes, the objects they make and the fields those lie in),
//!   then all are applied to the report in one Automerge call and the
//!   result read back once. Automerge applies a batch at a third of the
//!   cost of one change at a time.
//! - [`Mode::EachChange`]: apply and read back after every change, on a
//!   copy, to refuse exactly the changes that make the report unreadable.
//!   The server falls back to it, from the stored report, when a batch does
//!   not apply or does not read back; nothing is saved before.

use std::collections::{HashMap, HashSet};

use automerge::{Automerge, Change, ChangeHash};

use crate::document::{read_report, validate_report, FieldIndex};
use crate::identity::PublicKey;
use crate::ids::{DeviceId, ReportId};
use crate::model::{DeviceRole, Report};
use crate::protocol::{Refusal, RefusedChange};
use crate::signed_change::{
    check_applicable, has_change, objects_applicable, PendingObjects, VerifiedChange,
};

use super::apply::apply_changes;
use super::policy::{check_change, check_creation, check_touches, Member};
use super::store::{ServerStore, StoredDocument, SyncError};

/// How [`admit_changes`] applies what it admits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// All at once, read back at the end.
    Batch,
    /// One at a time on a copy, read back after each.
    EachChange,
}

/// The outcome of admitting one offer's changes to a document.
pub(super) struct Admitted {
    pub(super) doc: Automerge,
    pub(super) creator: Option<DeviceId>,
    pub(super) accepted: Vec<VerifiedChange>,
    pub(super) refused: Vec<RefusedChange>,
    /// The report as `doc` reads, when a change was accepted and it reads
    /// back valid; a batch that does not must be admitted again change by
    /// change.
    pub(super) report: Option<Report>,
}

/// Who is asking, for which report, through which route.
pub(super) struct Gate<'a> {
    pub(super) requester: &'a Member,
    pub(super) id: &'a ReportId,
    pub(super) live_session: Option<&'a PublicKey>,
    /// The id belongs to a report the requester may not see.
    pub(super) taken: bool,
}

/// What a batch has admitted so far, beside the stored report.
#[derive(Default)]
struct Pending {
    hashes: HashSet<ChangeHash>,
    objects: PendingObjects,
    changes: Vec<Change>,
    /// Built from the report when the first edit is checked.
    fields: Option<FieldIndex>,
}

/// Applies, in causal order, the changes of one offer that may be applied,
/// starting from the stored report (or none). Returns `None` when `mode` is
/// [`Mode::Batch`] and Automerge refused the batch as a whole: admit the
/// offer again from the stored report with [`Mode::EachChange`].
pub(super) fn admit_changes<S: ServerStore>(
    store: &mut S,
    gate: &Gate<'_>,
    stored: Option<StoredDocument>,
    ordered: &[VerifiedChange],
    mode: Mode,
) -> Result<Option<Admitted>, SyncError<S::Error>> {
    let (mut doc, mut creator) = match stored {
        Some(s) => (s.doc, Some(s.creator)),
        None => (Automerge::new(), None),
    };
    let mut refused = Refused::default();
    let mut accepted: Vec<VerifiedChange> = Vec::new();
    let mut members: HashMap<PublicKey, Member> = HashMap::new();
    let mut pending = Pending::default();
    for v in ordered {
        let hash = v.hash();
        if has_change(&doc, &hash) || pending.hashes.contains(&hash) {
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
        if mode == Mode::Batch && creator.is_some() {
            match admit_to_batch(
                &member,
                &doc,
                creator.as_ref(),
                &refused.hashes,
                &mut pending,
                v,
            ) {
                Ok(()) => accepted.push(v.clone()),
                Err((reason, message)) => refused.push(hash, reason, message),
            }
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
                // Mode::EachChange, on a copy.
                let mut trial = doc.clone();
                match apply_changes(&mut trial, vec![v.change.clone()]) {
                    Err(e) => refused.push(
                        hash,
                        Refusal::BadCreation,
                        format!("the change does not apply: {e}"),
                    ),
                    Ok(()) => match readable(&trial) {
                        Err(why) => refused.push(hash, Refusal::InvalidReport, why),
                        Ok(_) => {
                            doc = trial;
                            accepted.push(v.clone());
                        }
                    },
                }
            }
        }
    }
    if !pending.changes.is_empty() && apply_changes(&mut doc, pending.changes).is_err() {
        return Ok(None);
    }
    let report = if accepted.is_empty() {
        None
    } else {
        readable(&doc).ok()
    };
    Ok(Some(Admitted {
        doc,
        creator,
        accepted,
        refused: refused.list,
        report,
    }))
}

/// Decides whether one change to an existing report may join the batch,
/// checked against the stored report `doc` and what the batch admitted
/// before it; if so, records it in `pending`. The same rules as [`admit`]
/// for a change with a creator.
fn admit_to_batch(
    author: &Member,
    doc: &Automerge,
    creator: Option<&DeviceId>,
    refused: &HashSet<ChangeHash>,
    pending: &mut Pending,
    v: &VerifiedChange,
) -> Result<(), (Refusal, String)> {
    if author.revoked {
        return Err(revoked(author));
    }
    let deps = v.change.deps();
    if deps
        .iter()
        .any(|d| refused.contains(d) || !(pending.hashes.contains(d) || has_change(doc, d)))
    {
        return Err(missing_dependency());
    }
    if deps.is_empty() {
        return Err((Refusal::BadCreation, REPORT_EXISTS.into()));
    }
    let ops = v.change.decode().operations;
    let known = objects_applicable(doc, &pending.objects, &v.change, &ops).map_err(unapplicable)?;
    let fields = pending.fields.get_or_insert_with(|| FieldIndex::new(doc));
    check_touches(author, creator, false, || fields.touched(doc, &ops))?;
    fields.made(doc, v.change.start_op().get(), v.change.actor_id(), &ops);
    pending.objects.extend(known);
    pending.hashes.insert(v.hash());
    pending.changes.push(v.change.clone());
    Ok(())
}

fn revoked(author: &Member) -> (Refusal, String) {
    (
        Refusal::RevokedAuthor,
        format!(
            "device {} was revoked before the server received this change",
            author.device
        ),
    )
}

fn missing_dependency() -> (Refusal, String) {
    (
        Refusal::MissingDependency,
        "the change depends on a change the server does not have or refused".into(),
    )
}

fn unapplicable(e: String) -> (Refusal, String) {
    (
        Refusal::BadCreation,
        format!("the change does not apply: {e}"),
    )
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

/// The report, if it reads back with every field of its type, length and
/// set of values: what every client needs to list it.
pub(super) fn readable(doc: &Automerge) -> Result<Report, String> {
    let report = read_report(doc)
        .map_err(|e| format!("after this change the report would not read back: {e}"))?;
    validate_report(&report)
        .map_err(|e| format!("after this change the report would not be valid: {e}"))?;
    Ok(report)
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
        return Err(revoked(author));
    }
    let deps = v.change.deps();
    if deps
        .iter()
        .any(|d| refused.contains(d) || !has_change(doc, d))
    {
        return Err(missing_dependency());
    }
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
    apply_changes(&mut trial, vec![v.change.clone()]).map_err(|e| unapplicable(e.to_string()))?;
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
