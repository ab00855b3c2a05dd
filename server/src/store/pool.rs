//! The store's handle: a pool of connections to one database, each
//! configured for durable commits.

use std::path::Path;
use std::time::Duration;

use fieldsync_core::private_fs;
use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use super::error::StoreError;

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "fieldsync.sqlite3";

/// [`crate::data_dir::secure_data_dir`], its failure as the store's.
pub fn secure_data_dir(data_dir: &Path) -> Result<Vec<private_fs::Tightened>, StoreError> {
    crate::data_dir::secure_data_dir(data_dir).map_err(|e| StoreError::Io {
        path: e.path,
        source: e.source,
    })
}

/// The server store: a pool of connections to one database.
#[derive(Clone)]
pub struct Store {
    pub(super) pool: Pool<SqliteConnectionManager>,
}

/// How busy a store's connection pool is: what the operators' metrics
/// show as its saturation. `in_use` at `max` means requests wait for a
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections lent out to a request or a background task.
    pub in_use: u32,
    /// Connections open and waiting in the pool.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

impl Store {
    pub(super) fn conn(&self) -> Result<PooledConnection<SqliteConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// The pool's connections now: takes its lock briefly, opens nothing.
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
pub(super) fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: in WAL mode the log is synced at every commit, so a commit is on
    // disk before it returns and the server can acknowledge it: a response
    // is sent only after the round it reports is durable.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}
