//! Attachment uploads that survive a bad network, by the tus resumable
//! upload protocol (create, ask the offset, send from it), and the retry
//! rules they share with downloads (`download.rs`). Requests are signed
//! over an empty body (see [`Body::Stream`]); the bytes themselves are
//! checked against the blob id, their SHA-256.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::transport::{Body, Request, Response, Transport, TransportError};
use crate::hashing::sha256_file;
use crate::replica::OutboxEntry;

const TUS_RESUMABLE: &str = "1.0.0";
/// Failed attempts in a row, with no byte gained, before giving up.
pub(super) const MAX_FAILURES_WITHOUT_PROGRESS: u32 = 6;

/// Where a transfer is, for a progress bar.
pub trait Progress {
    fn set_position(&self, bytes: u64);
    fn inc(&self, bytes: u64);
    /// A line to show beside the bar (an interruption being resumed).
    fn note(&self, line: &str);
}

/// No progress shown.
impl Progress for () {
    fn set_position(&self, _: u64) {}
    fn inc(&self, _: u64) {}
    fn note(&self, _: &str) {}
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "gave up after {attempts} attempts in a row without progress; the last error was: {last}"
    )]
    GaveUp {
        attempts: u32,
        last: String,
        /// The server could not be reached at all.
        unreachable: bool,
    },
    #[error("the server sent a blob that does not match its id (altered on the server or on the way); nothing was written, try again")]
    Mismatch,
    #[error("the server's answer lacks a valid {0} header")]
    Header(&'static str),
    #[error("the server no longer has the partial upload; starting it again")]
    Expired,
    #[error("the server received bytes that do not hash to the blob id and discarded them; uploading again")]
    UploadMismatch,
    /// The sealed copy no longer matches its id: only attaching the
    /// original file again helps.
    #[error("the sealed copy of this attachment on this device is damaged (it no longer matches its id)")]
    LocalDamaged,
}

/// The upload URL the outbox should remember, reported as it changes.
pub enum UploadEvent<'a> {
    Created(&'a str),
    Forgotten,
}

pub(super) fn unreachable(e: &TransferError) -> bool {
    matches!(
        e,
        TransferError::Transport(TransportError::Unreachable { .. })
    )
}

/// Uploads one sealed blob, resuming a partial upload when the server
/// still has it. `remember` persists the upload URL as it changes, so a
/// later run resumes too. `progress` counts bytes from `base` (what came
/// before this blob). Returns once the server holds the whole blob.
pub fn upload(
    t: &impl Transport,
    entry: &OutboxEntry,
    progress: &dyn Progress,
    base: u64,
    remember: &mut dyn FnMut(UploadEvent<'_>) -> Result<(), TransferError>,
) -> Result<(), TransferError> {
    let mut url = entry.upload_url.clone();
    let mut failures = 0u32;
    let mut best = 0u64;
    loop {
        let step = (|| -> Result<u64, TransferError> {
            let location = match &url {
                Some(location) => location.clone(),
                None => {
                    let location = create(t, entry)?;
                    remember(UploadEvent::Created(&location))?;
                    url = Some(location.clone());
                    location
                }
            };
            let Some(offset) = head(t, &location)? else {
                remember(UploadEvent::Forgotten)?;
                url = None;
                return Err(TransferError::Expired);
            };
            if offset > best {
                // The last attempt gained bytes, even if it ended in an error.
                best = offset;
                failures = 0;
            }
            let offset = offset.min(entry.size);
            progress.set_position(base + offset);
            // Even with every byte on the server, only a PATCH answered at
            // the full length means verified and stored; with nothing left
            // to send, an empty PATCH asks for exactly that.
            match patch(t, &location, entry, offset, progress) {
                Err(TransferError::Transport(TransportError::Refused { status: 422, .. })) => {
                    // The server discarded bytes that did not hash to the id.
                    remember(UploadEvent::Forgotten)?;
                    url = None;
                    check_local_copy(entry)?;
                    Err(TransferError::UploadMismatch)
                }
                other => other,
            }
        })();
        match step {
            Ok(offset) if offset >= entry.size => {
                progress.set_position(base + entry.size);
                return Ok(());
            }
            Ok(_) => failures += 1,
            Err(e) if !retryable(&e) => return Err(e),
            Err(e) => {
                failures += 1;
                if failures >= MAX_FAILURES_WITHOUT_PROGRESS {
                    return Err(TransferError::GaveUp {
                        attempts: failures,
                        unreachable: unreachable(&e),
                        last: e.to_string(),
                    });
                }
                progress.note(&format!("  interrupted ({e}); resuming"));
                std::thread::sleep(backoff(failures));
            }
        }
        if failures >= MAX_FAILURES_WITHOUT_PROGRESS {
            return Err(TransferError::GaveUp {
                attempts: failures,
                unreachable: false,
                last: "the server accepted no new bytes".into(),
            });
        }
    }
}

/// The sealed copy must still hash to its id; if not, uploading it again
/// cannot help.
fn check_local_copy(entry: &OutboxEntry) -> Result<(), TransferError> {
    match sha256_file(&entry.path) {
        Ok((len, hash)) if len == entry.size && hash == entry.blob => Ok(()),
        _ => Err(TransferError::LocalDamaged),
    }
}

fn tus(method: &'static str, path: String, headers: &[(&'static str, String)]) -> Request<'static> {
    let mut all = vec![("Tus-Resumable", TUS_RESUMABLE.to_owned())];
    all.extend_from_slice(headers);
    Request {
        method,
        path,
        headers: all,
        body: Body::Empty,
    }
}

fn create(t: &impl Transport, entry: &OutboxEntry) -> Result<String, TransferError> {
    let metadata = format!(
        "blob {},report {}",
        STANDARD.encode(&entry.blob),
        STANDARD.encode(entry.report.as_str())
    );
    let response = t.send(tus(
        "POST",
        "/v1/uploads".into(),
        &[
            ("Upload-Length", entry.size.to_string()),
            ("Upload-Metadata", metadata),
        ],
    ))?;
    let location = response
        .header("Location")
        .ok_or(TransferError::Header("Location"))?;
    Ok(path_of(t, location))
}

/// The server's offset for an upload; `None` when it no longer knows it
/// (expired, or lost), so it must be created again.
fn head(t: &impl Transport, location: &str) -> Result<Option<u64>, TransferError> {
    match t.send(tus("HEAD", location.to_owned(), &[])) {
        Ok(response) => Ok(Some(upload_offset(&response)?)),
        Err(TransportError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn upload_offset(response: &Response) -> Result<u64, TransferError> {
    response
        .header("Upload-Offset")
        .and_then(|v| v.parse().ok())
        .ok_or(TransferError::Header("Upload-Offset"))
}

/// Sends the sealed file from `offset` to its end in one request (nothing,
/// at the end: the server then says whether the blob is stored); returns
/// the server's new offset.
fn patch(
    t: &impl Transport,
    location: &str,
    entry: &OutboxEntry,
    offset: u64,
    progress: &dyn Progress,
) -> Result<u64, TransferError> {
    let io = |source| TransferError::Io {
        what: format!("cannot read the sealed attachment {}", entry.path.display()),
        source,
    };
    let mut file = File::open(&entry.path).map_err(io)?;
    if file.metadata().map_err(io)?.len() != entry.size {
        return Err(TransferError::LocalDamaged);
    }
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let left = entry.size - offset;
    let mut request = tus(
        "PATCH",
        location.to_owned(),
        &[
            ("Content-Type", "application/offset+octet-stream".to_owned()),
            ("Upload-Offset", offset.to_string()),
            ("Content-Length", left.to_string()),
        ],
    );
    request.body = Body::Stream(Box::new(Counting {
        inner: file.take(left),
        progress,
    }));
    match t.send(request) {
        Ok(response) => upload_offset(&response),
        // A body the server saw end early (or stall) is kept up to an
        // offset it names: an interruption to resume from, not a refusal.
        Err(TransportError::Refused {
            status: 400,
            upload_offset: Some(_),
            ..
        }) => Err(TransportError::Unreachable {
            url: t.base().to_owned(),
            reason: "the upload was cut short".into(),
        }
        .into()),
        // Someone (an earlier attempt) moved the offset: ask again.
        Err(TransportError::Refused { status: 409, .. }) => Ok(offset),
        Err(e) => Err(e.into()),
    }
}

/// Whether trying again may help: the network, a busy or restarting
/// server, a lock held by a dying earlier request. A refusal (403, 413…)
/// will not change by retrying.
pub(super) fn retryable(e: &TransferError) -> bool {
    match e {
        TransferError::Transport(TransportError::Unreachable { .. }) => true,
        TransferError::Transport(TransportError::Refused { status, .. }) => {
            // 500 is a fault on the server that seconds will not mend;
            // 503 is its "busy, try again".
            matches!(status, 408 | 423 | 429 | 502..=504)
        }
        TransferError::Transport(TransportError::BadResponse(_)) => true,
        TransferError::Transport(TransportError::Busy { .. }) => true,
        // The transport corrected its clock from the answer.
        TransferError::Transport(TransportError::Clock { .. }) => true,
        // Only setting the device's clock helps.
        TransferError::Transport(TransportError::ClockTooFar { .. }) => false,
        // A copy got there first; the next try is signed afresh and starts
        // from the offset the server reports, so nothing is written twice.
        TransferError::Transport(TransportError::Replayed { .. }) => true,
        TransferError::Mismatch | TransferError::Expired | TransferError::UploadMismatch => true,
        TransferError::Io { .. }
        | TransferError::GaveUp { .. }
        | TransferError::Header(_)
        | TransferError::LocalDamaged => false,
    }
}

pub(super) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64 << failures.min(5))
}

/// Location may be absolute or a path; requests are signed over the path.
fn path_of(t: &impl Transport, location: &str) -> String {
    location
        .strip_prefix(t.base())
        .unwrap_or(location)
        .to_owned()
}

struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}
