//! The sync protocol's messages. JSON, with change bytes and signatures in
//! base64 and change hashes in hex; see ARCHITECTURE.md for the encoding and
//! its cost.

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

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the message is not valid sync JSON: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("protocol version {got} is not supported (this side speaks {PROTOCOL_VERSION}); update fieldsync")]
    Version { got: u32 },
    #[error("report {0} appears twice in one request")]
    DuplicateDocument(ReportId),
}

impl SyncRequest {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("sync messages always serialize")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let request: Self = serde_json::from_slice(bytes)?;
        if request.version != PROTOCOL_VERSION {
            return Err(ProtocolError::Version {
                got: request.version,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for doc in &request.docs {
            if !seen.insert(&doc.id) {
                return Err(ProtocolError::DuplicateDocument(doc.id.clone()));
            }
        }
        Ok(request)
    }
}

impl SyncResponse {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("sync messages always serialize")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let response: Self = serde_json::from_slice(bytes)?;
        if response.version != PROTOCOL_VERSION {
            return Err(ProtocolError::Version {
                got: response.version,
            });
        }
        Ok(response)
    }
}

/// Bytes a document offer adds to a request besides its changes.
pub(crate) const OFFER_OVERHEAD: usize = 64 + 32 /* id */;
/// Bytes of a request besides its offers.
pub(crate) const REQUEST_OVERHEAD: usize = 64;
/// Bytes per head hash in JSON.
pub(crate) const HASH_WIRE_LEN: usize = 64 + 3;

/// A device asks to join a case with a one-time token. Signed (with
/// [`crate::request_auth::RequestAuth`]) by the key it enrolls, which proves
/// it holds the private key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub token: String,
    /// The device's Ed25519 public key, hex.
    pub public_key: String,
}

/// What a device learns when it enrolls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: String,
    pub case_id: String,
    pub case_name: String,
    pub role: crate::model::DeviceRole,
    /// Coordinators only: the case's secret for the ids of imported
    /// reports (see [`CaseInfo::import_salt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_salt: Option<String>,
    /// The case public keys coordinators' devices published, oldest epoch
    /// first; the device checks them (`case_key_trust`) before sealing to
    /// one. Absent from servers before issue 14.
    #[serde(default)]
    pub case_keys: Vec<crate::case_key_trust::PublishedCaseKey>,
    /// The case's time zone, as in [`SyncResponse::case_timezone`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_timezone: Option<String>,
}

/// `GET /v1/case`, for coordinators' devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseInfo {
    pub case_id: String,
    pub case_name: String,
    /// A secret the case's coordinators mix into the ids of the reports
    /// they import, so that a reporter, who knows the case, a file's name
    /// and its rows, cannot compute an id an import will use and take it
    /// first. Never sent to a reporter's device.
    pub import_salt: String,
}

/// `GET /v1/case-keys`: the case's published public keys, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseKeysResponse {
    pub case_keys: Vec<crate::case_key_trust::PublishedCaseKey>,
}

/// `POST /v1/case-keys` answers whether the key was new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResponse {
    /// `false`: the server already had this very key for its epoch.
    pub stored: bool,
}

/// `POST /v1/invites`: a coordinator's device asks for a one-time token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRequest {
    pub role: crate::model::DeviceRole,
    /// How long the token is valid, in seconds.
    pub expires_secs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteResponse {
    pub token: String,
    pub role: crate::model::DeviceRole,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// The body of every error the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// The server's clock, Unix seconds, so a device with a wrong clock can
    /// tell by how much.
    #[serde(default)]
    pub server_time: Option<i64>,
    /// Set when a request was refused for its timestamp: that timestamp
    /// minus the server's clock, in seconds (negative: the device is
    /// behind). A device corrects its signing clock by it and retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_secs: Option<i64>,
    /// Set when a request was refused because its nonce was seen before:
    /// a copy of it (a network duplicate) reached the server first. A sync
    /// is idempotent, so a device signs it afresh and sends it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// What a client must tell apart without reading `error`'s words (see
    /// [`error_code`]); absent where the status says enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The `code` of an [`ErrorBody`]: stable names a client maps to its own
/// words, in its user's language.
pub mod error_code {
    /// The invite token is not one this server issued.
    pub const INVITE_UNKNOWN: &str = "invite_unknown";
    /// The invite token was used already.
    pub const INVITE_USED: &str = "invite_used";
    /// The invite token expired.
    pub const INVITE_EXPIRED: &str = "invite_expired";
    /// The device was revoked (a seized phone): it can no longer sync; its
    /// unsent reports can still travel as a bundle.
    pub const REVOKED: &str = "revoked";
    /// The request's timestamp is outside the window (`clock_skew_secs`).
    pub const CLOCK: &str = "clock";
    /// The request's nonce was seen before (`replayed`).
    pub const REPLAYED: &str = "replayed";
    /// The server's disk is full (507).
    pub const DISK_FULL: &str = "disk_full";
    /// The server is busy (503): try again in a moment.
    pub const BUSY: &str = "busy";
}
