//! fieldsync-server: the server that devices of a case sync with. It runs
//! the core's sync algorithm behind an HTTP API (actix-web, `api/`), keeps
//! the case's reports in a SQLite store (`store/`), and keeps attachment
//! ciphertext in a blob store (`blob_store/`, with the upload rules of
//! `tus.rs`). It also serves the review web app and the phone app's files.
//!
//! Architecture invariant: the server never sees a plaintext attachment,
//! a case private key or a session's private key; it never acknowledges a
//! change before it is durably committed, and never sends storage error
//! text to a client. The store knows no HTTP and names no command to run;
//! handlers hold no SQL and reach the store only through the traits of
//! `store/traits.rs`.
//!
//! Start it with [`run`] on a bound listener; tests bind `127.0.0.1:0`.

pub mod api;
pub mod blob_store;
pub mod config;
pub mod data_dir;
pub mod phone_app;
pub mod public_origin;
pub mod refusal_log;
pub mod store;
pub mod tus;
pub mod upkeep;
pub mod web_assets;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer};

pub use config::{
    Config, DEFAULT_AUDIT_RETENTION_DAYS, DEFAULT_DEVICE_QUOTA_BYTES, DEFAULT_MAX_BLOB_BYTES,
    DEFAULT_UPLOAD_EXPIRY_SECS,
};
pub use store::{ServerStorage, Store, StoreError};

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data directory {}: {source}", dir.display())]
    Store {
        dir: std::path::PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot open the blob storage ({location}): {source}")]
    Blobs {
        location: blob_store::BlobLocation,
        #[source]
        source: Box<blob_store::BlobStoreError>,
    },
    #[error("cannot serve on the listener: {0}")]
    Listen(#[source] std::io::Error),
}

/// Opens the store and starts serving on `listener`. The returned server
/// is a future; it stops gracefully on SIGTERM or SIGINT.
///
/// Before it serves, expired uploads and partial files that belong to no
/// upload are removed; a background thread then removes expired uploads
/// periodically (see [`tus::sweep_interval`]). The audit log is pruned
/// to its retention at start and hourly by another (`upkeep.rs`).
pub fn run(listener: TcpListener, config: Config) -> Result<actix_web::dev::Server, StartError> {
    let store = Store::open(&config.data_dir).map_err(|source| StartError::Store {
        dir: config.data_dir.clone(),
        source,
    })?;
    let blobs = blob_store::BlobStore::open(&config.data_dir, &config.blobs).map_err(|source| {
        StartError::Blobs {
            location: config.blobs.clone(),
            source: Box::new(source),
        }
    })?;
    let store: Arc<dyn ServerStorage> = Arc::new(store);
    upkeep::sweep_at_start(store.as_ref(), &blobs);
    upkeep::spawn_sweeper(
        Arc::downgrade(&store),
        blobs.clone(),
        config.upload_expiry_secs,
    );
    upkeep::prune(store.as_ref(), config.audit_retention_days);
    upkeep::spawn_upkeep(Arc::downgrade(&store), config.audit_retention_days);
    let state = Arc::new(api::AppState {
        store,
        blobs,
        config,
        sync_rounds: api::sync_round_gate(),
    });
    let state = actix_web::web::Data::from(state);
    let server = HttpServer::new(move || {
        let mut headers = actix_web::middleware::DefaultHeaders::new();
        for header in api::SECURITY_HEADERS {
            headers = headers.add(header);
        }
        App::new()
            .wrap(headers)
            .app_data(state.clone())
            .configure(api::routes)
            .configure(phone_app::routes)
    })
    .listen(listener)
    .map_err(StartError::Listen)?
    .run();
    Ok(server)
}
