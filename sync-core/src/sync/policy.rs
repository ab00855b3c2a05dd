//! Who may read and write what. Plain functions over documents and changes;
//! the server applies them to every change it is offered, whoever relays it.

use automerge::legacy::{Key, ObjectId};
use automerge::{Automerge, Change, ObjId, ReadDoc, ROOT};

use crate::document::{IMMUTABLE_KEYS, REVIEW_KEY};
use crate::ids::DeviceId;
// issue 15: callers move after merge
pub use crate::model::DeviceRole;
use crate::protocol::Refusal;

/// An enrolled device as the server knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub device: DeviceId,
    pub role: DeviceRole,
    pub revoked: bool,
}

/// Whether `reader` may receive a report created by `creator`. Reporters
/// see only their own reports, so a seized phone holds only its own work.
pub fn may_read(reader: &Member, creator: &DeviceId) -> bool {
    reader.role == DeviceRole::Coordinator || &reader.device == creator
}

/// Checks one change against the document it is about to be applied to.
/// `creator` is the report's creator when the document exists already.
pub fn check_change(
    author: &Member,
    doc: &Automerge,
    creator: Option<&DeviceId>,
    change: &Change,
) -> Result<(), (Refusal, String)> {
    if let Some(creator) = creator {
        if author.role == DeviceRole::Reporter && creator != &author.device {
            return Err((
                Refusal::NotYourReport,
                "a reporter may change only reports it created".into(),
            ));
        }
    }
    // A change to an existing report is never its creation, whatever its
    // dependencies say (`handle_sync` refuses one without any).
    let is_creation = creator.is_none() && change.deps().is_empty();
    let expanded = change.decode();
    let review_objects: Vec<ObjId> = doc
        .get_all(ROOT, REVIEW_KEY)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    for op in &expanded.operations {
        let root_key = match (&op.obj, &op.key) {
            (ObjectId::Root, Key::Map(k)) => Some(k.as_str()),
            _ => None,
        };
        if !is_creation && root_key.is_some_and(|k| IMMUTABLE_KEYS.contains(&k)) {
            return Err((
                Refusal::ImmutableField,
                format!(
                    "`{}` is written once, when the report is created",
                    root_key.unwrap_or_default()
                ),
            ));
        }
        if author.role != DeviceRole::Coordinator && !is_creation {
            let in_review = root_key == Some(REVIEW_KEY)
                || review_objects.iter().any(|obj| same_object(obj, &op.obj));
            if in_review {
                return Err((
                    Refusal::ReviewIsForCoordinators,
                    "review status, reviewer and note are set by coordinators only".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Checks the state a creating change left: the report names its author
/// as creator, belongs to this case, and starts unreviewed unless a
/// coordinator made it.
pub fn check_creation(
    author: &Member,
    case: &str,
    report: &crate::model::Report,
) -> Result<(), (Refusal, String)> {
    if report.created_by != author.device.as_str() {
        return Err((
            Refusal::BadCreation,
            "the report's created_by is not the device that signed it".into(),
        ));
    }
    if report.case != case {
        return Err((
            Refusal::BadCreation,
            "the report belongs to another case".into(),
        ));
    }
    if author.role != DeviceRole::Coordinator && report.review != crate::model::Review::default() {
        return Err((
            Refusal::ReviewIsForCoordinators,
            "review status, reviewer and note are set by coordinators only".into(),
        ));
    }
    Ok(())
}

fn same_object(obj: &ObjId, legacy: &ObjectId) -> bool {
    match (obj, legacy) {
        (ObjId::Root, ObjectId::Root) => true,
        (ObjId::Id(counter, actor, _), ObjectId::Id(op)) => {
            *counter == op.counter() && actor == op.actor()
        }
        _ => false,
    }
}
