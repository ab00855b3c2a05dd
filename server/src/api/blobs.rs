//! Downloads of attachment ciphertext: `GET`/`HEAD /v1/blobs/{blob id}`,
//! whole or one byte range, for a device whose store says it may read the
//! blob. The review app's `/web/api/blobs/` serves through [`serve_blob`].

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::rt::task::{spawn_blocking, JoinHandle};
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::state::{audited, authenticate, blocking, AppState};
use crate::blob_store::{BlobId, BlobReader, BlobStoreError};
use crate::store::{BlobAccess, DeviceRecord};
use fieldsync_core::ids::IdError;

/// Bytes of a blob read per response chunk: large enough that handing a
/// read to the blocking pool (and, from a bucket, one ranged GET) costs
/// little beside it.
const READ_CHUNK: usize = 1024 * 1024;

pub(super) async fn get_blob(
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

pub(super) async fn serve_blob(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    device: &DeviceRecord,
    raw_id: &str,
) -> Result<HttpResponse, ApiError> {
    let blob: BlobId = raw_id
        .parse()
        .map_err(|e: IdError| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
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
    let reader = blocking(move || {
        let (reader, len) = blobs.open_blob(&case, &b, start)?;
        if len != size {
            tracing::error!(blob = %b, on_disk = len, recorded = size, "stored blob damaged");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this attachment is damaged on the server (its stored size differs from the size recorded at upload); the operator must restore it from a backup, or its reporter upload it again",
            ));
        }
        Ok::<_, ApiError>(reader)
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
    Ok(response.streaming(blob_body(reader, len)))
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

/// `len` bytes of a blob from the reader's position, read off the
/// executor one chunk ahead: the next chunk is read while this one is
/// sent.
fn blob_body(
    reader: Box<dyn BlobReader>,
    len: u64,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    futures_util::stream::unfold(read_ahead(reader, len), |next| async move {
        let (handle, left) = next?;
        let read = handle.await;
        match read {
            Ok(Ok((reader, bytes))) => {
                let left = left - bytes.len() as u64;
                Some((Ok(web::Bytes::from(bytes)), read_ahead(reader, left)))
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading a blob failed mid-response");
                Some((Err(actix_web::error::ErrorInternalServerError(e)), None))
            }
            Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
        }
    })
}

type Read = JoinHandle<Result<(Box<dyn BlobReader>, Vec<u8>), BlobStoreError>>;

/// Starts reading the next chunk of the `left` bytes; `None` at the end.
fn read_ahead(mut reader: Box<dyn BlobReader>, left: u64) -> Option<(Read, u64)> {
    if left == 0 {
        return None;
    }
    let want = usize::try_from(left.min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
    let handle = spawn_blocking(move || reader.read_chunk(want).map(|bytes| (reader, bytes)));
    Some((handle, left))
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
}
