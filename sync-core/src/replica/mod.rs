//! The device-side replica: a SQLite database under the device's home
//! directory holding the device identity, every report document it has
//! (compact snapshot plus appended changes), each change's signature, the
//! server heads last acknowledged per document, refused changes and the
//! case feed cursor; the case keys ([`case_keys`]), the encrypted
//! attachments waiting for upload ([`outbox`]) and what imports wrote
//! ([`imports`]).
//!
//! A snapshot is whatever `AutoCommit::load` reads: a saved document, or,
//! for a report created by [`Replica::write_batch`] or an import, its one
//! creating change (building the document only to save it would cost an
//! import most of its time). Compaction rewrites either as a document.
//!
//! Every write is one SQLite transaction (WAL, `synchronous=FULL`), taken
//! with `BEGIN IMMEDIATE` so two processes on one home never fork the same
//! actor's change sequence. A write that returned is on disk: killing the
//! process at any instant loses nothing that was reported saved.

pub mod bundles;
pub mod case_keys;
mod error;
mod export_source;
pub mod imports;
pub mod outbox;
pub mod roster;
mod rounds;
pub mod secrets;
mod store;
mod vault;

pub use case_keys::{KeyAdded, KeysTaken};
pub use error::{ReplicaError, REPLICA_SCHEMA};
pub use imports::ImportOutcome;
pub use outbox::OutboxEntry;
pub use roster::RosterEntry;
pub use rounds::{RefusedReport, RoundReport, SyncFailure, SyncSummary};
pub use secrets::{KdfCost, Passphrase, PassphraseRecord, SecretsError};
pub use store::{Replica, REPLICA_FILE};
// The inline tests of the store concerns reach it as `super::super::COMPACT_AFTER`.
#[cfg(test)]
use store::COMPACT_AFTER;
