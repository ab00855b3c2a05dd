//! What every blob backend shares: the ids, where blobs are kept
//! (`--blobs`), the errors, and the operations a backend provides
//! ([`BlobBackend`]) for `BlobStore` (`mod.rs`) to hand out.

use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;

use fieldsync_core::{BlobId, CaseId};
use ring::rand::{SecureRandom, SystemRandom};

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

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({})", self.0)
    }
}

/// Where blobs are kept: `--blobs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BlobLocation {
    /// In the data directory (no `--blobs`).
    #[default]
    DataDir,
    /// `s3://BUCKET/PREFIX`: an S3-compatible bucket, reached with the
    /// standard `AWS_*` environment variables.
    Bucket { bucket: String, prefix: String },
}

/// A `--blobs` value that is not `s3://BUCKET/PREFIX`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--blobs must be s3://BUCKET/PREFIX (an S3-compatible bucket and a key prefix), got {0:?}")]
pub struct BlobLocationError(String);

impl FromStr for BlobLocation {
    type Err = BlobLocationError;
    fn from_str(s: &str) -> Result<Self, BlobLocationError> {
        let bad = || BlobLocationError(s.chars().take(200).collect());
        let rest = s.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        // Bucket names: 3 to 63 lowercase letters, digits, dots, hyphens.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'));
        // A prefix is a key's first segments: plain ones only, so that no
        // `..`, empty segment or odd byte reaches a key.
        let prefix_ok = prefix.split('/').all(|seg| {
            seg.is_empty() && prefix.is_empty()
                || !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
        if !bucket_ok || !prefix_ok {
            return Err(bad());
        }
        Ok(BlobLocation::Bucket {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobLocation::DataDir => f.write_str("the data directory"),
            BlobLocation::Bucket { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// What failed underneath a blob operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageFailure {
    #[error(transparent)]
    Disk(#[from] std::io::Error),
    #[error(transparent)]
    Bucket(#[from] object_store::Error),
}

/// A blob operation failed. Never sent to a client.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {target}: {source}")]
pub struct BlobStoreError {
    pub action: &'static str,
    /// The file's path or the object's key.
    pub target: String,
    #[source]
    pub source: StorageFailure,
}

impl BlobStoreError {
    pub(crate) fn new(
        action: &'static str,
        target: impl fmt::Display,
        source: impl Into<StorageFailure>,
    ) -> Self {
        BlobStoreError {
            action,
            target: target.to_string(),
            source: source.into(),
        }
    }

    /// The disk (or the user's disk quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            &self.source,
            StorageFailure::Disk(e) if matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        )
    }

    /// Another writer, perhaps in another server process, stored these
    /// bytes of the upload first: the caller's offset is stale.
    pub fn is_taken(&self) -> bool {
        matches!(
            &self.source,
            StorageFailure::Bucket(object_store::Error::AlreadyExists { .. })
        )
    }

    /// The bucket (not the local disk) failed: unreachable, refused the
    /// credentials, or answered with an error.
    pub fn is_bucket(&self) -> bool {
        matches!(&self.source, StorageFailure::Bucket(_))
    }
}

/// What is in the partial-upload area.
pub enum PartialEntry {
    /// Bytes (or the marker) of this upload.
    Upload(UploadId),
    /// Something whose name is no upload id (left by something else),
    /// named as [`BlobBackend::remove_stray`] takes it.
    Stray(OsString),
}

/// How [`BlobStore::seal`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Sealed {
    /// The bytes hashed to the blob id and the blob is stored, durably;
    /// the upload's partial is gone.
    Stored,
    /// The bytes hash to something else; nothing was stored and the
    /// partial is left for the caller to remove.
    Mismatch,
}

/// Where the bytes of blobs and partial uploads are kept. The upload's
/// lock ([`BlobStore::lock_upload`]) is taken by the caller where this
/// says so.
pub trait BlobBackend: Send + Sync {
    /// Creates the (empty) partial of a new upload.
    fn create_partial(&self, id: &UploadId) -> Result<(), BlobStoreError>;
    /// How many bytes of the upload are stored: its offset (0 without a
    /// partial).
    fn partial_len(&self, id: &UploadId) -> Result<u64, BlobStoreError>;
    /// Whether the upload's partial exists.
    fn has_partial(&self, id: &UploadId) -> Result<bool, BlobStoreError>;
    /// A writer that appends at the upload's offset. The caller holds the
    /// upload's lock.
    fn append(&self, id: &UploadId) -> Result<Box<dyn PartialWriter>, BlobStoreError>;
    /// Checks that the upload's bytes hash to `blob` and, if they do,
    /// stores them as `blob` of `case` and removes the partial (if the
    /// case holds the blob already, only the latter). `received` is the
    /// hash of every byte as it was written, when the writer computed it;
    /// a backend may use it instead of reading the bytes again. The
    /// caller holds the upload's lock.
    fn seal(
        &self,
        id: &UploadId,
        case: &CaseId,
        blob: &BlobId,
        received: Option<&BlobId>,
    ) -> Result<Sealed, BlobStoreError>;
    /// Removes an upload's partial; `false` if there was none.
    fn remove_partial(&self, id: &UploadId) -> Result<bool, BlobStoreError>;
    /// Every upload with a partial, and strays. A backend that other
    /// processes write to leaves out what was written too recently to
    /// tell from an upload being created (its partial comes before its
    /// row).
    fn partial_entries(&self) -> Result<Vec<PartialEntry>, BlobStoreError>;
    /// Removes a stray found by [`BlobBackend::partial_entries`].
    fn remove_stray(&self, name: &OsString) -> Result<bool, BlobStoreError>;
    /// SHA-256 of the stored `blob` of `case`, or `None` if there is none.
    fn stored_blob_id(
        &self,
        case: &CaseId,
        blob: &BlobId,
    ) -> Result<Option<BlobId>, BlobStoreError>;
    /// Opens a stored blob to read from `start` on; returns the reader
    /// and the blob's stored size.
    fn open_blob(
        &self,
        case: &CaseId,
        blob: &BlobId,
        start: u64,
    ) -> Result<(Box<dyn BlobReader>, u64), BlobStoreError>;
}

/// Appends to one upload. Dropping it ends the writing; what was written
/// is kept.
pub trait PartialWriter: Send {
    /// The upload's offset as this writer left it (durable once synced).
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), BlobStoreError>;
    /// Makes what was written durable.
    fn sync(&mut self) -> Result<(), BlobStoreError>;
    /// Takes back what this writer wrote past `len` and makes it durable.
    fn truncate(&mut self, len: u64) -> Result<(), BlobStoreError>;
}

/// Reads a stored blob in order.
pub trait BlobReader: Send {
    /// The next `len` bytes (the caller never asks past the end).
    fn read_chunk(&mut self, len: usize) -> Result<Vec<u8>, BlobStoreError>;
}

/// SHA-256 as it is computed over bytes read in pieces.
pub struct Hasher(ring::digest::Context);

impl Hasher {
    pub fn new() -> Self {
        Hasher(ring::digest::Context::new(&ring::digest::SHA256))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> BlobId {
        BlobId::of_digest(&self.0.finish())
    }
}
