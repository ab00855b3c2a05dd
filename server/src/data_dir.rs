//! The data directory, readable by the server's user only: the store's
//! database and the blob files both live in it.

use std::path::{Path, PathBuf};

use fieldsync_core::private_fs;

/// A file operation on the data directory failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot secure {}: {source}", path.display())]
pub struct DataDirError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Creates the data directory and its `blobs/` owner-only (0700), and
/// narrows anything in it that others could read to 0700 or 0600. Returns
/// what it narrowed: each is a path that was exposed, which the caller
/// reports.
pub fn secure_data_dir(data_dir: &Path) -> Result<Vec<private_fs::Tightened>, DataDirError> {
    for dir in [data_dir.to_owned(), data_dir.join("blobs")] {
        private_fs::create_dir_all(&dir).map_err(|source| DataDirError { path: dir, source })?;
    }
    private_fs::tighten(data_dir).map_err(|source| DataDirError {
        path: data_dir.to_owned(),
        source,
    })
}
