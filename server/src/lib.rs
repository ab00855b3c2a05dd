//! fieldsync-server: the HTTP API (actix-web), the SQLite server store and
//! the attachment blob store.
//!
//! It runs the core's sync algorithm behind an endpoint and must never hold
//! a case key or an attachment's plaintext, never acknowledge a change
//! before it is durably committed, and never send storage error text to a
//! client.
//!
//! Start it with [`run`] on a bound listener; tests bind `127.0.0.1:0`.

pub mod http;
pub mod store;

use std::net::TcpListener;
use std::path::PathBuf;

use actix_web::{web, App, HttpServer};
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
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            auth_window_secs: DEFAULT_WINDOW_SECS,
        }
    }
}

/// Opens the store and starts serving on `listener`. The returned server
/// is a future; it stops gracefully on SIGTERM or SIGINT.
pub fn run(listener: TcpListener, config: Config) -> Result<actix_web::dev::Server, StoreError> {
    let store = Store::open(&config.data_dir)?;
    let state = web::Data::new(http::AppState { store, config });
    let server =
        HttpServer::new(move || App::new().app_data(state.clone()).configure(http::routes))
            .listen(listener)
            .map_err(|source| StoreError::Io {
                path: "listener".into(),
                source,
            })?
            .run();
    Ok(server)
}
