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
//! [`apply_request`](fieldsync_core::sync::server::apply_request) over a
//! [`ServerStore`](fieldsync_core::sync::server::ServerStore) view of one case inside one
//! write transaction: the documents, the case's change feed and the
//! timeline projection change together or not at all. The changes were
//! verified before that transaction opened, and the feed part of the
//! answer is read after it committed, in a read transaction.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use fieldsync_core::model::DeviceRole;
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
//! One file per concern, each an `impl Store`: `schema.rs` (migrations,
//! as `.sql` files under `server/migrations/`), `membership.rs` (cases,
//! invites, devices, nonces), `audit.rs`, `sync.rs` (the sync round),
//! `timeline.rs` (the projection and its query), `blobs.rs` (uploads and
//! blob access), `case_keys.rs`, `web.rs` (the review app's sessions) and
//! `generated.rs` (benchmark data, behind the `generated` feature). The
//! HTTP layer reaches them through the traits of `traits.rs`, so another
//! database can stand in without a handler changing.
//!
//! Tables (schema 8; schema 1 had neither the three blob tables nor
//! `timeline_tags`, schema 3 added the review app's `web_sessions`, see
//! `store/web.rs`, schema 4 `timeline_tags`, schema 7 `case_public_keys`, schema 8 `cases.timezone`):
//!
//! | table | holds |
//! |---|---|
//! | `cases` | id, unique name, the secret salt of its import ids (schema 6; coordinators only), and its time zone (schema 8; every device learns it on sync) |
//! | `invites` | SHA-256 of each enrollment token (never the token), its case, role, expiry and use |
//! | `devices` | enrolled devices: public key, case, role, revocation |
//! | `documents` | each report's Automerge snapshot, creator, heads and newest feed sequence number |
//! | `changes` | every change with its author's signature; `seq` is the case feed (monotonic, shared by all cases); `actor_device` is the key that signed it (the author, or a web session's key) and `doc_creator` its report's creator, so a reporter's feed reads only its own reports by an index (schema 5) |
//! | `timeline` | the projection coordinators browse: time, place, title, status, tags, reporter |
//! | `timeline_tags` | one entry per (report, tag), in timeline order, so a tag filter reads only that tag's reports; kept from `timeline` by triggers |
//! | `nonces` | request nonces seen recently, for replay refusal |
//! | `audit_log` | who did what, when; never report contents |
//! | `uploads` | resumable blob uploads: device, case, blob id, report, length, expiry, completion; a deduplicated upload is a completed row that costs no quota. The offset is not here: it is what the upload's partial holds (`blob_store/`) |
//! | `blobs` | complete blobs per case: size, first uploader and report, when stored |
//! | `blob_refs` | (case, blob, report): a report whose server document lists the blob, recorded when an upload is created; tells a coordinator a listed blob is not uploaded yet (not unknown). A reporter reads only blobs it uploaded itself (`holds_blob`) |

use std::path::Path;

use fieldsync_core::private_fs;
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use pool::configure;
use schema::migrate;

mod audit;
mod blobs;
mod case_keys;
mod error;
#[cfg(any(test, feature = "generated"))]
mod generated;
mod membership;
mod pool;
pub mod postgres;
mod schema;
mod sql;
mod sync;
mod sync_plan;
mod sync_rows;
#[cfg(test)]
mod tests;
mod timeline;
mod traits;
mod web;

pub use audit::AuditEntry;
pub use blobs::{BlobAccess, NewUpload, UploadError, UploadLimits, UploadRecord, UploadStart};
pub use error::{StoreError, SCHEMA_VERSION};
pub use membership::{CaseRecord, DeviceRecord};
pub use pool::{secure_data_dir, PoolStatus, Store, DB_FILE};
pub use postgres::PgStore;
pub use sync::{SyncRound, SyncStoreError};
pub use timeline::{TimelineEntryRow, TimelinePage, TimelineQuery, TimelineRow};
pub use traits::{
    AdminStore, BlobIndex, MembershipStore, PoolStats, ServerStorage, SyncStore, TimelineStore,
    WebSessionStore,
};
pub use web::{LoginRefusal, NewWebSession, StoredChange, StoredReport, WebSession};

/// The server's store: PostgreSQL at `database` when given, else SQLite
/// in `data_dir`.
pub fn open_server_store(
    data_dir: &Path,
    database: Option<&str>,
) -> Result<std::sync::Arc<dyn ServerStorage>, StoreError> {
    Ok(match database {
        Some(url) => std::sync::Arc::new(PgStore::open(url)?),
        None => std::sync::Arc::new(Store::open(data_dir)?),
    })
}

/// The store the operator's commands work on, chosen as for the server.
pub fn open_admin_store(
    data_dir: &Path,
    database: Option<&str>,
) -> Result<Box<dyn AdminStore>, StoreError> {
    Ok(match database {
        Some(url) => Box::new(PgStore::open(url)?),
        None => Box::new(Store::open(data_dir)?),
    })
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
}
