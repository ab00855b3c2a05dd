//! What goes wrong reading a document or editing one.

use crate::ids::IdError;

/// A field of a document does not have the type or form this build expects.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ViewError {
    #[error(
        "field `{field}` should be {expected} but is {found}{}",
        type_hint(expected, found)
    )]
    WrongType {
        field: String,
        expected: &'static str,
        found: String,
    },
    #[error("field `{field}` holds an invalid value: {reason}")]
    InvalidValue { field: String, reason: String },
    /// An identifier (`id`, `case`, `created_by`, an attachment's `blob`)
    /// is absent or not of its form; nothing can refer to such a report.
    #[error("field `{field}` holds no valid identifier: {source}")]
    InvalidId {
        field: String,
        #[source]
        source: IdError,
    },
    #[error("field `{field}` is missing; the creating change writes it")]
    Missing { field: String },
}

impl ViewError {
    /// The field that does not read, without its value (which would be
    /// report contents).
    pub fn field(&self) -> &str {
        match self {
            ViewError::WrongType { field, .. }
            | ViewError::InvalidValue { field, .. }
            | ViewError::InvalidId { field, .. }
            | ViewError::Missing { field } => field,
        }
    }
}

/// An edit was refused before it touched the document.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EditError {
    #[error("{field} is too long: {len} bytes, at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("latitude {0} is outside -90..=90")]
    Latitude(f64),
    #[error("longitude {0} is outside -180..=180")]
    Longitude(f64),
    #[error("latitude and longitude go together: give both or neither")]
    HalfCoordinate,
    #[error("the document cannot be edited: {0}")]
    Document(#[from] ViewError),
    #[error("automerge refused the edit: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// The trap an independent client falls into most: Automerge's libraries
/// make a string a collaborative Text object unless told otherwise.
fn type_hint(expected: &str, found: &str) -> &'static str {
    if expected == "a string" && found == "text" {
        " (Automerge libraries store strings as Text by default; this field must be a scalar string: in @automerge/automerge write `new ImmutableString(value)`, in Rust `ScalarValue::Str`; only `description` is Text. See PROTOCOL.md, \"The report\")"
    } else {
        ""
    }
}
