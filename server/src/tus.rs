//! The rules of a resumable upload (tus 1.0 core with the `creation` and
//! `expiration` extensions), free of HTTP plumbing so they are tested
//! without sockets: what a create and a PATCH must carry, where a PATCH
//! may start and how much it may carry, the final check that the bytes
//! hash to the blob id, and the sweep of expired uploads.
//!
//! The offset of an upload is what its partial holds (`blob_store/`: the
//! length of a file, or where a chain of parts in a bucket ends); the
//! store (`store/blobs.rs`) records the upload. The handlers in
//! `api/uploads.rs` read headers and bodies and call these. Nothing here
//! knows which blob backend is in use.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use fieldsync_core::ReportId;

use crate::blob_store::{
    BlobId, BlobStore, BlobStoreError, PartialEntry, Sealed, UploadId, UploadLock,
};
use crate::store::{BlobIndex, StoreError, UploadRecord};

/// The tus protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// The content type of a PATCH body.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Bytes of a PATCH body gathered before they are written to disk.
pub const WRITE_BATCH: usize = 1 << 20;
/// A PATCH whose client sends nothing for this long is ended; the bytes
/// received are kept.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an upload request was refused. The words are the client's; the
/// HTTP layer picks the status and adds `Upload-Offset` where
/// [`TusRefusal::upload_offset`] gives one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TusRefusal {
    #[error("the Upload-Length header is missing; send the size of the ciphertext in bytes")]
    MissingLength,
    #[error("the {header} header must be a non-negative number of bytes")]
    NotANumber { header: &'static str },
    #[error("the attachment is {length} bytes, over this server's limit of {max} bytes per blob (--max-blob-bytes); it cannot be uploaded to this server")]
    OverMaxSize { length: u64, max: u64 },
    #[error("Upload-Metadata {0}; send `blob <base64 of the 64 hex characters of the ciphertext's SHA-256>,report <base64 of the report id>`")]
    Metadata(String),
    #[error("a PATCH to an upload must have Content-Type: {OFFSET_OCTET_STREAM}")]
    WrongContentType,
    #[error("the Upload-Offset header is missing; send the offset HEAD reports")]
    MissingOffset,
    #[error("another PATCH to this upload is in progress; wait for it to end, then HEAD the upload and resume from its offset")]
    Locked,
    #[error("Upload-Offset is {sent} but the upload is at offset {current}; send the bytes from offset {current} on")]
    OffsetConflict { sent: u64, current: u64 },
    #[error("this PATCH carries more than the {} bytes the upload lacks (Upload-Length {length}, offset {current}); nothing of it was kept, send only the rest", length - (*current).min(*length))]
    TooLong { length: u64, current: u64 },
    #[error("the request body ended early ({why}); the {kept} bytes received so far are kept: HEAD the upload and resume from its offset")]
    Cut { why: String, kept: u64 },
    #[error("the uploaded bytes do not match the blob id; upload again (their SHA-256 is not {blob}, so they were discarded: start a new upload with POST /v1/uploads)")]
    Mismatch { blob: BlobId },
    /// Also another device's upload, so its existence is not revealed.
    #[error("there is no upload with this id for this device (an upload untouched for a while expires); start it again with POST /v1/uploads")]
    NoSuchUpload,
}

impl TusRefusal {
    /// The offset the client should resume from, for refusals after which
    /// it can.
    pub fn upload_offset(&self) -> Option<u64> {
        match self {
            TusRefusal::OffsetConflict { current, .. } | TusRefusal::TooLong { current, .. } => {
                Some(*current)
            }
            TusRefusal::Cut { kept, .. } => Some(*kept),
            _ => None,
        }
    }
}

/// Why an upload step failed: a refusal, or the store or the files.
#[derive(Debug, thiserror::Error)]
pub enum TusError {
    #[error(transparent)]
    Refused(#[from] TusRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Files(#[from] BlobStoreError),
}

/// A header's value as text, if it is one: visible ASCII and tabs only
/// (what an HTTP header value may hold as text).
fn header_text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

fn byte_count(value: &[u8], header: &'static str) -> Result<u64, TusRefusal> {
    header_text(value)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(TusRefusal::NotANumber { header })
}

/// `Upload-Length`: required, a number of bytes.
pub fn upload_length(value: Option<&[u8]>) -> Result<u64, TusRefusal> {
    byte_count(value.ok_or(TusRefusal::MissingLength)?, "Upload-Length")
}

/// A blob is at most `max` bytes.
pub fn check_size(length: u64, max: u64) -> Result<(), TusRefusal> {
    if length > max {
        return Err(TusRefusal::OverMaxSize { length, max });
    }
    Ok(())
}

/// `Upload-Offset` of a PATCH: required, a number of bytes.
pub fn upload_offset(value: Option<&[u8]>) -> Result<u64, TusRefusal> {
    byte_count(value.ok_or(TusRefusal::MissingOffset)?, "Upload-Offset")
}

/// A PATCH body is `application/offset+octet-stream`.
pub fn check_content_type(value: Option<&[u8]>) -> Result<(), TusRefusal> {
    let content_type = value.and_then(header_text).unwrap_or("");
    if !content_type
        .trim()
        .eq_ignore_ascii_case(OFFSET_OCTET_STREAM)
    {
        return Err(TusRefusal::WrongContentType);
    }
    Ok(())
}

/// Parses `Upload-Metadata` (tus: comma-separated `key base64value`):
/// `blob` (the hex SHA-256 of the ciphertext) and `report` are required;
/// other keys are ignored and never logged.
pub fn upload_metadata(value: Option<&[u8]>) -> Result<(BlobId, ReportId), TusRefusal> {
    let bad = TusRefusal::Metadata;
    let text = header_text(value.ok_or_else(|| bad("is missing".into()))?)
        .ok_or_else(|| bad("is not ASCII".into()))?;
    let (mut blob, mut report) = (None, None);
    for pair in text.split(',') {
        let pair = pair.trim();
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let slot = match key {
            "blob" => &mut blob,
            "report" => &mut report,
            _ => continue,
        };
        if slot.is_some() {
            return Err(bad(format!("names `{key}` twice")));
        }
        let value = value.trim();
        let decoded = STANDARD
            .decode(value)
            .or_else(|_| STANDARD_NO_PAD.decode(value))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| bad(format!("has a `{key}` value that is not base64 text")))?;
        *slot = Some(decoded);
    }
    let blob = blob
        .ok_or_else(|| bad("has no `blob` key".into()))?
        .parse::<BlobId>()
        .map_err(|e| bad(format!("`blob`: {e}")))?;
    let report = report
        .ok_or_else(|| bad("has no `report` key".into()))?
        .parse::<ReportId>()
        .map_err(|e| bad(format!("`report`: {e}")))?;
    Ok((blob, report))
}

/// The metadata an upload was created with, as tus sends it back.
pub fn metadata_text(upload: &UploadRecord) -> String {
    format!(
        "blob {},report {}",
        STANDARD.encode(upload.blob.as_str()),
        STANDARD.encode(upload.report.as_str())
    )
}

/// The device's own upload, unexpired; anything else is
/// [`TusRefusal::NoSuchUpload`], so another device's upload is not revealed.
pub fn own_upload(
    upload: Option<UploadRecord>,
    device: &fieldsync_core::DeviceId,
    now: DateTime<Utc>,
) -> Result<UploadRecord, TusRefusal> {
    match upload {
        Some(u) if u.device_id == *device && !u.expired(now) => Ok(u),
        _ => Err(TusRefusal::NoSuchUpload),
    }
}

/// A PATCH to an upload that is complete writes nothing: a retry of the
/// last PATCH (at the full length) is answered as it was, any other
/// offset is a conflict.
pub fn patch_completed(upload: &UploadRecord, offset: u64) -> Result<(), TusRefusal> {
    if offset == upload.length {
        Ok(())
    } else {
        Err(TusRefusal::OffsetConflict {
            sent: offset,
            current: upload.length,
        })
    }
}

/// A PATCH must start at the upload's offset, `current`, and may carry at
/// most what the upload lacks; a `Content-Length` over that is refused
/// before a byte is read. Returns how many bytes the body may carry.
pub fn patch_start(
    upload: &UploadRecord,
    offset: u64,
    current: u64,
    declared: Option<u64>,
) -> Result<u64, TusRefusal> {
    if offset != current {
        return Err(TusRefusal::OffsetConflict {
            sent: offset,
            current,
        });
    }
    let remaining = upload.length.saturating_sub(current);
    if declared.is_some_and(|n| n > remaining) {
        return Err(too_long(upload, current));
    }
    Ok(remaining)
}

/// The refusal of a PATCH body longer than what the upload lacks.
pub fn too_long(upload: &UploadRecord, current: u64) -> TusRefusal {
    TusRefusal::TooLong {
        length: upload.length,
        current,
    }
}

/// The last bytes arrived: checks that the whole partial hashes to the
/// blob id, has it stored as its case's blob ([`BlobStore::seal`]) and
/// only then records the upload complete. `received` is the blob id of
/// the bytes as they were written, when the PATCH that wrote them all
/// hashed them on the way; otherwise they are read and hashed. Bytes that
/// do not match are discarded, row first: an incomplete upload without a
/// partial is one whose verified bytes were moved into place (see
/// [`sweep`]). Blocks; hold the upload's lock.
pub fn finish<S: BlobIndex + ?Sized>(
    store: &S,
    blobs: &BlobStore,
    upload: &UploadRecord,
    lock: &UploadLock,
    received: Option<BlobId>,
) -> Result<UploadRecord, TusError> {
    let sealed = blobs.seal(lock, &upload.case_id, &upload.blob, received.as_ref())?;
    if sealed == Sealed::Mismatch {
        store.delete_upload(&upload.case_id, &upload.id)?;
        blobs.remove_partial(&upload.id)?;
        tracing::info!(device = %upload.device_id, blob = %upload.blob, "upload refused: the bytes do not hash to the blob id; discarded");
        return Err(TusRefusal::Mismatch {
            blob: upload.blob.clone(),
        }
        .into());
    }
    Ok(store.complete_upload(&upload.case_id, &upload.id)?)
}

/// How often expired uploads are looked for: a quarter of the expiry,
/// between one second and one hour.
pub fn sweep_interval(expiry_secs: u64) -> Duration {
    Duration::from_secs((expiry_secs / 4).clamp(1, 3600))
}

/// Removes expired uploads and, at start, partial files that belong to no
/// incomplete upload. Uploads a PATCH is writing are left alone.
/// Returns how many uploads and stray files were removed.
///
/// At start it also finishes uploads that a crash interrupted between
/// moving the verified blob into place and recording it: an incomplete
/// upload with no partial file whose blob file is there and hashes to its
/// id is marked complete. That is safe because nothing else leaves an
/// incomplete upload without its partial file: the file is made before
/// the upload's row, and the row is deleted before the file.
pub fn sweep<S: BlobIndex + ?Sized>(
    store: &S,
    blobs: &BlobStore,
    at_start: bool,
) -> Result<(usize, usize), SweepError> {
    if at_start {
        for (case, id) in store.incomplete_uploads()? {
            if blobs.has_partial(&id)? {
                continue;
            }
            let Some(upload) = store.upload(&case, &id)? else {
                continue;
            };
            if blobs.stored_blob_id(&upload.case_id, &upload.blob)? == Some(upload.blob.clone()) {
                store.complete_upload(&case, &id)?;
                tracing::info!(device = %upload.device_id, blob = %upload.blob, size = upload.length, "upload complete (recorded at start: the server stopped after moving it into place)");
            }
        }
    }
    let mut expired = 0;
    for (case, id) in store.expired_uploads(Utc::now())? {
        let Some(_lock) = blobs.lock_upload(&id) else {
            continue;
        };
        // Row first, as in `finish`: a crash in between leaves a stray
        // partial file, never an incomplete upload without one.
        store.delete_upload(&case, &id)?;
        blobs.remove_partial(&id)?;
        expired += 1;
    }
    let mut strays = 0;
    if at_start {
        let live: std::collections::HashSet<UploadId> = store
            .incomplete_uploads()?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        for entry in blobs.partial_entries()? {
            let removed = match entry {
                PartialEntry::Upload(id) if live.contains(&id) => false,
                PartialEntry::Upload(id) => blobs.remove_partial(&id)?,
                PartialEntry::Stray(name) => blobs.remove_stray(&name)?,
            };
            strays += usize::from(removed);
        }
    }
    Ok((expired, strays))
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Files(#[from] BlobStoreError),
}

/// An HTTP date (RFC 7231 IMF-fixdate), as `Upload-Expires` carries it.
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldsync_core::{CaseId, DeviceId};

    #[test]
    fn an_http_date_is_imf_fixdate() {
        let t = DateTime::parse_from_rfc3339("1994-11-06T08:49:37Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn sweeps_run_every_quarter_expiry_within_a_second_and_an_hour() {
        assert_eq!(sweep_interval(2), Duration::from_secs(1));
        assert_eq!(sweep_interval(40), Duration::from_secs(10));
        assert_eq!(sweep_interval(7 * 24 * 3600), Duration::from_secs(3600));
    }

    fn upload(length: u64, completed: bool) -> UploadRecord {
        UploadRecord {
            id: UploadId::random().unwrap(),
            case_id: CaseId::random().unwrap(),
            device_id: "07".repeat(16).parse::<DeviceId>().unwrap(),
            blob: BlobId::of(b"ciphertext"),
            report: ReportId::random().unwrap(),
            length,
            expires_at: Utc::now() + chrono::Duration::hours(1),
            completed,
            deduplicated: false,
        }
    }

    #[test]
    fn a_patch_starts_at_the_offset_and_carries_at_most_what_is_missing() {
        let u = upload(100, false);
        assert_eq!(patch_start(&u, 40, 40, None), Ok(60));
        assert_eq!(patch_start(&u, 40, 40, Some(60)), Ok(60));
        assert_eq!(
            patch_start(&u, 30, 40, Some(10)),
            Err(TusRefusal::OffsetConflict {
                sent: 30,
                current: 40
            })
        );
        let long = patch_start(&u, 40, 40, Some(61)).unwrap_err();
        assert_eq!(long.upload_offset(), Some(40));
        assert!(
            long.to_string().contains("more than the 60 bytes"),
            "{long}"
        );
    }

    #[test]
    fn a_patch_to_a_complete_upload_is_a_retry_only_at_its_length() {
        let u = upload(100, true);
        assert_eq!(patch_completed(&u, 100), Ok(()));
        assert_eq!(
            patch_completed(&u, 0).unwrap_err().upload_offset(),
            Some(100)
        );
    }

    #[test]
    fn headers_are_numbers_of_bytes_and_metadata_names_blob_and_report() {
        assert_eq!(upload_length(None), Err(TusRefusal::MissingLength));
        assert_eq!(upload_length(Some(b" 42 ")), Ok(42));
        assert_eq!(
            upload_offset(Some(b"-1")),
            Err(TusRefusal::NotANumber {
                header: "Upload-Offset"
            })
        );
        assert_eq!(
            check_size(10, 9),
            Err(TusRefusal::OverMaxSize { length: 10, max: 9 })
        );
        assert_eq!(
            check_content_type(Some(b"Application/Offset+Octet-Stream ")),
            Ok(())
        );
        assert_eq!(check_content_type(None), Err(TusRefusal::WrongContentType));
        let u = upload(1, false);
        let text = metadata_text(&u);
        assert_eq!(
            upload_metadata(Some(format!("other eA==,{text}").as_bytes())),
            Ok((u.blob.clone(), u.report.clone()))
        );
        assert!(matches!(
            upload_metadata(Some(b"blob eA==,blob eA==")),
            Err(TusRefusal::Metadata(m)) if m.contains("twice")
        ));
        assert!(matches!(
            upload_metadata(Some("blob \u{e9}".as_bytes())),
            Err(TusRefusal::Metadata(m)) if m == "is not ASCII"
        ));
    }

    #[test]
    fn only_the_devices_own_unexpired_upload_is_found() {
        let u = upload(10, false);
        let me = u.device_id.clone();
        assert!(own_upload(Some(u.clone()), &me, Utc::now()).is_ok());
        let other = "08".repeat(16).parse::<DeviceId>().unwrap();
        assert_eq!(
            own_upload(Some(u.clone()), &other, Utc::now()).unwrap_err(),
            TusRefusal::NoSuchUpload
        );
        let later = Utc::now() + chrono::Duration::hours(2);
        assert_eq!(
            own_upload(Some(u), &me, later).unwrap_err(),
            TusRefusal::NoSuchUpload
        );
        assert_eq!(
            own_upload(None, &me, Utc::now()).unwrap_err(),
            TusRefusal::NoSuchUpload
        );
    }
}
