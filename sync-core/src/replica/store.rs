//! The replica itself: opening and migrating the database, the device
//! identity, meta values, and reading and writing reports (with the
//! helpers every store concern shares).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use automerge::{AutoCommit, ChangeHash};
use chrono::{DateTime, FixedOffset, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::document::{EditError, NewReport, ReportDocument};
use crate::identity::DeviceKey;
use crate::ids::{DeviceId, ReportId};
use crate::model::{AttachmentRef, Edit, Report};
use crate::signed_change::SignedChange;

use super::error::{OutboxError, ReplicaError, REPLICA_SCHEMA};
use super::vault::{Vault, Wrapped};

/// The replica's file name inside the device home.
pub const REPLICA_FILE: &str = "replica.sqlite3";
/// Appended changes per document before the snapshot is rewritten.
pub(super) const COMPACT_AFTER: i64 = 64;

/// The device's SQLite replica.
pub struct Replica {
    pub(super) conn: Connection,
    /// The device home, where sealed attachments wait for upload; `None`
    /// for an in-memory replica, which cannot hold attachments.
    pub(super) home: Option<PathBuf>,
    /// The home's passphrase, once asked for (see [`secrets`]).
    pub(super) vault: Vault,
    /// Paths of the home that others could read when it was opened, and
    /// were made owner-only.
    pub(super) tightened: Vec<crate::private_fs::Tightened>,
}

impl Replica {
    /// Opens (creating if needed) the replica in the device home `home`.
    /// The home is readable by its owner only: created so, and tightened
    /// (see [`Replica::tightened`]) if it was found wider.
    pub fn open(home: &Path) -> Result<Self, ReplicaError> {
        let home_error = |source| ReplicaError::Home {
            path: home.to_owned(),
            source,
        };
        crate::private_fs::create_dir_all(home).map_err(home_error)?;
        let tightened = crate::private_fs::tighten(home).map_err(home_error)?;
        let path = home.join(REPLICA_FILE);
        // Made owner-only before SQLite opens it: SQLite creates its
        // database 0644, and its -wal and -shm files with the database's mode.
        crate::private_fs::touch(&path).map_err(home_error)?;
        let conn = Connection::open(path)?;
        let mut replica = Self::init(conn, Some(home.to_owned()))?;
        replica.tightened = tightened;
        Ok(replica)
    }

    /// What of the home others could read when it was opened, now made
    /// owner-only; the caller should tell the user.
    pub fn tightened(&self) -> &[crate::private_fs::Tightened] {
        &self.tightened
    }

    /// A replica that lives in memory, for tests.
    pub fn open_in_memory() -> Result<Self, ReplicaError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    pub(super) fn init(conn: Connection, home: Option<PathBuf>) -> Result<Self, ReplicaError> {
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before it returns, so "saved" is true
        // even if the power goes the next instant.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Freed cells are zeroed, so a key rewritten wrapped leaves no
        // plain copy behind in the page (see `secrets`).
        conn.pragma_update(None, "secure_delete", "ON")?;
        let mut replica = Self {
            conn,
            home,
            vault: Vault::default(),
            tightened: Vec::new(),
        };
        replica.migrate()?;
        Ok(replica)
    }

    pub(super) fn migrate(&mut self) -> Result<(), ReplicaError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > REPLICA_SCHEMA {
            return Err(ReplicaError::NewerSchema { found: version });
        }
        if version < 1 {
            tx.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE identity (
                     only INTEGER PRIMARY KEY CHECK (only = 1),
                     pkcs8 BLOB NOT NULL,
                     device_id TEXT NOT NULL,
                     created_at TEXT NOT NULL);
                 CREATE TABLE documents (
                     id TEXT PRIMARY KEY,
                     snapshot BLOB NOT NULL,
                     log_len INTEGER NOT NULL DEFAULT 0,
                     acked_heads TEXT NOT NULL DEFAULT '',
                     dirty INTEGER NOT NULL,
                     updated_at TEXT NOT NULL);
                 CREATE INDEX documents_dirty ON documents(dirty, updated_at);
                 CREATE TABLE change_log (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     doc_id TEXT NOT NULL REFERENCES documents(id),
                     bytes BLOB NOT NULL);
                 CREATE INDEX change_log_doc ON change_log(doc_id, seq);
                 CREATE TABLE signatures (
                     doc_id TEXT NOT NULL,
                     hash TEXT NOT NULL,
                     signature BLOB NOT NULL,
                     PRIMARY KEY (doc_id, hash)) WITHOUT ROWID;
                 CREATE TABLE refused (
                     doc_id TEXT NOT NULL,
                     hash TEXT NOT NULL,
                     reason TEXT NOT NULL,
                     message TEXT NOT NULL,
                     refused_at TEXT NOT NULL,
                     PRIMARY KEY (doc_id, hash)) WITHOUT ROWID;
                 PRAGMA user_version = 1;",
            )?;
        }
        if version < 2 {
            tx.execute_batch(
                "CREATE TABLE case_keys (
                     case_name TEXT NOT NULL,
                     epoch INTEGER NOT NULL,
                     key BLOB NOT NULL,
                     added_at TEXT NOT NULL,
                     PRIMARY KEY (case_name, epoch)) WITHOUT ROWID;
                 CREATE TABLE outbox (
                     blob TEXT PRIMARY KEY,
                     report_id TEXT NOT NULL,
                     attachment_id TEXT NOT NULL,
                     size INTEGER NOT NULL,
                     upload_url TEXT,
                     added_at TEXT NOT NULL);
                 PRAGMA user_version = 2;",
            )?;
        }
        if version < 3 {
            tx.execute_batch(
                "CREATE TABLE roster (
                     device_id TEXT PRIMARY KEY,
                     public_key TEXT NOT NULL,
                     role TEXT NOT NULL,
                     revoked_at TEXT,
                     fetched_at TEXT NOT NULL);
                 PRAGMA user_version = 3;",
            )?;
        }
        if version < 4 {
            // The digest of the imported row a document was last written
            // from (see `imports`). It is only true of the document that
            // import wrote: any later change to the document (an edit, a
            // sync, a bundle, compaction), by whatever code path, clears it.
            tx.execute_batch(
                "ALTER TABLE documents ADD COLUMN import_digest BLOB;
                 CREATE TRIGGER documents_import_digest_stale
                     AFTER UPDATE OF snapshot, log_len ON documents
                     WHEN NEW.log_len IS NOT OLD.log_len OR NEW.snapshot IS NOT OLD.snapshot
                 BEGIN
                     UPDATE documents SET import_digest = NULL WHERE id = NEW.id;
                 END;
                 PRAGMA user_version = 4;",
            )?;
        }
        if version < 5 {
            // Case key pairs (issue 14): a key's share code version says
            // whether it is a symmetric key (1) or an X25519 private key
            // (2), and the case public keys this device trusts, with who
            // signed them.
            tx.execute_batch(
                "ALTER TABLE case_keys ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
                 CREATE TABLE case_public_keys (
                     case_name TEXT NOT NULL,
                     epoch INTEGER NOT NULL,
                     public_key BLOB NOT NULL,
                     signer BLOB NOT NULL,
                     signature BLOB NOT NULL,
                     added_at TEXT NOT NULL,
                     PRIMARY KEY (case_name, epoch)) WITHOUT ROWID;
                 PRAGMA user_version = 5;",
            )?;
        }
        if version < 6 {
            // The document's own heads, so that the server's acknowledgement
            // of what a device sent is recorded without loading the report
            // (issue 16). Like the import digest, a trigger clears it when
            // any code path changes the document without writing its new
            // heads in the same statement; NULL means "load the report".
            tx.execute_batch(
                "ALTER TABLE documents ADD COLUMN heads TEXT;
                 CREATE TRIGGER documents_heads_stale
                     AFTER UPDATE OF snapshot, log_len ON documents
                     WHEN (NEW.log_len IS NOT OLD.log_len OR NEW.snapshot IS NOT OLD.snapshot)
                         AND NEW.heads IS OLD.heads
                 BEGIN
                     UPDATE documents SET heads = NULL WHERE id = NEW.id;
                 END;
                 PRAGMA user_version = 6;",
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes the device's key pair. Refuses to replace an existing one.
    pub fn init_identity(&mut self) -> Result<DeviceId, ReplicaError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<String> = tx
            .query_row("SELECT device_id FROM identity WHERE only = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(existing) = existing {
            let id = existing
                .parse()
                .map_err(|_| ReplicaError::Corrupt(format!("device id {existing:?}")))?;
            return Err(ReplicaError::IdentityExists(id));
        }
        let key = DeviceKey::generate()?;
        let stored = self
            .vault
            .sealer(&tx)?
            .wrap(&Wrapped::DeviceKey, key.pkcs8())?;
        tx.execute(
            "INSERT INTO identity (only, pkcs8, device_id, created_at) VALUES (1, ?1, ?2, ?3)",
            params![stored, key.device_id().as_str(), now().to_rfc3339()],
        )?;
        tx.commit()?;
        Ok(key.device_id())
    }

    /// The device's key, if it has one.
    pub fn device_key(&self) -> Result<Option<DeviceKey>, ReplicaError> {
        load_key(&self.conn, &self.vault)
    }

    pub(super) fn require_key(&self) -> Result<DeviceKey, ReplicaError> {
        self.device_key()?.ok_or(ReplicaError::NoIdentity)
    }

    /// A free-form setting kept with the replica (enrollment details).
    pub fn meta(&self, key: &str) -> Result<Option<String>, ReplicaError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn delete_meta(&mut self, key: &str) -> Result<(), ReplicaError> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [key])?;
        Ok(())
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), ReplicaError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// The case feed cursor: everything up to it has been received.
    pub fn cursor(&self) -> Result<u64, ReplicaError> {
        Ok(self
            .meta("cursor")?
            .map(|v| {
                v.parse()
                    .map_err(|_| ReplicaError::Corrupt(format!("cursor {v:?}")))
            })
            .transpose()?
            .unwrap_or(0))
    }

    /// Records a new report. Needs no network; returns once it is on disk.
    pub fn create_report(&mut self, new: &NewReport) -> Result<ReportId, ReplicaError> {
        self.create_report_with(new, &[])
    }

    /// Records a new report with attachments sealed by
    /// [`Replica::seal_attachment`], all in one transaction: the report and
    /// its attachments' place in the upload outbox are saved together or
    /// not at all.
    pub fn create_report_with(
        &mut self,
        new: &NewReport,
        attachments: &[AttachmentRef],
    ) -> Result<ReportId, ReplicaError> {
        let key = self.require_key()?;
        let outbox = self.outbox_dir().ok();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (mut doc, change) = ReportDocument::create(&key, new, now())?;
        let mut changes = vec![change];
        if !attachments.is_empty() {
            let edits: Vec<Edit> = attachments
                .iter()
                .cloned()
                .map(Edit::AddAttachment)
                .collect();
            changes.extend(doc.edit(&key, &edits, now())?);
            enqueue(&tx, outbox.as_deref(), &new.id, &edits)?;
        }
        let mut am = doc.into_automerge();
        insert_changes(&tx, &new.id, &changes, &am.get_heads())?;
        for change in &changes {
            store_signed_change(&tx, &new.id, change)?;
        }
        tx.commit()?;
        Ok(new.id.clone())
    }

    /// Applies `edits` to a report as one signed change. Returns the change
    /// hash, or `None` if the edits changed nothing.
    pub fn edit_report(
        &mut self,
        id: &ReportId,
        edits: &[Edit],
    ) -> Result<Option<ChangeHash>, ReplicaError> {
        let key = self.require_key()?;
        let outbox = self.outbox_dir().ok();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        enqueue(&tx, outbox.as_deref(), id, edits)?;
        let Some(hash) = edit_in(&tx, &key, id, edits)? else {
            return Ok(None);
        };
        tx.commit()?;
        Ok(Some(hash))
    }

    /// Creates and edits many reports in one transaction: all are saved or
    /// none, and a hundred thousand cost one commit, not a hundred
    /// thousand. Attachments go through `create_report_with`. Returns, per
    /// entry of `edits`, whether it changed the report.
    pub fn write_batch(
        &mut self,
        creates: &[NewReport],
        edits: &[(ReportId, Vec<Edit>)],
    ) -> Result<Vec<bool>, ReplicaError> {
        let key = self.require_key()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for_each_creating_change(&key, creates, |i, created| {
            insert_created(&tx, &creates[i].id, &created, None)
        })?;
        let mut changed = Vec::with_capacity(edits.len());
        for (id, list) in edits {
            changed.push(edit_in(&tx, &key, id, list)?.is_some());
        }
        tx.commit()?;
        Ok(changed)
    }

    /// The typed view of a report.
    pub fn report(&self, id: &ReportId) -> Result<Report, ReplicaError> {
        let stored = load_document(&self.conn, id)?
            .ok_or_else(|| ReplicaError::UnknownReport(id.clone()))?;
        Ok(ReportDocument::from_automerge(stored.doc).view()?)
    }

    /// The Automerge document of a report, for callers that need history.
    pub fn document(&self, id: &ReportId) -> Result<AutoCommit, ReplicaError> {
        Ok(load_document(&self.conn, id)?
            .ok_or_else(|| ReplicaError::UnknownReport(id.clone()))?
            .doc)
    }

    /// Ids of every report on this device.
    pub fn report_ids(&self) -> Result<Vec<ReportId>, ReplicaError> {
        self.query_ids("SELECT id FROM documents ORDER BY id")
    }

    pub(super) fn query_ids(&self, sql: &str) -> Result<Vec<ReportId>, ReplicaError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.into_iter()
            .map(|id| {
                id.parse()
                    .map_err(|e| ReplicaError::Corrupt(format!("{e}")))
            })
            .collect()
    }

    /// The stored signature of a change, if any.
    pub fn signature(
        &self,
        id: &ReportId,
        hash: &ChangeHash,
    ) -> Result<Option<Vec<u8>>, ReplicaError> {
        Ok(self
            .conn
            .prepare_cached("SELECT signature FROM signatures WHERE doc_id = ?1 AND hash = ?2")?
            .query_row(params![id.as_str(), hash.to_string()], |r| r.get(0))
            .optional()?)
    }
}

pub(super) fn now() -> DateTime<FixedOffset> {
    Utc::now().fixed_offset()
}

pub(super) fn load_key(
    conn: &Connection,
    vault: &Vault,
) -> Result<Option<DeviceKey>, ReplicaError> {
    let stored: Option<zeroize::Zeroizing<Vec<u8>>> = conn
        .query_row("SELECT pkcs8 FROM identity WHERE only = 1", [], |r| {
            r.get(0).map(zeroize::Zeroizing::new)
        })
        .optional()?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let pkcs8 = vault.sealer(conn)?.unwrap(&Wrapped::DeviceKey, &stored)?;
    Ok(Some(DeviceKey::from_pkcs8(&pkcs8)?))
}

pub(super) struct StoredDoc {
    pub(super) doc: AutoCommit,
    pub(super) log_len: i64,
    pub(super) acked: Vec<ChangeHash>,
}

/// A report's rows as stored, not yet loaded into a document.
pub(super) struct StoredChunks {
    pub(super) log_len: i64,
    pub(super) acked: Vec<ChangeHash>,
    /// Its snapshot, then each change of its log, as written.
    pub(super) bytes: Vec<u8>,
    /// Where in `bytes` each of those chunks lies.
    pub(super) chunks: Vec<std::ops::Range<usize>>,
}

impl StoredChunks {
    /// The report these chunks hold.
    pub(super) fn load_doc(&self, id: &ReportId) -> Result<AutoCommit, ReplicaError> {
        // One load of snapshot and log together: automerge reads
        // concatenated chunks, and one call is far cheaper than a
        // `load_incremental` each.
        AutoCommit::load(&self.bytes)
            .map_err(|e| ReplicaError::Corrupt(format!("report {id}: {e}")))
    }
}

pub(super) fn load_document(
    conn: &Connection,
    id: &ReportId,
) -> Result<Option<StoredDoc>, ReplicaError> {
    let Some(stored) = read_chunks(conn, id)? else {
        return Ok(None);
    };
    Ok(Some(StoredDoc {
        doc: stored.load_doc(id)?,
        log_len: stored.log_len,
        acked: stored.acked,
    }))
}

/// A report's snapshot, log and acknowledged heads, as stored.
pub(super) fn read_chunks(
    conn: &Connection,
    id: &ReportId,
) -> Result<Option<StoredChunks>, ReplicaError> {
    let row: Option<(Vec<u8>, i64, String)> = conn
        .prepare_cached("SELECT snapshot, log_len, acked_heads FROM documents WHERE id = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((snapshot, log_len, acked)) = row else {
        return Ok(None);
    };
    let mut chunks = Vec::with_capacity(log_len.max(0) as usize + 1);
    chunks.push(0..snapshot.len());
    let mut bytes = snapshot;
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM change_log WHERE doc_id = ?1 ORDER BY seq")?;
    let mut rows = stmt.query([id.as_str()])?;
    while let Some(row) = rows.next()? {
        let chunk = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
        chunks.push(bytes.len()..bytes.len() + chunk.len());
        bytes.extend_from_slice(chunk);
    }
    Ok(Some(StoredChunks {
        log_len,
        acked: parse_heads(&acked)?,
        bytes,
        chunks,
    }))
}

pub(super) fn parse_heads(text: &str) -> Result<Vec<ChangeHash>, ReplicaError> {
    crate::heads::parse(text).map_err(|h| ReplicaError::Corrupt(format!("stored head {h:?}")))
}

pub(super) fn format_heads(heads: &[ChangeHash]) -> String {
    crate::heads::format(heads)
}

pub(super) fn is_dirty(doc: &mut AutoCommit, acked: &[ChangeHash]) -> bool {
    heads_differ(doc.get_heads(), acked.to_vec())
}

/// Whether a report whose heads are `heads` has changes past `acked`.
pub(super) fn heads_differ(mut heads: Vec<ChangeHash>, mut acked: Vec<ChangeHash>) -> bool {
    heads.sort();
    acked.sort();
    heads != acked
}

/// Applies `edits` to a stored report as one signed change inside `tx`.
pub(super) fn edit_in(
    tx: &Transaction<'_>,
    key: &DeviceKey,
    id: &ReportId,
    edits: &[Edit],
) -> Result<Option<ChangeHash>, ReplicaError> {
    let stored = load_document(tx, id)?.ok_or_else(|| ReplicaError::UnknownReport(id.clone()))?;
    let mut doc = ReportDocument::from_automerge(stored.doc);
    let Some(change) = doc.edit(key, edits, now())? else {
        return Ok(None);
    };
    let verified = change
        .verify()
        .map_err(|e| ReplicaError::Corrupt(format!("own change does not verify: {e}")))?;
    let mut am = doc.into_automerge();
    append_changes(
        tx,
        id,
        &mut am,
        stored.log_len,
        std::slice::from_ref(&change.bytes),
        &stored.acked,
    )?;
    store_signature(tx, id, &verified.hash(), &change.signature)?;
    Ok(Some(verified.hash()))
}

/// Stores a new report as the changes that made it: the first as its
/// snapshot, any others in its log, as an edit would. A request then sends
/// them as stored, without loading the report (`rounds.rs`).
fn insert_changes(
    tx: &Transaction<'_>,
    id: &ReportId,
    changes: &[SignedChange],
    heads: &[ChangeHash],
) -> Result<(), ReplicaError> {
    let (first, rest) = changes
        .split_first()
        .ok_or_else(|| ReplicaError::Corrupt(format!("report {id} made without a change")))?;
    tx.execute(
        "INSERT INTO documents (id, snapshot, log_len, acked_heads, dirty, updated_at, heads)
         VALUES (?1, ?2, ?3, '', 1, ?4, ?5)",
        params![
            id.as_str(),
            first.bytes,
            rest.len() as i64,
            now().to_rfc3339(),
            format_heads(heads)
        ],
    )?;
    let mut insert = tx.prepare_cached("INSERT INTO change_log (doc_id, bytes) VALUES (?1, ?2)")?;
    for change in rest {
        insert.execute(params![id.as_str(), change.bytes])?;
    }
    Ok(())
}

/// Records changes already applied to `doc`: appended to the log, or folded
/// into a new snapshot once the log is long.
pub(super) fn append_changes(
    tx: &Transaction<'_>,
    id: &ReportId,
    doc: &mut AutoCommit,
    log_len: i64,
    new_changes: &[Vec<u8>],
    acked: &[ChangeHash],
) -> Result<(), ReplicaError> {
    let dirty = is_dirty(doc, acked);
    let heads = format_heads(&doc.get_heads());
    let updated_at = now().to_rfc3339();
    if log_len + new_changes.len() as i64 > COMPACT_AFTER {
        tx.execute("DELETE FROM change_log WHERE doc_id = ?1", [id.as_str()])?;
        tx.prepare_cached(
            "UPDATE documents SET snapshot = ?2, log_len = 0, acked_heads = ?3, dirty = ?4, updated_at = ?5, heads = ?6 WHERE id = ?1",
        )?
        .execute(params![id.as_str(), doc.save(), format_heads(acked), dirty, updated_at, heads])?;
    } else {
        let mut insert =
            tx.prepare_cached("INSERT INTO change_log (doc_id, bytes) VALUES (?1, ?2)")?;
        for bytes in new_changes {
            insert.execute(params![id.as_str(), bytes])?;
        }
        tx.prepare_cached(
            "UPDATE documents SET log_len = log_len + ?2, acked_heads = ?3, dirty = ?4, updated_at = ?5, heads = ?6 WHERE id = ?1",
        )?
        .execute(params![id.as_str(), new_changes.len() as i64, format_heads(acked), dirty, updated_at, heads])?;
    }
    Ok(())
}

/// Stores the signature of a change whose hash the caller does not have.
pub(super) fn store_signed_change(
    tx: &Transaction<'_>,
    id: &ReportId,
    change: &SignedChange,
) -> Result<(), ReplicaError> {
    let hash = automerge::Change::try_from(change.bytes.as_slice())
        .map_err(|e| ReplicaError::Corrupt(format!("change of report {id}: {e}")))?
        .hash();
    store_signature(tx, id, &hash, &change.signature)
}

pub(super) fn store_signature(
    tx: &Transaction<'_>,
    id: &ReportId,
    hash: &ChangeHash,
    signature: &[u8],
) -> Result<(), ReplicaError> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO signatures (doc_id, hash, signature) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id.as_str(), hash.to_string(), signature])?;
    Ok(())
}

/// A new report's signed creating change, made by
/// [`ReportDocument::creating_change`].
pub(super) struct Created {
    pub(super) change: SignedChange,
    pub(super) hash: ChangeHash,
}

/// Reports below this many are made on the calling thread: a thread costs
/// more than it saves.
pub(super) const PARALLEL_FROM: usize = 64;
/// Reports a worker makes before handing them over.
pub(super) const HANDOVER: usize = 64;

/// Makes the creating change of each of `news` and hands it, with its index
/// in `news`, to `store`, in no particular order. Building and signing a
/// change is most of what creating a report costs and each is independent
/// of the others, so every core makes them while the calling thread
/// stores what is made (SQLite stays on the caller's thread). Stops at the
/// first error, a worker's or `store`'s.
pub(super) fn for_each_creating_change(
    key: &DeviceKey,
    news: &[NewReport],
    mut store: impl FnMut(usize, Created) -> Result<(), ReplicaError>,
) -> Result<(), ReplicaError> {
    let make = |new: &NewReport| -> Result<Created, EditError> {
        let (change, hash) = ReportDocument::creating_change(key, new, now())?;
        Ok(Created { change, hash })
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || news.len() < PARALLEL_FROM {
        for (i, new) in news.iter().enumerate() {
            store(i, make(new)?)?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        // Bounded, so that workers stay a little ahead of the store and no
        // further; dropping the receiver (on an error) stops them.
        let (sender, receiver) = mpsc::sync_channel(threads * 4);
        for _ in 0..threads {
            let sender = sender.clone();
            let (next, make) = (&next, &make);
            scope.spawn(move || loop {
                let start = next.fetch_add(HANDOVER, Ordering::Relaxed);
                if start >= news.len() {
                    return;
                }
                let end = (start + HANDOVER).min(news.len());
                let made: Result<Vec<Created>, EditError> =
                    news[start..end].iter().map(make).collect();
                if sender.send((start, made)).is_err() {
                    return;
                }
            });
        }
        drop(sender);
        for (start, made) in receiver {
            for (i, created) in (start..).zip(made?) {
                store(i, created)?;
            }
        }
        Ok(())
    })
}

/// Stores a report made by [`for_each_creating_change`]: its change as the
/// snapshot, and its signature.
pub(super) fn insert_created(
    tx: &Transaction<'_>,
    id: &ReportId,
    created: &Created,
    import_digest: Option<&[u8]>,
) -> Result<(), ReplicaError> {
    tx.prepare_cached(
        "INSERT INTO documents (id, snapshot, log_len, acked_heads, dirty, updated_at, import_digest, heads)
         VALUES (?1, ?2, 0, '', 1, ?3, ?4, ?5)",
    )?
    .execute(params![
        id.as_str(),
        created.change.bytes,
        now().to_rfc3339(),
        import_digest,
        format_heads(&[created.hash])
    ])?;
    store_signature(tx, id, &created.hash, &created.change.signature)
}

/// Queues the attachments among `edits` for upload, inside the caller's
/// transaction. Each must have been sealed into `outbox` first.
pub(super) fn enqueue(
    tx: &Transaction<'_>,
    outbox: Option<&Path>,
    report: &ReportId,
    edits: &[Edit],
) -> Result<(), ReplicaError> {
    for edit in edits {
        let Edit::AddAttachment(attachment) = edit else {
            continue;
        };
        let sealed = outbox
            .map(|dir| dir.join(attachment.blob.as_str()))
            .is_some_and(|path| path.is_file());
        if !sealed {
            return Err(OutboxError::NotSealed {
                blob: attachment.blob.to_string(),
            }
            .into());
        }
        insert_row(
            tx,
            attachment.blob.as_str(),
            report,
            &attachment.id,
            attachment.size,
        )?;
    }
    Ok(())
}

/// Puts a sealed blob in the outbox table (its file is already in place).
pub(super) fn insert_row(
    conn: &rusqlite::Connection,
    blob: &str,
    report: &ReportId,
    attachment_id: &str,
    size: u64,
) -> Result<(), ReplicaError> {
    conn.execute(
        "INSERT INTO outbox (blob, report_id, attachment_id, size, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (blob) DO NOTHING",
        params![
            blob,
            report.as_str(),
            attachment_id,
            i64::try_from(size).unwrap_or(i64::MAX),
            now().to_rfc3339()
        ],
    )?;
    Ok(())
}
