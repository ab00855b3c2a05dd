//! fieldsync-core: everything a device and the server share, with no IO but
//! the device replica.
//!
//! - [`ids`] and [`model`]: the vocabulary (typed ids, the report's typed
//!   view, device roles, field limits), used by everything above.
//! - [`document`]: one report = one Automerge document; the typed view
//!   ([`model::Report`]) and typed edits ([`model::Edit`]); the only module
//!   that knows the document's layout.
//! - [`identity`] and [`signed_change`]: Ed25519 device keys; every change is
//!   signed by its author and the signature travels beside it.
//! - [`protocol`] and [`sync`]: the one-round-trip sync protocol, as plain
//!   functions over data for both sides.
//! - [`replica`]: the device-side SQLite store.
//! - [`device`]: a client's application logic over the replica: its typed
//!   enrollment, the order of a full sync, resumable uploads and ranged
//!   downloads, import ids; all over a [`device::Transport`] the embedding
//!   program gives (the CLI's is `ureq`).
//! - [`export`]: a case's reports and their signed history as JSON, CSV,
//!   GeoJSON, TimelineJS or Markdown, read through [`export::ExportSource`].
//! - [`web_login`]: the certificate by which a coordinator's device lends a
//!   browser session a key of its own for review edits.
//! - [`import`]: reports from JSON, CSV and narrative text files, parsed
//!   from bytes.
//!
//! Everything here is what a phone app would embed, and what the server
//! runs to decide what it accepts.
//!
//! Architecture invariant: this crate never opens a socket or speaks HTTP,
//! never knows how the server stores anything (its SQL, its files: the
//! server's half of sync is plain functions over the `ServerStore` trait),
//! never names a command of the CLI in an error, and never holds a case key
//! or an attachment's plaintext outside the device. Only `replica/` reads
//! the clock; documents, sync, import and export are given the time. Files
//! are touched by `replica/`, by `device/transfer.rs` (a download written
//! beside its destination) and by the helpers that take a path
//! (`envelope`, `hashing`, `private_fs`), nowhere else; `import` parses
//! bytes the caller read.

// The fuzz targets' bodies are not here: they are the crate
// `fieldsync-fuzz-bodies` (`tests/fuzz-bodies`), over this crate's API.

pub mod bundle;
pub mod case_key;
pub mod case_key_trust;
pub mod change_limits;
pub mod device;
pub mod document;
pub mod envelope;
pub mod export;
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
pub mod verifying_keys;
pub mod web_login;
mod wire;

pub use document::{NewReport, ReportDocument};
pub use identity::{DeviceKey, PublicKey};
pub use ids::{BlobId, CaseId, DeviceId, ReportId};
pub use model::{DeviceRole, Edit, Report};
pub use signed_change::SignedChange;
