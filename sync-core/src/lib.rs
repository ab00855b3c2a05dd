//! fieldsync-core: everything a device and the server share, with no IO but
//! the device replica.
//!
//! - [`document`]: one report = one Automerge document; the typed view
//!   ([`model::Report`]) and typed edits ([`model::Edit`]).
//! - [`identity`] and [`signed_change`]: Ed25519 device keys; every change is
//!   signed by its author and the signature travels beside it.
//! - [`protocol`] and [`sync`]: the one-round-trip sync protocol, as plain
//!   functions over data for both sides.
//! - [`replica`]: the device-side SQLite store.
//! - [`export`]: a case's reports and their signed history as JSON, CSV,
//!   GeoJSON, TimelineJS or Markdown.
//! - [`web_login`]: the certificate by which a coordinator's device lends a
//!   browser session a key of its own for review edits.
//! - [`import`]: reports from JSON, CSV and narrative text files, parsed
//!   from bytes.
//!
//! This crate must never open a socket, speak HTTP, or hold a case key or an
//! attachment's plaintext outside the device. Everything here is what a phone
//! app would embed.

pub mod bundle;
pub mod case_key;
pub mod case_key_trust;
pub mod change_limits;
pub mod device;
pub mod document;
pub mod envelope;
pub mod export;
// Not behind a feature: a feature only the test crate turned on made
// `cargo build -p fieldsync` and workspace builds compile the core twice.
#[doc(hidden)]
pub mod fuzzing;
pub mod hashing;
pub mod heads;
pub mod identity;
pub mod ids;
pub mod import;
pub mod model;
pub mod private_fs;
pub mod protocol;
pub mod replica;
pub mod request_auth;
pub mod signed_change;
pub mod sync;
pub mod web_login;
mod wire;

pub use document::{NewReport, ReportDocument};
pub use identity::{DeviceKey, PublicKey};
pub use ids::{CaseId, DeviceId, ReportId};
pub use model::{Edit, Report};
pub use signed_change::SignedChange;
