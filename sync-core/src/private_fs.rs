//! Directories and files readable by their owner only: device homes and the
//! server's data directory.
//!
//! Everything under such a directory is created 0700 (directories) or 0600
//! (files), whatever the umask. [`tighten`] walks a directory made by an
//! older build, or loosened by hand, and narrows whatever others could read,
//! returning what it changed so the caller can say so: a wider mode is a sign
//! that something was exposed, and the owner should know.
//!
//! Only Unix has these modes; elsewhere the functions create plainly and
//! [`tighten`] finds nothing.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Mode of a private directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of a private file.
pub const FILE_MODE: u32 = 0o600;

/// A path whose mode let others in, and what it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tightened {
    pub path: PathBuf,
    /// The permission bits found (e.g. `0o755`).
    pub was: u32,
    /// The permission bits set (`0o700` or `0o600`).
    pub now: u32,
}

impl std::fmt::Display for Tightened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} had mode {:04o}, readable by others than its owner; it is now {:04o}",
            self.path.display(),
            self.was,
            self.now
        )
    }
}

/// Creates `dir` and any missing parent as owner-only directories.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)
}

/// Options that create a file owner-only (the mode applies to new files).
pub fn open_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options
}

/// Creates (or truncates) an owner-only file for writing.
pub fn create(path: &Path) -> io::Result<File> {
    open_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Creates `path` empty and owner-only if it does not exist, so that a
/// program that then opens it (SQLite) keeps its mode.
pub fn touch(path: &Path) -> io::Result<()> {
    open_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
}

/// Makes `dir` owner-only, with everything under it: each directory whose
/// mode lets group or others in becomes 0700, each such file 0600.
/// Symbolic links are left alone and not followed. Returns what it changed.
pub fn tighten(dir: &Path) -> io::Result<Vec<Tightened>> {
    let mut changed = Vec::new();
    #[cfg(unix)]
    {
        // Another process on the same home may remove a file while this
        // walks (an uploaded outbox file, SQLite's -wal at close): a path
        // gone meanwhile needs no tightening.
        let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let mut pending = vec![dir.to_owned()];
        while let Some(path) = pending.pop() {
            let meta = match std::fs::symlink_metadata(&path) {
                Err(e) if gone(&e) && path != dir => continue,
                meta => meta?,
            };
            let is_dir = meta.is_dir();
            if !is_dir && !meta.is_file() {
                continue;
            }
            let want = if is_dir { DIR_MODE } else { FILE_MODE };
            match narrow(&path, &meta, want) {
                Ok(Some(t)) => changed.push(t),
                Ok(None) => {}
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e),
            }
            if is_dir {
                let entries = match std::fs::read_dir(&path) {
                    Err(e) if gone(&e) => continue,
                    entries => entries?,
                };
                for entry in entries {
                    pending.push(entry?.path());
                }
            }
        }
        changed.sort_by(|a, b| a.path.cmp(&b.path));
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(changed)
}

#[cfg(unix)]
fn narrow(path: &Path, meta: &std::fs::Metadata, want: u32) -> io::Result<Option<Tightened>> {
    use std::os::unix::fs::PermissionsExt;
    let was = meta.permissions().mode() & 0o7777;
    if was & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(want))?;
    Ok(Some(Tightened {
        path: path.to_owned(),
        was,
        now: want,
    }))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn what_is_created_here_is_owner_only_whatever_the_umask() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        create(&file).unwrap();
        let touched = dir.join("t");
        touch(&touched).unwrap();
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&touched), 0o600);
        assert!(tighten(&root.path().join("a")).unwrap().is_empty());
    }

    #[test]
    fn a_wide_tree_is_tightened_and_each_change_reported() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        std::fs::create_dir_all(home.join("outbox")).unwrap();
        std::fs::write(home.join("db"), b"x").unwrap();
        std::fs::write(home.join("outbox/blob"), b"x").unwrap();
        std::fs::write(home.join("own"), b"x").unwrap();
        for (path, m) in [
            ("", 0o755),
            ("outbox", 0o750),
            ("db", 0o644),
            ("outbox/blob", 0o604),
            ("own", 0o600),
        ] {
            std::fs::set_permissions(home.join(path), std::fs::Permissions::from_mode(m)).unwrap();
        }
        let changed = tighten(&home).unwrap();
        let seen: Vec<(PathBuf, u32, u32)> = changed
            .iter()
            .map(|t| (t.path.clone(), t.was, t.now))
            .collect();
        assert_eq!(
            seen,
            vec![
                (home.clone(), 0o755, 0o700),
                (home.join("db"), 0o644, 0o600),
                (home.join("outbox"), 0o750, 0o700),
                (home.join("outbox/blob"), 0o604, 0o600),
            ]
        );
        assert!(changed[0].to_string().contains("mode 0755"));
        assert_eq!(mode(&home), 0o700);
        assert_eq!(mode(&home.join("db")), 0o600);
        assert_eq!(mode(&home.join("outbox")), 0o700);
        assert_eq!(mode(&home.join("outbox/blob")), 0o600);
        assert!(tighten(&home).unwrap().is_empty());
    }
}
