//! Attachments sealed on this device and waiting for upload. A file is
//! encrypted the moment it is attached ([`Replica::seal_attachment`]);
//! only the ciphertext is written under `<home>/outbox/<blob id>`, and the
//! plaintext is never copied into the home. Once the server has the whole
//! blob, the row and the file are removed ([`Replica::upload_done`]): a
//! seized phone holds as little as possible.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};

pub use super::error::OutboxError;
use super::error::ReplicaError;
use super::store::Replica;
use crate::envelope::{self, EnvelopeError};
use crate::ids::ReportId;
use crate::model::AttachmentRef;

const OUTBOX_DIR: &str = "outbox";

/// An attachment waiting for upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub blob: String,
    pub report: ReportId,
    pub attachment_id: String,
    /// Ciphertext bytes.
    pub size: u64,
    /// Where the server keeps the partial upload, once one was created.
    pub upload_url: Option<String>,
    pub path: PathBuf,
}

impl Replica {
    /// The directory sealed attachments wait in.
    pub fn outbox_dir(&self) -> Result<PathBuf, OutboxError> {
        Ok(self
            .home
            .as_ref()
            .ok_or(OutboxError::NoHome)?
            .join(OUTBOX_DIR))
    }

    /// Encrypts `path` with the current key of `case` into the outbox and
    /// returns the reference to put in a report (with
    /// [`Replica::create_report_with`] or an [`Edit::AddAttachment`]).
    /// Reads the file twice (hash, then encrypt), one chunk at a time.
    pub fn seal_attachment(
        &self,
        case: &str,
        path: &Path,
        media_type: &str,
        captured_at: Option<String>,
    ) -> Result<AttachmentRef, ReplicaError> {
        let key = self.sealing_key(case)?;
        let dir = self.outbox_dir()?;
        let write_err = |source| OutboxError::Write {
            path: dir.clone(),
            source,
        };
        crate::private_fs::create_dir_all(&dir).map_err(write_err)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut input = BufReader::new(File::open(path).map_err(|source| OutboxError::Read {
            path: path.to_owned(),
            source,
        })?);
        let id = ReportId::random()
            .map_err(|_| OutboxError::Seal {
                path: path.to_owned(),
                source: EnvelopeError::Random,
            })?
            .to_string();
        let sealing = dir.join(format!(".sealing-{id}"));
        let result = (|| {
            let file = crate::private_fs::create(&sealing).map_err(write_err)?;
            let mut output = BufWriter::new(file);
            let sealed = envelope::seal(
                &key,
                &name,
                media_type,
                captured_at,
                &mut input,
                &mut output,
            )
            .map_err(|source| match source {
                EnvelopeError::Io(source) => OutboxError::Read {
                    path: path.to_owned(),
                    source,
                },
                source => OutboxError::Seal {
                    path: path.to_owned(),
                    source,
                },
            })?;
            let file = output.into_inner().map_err(|e| write_err(e.into_error()))?;
            file.sync_all().map_err(write_err)?;
            std::fs::rename(&sealing, dir.join(sealed.blob_id.as_str())).map_err(write_err)?;
            sync_dir(&dir).map_err(write_err)?;
            Ok::<_, OutboxError>(sealed)
        })();
        let sealed = match result {
            Ok(sealed) => sealed,
            Err(e) => {
                let _ = std::fs::remove_file(&sealing);
                return Err(e.into());
            }
        };
        use base64::Engine;
        Ok(AttachmentRef {
            id,
            blob: sealed.blob_id,
            size: sealed.blob_len,
            header: base64::engine::general_purpose::STANDARD.encode(&sealed.head),
            key_epoch: u64::from(sealed.key_epoch),
        })
    }

    /// Removes what a process killed mid-way left in the outbox: sealed
    /// files no row refers to and half-sealed files. Only files older than
    /// an hour, so a `record` running right now is never disturbed.
    pub fn sweep_outbox(&self) -> Result<usize, ReplicaError> {
        let dir = self.outbox_dir()?;
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(0);
        };
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if !old {
                continue;
            }
            let orphan = name.starts_with(".sealing-")
                || (envelope::valid_blob_id(&name) && self.outbox_file(&name)?.is_none());
            if orphan && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Attachments still to upload, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, ReplicaError> {
        let dir = self.outbox_dir()?;
        let mut stmt = self.conn.prepare(
            "SELECT blob, report_id, attachment_id, size, upload_url FROM outbox
             ORDER BY added_at, blob",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(blob, report, attachment_id, size, upload_url)| {
                Ok(OutboxEntry {
                    path: dir.join(&blob),
                    report: report
                        .parse()
                        .map_err(|e| ReplicaError::Corrupt(format!("outbox report: {e}")))?,
                    blob,
                    attachment_id,
                    size: u64::try_from(size)
                        .map_err(|_| ReplicaError::Corrupt(format!("outbox size {size}")))?,
                    upload_url,
                })
            })
            .collect()
    }

    /// The sealed file of `blob`, if it is still waiting on this device.
    pub fn outbox_file(&self, blob: &str) -> Result<Option<PathBuf>, ReplicaError> {
        let waiting: Option<String> = self
            .conn
            .query_row("SELECT blob FROM outbox WHERE blob = ?1", [blob], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(match waiting {
            Some(blob) => Some(self.outbox_dir()?.join(blob)),
            None => None,
        })
    }

    /// Remembers where the server keeps the partial upload of `blob`
    /// (`None` to forget it, when the server no longer has it).
    pub fn set_upload_url(&mut self, blob: &str, url: Option<&str>) -> Result<(), ReplicaError> {
        self.conn.execute(
            "UPDATE outbox SET upload_url = ?2 WHERE blob = ?1",
            params![blob, url],
        )?;
        Ok(())
    }

    /// The server holds the whole blob: forget it here and delete the
    /// sealed file.
    pub fn upload_done(&mut self, blob: &str) -> Result<(), ReplicaError> {
        self.conn
            .execute("DELETE FROM outbox WHERE blob = ?1", [blob])?;
        let path = self.outbox_dir()?.join(blob);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(OutboxError::Write { path, source }.into()),
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use chrono::DateTime;

    use super::*;
    use crate::document::NewReport;
    use crate::ids::CaseId;

    fn enrolled_replica(home: &Path) -> Replica {
        let mut replica = Replica::open(home).unwrap();
        replica.init_identity().unwrap();
        replica.new_case_key("almaty").unwrap();
        replica
    }

    fn new_report() -> NewReport {
        NewReport::new(
            ReportId::random().unwrap(),
            CaseId::random().unwrap(),
            "Detentions at the square",
            DateTime::parse_from_rfc3339("2016-05-21T10:40:00+06:00").unwrap(),
        )
    }

    #[test]
    fn an_attached_file_waits_sealed_in_the_outbox_and_never_in_the_clear() {
        let home = tempfile::tempdir().unwrap();
        let mut replica = enrolled_replica(home.path());
        let elsewhere = tempfile::tempdir().unwrap();
        let photo = elsewhere.path().join("photo-outside-home.txt");
        let plain = b"MARKER-arrest-of-a-journalist-at-10:40 ".repeat(5_000);
        std::fs::write(&photo, &plain).unwrap();
        let attachment = replica
            .seal_attachment("almaty", &photo, "text/plain", None)
            .unwrap();
        std::fs::remove_file(&photo).unwrap();
        let id = replica
            .create_report_with(&new_report(), std::slice::from_ref(&attachment))
            .unwrap();

        assert_eq!(
            replica.report(&id).unwrap().attachments,
            vec![attachment.clone()]
        );
        let outbox = replica.outbox().unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].report, id);
        assert_eq!(outbox[0].size, attachment.size);
        let blob = std::fs::read(&outbox[0].path).unwrap();
        assert_eq!(blob.len() as u64, attachment.size);
        let blob_hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, &blob));
        assert_eq!(blob_hash, attachment.blob);
        for entry in walk(home.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !bytes.windows(16).any(|w| w == &plain[..16]),
                "plaintext found in {}",
                entry.display()
            );
        }
        let key = replica.case_keys("almaty").unwrap().pop().unwrap();
        let mut out = Vec::new();
        envelope::open(
            &move |_| Some(key.clone()),
            &mut Cursor::new(blob),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, plain);

        replica.upload_done(attachment.blob.as_str()).unwrap();
        assert!(replica.outbox().unwrap().is_empty());
        assert!(!outbox[0].path.exists());
    }

    #[test]
    fn an_attachment_not_sealed_here_is_refused_and_nothing_is_saved() {
        let home = tempfile::tempdir().unwrap();
        let mut replica = enrolled_replica(home.path());
        let foreign = AttachmentRef {
            id: "a".into(),
            blob: "00".repeat(32).parse().unwrap(),
            size: 10,
            header: String::new(),
            key_epoch: 1,
        };
        let new = new_report();
        assert!(matches!(
            replica.create_report_with(&new, &[foreign]),
            Err(ReplicaError::Outbox(OutboxError::NotSealed { .. }))
        ));
        assert!(replica.report_ids().unwrap().is_empty());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
