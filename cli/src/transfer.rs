//! Moving sealed blobs to and from the server: resumable uploads in the
//! manner of tus 1.0 (create, ask the offset, append from it) and ranged
//! downloads. Every step that a dropped connection can interrupt is
//! retried from what the server (or the local file) already holds, so a
//! bad network costs time, not bytes sent twice.
//!
//! Requests are signed over an empty body (see `Client::signed`); the
//! bytes themselves are checked against the blob id, their SHA-256.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fieldsync_core::hashing::sha256_file;
use fieldsync_core::identity::DeviceKey;
use fieldsync_core::replica::OutboxEntry;
use indicatif::ProgressBar;

use crate::client::{Client, ClientError};

const TUS_RESUMABLE: &str = "1.0.0";
/// Failed attempts in a row, with no byte gained, before giving up.
const MAX_FAILURES_WITHOUT_PROGRESS: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Client(#[from] ClientError),
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
    #[error("the sealed copy of this attachment on this device is damaged (it no longer matches its id); attach the original file again with `fieldsync edit REPORT_ID --attach FILE`")]
    LocalDamaged,
}

/// The upload URL the outbox should remember, reported as it changes.
pub enum UploadEvent<'a> {
    Created(&'a str),
    Forgotten,
}

/// Uploads one sealed blob, resuming a partial upload when the server
/// still has it. `remember` persists the upload URL as it changes, so a
/// later run resumes too. `progress` counts bytes from `base` (what came
/// before this blob). Returns once the server holds the whole blob.
pub fn upload(
    client: &Client,
    key: &DeviceKey,
    entry: &OutboxEntry,
    progress: &ProgressBar,
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
                    let location = create(client, key, entry)?;
                    remember(UploadEvent::Created(&location))?;
                    url = Some(location.clone());
                    location
                }
            };
            let Some(offset) = head(client, key, &location)? else {
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
            match patch(client, key, &location, entry, offset, progress) {
                Err(TransferError::Client(ClientError::Refused { status: 422, .. })) => {
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
                        unreachable: matches!(
                            e,
                            TransferError::Client(ClientError::Unreachable { .. })
                        ),
                        last: e.to_string(),
                    });
                }
                progress.println(format!("  interrupted ({e}); resuming"));
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

/// Downloads blob `blob` into `partial`, resuming from the bytes already
/// there, and checks the whole file against the blob id; a file that does
/// not match is deleted.
pub fn download(
    client: &Client,
    key: &DeviceKey,
    blob: &str,
    size: u64,
    partial: &Path,
    progress: &ProgressBar,
) -> Result<(), TransferError> {
    let len = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut failures = 0u32;
    loop {
        let have = len(partial);
        progress.set_position(have.min(size));
        if have >= size {
            break;
        }
        let result = fetch_from(client, key, blob, size, have, partial, progress);
        if let Err(TransferError::Client(ClientError::Refused { status: 416, .. })) = result {
            // The server's blob is shorter than the report says it is.
            let _ = std::fs::remove_file(partial);
            return Err(TransferError::Mismatch);
        }
        if let Err(e) = &result {
            if !retryable(e) {
                return Err(result.unwrap_err());
            }
        }
        failures = if len(partial) > have { 0 } else { failures + 1 };
        if failures >= MAX_FAILURES_WITHOUT_PROGRESS {
            return Err(TransferError::GaveUp {
                attempts: failures,
                unreachable: matches!(
                    result,
                    Err(TransferError::Client(ClientError::Unreachable { .. }))
                ),
                last: match result {
                    Err(e) => e.to_string(),
                    Ok(()) => "the server sent no new bytes".into(),
                },
            });
        }
        if let Err(e) = result {
            progress.println(format!("  interrupted ({e}); resuming"));
            std::thread::sleep(backoff(failures.max(1)));
        }
    }
    let (got, hash) = sha256_file(partial).map_err(|source| TransferError::Io {
        what: format!("cannot read {}", partial.display()),
        source,
    })?;
    if got != size || hash != blob {
        let _ = std::fs::remove_file(partial);
        return Err(TransferError::Mismatch);
    }
    Ok(())
}

/// One GET from `have` on, appended to `partial`. Bytes that arrived
/// before a failure are kept for the next attempt.
fn fetch_from(
    client: &Client,
    key: &DeviceKey,
    blob: &str,
    size: u64,
    have: u64,
    partial: &Path,
    progress: &ProgressBar,
) -> Result<(), TransferError> {
    let io = |source| TransferError::Io {
        what: format!("cannot write {}", partial.display()),
        source,
    };
    let mut request = client.signed(key, "GET", &format!("/v1/blobs/{blob}"))?;
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = client.outcome(request.call())?;
    let resumed = response.status() == 206;
    let mut file = fieldsync_core::private_fs::open_options()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(partial)
        .map_err(io)?;
    if !resumed {
        progress.set_position(0);
    }
    // Never more than the blob (plus one byte, to notice a longer one).
    let mut reader = response.into_reader().take(size + 1);
    let mut buf = vec![0u8; 256 * 1024];
    let outcome = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                file.write_all(&buf[..n]).map_err(io)?;
                progress.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                break Err(ClientError::Unreachable {
                    url: client.base().to_owned(),
                    reason: e.to_string(),
                }
                .into())
            }
        }
    };
    file.sync_data().map_err(io)?;
    outcome
}

fn create(client: &Client, key: &DeviceKey, entry: &OutboxEntry) -> Result<String, TransferError> {
    let metadata = format!(
        "blob {},report {}",
        STANDARD.encode(&entry.blob),
        STANDARD.encode(entry.report.as_str())
    );
    let response = client.outcome(
        client
            .signed(key, "POST", "/v1/uploads")?
            .set("Tus-Resumable", TUS_RESUMABLE)
            .set("Upload-Length", &entry.size.to_string())
            .set("Upload-Metadata", &metadata)
            .send_bytes(b""),
    )?;
    let location = response
        .header("Location")
        .ok_or(TransferError::Header("Location"))?;
    Ok(path_of(client, location))
}

/// The server's offset for an upload; `None` when it no longer knows it
/// (expired, or lost), so it must be created again.
fn head(client: &Client, key: &DeviceKey, location: &str) -> Result<Option<u64>, TransferError> {
    let result = client.outcome(
        client
            .signed(key, "HEAD", location)?
            .set("Tus-Resumable", TUS_RESUMABLE)
            .call(),
    );
    match result {
        Ok(response) => Ok(Some(
            response
                .header("Upload-Offset")
                .and_then(|v| v.parse().ok())
                .ok_or(TransferError::Header("Upload-Offset"))?,
        )),
        Err(ClientError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Sends the sealed file from `offset` to its end in one request (nothing,
/// at the end: the server then says whether the blob is stored); returns
/// the server's new offset.
fn patch(
    client: &Client,
    key: &DeviceKey,
    location: &str,
    entry: &OutboxEntry,
    offset: u64,
    progress: &ProgressBar,
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
    let body = Counting {
        inner: file.take(left),
        progress,
    };
    let result = client
        .signed(key, "PATCH", location)?
        .set("Tus-Resumable", TUS_RESUMABLE)
        .set("Content-Type", "application/offset+octet-stream")
        .set("Upload-Offset", &offset.to_string())
        .set("Content-Length", &left.to_string())
        .send(body);
    // A body the server saw end early (or stall) is kept up to an offset
    // it names: an interruption to resume from, not a refusal.
    if let Err(ureq::Error::Status(400, response)) = &result {
        if response.header("Upload-Offset").is_some() {
            return Err(ClientError::Unreachable {
                url: client.base().to_owned(),
                reason: "the upload was cut short".into(),
            }
            .into());
        }
    }
    match client.outcome(result) {
        Ok(response) => response
            .header("Upload-Offset")
            .and_then(|v| v.parse().ok())
            .ok_or(TransferError::Header("Upload-Offset")),
        // Someone (an earlier attempt) moved the offset: ask again.
        Err(ClientError::Refused { status: 409, .. }) => Ok(offset),
        Err(e) => Err(e.into()),
    }
}

/// Whether trying again may help: the network, a busy or restarting
/// server, a lock held by a dying earlier request. A refusal (403, 413…)
/// will not change by retrying.
fn retryable(e: &TransferError) -> bool {
    match e {
        TransferError::Client(ClientError::Unreachable { .. }) => true,
        TransferError::Client(ClientError::Refused { status, .. }) => {
            // 500 is a fault on the server that seconds will not mend;
            // 503 is its "busy, try again".
            matches!(status, 408 | 423 | 429 | 502..=504)
        }
        TransferError::Client(ClientError::BadResponse(_)) => true,
        // The client corrected its clock from the answer.
        TransferError::Client(ClientError::Clock { .. }) => true,
        // Only setting the device's clock helps.
        TransferError::Client(ClientError::ClockTooFar { .. }) => false,
        // A copy got there first; the next try is signed afresh and starts
        // from the offset the server reports, so nothing is written twice.
        TransferError::Client(ClientError::Replayed { .. }) => true,
        TransferError::Mismatch | TransferError::Expired | TransferError::UploadMismatch => true,
        TransferError::Io { .. }
        | TransferError::GaveUp { .. }
        | TransferError::Header(_)
        | TransferError::LocalDamaged => false,
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64 << failures.min(5))
}

/// Location may be absolute or a path; requests are signed over the path.
fn path_of(client: &Client, location: &str) -> String {
    location
        .strip_prefix(client.base())
        .unwrap_or(location)
        .to_owned()
}

struct Counting<'a, R> {
    inner: R,
    progress: &'a ProgressBar,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}
