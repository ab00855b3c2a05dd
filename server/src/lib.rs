//! fieldsync-server: the HTTP API (actix-web), the SQLite server store and
//! the attachment blob store.
//!
//! It runs the core's sync algorithm behind an endpoint and must never hold
//! a case key or an attachment's plaintext, never acknowledge a change
//! before it is durably committed, and never send storage error text to a
//! client.
//!
//! Start it with [`run`] on a bound listener; tests bind `127.0.0.1:0`.

pub mod audit;
pub mod blob_store;
pub mod http;
pub mod keys_api;
pub mod phone_app;
pub mod public_origin;
pub mod refusal_log;
pub mod store;
pub mod uploads;
pub mod web;
pub mod web_assets;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{App, HttpServer};
use fieldsync_core::protocol::{DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESPONSE_BYTES};
use fieldsync_core::request_auth::DEFAULT_WINDOW_SECS;

pub use store::{Store, StoreError};

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
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
    /// (see [`public_origin`]); off unless `serve --trust-proxy`.
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

/// Opens the store and starts serving on `listener`. The returned server
/// is a future; it stops gracefully on SIGTERM or SIGINT.
///
/// Before it serves, expired uploads and partial files that belong to no
/// upload are removed; a background thread then removes expired uploads
/// periodically (see [`uploads::sweep_interval`]). The audit log is pruned
/// to its retention at start and hourly by another (`audit.rs`).
pub fn run(listener: TcpListener, config: Config) -> Result<actix_web::dev::Server, StoreError> {
    let store = Store::open(&config.data_dir)?;
    let blobs = blob_store::BlobStore::open(&config.data_dir).map_err(|e| StoreError::Io {
        path: e.path,
        source: e.source,
    })?;
    let state = Arc::new(http::AppState {
        store,
        blobs,
        config,
    });
    uploads::sweep_at_start(&state);
    uploads::spawn_sweeper(Arc::downgrade(&state));
    audit::prune(&state.store, state.config.audit_retention_days);
    audit::spawn_upkeep(Arc::downgrade(&state));
    let state = actix_web::web::Data::from(state);
    let server = HttpServer::new(move || {
        let mut headers = actix_web::middleware::DefaultHeaders::new();
        for header in web::SECURITY_HEADERS {
            headers = headers.add(header);
        }
        App::new()
            .wrap(headers)
            .app_data(state.clone())
            .configure(http::routes)
            .configure(web::routes)
            .configure(phone_app::routes)
    })
    .listen(listener)
    .map_err(|source| StoreError::Io {
        path: "listener".into(),
        source,
    })?
    .run();
    Ok(server)
}
