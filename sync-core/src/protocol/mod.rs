//! The protocol's messages: the sync round ([`messages`]), its two
//! encodings, JSON and CBOR, chosen by `Content-Type` ([`encoding`], with
//! the CBOR layout in [`cbor`]; PROTOCOL.md, "Encodings"), and the smaller
//! JSON-only calls below.

mod cbor;
mod encoding;
mod messages;
#[cfg(test)]
mod tests;

pub use cbor::CborError;
pub use encoding::*;
pub use messages::*;

use serde::{Deserialize, Serialize};
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
