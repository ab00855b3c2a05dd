//! The bucket backend (`--blobs s3://BUCKET/PREFIX`): blobs and partial
//! uploads in an S3-compatible bucket (AWS S3, MinIO, Garage, Ceph), so
//! that any number of server processes share them and none keeps an
//! upload's bytes on its own disk.
//!
//! | key | holds |
//! |---|---|
//! | `PREFIX/blobs/<case id>/<blob id>` | a complete blob |
//! | `PREFIX/uploads/<upload id>/upload` | empty: the upload exists (the file backend's empty partial file) |
//! | `PREFIX/uploads/<upload id>/<offset>` | one part: the bytes a PATCH received from `offset` (20 digits) on, one object per batch (`tus::WRITE_BATCH`) |
//!
//! **The offset** is where the chain of parts ends: the part at 0, the
//! one at its end, and so on. A part is written with a conditional put
//! that fails if its key exists (`PutMode::Create`, S3's `If-None-Match:
//! *`), so two PATCHes at one offset, through one process or two, cannot
//! both write: the second is refused (409) and resumes from the new
//! offset. Parts are never overwritten, so every offset a writer reads is
//! a part boundary of the one chain. Each part is written once its batch
//! is received, so a HEAD through any process sees a PATCH's progress and
//! a cut PATCH keeps what it sent, as on disk.
//!
//! **Sealing** reads the parts in order, hashes them and streams them into
//! a multipart upload of the blob's key; only if the hash is the blob id
//! is the multipart upload completed (S3 makes the object appear whole, at
//! once), else it is aborted. Then the parts go, last first, the marker
//! after them.
//!
//! object_store is async (tokio, reqwest). Its calls run on a runtime of
//! this module's own, never on actix's: the blob functions are called
//! from blocking threads (`api::state::blocking`, the upkeep threads),
//! which wait for them (`wait`). One runtime for the process, made once
//! and never dropped, so no pooled connection outlives the runtime that
//! drives it.

use std::ffi::OsString;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use chrono::Utc;
use fieldsync_core::{BlobId, CaseId};
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use super::backend::{
    BlobBackend, BlobReader, BlobStoreError, Hasher, PartialEntry, PartialWriter, Sealed, UploadId,
};

/// The marker object of an upload.
const MARKER: &str = "upload";
/// Bytes per part of a blob's multipart upload: S3's smallest part size
/// (every part but the last must be at least 5 MiB).
const MULTIPART_CHUNK: usize = 5 << 20;
/// Parts of a blob's multipart upload in flight at once.
const MULTIPART_IN_FLIGHT: usize = 2;
/// What the sweep at start leaves alone in the uploads area because it
/// is this recent: another process may be creating that upload, whose
/// marker is written before its row.
const STRAY_GRACE: chrono::Duration = chrono::Duration::minutes(15);

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The runtime object_store's calls run on.
fn runtime() -> Result<&'static tokio::runtime::Runtime, BlobStoreError> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("blob-io")
        .enable_all()
        .build()
        .map_err(|e| BlobStoreError::new("start", "the blob storage runtime", e))?;
    // Two first callers at once: one runtime is kept, the other dropped
    // here, outside any runtime.
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Runs one object_store call to its end, blocking the calling thread.
///
/// On a thread of another tokio runtime (actix's blocking pool, where the
/// handlers' blob calls run, or its async thread while the server starts)
/// tokio refuses to `block_on` a second runtime; there the call waits on a
/// short-lived thread of its own instead. A thread costs microseconds
/// beside a request to the bucket.
fn wait<F>(f: F) -> Result<F::Output, BlobStoreError>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(rt.block_on(f));
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("blob-io-wait".into())
            .spawn_scoped(scope, || rt.block_on(f))
            .map_err(|e| BlobStoreError::new("start", "a thread for the blob storage", e))?
            .join()
            .map_err(|_| {
                BlobStoreError::new(
                    "finish",
                    "a call to the blob storage",
                    std::io::Error::other("the call panicked"),
                )
            })
    })
}

/// Blobs and partial uploads under a prefix of a bucket.
pub struct BucketBackend {
    store: Arc<dyn ObjectStore>,
    /// `PREFIX/blobs`.
    blobs: Key,
    /// `PREFIX/uploads`.
    uploads: Key,
}

fn bucket_error(
    action: &'static str,
    key: &Key,
) -> impl FnOnce(object_store::Error) -> BlobStoreError {
    let key = key.to_string();
    move |e| BlobStoreError::new(action, key, e)
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl BucketBackend {
    /// The bucket named, reached with the standard `AWS_*` environment
    /// variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …). Lists the prefix
    /// once, so that a wrong endpoint, bucket or credential is an error at
    /// start rather than at the first upload.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<BucketBackend, BlobStoreError> {
        let place = format!("s3://{bucket}/{prefix}");
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| BlobStoreError::new("configure", &place, e))?;
        let backend = BucketBackend::new(Arc::new(s3), prefix);
        let root = backend.blobs.clone();
        wait(backend.store.list_with_delimiter(Some(&root)))?
            .map_err(|e| BlobStoreError::new("list", &place, e))?;
        Ok(backend)
    }

    /// Blobs under `prefix` of any object store (the tests use one in
    /// memory).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> BucketBackend {
        let base: Key = prefix.split('/').collect();
        BucketBackend {
            store,
            blobs: base.clone().join("blobs"),
            uploads: base.join("uploads"),
        }
    }

    fn blob_key(&self, case: &CaseId, blob: &BlobId) -> Key {
        self.blobs.clone().join(case.as_str()).join(blob.as_str())
    }

    fn upload_dir(&self, id: &UploadId) -> Key {
        self.uploads.clone().join(id.as_str())
    }

    /// Every object of an upload: the chain of parts from 0 (offset and
    /// key, in order), and everything else (the marker, and any part off
    /// the chain).
    async fn objects(&self, id: &UploadId) -> Result<(Vec<Part>, Vec<Key>), BlobStoreError> {
        let dir = self.upload_dir(id);
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(bucket_error("list", &dir))?;
        let mut parts = Vec::new();
        let mut others = Vec::new();
        for meta in metas {
            let offset = meta
                .location
                .filename()
                .filter(|name| name.len() == 20)
                .and_then(|name| name.parse::<u64>().ok());
            match offset {
                Some(offset) => parts.push(Part {
                    offset,
                    size: meta.size,
                    key: meta.location,
                }),
                None => others.push(meta.location),
            }
        }
        parts.sort_by_key(|p| p.offset);
        let mut chain = Vec::with_capacity(parts.len());
        let mut end = 0;
        for part in parts {
            if part.offset == end {
                end += part.size;
                chain.push(part);
            } else {
                others.push(part.key);
            }
        }
        Ok((chain, others))
    }

    /// Deletes every object of an upload: parts last first, so that one
    /// cut short leaves a shorter chain, never a gap; the marker last.
    async fn delete_upload(&self, id: &UploadId) -> Result<bool, BlobStoreError> {
        let (chain, others) = self.objects(id).await?;
        let any = !chain.is_empty() || !others.is_empty();
        let marker = self.upload_dir(id).join(MARKER);
        let keys = chain
            .into_iter()
            .rev()
            .map(|p| p.key)
            .chain(others.into_iter().filter(|k| *k != marker))
            .chain(std::iter::once(marker.clone()));
        for key in keys {
            match self.store.delete(&key).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(BlobStoreError::new("delete", &key, e)),
            }
        }
        Ok(any)
    }

    /// Hashes the chain of parts and, unless the case holds the blob
    /// already, streams it into a multipart upload of the blob's key,
    /// completed only if the hash is `blob`.
    async fn assemble(
        &self,
        chain: &[Part],
        target: &Key,
        blob: &BlobId,
    ) -> Result<Sealed, BlobStoreError> {
        let exists = match self.store.head(target).await {
            Ok(_) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(BlobStoreError::new("look for", target, e)),
        };
        let mut writer = if exists {
            None
        } else {
            let upload = self
                .store
                .put_multipart(target)
                .await
                .map_err(bucket_error("start a multipart upload of", target))?;
            Some(WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK))
        };
        let result = self.hash_into(chain, writer.as_mut()).await;
        let matched = match result {
            Ok(actual) => actual == *blob,
            Err(e) => {
                if let Some(writer) = writer {
                    // Best effort: an incomplete multipart upload costs
                    // storage until the bucket's lifecycle rule ends it.
                    let _ = writer.abort().await;
                }
                return Err(e);
            }
        };
        match writer {
            Some(writer) if matched => {
                writer
                    .finish()
                    .await
                    .map_err(bucket_error("complete the multipart upload of", target))?;
            }
            Some(writer) => {
                writer
                    .abort()
                    .await
                    .map_err(bucket_error("abort the multipart upload of", target))?;
            }
            None => {}
        }
        Ok(if matched {
            Sealed::Stored
        } else {
            Sealed::Mismatch
        })
    }

    async fn hash_into(
        &self,
        chain: &[Part],
        mut writer: Option<&mut WriteMultipart>,
    ) -> Result<BlobId, BlobStoreError> {
        let mut hasher = Hasher::new();
        for part in chain {
            let bytes = async { self.store.get(&part.key).await?.bytes().await }
                .await
                .map_err(bucket_error("read", &part.key))?;
            hasher.update(&bytes);
            if let Some(writer) = writer.as_deref_mut() {
                writer
                    .wait_for_capacity(MULTIPART_IN_FLIGHT)
                    .await
                    .map_err(bucket_error("upload a part for", &part.key))?;
                writer.write(&bytes);
            }
        }
        Ok(hasher.finish())
    }
}

/// One stored part of an upload.
struct Part {
    offset: u64,
    size: u64,
    key: Key,
}

impl BlobBackend for BucketBackend {
    fn create_partial(&self, id: &UploadId) -> Result<(), BlobStoreError> {
        let marker = self.upload_dir(id).join(MARKER);
        wait(self.store.put(&marker, PutPayload::new()))?
            .map_err(bucket_error("create", &marker))?;
        Ok(())
    }

    fn partial_len(&self, id: &UploadId) -> Result<u64, BlobStoreError> {
        let (chain, _) = wait(self.objects(id))??;
        Ok(chain.last().map_or(0, |p| p.offset + p.size))
    }

    fn has_partial(&self, id: &UploadId) -> Result<bool, BlobStoreError> {
        let marker = self.upload_dir(id).join(MARKER);
        match wait(self.store.head(&marker))? {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(BlobStoreError::new("look for", &marker, e)),
        }
    }

    fn append(&self, id: &UploadId) -> Result<Box<dyn PartialWriter>, BlobStoreError> {
        let len = self.partial_len(id)?;
        Ok(Box::new(PartWriter {
            store: self.store.clone(),
            dir: self.upload_dir(id),
            len,
            written: Vec::new(),
        }))
    }

    fn seal(
        &self,
        id: &UploadId,
        case: &CaseId,
        blob: &BlobId,
        _received: Option<&BlobId>,
    ) -> Result<Sealed, BlobStoreError> {
        // The parts must be read to be assembled anyway, so they are
        // hashed on the way, whatever the writer hashed.
        wait(async {
            let (chain, _) = self.objects(id).await?;
            let sealed = self
                .assemble(&chain, &self.blob_key(case, blob), blob)
                .await?;
            if sealed == Sealed::Stored {
                self.delete_upload(id).await?;
            }
            Ok(sealed)
        })?
    }

    fn remove_partial(&self, id: &UploadId) -> Result<bool, BlobStoreError> {
        wait(self.delete_upload(id))?
    }

    fn partial_entries(&self) -> Result<Vec<PartialEntry>, BlobStoreError> {
        let metas: Vec<ObjectMeta> = wait(self.store.list(Some(&self.uploads)).try_collect())?
            .map_err(bucket_error("list", &self.uploads))?;
        let recent = Utc::now() - STRAY_GRACE;
        let mut uploads = std::collections::BTreeMap::<UploadId, bool>::new();
        let mut entries = Vec::new();
        for meta in metas {
            let Some(rest) = meta.location.prefix_match(&self.uploads) else {
                continue;
            };
            let rest: Vec<String> = rest.map(|p| p.as_ref().to_owned()).collect();
            let young = meta.last_modified > recent;
            match rest.first().map(|first| UploadId::from_str(first)) {
                Some(Ok(id)) if rest.len() > 1 => {
                    *uploads.entry(id).or_default() |= young;
                }
                _ if young => {}
                _ => entries.push(PartialEntry::Stray(rest.join("/").into())),
            }
        }
        entries.extend(
            uploads
                .into_iter()
                .filter(|(_, young)| !young)
                .map(|(id, _)| PartialEntry::Upload(id)),
        );
        Ok(entries)
    }

    fn remove_stray(&self, name: &OsString) -> Result<bool, BlobStoreError> {
        let Some(name) = name.to_str() else {
            return Ok(false);
        };
        let mut key = self.uploads.clone();
        key.extend(name.split('/'));
        match wait(self.store.delete(&key))? {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(BlobStoreError::new("delete", &key, e)),
        }
    }

    fn stored_blob_id(
        &self,
        case: &CaseId,
        blob: &BlobId,
    ) -> Result<Option<BlobId>, BlobStoreError> {
        let key = self.blob_key(case, blob);
        wait(async {
            let got = match self.store.get(&key).await {
                Ok(got) => got,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(BlobStoreError::new("read", &key, e)),
            };
            let mut hasher = Hasher::new();
            let mut stream = got.into_stream();
            while let Some(bytes) = stream
                .try_next()
                .await
                .map_err(bucket_error("read", &key))?
            {
                hasher.update(&bytes);
            }
            Ok(Some(hasher.finish()))
        })?
    }

    fn open_blob(
        &self,
        case: &CaseId,
        blob: &BlobId,
        start: u64,
    ) -> Result<(Box<dyn BlobReader>, u64), BlobStoreError> {
        let key = self.blob_key(case, blob);
        let meta = wait(self.store.head(&key))?.map_err(bucket_error("look for", &key))?;
        let reader = RangeReader {
            store: self.store.clone(),
            key,
            at: start,
        };
        Ok((Box::new(reader), meta.size))
    }
}

/// Writes an upload's parts, one object per batch.
struct PartWriter {
    store: Arc<dyn ObjectStore>,
    dir: Key,
    len: u64,
    /// Offsets of the parts this writer created, for `truncate`.
    written: Vec<u64>,
}

impl PartialWriter for PartWriter {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), BlobStoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let key = self.dir.clone().join(format!("{:020}", self.len));
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        wait(
            self.store
                .put_opts(&key, PutPayload::from(bytes.to_vec()), create),
        )?
        .map_err(bucket_error("store", &key))?;
        self.written.push(self.len);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Nothing to do: a part is durable once its put is answered.
    fn sync(&mut self) -> Result<(), BlobStoreError> {
        Ok(())
    }

    /// Deletes the parts this writer wrote from `len` on (a refused PATCH
    /// takes back what it wrote, from where it started).
    fn truncate(&mut self, len: u64) -> Result<(), BlobStoreError> {
        while let Some(&offset) = self.written.last() {
            if offset < len {
                break;
            }
            let key = self.dir.clone().join(format!("{offset:020}"));
            match wait(self.store.delete(&key))? {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(BlobStoreError::new("delete", &key, e)),
            }
            self.written.pop();
            self.len = offset;
        }
        Ok(())
    }
}

/// Reads a blob one ranged GET per chunk, so a download may start
/// anywhere and holds no connection between chunks.
struct RangeReader {
    store: Arc<dyn ObjectStore>,
    key: Key,
    at: u64,
}

impl BlobReader for RangeReader {
    fn read_chunk(&mut self, len: usize) -> Result<Vec<u8>, BlobStoreError> {
        let range = self.at..self.at + len as u64;
        let bytes = wait(self.store.get_range(&self.key, range))?
            .map_err(bucket_error("read", &self.key))?;
        self.at += bytes.len() as u64;
        Ok(bytes.to_vec())
    }
}
