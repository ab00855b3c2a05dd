//! One report = one Automerge document. This module is the only place that
//! knows the document's layout: it reads the typed [`Report`] view out of a
//! document, turns typed [`Edit`]s into signed Automerge changes, and
//! answers the questions about changes that the server's policy and review
//! page ask ([`fields_touched`], [`conflicts`]), so nothing outside it
//! names a key.
//!
//! Layout (schema 1), all at the root map:
//!
//! | key | Automerge type |
//! |---|---|
//! | `schema_version` | uint |
//! | `id`, `case`, `created_by`, `created_at` | str (written once, by the creating change) |
//! | `occurred_at` | str, RFC 3339 with offset |
//! | `approximate` | bool |
//! | `place` | map {`name`: str, `lat`: f64 or null, `lon`: f64 or null} |
//! | `title` | str |
//! | `description` | text |
//! | `people` | list of map {`name`, `role`, `note`: str} |
//! | `tags` | map whose keys are the tags (value `true`): set semantics |
//! | `timeline` | list of map {`at`: str RFC 3339, `text`: str, `approximate`: bool} |
//! | `review` | map {`status`, `reviewer`, `note`, `reviewed_at`: str} |
//! | `attachments` | list of map {`id`, `blob`, `header`: str, `size`, `key_epoch`: uint} |
//!
//! - `layout.rs`: the key names, [`Field`], and the one writer of the layout
//!   that creation, the fast creating change and the edits share;
//! - `reading.rs`: [`read_report`];
//! - `writing.rs`: [`ReportDocument`], `create` and the edits;
//! - `fast.rs`: [`ReportDocument::creating_change`], the same bytes as
//!   `create` without building a document;
//! - `validate.rs`: the checks an edit makes, public for the importers;
//! - `queries.rs`: what a change touches and which fields are in conflict.
//!
//! [`Report`]: crate::model::Report
//! [`Edit`]: crate::model::Edit

mod errors;
mod fast;
mod layout;
mod queries;
mod reading;
mod validate;
mod writing;

pub use errors::{EditError, ViewError};
pub use layout::{rfc3339, Field, NewReport, IMMUTABLE_KEYS, REVIEW_KEY};
pub use queries::{
    conflicts, fields_touched, review_edit_objects, Conflict, ConflictField, Depth, FieldIndex,
    Touch, TouchedField,
};
pub use reading::read_report;
pub use validate::{
    validate_description, validate_person, validate_place, validate_report, validate_tag,
    validate_timeline_entry, validate_title,
};
pub use writing::ReportDocument;

#[cfg(test)]
mod tests;
