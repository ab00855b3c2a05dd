//! The blob API: resumable uploads of attachment ciphertext (tus 1.0 core
//! with the `creation` and `expiration` extensions) and range downloads.
//! The server only ever sees ciphertext; it stores it per case under its
//! SHA-256 and never logs a byte of it.
//!
//! | request | answer |
//! |---|---|
//! | `OPTIONS /v1/uploads` (unsigned) | 204, `Tus-Version`, `Tus-Extension: creation,expiration`, `Tus-Max-Size` |
//! | `POST /v1/uploads`, `Upload-Length: N`, `Upload-Metadata: blob <b64 hex sha256>,report <b64 report id>` | 201, `Location: /v1/uploads/<id>`, `Upload-Offset`, `Upload-Expires` (while incomplete) |
//! | `HEAD /v1/uploads/<id>` | 200, `Upload-Offset`, `Upload-Length`, `Upload-Metadata`, `Cache-Control: no-store`, `Upload-Expires` (while incomplete) |
//! | `PATCH /v1/uploads/<id>`, `Content-Type: application/offset+octet-stream`, `Upload-Offset: K` | 204, `Upload-Offset`; 409 (with `Upload-Offset`) when K is not the offset |
//! | `GET`/`HEAD /v1/blobs/<blob id>`, optional `Range: bytes=K-` or `bytes=K-L` | 200 or 206 (`Content-Range`), the ciphertext; 416 past the end |
//!
//! Every response carries `Tus-Resumable: 1.0.0`; errors are JSON
//! `{error, server_time}` like every other route.
//!
//! **Signatures cover an empty body.** Every request but `OPTIONS` is
//! signed like `/v1/sync` (`request_auth.rs`), but for all blob routes the
//! signature is computed over `b""`, even for a PATCH that carries bytes.
//! The bytes of an upload are authenticated by the final check instead
//! (like S3's UNSIGNED-PAYLOAD): an upload completes only if the SHA-256 of
//! all its bytes equals the blob id it was created for, and the blob id is
//! in the report document the device signed. A PATCH body (or its
//! `Upload-Offset`) altered in transit therefore makes the upload fail
//! with 422, never stores altered bytes.
//!
//! Uploads: the offset is the length of the partial file on disk
//! (`blob_store.rs`), so it survives a SIGKILL of the server. The bytes of
//! a PATCH whose client went away mid-body are kept (synced to disk) and
//! the offset advances over them, so a resume sends only what is missing.
//! One PATCH at a time per upload (a second gets 423 Locked); the lock is
//! released as soon as the first ends, also when its client went away or
//! sent nothing for [`BODY_IDLE_TIMEOUT`]. A body is written in batches of
//! about [`WRITE_BATCH`] bytes off the async executor; no blob is ever held
//! whole in memory. When the offset reaches the length the file is synced,
//! hashed, moved into `blobs/<case>/<blob id>` and only then marked stored
//! and answered 204.
//!
//! An incomplete upload untouched for `--upload-expiry-secs` (every PATCH
//! extends it) is deleted, bytes and row, by [`sweep`], which runs at start
//! and then every [`sweep_interval`].

use std::fs::File;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use fieldsync_core::ReportId;
use futures_util::StreamExt;

use crate::blob_store::{
    read_chunk, BlobId, BlobStore, BlobStoreError, PartialEntry, PartialWriter, UploadId,
    UploadLock,
};
use crate::http::{authenticate, ApiError, AppState};
use crate::store::{
    BlobAccess, DeviceRecord, NewUpload, Store, UploadError, UploadLimits, UploadRecord,
    UploadStart,
};

/// The tus protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// The content type of a PATCH body.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Bytes of a PATCH body gathered before they are written to disk.
pub const WRITE_BATCH: usize = 1 << 20;
/// A PATCH whose client sends nothing for this long is ended; the bytes
/// received are kept.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of a blob read from disk per response chunk.
const READ_CHUNK: usize = 256 * 1024;

/// The blob API's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/uploads")
            .wrap(tus_resumable())
            .route(web::method(Method::OPTIONS).to(options))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v1/uploads/{id}")
            .wrap(tus_resumable())
            .route(web::method(Method::HEAD).to(head))
            .route(web::method(Method::PATCH).to(patch)),
    )
    .service(
        web::resource("/v1/blobs/{blob}")
            .wrap(tus_resumable())
            .route(web::get().to(get_blob))
            .route(web::method(Method::HEAD).to(get_blob)),
    );
}

fn tus_resumable() -> DefaultHeaders {
    DefaultHeaders::new().add(("Tus-Resumable", TUS_VERSION))
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
pub fn sweep(
    store: &Store,
    blobs: &BlobStore,
    at_start: bool,
) -> Result<(usize, usize), SweepError> {
    if at_start {
        for id in store.incomplete_uploads()? {
            if blobs.has_partial(&id) {
                continue;
            }
            let Some(upload) = store.upload(&id)? else {
                continue;
            };
            if blobs.stored_blob_id(&upload.case_id, &upload.blob)? == Some(upload.blob.clone()) {
                store.complete_upload(&id)?;
                tracing::info!(device = %upload.device_id, blob = %upload.blob, size = upload.length, "upload complete (recorded at start: the server stopped after moving it into place)");
            }
        }
    }
    let mut expired = 0;
    for id in store.expired_uploads(Utc::now())? {
        let Some(_lock) = blobs.lock_upload(&id) else {
            continue;
        };
        // Row first, as in `finish`: a crash in between leaves a stray
        // partial file, never an incomplete upload without one.
        store.delete_upload(&id)?;
        blobs.remove_partial(&id)?;
        expired += 1;
    }
    let mut strays = 0;
    if at_start {
        let live: std::collections::HashSet<UploadId> =
            store.incomplete_uploads()?.into_iter().collect();
        for entry in blobs.partial_entries()? {
            let removed = match entry {
                PartialEntry::Upload(id) if live.contains(&id) => false,
                PartialEntry::Upload(id) => blobs.remove_partial(&id)?,
                PartialEntry::Stray(path) => blobs.remove_stray(&path)?,
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
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Files(#[from] BlobStoreError),
}

/// The sweep that runs before the server serves.
pub fn sweep_at_start(state: &AppState) {
    match sweep(&state.store, &state.blobs, true) {
        Ok((expired, strays)) => {
            tracing::info!(
                expired,
                strays,
                "removed expired uploads and stray partial files"
            )
        }
        Err(error) => tracing::error!(%error, "sweeping uploads at start failed"),
    }
}

/// Sweeps every [`sweep_interval`] on a thread of its own until the
/// server's state is gone.
pub fn spawn_sweeper(state: Weak<AppState>) {
    let interval = match state.upgrade() {
        Some(s) => sweep_interval(s.config.upload_expiry_secs),
        None => return,
    };
    let spawned = std::thread::Builder::new()
        .name("upload-sweeper".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let Some(state) = state.upgrade() else {
                return;
            };
            match sweep(&state.store, &state.blobs, false) {
                Ok((0, _)) => {}
                Ok((expired, _)) => tracing::info!(expired, "removed expired uploads"),
                Err(error) => tracing::error!(%error, "sweeping expired uploads failed"),
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the upload sweeper; expired uploads are removed only at start");
    }
}

async fn options(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Tus-Version", TUS_VERSION))
        .insert_header(("Tus-Extension", "creation,expiration"))
        .insert_header(("Tus-Max-Size", state.config.max_blob_bytes.to_string()))
        .finish()
}

async fn create(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    match start_upload(&state, &req, &device).await {
        Ok(response) => Ok(response),
        Err(e) => Err(audited(&state, &device, "upload-refused", e).await),
    }
}

async fn start_upload(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    device: &DeviceRecord,
) -> Result<HttpResponse, ApiError> {
    let length = match req.headers().get("Upload-Length") {
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the Upload-Length header is missing; send the size of the ciphertext in bytes",
            ))
        }
        Some(value) => parse_u64(value, "Upload-Length")?,
    };
    let (blob, report) = upload_metadata(req)?;
    let max = state.config.max_blob_bytes;
    if length > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the attachment is {length} bytes, over this server's limit of {max} bytes per blob (--max-blob-bytes); it cannot be uploaded to this server"),
        ));
    }
    let limits = UploadLimits {
        device_quota_bytes: state.config.device_quota_bytes,
        expiry: Duration::from_secs(state.config.upload_expiry_secs),
    };
    let new = NewUpload {
        blob,
        report,
        length,
    };
    // The partial file exists before the upload's row does, so an
    // incomplete upload without one is always an upload whose verified
    // bytes were moved into place (`sweep` at start relies on it).
    let id = UploadId::random()
        .map_err(|_| ApiError::internal("upload id", &crate::store::StoreError::Random))?;
    let (blobs, partial) = (state.blobs.clone(), id.clone());
    blocking(move || blobs.create_partial(&partial)).await?;
    let (st, dev, fresh) = (state.clone(), device.clone(), id.clone());
    let start = web::block(move || st.store.create_upload(&dev, &new, &fresh, limits))
        .await
        .map_err(|e| ApiError::internal("blocking task", &e));
    if !matches!(start, Ok(Ok(UploadStart::Created(_)))) {
        let (blobs, unused) = (state.blobs.clone(), id.clone());
        blocking(move || blobs.remove_partial(&unused)).await?;
    }
    let (upload, offset, how) = match start?.map_err(upload_error)? {
        UploadStart::Created(upload) => (upload, 0, "created"),
        UploadStart::Resumed(upload) => {
            let (blobs, id) = (state.blobs.clone(), upload.id.clone());
            let offset = blocking(move || blobs.partial_len(&id)).await?;
            (upload, offset, "resumed")
        }
        UploadStart::Deduplicated(upload) => {
            let length = upload.length;
            (upload, length, "deduplicated")
        }
    };
    tracing::info!(device = %device.device_id, blob = %upload.blob, length, "upload {how}");
    let mut response = HttpResponse::Created();
    response
        .insert_header((header::LOCATION, format!("/v1/uploads/{}", upload.id)))
        .insert_header(("Upload-Offset", offset.to_string()))
        .insert_header(("Upload-Length", upload.length.to_string()));
    expires_header(&mut response, &upload);
    Ok(response.finish())
}

fn upload_error(e: UploadError) -> ApiError {
    let status = match &e {
        UploadError::Store(_) => None,
        UploadError::ReportNotSynced(_)
        | UploadError::BlobNotReferenced { .. }
        | UploadError::LengthMismatch { .. } => Some(StatusCode::CONFLICT),
        UploadError::QuotaExceeded { .. } => Some(StatusCode::PAYLOAD_TOO_LARGE),
    };
    match (status, e) {
        (Some(status), e) => ApiError::new(status, e.to_string()),
        (None, UploadError::Store(e)) => ApiError::from(e),
        (None, e) => ApiError::internal("upload", &e),
    }
}

async fn head(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    let upload = own_upload(&state, &device, &path).await?;
    let offset = if upload.completed {
        upload.length
    } else {
        let (blobs, id) = (state.blobs.clone(), upload.id.clone());
        blocking(move || blobs.partial_len(&id)).await?
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header(("Upload-Offset", offset.to_string()))
        .insert_header(("Upload-Length", upload.length.to_string()))
        .insert_header(("Upload-Metadata", metadata_text(&upload)))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    expires_header(&mut response, &upload);
    Ok(response.finish())
}

async fn patch(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    let upload = own_upload(&state, &device, &path).await?;
    match receive(&state, &req, &upload, payload).await {
        Ok(response) => Ok(response),
        Err(e) if audit_patch_refusal(e.status()) => {
            Err(audited(&state, &device, "upload-refused", e).await)
        }
        Err(e) => Err(e),
    }
}

/// Refusals of a PATCH worth an audit entry; not offset conflicts or
/// bodies cut by the network, which a client recovers from by itself.
fn audit_patch_refusal(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY
    )
}

/// How a PATCH body ended.
enum BodyEnd {
    /// All of it arrived.
    Whole,
    /// The client went away or stalled; the reason, for the log.
    Cut(String),
    /// It carried more than the upload has left.
    TooLong,
}

async fn receive(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    upload: &UploadRecord,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim()
        .eq_ignore_ascii_case(OFFSET_OCTET_STREAM)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a PATCH to an upload must have Content-Type: {OFFSET_OCTET_STREAM}"),
        ));
    }
    let offset = match req.headers().get("Upload-Offset") {
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the Upload-Offset header is missing; send the offset HEAD reports",
            ))
        }
        Some(value) => parse_u64(value, "Upload-Offset")?,
    };
    let lock = Arc::new(state.blobs.lock_upload(&upload.id).ok_or_else(|| {
        ApiError::new(
            StatusCode::LOCKED,
            "another PATCH to this upload is in progress; wait for it to end, then HEAD the upload and resume from its offset",
        )
    })?);
    if upload.completed {
        // Nothing to write: a retry of the last PATCH is answered as it was.
        return if offset == upload.length {
            Ok(HttpResponse::NoContent()
                .insert_header(("Upload-Offset", upload.length.to_string()))
                .finish())
        } else {
            Err(offset_conflict(offset, upload.length))
        };
    }
    let (blobs, l) = (state.blobs.clone(), lock.clone());
    let mut writer = blocking(move || blobs.append(&l)).await?;
    let current = writer.len();
    if offset != current {
        return Err(offset_conflict(offset, current));
    }
    let remaining = upload.length.saturating_sub(current);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > remaining) {
        return Err(too_long(upload, current));
    }

    let mut batch = Vec::with_capacity(WRITE_BATCH.min(remaining as usize));
    let mut received: u64 = 0;
    let end = loop {
        match actix_web::rt::time::timeout(BODY_IDLE_TIMEOUT, payload.next()).await {
            Ok(Some(Ok(chunk))) => {
                received += chunk.len() as u64;
                if received > remaining {
                    break BodyEnd::TooLong;
                }
                batch.extend_from_slice(&chunk);
                if batch.len() >= WRITE_BATCH {
                    (writer, batch) = write_batch(writer, batch, lock.clone()).await?;
                }
            }
            Ok(None) => break BodyEnd::Whole,
            Ok(Some(Err(e))) => break BodyEnd::Cut(e.to_string()),
            Err(_) => break BodyEnd::Cut(format!("no bytes for {BODY_IDLE_TIMEOUT:?}")),
        }
    };
    if let BodyEnd::TooLong = end {
        // A refused PATCH changes nothing: back to where it started.
        let l = lock.clone();
        blocking(move || {
            let _lock = l;
            writer.truncate(current)
        })
        .await?;
        return Err(too_long(upload, current));
    }
    (writer, batch) = write_batch(writer, batch, lock.clone()).await?;
    drop(batch);
    let l = lock.clone();
    let writer = blocking(move || {
        let _lock = l;
        writer.sync().map(|()| writer)
    })
    .await?;
    let new_offset = writer.len();
    drop(writer);
    if let BodyEnd::Cut(why) = end {
        // Kept: the next PATCH resumes after these bytes.
        tracing::info!(device = %upload.device_id, blob = %upload.blob, offset = new_offset, length = upload.length, reason = %why, "upload interrupted; the bytes received are kept");
        touch(state, upload).await?;
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body ended early ({why}); the {new_offset} bytes received so far are kept: HEAD the upload and resume from its offset"),
        )
        .with_header("Upload-Offset", new_offset));
    }
    if new_offset < upload.length {
        let expires_at = touch(state, upload).await?;
        return Ok(HttpResponse::NoContent()
            .insert_header(("Upload-Offset", new_offset.to_string()))
            .insert_header(("Upload-Expires", http_date(expires_at)))
            .finish());
    }
    finish(state, upload, lock).await
}

/// Writes a batch to the partial file off the executor; gives both back.
async fn write_batch(
    mut writer: PartialWriter,
    mut batch: Vec<u8>,
    lock: Arc<UploadLock>,
) -> Result<(PartialWriter, Vec<u8>), ApiError> {
    if batch.is_empty() {
        return Ok((writer, batch));
    }
    blocking(move || {
        // The upload stays locked until the write is done, even if the
        // request that started it is gone.
        let _lock = lock;
        writer.write_all(&batch)?;
        batch.clear();
        Ok::<_, BlobStoreError>((writer, batch))
    })
    .await
}

/// The last bytes arrived: verify the whole blob, move it into its case,
/// and only then record it and answer.
async fn finish(
    state: &web::Data<AppState>,
    upload: &UploadRecord,
    lock: Arc<UploadLock>,
) -> Result<HttpResponse, ApiError> {
    let (blobs, id, l) = (state.blobs.clone(), upload.id.clone(), lock.clone());
    let actual = blocking(move || {
        let _lock = l;
        blobs.partial_blob_id(&id)
    })
    .await?;
    if actual != upload.blob {
        let (st, id, l) = (state.clone(), upload.id.clone(), lock.clone());
        blocking(move || {
            let _lock = l;
            // The row goes first: an incomplete upload without a partial
            // file is one whose verified bytes were moved into place.
            st.store.delete_upload(&id).map_err(ApiError::from)?;
            st.blobs
                .remove_partial(&id)
                .map(|_| ())
                .map_err(ApiError::from)
        })
        .await?;
        tracing::info!(device = %upload.device_id, blob = %upload.blob, "upload refused: the bytes do not hash to the blob id; discarded");
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the uploaded bytes do not match the blob id; upload again (their SHA-256 is not {}, so they were discarded: start a new upload with POST /v1/uploads)", upload.blob),
        ));
    }
    let (st, up) = (state.clone(), upload.clone());
    let done = blocking(move || {
        let _lock = lock;
        st.blobs
            .promote(&up.id, &up.case_id, &up.blob)
            .map_err(ApiError::from)?;
        st.store.complete_upload(&up.id).map_err(ApiError::from)
    })
    .await?;
    tracing::info!(device = %done.device_id, blob = %done.blob, size = done.length, "upload complete");
    Ok(HttpResponse::NoContent()
        .insert_header(("Upload-Offset", done.length.to_string()))
        .finish())
}

/// Extends an incomplete upload's life: it is in use.
async fn touch(
    state: &web::Data<AppState>,
    upload: &UploadRecord,
) -> Result<DateTime<Utc>, ApiError> {
    let (st, id) = (state.clone(), upload.id.clone());
    let expiry = Duration::from_secs(state.config.upload_expiry_secs);
    blocking(move || st.store.touch_upload(&id, expiry)).await
}

fn offset_conflict(sent: u64, current: u64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!("Upload-Offset is {sent} but the upload is at offset {current}; send the bytes from offset {current} on"),
    )
    .with_header("Upload-Offset", current)
}

fn too_long(upload: &UploadRecord, current: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "this PATCH carries more than the {} bytes the upload lacks (Upload-Length {}, offset {current}); nothing of it was kept, send only the rest",
            upload.length - current.min(upload.length),
            upload.length
        ),
    )
    .with_header("Upload-Offset", current)
}

/// The device's own upload, unexpired. Another device's upload is "not
/// found" too, so its existence is not revealed.
async fn own_upload(
    state: &web::Data<AppState>,
    device: &DeviceRecord,
    raw_id: &str,
) -> Result<UploadRecord, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "there is no upload with this id for this device (an upload untouched for a while expires); start it again with POST /v1/uploads",
        )
    };
    let id: UploadId = raw_id.parse().map_err(|_| not_found())?;
    let st = state.clone();
    let upload = blocking(move || st.store.upload(&id)).await?;
    match upload {
        Some(u) if u.device_id == device.device_id && !u.expired(Utc::now()) => Ok(u),
        _ => Err(not_found()),
    }
}

async fn get_blob(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    match serve_blob(&state, &req, &device, &path).await {
        Ok(response) => Ok(response),
        Err(e) => Err(audited(&state, &device, "blob-fetch-refused", e).await),
    }
}

pub(crate) async fn serve_blob(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    device: &DeviceRecord,
    raw_id: &str,
) -> Result<HttpResponse, ApiError> {
    let blob: BlobId = raw_id
        .parse()
        .map_err(|e: crate::blob_store::BlobIdError| {
            ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
        })?;
    let (st, dev, b) = (state.clone(), device.clone(), blob.clone());
    let size = match blocking(move || st.store.blob_access(&dev, &b)).await? {
        BlobAccess::Readable { size } => size,
        BlobAccess::NotUploadedByThisDevice => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "this device has not uploaded an attachment with this blob id; a reporter reads only attachments it uploaded itself (if it is yours, let `fieldsync sync` finish uploading it)",
            ))
        }
        BlobAccess::Unknown => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "this case holds no attachment with this blob id; check the id, or sync and try again once its reporter has uploaded it",
            ))
        }
        BlobAccess::NotYetUploaded => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "this attachment has not been uploaded completely yet; try again later",
            ))
        }
    };
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let (start, end, partial) = match parse_range(range, size) {
        Range::Whole => (0, size, false),
        Range::Part { start, end } => (start, end, true),
        Range::Unsatisfiable => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the requested range is outside the attachment, which is {size} bytes; ask for bytes=K- with K below {size}"),
            )
            .with_header("Content-Range", format!("bytes */{size}")));
        }
    };
    let (blobs, case, b) = (state.blobs.clone(), device.case_id.clone(), blob.clone());
    let file = blocking(move || {
        let (mut file, len) = blobs.open_blob(&case, &b)?;
        if len != size {
            tracing::error!(blob = %b, on_disk = len, recorded = size, "stored blob damaged");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this attachment is damaged on the server (its stored size differs from the size recorded at upload); the operator must restore it from a backup, or its reporter upload it again",
            ));
        }
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(start))
            .map_err(|e| ApiError::internal("blob seek", &e))?;
        Ok::<_, ApiError>(file)
    })
    .await?;
    let len = end - start;
    let mut response = if partial {
        let mut r = HttpResponse::PartialContent();
        r.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end.saturating_sub(1)),
        ));
        r
    } else {
        HttpResponse::Ok()
    };
    response
        .content_type("application/octet-stream")
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, format!("\"{blob}\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .no_chunking(len);
    tracing::info!(device = %device.device_id, %blob, start, len, "blob sent");
    if req.method() == Method::HEAD {
        return Ok(response.streaming(futures_util::stream::empty::<
            Result<web::Bytes, actix_web::Error>,
        >()));
    }
    Ok(response.streaming(file_body(file, len)))
}

/// A byte range of a blob: `start..end`.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No Range header, or one this server ignores (several ranges, or
    /// malformed): the whole blob, 200.
    Whole,
    Part {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// Reads `bytes=K-`, `bytes=K-L` and `bytes=-N` (RFC 9110 single ranges).
fn parse_range(header: Option<&str>, size: u64) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        (true, true) => Range::Whole,
        (true, false) => match number(last) {
            None => Range::Whole,
            Some(0) => Range::Unsatisfiable,
            Some(_) if size == 0 => Range::Unsatisfiable,
            Some(n) => Range::Part {
                start: size.saturating_sub(n),
                end: size,
            },
        },
        (false, open) => {
            let Some(start) = number(first) else {
                return Range::Whole;
            };
            let end = if open {
                size
            } else {
                match number(last) {
                    Some(last) if last >= start => last.saturating_add(1).min(size),
                    _ => return Range::Whole,
                }
            };
            if start >= size {
                Range::Unsatisfiable
            } else {
                Range::Part { start, end }
            }
        }
    }
}

/// `len` bytes of `file` from its position, read off the executor.
fn file_body(
    file: File,
    len: u64,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    futures_util::stream::unfold(Some((file, len)), |state| async move {
        let (mut file, left) = state?;
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left.min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
        let read = web::block(move || read_chunk(&mut file, want).map(|bytes| (file, bytes))).await;
        match read {
            Ok(Ok((file, bytes))) => Some((
                Ok(web::Bytes::from(bytes)),
                Some((file, left - want as u64)),
            )),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading a blob failed mid-response");
                Some((Err(actix_web::error::ErrorInternalServerError(e)), None))
            }
            Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
        }
    })
}

/// Parses `Upload-Metadata` (tus: comma-separated `key base64value`):
/// `blob` (the hex SHA-256 of the ciphertext) and `report` are required;
/// other keys are ignored and never logged.
fn upload_metadata(req: &HttpRequest) -> Result<(BlobId, ReportId), ApiError> {
    let bad = |what: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Upload-Metadata {what}; send `blob <base64 of the 64 hex characters of the ciphertext's SHA-256>,report <base64 of the report id>`"),
        )
    };
    let text = req
        .headers()
        .get("Upload-Metadata")
        .ok_or_else(|| bad("is missing".into()))?
        .to_str()
        .map_err(|_| bad("is not ASCII".into()))?;
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
fn metadata_text(upload: &UploadRecord) -> String {
    format!(
        "blob {},report {}",
        STANDARD.encode(upload.blob.as_str()),
        STANDARD.encode(upload.report.as_str())
    )
}

fn parse_u64(value: &header::HeaderValue, name: &str) -> Result<u64, ApiError> {
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the {name} header must be a non-negative number of bytes"),
            )
        })
}

fn expires_header(response: &mut HttpResponseBuilder, upload: &UploadRecord) {
    if !upload.completed {
        response.insert_header(("Upload-Expires", http_date(upload.expires_at)));
    }
}

/// An HTTP date (RFC 7231 IMF-fixdate).
fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Runs blocking file or database work off the async executor.
async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Send + 'static,
    ApiError: From<E>,
{
    web::block(f)
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))?
        .map_err(ApiError::from)
}

/// Records a refusal (a 4xx) in the audit log; returns the error. The
/// detail is the message the client gets: ids and sizes, never content.
async fn audited(
    state: &web::Data<AppState>,
    device: &DeviceRecord,
    event: &'static str,
    error: ApiError,
) -> ApiError {
    if !error.status().is_client_error() {
        return error;
    }
    let (st, id) = (state.clone(), device.device_id.clone());
    let detail = format!("{} {}", error.status().as_u16(), error.message());
    let result = web::block(move || st.store.audit(event, Some(&id), &detail)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "audit"),
        Err(e) => tracing::error!(error = %e, "audit"),
    }
    error
}

impl From<BlobStoreError> for ApiError {
    fn from(e: BlobStoreError) -> Self {
        if e.is_disk_full() {
            tracing::error!(error = %e, "disk full");
            return ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the server is out of disk space; the bytes received so far are kept, resume the upload later",
            )
            .with_code(fieldsync_core::protocol::error_code::DISK_FULL);
        }
        ApiError::internal("blob store", &e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_single_ranges() {
        let r = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Range::Whole);
        assert_eq!(
            r("bytes=10-"),
            Range::Part {
                start: 10,
                end: 100
            }
        );
        assert_eq!(r("bytes=10-19"), Range::Part { start: 10, end: 20 });
        assert_eq!(
            r("bytes=90-500"),
            Range::Part {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            r("bytes=-5"),
            Range::Part {
                start: 95,
                end: 100
            }
        );
        assert_eq!(r("bytes=-500"), Range::Part { start: 0, end: 100 });
        assert_eq!(r("bytes=100-"), Range::Unsatisfiable);
        assert_eq!(r("bytes=-0"), Range::Unsatisfiable);
        for ignored in [
            "bytes=5-1",
            "bytes=a-",
            "items=1-2",
            "bytes=1-2,4-5",
            "bytes=-",
        ] {
            assert_eq!(r(ignored), Range::Whole, "{ignored}");
        }
    }

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
}
