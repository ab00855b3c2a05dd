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
pub mod metrics;
pub mod phone_app;
pub mod public_origin;
pub mod refusal_log;
pub mod store;
pub mod tus;
pub mod upkeep;
pub mod web_assets;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer};

pub use config::{
    Config, DEFAULT_AUDIT_RETENTION_DAYS, DEFAULT_DEVICE_QUOTA_BYTES, DEFAULT_MAX_BLOB_BYTES,
    DEFAULT_UPLOAD_EXPIRY_SECS,
};
pub use store::{PgStore, ServerStorage, Store, StoreError};

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data directory {}: {source}", dir.display())]
    Store {
        dir: std::path::PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot open the PostgreSQL database: {0}")]
    Database(#[source] StoreError),
    #[error("cannot open the blob storage ({location}): {source}")]
    Blobs {
        location: blob_store::BlobLocation,
        #[source]
        source: Box<blob_store::BlobStoreError>,
    },
    #[error("cannot serve on the listener: {0}")]
    Listen(#[source] std::io::Error),
}

/// Opens the store and starts serving on `listener`, and the operators'
/// metrics (`GET /metrics` only, `metrics.rs`) on `metrics_listener` if
/// there is one: never on `listener`. The returned future ends when the
/// server stops, gracefully on SIGTERM or SIGINT; call this inside an
/// actix system (`actix_web::rt::System`), which runs the metrics
/// listener.
///
/// Before it serves, expired uploads and partial files that belong to no
/// upload are removed; a background thread then removes expired uploads
/// periodically (see [`tus::sweep_interval`]). The audit log is pruned
/// to its retention at start and hourly by another (`upkeep.rs`).
pub fn run(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: Config,
) -> Result<impl Future<Output = std::io::Result<()>>, StartError> {
    // Off the caller's thread, which may drive an async runtime (actix's):
    // the PostgreSQL client blocks on a runtime of its own.
    let (store, blobs) = std::thread::scope(|s| {
        s.spawn(|| open_stores(&config))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    upkeep::spawn_sweeper(
        Arc::downgrade(&store),
        blobs.clone(),
        config.upload_expiry_secs,
    );
    upkeep::spawn_upkeep(Arc::downgrade(&store), config.audit_retention_days);
    let metrics = actix_web::web::Data::new(metrics::Metrics::new());
    let exporter = metrics_listener
        .map(|l| metrics::server(l, metrics.clone(), store.clone()))
        .transpose()
        .map_err(StartError::Listen)?;
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
            // Outermost, so it counts the status the client gets.
            .wrap(actix_web::middleware::from_fn(metrics::count_requests))
            .app_data(state.clone())
            .app_data(metrics.clone())
            .configure(api::routes)
            .configure(phone_app::routes)
    })
    .listen(listener)
    .map_err(StartError::Listen)?
    .run();
    let exporter = exporter.map(|exporter| {
        let handle = exporter.handle();
        actix_web::rt::spawn(exporter);
        handle
    });
    Ok(async move {
        let stopped = server.await;
        if let Some(exporter) = exporter {
            exporter.stop(true).await;
        }
        stopped
    })
}

/// Opens the store and the blobs, and does the upkeep due at start:
/// expired uploads and stray partial files removed, the audit log pruned.
fn open_stores(
    config: &Config,
) -> Result<(Arc<dyn ServerStorage>, blob_store::BlobStore), StartError> {
    let store = store::open_server_store(&config.data_dir, config.database.as_deref()).map_err(
        |source| match config.database {
            Some(_) => StartError::Database(source),
            None => StartError::Store {
                dir: config.data_dir.clone(),
                source,
            },
        },
    )?;
    let blobs = blob_store::BlobStore::open(&config.data_dir, &config.blobs).map_err(|source| {
        StartError::Blobs {
            location: config.blobs.clone(),
            source: Box::new(source),
        }
    })?;
    upkeep::sweep_at_start(store.as_ref(), &blobs);
    upkeep::prune(store.as_ref(), config.audit_retention_days);
    Ok((store, blobs))
}
