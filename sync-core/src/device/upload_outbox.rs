//! Uploading the outbox: every sealed attachment waiting on the device.

use serde::Serialize;

use super::transfer::{self, Progress, TransferError, UploadEvent};
use super::transport::Transport;
use crate::replica::{Replica, ReplicaError};

/// What uploading the outbox did.
#[derive(Debug, Default, Serialize)]
pub struct UploadSummary {
    pub uploaded: usize,
    pub bytes: u64,
    pub failed: Vec<FailedUpload>,
}

#[derive(Debug, Serialize)]
pub struct FailedUpload {
    pub report: String,
    pub attachment: String,
    pub error: String,
    /// The next sync tries again (a network failure); false when the
    /// server refused it or the local copy is damaged.
    pub will_retry: bool,
    /// The sealed copy on this device is damaged: only attaching the
    /// original file again helps.
    #[serde(skip)]
    pub damaged_locally: bool,
}

/// Progress over the whole outbox.
pub trait OutboxProgress: Progress {
    /// Called once, before the first attachment, with the bytes to send.
    fn begin(&self, total: u64);
    /// The attachment being sent now.
    fn attachment(&self, id: &str);
    fn finish(&self);
}

impl OutboxProgress for () {
    fn begin(&self, _: u64) {}
    fn attachment(&self, _: &str) {}
    fn finish(&self) {}
}

/// Uploads every attachment waiting in the outbox, resuming partial ones.
/// A failed attachment stays in the outbox for the next sync; the others
/// still go, unless the server cannot be reached at all.
pub fn upload_outbox(
    replica: &mut Replica,
    t: &impl Transport,
    progress: &dyn OutboxProgress,
) -> Result<UploadSummary, ReplicaError> {
    replica.sweep_outbox()?;
    let entries = replica.outbox()?;
    let mut summary = UploadSummary::default();
    if entries.is_empty() {
        return Ok(summary);
    }
    progress.begin(entries.iter().map(|e| e.size).sum());
    let mut base = 0u64;
    for entry in entries {
        progress.attachment(&entry.attachment_id);
        let result = transfer::upload(t, &entry, progress, base, &mut |event| {
            let url = match event {
                UploadEvent::Created(url) => Some(url),
                UploadEvent::Forgotten => None,
            };
            replica
                .set_upload_url(&entry.blob, url)
                .map_err(|e| TransferError::Io {
                    what: "cannot save the upload's place on this device".into(),
                    source: std::io::Error::other(e.to_string()),
                })
        });
        match result {
            Ok(()) => {
                replica.upload_done(&entry.blob)?;
                summary.uploaded += 1;
                summary.bytes += entry.size;
            }
            Err(e) => {
                let unreachable = matches!(
                    e,
                    TransferError::GaveUp {
                        unreachable: true,
                        ..
                    }
                );
                summary.failed.push(FailedUpload {
                    report: entry.report.to_string(),
                    attachment: entry.attachment_id.clone(),
                    error: e.to_string(),
                    will_retry: matches!(e, TransferError::GaveUp { .. }),
                    damaged_locally: matches!(e, TransferError::LocalDamaged),
                });
                if unreachable {
                    // No point waiting out every other attachment too.
                    break;
                }
            }
        }
        base += entry.size;
    }
    progress.finish();
    Ok(summary)
}
