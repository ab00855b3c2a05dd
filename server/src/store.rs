//! The server store: one SQLite database (WAL) under the data directory,
//! beside the `blobs/` directory of encrypted attachments.
//!
//! Every function here is named for what it does and returns a typed
//! [`StoreError`]; the HTTP layer never holds a connection. Connections come
//! from an r2d2 pool; every write is one transaction taken with
//! `BEGIN IMMEDIATE`, so writers queue on the database lock instead of
//! failing half-way, and `synchronous=FULL` makes a commit durable before it
//! returns, so the server acknowledges nothing that a crash could take back.
//!
//! A sync round ([`Store::sync_verified`]) runs the core's
//! [`apply_request`] over a [`ServerStore`] view of one case inside one
//! write transaction: the documents, the case's change feed and the
//! timeline projection change together or not at all. The changes were
//! verified before that transaction opened, and the feed part of the
//! answer is read after it committed, in a read transaction.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fieldsync_core::sync::policy::DeviceRole;
//! use fieldsync_server::store::Store;
//!
//! let store = Store::open(std::path::Path::new("/var/lib/fieldsync"))?;
//! store.create_case("rally-2024-05")?;
//! let token = store.create_invite(
//!     "rally-2024-05",
//!     DeviceRole::Reporter,
//!     std::time::Duration::from_secs(24 * 3600),
//! )?;
//! println!("enroll with {token}");
//! # Ok(())
//! # }
//! ```
//!
//! Tables (schema 6; schema 1 had neither the three blob tables nor
//! `timeline_tags`, schema 3 added the review app's `web_sessions`, see
//! `store/web.rs`, and schema 4 `timeline_tags`):
//!
//! | table | holds |
//! |---|---|
//! | `cases` | id, unique name, and the secret salt of its import ids (schema 6; coordinators only) |
//! | `invites` | SHA-256 of each enrollment token (never the token), its case, role, expiry and use |
//! | `devices` | enrolled devices: public key, case, role, revocation |
//! | `documents` | each report's Automerge snapshot, creator, heads and newest feed sequence number |
//! | `changes` | every change with its author's signature; `seq` is the case feed (monotonic, shared by all cases); `actor_device` is the key that signed it (the author, or a web session's key) and `doc_creator` its report's creator, so a reporter's feed reads only its own reports by an index (schema 5) |
//! | `timeline` | the projection coordinators browse: time, place, title, status, tags, reporter |
//! | `timeline_tags` | one entry per (report, tag), in timeline order, so a tag filter reads only that tag's reports; kept from `timeline` by triggers |
//! | `nonces` | request nonces seen recently, for replay refusal |
//! | `audit_log` | who did what, when; never report contents |
//! | `uploads` | resumable blob uploads: device, case, blob id, report, length, expiry, completion; a deduplicated upload is a completed row that costs no quota. The offset is not here: it is the partial file's length (`blob_store.rs`) |
//! | `blobs` | complete blobs per case: size, first uploader and report, when stored |
//! | `blob_refs` | (case, blob, report): a report whose server document lists the blob, recorded when an upload is created; reporters read the blobs of their own reports through it |

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use automerge::{Automerge, ChangeHash};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use fieldsync_core::document::{read_report, rfc3339, ViewError};
use fieldsync_core::model::{Report, ReviewStatus};
use fieldsync_core::private_fs;
use fieldsync_core::protocol::{SyncRequest, SyncResponse};
use fieldsync_core::signed_change::{SignedChange, VerifiedChange};
use fieldsync_core::sync::policy::{may_read, DeviceRole, Member};
use fieldsync_core::sync::server::{
    answer_from_feed, apply_request, respond, verify_request, DocumentTip, FeedEntry, ServerLimits,
    ServerStore, StoredDocument, SyncError, VerifiedRequest,
};
use fieldsync_core::web_login::{LoginCertificate, CERT_LEN, DELEGATED_SIGNATURE_LEN};
use fieldsync_core::{CaseId, DeviceId, DeviceKey, NewReport, PublicKey, ReportDocument, ReportId};
use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{
    params, params_from_iter, Connection, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::blob_store::{BlobId, UploadId};

mod audit;
mod case_keys;
mod web;
pub use web::{LoginRefusal, NewWebSession, StoredChange, StoredReport, WebSession};

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "fieldsync.sqlite3";
/// Schema version of the database this build writes.
pub const SCHEMA_VERSION: i64 = 7;

/// Timeline rows per page when the query does not say.
const DEFAULT_TIMELINE_LIMIT: usize = 100;
/// Most timeline rows one page may hold.
const MAX_TIMELINE_LIMIT: usize = 1000;
/// The page cache [`Store::import_generated_reports`] asks of SQLite, in
/// KiB: a batch of random ids dirties pages all over five indexes, and
/// pages spilled before the commit are written twice.
const GENERATE_CACHE_KIB: i64 = 256 * 1024;
/// SQLite's default `cache_size` (2 MiB), which every other write uses.
const DEFAULT_CACHE_SIZE: i64 = -2000;
/// Longest invite lifetime; longer requests are cut to it.
const MAX_INVITE_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Longest case name, in bytes.
const MAX_CASE_NAME_BYTES: usize = 100;

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
    #[error("no database connection became free: {0}; the server is overloaded or the database is locked, try again")]
    Pool(#[from] r2d2::Error),
    #[error("the database was written by a newer fieldsync (schema {found}, this build knows {SCHEMA_VERSION}); update fieldsync")]
    NewerSchema { found: i64 },
    #[error("a case named {0} already exists; choose another name")]
    CaseExists(String),
    #[error("there is no case named {0}; create it with `fieldsync admin case create {0}`")]
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
    #[error("the server already holds a different public key for case key epoch {0}; a published key is never replaced. Rotate to a new epoch with `fieldsync key rotate`, or, if this device's key is the wrong one, add the current code with `fieldsync key add`")]
    CaseKeyConflict(u32),
    #[error("the system random number generator failed; try again, and check the server's entropy source if it persists")]
    Random,
    #[error("the server database holds inconsistent data ({0}); if this persists, restore the database from a backup")]
    Corrupt(String),
    #[error("generated report {report} cannot be stored: {reason}; fix the generator")]
    GeneratedReport { report: ReportId, reason: String },
}

impl StoreError {
    /// The disk holding the data directory is full (`SQLITE_FULL`, or
    /// `ENOSPC`/`EDQUOT` from a file operation): retryable once space is
    /// freed, and never a corruption. The transaction that met it rolled
    /// back, so nothing was acknowledged.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

/// A case as the server knows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseRecord {
    pub id: CaseId,
    pub name: String,
    pub created_at: String,
}

/// An enrolled device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeviceRecord {
    pub device_id: DeviceId,
    #[serde(skip)]
    pub public_key: PublicKey,
    pub public_key_hex: String,
    pub case_id: CaseId,
    pub case_name: String,
    pub role: DeviceRole,
    /// RFC 3339, UTC.
    pub enrolled_at: String,
    /// RFC 3339, UTC; set once, at the first revocation.
    pub revoked_at: Option<String>,
}

impl DeviceRecord {
    /// The device as the sync policy sees it.
    pub fn member(&self) -> Member {
        Member {
            device: self.device_id.clone(),
            role: self.role,
            revoked: self.revoked_at.is_some(),
        }
    }
}

/// Which timeline rows to return. Empty strings mean "no filter", so a
/// query string like `?tag=&text=` behaves like no query at all.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct TimelineQuery {
    /// RFC 3339; reports that occurred at or after this instant.
    pub from: Option<String>,
    /// RFC 3339; reports that occurred at or before this instant.
    pub to: Option<String>,
    /// A tag the report carries (ASCII case-insensitive).
    pub tag: Option<String>,
    /// Review status: unverified, verified or disputed.
    pub status: Option<String>,
    /// The creating device's id.
    pub reporter: Option<String>,
    /// Case-insensitive substring of title, place or description.
    pub text: Option<String>,
    /// Opaque cursor from a previous page's `next`.
    pub after: Option<String>,
    /// Rows per page: default 100, at most 1000.
    pub limit: Option<usize>,
}

/// One report in the timeline.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TimelineRow {
    pub report_id: String,
    /// As recorded, with the reporter's offset.
    pub occurred_at: Option<String>,
    pub approximate: bool,
    pub place: String,
    pub title: String,
    pub status: String,
    pub tags: Vec<String>,
    /// The creating device's id.
    pub reporter: String,
    /// When the server last changed this report (RFC 3339, UTC).
    pub updated_at: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// The report's own timeline entries, in its order.
    pub entries: Vec<TimelineEntryRow>,
}

/// A timeline entry inside a report, as the timeline shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TimelineEntryRow {
    /// RFC 3339 with the recorded offset.
    pub at: String,
    pub approximate: bool,
    pub text: String,
}

impl TimelineEntryRow {
    fn of(entry: &fieldsync_core::model::TimelineEntry) -> Self {
        Self {
            at: rfc3339(&entry.at),
            approximate: entry.approximate,
            text: entry.text.clone(),
        }
    }
}

/// One page of the timeline; `next` is the `after` of the following page.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TimelinePage {
    pub reports: Vec<TimelineRow>,
    pub next: Option<String>,
}

/// One audit log entry: (at, event, device, detail).
pub type AuditEntry = (String, String, Option<String>, String);

/// Why a sync round failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SyncStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError<StoreError>),
}

/// An upload a device asks to start (`POST /v1/uploads`).
#[derive(Clone, Debug)]
pub struct NewUpload {
    pub blob: BlobId,
    pub report: ReportId,
    /// Upload-Length: the ciphertext's size in bytes.
    pub length: u64,
}

/// The bounds an upload is created under.
#[derive(Clone, Copy, Debug)]
pub struct UploadLimits {
    /// Most bytes of uploads (complete and in progress) one device may hold.
    pub device_quota_bytes: u64,
    /// How long an upload may go untouched before it is deleted.
    pub expiry: Duration,
}

/// An upload as the store records it.
#[derive(Clone, Debug)]
pub struct UploadRecord {
    pub id: UploadId,
    pub case_id: CaseId,
    pub device_id: DeviceId,
    pub blob: BlobId,
    pub report: ReportId,
    pub length: u64,
    /// Until when an incomplete upload is kept.
    pub expires_at: DateTime<Utc>,
    /// The blob is stored (uploaded here, or already there).
    pub completed: bool,
    /// The case already held the blob when the upload was created.
    pub deduplicated: bool,
}

impl UploadRecord {
    /// Whether an incomplete upload has expired by `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        !self.completed && self.expires_at <= now
    }
}

/// What [`Store::create_upload`] did.
#[derive(Clone, Debug)]
pub enum UploadStart {
    /// A new upload, with no bytes yet.
    Created(UploadRecord),
    /// This device's upload of the same blob, still in progress.
    Resumed(UploadRecord),
    /// The case holds the blob already: a completed upload that cost nothing.
    Deduplicated(UploadRecord),
}

/// Why an upload was not created. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Also a report of the case that this device may not write: the
    /// answer is the same, so it reveals nothing of other reporters' ids.
    #[error("report {0} is not on the server in this device's case; sync the report before uploading its attachments")]
    ReportNotSynced(ReportId),
    #[error("the report does not reference this blob; sync first (the server's copy of report {report} lists no attachment with blob {blob}: add the attachment to the report and sync before uploading)")]
    BlobNotReferenced { report: ReportId, blob: BlobId },
    /// Only for a device that may read the stored blob ([`holds_blob`]).
    #[error("this case already holds blob {blob} with {stored} bytes, not {length}; Upload-Length must be the size of the ciphertext")]
    LengthMismatch {
        blob: BlobId,
        stored: u64,
        length: u64,
    },
    #[error("this upload of {length} bytes would take the device past its quota of {quota} bytes ({used} bytes used by its uploads, complete and in progress); ask the server's operator to raise --device-quota-bytes")]
    QuotaExceeded { length: u64, used: u64, quota: u64 },
}

/// Whether a device may read a blob ([`Store::blob_access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobAccess {
    /// Stored and readable by this device; its size in bytes.
    Readable { size: u64 },
    /// The device may read it once it is uploaded completely.
    NotYetUploaded,
    /// A coordinator's case has no such blob.
    Unknown,
    /// A reporter's device has not uploaded this blob itself (whether or
    /// not the case holds it).
    NotUploadedByThisDevice,
}

/// Creates the data directory and its `blobs/` owner-only (0700), and
/// narrows anything in it that others could read to 0700 or 0600. Returns
/// what it narrowed: each is a path that was exposed, which the caller
/// reports.
pub fn secure_data_dir(data_dir: &Path) -> Result<Vec<private_fs::Tightened>, StoreError> {
    for dir in [data_dir.to_owned(), data_dir.join("blobs")] {
        private_fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir, source })?;
    }
    private_fs::tighten(data_dir).map_err(|source| StoreError::Io {
        path: data_dir.to_owned(),
        source,
    })
}

/// The server store: a pool of connections to one database.
#[derive(Clone)]
pub struct Store {
    pool: Pool<SqliteConnectionManager>,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`, with its `blobs/`
    /// directory, and brings the schema up to date.
    /// The directory and everything in it are readable by the server's
    /// user only ([`secure_data_dir`]).
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        for tightened in secure_data_dir(data_dir)? {
            tracing::warn!("{tightened}");
        }
        let path = data_dir.join(DB_FILE);
        // Owner-only before SQLite opens it: SQLite would create it 0644,
        // and makes its -wal and -shm files with the database's mode.
        private_fs::touch(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        // Migrate over a plain connection first, so an unreadable or newer
        // database gives its own error rather than a pool timeout.
        let mut conn = Connection::open(&path)?;
        configure(&mut conn)?;
        migrate(&mut conn)?;
        drop(conn);
        let manager = SqliteConnectionManager::file(&path).with_init(configure);
        let pool = Pool::builder()
            .max_size(16)
            .min_idle(Some(1))
            .build(manager)?;
        Ok(Store { pool })
    }

    /// Creates a case under a new random id. Names are unique.
    pub fn create_case(&self, name: &str) -> Result<CaseRecord, StoreError> {
        validate_case_name(name)?;
        let id = CaseId::random().map_err(|_| StoreError::Random)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if case_by_name(&tx, name)?.is_some() {
            return Err(StoreError::CaseExists(name.to_owned()));
        }
        let record = CaseRecord {
            id,
            name: name.to_owned(),
            created_at: now_text(),
        };
        tx.execute(
            "INSERT INTO cases (id, name, created_at, import_salt) VALUES (?1, ?2, ?3, ?4)",
            params![
                record.id.as_str(),
                record.name,
                record.created_at,
                random_token()?
            ],
        )?;
        write_audit(
            &tx,
            "case-create",
            None,
            &format!("case {} ({})", name, record.id),
        )?;
        tx.commit()?;
        Ok(record)
    }

    pub fn case_by_name(&self, name: &str) -> Result<Option<CaseRecord>, StoreError> {
        let conn = self.conn()?;
        case_by_name(&conn, name)
    }

    /// Makes a one-time enrollment token for `case_name`, valid for `ttl`
    /// (at most a hundred years). Only the token's SHA-256 is stored: the
    /// token itself exists only in what this returns.
    pub fn create_invite(
        &self,
        case_name: &str,
        role: DeviceRole,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let case = case_by_name(&tx, case_name)?
            .ok_or_else(|| StoreError::UnknownCase(case_name.to_owned()))?;
        let (token, _) = insert_invite(&tx, &case, role, ttl, None)?;
        tx.commit()?;
        Ok(token)
    }

    /// The case's import salt: a secret that coordinators' devices mix into
    /// the ids of imported reports, so that no reporter can compute an id
    /// an import will use and take it first. Only for coordinators.
    pub fn import_salt(&self, case: &CaseId) -> Result<String, StoreError> {
        let conn = self.conn()?;
        let salt: Option<String> = conn
            .query_row(
                "SELECT import_salt FROM cases WHERE id = ?1",
                [case.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        salt.ok_or_else(|| StoreError::UnknownCase(case.to_string()))
    }

    /// Enrolls the device whose key this is with a one-time token. A
    /// refusal of a token this server issued (used, expired) is recorded in
    /// the audit log too, in a write of its own: it shows an invite in the
    /// wrong hands. A made-up token is not: anyone can send one, so a write
    /// for it would cost the sender nothing (the caller logs it instead).
    pub fn enroll(&self, token: &str, public_key: &PublicKey) -> Result<DeviceRecord, StoreError> {
        let mut conn = self.conn()?;
        let device = public_key.device_id();
        let result = enroll_in_tx(&mut conn, token, public_key);
        if let Err(e) = &result {
            let reason = match e {
                StoreError::InvalidToken => None,
                StoreError::TokenUsed => Some("token already used"),
                StoreError::TokenExpired => Some("token expired"),
                StoreError::AlreadyEnrolled(_) => Some("device already enrolled"),
                _ => Some("storage failure"),
            };
            if let Some(reason) = reason {
                if let Err(audit_error) =
                    write_audit(&conn, "enroll-refused", Some(&device), reason)
                {
                    tracing::warn!(device = %device, error = %audit_error, "could not audit a refused enrollment");
                }
            }
        }
        result
    }

    /// Enrolled devices, of one case or of all, oldest first.
    pub fn devices(&self, case_name: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError> {
        let conn = self.conn()?;
        let raw = match case_name {
            None => {
                let mut stmt = conn.prepare(&format!(
                    "{DEVICE_SELECT} ORDER BY d.enrolled_at, d.device_id"
                ))?;
                let rows = stmt
                    .query_map([], RawDevice::from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            }
            Some(name) => {
                let case = case_by_name(&conn, name)?
                    .ok_or_else(|| StoreError::UnknownCase(name.to_owned()))?;
                let mut stmt = conn.prepare(&format!(
                    "{DEVICE_SELECT} WHERE d.case_id = ?1 ORDER BY d.enrolled_at, d.device_id"
                ))?;
                let rows = stmt
                    .query_map([case.id.as_str()], RawDevice::from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            }
        };
        raw.into_iter().map(RawDevice::into_record).collect()
    }

    pub fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        let conn = self.conn()?;
        device_by_id(&conn, id)
    }

    /// Revokes a device: from its next request on it is refused, and changes
    /// it made that the server had not yet seen are refused too. Revoking
    /// twice keeps the first time.
    pub fn revoke(&self, id: &DeviceId) -> Result<DeviceRecord, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_text();
        let updated = tx.execute(
            "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?2) WHERE device_id = ?1",
            params![id.as_str(), now],
        )?;
        if updated == 0 {
            return Err(StoreError::UnknownDevice(id.clone()));
        }
        let record = device_by_id(&tx, id)?.ok_or_else(|| StoreError::UnknownDevice(id.clone()))?;
        let detail = match &record.revoked_at {
            Some(at) if at != &now => format!("already revoked at {at}"),
            _ => format!("case {}", record.case_name),
        };
        write_audit(&tx, "revoke", Some(id), &detail)?;
        tx.commit()?;
        Ok(record)
    }

    /// Records a request nonce. `true` if it is fresh, `false` if this device
    /// used it before (a replay). Nonces older than twice the window are
    /// forgotten; a timestamp that old can no longer be checked, so it
    /// counts as a replay too (the caller refuses such requests anyway).
    pub fn use_nonce(
        &self,
        device: &DeviceId,
        nonce: &str,
        timestamp: i64,
        window_secs: i64,
    ) -> Result<bool, StoreError> {
        let cutoff = Utc::now()
            .timestamp()
            .saturating_sub(window_secs.saturating_mul(2));
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM nonces WHERE ts < ?1", [cutoff])?;
        let fresh = timestamp >= cutoff
            && tx.execute(
                "INSERT OR IGNORE INTO nonces (device_id, nonce, ts) VALUES (?1, ?2, ?3)",
                params![device.as_str(), nonce, timestamp],
            )? == 1;
        tx.commit()?;
        Ok(fresh)
    }

    /// Appends to the audit log. `detail` must never hold report contents.
    pub fn audit(
        &self,
        event: &str,
        device: Option<&DeviceId>,
        detail: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        write_audit(&conn, event, device, detail)
    }

    /// The audit log, oldest first: (at, event, device, detail).
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare("SELECT at, event, device_id, detail FROM audit_log ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Runs one sync round for `requester`: verifies every change, then
    /// applies them in one write transaction, committed before this
    /// returns, then answers from the feed in a read transaction. On any
    /// error nothing is written. See [`Store::sync_verified`].
    pub fn sync(
        &self,
        requester: &DeviceRecord,
        request: &SyncRequest,
        limits: ServerLimits,
    ) -> Result<SyncResponse, SyncStoreError> {
        let verified = verify_request(request.clone()).map_err(SyncError::from)?;
        self.sync_verified(requester, verified, limits, None)
    }

    /// Applies a request whose changes [`verify_request`] already checked
    /// (call that outside any lock: it is the expensive part) in one
    /// `BEGIN IMMEDIATE` transaction, committed before the answer is built,
    /// then reads the feed part of the answer in a read transaction of its
    /// own, so the feed is never scanned while other devices wait for the
    /// write lock.
    ///
    /// The requester's role and revocation are read again inside the write
    /// transaction, so a revocation that lands while the request is in
    /// flight takes effect. `live_session` is the key of the web session
    /// whose commit route sends this request, if any.
    pub fn sync_verified(
        &self,
        requester: &DeviceRecord,
        request: VerifiedRequest,
        limits: ServerLimits,
        live_session: Option<&PublicKey>,
    ) -> Result<SyncResponse, SyncStoreError> {
        let cursor = request.cursor;
        let offered = request.offered();
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let current = device_by_id(&tx, &requester.device_id)?
            .ok_or_else(|| StoreError::UnknownDevice(requester.device_id.clone()))?;
        let member = current.member();
        let mut case_store = CaseStore {
            tx: &tx,
            case_id: current.case_id.as_str().to_owned(),
            now: now_text(),
        };
        let docs = apply_request(&mut case_store, &member, request.docs, live_session)?;
        drop(case_store);
        // synchronous=FULL: once this returns the round is on disk, so the
        // response may acknowledge it.
        tx.commit().map_err(StoreError::from)?;

        let read = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let mut case_store = CaseStore {
            tx: &read,
            case_id: current.case_id.as_str().to_owned(),
            now: String::new(),
        };
        let feed = answer_from_feed(&mut case_store, &member, cursor, &offered, limits)?;
        drop(case_store);
        read.finish().map_err(StoreError::from)?;
        Ok(respond(docs, feed))
    }

    /// Writes reports straight into the store, each as the sync round that
    /// brought its creating change would: the document, the change with its
    /// author's signature at the end of the case feed, and the timeline row
    /// (`write_document`, the code `Store::sync` writes with), received now.
    /// For benchmarks and tests that need a case of a hundred thousand
    /// reports or more, which no device could sync in reasonable time.
    ///
    /// Each report is made and signed by its `author` with the core
    /// ([`ReportDocument::creating_change`], on every core of the machine)
    /// at the device time `now`; the author must be an enrolled, unrevoked
    /// device of the report's case, and the report id new. The server holds
    /// device keys nowhere else. Two shortcuts, both invisible to readers:
    /// the document's snapshot is the creating change itself (a one-change
    /// Automerge file, which `Automerge::load` reads as the same document;
    /// a sync round stores `save()`'s form, as the first round that changes
    /// the report will), and the timeline row is projected from
    /// [`ReportDocument::created_view`] rather than by reading the document.
    ///
    /// All in one transaction: call it with batches of some ten thousand.
    pub fn import_generated_reports(
        &self,
        reports: &[(&DeviceKey, NewReport)],
        now: DateTime<FixedOffset>,
    ) -> Result<(), StoreError> {
        let made = make_generated(reports, now)?;
        let mut conn = self.conn()?;
        // Ids are random, so each batch writes index pages all over the
        // file; a larger page cache for this connection while it does.
        conn.pragma_update(None, "cache_size", -GENERATE_CACHE_KIB)?;
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let received = now_text();
            let mut authors: Vec<DeviceRecord> = Vec::new();
            for ((key, new), made) in reports.iter().zip(&made) {
                let device = key.device_id();
                let known = authors.iter().position(|a| a.device_id == device);
                let index = match known {
                    Some(i) => i,
                    None => {
                        let a = device_by_id(&tx, &device)?
                            .ok_or_else(|| StoreError::UnknownDevice(device.clone()))?;
                        authors.push(a);
                        authors.len() - 1
                    }
                };
                let author = &authors[index];
                let refuse = |reason: &str| StoreError::GeneratedReport {
                    report: new.id.clone(),
                    reason: reason.to_owned(),
                };
                if author.case_id != new.case {
                    return Err(refuse("its author is enrolled in another case"));
                }
                if author.revoked_at.is_some() {
                    return Err(refuse("its author is revoked"));
                }
                let exists: Option<i64> = tx
                    .prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?
                    .query_row([new.id.as_str()], |r| r.get(0))
                    .optional()?;
                if exists.is_some() {
                    return Err(refuse("the store already holds a report with its id"));
                }
                let changes = [ChangeRow {
                    hash: made.hash,
                    signed: &made.change,
                    author: device.clone(),
                    actor: device,
                }];
                write_document(
                    &tx,
                    new.case.as_str(),
                    &received,
                    &DocumentRow {
                        id: &new.id,
                        creator: &author.device_id,
                        snapshot: &made.change.bytes,
                        heads: &format_heads(&[made.hash]),
                        changes: &changes,
                        projection: &made.projection,
                    },
                )?;
            }
            tx.commit()?;
            Ok(())
        })();
        conn.pragma_update(None, "cache_size", DEFAULT_CACHE_SIZE)?;
        result
    }

    /// The case's reports in the order they occurred (UTC, then report id;
    /// reports with no time last), filtered and paged.
    pub fn timeline(
        &self,
        case_id: &CaseId,
        query: &TimelineQuery,
    ) -> Result<TimelinePage, StoreError> {
        let filter = TimelineFilter::parse(query)?;
        let after = match non_empty(&query.after) {
            None => None,
            Some(text) => Some(decode_cursor(text)?),
        };
        let limit = query
            .limit
            .unwrap_or(DEFAULT_TIMELINE_LIMIT)
            .clamp(1, MAX_TIMELINE_LIMIT);
        let want = limit + 1;
        let conn = self.conn()?;
        // A tag filter reads the tag's entries in `timeline_tags` (indexed
        // in timeline order) and the rows they name, not every row of the
        // case. `k` is the table a query orders and pages by; `t` the rows.
        let (from, k) = if filter.tag.is_some() {
            (
                "timeline_tags k CROSS JOIN timeline t ON t.report_id = k.report_id",
                "k",
            )
        } else {
            ("timeline t", "t")
        };
        let mut rows: Vec<RawTimelineRow> = Vec::new();
        let past_dated = matches!(&after, Some((None, _)));
        if !past_dated {
            let mut sql = format!(
                "{TIMELINE_SELECT} FROM {from} WHERE {k}.case_id = ? AND {k}.occurred_utc IS NOT NULL"
            );
            let mut args: Vec<Value> = vec![Value::from(case_id.as_str().to_owned())];
            filter.push(&mut sql, &mut args, k);
            if let Some((Some(utc), id)) = &after {
                sql.push_str(&format!(
                    " AND ({k}.occurred_utc > ? OR ({k}.occurred_utc = ? AND {k}.report_id > ?))"
                ));
                args.extend([
                    Value::from(utc.clone()),
                    Value::from(utc.clone()),
                    Value::from(id.clone()),
                ]);
            }
            sql.push_str(&format!(
                " ORDER BY {k}.occurred_utc, {k}.report_id LIMIT ?"
            ));
            args.push(Value::from(sql_count(want)));
            rows.extend(timeline_rows(&conn, &sql, &args)?);
        }
        // A time range leaves out reports with no time.
        if rows.len() < want && !filter.has_range() {
            let mut sql = format!(
                "{TIMELINE_SELECT} FROM {from} WHERE {k}.case_id = ? AND {k}.occurred_utc IS NULL"
            );
            let mut args: Vec<Value> = vec![Value::from(case_id.as_str().to_owned())];
            filter.push(&mut sql, &mut args, k);
            if let Some((None, id)) = &after {
                sql.push_str(&format!(" AND {k}.report_id > ?"));
                args.push(Value::from(id.clone()));
            }
            sql.push_str(&format!(" ORDER BY {k}.report_id LIMIT ?"));
            args.push(Value::from(sql_count(want - rows.len())));
            rows.extend(timeline_rows(&conn, &sql, &args)?);
        }
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|r| encode_cursor(r.occurred_utc.as_deref(), &r.row.report_id))
        } else {
            None
        };
        Ok(TimelinePage {
            reports: rows.into_iter().map(|r| r.row).collect(),
            next,
        })
    }

    /// Every table but `nonces` and `audit_log`, rows sorted, as text: two
    /// dumps are equal exactly when the stored state is.
    pub fn dump(&self) -> Result<String, StoreError> {
        let conn = self.conn()?;
        let mut tables_stmt = conn.prepare(
            "SELECT name FROM sqlite_schema
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
               AND name NOT IN ('nonces', 'audit_log')
             ORDER BY name",
        )?;
        let tables = tables_stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = String::new();
        for table in tables {
            // Table names come from the schema, not from outside.
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\""))?;
            let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
            let mut lines = Vec::new();
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let mut line = String::new();
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        line.push_str(", ");
                    }
                    line.push_str(name);
                    line.push('=');
                    line.push_str(&dump_value(row.get_ref(i)?));
                }
                lines.push(line);
            }
            lines.sort();
            out.push_str(&format!("[{table}] {} rows\n", lines.len()));
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Starts an upload of `new.blob` for `new.report`, in one
    /// transaction. Checked in order: the report is on the server in the
    /// device's case and the device may write it (a report it may not
    /// write is answered as one the server lacks); the server's copy of
    /// the report lists the blob; then, if the device may read the stored
    /// blob already ([`holds_blob`]), a completed upload that costs
    /// nothing; else, if this device has an upload of the blob in
    /// progress, that upload; else the device's quota and a new upload
    /// under `id`, expiring after `limits.expiry` untouched.
    ///
    /// A reporter that names a blob it did not upload itself gets a new
    /// upload whether or not the case holds the blob: it holds the blob
    /// only once it has sent every byte and they hash to the id, so no
    /// answer tells it whether another device's blob exists, or its size.
    ///
    /// The (blob, report) reference is recorded with any upload this
    /// returns. On an error nothing is written.
    pub fn create_upload(
        &self,
        device: &DeviceRecord,
        new: &NewUpload,
        id: &UploadId,
        limits: UploadLimits,
    ) -> Result<UploadStart, UploadError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let case = device.case_id.as_str();
        let doc: Option<(String, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT creator, snapshot FROM documents WHERE id = ?1 AND case_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![new.report.as_str(), case], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(StoreError::from)?;
        let Some((creator, snapshot)) = doc else {
            return Err(UploadError::ReportNotSynced(new.report.clone()));
        };
        let creator: DeviceId = parse_stored(&creator, "creator device id")?;
        // A report's writers are its readers: coordinators and its creator
        // (`policy::check_change` holds changes to the same rule). Another
        // reporter's report is answered as one the server lacks, so a
        // reporter learns nothing of other reporters' report ids.
        if !may_read(&device.member(), &creator) {
            return Err(UploadError::ReportNotSynced(new.report.clone()));
        }
        let references = Automerge::load(&snapshot)
            .map_err(|e| StoreError::Corrupt(format!("report {} does not load: {e}", new.report)))
            .map(|doc| match read_report(&doc) {
                Ok(report) => report
                    .attachments
                    .iter()
                    .any(|a| a.blob == new.blob.as_str()),
                Err(_) => false,
            })?;
        if !references {
            return Err(UploadError::BlobNotReferenced {
                report: new.report.clone(),
                blob: new.blob.clone(),
            });
        }
        let now = Utc::now();
        tx.execute(
            "INSERT OR IGNORE INTO blob_refs (case_id, blob_id, report_id, device_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                case,
                new.blob.as_str(),
                new.report.as_str(),
                device.device_id.as_str(),
                time_text(now)
            ],
        )
        .map_err(StoreError::from)?;
        let expires_at = now + expiry_duration(limits.expiry)?;
        let stored = holds_blob(&tx, device, &new.blob)?;
        let start = if let Some(stored) = stored {
            if stored != new.length {
                return Err(UploadError::LengthMismatch {
                    blob: new.blob.clone(),
                    stored,
                    length: new.length,
                });
            }
            insert_upload(&tx, id, device, new, now, now, true)?;
            UploadStart::Deduplicated(upload_by_id(&tx, id)?.ok_or_else(|| vanished(id))?)
        } else if let Some(existing) = tx
            .query_row(
                "SELECT id FROM uploads
                 WHERE device_id = ?1 AND blob_id = ?2 AND length = ?3
                   AND completed_at IS NULL AND expires_at > ?4
                 ORDER BY created_at DESC LIMIT 1",
                params![
                    device.device_id.as_str(),
                    new.blob.as_str(),
                    sql_length(new.length)?,
                    time_text(now)
                ],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(StoreError::from)?
        {
            let existing: UploadId = parse_stored(&existing, "upload id")?;
            tx.execute(
                "UPDATE uploads SET expires_at = ?2 WHERE id = ?1",
                params![existing.as_str(), time_text(expires_at)],
            )
            .map_err(StoreError::from)?;
            UploadStart::Resumed(upload_by_id(&tx, &existing)?.ok_or_else(|| vanished(&existing))?)
        } else {
            let used: i64 = tx
                .query_row(
                    "SELECT COALESCE(SUM(length), 0) FROM uploads WHERE device_id = ?1 AND deduplicated = 0",
                    [device.device_id.as_str()],
                    |r| r.get(0),
                )
                .map_err(StoreError::from)?;
            let used = sql_size(used)?;
            if used.saturating_add(new.length) > limits.device_quota_bytes {
                return Err(UploadError::QuotaExceeded {
                    length: new.length,
                    used,
                    quota: limits.device_quota_bytes,
                });
            }
            insert_upload(&tx, id, device, new, now, expires_at, false)?;
            UploadStart::Created(upload_by_id(&tx, id)?.ok_or_else(|| vanished(id))?)
        };
        tx.commit().map_err(StoreError::from)?;
        Ok(start)
    }

    /// An upload, whoever made it, complete or not, expired or not.
    pub fn upload(&self, id: &UploadId) -> Result<Option<UploadRecord>, StoreError> {
        let conn = self.conn()?;
        upload_by_id(&conn, id)
    }

    /// Keeps an incomplete upload for `expiry` from now (it is in use);
    /// returns the new expiry.
    pub fn touch_upload(
        &self,
        id: &UploadId,
        expiry: Duration,
    ) -> Result<DateTime<Utc>, StoreError> {
        let expires_at = Utc::now() + expiry_duration(expiry)?;
        let conn = self.conn()?;
        conn.execute(
            "UPDATE uploads SET expires_at = ?2 WHERE id = ?1 AND completed_at IS NULL",
            params![id.as_str(), time_text(expires_at)],
        )?;
        Ok(expires_at)
    }

    /// Marks an upload complete and its blob stored in the upload's case,
    /// in one transaction. Call it only once the blob's bytes are verified
    /// and durably in place.
    pub fn complete_upload(&self, id: &UploadId) -> Result<UploadRecord, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let upload = upload_by_id(&tx, id)?.ok_or_else(|| vanished(id))?;
        let now = now_text();
        tx.execute(
            "UPDATE uploads SET completed_at = COALESCE(completed_at, ?2) WHERE id = ?1",
            params![id.as_str(), now],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO blobs (case_id, blob_id, size, uploaded_by, report_id, stored_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                upload.case_id.as_str(),
                upload.blob.as_str(),
                sql_length(upload.length)?,
                upload.device_id.as_str(),
                upload.report.as_str(),
                now
            ],
        )?;
        tx.commit()?;
        Ok(UploadRecord {
            completed: true,
            ..upload
        })
    }

    /// Forgets an upload (its bytes were refused, or it expired).
    pub fn delete_upload(&self, id: &UploadId) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute("DELETE FROM uploads WHERE id = ?1", [id.as_str()])?;
        Ok(())
    }

    /// Incomplete uploads whose expiry is past `now`.
    pub fn expired_uploads(&self, now: DateTime<Utc>) -> Result<Vec<UploadId>, StoreError> {
        self.upload_ids(
            "SELECT id FROM uploads WHERE completed_at IS NULL AND expires_at <= ?1",
            Some(time_text(now)),
        )
    }

    /// Every incomplete upload.
    pub fn incomplete_uploads(&self) -> Result<Vec<UploadId>, StoreError> {
        self.upload_ids("SELECT id FROM uploads WHERE completed_at IS NULL", None)
    }

    fn upload_ids(&self, sql: &str, arg: Option<String>) -> Result<Vec<UploadId>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(sql)?;
        let ids = stmt
            .query_map(params_from_iter(arg.iter()), |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter().map(|id| parse_stored(id, "upload id")).collect()
    }

    /// Whether `device` may read `blob`. Coordinators read every blob of
    /// their case; reporters only blobs their own device uploaded
    /// ([`holds_blob`]), and get one answer for every other blob, whether
    /// the case holds it or not. Nothing here depends on other cases, so
    /// the answer reveals nothing about them.
    pub fn blob_access(
        &self,
        device: &DeviceRecord,
        blob: &BlobId,
    ) -> Result<BlobAccess, StoreError> {
        let conn = self.conn()?;
        let case = device.case_id.as_str();
        if device.role == DeviceRole::Reporter {
            return Ok(match holds_blob(&conn, device, blob)? {
                Some(size) => BlobAccess::Readable { size },
                None => BlobAccess::NotUploadedByThisDevice,
            });
        }
        let size: Option<i64> = conn
            .query_row(
                "SELECT size FROM blobs WHERE case_id = ?1 AND blob_id = ?2",
                params![case, blob.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(size) = size {
            return Ok(BlobAccess::Readable {
                size: sql_size(size)?,
            });
        }
        let expected: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM blob_refs WHERE case_id = ?1 AND blob_id = ?2 LIMIT 1",
                params![case, blob.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match expected {
            Some(_) => BlobAccess::NotYetUploaded,
            None => BlobAccess::Unknown,
        })
    }

    fn conn(&self) -> Result<PooledConnection<SqliteConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }
}

/// A reporter's feed: only changes to reports it created, by the index
/// `changes_creator_feed`; bytes left unread for its own changes.
const REPORTER_FEED: &str = "SELECT seq, doc_id, doc_creator, actor_device,
        CASE WHEN actor_device = ?4 THEN NULL ELSE bytes END,
        CASE WHEN actor_device = ?4 THEN NULL ELSE signature END
    FROM changes
    WHERE case_id = ?1 AND doc_creator = ?4 AND seq > ?2
    ORDER BY seq LIMIT ?3";

/// A coordinator's feed: the whole case, by the index `changes_feed`.
const COORDINATOR_FEED: &str = "SELECT seq, doc_id, doc_creator, actor_device,
        CASE WHEN actor_device = ?4 THEN NULL ELSE bytes END,
        CASE WHEN actor_device = ?4 THEN NULL ELSE signature END
    FROM changes
    WHERE case_id = ?1 AND seq > ?2
    ORDER BY seq LIMIT ?3";

/// One case's view of the store inside an open `BEGIN IMMEDIATE`
/// transaction: what the core's sync algorithm reads and writes.
struct CaseStore<'a> {
    tx: &'a Transaction<'a>,
    case_id: String,
    /// When this round's changes were received.
    now: String,
}

impl ServerStore for CaseStore<'_> {
    type Error = StoreError;

    fn case_id(&self) -> &str {
        &self.case_id
    }

    fn member(&mut self, key: &PublicKey) -> Result<Option<Member>, StoreError> {
        let row: Option<(String, String, Option<String>)> = self
            .tx
            .prepare_cached(
                "SELECT device_id, role, revoked_at FROM devices WHERE public_key = ?1 AND case_id = ?2",
            )?
            .query_row(params![&key.as_bytes()[..], self.case_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        row.map(|(device, role, revoked_at)| {
            Ok(Member {
                device: parse_stored(&device, "device id")?,
                role: parse_stored(&role, "device role")?,
                revoked: revoked_at.is_some(),
            })
        })
        .transpose()
    }

    fn load_document(&mut self, id: &ReportId) -> Result<Option<StoredDocument>, StoreError> {
        let row: Option<(String, Vec<u8>)> = self
            .tx
            .prepare_cached(
                "SELECT creator, snapshot FROM documents WHERE id = ?1 AND case_id = ?2",
            )?
            .query_row(params![id.as_str(), self.case_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((creator, snapshot)) = row else {
            return Ok(None);
        };
        let doc = Automerge::load(&snapshot)
            .map_err(|e| StoreError::Corrupt(format!("report {id} does not load: {e}")))?;
        Ok(Some(StoredDocument {
            doc,
            creator: parse_stored(&creator, "creator device id")?,
        }))
    }

    fn held_by_another_case(&mut self, id: &ReportId) -> Result<bool, StoreError> {
        // Report ids are 128 random bits: one taken in another case was
        // copied, and the sync answers as for another reporter's report.
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM documents WHERE id = ?1 AND case_id != ?2")?
            .query_row(params![id.as_str(), self.case_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn save_document(
        &mut self,
        id: &ReportId,
        creator: &DeviceId,
        doc: &Automerge,
        new_changes: &[VerifiedChange],
    ) -> Result<(), StoreError> {
        let projection = match read_report(doc) {
            Ok(report) => Projection::of(&report)?,
            Err(e) => {
                // The field name only: values would be report contents.
                let field = match &e {
                    ViewError::WrongType { field, .. } | ViewError::InvalidValue { field, .. } => {
                        field.as_str()
                    }
                };
                tracing::warn!(report = %id, field, "report does not read; its timeline row is left empty");
                Projection::empty()
            }
        };
        let changes: Vec<ChangeRow<'_>> = new_changes
            .iter()
            .map(|change| ChangeRow {
                hash: change.hash(),
                signed: &change.signed,
                author: change.author.device_id(),
                actor: change.actor.device_id(),
            })
            .collect();
        write_document(
            self.tx,
            &self.case_id,
            &self.now,
            &DocumentRow {
                id,
                creator,
                snapshot: &doc.save(),
                heads: &format_heads(&doc.get_heads()),
                changes: &changes,
                projection: &projection,
            },
        )
    }

    fn signature(
        &mut self,
        id: &ReportId,
        hash: &ChangeHash,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT signature FROM changes WHERE doc_id = ?1 AND hash = ?2 AND case_id = ?3",
            )?
            .query_row(params![id.as_str(), hash.to_string(), self.case_id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn feed_after(
        &mut self,
        reader: &Member,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<FeedEntry>, StoreError> {
        // A reporter reads only the reports it created, by the creator
        // index; a coordinator the whole case. Changes the reader's own key
        // signed come without their bytes: it has them.
        let sql = match reader.role {
            DeviceRole::Reporter => REPORTER_FEED,
            DeviceRole::Coordinator => COORDINATOR_FEED,
        };
        let mut stmt = self.tx.prepare_cached(sql)?;
        let rows = stmt
            .query_map(
                params![
                    self.case_id,
                    i64::try_from(cursor).unwrap_or(i64::MAX),
                    sql_count(limit),
                    reader.device.as_str(),
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<Vec<u8>>>(4)?,
                        r.get::<_, Option<Vec<u8>>>(5)?,
                    ))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(seq, doc, creator, actor, bytes, signature)| {
                Ok(FeedEntry {
                    seq: u64::try_from(seq)
                        .map_err(|_| StoreError::Corrupt(format!("feed sequence number {seq}")))?,
                    doc: parse_stored(&doc, "report id")?,
                    doc_creator: parse_stored(&creator, "creator device id")?,
                    actor: parse_stored(&actor, "actor device id")?,
                    change: bytes
                        .zip(signature)
                        .map(|(bytes, signature)| SignedChange { bytes, signature }),
                })
            })
            .collect()
    }

    fn document_tip(&mut self, id: &ReportId) -> Result<Option<DocumentTip>, StoreError> {
        let row: Option<(i64, String)> = self
            .tx
            .prepare_cached("SELECT last_seq, heads FROM documents WHERE id = ?1 AND case_id = ?2")?
            .query_row(params![id.as_str(), self.case_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        row.map(|(last_seq, heads)| {
            Ok(DocumentTip {
                last_seq: u64::try_from(last_seq)
                    .map_err(|_| StoreError::Corrupt(format!("report {id} last_seq {last_seq}")))?,
                heads: parse_heads(&heads)?,
            })
        })
        .transpose()
    }
}

/// A generated report's creating change and timeline projection.
struct Generated {
    change: SignedChange,
    hash: ChangeHash,
    projection: Projection,
}

/// Makes the creating change and projection of each report, on every core.
fn make_generated(
    reports: &[(&DeviceKey, NewReport)],
    now: DateTime<FixedOffset>,
) -> Result<Vec<Generated>, StoreError> {
    let make = |(key, new): &(&DeviceKey, NewReport)| -> Result<Generated, StoreError> {
        let (change, hash) = ReportDocument::creating_change(key, new, now).map_err(|e| {
            StoreError::GeneratedReport {
                report: new.id.clone(),
                reason: e.to_string(),
            }
        })?;
        let view = ReportDocument::created_view(&key.device_id(), new, now);
        Ok(Generated {
            change,
            hash,
            projection: Projection::of(&view)?,
        })
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = reports.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = reports
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(make).collect::<Vec<_>>()))
            .collect();
        let mut made = Vec::with_capacity(reports.len());
        for worker in workers {
            let part = worker
                .join()
                .map_err(|_| StoreError::Corrupt("a report generator thread panicked".into()))?;
            for one in part {
                made.push(one?);
            }
        }
        Ok(made)
    })
}

/// What a sync round writes for one report: its document, the changes it
/// accepted and its timeline row.
struct DocumentRow<'a> {
    id: &'a ReportId,
    creator: &'a DeviceId,
    snapshot: &'a [u8],
    heads: &'a str,
    changes: &'a [ChangeRow<'a>],
    projection: &'a Projection,
}

/// One new change of a report, as the case feed stores it.
struct ChangeRow<'a> {
    hash: ChangeHash,
    signed: &'a SignedChange,
    /// The device answerable for it.
    author: DeviceId,
    /// The device id of the key that signed it: the author, or the web
    /// session's key. The feed skips a reader's own changes by this.
    actor: DeviceId,
}

/// Writes one report as a sync round does, received at `now`: the document
/// (inserted, or updated within its case), its new changes at the end of the
/// case feed, and its timeline row.
fn write_document(
    tx: &Connection,
    case_id: &str,
    now: &str,
    row: &DocumentRow<'_>,
) -> Result<(), StoreError> {
    let id = row.id.as_str();
    let upserted = tx
        .prepare_cached(
            "INSERT INTO documents (id, case_id, creator, snapshot, heads, last_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, 0)
             ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, heads = excluded.heads
             WHERE documents.case_id = excluded.case_id",
        )?
        .execute(params![
            id,
            case_id,
            row.creator.as_str(),
            row.snapshot,
            row.heads
        ])?;
    if upserted != 1 {
        return Err(StoreError::Corrupt(
            "report id belongs to another case".into(),
        ));
    }
    let mut last_seq = None;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO changes (case_id, doc_id, hash, bytes, author_device, signature, received_at,
                                  actor_device, doc_creator)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for change in row.changes {
            insert.execute(params![
                case_id,
                id,
                change.hash.to_string(),
                change.signed.bytes,
                change.author.as_str(),
                change.signed.signature,
                now,
                change.actor.as_str(),
                row.creator.as_str(),
            ])?;
            last_seq = Some(tx.last_insert_rowid());
        }
    }
    if let Some(seq) = last_seq {
        tx.prepare_cached("UPDATE documents SET last_seq = ?2 WHERE id = ?1")?
            .execute(params![id, seq])?;
    }
    let p = row.projection;
    tx.prepare_cached(
        "INSERT INTO timeline (report_id, case_id, occurred_utc, occurred_at, approximate, place,
                               title, search_text, status, tags, reporter, updated_at,
                               lat, lon, entries)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (report_id) DO UPDATE SET
             occurred_utc = excluded.occurred_utc, occurred_at = excluded.occurred_at,
             approximate = excluded.approximate, place = excluded.place,
             title = excluded.title, search_text = excluded.search_text,
             status = excluded.status, tags = excluded.tags,
             reporter = excluded.reporter, updated_at = excluded.updated_at,
             lat = excluded.lat, lon = excluded.lon, entries = excluded.entries",
    )?
    .execute(params![
        id,
        case_id,
        p.occurred_utc,
        p.occurred_at,
        p.approximate,
        p.place,
        p.title,
        p.search_text,
        p.status,
        p.tags,
        row.creator.as_str(),
        now,
        p.lat,
        p.lon,
        p.entries,
    ])?;
    Ok(())
}

/// The timeline row's values, read from a report.
struct Projection {
    occurred_utc: Option<String>,
    occurred_at: Option<String>,
    approximate: bool,
    place: String,
    title: String,
    search_text: String,
    status: String,
    tags: String,
    lat: Option<f64>,
    lon: Option<f64>,
    /// The report's own timeline entries, JSON.
    entries: String,
}

impl Projection {
    fn of(report: &Report) -> Result<Projection, StoreError> {
        let tags: Vec<&String> = report.tags.iter().collect();
        Ok(Projection {
            occurred_utc: report.occurred_at.map(|t| sortable_utc(&t)),
            occurred_at: report.occurred_at.as_ref().map(rfc3339),
            approximate: report.approximate,
            place: report.place.name.clone(),
            title: report.title.clone(),
            search_text: [&report.title, &report.place.name, &report.description]
                .map(|s| s.to_lowercase())
                .join("\n"),
            status: report.review.status.as_str().to_owned(),
            tags: serde_json::to_string(&tags)
                .map_err(|e| StoreError::Corrupt(format!("tags do not encode: {e}")))?,
            lat: report.place.lat,
            lon: report.place.lon,
            entries: serde_json::to_string(
                &report
                    .timeline
                    .iter()
                    .map(TimelineEntryRow::of)
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| StoreError::Corrupt(format!("timeline entries do not encode: {e}")))?,
        })
    }

    fn empty() -> Projection {
        Projection {
            occurred_utc: None,
            occurred_at: None,
            approximate: false,
            place: String::new(),
            title: String::new(),
            search_text: String::new(),
            status: String::new(),
            tags: "[]".into(),
            lat: None,
            lon: None,
            entries: "[]".into(),
        }
    }
}

/// A timeline query's filters, validated.
struct TimelineFilter {
    from: Option<String>,
    to: Option<String>,
    tag: Option<String>,
    status: Option<String>,
    reporter: Option<String>,
    text: Option<String>,
}

impl TimelineFilter {
    fn parse(query: &TimelineQuery) -> Result<TimelineFilter, StoreError> {
        let time = |field: &str, value: &Option<String>| -> Result<Option<String>, StoreError> {
            non_empty(value)
                .map(|text| {
                    DateTime::parse_from_rfc3339(text)
                        .map(|t| sortable_utc(&t))
                        .map_err(|_| {
                            StoreError::BadQuery(format!(
                                "`{field}` must be an RFC 3339 time such as 2024-05-01T10:40:00+02:00, got {:?}",
                                shorten(text)
                            ))
                        })
                })
                .transpose()
        };
        let status = non_empty(&query.status)
            .map(|s| {
                ReviewStatus::from_str(s)
                    .map(|s| s.as_str().to_owned())
                    .map_err(|_| {
                        StoreError::BadQuery(format!(
                            "`status` must be unverified, verified or disputed, got {:?}",
                            shorten(s)
                        ))
                    })
            })
            .transpose()?;
        let reporter = non_empty(&query.reporter)
            .map(|r| {
                DeviceId::from_str(r)
                    .map(String::from)
                    .map_err(|e| StoreError::BadQuery(format!("`reporter`: {e}")))
            })
            .transpose()?;
        Ok(TimelineFilter {
            from: time("from", &query.from)?,
            to: time("to", &query.to)?,
            tag: non_empty(&query.tag).map(|t| t.trim().to_owned()),
            status,
            reporter,
            text: non_empty(&query.text).map(str::to_lowercase),
        })
    }

    fn has_range(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// Appends this filter's conditions and their arguments, for the rows
    /// `t` of the query's `FROM`, ordered by the table `k` (`t` itself,
    /// or a tag's entries in `timeline_tags`).
    fn push(&self, sql: &mut String, args: &mut Vec<Value>, k: &str) {
        if let Some(tag) = &self.tag {
            // The same ASCII case folding as the trigger that fills
            // timeline_tags.
            sql.push_str(" AND k.tag = lower(?)");
            args.push(Value::from(tag.clone()));
        }
        if let Some(from) = &self.from {
            sql.push_str(&format!(" AND {k}.occurred_utc >= ?"));
            args.push(Value::from(from.clone()));
        }
        if let Some(to) = &self.to {
            sql.push_str(&format!(" AND {k}.occurred_utc <= ?"));
            args.push(Value::from(to.clone()));
        }
        if let Some(status) = &self.status {
            sql.push_str(" AND t.status = ?");
            args.push(Value::from(status.clone()));
        }
        if let Some(reporter) = &self.reporter {
            sql.push_str(" AND t.reporter = ?");
            args.push(Value::from(reporter.clone()));
        }
        if let Some(text) = &self.text {
            sql.push_str(" AND instr(t.search_text, ?) > 0");
            args.push(Value::from(text.clone()));
        }
    }
}

/// The columns of a timeline row `t` (its FROM follows).
const TIMELINE_SELECT: &str = "SELECT t.report_id, t.occurred_at, t.approximate, t.place, t.title, t.status, t.tags, t.reporter, t.updated_at, t.occurred_utc, t.lat, t.lon, t.entries";

struct RawTimelineRow {
    row: TimelineRow,
    occurred_utc: Option<String>,
}

fn timeline_rows(
    conn: &Connection,
    sql: &str,
    args: &[Value],
) -> Result<Vec<RawTimelineRow>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raw = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((
                TimelineRow {
                    report_id: r.get(0)?,
                    occurred_at: r.get(1)?,
                    approximate: r.get(2)?,
                    place: r.get(3)?,
                    title: r.get(4)?,
                    status: r.get(5)?,
                    tags: Vec::new(),
                    reporter: r.get(7)?,
                    updated_at: r.get(8)?,
                    lat: r.get(10)?,
                    lon: r.get(11)?,
                    entries: Vec::new(),
                },
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, String>(12)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(|(mut row, tags, occurred_utc, entries)| {
            row.tags = serde_json::from_str(&tags).map_err(|_| {
                StoreError::Corrupt(format!("timeline tags of report {}", row.report_id))
            })?;
            row.entries = serde_json::from_str(&entries).map_err(|_| {
                StoreError::Corrupt(format!("timeline entries of report {}", row.report_id))
            })?;
            Ok(RawTimelineRow { row, occurred_utc })
        })
        .collect()
}

/// A page cursor: base64url of `occurred_utc|report_id`, the time empty for
/// reports with no time.
fn encode_cursor(occurred_utc: Option<&str>, report_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{report_id}", occurred_utc.unwrap_or("")))
}

fn decode_cursor(text: &str) -> Result<(Option<String>, String), StoreError> {
    let bad = || {
        StoreError::BadQuery(
            "`after` is not a cursor this server gave out; start again from the first page".into(),
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (utc, id) = text.split_once('|').ok_or_else(bad)?;
    let id = ReportId::from_str(id).map_err(|_| bad())?;
    let utc = if utc.is_empty() {
        None
    } else {
        let t = DateTime::parse_from_rfc3339(utc).map_err(|_| bad())?;
        Some(sortable_utc(&t))
    };
    Ok((utc, id.as_str().to_owned()))
}

const DEVICE_SELECT: &str =
    "SELECT d.device_id, d.public_key, d.case_id, c.name, d.role, d.enrolled_at, d.revoked_at
     FROM devices d JOIN cases c ON c.id = d.case_id";

/// A device row before its fields are checked.
struct RawDevice {
    device_id: String,
    public_key: Vec<u8>,
    case_id: String,
    case_name: String,
    role: String,
    enrolled_at: String,
    revoked_at: Option<String>,
}

impl RawDevice {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDevice> {
        Ok(RawDevice {
            device_id: r.get(0)?,
            public_key: r.get(1)?,
            case_id: r.get(2)?,
            case_name: r.get(3)?,
            role: r.get(4)?,
            enrolled_at: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    }

    fn into_record(self) -> Result<DeviceRecord, StoreError> {
        let public_key = PublicKey::from_bytes(&self.public_key).map_err(|e| {
            StoreError::Corrupt(format!("public key of device {}: {e}", self.device_id))
        })?;
        Ok(DeviceRecord {
            device_id: parse_stored(&self.device_id, "device id")?,
            public_key_hex: hex::encode(public_key.as_bytes()),
            public_key,
            case_id: parse_stored(&self.case_id, "case id")?,
            case_name: self.case_name,
            role: parse_stored(&self.role, "device role")?,
            enrolled_at: self.enrolled_at,
            revoked_at: self.revoked_at,
        })
    }
}

fn device_by_id(conn: &Connection, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
    conn.prepare_cached(&format!("{DEVICE_SELECT} WHERE d.device_id = ?1"))?
        .query_row([id.as_str()], RawDevice::from_row)
        .optional()?
        .map(RawDevice::into_record)
        .transpose()
}

fn case_by_name(conn: &Connection, name: &str) -> Result<Option<CaseRecord>, StoreError> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached("SELECT id, name, created_at FROM cases WHERE name = ?1")?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(id, name, created_at)| {
        Ok(CaseRecord {
            id: parse_stored(&id, "case id")?,
            name,
            created_at,
        })
    })
    .transpose()
}

fn enroll_in_tx(
    conn: &mut Connection,
    token: &str,
    public_key: &PublicKey,
) -> Result<DeviceRecord, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let hash = token_hash(token);
    type Invite = (String, String, String, Option<String>, Option<String>);
    let invite: Option<Invite> = tx
        .query_row(
            "SELECT case_id, role, expires_at, used_at, used_by FROM invites WHERE token_hash = ?1",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((case_id, role, expires_at, used_at, used_by)) = invite else {
        return Err(StoreError::InvalidToken);
    };
    if used_at.is_some() {
        // The same key asking again (its request is signed by that key) is
        // a phone whose first answer was lost on a bad network: answer it
        // again, or it could never learn its case. Nothing is written.
        let device = public_key.device_id();
        if used_by.as_deref() == Some(device.as_str()) {
            if let Some(record) = device_by_id(&tx, &device)? {
                if record.public_key == *public_key && record.revoked_at.is_none() {
                    return Ok(record);
                }
            }
        }
        return Err(StoreError::TokenUsed);
    }
    let expires = DateTime::parse_from_rfc3339(&expires_at)
        .map_err(|_| StoreError::Corrupt(format!("invite expiry {expires_at:?}")))?;
    let now = Utc::now();
    if now >= expires {
        return Err(StoreError::TokenExpired);
    }
    let device = public_key.device_id();
    let known: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM devices WHERE device_id = ?1 OR public_key = ?2",
            params![device.as_str(), &public_key.as_bytes()[..]],
            |r| r.get(0),
        )
        .optional()?;
    if known.is_some() {
        return Err(StoreError::AlreadyEnrolled(device));
    }
    let now = time_text(now);
    tx.execute(
        "UPDATE invites SET used_at = ?2, used_by = ?3 WHERE token_hash = ?1",
        params![hash, now, device.as_str()],
    )?;
    tx.execute(
        "INSERT INTO devices (device_id, public_key, case_id, role, enrolled_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
        params![
            device.as_str(),
            &public_key.as_bytes()[..],
            case_id,
            role,
            now
        ],
    )?;
    let record = device_by_id(&tx, &device)?
        .ok_or_else(|| StoreError::Corrupt(format!("device {device} vanished while enrolling")))?;
    write_audit(
        &tx,
        "enroll",
        Some(&device),
        &format!(
            "case {} role {} token sha256 {}",
            record.case_name,
            role,
            &hash[..16]
        ),
    )?;
    tx.commit()?;
    Ok(record)
}

const UPLOAD_SELECT: &str =
    "SELECT id, case_id, device_id, blob_id, report_id, length, expires_at, completed_at, deduplicated
     FROM uploads";

fn upload_by_id(conn: &Connection, id: &UploadId) -> Result<Option<UploadRecord>, StoreError> {
    type Row = (
        String,
        String,
        String,
        String,
        String,
        i64,
        String,
        Option<String>,
        bool,
    );
    let row: Option<Row> = conn
        .prepare_cached(&format!("{UPLOAD_SELECT} WHERE id = ?1"))?
        .query_row([id.as_str()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .optional()?;
    row.map(
        |(id, case, device, blob, report, length, expires_at, completed_at, deduplicated)| {
            Ok(UploadRecord {
                id: parse_stored(&id, "upload id")?,
                case_id: parse_stored(&case, "case id")?,
                device_id: parse_stored(&device, "device id")?,
                blob: parse_stored(&blob, "blob id")?,
                report: parse_stored(&report, "report id")?,
                length: sql_size(length)?,
                expires_at: DateTime::parse_from_rfc3339(&expires_at)
                    .map_err(|_| StoreError::Corrupt(format!("upload expiry {expires_at:?}")))?
                    .with_timezone(&Utc),
                completed: completed_at.is_some(),
                deduplicated,
            })
        },
    )
    .transpose()
}

fn insert_upload(
    tx: &Transaction<'_>,
    id: &UploadId,
    device: &DeviceRecord,
    new: &NewUpload,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    deduplicated: bool,
) -> Result<(), StoreError> {
    let now = time_text(now);
    tx.execute(
        "INSERT INTO uploads (id, case_id, device_id, blob_id, report_id, length, created_at,
                              expires_at, completed_at, deduplicated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id.as_str(),
            device.case_id.as_str(),
            device.device_id.as_str(),
            new.blob.as_str(),
            new.report.as_str(),
            sql_length(new.length)?,
            now,
            time_text(expires_at),
            deduplicated.then_some(&now),
            deduplicated,
        ],
    )?;
    Ok(())
}

/// The size of `blob` if `device` may read it as stored in its case
/// without sending it: a coordinator reads every blob of its case; any
/// other device only a blob it uploaded itself, every byte checked against
/// the id (a completed upload that was not deduplicated). A blob id alone
/// proves nothing: reports list ids that any device can copy.
fn holds_blob(
    conn: &Connection,
    device: &DeviceRecord,
    blob: &BlobId,
) -> Result<Option<u64>, StoreError> {
    let size: Option<i64> = conn
        .prepare_cached(
            "SELECT b.size FROM blobs b
             WHERE b.case_id = ?1 AND b.blob_id = ?2
               AND (?4 OR EXISTS (
                   SELECT 1 FROM uploads u
                   WHERE u.device_id = ?3 AND u.blob_id = ?2 AND u.case_id = ?1
                     AND u.completed_at IS NOT NULL AND u.deduplicated = 0))",
        )?
        .query_row(
            params![
                device.case_id.as_str(),
                blob.as_str(),
                device.device_id.as_str(),
                device.role == DeviceRole::Coordinator
            ],
            |r| r.get(0),
        )
        .optional()?;
    size.map(sql_size).transpose()
}

fn vanished(id: &UploadId) -> StoreError {
    StoreError::Corrupt(format!("upload {id} vanished inside a transaction"))
}

fn expiry_duration(expiry: Duration) -> Result<chrono::Duration, StoreError> {
    chrono::Duration::from_std(expiry.min(MAX_INVITE_TTL))
        .map_err(|_| StoreError::Corrupt("upload expiry out of range".into()))
}

/// A byte count as SQLite stores it (a signed 64-bit integer).
fn sql_length(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("length {n} is over 2^63")))
}

/// A byte count read back from SQLite.
fn sql_size(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("stored length {n}")))
}

fn write_audit(
    conn: &Connection,
    event: &str,
    device: Option<&DeviceId>,
    detail: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit_log (at, event, device_id, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now_text(), event, device.map(DeviceId::as_str), detail],
    )?;
    Ok(())
}

/// Settings every connection gets.
fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: in WAL mode the log is synced at every commit, so a commit is on
    // disk before it returns and the server can acknowledge it: a response
    // is sent only after the round it reports is durable.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Makes a one-time token for `case` and records its hash, audited as
/// made by `by` (a coordinator's device) or by the operator (`None`).
/// Returns the token and its expiry.
fn insert_invite(
    tx: &Connection,
    case: &CaseRecord,
    role: DeviceRole,
    ttl: Duration,
    by: Option<&DeviceId>,
) -> Result<(String, String), StoreError> {
    let token = random_token()?;
    let token_hash = token_hash(&token);
    let created = Utc::now();
    let ttl = chrono::Duration::from_std(ttl.min(MAX_INVITE_TTL))
        .map_err(|_| StoreError::Corrupt("invite lifetime out of range".into()))?;
    let expires_at = time_text(created + ttl);
    tx.execute(
        "INSERT INTO invites (token_hash, case_id, role, created_at, expires_at, used_at, used_by)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL)",
        params![
            token_hash,
            case.id.as_str(),
            role.as_str(),
            time_text(created),
            expires_at
        ],
    )?;
    write_audit(
        tx,
        "invite",
        by,
        &format!(
            "case {} role {} expires {expires_at} token sha256 {}",
            case.name,
            role.as_str(),
            &token_hash[..16]
        ),
    )?;
    Ok((token, expires_at))
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found: version });
    }
    if version < 1 {
        tx.execute_batch(
            "CREATE TABLE cases (
                 id TEXT PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 created_at TEXT NOT NULL);
             CREATE TABLE invites (
                 token_hash TEXT PRIMARY KEY,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 role TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 expires_at TEXT NOT NULL,
                 used_at TEXT,
                 used_by TEXT) WITHOUT ROWID;
             CREATE TABLE devices (
                 device_id TEXT PRIMARY KEY,
                 public_key BLOB NOT NULL UNIQUE,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 role TEXT NOT NULL,
                 enrolled_at TEXT NOT NULL,
                 revoked_at TEXT);
             CREATE INDEX devices_case ON devices(case_id, enrolled_at);
             CREATE TABLE documents (
                 id TEXT PRIMARY KEY,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 creator TEXT NOT NULL,
                 snapshot BLOB NOT NULL,
                 heads TEXT NOT NULL,
                 last_seq INTEGER NOT NULL);
             CREATE TABLE changes (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 doc_id TEXT NOT NULL REFERENCES documents(id),
                 hash TEXT NOT NULL,
                 bytes BLOB NOT NULL,
                 author_device TEXT NOT NULL,
                 signature BLOB NOT NULL,
                 received_at TEXT NOT NULL,
                 UNIQUE (doc_id, hash));
             CREATE INDEX changes_feed ON changes(case_id, seq);
             CREATE TABLE timeline (
                 report_id TEXT PRIMARY KEY REFERENCES documents(id),
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 occurred_utc TEXT,
                 occurred_at TEXT,
                 approximate INTEGER NOT NULL,
                 place TEXT NOT NULL,
                 title TEXT NOT NULL,
                 search_text TEXT NOT NULL,
                 status TEXT NOT NULL,
                 tags TEXT NOT NULL,
                 reporter TEXT NOT NULL,
                 updated_at TEXT NOT NULL);
             CREATE INDEX timeline_order ON timeline(case_id, occurred_utc, report_id);
             CREATE TABLE nonces (
                 device_id TEXT NOT NULL,
                 nonce TEXT NOT NULL,
                 ts INTEGER NOT NULL,
                 PRIMARY KEY (device_id, nonce)) WITHOUT ROWID;
             CREATE INDEX nonces_ts ON nonces(ts);
             CREATE TABLE audit_log (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 at TEXT NOT NULL,
                 event TEXT NOT NULL,
                 device_id TEXT,
                 detail TEXT NOT NULL);
             PRAGMA user_version = 1;",
        )?;
    }
    if version < 2 {
        tx.execute_batch(
            "CREATE TABLE uploads (
                 id TEXT PRIMARY KEY,
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 device_id TEXT NOT NULL REFERENCES devices(device_id),
                 blob_id TEXT NOT NULL,
                 report_id TEXT NOT NULL REFERENCES documents(id),
                 length INTEGER NOT NULL,
                 created_at TEXT NOT NULL,
                 expires_at TEXT NOT NULL,
                 completed_at TEXT,
                 deduplicated INTEGER NOT NULL);
             CREATE INDEX uploads_device ON uploads(device_id, blob_id);
             CREATE INDEX uploads_expiry ON uploads(expires_at) WHERE completed_at IS NULL;
             CREATE TABLE blobs (
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 blob_id TEXT NOT NULL,
                 size INTEGER NOT NULL,
                 uploaded_by TEXT NOT NULL,
                 report_id TEXT NOT NULL,
                 stored_at TEXT NOT NULL,
                 PRIMARY KEY (case_id, blob_id)) WITHOUT ROWID;
             CREATE TABLE blob_refs (
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 blob_id TEXT NOT NULL,
                 report_id TEXT NOT NULL REFERENCES documents(id),
                 device_id TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 PRIMARY KEY (case_id, blob_id, report_id)) WITHOUT ROWID;
             PRAGMA user_version = 2;",
        )?;
    }
    if version < 3 {
        // The review app shows coordinates and a report's own timeline
        // entries in the case timeline, and keeps browser sessions.
        tx.execute_batch(
            "ALTER TABLE timeline ADD COLUMN lat REAL;
             ALTER TABLE timeline ADD COLUMN lon REAL;
             ALTER TABLE timeline ADD COLUMN entries TEXT NOT NULL DEFAULT '[]';
             CREATE TABLE web_sessions (
                 cookie_hash TEXT PRIMARY KEY,
                 device_id TEXT NOT NULL REFERENCES devices(device_id),
                 session_key TEXT NOT NULL,
                 certificate BLOB NOT NULL,
                 nonce TEXT NOT NULL UNIQUE,
                 csrf TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 expires_at INTEGER NOT NULL,
                 ended_at TEXT);
             CREATE INDEX web_sessions_device ON web_sessions(device_id);",
        )?;
        reproject_places_and_entries(&tx)?;
        tx.execute_batch("PRAGMA user_version = 3;")?;
    }
    if version < 4 {
        // A tag filter read every row of the case in timeline order until it
        // had a page: 30-40 ms for a tag one report in a hundred carries,
        // seconds for a rare tag in a large case. Each (report, tag) now has
        // an entry in timeline order, kept by triggers from the timeline row
        // (tags folded as the filter folds them: SQLite's ASCII lower()).
        tx.execute_batch(
            "CREATE TABLE timeline_tags (
                 report_id TEXT NOT NULL,
                 case_id TEXT NOT NULL,
                 tag TEXT NOT NULL,
                 occurred_utc TEXT);
             CREATE INDEX timeline_tags_order
                 ON timeline_tags(case_id, tag, occurred_utc, report_id);
             CREATE INDEX timeline_tags_report ON timeline_tags(report_id);
             CREATE TRIGGER timeline_tags_insert AFTER INSERT ON timeline BEGIN
                 INSERT INTO timeline_tags (report_id, case_id, tag, occurred_utc)
                 SELECT DISTINCT new.report_id, new.case_id, lower(value), new.occurred_utc
                 FROM json_each(new.tags);
             END;
             CREATE TRIGGER timeline_tags_update
             AFTER UPDATE OF case_id, occurred_utc, tags ON timeline BEGIN
                 DELETE FROM timeline_tags WHERE report_id = old.report_id;
                 INSERT INTO timeline_tags (report_id, case_id, tag, occurred_utc)
                 SELECT DISTINCT new.report_id, new.case_id, lower(value), new.occurred_utc
                 FROM json_each(new.tags);
             END;
             CREATE TRIGGER timeline_tags_delete AFTER DELETE ON timeline BEGIN
                 DELETE FROM timeline_tags WHERE report_id = old.report_id;
             END;
             INSERT INTO timeline_tags (report_id, case_id, tag, occurred_utc)
             SELECT DISTINCT t.report_id, t.case_id, lower(j.value), t.occurred_utc
             FROM timeline t, json_each(t.tags) j;
             PRAGMA user_version = 4;",
        )?;
    }
    if version < 5 {
        // The feed skips a reader's own changes by the key that signed them
        // (a coordinator's device must receive what its browser sessions
        // wrote, which are attributed to it), and a reporter's feed reads
        // only the reports it created, through an index, instead of
        // scanning the whole case. Before this schema only web sessions
        // signed with a key other than the author's, and their signatures
        // are the only ones of 228 bytes.
        tx.execute_batch(
            "ALTER TABLE changes ADD COLUMN actor_device TEXT NOT NULL DEFAULT '';
             ALTER TABLE changes ADD COLUMN doc_creator TEXT NOT NULL DEFAULT '';
             UPDATE changes SET
                 actor_device = author_device,
                 doc_creator = (SELECT creator FROM documents d WHERE d.id = changes.doc_id);
             CREATE INDEX changes_creator_feed ON changes(case_id, doc_creator, seq);",
        )?;
        set_web_session_actors(&tx)?;
        tx.execute_batch("PRAGMA user_version = 5;")?;
    }
    if version < 6 {
        // A secret per case for the ids of imported reports (issue 14,
        // finding 10): they derived from the case, the file's name and
        // the row alone, which a reporter could know and take first.
        tx.execute_batch("ALTER TABLE cases ADD COLUMN import_salt TEXT;")?;
        let ids: Vec<String> = tx
            .prepare("SELECT id FROM cases")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in ids {
            tx.execute(
                "UPDATE cases SET import_salt = ?2 WHERE id = ?1",
                params![id, random_token()?],
            )?;
        }
        tx.execute_batch("PRAGMA user_version = 6;")?;
    }
    if version < 7 {
        // Case public keys (issue 14): each epoch's key as a coordinator's
        // device published it, with its signature; never replaced.
        tx.execute_batch(
            "CREATE TABLE case_public_keys (
                 case_id TEXT NOT NULL REFERENCES cases(id),
                 epoch INTEGER NOT NULL,
                 public_key BLOB NOT NULL,
                 signer TEXT NOT NULL REFERENCES devices(device_id),
                 signature BLOB NOT NULL,
                 published_at TEXT NOT NULL,
                 PRIMARY KEY (case_id, epoch)) WITHOUT ROWID;
             PRAGMA user_version = 7;",
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Sets the actor of each stored web-session change (schema 5) to its
/// session key's device id, read from the certificate in its signature.
fn set_web_session_actors(tx: &Connection) -> Result<(), StoreError> {
    let mut select =
        tx.prepare("SELECT seq, signature FROM changes WHERE length(signature) = ?1")?;
    let mut update = tx.prepare("UPDATE changes SET actor_device = ?2 WHERE seq = ?1")?;
    let mut rows = select.query([sql_count(DELEGATED_SIGNATURE_LEN)])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let signature: Vec<u8> = row.get(1)?;
        let cert = LoginCertificate::parse(&signature[..CERT_LEN])
            .map_err(|e| StoreError::Corrupt(format!("change {seq}: {e}")))?;
        update.execute(params![seq, cert.session.device_id().as_str()])?;
    }
    Ok(())
}

/// Fills the timeline columns added in schema 3 from the stored documents.
fn reproject_places_and_entries(tx: &Connection) -> Result<(), StoreError> {
    let mut select = tx.prepare("SELECT id, snapshot FROM documents")?;
    let mut update =
        tx.prepare("UPDATE timeline SET lat = ?2, lon = ?3, entries = ?4 WHERE report_id = ?1")?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let snapshot: Vec<u8> = row.get(1)?;
        let Ok(doc) = Automerge::load(&snapshot) else {
            tracing::warn!(report = %id, "stored document does not load; its timeline row keeps no coordinates");
            continue;
        };
        let Ok(report) = read_report(&doc) else {
            continue;
        };
        let p = Projection::of(&report)?;
        update.execute(params![id, p.lat, p.lon, p.entries])?;
    }
    Ok(())
}

fn validate_case_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CASE_NAME_BYTES
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidCaseName(shorten(name)))
    }
}

/// 256 random bits, base64url: invite tokens, session cookies, CSRF tokens.
fn random_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Now, RFC 3339 UTC with fixed-width microseconds, so text order is time order.
fn now_text() -> String {
    time_text(Utc::now())
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An instant in UTC with fixed-width nanoseconds, so text order is time order.
fn sortable_utc(t: &DateTime<FixedOffset>) -> String {
    t.with_timezone(&Utc)
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

fn format_heads(heads: &[ChangeHash]) -> String {
    fieldsync_core::heads::format(heads)
}

fn parse_heads(text: &str) -> Result<Vec<ChangeHash>, StoreError> {
    fieldsync_core::heads::parse(text)
        .map_err(|h| StoreError::Corrupt(format!("stored head {h:?}")))
}

/// Parses a value read back from the database.
fn parse_stored<T>(text: &str, what: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("stored {what} {:?}: {e}", shorten(text))))
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

/// At most 80 characters of a value from outside, for an error message.
fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn dump_value(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("x'{}'", hex::encode(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldsync_core::document::NewReport;
    use fieldsync_core::model::{Edit, Place};
    use fieldsync_core::protocol::DEFAULT_MAX_REQUEST_BYTES;
    use fieldsync_core::replica::{Replica, SyncSummary};
    use fieldsync_core::DeviceKey;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn raw(store: &Store) -> PooledConnection<SqliteConnectionManager> {
        store.conn().unwrap()
    }

    /// A device with its own replica, enrolled in `case` through an invite.
    struct Device {
        replica: Replica,
        record: DeviceRecord,
    }

    fn enroll(store: &Store, case: &str, role: DeviceRole) -> Device {
        let mut replica = Replica::open_in_memory().unwrap();
        replica.init_identity().unwrap();
        let key = replica.device_key().unwrap().unwrap().public_key();
        let token = store.create_invite(case, role, DAY).unwrap();
        let record = store.enroll(&token, &key).unwrap();
        Device { replica, record }
    }

    fn new_report(case: &CaseId, title: &str, occurred_at: &str) -> NewReport {
        NewReport::new(
            ReportId::random().unwrap(),
            case.clone(),
            title,
            t(occurred_at),
        )
    }

    fn sync(store: &Store, device: &mut Device) -> SyncSummary {
        let record = device.record.clone();
        device
            .replica
            .sync(
                DEFAULT_MAX_REQUEST_BYTES,
                |req| {
                    let req = SyncRequest::from_json(&req.to_json()).unwrap();
                    store.sync(&record, &req, ServerLimits::default())
                },
                |_| {},
            )
            .unwrap()
    }

    fn titles(page: &TimelinePage) -> Vec<&str> {
        page.reports.iter().map(|r| r.title.as_str()).collect()
    }

    #[test]
    fn a_new_data_directory_gets_the_current_schema_and_keeps_its_data_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data).unwrap();
        assert!(data.join("blobs").is_dir());
        assert!(data.join(DB_FILE).is_file());
        let case = store.create_case("rally").unwrap();
        {
            let conn = raw(&store);
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version, SCHEMA_VERSION);
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(sync, 2, "synchronous=FULL");
            let fk: i64 = conn
                .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
                .unwrap();
            assert_eq!(fk, 1);
        }
        let dump = store.dump().unwrap();
        drop(store);
        let again = Store::open(&data).unwrap();
        assert_eq!(again.dump().unwrap(), dump);
        let found = again.case_by_name("rally").unwrap().unwrap();
        assert_eq!(found.id, case.id);
        assert!(again.case_by_name("other").unwrap().is_none());
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[cfg(unix)]
    #[test]
    fn a_new_data_directory_is_readable_by_the_server_user_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data).unwrap();
        store.create_case("rally").unwrap();
        let wal = data.join(format!("{DB_FILE}-wal"));
        let shm = data.join(format!("{DB_FILE}-shm"));
        assert!(wal.is_file() && shm.is_file());
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("blobs")), 0o700);
        for file in [data.join(DB_FILE), wal, shm] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert!(secure_data_dir(&data).unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_data_directory_readable_by_others_is_reported_and_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        drop(Store::open(&data).unwrap());
        let wide = |path: &Path, m: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap()
        };
        wide(&data, 0o755);
        wide(&data.join(DB_FILE), 0o644);
        let reported = secure_data_dir(&data).unwrap();
        let seen: Vec<(PathBuf, u32)> = reported.iter().map(|t| (t.path.clone(), t.was)).collect();
        assert_eq!(
            seen,
            vec![(data.clone(), 0o755), (data.join(DB_FILE), 0o644)]
        );
        wide(&data.join("blobs"), 0o777);
        let store = Store::open(&data).unwrap();
        store.create_case("rally").unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("blobs")), 0o700);
        assert_eq!(mode(&data.join(DB_FILE)), 0o600);
    }

    #[test]
    fn a_database_from_a_newer_fieldsync_is_refused() {
        let (dir, store) = open();
        drop(store);
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(dir.path()).err().unwrap();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("update fieldsync"), "{err}");
    }

    #[test]
    fn a_data_directory_that_cannot_be_created_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = Store::open(&file.join("data")).err().unwrap();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("cannot create data directory"),
            "{err}"
        );
    }

    #[test]
    fn case_names_are_unique_and_validated() {
        let (_dir, store) = open();
        store.create_case("rally").unwrap();
        assert!(matches!(
            store.create_case("rally"),
            Err(StoreError::CaseExists(_))
        ));
        for bad in ["", " padded ", "line\nbreak"] {
            assert!(
                matches!(store.create_case(bad), Err(StoreError::InvalidCaseName(_))),
                "{bad:?}"
            );
        }
        let err = store
            .create_invite("nope", DeviceRole::Reporter, DAY)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "there is no case named nope; create it with `fieldsync admin case create nope`"
        );
        assert!(matches!(
            store.devices(Some("nope")),
            Err(StoreError::UnknownCase(_))
        ));
    }

    #[test]
    fn an_invited_device_enrolls_once_and_only_the_token_hash_is_stored() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let token = store
            .create_invite("rally", DeviceRole::Coordinator, DAY)
            .unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert!(!store.dump().unwrap().contains(&token));
        let key = DeviceKey::generate().unwrap().public_key();
        let record = store.enroll(&token, &key).unwrap();
        assert_eq!(record.device_id, key.device_id());
        assert_eq!(record.case_id, case.id);
        assert_eq!(record.case_name, "rally");
        assert_eq!(record.role, DeviceRole::Coordinator);
        assert_eq!(record.public_key, key);
        assert_eq!(record.public_key_hex, hex::encode(key.as_bytes()));
        assert!(record.revoked_at.is_none());
        assert!(DateTime::parse_from_rfc3339(&record.enrolled_at).is_ok());
        let json = serde_json::to_value(&record).unwrap();
        assert!(json.get("public_key").is_none());
        assert_eq!(json["role"], "coordinator");

        assert_eq!(
            store.device(&key.device_id()).unwrap().unwrap().case_name,
            "rally"
        );
        assert_eq!(store.devices(Some("rally")).unwrap().len(), 1);
        assert_eq!(store.devices(None).unwrap().len(), 1);

        // The same device with a second invite: already enrolled, and that
        // invite stays usable by another device.
        let second = store
            .create_invite("rally", DeviceRole::Reporter, DAY)
            .unwrap();
        let err = store.enroll(&second, &key).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyEnrolled(_)), "{err:?}");
        let other = DeviceKey::generate().unwrap().public_key();
        assert_eq!(
            store.enroll(&second, &other).unwrap().role,
            DeviceRole::Reporter
        );
        let listed: Vec<DeviceId> = store
            .devices(Some("rally"))
            .unwrap()
            .into_iter()
            .map(|d| d.device_id)
            .collect();
        assert_eq!(listed, vec![key.device_id(), other.device_id()]);

        let events: Vec<String> = store
            .audit_log()
            .unwrap()
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(
            events,
            [
                "case-create",
                "invite",
                "enroll",
                "invite",
                "enroll-refused",
                "enroll"
            ]
        );
    }

    #[test]
    fn the_same_key_enrolling_again_with_its_token_gets_the_same_answer_and_writes_nothing() {
        let (_dir, store) = open();
        store.create_case("rally").unwrap();
        let token = store
            .create_invite("rally", DeviceRole::Reporter, DAY)
            .unwrap();
        let phone = DeviceKey::generate().unwrap().public_key();
        let first = store.enroll(&token, &phone).unwrap();
        let before = store.dump().unwrap();
        // The answer was lost on the way; the phone asks again.
        let again = store.enroll(&token, &phone).unwrap();
        assert_eq!(again.device_id, first.device_id);
        assert_eq!(again.case_id, first.case_id);
        assert_eq!(store.dump().unwrap(), before);
        // Once revoked, the token opens nothing, not even for its own key.
        store.revoke(&first.device_id).unwrap();
        let err = store.enroll(&token, &phone).unwrap_err();
        assert!(matches!(err, StoreError::TokenUsed), "{err:?}");
    }

    #[test]
    fn a_used_token_is_refused_and_the_attempt_audited() {
        let (_dir, store) = open();
        store.create_case("rally").unwrap();
        let token = store
            .create_invite("rally", DeviceRole::Reporter, DAY)
            .unwrap();
        let first = DeviceKey::generate().unwrap().public_key();
        store.enroll(&token, &first).unwrap();
        let before = store.dump().unwrap();
        let second = DeviceKey::generate().unwrap().public_key();
        let err = store.enroll(&token, &second).unwrap_err();
        assert!(matches!(err, StoreError::TokenUsed), "{err:?}");
        assert!(err.to_string().contains("new invite"), "{err}");
        assert_eq!(store.dump().unwrap(), before);
        assert!(store.device(&second.device_id()).unwrap().is_none());
        let last = store.audit_log().unwrap().pop().unwrap();
        assert_eq!(last.1, "enroll-refused");
        assert_eq!(last.2.as_deref(), Some(second.device_id().as_str()));
        assert_eq!(last.3, "token already used");

        // A made-up token is refused and leaves no row: anyone can send one.
        let rows = store.audit_log().unwrap().len();
        let err = store.enroll("not-a-token", &second).unwrap_err();
        assert!(matches!(err, StoreError::InvalidToken), "{err:?}");
        assert_eq!(store.audit_log().unwrap().len(), rows);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let (_dir, store) = open();
        store.create_case("rally").unwrap();
        let key = DeviceKey::generate().unwrap().public_key();
        let instant = store
            .create_invite("rally", DeviceRole::Reporter, Duration::ZERO)
            .unwrap();
        assert!(matches!(
            store.enroll(&instant, &key),
            Err(StoreError::TokenExpired)
        ));

        // A day-long invite whose expiry has passed.
        let token = store
            .create_invite("rally", DeviceRole::Reporter, DAY)
            .unwrap();
        let (created, expires): (String, String) = raw(&store)
            .query_row(
                "SELECT created_at, expires_at FROM invites WHERE token_hash = ?1",
                [token_hash(&token)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let lifetime = DateTime::parse_from_rfc3339(&expires).unwrap()
            - DateTime::parse_from_rfc3339(&created).unwrap();
        assert_eq!(lifetime, chrono::Duration::days(1));
        let past = time_text(Utc::now() - chrono::Duration::seconds(1));
        raw(&store)
            .execute(
                "UPDATE invites SET expires_at = ?2 WHERE token_hash = ?1",
                params![token_hash(&token), past],
            )
            .unwrap();
        let err = store.enroll(&token, &key).unwrap_err();
        assert!(matches!(err, StoreError::TokenExpired), "{err:?}");
        assert!(store.device(&key.device_id()).unwrap().is_none());
        assert_eq!(store.audit_log().unwrap().pop().unwrap().3, "token expired");
    }

    #[test]
    fn a_revoked_device_keeps_its_first_revocation_time_and_is_refused_sync() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
        let id = reporter.record.device_id.clone();
        let revoked = store.revoke(&id).unwrap();
        let first = revoked.revoked_at.clone().unwrap();
        assert!(revoked.member().revoked);
        assert_eq!(store.revoke(&id).unwrap().revoked_at.unwrap(), first);
        assert_eq!(
            store.device(&id).unwrap().unwrap().revoked_at.unwrap(),
            first
        );
        let audit: Vec<String> = store
            .audit_log()
            .unwrap()
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(audit.iter().filter(|e| *e == "revoke").count(), 2);

        let unknown: DeviceId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        assert!(matches!(
            store.revoke(&unknown),
            Err(StoreError::UnknownDevice(_))
        ));

        // The record the caller holds is stale; the store reads it afresh.
        reporter
            .replica
            .create_report(&new_report(
                &case.id,
                "after seizure",
                "2024-05-01T10:00:00Z",
            ))
            .unwrap();
        let plan = reporter
            .replica
            .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
            .unwrap();
        let before = store.dump().unwrap();
        let err = store
            .sync(&reporter.record, &plan.request, ServerLimits::default())
            .unwrap_err();
        assert!(
            matches!(err, SyncStoreError::Sync(SyncError::Revoked)),
            "{err:?}"
        );
        assert_eq!(store.dump().unwrap(), before);
    }

    #[test]
    fn a_replayed_nonce_is_detected_and_old_nonces_are_forgotten() {
        let (_dir, store) = open();
        let a: DeviceId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let b: DeviceId = "fedcba9876543210fedcba9876543210".parse().unwrap();
        let now = Utc::now().timestamp();
        assert!(store.use_nonce(&a, "n1", now, 300).unwrap());
        assert!(!store.use_nonce(&a, "n1", now, 300).unwrap());
        assert!(
            store.use_nonce(&b, "n1", now, 300).unwrap(),
            "nonces are per device"
        );
        assert!(store.use_nonce(&a, "n2", now, 300).unwrap());
        // Too old to remember: never taken as fresh.
        assert!(!store.use_nonce(&a, "n3", now - 601, 300).unwrap());
        raw(&store)
            .execute(
                "UPDATE nonces SET ts = ?1 WHERE nonce = 'n2'",
                [now - 10_000],
            )
            .unwrap();
        store.use_nonce(&a, "n4", now, 300).unwrap();
        let left: Vec<String> = raw(&store)
            .prepare("SELECT nonce FROM nonces WHERE device_id = ?1 ORDER BY nonce")
            .unwrap()
            .query_map([a.as_str()], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, ["n1", "n4"]);
    }

    #[test]
    fn concurrent_writers_queue_for_the_lock_instead_of_failing() {
        let (_dir, store) = open();
        let device: DeviceId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let now = Utc::now().timestamp();
        std::thread::scope(|s| {
            for thread in 0..8 {
                let (store, device) = (&store, &device);
                s.spawn(move || {
                    for i in 0..25 {
                        let nonce = format!("{thread}-{i}");
                        assert!(store.use_nonce(device, &nonce, now, 300).unwrap());
                        store.audit("test", Some(device), &nonce).unwrap();
                    }
                });
            }
        });
        assert_eq!(store.audit_log().unwrap().len(), 200);
    }

    #[test]
    fn a_reporters_reports_reach_the_coordinator_and_the_timeline_in_time_order() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
        let mut coordinator = enroll(&store, "rally", DeviceRole::Coordinator);

        // Local clock order differs from UTC order.
        let mut late = new_report(
            &case.id,
            "Kettled at the square",
            "2024-05-01T07:00:00-03:00",
        ); // 10:00Z
        late.tags = vec!["kettling".into()];
        late.place = Place {
            name: "Freedom Square".into(),
            lat: None,
            lon: None,
        };
        let mut early = new_report(
            &case.id,
            "Arrests at the bus stop",
            "2024-05-01T10:00:00+02:00",
        ); // 08:00Z
        early.tags = vec!["arrest".into()];
        early.description = "Two officers, badge 4471, took a MEDIC away".into();
        let mut middle = new_report(&case.id, "Water cannon", "2024-05-01T09:30:00+00:00"); // 09:30Z
        middle.tags = vec!["arrest".into(), "water-cannon".into()];
        for new in [&late, &early, &middle] {
            reporter.replica.create_report(new).unwrap();
        }
        reporter
            .replica
            .edit_report(&early.id, &[Edit::AddTag("injury".into())])
            .unwrap();

        let sent = sync(&store, &mut reporter);
        assert_eq!((sent.sent, sent.received), (4, 0));
        let got = sync(&store, &mut coordinator);
        assert_eq!((got.received, got.new_reports), (4, 3));
        for id in [&late.id, &early.id, &middle.id] {
            assert_eq!(
                coordinator.replica.report(id).unwrap(),
                reporter.replica.report(id).unwrap()
            );
        }
        let again = sync(&store, &mut coordinator);
        assert_eq!((again.sent, again.received), (0, 0));

        let all = store.timeline(&case.id, &TimelineQuery::default()).unwrap();
        assert_eq!(
            titles(&all),
            [
                "Arrests at the bus stop",
                "Water cannon",
                "Kettled at the square"
            ]
        );
        assert!(all.next.is_none());
        let first = &all.reports[0];
        assert_eq!(first.report_id, early.id.as_str());
        assert_eq!(
            first.occurred_at.as_deref(),
            Some("2024-05-01T10:00:00+02:00")
        );
        assert_eq!(first.tags, ["arrest", "injury"]);
        assert_eq!(first.status, "unverified");
        assert_eq!(first.reporter, reporter.record.device_id.as_str());
        assert_eq!(all.reports[2].place, "Freedom Square");

        let query = |q: TimelineQuery| {
            titles(&store.timeline(&case.id, &q).unwrap())
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            query(TimelineQuery {
                tag: Some("ARREST".into()),
                ..Default::default()
            }),
            ["Arrests at the bus stop", "Water cannon"]
        );
        assert_eq!(
            query(TimelineQuery {
                text: Some("medic".into()),
                ..Default::default()
            }),
            ["Arrests at the bus stop"]
        );
        assert_eq!(
            query(TimelineQuery {
                text: Some("freedom sq".into()),
                ..Default::default()
            }),
            ["Kettled at the square"]
        );
        assert_eq!(
            query(TimelineQuery {
                from: Some("2024-05-01T11:00:00+02:00".into()), // 09:00Z
                to: Some("2024-05-01T09:30:00Z".into()),
                ..Default::default()
            }),
            ["Water cannon"]
        );
        assert_eq!(
            query(TimelineQuery {
                reporter: Some(coordinator.record.device_id.to_string()),
                ..Default::default()
            }),
            Vec::<String>::new()
        );

        // The coordinator verifies one report; the projection follows.
        coordinator
            .replica
            .edit_report(
                &middle.id,
                &[Edit::SetReview {
                    status: ReviewStatus::Verified,
                    note: String::new(),
                    reviewer: coordinator.record.device_id.to_string(),
                    at: t("2024-05-02T12:00:00Z"),
                }],
            )
            .unwrap();
        sync(&store, &mut coordinator);
        assert_eq!(
            query(TimelineQuery {
                status: Some("verified".into()),
                ..Default::default()
            }),
            ["Water cannon"]
        );

        // Pages of two.
        let page1 = store
            .timeline(
                &case.id,
                &TimelineQuery {
                    limit: Some(2),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(titles(&page1), ["Arrests at the bus stop", "Water cannon"]);
        let page2 = store
            .timeline(
                &case.id,
                &TimelineQuery {
                    limit: Some(2),
                    after: page1.next.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(titles(&page2), ["Kettled at the square"]);
        assert!(page2.next.is_none());

        // Another case sees none of it.
        let other = store.create_case("other").unwrap();
        assert!(store
            .timeline(&other.id, &TimelineQuery::default())
            .unwrap()
            .reports
            .is_empty());
    }

    #[test]
    fn reports_without_a_time_sort_last_and_pages_cross_into_them() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
        for (title, at) in [("b", "2024-05-01T10:00:00Z"), ("a", "2024-05-01T09:00:00Z")] {
            reporter
                .replica
                .create_report(&new_report(&case.id, title, at))
                .unwrap();
        }
        sync(&store, &mut reporter);
        // Undated rows, as a report that does not read leaves them.
        {
            let conn = raw(&store);
            let source: String = conn
                .query_row("SELECT report_id FROM timeline LIMIT 1", [], |r| r.get(0))
                .unwrap();
            for (id, title) in [
                ("ffffffffffffffffffffffffffffffff", "undated 2"),
                ("00000000000000000000000000000000", "undated 1"),
            ] {
                conn.execute(
                    "INSERT INTO documents (id, case_id, creator, snapshot, heads, last_seq)
                     SELECT ?1, case_id, creator, snapshot, heads, last_seq FROM documents WHERE id = ?2",
                    params![id, source],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO timeline (report_id, case_id, occurred_utc, occurred_at, approximate,
                         place, title, search_text, status, tags, reporter, updated_at)
                     VALUES (?1, ?2, NULL, NULL, 0, '', ?3, '', '', '[]', '', '')",
                    params![id, case.id.as_str(), title],
                )
                .unwrap();
            }
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .timeline(
                    &case.id,
                    &TimelineQuery {
                        limit: Some(1),
                        after: after.clone(),
                        ..Default::default()
                    },
                )
                .unwrap();
            seen.extend(page.reports.iter().map(|r| r.title.clone()));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
            assert!(seen.len() <= 4, "{seen:?}");
        }
        assert_eq!(seen, ["a", "b", "undated 1", "undated 2"]);
        let ranged = store
            .timeline(
                &case.id,
                &TimelineQuery {
                    from: Some("2000-01-01T00:00:00Z".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(titles(&ranged), ["a", "b"]);
    }

    #[test]
    fn a_bad_timeline_query_says_which_parameter_is_wrong() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let cases = [
            (
                TimelineQuery {
                    from: Some("yesterday".into()),
                    ..Default::default()
                },
                "`from`",
            ),
            (
                TimelineQuery {
                    status: Some("maybe".into()),
                    ..Default::default()
                },
                "`status`",
            ),
            (
                TimelineQuery {
                    reporter: Some("bob".into()),
                    ..Default::default()
                },
                "`reporter`",
            ),
            (
                TimelineQuery {
                    after: Some("garbage!".into()),
                    ..Default::default()
                },
                "`after`",
            ),
        ];
        for (query, field) in cases {
            let err = store.timeline(&case.id, &query).unwrap_err();
            assert!(matches!(err, StoreError::BadQuery(_)), "{err:?}");
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn a_tampered_signature_refuses_the_whole_request_and_leaves_the_store_unchanged() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
        reporter
            .replica
            .create_report(&new_report(&case.id, "one", "2024-05-01T10:00:00Z"))
            .unwrap();
        let before = store.dump().unwrap();
        let mut plan = reporter
            .replica
            .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
            .unwrap();
        plan.request.docs[0].changes[0].signature[0] ^= 1;
        let err = store
            .sync(&reporter.record, &plan.request, ServerLimits::default())
            .unwrap_err();
        assert!(
            matches!(err, SyncStoreError::Sync(SyncError::InvalidChange { .. })),
            "{err:?}"
        );
        assert_eq!(store.dump().unwrap(), before);
    }

    #[test]
    fn a_request_refused_after_a_write_rolls_the_write_back() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let mut coordinator = enroll(&store, "rally", DeviceRole::Coordinator);
        let mut stranger = Replica::open_in_memory().unwrap();
        stranger.init_identity().unwrap();
        coordinator
            .replica
            .create_report(&new_report(&case.id, "good", "2024-05-01T10:00:00Z"))
            .unwrap();
        stranger
            .create_report(&new_report(&case.id, "planted", "2024-05-01T11:00:00Z"))
            .unwrap();
        let mut plan = coordinator
            .replica
            .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
            .unwrap();
        // The coordinator relays a report by a device not enrolled in the
        // case, after its own: its own is saved first, then the request
        // fails, and the saved report must go too.
        let stranger_offer = stranger.prepare_sync(DEFAULT_MAX_REQUEST_BYTES).unwrap();
        plan.request.docs.extend(stranger_offer.request.docs);
        let before = store.dump().unwrap();
        let err = store
            .sync(&coordinator.record, &plan.request, ServerLimits::default())
            .unwrap_err();
        assert!(
            matches!(err, SyncStoreError::Sync(SyncError::UnknownAuthor { .. })),
            "{err:?}"
        );
        assert_eq!(store.dump().unwrap(), before);
        // Without the stranger's report the same request goes through.
        plan.request.docs.truncate(1);
        store
            .sync(&coordinator.record, &plan.request, ServerLimits::default())
            .unwrap();
        assert_ne!(store.dump().unwrap(), before);
    }

    #[test]
    fn a_report_id_taken_in_another_case_is_refused_without_writing() {
        let (_dir, store) = open();
        let first = store.create_case("first").unwrap();
        let second = store.create_case("second").unwrap();
        let mut a = enroll(&store, "first", DeviceRole::Reporter);
        let mut b = enroll(&store, "second", DeviceRole::Reporter);
        let original = new_report(&first.id, "mine", "2024-05-01T10:00:00Z");
        a.replica.create_report(&original).unwrap();
        sync(&store, &mut a);
        let mut copy = new_report(&second.id, "hijack", "2024-05-01T10:00:00Z");
        copy.id = original.id.clone();
        b.replica.create_report(&copy).unwrap();
        let before = store.dump().unwrap();
        let plan = b.replica.prepare_sync(DEFAULT_MAX_REQUEST_BYTES).unwrap();
        // Refused as a second creation of a report, as in its own case: not
        // a storage failure (a 500 that told the device the id is taken
        // elsewhere).
        let response = store
            .sync(&b.record, &plan.request, ServerLimits::default())
            .unwrap();
        let answer = &response.docs[0];
        assert_eq!(answer.refused.len(), 1, "{answer:?}");
        assert_eq!(
            answer.refused[0].reason,
            fieldsync_core::protocol::Refusal::BadCreation
        );
        assert!(answer.heads.is_empty() && answer.changes.is_empty());
        assert_eq!(store.dump().unwrap(), before);
        assert_eq!(
            titles(
                &store
                    .timeline(&first.id, &TimelineQuery::default())
                    .unwrap()
            ),
            ["mine"]
        );
    }

    #[test]
    fn a_device_of_another_case_is_not_a_member_of_this_one() {
        let (_dir, store) = open();
        let first = store.create_case("first").unwrap();
        store.create_case("second").unwrap();
        let mut coordinator = enroll(&store, "first", DeviceRole::Coordinator);
        let mut outsider = enroll(&store, "second", DeviceRole::Coordinator);
        // The outsider writes a report claiming the first case, and the
        // first case's coordinator relays it.
        outsider
            .replica
            .create_report(&new_report(&first.id, "planted", "2024-05-01T10:00:00Z"))
            .unwrap();
        let plan = outsider
            .replica
            .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
            .unwrap();
        let err = store
            .sync(&coordinator.record, &plan.request, ServerLimits::default())
            .unwrap_err();
        assert!(
            matches!(err, SyncStoreError::Sync(SyncError::UnknownAuthor { .. })),
            "{err:?}"
        );
        let got = sync(&store, &mut coordinator);
        assert_eq!(got.received, 0);
    }

    /// Reports with tags, a place and a description, as a generator makes them.
    fn generated(case: &CaseId, n: usize) -> Vec<NewReport> {
        (0..n)
            .map(|i| {
                let mut new = new_report(case, &format!("Generated {i}"), "2024-05-01T10:00:00Z");
                new.occurred_at =
                    t("2024-05-01T10:00:00+06:00") + chrono::Duration::minutes(i as i64);
                new.place = Place {
                    name: "Republic square".into(),
                    lat: Some(43.25),
                    lon: Some(76.95),
                };
                new.description = format!("Held for {i} hours.");
                new.tags = vec!["arrest".into(), format!(" Tag{} ", i % 3)];
                new
            })
            .collect()
    }

    /// Columns of each table that a sync round and the generator write
    /// alike: all but the receipt times, and each snapshot as the document
    /// it loads as.
    fn stored_alike(store: &Store) -> Vec<String> {
        let conn = raw(store);
        let mut out = Vec::new();
        let mut docs = conn
            .prepare(
                "SELECT id, case_id, creator, snapshot, heads, last_seq FROM documents ORDER BY id",
            )
            .unwrap();
        let mut rows = docs.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let snapshot: Vec<u8> = r.get(3).unwrap();
            let saved = Automerge::load(&snapshot).unwrap().save();
            out.push(format!(
                "document {} {} {} {} {} {}",
                r.get::<_, String>(0).unwrap(),
                r.get::<_, String>(1).unwrap(),
                r.get::<_, String>(2).unwrap(),
                hex::encode(saved),
                r.get::<_, String>(4).unwrap(),
                r.get::<_, i64>(5).unwrap()
            ));
        }
        for (table, columns) in [
            ("changes", "seq, case_id, doc_id, hash, bytes, author_device, signature"),
            (
                "timeline",
                "report_id, case_id, occurred_utc, occurred_at, approximate, place, title, search_text, status, tags, reporter, lat, lon, entries",
            ),
        ] {
            let mut stmt = conn
                .prepare(&format!("SELECT {columns} FROM {table} ORDER BY 1"))
                .unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                let values: Vec<String> = (0..n).map(|i| dump_value(r.get_ref(i).unwrap())).collect();
                out.push(format!("{table} {}", values.join(" ")));
            }
        }
        out
    }

    #[test]
    fn generated_reports_are_stored_as_a_sync_round_stores_them() {
        let dir = tempfile::tempdir().unwrap();
        let (generated_dir, synced_dir) = (dir.path().join("generated"), dir.path().join("synced"));
        let store = Store::open(&generated_dir).unwrap();
        let case = store.create_case("rally").unwrap();
        let reporter = enroll(&store, "rally", DeviceRole::Reporter);
        let key = reporter.replica.device_key().unwrap().unwrap();
        // The same case and device in a second store. VACUUM INTO, not a
        // copy of the file: rows still in the write-ahead log would be
        // missing from a copy whenever the pool had not checkpointed yet.
        std::fs::create_dir_all(&synced_dir).unwrap();
        store
            .conn()
            .unwrap()
            .execute(
                "VACUUM INTO ?1",
                [synced_dir.join(DB_FILE).to_str().unwrap()],
            )
            .unwrap();
        drop(store);
        let (generated_store, synced_store) = (
            Store::open(&generated_dir).unwrap(),
            Store::open(&synced_dir).unwrap(),
        );

        let now = t("2026-11-23T10:00:00+01:00");
        let news = generated(&case.id, 5);
        let batch: Vec<(&DeviceKey, NewReport)> = news.iter().map(|n| (&key, n.clone())).collect();
        generated_store
            .import_generated_reports(&batch, now)
            .unwrap();
        let request = SyncRequest {
            version: fieldsync_core::protocol::PROTOCOL_VERSION,
            cursor: 0,
            docs: news
                .iter()
                .map(|new| fieldsync_core::protocol::DocOffer {
                    id: new.id.clone(),
                    base_heads: vec![],
                    changes: vec![ReportDocument::creating_change(&key, new, now).unwrap().0],
                })
                .collect(),
        };
        let response = synced_store
            .sync(&reporter.record, &request, ServerLimits::default())
            .unwrap();
        assert!(response.docs.iter().all(|d| d.refused.is_empty()));

        let generated = stored_alike(&generated_store);
        assert_eq!(generated.len(), 15);
        assert_eq!(generated, stored_alike(&synced_store));
    }

    #[test]
    fn generated_reports_sync_review_and_page_like_any_other() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let reporter = enroll(&store, "rally", DeviceRole::Reporter);
        let mut coordinator = enroll(&store, "rally", DeviceRole::Coordinator);
        let key = reporter.replica.device_key().unwrap().unwrap();
        let news = generated(&case.id, 30);
        for part in news.chunks(10) {
            let batch: Vec<(&DeviceKey, NewReport)> =
                part.iter().map(|n| (&key, n.clone())).collect();
            store
                .import_generated_reports(&batch, t("2026-11-23T10:00:00+01:00"))
                .unwrap();
        }
        let page = store
            .timeline(
                &case.id,
                &TimelineQuery {
                    tag: Some("TAG1".into()),
                    limit: Some(5),
                    ..TimelineQuery::default()
                },
            )
            .unwrap();
        assert_eq!(
            titles(&page),
            [
                "Generated 1",
                "Generated 4",
                "Generated 7",
                "Generated 10",
                "Generated 13"
            ]
        );
        assert_eq!(page.reports[0].reporter, key.device_id().as_str());

        assert_eq!(sync(&store, &mut coordinator).new_reports, 30);
        let id = news[4].id.clone();
        coordinator
            .replica
            .edit_report(
                &id,
                &[Edit::SetReview {
                    status: ReviewStatus::Verified,
                    note: String::new(),
                    reviewer: coordinator.record.device_id.to_string(),
                    at: t("2026-11-23T11:00:00+01:00"),
                }],
            )
            .unwrap();
        let summary = sync(&store, &mut coordinator);
        assert!(summary.refused.is_empty(), "{:?}", summary.refused);
        let verified = store
            .timeline(
                &case.id,
                &TimelineQuery {
                    status: Some("verified".into()),
                    ..TimelineQuery::default()
                },
            )
            .unwrap();
        assert_eq!(titles(&verified), ["Generated 4"]);
    }

    #[test]
    fn a_generated_report_is_refused_whole_batch_and_all_unless_its_author_may_write_it() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let other = store.create_case("other").unwrap();
        let reporter = enroll(&store, "rally", DeviceRole::Reporter);
        let key = reporter.replica.device_key().unwrap().unwrap();
        let stranger = DeviceKey::generate().unwrap();
        let now = t("2026-11-23T10:00:00+01:00");
        let good = generated(&case.id, 2);
        store
            .import_generated_reports(&[(&key, good[0].clone())], now)
            .unwrap();
        let before = store.dump().unwrap();
        let refused = [
            (&key, generated(&other.id, 1).remove(0)),
            (&key, good[0].clone()),
            (&stranger, generated(&case.id, 1).remove(0)),
        ];
        for bad in refused {
            let err = store
                .import_generated_reports(&[(&key, good[1].clone()), bad], now)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::GeneratedReport { .. } | StoreError::UnknownDevice(_)
                ),
                "{err:?}"
            );
            assert_eq!(store.dump().unwrap(), before);
        }
        store.revoke(&reporter.record.device_id).unwrap();
        let err = store
            .import_generated_reports(&[(&key, good[1].clone())], now)
            .unwrap_err();
        assert!(err.to_string().contains("revoked"), "{err}");
    }

    /// Every page of a tag's reports, `limit` at a time: the titles.
    fn tag_pages(store: &Store, case: &CaseId, tag: &str, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .timeline(
                    case,
                    &TimelineQuery {
                        tag: Some(tag.into()),
                        after: after.clone(),
                        limit: Some(limit),
                        ..TimelineQuery::default()
                    },
                )
                .unwrap();
            out.extend(titles(&page).into_iter().map(str::to_owned));
            match page.next {
                Some(next) => after = Some(next),
                None => return out,
            }
        }
    }

    #[test]
    fn a_version_3_database_gets_its_tag_index_on_upgrade_and_keeps_it() {
        let (dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
        let tagged = [
            (
                "Arrest at the bus stop",
                "2024-05-01T10:00:00Z",
                vec!["Arrest", "rally"],
            ),
            ("Water cannon", "2024-05-01T09:00:00Z", vec!["arrest"]),
            ("Kettled", "2024-05-01T11:00:00Z", vec![]),
            (
                "Detained again",
                "2024-05-01T10:00:00Z",
                vec!["ARREST", "arrest "],
            ),
        ];
        let mut ids = Vec::new();
        for (title, at, tags) in &tagged {
            let mut new = new_report(&case.id, title, at);
            new.tags = tags.iter().map(|t| t.to_string()).collect();
            ids.push(reporter.replica.create_report(&new).unwrap());
        }
        sync(&store, &mut reporter);
        let before = tag_pages(&store, &case.id, "arrest", 1);
        assert_eq!(before.len(), 3);
        assert_eq!(before[0], "Water cannon");
        // What schema 3 had: the timeline without its tag index (and
        // changes without the feed columns of schema 5, cases without the
        // import salt of schema 6, no case public keys of schema 7).
        raw(&store)
            .execute_batch(
                "DROP TRIGGER timeline_tags_insert;
                 DROP TRIGGER timeline_tags_update;
                 DROP TRIGGER timeline_tags_delete;
                 DROP TABLE timeline_tags;
                 DROP INDEX changes_creator_feed;
                 ALTER TABLE changes DROP COLUMN actor_device;
                 ALTER TABLE changes DROP COLUMN doc_creator;
                 ALTER TABLE cases DROP COLUMN import_salt;
                 DROP TABLE case_public_keys;
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        let conn = raw(&store);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(
            store.import_salt(&case.id).is_ok(),
            "schema 6 gave the case a salt"
        );
        let entries: i64 = conn
            .query_row("SELECT count(*) FROM timeline_tags", [], |r| r.get(0))
            .unwrap();
        assert_eq!(entries, 4, "arrest three times, rally once");
        drop(conn);
        assert_eq!(tag_pages(&store, &case.id, "ARREST", 1), before);
        assert_eq!(tag_pages(&store, &case.id, "arrest", 100), before);
        assert_eq!(
            tag_pages(&store, &case.id, "rally", 2),
            ["Arrest at the bus stop"]
        );

        // Later rounds keep the entries: a tag removed, one added, a time moved.
        reporter
            .replica
            .edit_report(&ids[0], &[Edit::RemoveTag("Arrest".into())])
            .unwrap();
        reporter
            .replica
            .edit_report(&ids[2], &[Edit::AddTag("Arrest".into())])
            .unwrap();
        reporter
            .replica
            .edit_report(
                &ids[1],
                &[Edit::SetOccurredAt {
                    at: t("2024-05-01T12:00:00Z"),
                    approximate: false,
                }],
            )
            .unwrap();
        sync(&store, &mut reporter);
        assert_eq!(
            tag_pages(&store, &case.id, "arrest", 1),
            ["Detained again", "Kettled", "Water cannon"]
        );
    }

    #[test]
    fn each_feed_reads_through_its_index_in_feed_order() {
        let (_dir, store) = open();
        let conn = raw(&store);
        for (sql, index) in [
            (REPORTER_FEED, "changes_creator_feed"),
            (COORDINATOR_FEED, "changes_feed"),
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params!["c", 0, 10, "d"], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("; ");
            assert!(plan.contains(index), "{plan}");
            assert!(
                !plan.contains("TEMP B-TREE"),
                "no sort of the whole range: {plan}"
            );
        }
    }

    #[test]
    fn a_tag_filter_reads_the_tag_index_not_every_row() {
        let (_dir, store) = open();
        let case = store.create_case("rally").unwrap();
        let conn = raw(&store);
        let mut sql = format!(
            "EXPLAIN QUERY PLAN {TIMELINE_SELECT} FROM timeline_tags k CROSS JOIN timeline t ON t.report_id = k.report_id WHERE k.case_id = ? AND k.occurred_utc IS NOT NULL"
        );
        let mut args = vec![Value::from(case.id.as_str().to_owned())];
        let filter = TimelineFilter::parse(&TimelineQuery {
            tag: Some("arrest".into()),
            status: Some("verified".into()),
            ..TimelineQuery::default()
        })
        .unwrap();
        filter.push(&mut sql, &mut args, "k");
        sql.push_str(" ORDER BY k.occurred_utc, k.report_id LIMIT 101");
        let mut stmt = conn.prepare(&sql).unwrap();
        let plan: Vec<String> = stmt
            .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains("INDEX timeline_tags_order (case_id=? AND tag=?"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
    }
}
