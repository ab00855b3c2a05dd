//! Fuzz target bodies, shared by the cargo-fuzz crate in `tests/fuzz` and by
//! the stable replay test `tests/scenarios/fuzz_corpus.rs`, which runs every
//! committed seed and regression through them. Built only by those two and
//! by the workspace; the core's library does not contain them.
//!
//! Each target takes the fuzzer's bytes, must never panic on them, and
//! asserts the invariants named in its doc. Signatures cannot be guessed,
//! so the targets that verify them first *repair* what the fuzzer mutated:
//! an Automerge chunk's checksum is recomputed and a change whose actor is
//! one of the fixed fuzzing keys ([`key`]) is signed again. That lets the
//! fuzzer reach the code behind the signature check.
//!
//! [`seeds`] makes each target's seed corpus from real encodings.
//!
//! Architecture invariant: only the core's public API is used here; a body
//! that needs an internal asks the core for a `#[doc(hidden)]` item rather
//! than the core compiling test code into every build.
//!
//! - `world.rs`: the fixed keys and the fuzzing world's store and reports;
//! - `sync.rs`: `sync_request`, `sync_response` and the hostile requests;
//! - `envelope.rs`: `envelope`, `bundle` and `codes`;
//! - `import.rs`: the three importers;
//! - `request_auth.rs`: signed requests;
//! - `seeds.rs`: the generated seed corpora.

mod envelope;
mod import;
mod request_auth;
mod seeds;
mod sync;
mod world;

pub use envelope::{bundle, codes, envelope};
pub use import::{import_csv, import_json, import_text};
pub use request_auth::request_auth;
pub use seeds::seeds;
pub use sync::{sync_request, sync_response};
pub use world::{key, repair, report_id, CASE};

/// A target's body: takes the fuzzer's bytes, panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its cargo-fuzz binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("sync_request", sync_request),
    ("sync_response", sync_response),
    ("envelope", envelope),
    ("import_csv", import_csv),
    ("import_text", import_text),
    ("import_json", import_json),
    ("request_auth", request_auth),
    ("bundle", bundle),
    ("codes", codes),
];
