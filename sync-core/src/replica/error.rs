//! What can go wrong in the replica, by store concern. The types live
//! here, below every file that returns them; each concern's file re-exports
//! its own.

use std::path::PathBuf;

use crate::case_key::CaseKeyError;
use crate::document::{EditError, ViewError};
use crate::envelope::EnvelopeError;
use crate::identity::IdentityError;
use crate::ids::{DeviceId, ReportId};
use crate::sync::device::AbsorbError;

/// Schema version of the replica database this build writes.
pub const REPLICA_SCHEMA: i64 = 6;
/// The fewest characters a passphrase may have.
pub const MIN_PASSPHRASE_CHARS: usize = 8;
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("cannot create the device home {path}: {source}")]
    Home {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the device store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the device store was written by a newer fieldsync (schema {found}, this build knows {REPLICA_SCHEMA}); update fieldsync")]
    NewerSchema { found: i64 },
    #[error("this device has no identity yet")]
    NoIdentity,
    #[error("this device already has an identity ({0}); it is never replaced, because its reports are signed with it")]
    IdentityExists(DeviceId),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("there is no report {0} on this device")]
    UnknownReport(ReportId),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error(transparent)]
    Absorb(Box<AbsorbError>),
    #[error("the device store is damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    CaseKey(#[from] CaseKeyStoreError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

impl From<AbsorbError> for ReplicaError {
    fn from(e: AbsorbError) -> Self {
        ReplicaError::Absorb(Box::new(e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaseKeyStoreError {
    #[error("this device already holds a key for case {case:?} (epoch {epoch})")]
    AlreadyHasKey { case: String, epoch: u32 },
    #[error("this device holds no key for case {0:?}")]
    NoKey(String),
    #[error("this device holds a different key for case {case:?} epoch {epoch}; the share code belongs to another case or was made on another coordinator device. Ask the coordinator for the current code")]
    EpochClash { case: String, epoch: u32 },
    #[error("the key store holds a malformed key for case {case:?} epoch {epoch}")]
    Malformed { case: String, epoch: u32 },
    #[error("this share code holds the case's private key, which a reporter's device never keeps: a seized phone would open every attachment of the case. It was not stored; destroy the code. A reporter's device seals to the case's public key, which it receives when it enrolls or syncs")]
    PrivateKeyOnReporter,
    #[error("this reporter's device already seals to the case's public key (epoch {0}); an old symmetric key would let it open attachments again, so it is not stored. Destroy the code")]
    SymmetricAfterPublic(u32),
    #[error(transparent)]
    Key(#[from] CaseKeyError),
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("attachments need a device home on disk")]
    NoHome,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the sealed attachment into {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encrypting {path} failed: {source}")]
    Seal {
        path: PathBuf,
        #[source]
        source: EnvelopeError,
    },
    #[error("attachment {blob} was not sealed on this device (no file in the outbox)")]
    NotSealed { blob: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("wrong passphrase for this device home; nothing was changed")]
    WrongPassphrase,
    #[error("this device home is protected by a passphrase: {0}")]
    NoPassphrase(String),
    #[error("the passphrase is too short: use at least {MIN_PASSPHRASE_CHARS} characters")]
    TooShort,
    #[error("this device home already has a passphrase")]
    AlreadySet,
    #[error("this device home has no passphrase")]
    NotSet,
    #[error("the stored {0} does not open under this home's passphrase: it was altered, or copied from another home")]
    Tampered(String),
    #[error(
        "the passphrase settings stored in this device home are damaged or out of bounds: {0}"
    )]
    BadRecord(String),
    #[error("another process holds this device home open, so old copies of its keys may remain in its files")]
    ScrubBusy,
    #[error("the system random number generator failed")]
    Random,
    #[error("deriving a key from the passphrase failed: {0}")]
    Kdf(String),
}
