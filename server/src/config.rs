//! How the server runs: the options of `fieldsync serve`, with their
//! defaults.

use std::path::PathBuf;

use crate::blob_store::BlobLocation;
use fieldsync_core::protocol::{DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESPONSE_BYTES};
use fieldsync_core::request_auth::DEFAULT_WINDOW_SECS;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// A PostgreSQL URL (`serve --database`); without one the store is
    /// SQLite in `data_dir`.
    pub database: Option<String>,
    /// Where attachment ciphertext is kept: the data directory, or a
    /// bucket (`--blobs s3://BUCKET/PREFIX`).
    pub blobs: BlobLocation,
    /// Largest request body accepted (413 beyond).
    pub max_request_bytes: usize,
    /// Budget for the feed part of a sync response.
    pub max_response_bytes: usize,
    /// How far a request's clock may be from the server's.
    pub auth_window_secs: i64,
    /// Largest blob (attachment ciphertext) accepted, in bytes (413 beyond).
    pub max_blob_bytes: u64,
    /// Most bytes of uploads, complete and in progress, one device may hold.
    pub device_quota_bytes: u64,
    /// An incomplete upload untouched this long is deleted, bytes and all.
    pub upload_expiry_secs: u64,
    /// Believe a reverse proxy's `Forwarded` / `X-Forwarded-*` headers
    /// (see `public_origin.rs`); off unless `serve --trust-proxy`.
    pub trust_proxy: bool,
    /// Audit log rows older than this many days are deleted.
    pub audit_retention_days: u32,
}

/// Default [`Config::max_blob_bytes`]: 4 GiB.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 4 << 30;
/// Default [`Config::device_quota_bytes`]: 16 GiB.
pub const DEFAULT_DEVICE_QUOTA_BYTES: u64 = 16 << 30;
/// Default [`Config::upload_expiry_secs`]: 7 days.
pub const DEFAULT_UPLOAD_EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// Default [`Config::audit_retention_days`]: 90 days, long enough to look
/// into a seized phone or a leaked invite weeks after the fact (people
/// learn of a seizure late, a detained reporter may be held for weeks),
/// short enough that the log does not become a long record of when each
/// reporter was active for whoever seizes the server.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 90;

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            database: None,
            blobs: BlobLocation::DataDir,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            auth_window_secs: DEFAULT_WINDOW_SECS,
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            device_quota_bytes: DEFAULT_DEVICE_QUOTA_BYTES,
            upload_expiry_secs: DEFAULT_UPLOAD_EXPIRY_SECS,
            trust_proxy: false,
            audit_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
        }
    }
}
