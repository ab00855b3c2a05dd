//! The file backend (no `--blobs`): blobs and partial uploads in the data
//! directory.
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

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use fieldsync_core::{private_fs, BlobId, CaseId};

use super::backend::{
    BlobBackend, BlobReader, BlobStoreError, Hasher, PartialEntry, PartialWriter, Sealed, UploadId,
};

/// The directory of complete blobs, inside the data directory.
pub const BLOBS_DIR: &str = "blobs";
/// The directory of partial uploads, inside the data directory.
pub const UPLOADS_DIR: &str = "uploads";

/// Bytes read at a time when hashing a file.
const HASH_CHUNK: usize = 1 << 20;

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BlobStoreError {
    let path = path.display().to_string();
    move |source| BlobStoreError::new(action, path, source)
}

/// The blob and upload directories of a data directory.
pub struct FileBackend {
    blobs_dir: PathBuf,
    uploads_dir: PathBuf,
}

impl FileBackend {
    /// Opens (creating if needed) `blobs/` and `uploads/` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<FileBackend, BlobStoreError> {
        let blobs_dir = data_dir.join(BLOBS_DIR);
        let uploads_dir = data_dir.join(UPLOADS_DIR);
        for dir in [&blobs_dir, &uploads_dir] {
            private_fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        }
        Ok(FileBackend {
            blobs_dir,
            uploads_dir,
        })
    }

    /// Where an upload's received bytes are.
    pub fn partial_path(&self, id: &UploadId) -> PathBuf {
        self.uploads_dir.join(id.as_str())
    }

    /// Where a complete blob of a case is.
    pub fn blob_path(&self, case: &CaseId, blob: &BlobId) -> PathBuf {
        self.blobs_dir.join(case.as_str()).join(blob.as_str())
    }

    /// Moves a verified upload into its case's blob directory and makes the
    /// move durable. If the case already holds the blob (another upload of
    /// the same bytes finished first), the partial file is removed instead.
    fn promote(&self, id: &UploadId, case: &CaseId, blob: &BlobId) -> Result<(), BlobStoreError> {
        let from = self.partial_path(id);
        let to = self.blob_path(case, blob);
        if to.exists() {
            return self.remove_partial(id).map(|_| ());
        }
        let case_dir = self.blobs_dir.join(case.as_str());
        if !case_dir.exists() {
            private_fs::create_dir_all(&case_dir)
                .map_err(io_error("create directory", &case_dir))?;
            sync_dir(&self.blobs_dir)?;
        }
        std::fs::rename(&from, &to).map_err(io_error("move into place", &to))?;
        sync_dir(&case_dir)?;
        sync_dir(&self.uploads_dir)
    }
}

impl BlobBackend for FileBackend {
    fn create_partial(&self, id: &UploadId) -> Result<(), BlobStoreError> {
        let path = self.partial_path(id);
        private_fs::open_options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error("create", &path))?;
        Ok(())
    }

    fn partial_len(&self, id: &UploadId) -> Result<u64, BlobStoreError> {
        let path = self.partial_path(id);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_error("read the size of", &path)(e)),
        }
    }

    fn has_partial(&self, id: &UploadId) -> Result<bool, BlobStoreError> {
        Ok(self.partial_path(id).is_file())
    }

    fn append(&self, id: &UploadId) -> Result<Box<dyn PartialWriter>, BlobStoreError> {
        let path = self.partial_path(id);
        let mut file = private_fs::open_options()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("open", &path))?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(io_error("seek in", &path))?;
        Ok(Box::new(FileWriter { file, path, len }))
    }

    fn seal(
        &self,
        id: &UploadId,
        case: &CaseId,
        blob: &BlobId,
        received: Option<&BlobId>,
    ) -> Result<Sealed, BlobStoreError> {
        let actual = match received {
            Some(id) => id.clone(),
            None => hash_file(&self.partial_path(id))?,
        };
        if actual != *blob {
            return Ok(Sealed::Mismatch);
        }
        self.promote(id, case, blob)?;
        Ok(Sealed::Stored)
    }

    fn remove_partial(&self, id: &UploadId) -> Result<bool, BlobStoreError> {
        remove_file(&self.partial_path(id))
    }

    fn partial_entries(&self) -> Result<Vec<PartialEntry>, BlobStoreError> {
        let dir = &self.uploads_dir;
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error("list", dir))? {
            let entry = entry.map_err(io_error("list", dir))?;
            let name = entry.file_name();
            match name.to_str().map(UploadId::from_str) {
                Some(Ok(id)) => entries.push(PartialEntry::Upload(id)),
                _ => entries.push(PartialEntry::Stray(name)),
            }
        }
        Ok(entries)
    }

    fn remove_stray(&self, name: &OsString) -> Result<bool, BlobStoreError> {
        remove_file(&self.uploads_dir.join(name))
    }

    fn stored_blob_id(
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

    fn open_blob(
        &self,
        case: &CaseId,
        blob: &BlobId,
        start: u64,
    ) -> Result<(Box<dyn BlobReader>, u64), BlobStoreError> {
        let path = self.blob_path(case, blob);
        let mut file = File::open(&path).map_err(io_error("open", &path))?;
        let len = file
            .metadata()
            .map_err(io_error("read the size of", &path))?
            .len();
        file.seek(SeekFrom::Start(start))
            .map_err(io_error("seek in", &path))?;
        Ok((Box::new(FileReader { file, path }), len))
    }
}

/// Appends to one upload's partial file.
struct FileWriter {
    file: File,
    path: PathBuf,
    len: u64,
}

impl PartialWriter for FileWriter {
    fn len(&self) -> u64 {
        self.len
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), BlobStoreError> {
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

    fn sync(&mut self) -> Result<(), BlobStoreError> {
        self.file.sync_data().map_err(io_error("sync", &self.path))
    }

    fn truncate(&mut self, len: u64) -> Result<(), BlobStoreError> {
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

/// Reads a blob file from its position on.
struct FileReader {
    file: File,
    path: PathBuf,
}

impl BlobReader for FileReader {
    fn read_chunk(&mut self, len: usize) -> Result<Vec<u8>, BlobStoreError> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact(&mut buf)
            .map_err(io_error("read", &self.path))?;
        Ok(buf)
    }
}

fn hash_file(path: &Path) -> Result<BlobId, BlobStoreError> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(io_error("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
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
