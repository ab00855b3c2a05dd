//! The attachment files on disk: complete blobs and partial uploads. Every
//! byte here is ciphertext; the server cannot read it and never logs it.
//!
//! Layout under the data directory:
//!
//! | path | holds |
//! |---|---|
//! | `blobs/<case id>/<blob id>` | a complete blob, named by the SHA-256 of its bytes (hex); stored per case, so nothing is shared across cases |
//! | `uploads/<upload id>` | the bytes received so far of an upload in progress |
//!
//! The length of a partial file **is** the upload's offset: it survives a
//! SIGKILL of the server with nothing else to keep in step. A blob moves
//! into `blobs/` only after its SHA-256 matched its id, by a rename in the
//! same file system followed by an fsync of the directory.
//!
//! All functions here block; the HTTP layer calls them in `web::block`.
//! Ids are validated types ([`BlobId`], [`UploadId`]), so no name from
//! outside ever reaches a path unchecked.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use fieldsync_core::{private_fs, CaseId};
use ring::rand::{SecureRandom, SystemRandom};

/// The directory of complete blobs, inside the data directory.
pub const BLOBS_DIR: &str = "blobs";
/// The directory of partial uploads, inside the data directory.
pub const UPLOADS_DIR: &str = "uploads";

/// Bytes read at a time when hashing a file.
const HASH_CHUNK: usize = 1 << 20;

/// A blob's id (the SHA-256 of its ciphertext) is the core's: a signed
/// report names its attachments by it.
pub use fieldsync_core::BlobId;

/// An upload's id: 128 random bits, 32 lowercase hex characters; only the
/// device that created the upload is ever told it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UploadId(String);

/// Why an id from outside was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobIdError {
    #[error("{kind} must be {len} lowercase hexadecimal characters, got {got:?}")]
    Malformed {
        kind: &'static str,
        len: usize,
        got: String,
    },
    #[error("the system random number generator failed; try again")]
    Random,
}

fn parse_hex(s: &str, len: usize, kind: &'static str) -> Result<String, BlobIdError> {
    if s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(s.to_owned())
    } else {
        Err(BlobIdError::Malformed {
            kind,
            len,
            got: s.chars().take(80).collect(),
        })
    }
}

impl UploadId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh, unguessable upload id.
    pub fn random() -> Result<UploadId, BlobIdError> {
        let mut bytes = [0u8; 16];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| BlobIdError::Random)?;
        Ok(UploadId(hex::encode(bytes)))
    }
}

impl FromStr for UploadId {
    type Err = BlobIdError;
    fn from_str(s: &str) -> Result<Self, BlobIdError> {
        parse_hex(s, 32, "an upload id").map(UploadId)
    }
}

macro_rules! display_id {
    ($($name:ident),+) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    )+};
}
display_id!(UploadId);

/// A file operation failed. Never sent to a client.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct BlobStoreError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl BlobStoreError {
    /// The disk (or the user's disk quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self.source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BlobStoreError {
    let path = path.to_owned();
    move |source| BlobStoreError {
        action,
        path,
        source,
    }
}

/// The blob and upload directories, and which uploads a request is
/// writing right now.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    blobs_dir: PathBuf,
    uploads_dir: PathBuf,
    /// Uploads a PATCH (or the sweeper) holds; see [`BlobStore::lock_upload`].
    locked: Mutex<HashSet<UploadId>>,
}

/// Held while one request writes an upload; released when dropped.
pub struct UploadLock {
    inner: Arc<Inner>,
    id: UploadId,
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        self.inner
            .locked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// What is in the uploads directory.
pub enum PartialEntry {
    /// A partial file of this upload.
    Upload(UploadId),
    /// A file whose name is no upload id (left by something else).
    Stray(PathBuf),
}

impl BlobStore {
    /// Opens (creating if needed) `blobs/` and `uploads/` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<BlobStore, BlobStoreError> {
        let blobs_dir = data_dir.join(BLOBS_DIR);
        let uploads_dir = data_dir.join(UPLOADS_DIR);
        for dir in [&blobs_dir, &uploads_dir] {
            private_fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        }
        Ok(BlobStore {
            inner: Arc::new(Inner {
                blobs_dir,
                uploads_dir,
                locked: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Takes the upload for one writer, or `None` if another holds it.
    pub fn lock_upload(&self, id: &UploadId) -> Option<UploadLock> {
        let mut locked = self
            .inner
            .locked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !locked.insert(id.clone()) {
            return None;
        }
        Some(UploadLock {
            inner: self.inner.clone(),
            id: id.clone(),
        })
    }

    /// Where an upload's received bytes are.
    pub fn partial_path(&self, id: &UploadId) -> PathBuf {
        self.inner.uploads_dir.join(id.as_str())
    }

    /// Where a complete blob of a case is.
    pub fn blob_path(&self, case: &CaseId, blob: &BlobId) -> PathBuf {
        self.inner.blobs_dir.join(case.as_str()).join(blob.as_str())
    }

    /// Creates the empty partial file of a new upload.
    pub fn create_partial(&self, id: &UploadId) -> Result<(), BlobStoreError> {
        let path = self.partial_path(id);
        private_fs::open_options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error("create", &path))?;
        Ok(())
    }

    /// How many bytes of the upload are on disk: its offset. A missing
    /// partial file holds none.
    pub fn partial_len(&self, id: &UploadId) -> Result<u64, BlobStoreError> {
        let path = self.partial_path(id);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_error("read the size of", &path)(e)),
        }
    }

    /// Opens the upload's partial file to append at its end. Only the
    /// holder of the upload's lock may write, so the offset it reads stays
    /// true while it writes.
    pub fn append(&self, lock: &UploadLock) -> Result<PartialWriter, BlobStoreError> {
        let path = self.partial_path(&lock.id);
        let mut file = private_fs::open_options()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("open", &path))?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(io_error("seek in", &path))?;
        Ok(PartialWriter { file, path, len })
    }

    /// SHA-256 of the upload's received bytes, as a blob id.
    pub fn partial_blob_id(&self, id: &UploadId) -> Result<BlobId, BlobStoreError> {
        hash_file(&self.partial_path(id))
    }

    /// SHA-256 of the file stored as `blob` in `case`, or `None` if there
    /// is no such file.
    pub fn stored_blob_id(
        &self,
        case: &CaseId,
        blob: &BlobId,
    ) -> Result<Option<BlobId>, BlobStoreError> {
        let path = self.blob_path(case, blob);
        if !path.is_file() {
            return Ok(None);
        }
        hash_file(&path).map(Some)
    }

    /// Whether an upload has a partial file.
    pub fn has_partial(&self, id: &UploadId) -> bool {
        self.partial_path(id).is_file()
    }

    /// Moves a verified upload into its case's blob directory and makes the
    /// move durable. If the case already holds the blob (another upload of
    /// the same bytes finished first), the partial file is removed instead.
    pub fn promote(
        &self,
        id: &UploadId,
        case: &CaseId,
        blob: &BlobId,
    ) -> Result<(), BlobStoreError> {
        let from = self.partial_path(id);
        let to = self.blob_path(case, blob);
        if to.exists() {
            return self.remove_partial(id).map(|_| ());
        }
        let case_dir = self.inner.blobs_dir.join(case.as_str());
        if !case_dir.exists() {
            private_fs::create_dir_all(&case_dir)
                .map_err(io_error("create directory", &case_dir))?;
            sync_dir(&self.inner.blobs_dir)?;
        }
        std::fs::rename(&from, &to).map_err(io_error("move into place", &to))?;
        sync_dir(&case_dir)?;
        sync_dir(&self.inner.uploads_dir)
    }

    /// Removes an upload's partial file; `false` if there was none.
    pub fn remove_partial(&self, id: &UploadId) -> Result<bool, BlobStoreError> {
        remove_file(&self.partial_path(id))
    }

    /// Removes a file found in the uploads directory that belongs to no
    /// upload.
    pub fn remove_stray(&self, path: &Path) -> Result<bool, BlobStoreError> {
        remove_file(path)
    }

    /// Everything in the uploads directory.
    pub fn partial_entries(&self) -> Result<Vec<PartialEntry>, BlobStoreError> {
        let dir = &self.inner.uploads_dir;
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error("list", dir))? {
            let entry = entry.map_err(io_error("list", dir))?;
            let name = entry.file_name();
            match name.to_str().map(UploadId::from_str) {
                Some(Ok(id)) => entries.push(PartialEntry::Upload(id)),
                _ => entries.push(PartialEntry::Stray(entry.path())),
            }
        }
        Ok(entries)
    }

    /// Opens a complete blob; returns it with its size.
    pub fn open_blob(&self, case: &CaseId, blob: &BlobId) -> Result<(File, u64), BlobStoreError> {
        let path = self.blob_path(case, blob);
        let file = File::open(&path).map_err(io_error("open", &path))?;
        let len = file
            .metadata()
            .map_err(io_error("read the size of", &path))?
            .len();
        Ok((file, len))
    }
}

/// Appends to one upload's partial file.
pub struct PartialWriter {
    file: File,
    path: PathBuf,
    len: u64,
}

impl PartialWriter {
    /// The file's length: the upload's offset once synced.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), BlobStoreError> {
        let result = self.file.write_all(bytes);
        // After a failed write, part of it may be on disk: the length is
        // what the file says.
        if result.is_err() {
            if let Ok(m) = self.file.metadata() {
                self.len = m.len();
            }
        } else {
            self.len += bytes.len() as u64;
        }
        result.map_err(io_error("write", &self.path))
    }

    /// Makes what was written durable.
    pub fn sync(&mut self) -> Result<(), BlobStoreError> {
        self.file.sync_data().map_err(io_error("sync", &self.path))
    }

    /// Cuts the file back to `len` bytes and syncs it.
    pub fn truncate(&mut self, len: u64) -> Result<(), BlobStoreError> {
        self.file
            .set_len(len)
            .map_err(io_error("truncate", &self.path))?;
        self.file
            .seek(SeekFrom::Start(len))
            .map_err(io_error("seek in", &self.path))?;
        self.len = len;
        self.sync()
    }
}

/// Reads `len` bytes of `file` from its current position.
pub fn read_chunk(file: &mut File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact(&mut buf)?;
    Ok(buf)
}

fn hash_file(path: &Path) -> Result<BlobId, BlobStoreError> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; HASH_CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(io_error("read", path))?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
    }
    let digest = context.finish();
    let digest: &[u8; 32] = digest.as_ref().try_into().expect("SHA-256 is 32 bytes");
    Ok(BlobId::from_sha256(digest))
}

fn remove_file(path: &Path) -> Result<bool, BlobStoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("remove", path)(e)),
    }
}

/// Makes a directory's entries (a rename, a new file) durable.
fn sync_dir(dir: &Path) -> Result<(), BlobStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_outside_are_validated() {
        let blob = BlobId::of(b"ciphertext");
        assert_eq!(blob.as_str().parse::<BlobId>().unwrap(), blob);
        for bad in [
            "",
            "../etc/passwd",
            &blob.as_str().to_uppercase(),
            &blob.as_str()[1..],
        ] {
            assert!(bad.parse::<BlobId>().is_err(), "{bad:?}");
        }
        let upload = UploadId::random().unwrap();
        assert_eq!(upload.as_str().len(), 32);
        assert_ne!(upload, UploadId::random().unwrap());
        assert!("0123456789abcdef0123456789ABCDEF"
            .parse::<UploadId>()
            .is_err());
    }

    #[test]
    fn a_partial_file_is_the_offset_and_promotion_moves_it_into_the_case() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let id = UploadId::random().unwrap();
        assert_eq!(store.partial_len(&id).unwrap(), 0);
        store.create_partial(&id).unwrap();
        let lock = store.lock_upload(&id).unwrap();
        assert!(store.lock_upload(&id).is_none(), "one writer at a time");
        let mut w = store.append(&lock).unwrap();
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        w.sync().unwrap();
        assert_eq!(store.partial_len(&id).unwrap(), 11);
        w.truncate(6).unwrap();
        drop(w);
        let mut w = store.append(&lock).unwrap();
        assert_eq!(w.len(), 6);
        w.write_all(b"there").unwrap();
        drop(w);
        drop(lock);
        assert!(store.lock_upload(&id).is_some(), "a dropped lock is free");
        let blob = store.partial_blob_id(&id).unwrap();
        assert_eq!(blob, BlobId::of(b"hello there"));
        let case = CaseId::random().unwrap();
        store.promote(&id, &case, &blob).unwrap();
        assert_eq!(store.partial_len(&id).unwrap(), 0);
        let (mut file, len) = store.open_blob(&case, &blob).unwrap();
        assert_eq!(len, 11);
        assert_eq!(read_chunk(&mut file, 11).unwrap(), b"hello there");
    }

    #[cfg(unix)]
    #[test]
    fn partial_uploads_blobs_and_their_directories_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let id = UploadId::random().unwrap();
        store.create_partial(&id).unwrap();
        assert_eq!(mode(&store.partial_path(&id)), 0o600);
        let lock = store.lock_upload(&id).unwrap();
        let mut w = store.append(&lock).unwrap();
        w.write_all(b"sealed bytes").unwrap();
        drop(w);
        drop(lock);
        let blob = store.partial_blob_id(&id).unwrap();
        let case = CaseId::random().unwrap();
        store.promote(&id, &case, &blob).unwrap();
        let stored = store.blob_path(&case, &blob);
        assert_eq!(mode(&stored), 0o600);
        assert_eq!(mode(stored.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join(BLOBS_DIR)), 0o700);
        assert_eq!(mode(&dir.path().join(UPLOADS_DIR)), 0o700);
        // A partial file made by an older build keeps no wider mode once
        // appended to: append never creates it wider, and the data
        // directory is tightened at start (`data_dir.rs`).
        let old = UploadId::random().unwrap();
        std::fs::write(store.partial_path(&old), b"x").unwrap();
        std::fs::set_permissions(
            store.partial_path(&old),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let reported = crate::data_dir::secure_data_dir(dir.path()).unwrap();
        assert!(
            reported
                .iter()
                .any(|t| t.path == store.partial_path(&old) && t.was == 0o644),
            "{reported:?}"
        );
        assert_eq!(mode(&store.partial_path(&old)), 0o600);
    }
}
