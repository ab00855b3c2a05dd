//! Who may read and write what. Plain functions over documents and changes;
//! the server applies them to every change it is offered, whoever relays it.

use automerge::{Automerge, Change};

use crate::document::{fields_touched, Depth, Field, Touch, TouchedField};
use crate::ids::DeviceId;
use crate::model::DeviceRole;
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
    check_touches(author, creator, change.deps().is_empty(), || {
        fields_touched(doc, change)
    })
}

/// [`check_change`] given what the change writes (`touched`, asked for only
/// when the rules need it) and whether it has no dependencies.
pub fn check_touches(
    author: &Member,
    creator: Option<&DeviceId>,
    no_deps: bool,
    touched: impl FnOnce() -> Vec<Touch>,
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
    // dependencies say (`handle_sync` refuses one without any). A creation
    // may write every field; `check_creation` checks what it wrote.
    let is_creation = creator.is_none() && no_deps;
    if is_creation {
        return Ok(());
    }
    for touch in touched() {
        let field = match &touch.field {
            TouchedField::Layout(field) => Some(*field),
            TouchedField::Other(_) => None,
        };
        if touch.depth == Depth::Key && field.is_some_and(Field::is_immutable) {
            return Err((
                Refusal::ImmutableField,
                format!(
                    "`{}` is written once, when the report is created",
                    touch.field.key()
                ),
            ));
        }
        // The review map's own keys; objects further down are not part of
        // the review a reader sees.
        let in_review = field == Some(Field::Review) && touch.depth != Depth::Below;
        if author.role != DeviceRole::Coordinator && in_review {
            return Err((
                Refusal::ReviewIsForCoordinators,
                "review status, reviewer and note are set by coordinators only".into(),
            ));
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
