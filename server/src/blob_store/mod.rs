//! Attachment ciphertext at rest: complete blobs and partial uploads,
//! behind one handle ([`BlobStore`]) whose backend the HTTP layer, the
//! upload rules (`tus.rs`) and the upkeep threads never know. Every byte
//! here is ciphertext; the server cannot read it and never logs it.
//!
//! Two backends implement [`BlobBackend`]:
//!
//! | `--blobs` | backend | complete blob | partial upload |
//! |---|---|---|---|
//! | (none) | `files.rs` [`FileBackend`] | `DATA/blobs/<case id>/<blob id>` | `DATA/uploads/<upload id>`, its length the offset |
//! | `s3://BUCKET/PREFIX` | `bucket.rs` [`BucketBackend`] | `PREFIX/blobs/<case id>/<blob id>` | `PREFIX/uploads/<upload id>/upload` (a marker) and one object per batch received, `PREFIX/uploads/<upload id>/<offset, 20 digits>`; the offset is where the chain of parts from 0 ends |
//!
//! What both keep true, and `tus.rs` relies on:
//! - the offset survives a SIGKILL of the server: it is read from what is
//!   stored, never kept in memory;
//! - a blob is stored under its id only after its bytes hashed to that id
//!   ([`BlobStore::seal`]), and is durable once that returns;
//! - a new upload's partial (file or marker) exists before its row, and
//!   is removed only after the row (or once its bytes were moved into
//!   place), so an incomplete upload without one is an upload whose
//!   verified bytes are in place.
//!
//! All functions here block; the HTTP layer calls them off the async
//! workers (`api::state::blocking`). The bucket backend runs its async
//! calls on a runtime of its own (`bucket.rs`). Ids are validated types
//! ([`BlobId`], [`UploadId`]), so no name from outside ever reaches a path
//! or a key unchecked.

mod backend;
mod bucket;
mod files;

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use fieldsync_core::CaseId;

pub use backend::{
    BlobBackend, BlobIdError, BlobLocation, BlobLocationError, BlobReader, BlobStoreError,
    PartialEntry, PartialWriter, Sealed, StorageFailure, UploadId,
};
pub use bucket::BucketBackend;
pub use files::{FileBackend, BLOBS_DIR, UPLOADS_DIR};

/// A blob's id (the SHA-256 of its ciphertext) is the core's: a signed
/// report names its attachments by it.
pub use fieldsync_core::BlobId;

/// The blob backend and which uploads a request is writing right now.
/// Cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Box<dyn BlobBackend>,
    /// Uploads a PATCH (or the sweeper) of this process holds; see
    /// [`BlobStore::lock_upload`].
    locked: Mutex<HashSet<UploadId>>,
}

/// Held while one request writes an upload; released when dropped.
pub struct UploadLock {
    inner: Arc<Inner>,
    id: UploadId,
}

impl UploadLock {
    pub fn id(&self) -> &UploadId {
        &self.id
    }
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

impl BlobStore {
    /// Opens the blobs at `location`: the data directory's `blobs/` and
    /// `uploads/` (created if needed), or the bucket, which is checked to
    /// be reachable with the credentials given.
    pub fn open(data_dir: &Path, location: &BlobLocation) -> Result<BlobStore, BlobStoreError> {
        let backend: Box<dyn BlobBackend> = match location {
            BlobLocation::DataDir => Box::new(FileBackend::open(data_dir)?),
            BlobLocation::Bucket { bucket, prefix } => {
                Box::new(BucketBackend::from_env(bucket, prefix)?)
            }
        };
        Ok(Self::with_backend(backend))
    }

    pub fn with_backend(backend: Box<dyn BlobBackend>) -> BlobStore {
        BlobStore {
            inner: Arc::new(Inner {
                backend,
                locked: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Takes the upload for one writer of this process, or `None` if
    /// another holds it. Across processes, the bucket backend refuses a
    /// second writer at the same offset by itself
    /// ([`BlobStoreError::is_taken`]).
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

    fn backend(&self) -> &dyn BlobBackend {
        self.inner.backend.as_ref()
    }

    /// Creates the empty partial of a new upload.
    pub fn create_partial(&self, id: &UploadId) -> Result<(), BlobStoreError> {
        self.backend().create_partial(id)
    }

    /// How many bytes of the upload are stored: its offset.
    pub fn partial_len(&self, id: &UploadId) -> Result<u64, BlobStoreError> {
        self.backend().partial_len(id)
    }

    /// Whether an upload has a partial.
    pub fn has_partial(&self, id: &UploadId) -> Result<bool, BlobStoreError> {
        self.backend().has_partial(id)
    }

    /// A writer at the upload's offset. Only the holder of the upload's
    /// lock may write, so the offset it reads stays true while it writes.
    pub fn append(&self, lock: &UploadLock) -> Result<Box<dyn PartialWriter>, BlobStoreError> {
        self.backend().append(&lock.id)
    }

    /// Checks the upload's bytes against `blob` and stores them as `blob`
    /// of `case` if they match ([`BlobBackend::seal`]).
    pub fn seal(
        &self,
        lock: &UploadLock,
        case: &CaseId,
        blob: &BlobId,
        received: Option<&BlobId>,
    ) -> Result<Sealed, BlobStoreError> {
        self.backend().seal(&lock.id, case, blob, received)
    }

    /// Removes an upload's partial; `false` if there was none.
    pub fn remove_partial(&self, id: &UploadId) -> Result<bool, BlobStoreError> {
        self.backend().remove_partial(id)
    }

    /// Removes a stray of the partial-upload area.
    pub fn remove_stray(&self, name: &OsString) -> Result<bool, BlobStoreError> {
        self.backend().remove_stray(name)
    }

    /// Everything in the partial-upload area.
    pub fn partial_entries(&self) -> Result<Vec<PartialEntry>, BlobStoreError> {
        self.backend().partial_entries()
    }

    /// SHA-256 of the stored `blob` of `case`, or `None` if there is none.
    pub fn stored_blob_id(
        &self,
        case: &CaseId,
        blob: &BlobId,
    ) -> Result<Option<BlobId>, BlobStoreError> {
        self.backend().stored_blob_id(case, blob)
    }

    /// Opens a stored blob at `start`; returns the reader and its size.
    pub fn open_blob(
        &self,
        case: &CaseId,
        blob: &BlobId,
        start: u64,
    ) -> Result<(Box<dyn BlobReader>, u64), BlobStoreError> {
        self.backend().open_blob(case, blob, start)
    }
}

#[cfg(test)]
mod tests;
