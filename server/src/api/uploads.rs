//! The tus upload handlers: `OPTIONS`/`POST /v1/uploads`,
//! `HEAD`/`PATCH /v1/uploads/{id}`. They read headers and the body and
//! call the rules of `tus.rs`, the store and the blob files; see `mod.rs`
//! for the protocol.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::rt::task::{spawn_blocking, JoinHandle};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use ring::digest::{Context, SHA256};

use super::error::ApiError;
use super::state::{audited, authenticate, blocking, AppState};
use crate::blob_store::{BlobId, BlobStoreError, PartialWriter, UploadId, UploadLock};
use crate::store::{DeviceRecord, NewUpload, StoreError, UploadLimits, UploadRecord, UploadStart};
use crate::tus::{self, TusRefusal, BODY_IDLE_TIMEOUT, TUS_VERSION, WRITE_BATCH};

fn header_bytes<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a [u8]> {
    req.headers().get(name).map(|v| v.as_bytes())
}

pub(super) async fn options(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Tus-Version", TUS_VERSION))
        .insert_header(("Tus-Extension", "creation,expiration"))
        .insert_header(("Tus-Max-Size", state.config.max_blob_bytes.to_string()))
        .finish()
}

pub(super) async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
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
    let length = tus::upload_length(header_bytes(req, "Upload-Length"))?;
    let (blob, report) = tus::upload_metadata(header_bytes(req, "Upload-Metadata"))?;
    tus::check_size(length, state.config.max_blob_bytes)?;
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
    // bytes were moved into place (`tus::sweep` at start relies on it).
    let id =
        UploadId::random().map_err(|_| ApiError::internal("upload id", &StoreError::Random))?;
    let (blobs, partial) = (state.blobs.clone(), id.clone());
    blocking(move || blobs.create_partial(&partial)).await?;
    let (st, dev, fresh) = (state.clone(), device.clone(), id.clone());
    let start = blocking(move || st.store.create_upload(&dev, &new, &fresh, limits)).await;
    if !matches!(start, Ok(UploadStart::Created(_))) {
        let (blobs, unused) = (state.blobs.clone(), id.clone());
        blocking(move || blobs.remove_partial(&unused)).await?;
    }
    let (upload, offset, how) = match start? {
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

pub(super) async fn head(
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
        .insert_header(("Upload-Metadata", tus::metadata_text(&upload)))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    expires_header(&mut response, &upload);
    Ok(response.finish())
}

pub(super) async fn patch(
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
    tus::check_content_type(header_bytes(req, header::CONTENT_TYPE.as_str()))?;
    let offset = tus::upload_offset(header_bytes(req, "Upload-Offset"))?;
    let lock = Arc::new(
        state
            .blobs
            .lock_upload(&upload.id)
            .ok_or(TusRefusal::Locked)?,
    );
    if upload.completed {
        // Nothing to write: a retry of the last PATCH is answered as it was.
        tus::patch_completed(upload, offset)?;
        return Ok(HttpResponse::NoContent()
            .insert_header(("Upload-Offset", upload.length.to_string()))
            .finish());
    }
    let (blobs, l) = (state.blobs.clone(), lock.clone());
    let writer = blocking(move || blobs.append(&l)).await?;
    let current = writer.len();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let remaining = tus::patch_start(upload, offset, current, declared)?;

    // A PATCH that starts the upload hashes what it writes, so the last
    // one need not read the whole file again to check it against the blob
    // id; a resumed upload is hashed from the file at the end, as before.
    let hash = (current == 0).then(|| Context::new(&SHA256));
    let mut disk = Disk::new(writer, hash);
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
                    batch = disk.write(batch, &lock).await?;
                }
            }
            Ok(None) => break BodyEnd::Whole,
            Ok(Some(Err(e))) => break BodyEnd::Cut(e.to_string()),
            Err(_) => break BodyEnd::Cut(format!("no bytes for {BODY_IDLE_TIMEOUT:?}")),
        }
    };
    let (mut writer, hash) = disk.idle().await?;
    if let BodyEnd::TooLong = end {
        // A refused PATCH changes nothing: back to where it started.
        let l = lock.clone();
        blocking(move || {
            let _lock = l;
            writer.truncate(current)
        })
        .await?;
        return Err(tus::too_long(upload, current).into());
    }
    let mut disk = Disk::new(writer, hash);
    disk.write(batch, &lock).await?;
    let (mut writer, hash) = disk.idle().await?;
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
        return Err(TusRefusal::Cut {
            why,
            kept: new_offset,
        }
        .into());
    }
    if new_offset < upload.length {
        let expires_at = touch(state, upload).await?;
        return Ok(HttpResponse::NoContent()
            .insert_header(("Upload-Offset", new_offset.to_string()))
            .insert_header(("Upload-Expires", tus::http_date(expires_at)))
            .finish());
    }
    // Every byte of the file went through this PATCH's hash.
    let received = hash
        .filter(|_| new_offset == upload.length)
        .map(|hash| BlobId::of_digest(&hash.finish()));
    let (st, up) = (state.clone(), upload.clone());
    let done =
        blocking(move || tus::finish(st.store.as_ref(), &st.blobs, &up, &lock, received)).await?;
    tracing::info!(device = %done.device_id, blob = %done.blob, size = done.length, "upload complete");
    Ok(HttpResponse::NoContent()
        .insert_header(("Upload-Offset", done.length.to_string()))
        .finish())
}

/// What a write hands back: the writer, the hash, and the batch's buffer
/// for reuse.
struct Parts {
    writer: Box<dyn PartialWriter>,
    hash: Option<Context>,
    spare: Vec<u8>,
}

/// The upload's partial (and the hash of what this PATCH wrote to it, when
/// it started the upload), written off the executor: a batch is written
/// and hashed while the next one arrives.
enum Disk {
    Idle(Box<Parts>),
    Busy(JoinHandle<Result<Box<Parts>, BlobStoreError>>),
    /// A write failed or was lost; its error was returned.
    Failed,
}

impl Disk {
    fn new(writer: Box<dyn PartialWriter>, hash: Option<Context>) -> Self {
        Disk::Idle(Box::new(Parts {
            writer,
            hash,
            spare: Vec::new(),
        }))
    }

    /// Waits for the write in progress, then starts writing `batch`;
    /// returns an empty buffer to gather the next batch in.
    async fn write(&mut self, batch: Vec<u8>, lock: &Arc<UploadLock>) -> Result<Vec<u8>, ApiError> {
        let mut parts = self.parts().await?;
        if batch.is_empty() {
            *self = Disk::Idle(parts);
            return Ok(batch);
        }
        let mut spare = std::mem::replace(&mut parts.spare, batch);
        // The upload stays locked until the write is done, even if the
        // request that started it is gone.
        let lock = lock.clone();
        *self = Disk::Busy(spawn_blocking(move || {
            let _lock = lock;
            parts.writer.write_all(&parts.spare)?;
            if let Some(hash) = &mut parts.hash {
                hash.update(&parts.spare);
            }
            Ok(parts)
        }));
        spare.clear();
        Ok(spare)
    }

    /// The writer and hash once no write is in progress.
    async fn idle(&mut self) -> Result<(Box<dyn PartialWriter>, Option<Context>), ApiError> {
        let parts = self.parts().await?;
        Ok((parts.writer, parts.hash))
    }

    async fn parts(&mut self) -> Result<Box<Parts>, ApiError> {
        match std::mem::replace(self, Disk::Failed) {
            Disk::Idle(parts) => Ok(parts),
            Disk::Busy(handle) => Ok(handle
                .await
                .map_err(|e| ApiError::internal("blocking task", &e))??),
            Disk::Failed => Err(ApiError::internal(
                "upload write",
                &std::io::Error::other("an earlier write of this PATCH failed"),
            )),
        }
    }
}

/// Extends an incomplete upload's life: it is in use.
async fn touch(
    state: &web::Data<AppState>,
    upload: &UploadRecord,
) -> Result<DateTime<Utc>, ApiError> {
    let (st, case, id) = (state.clone(), upload.case_id.clone(), upload.id.clone());
    let expiry = Duration::from_secs(state.config.upload_expiry_secs);
    blocking(move || st.store.touch_upload(&case, &id, expiry)).await
}

/// The device's own upload, unexpired ([`tus::own_upload`]).
async fn own_upload(
    state: &web::Data<AppState>,
    device: &DeviceRecord,
    raw_id: &str,
) -> Result<UploadRecord, ApiError> {
    let id: UploadId = raw_id.parse().map_err(|_| TusRefusal::NoSuchUpload)?;
    let (st, case) = (state.clone(), device.case_id.clone());
    let upload = blocking(move || st.store.upload(&case, &id)).await?;
    Ok(tus::own_upload(upload, &device.device_id, Utc::now())?)
}

fn expires_header(response: &mut HttpResponseBuilder, upload: &UploadRecord) {
    if !upload.completed {
        response.insert_header(("Upload-Expires", tus::http_date(upload.expires_at)));
    }
}
