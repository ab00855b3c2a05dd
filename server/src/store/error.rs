//! What can go wrong in the store. The messages say what is wrong; the
//! HTTP layer (`api/`) and the CLI add what to run about it.

use std::path::PathBuf;

use fieldsync_core::DeviceId;
use fieldsync_core::ReportId;

/// Schema version of the database this build writes.
pub const SCHEMA_VERSION: i64 = 8;

/// Longest case name, in bytes.
pub(super) const MAX_CASE_NAME_BYTES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the server database failed: {0}; check the data directory's disk space and permissions"
    )]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the PostgreSQL database failed: {0}; check that it is running and reachable, and its disk space"
    )]
    Postgres(#[from] postgres::Error),
    #[error("cannot read the database URL: {0}; give it as postgres://USER@HOST[:PORT]/DATABASE")]
    BadDatabaseUrl(String),
    #[error("no database connection became free: {0}; the server is overloaded or the database is locked, try again")]
    Pool(#[from] r2d2::Error),
    #[error("the database was written by a newer fieldsync (schema {found}, this build knows {SCHEMA_VERSION}); update fieldsync")]
    NewerSchema { found: i64 },
    #[error("a case named {0} already exists; choose another name")]
    CaseExists(String),
    // Still names the command: the store test
    // `case_names_are_unique_and_validated` pins this text, and the CLI
    // prints it as it is (issue 15 leaves it to the lead to move).
    #[error("there is no case named {0}")]
    UnknownCase(String),
    #[error("a case name must be 1 to {MAX_CASE_NAME_BYTES} bytes, without control characters or surrounding spaces, got {0:?}; choose another name")]
    InvalidCaseName(String),
    #[error("the enrollment token is not one this server issued; check it was copied whole, or ask the case's operator for a new invite")]
    InvalidToken,
    #[error(
        "this enrollment token has already been used; ask the case's operator for a new invite"
    )]
    TokenUsed,
    #[error("this enrollment token has expired; ask the case's operator for a new invite")]
    TokenExpired,
    #[error("device {0} is already enrolled; a device joins one case once, so use a new device home to join another")]
    AlreadyEnrolled(DeviceId),
    #[error("there is no enrolled device {0}; check the id against the list of devices")]
    UnknownDevice(DeviceId),
    #[error("{0}")]
    BadQuery(String),
    #[error("the server already holds a different public key for case key epoch {0}; a published key is never replaced")]
    CaseKeyConflict(u32),
    #[error("the system random number generator failed; try again, and check the server's entropy source if it persists")]
    Random,
    #[error("the server database holds inconsistent data ({0}); if this persists, restore the database from a backup")]
    Corrupt(String),
    #[error("generated report {report} cannot be stored: {reason}; fix the generator")]
    GeneratedReport { report: ReportId, reason: String },
}

impl StoreError {
    /// Lock contention or an exhausted connection pool: retryable, not a
    /// fault. Nothing was written.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            // Another process's transaction won a race (a serialization
            // failure or a deadlock): PostgreSQL rolled this one back.
            StoreError::Postgres(e) => e.code().is_some_and(|c| {
                *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            }),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }

    /// The disk holding the data directory is full (`SQLITE_FULL`, or
    /// `ENOSPC`/`EDQUOT` from a file operation): retryable once space is
    /// freed, and never a corruption. The transaction that met it rolled
    /// back, so nothing was acknowledged.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::DISK_FULL),
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}
