//! The PostgreSQL store (`serve --database postgres://…`): the same
//! operations as the SQLite [`Store`](super::Store), through the same
//! traits (`traits.rs`), for any number of server processes on one
//! database.
//!
//! What differs from SQLite, and why:
//!
//! - **Several processes write at once.** SQLite has one writer; here a
//!   sync round takes its case's advisory lock (`pg_advisory_xact_lock`)
//!   inside its write transaction and keeps it until it commits. Feed
//!   sequence numbers come from one `BIGSERIAL`, handed out before commit;
//!   because every append to a case's feed holds that case's lock until
//!   commit, a case's changes become visible in sequence order, and a
//!   reader that read up to `seq` never later finds a smaller one
//!   committed (`sync.rs`; tested by
//!   `a_feed_reader_never_skips_a_change_committed_late` in
//!   `tests/scenarios/postgres.rs`).
//! - **Replays across processes** are refused by the `nonces` primary key:
//!   an `INSERT … ON CONFLICT DO NOTHING` that inserted nothing is a replay,
//!   whichever process saw the nonce first.
//! - **Every table carries the case id**, and the queries of the sync,
//!   feed and upload paths are scoped to one case, so the schema can be
//!   distributed by case (Citus) without change; `queries.rs` lists the
//!   few that are not, and a test pins that list.
//! - **Durability:** every connection runs with `synchronous_commit = on`,
//!   so a commit is flushed to the write-ahead log before it returns and
//!   the server acknowledges nothing a crash could take back.
//!
//! Migrations are versioned as for SQLite: `server/migrations/postgres/`,
//! the version in the table `fieldsync_schema`, applied under an advisory
//! lock so processes starting together migrate once.

use std::time::Duration;

use postgres::{Client, NoTls};
use r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;

use super::error::StoreError;
use super::pool::PoolStatus;

mod blobs;
pub mod copy;
mod dump;
mod membership;
pub mod queries;
mod schema;
mod sync;
#[cfg(test)]
mod tests;
mod timeline;
mod web;

pub use schema::PG_SCHEMA_VERSION;

type Manager = PostgresConnectionManager<NoTls>;

/// The PostgreSQL store: a pool of connections to one database.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<Manager>,
    /// Closes the pool's connections off the dropping thread.
    _closer: std::sync::Arc<Closer>,
    /// Runs inside a sync round's write transaction just before it
    /// commits: tests hold a commit open with it.
    #[cfg(test)]
    before_commit: Option<std::sync::Arc<dyn Fn() + Send + Sync>>,
    /// Runs between a sync round's plan and its write transaction: tests
    /// write what the plan read with it.
    #[cfg(test)]
    before_lock: Option<std::sync::Arc<dyn Fn() + Send + Sync>>,
}

/// Holds a handle to the pool while any [`PgStore`] lives; dropped with
/// the last, it drops the pool's connections on a thread of its own. A
/// blocking client's connection closes by running its own runtime, which
/// panics on a thread that drives one, and the server's last handle is
/// dropped on actix's when it stops.
struct Closer(Option<Pool<Manager>>);

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://USER@HOST[:PORT]/DB`, with the
    /// password, if any, in the URL or `PGPASSWORD`-style settings the URL
    /// carries), brings the schema up to date, and opens a pool.
    ///
    /// Like every method here it blocks, and must not be called on a
    /// thread that drives an async runtime: the blocking client runs a
    /// runtime of its own.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| StoreError::BadDatabaseUrl(e.to_string()))?;
        // Migrate over a plain connection first, so an unreachable or newer
        // database gives its own error rather than a pool timeout.
        let mut client = config.connect(NoTls)?;
        configure(&mut client)?;
        schema::migrate(&mut client)?;
        drop(client);
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = Pool::builder()
            .max_size(16)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(30))
            .connection_customizer(Box::new(Configure))
            .build(manager)?;
        Ok(PgStore {
            _closer: std::sync::Arc::new(Closer(Some(pool.clone()))),
            pool,
            #[cfg(test)]
            before_commit: None,
            #[cfg(test)]
            before_lock: None,
        })
    }

    fn conn(&self) -> Result<PooledConnection<Manager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// The pool's saturation, for the operators' metrics.
    pub fn pool_status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            in_use: state.connections.saturating_sub(state.idle_connections),
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }
}

/// Settings every connection gets.
fn configure(client: &mut Client) -> Result<(), postgres::Error> {
    // `on`: a commit returns once its WAL is flushed, whatever the
    // cluster's default, so a response never acknowledges a round a crash
    // could take back.
    client.batch_execute("SET synchronous_commit = on; SET TIME ZONE 'UTC'")
}

#[derive(Debug)]
struct Configure;

impl r2d2::CustomizeConnection<Client, postgres::Error> for Configure {
    fn on_acquire(&self, client: &mut Client) -> Result<(), postgres::Error> {
        configure(client)
    }
}

/// The advisory-lock key of a case: the first 8 bytes of a SHA-256 of its
/// id. Two cases that share a key only wait for each other.
pub(super) fn case_lock_key(case_id: &str) -> i64 {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("fieldsync case {case_id}").as_bytes(),
    );
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_ref()[..8]);
    i64::from_be_bytes(bytes)
}
