//! The typed view of a report: what a reader of a report document sees.
//!
//! These are plain data. [`crate::document::ReportDocument`] reads them out of
//! an Automerge document and turns [`Edit`]s into Automerge changes.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::ids::{BlobId, CaseId, DeviceId, ReportId};

/// The schema version this build writes. Documents of other versions are
/// read as far as they can be: unknown fields are kept, missing ones default.
pub const SCHEMA_VERSION: u64 = 1;

// The limits of a report's fields, which every edit and the server check
// (`document::validate_*`). Here at the bottom of the crate so that the
// change bounds (`change_limits`), which signing uses, can name them.

/// Largest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Largest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 256 * 1024;
/// Largest short field (tag, name, note, timeline text), in bytes.
pub const MAX_FIELD_BYTES: usize = 8 * 1024;

/// A report as read from its document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub id: ReportId,
    pub case: CaseId,
    pub created_by: DeviceId,
    pub created_at: Option<DateTime<FixedOffset>>,
    pub schema_version: u64,
    /// When the events happened, with the offset the reporter recorded.
    pub occurred_at: Option<DateTime<FixedOffset>>,
    /// "Around 10:40", "early morning": the time is an estimate.
    pub approximate: bool,
    pub place: Place,
    pub title: String,
    pub description: String,
    pub people: Vec<Person>,
    pub tags: BTreeSet<String>,
    pub timeline: Vec<TimelineEntry>,
    pub review: Review,
    pub attachments: Vec<AttachmentRef>,
    /// Top-level fields this build does not know (written by a newer
    /// version). They stay in the document untouched.
    pub unknown_fields: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub name: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub role: Role,
    pub note: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Officer,
    Detainee,
    Witness,
    Victim,
    Other,
}

/// A sub-event inside a report: "10:40 arrested at the bus stop".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<FixedOffset>,
    pub text: String,
    pub approximate: bool,
}

/// Review fields. Only coordinators may write them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub status: ReviewStatus,
    /// Device id of the coordinator who set the status.
    pub reviewer: Option<String>,
    pub note: String,
    pub reviewed_at: Option<DateTime<FixedOffset>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewStatus {
    #[default]
    Unverified,
    Verified,
    Disputed,
}

/// A reference to an encrypted attachment. The blob itself lives on the
/// server, encrypted; `header` is the sealed header (content key and
/// metadata under the case key), opaque without the case key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    pub id: String,
    /// SHA-256 of the ciphertext.
    pub blob: BlobId,
    /// Ciphertext size in bytes.
    pub size: u64,
    /// Sealed header, base64.
    pub header: String,
    /// Case key epoch the header is sealed with.
    pub key_epoch: u64,
}

/// One typed change to a report. A list of edits becomes one Automerge
/// change, signed by the device that made it.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    SetTitle(String),
    /// Replaces the description by diffing against the current text, so a
    /// concurrent edit elsewhere in the text survives.
    SetDescription(String),
    AppendDescription(String),
    SetOccurredAt {
        at: DateTime<FixedOffset>,
        approximate: bool,
    },
    SetPlace(Place),
    AddTag(String),
    RemoveTag(String),
    AddPerson(Person),
    AddTimelineEntry(TimelineEntry),
    SetReview {
        status: ReviewStatus,
        note: String,
        reviewer: String,
        at: DateTime<FixedOffset>,
    },
    AddAttachment(AttachmentRef),
}

impl Edit {
    /// Whether this edit writes review fields (coordinators only).
    pub fn is_review(&self) -> bool {
        matches!(self, Edit::SetReview { .. })
    }
}

macro_rules! string_enum {
    ($ty:ident, $what:literal, $($variant:ident => $text:literal),+) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " {:?}; expected one of: {}"),
                        s,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(Role, "role", Officer => "officer", Detainee => "detainee", Witness => "witness", Victim => "victim", Other => "other");
string_enum!(ReviewStatus, "review status", Unverified => "unverified", Verified => "verified", Disputed => "disputed");

/// A device's role in its case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceRole {
    Reporter,
    Coordinator,
}

impl DeviceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceRole::Reporter => "reporter",
            DeviceRole::Coordinator => "coordinator",
        }
    }
}

impl std::str::FromStr for DeviceRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reporter" => Ok(DeviceRole::Reporter),
            "coordinator" => Ok(DeviceRole::Coordinator),
            other => Err(format!(
                "unknown role {other:?}; expected reporter or coordinator"
            )),
        }
    }
}
