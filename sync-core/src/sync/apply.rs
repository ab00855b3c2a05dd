//! Automerge's apply of changes from outside, with its panics turned into
//! errors.
//!
//! Automerge 0.12 panics, instead of returning an error, on some changes
//! that pass every check before it: the fuzzer found a server answer whose
//! changes make the batch apply fail an assertion (`op_set2/change/
//! batch.rs`, `walk_list`; `tests/fuzz/regressions/sync_response/
//! absorb-batch-walk-list-assertion`). Changes come from other devices and
//! from the server, so a hostile one could crash a device's sync, or a
//! server's round, with them. Every apply of such changes goes through
//! [`apply_changes`]. After an error the document may hold part of the
//! changes and must be dropped, as after any of Automerge's own errors;
//! every caller already does.

use std::panic::{catch_unwind, AssertUnwindSafe};

use automerge::{AutoCommit, Automerge, AutomergeError, Change};

/// Why changes did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Refused(#[from] AutomergeError),
    /// Automerge panicked on them: they are inconsistent with the document
    /// in a way it does not check for.
    #[error("automerge could not apply them ({0})")]
    Panicked(String),
}

/// A document that changes from outside are applied to.
pub trait ApplyTo {
    fn apply(&mut self, changes: Vec<Change>) -> Result<(), AutomergeError>;
}

impl ApplyTo for Automerge {
    fn apply(&mut self, changes: Vec<Change>) -> Result<(), AutomergeError> {
        self.apply_changes(changes)
    }
}

impl ApplyTo for AutoCommit {
    fn apply(&mut self, changes: Vec<Change>) -> Result<(), AutomergeError> {
        self.apply_changes(changes)
    }
}

/// Applies `changes` to `doc`; a panic inside Automerge is an error. On
/// an error drop `doc`.
pub fn apply_changes(doc: &mut impl ApplyTo, changes: Vec<Change>) -> Result<(), ApplyError> {
    // The document is dropped after a panic (see the module's note), so
    // nothing observes a state the unwinding left half-made.
    match catch_unwind(AssertUnwindSafe(|| doc.apply(changes))) {
        Ok(applied) => Ok(applied?),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(ApplyError::Panicked(message))
        }
    }
}
