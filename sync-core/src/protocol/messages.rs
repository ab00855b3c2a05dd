//! The sync protocol's messages, whatever their encoding ([`super::encoding`]).

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

use crate::ids::ReportId;
use crate::signed_change::SignedChange;
use crate::wire::{hash, hashes};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Default bound on a sync request body.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Default bound on the feed part of a sync response.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A device's half of a round trip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub version: u32,
    /// The last feed sequence number the device has received everything up to.
    pub cursor: u64,
    pub docs: Vec<DocOffer>,
}

/// What a device offers for one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocOffer {
    pub id: ReportId,
    /// The server heads the device last had acknowledged for this document
    /// (empty for a document the server has never acknowledged). The device
    /// holds every change these heads depend on.
    #[serde(with = "hashes")]
    pub base_heads: Vec<ChangeHash>,
    /// Changes since `base_heads`, in causal order. May be a prefix of what
    /// the device has, when the request's byte bound cut it.
    pub changes: Vec<SignedChange>,
}

/// The server's half of a round trip. Sent only after everything the
/// request brought is durably committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub version: u32,
    pub docs: Vec<DocUpdate>,
    /// The device's new feed cursor.
    pub cursor: u64,
    /// The feed holds more for this device than fit: sync again.
    pub more: bool,
    /// The case's time zone (an IANA name or an offset such as `+06:00`),
    /// which imports on the device use for times written without an
    /// offset; absent when the case has none, and from servers before
    /// issue 15. Filled by the HTTP layer, not by [`crate::sync::server`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_timezone: Option<String>,
}

/// What the server sends for one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocUpdate {
    pub id: ReportId,
    /// Changes the device lacks, in causal order.
    pub changes: Vec<SignedChange>,
    /// The server's heads after this round. Set only when `changes` brings
    /// the device everything the server has of this document, so the device
    /// may record them as acknowledged.
    #[serde(with = "hashes", default)]
    pub heads: Vec<ChangeHash>,
    #[serde(default)]
    pub complete: bool,
    /// Changes the device offered that the server refused, with reasons.
    #[serde(default)]
    pub refused: Vec<RefusedChange>,
}

/// A change the server would not take. The device keeps it and tells its
/// user; it is never silently dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedChange {
    #[serde(with = "hash")]
    pub hash: ChangeHash,
    pub reason: Refusal,
    pub message: String,
}

/// Why a change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The bytes are not an Automerge change, or the signature is wrong.
    BadSignature,
    /// The actor is not an enrolled device of this case.
    UnknownAuthor,
    /// The author's device was revoked before the server first saw this change.
    RevokedAuthor,
    /// A reporter may change only reports it created.
    NotYourReport,
    /// Review fields are written by coordinators only.
    ReviewIsForCoordinators,
    /// id, case, created_by and created_at are written once.
    ImmutableField,
    /// The report's first change does not describe a report of this case by its author.
    BadCreation,
    /// The change depends on a change the server does not have or refused.
    MissingDependency,
    /// After the change the report would not read back valid: a field of
    /// the wrong type, too long, or out of its set of values.
    InvalidReport,
    /// A change made in a web session that the server has not seen, sent by
    /// anything but that live session: a web session's key material cannot
    /// sign for the coordinator after the session ended.
    SessionNotLive,
}
