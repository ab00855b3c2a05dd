//! What a client is told: every refusal's status, code and words, and the
//! one place where an error of the store, the blob files or the upload
//! rules becomes an answer. Storage errors are logged and never sent: the
//! client gets a fixed message. Advice that names a command (`fieldsync
//! …`) or a server option is added here, not in the store.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use fieldsync_core::protocol::{error_code, ErrorBody};
use fieldsync_core::request_auth::AuthError;
use fieldsync_core::sync::server::SyncError;

use crate::blob_store::BlobStoreError;
use crate::store::{LoginRefusal, StoreError, SyncStoreError, UploadError};
use crate::tus::{TusError, TusRefusal};

/// An error with the status and message a client gets, and any headers
/// the client needs to recover (a tus `Upload-Offset`).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    headers: Vec<(&'static str, String)>,
    /// For a request refused for its clock: how far off it was.
    clock_skew_secs: Option<i64>,
    /// For a request refused because its nonce was already used.
    replayed: bool,
    /// `ErrorBody::code`.
    code: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: Vec::new(),
            clock_skew_secs: None,
            replayed: false,
            code: None,
        }
    }

    /// Names the refusal for clients (`protocol::error_code`).
    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// A refusal of a request's signature or clock; for the clock, the
    /// body also says by how much, so the device can correct and retry.
    pub(crate) fn unauthorized(e: &AuthError) -> Self {
        let mut error = Self::new(StatusCode::UNAUTHORIZED, e.to_string());
        if let AuthError::Clock { skew_secs, .. } = e {
            error.clock_skew_secs = Some(*skew_secs);
            error.code = Some(error_code::CLOCK);
        }
        error
    }

    /// Marks a refusal of a replayed nonce, so a device can tell it apart.
    pub(crate) fn replayed(mut self) -> Self {
        self.replayed = true;
        self.code = Some(error_code::REPLAYED);
        self
    }

    /// Adds a header to the error response.
    pub(crate) fn with_header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn internal(context: &str, error: &dyn std::error::Error) -> Self {
        tracing::error!(%error, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to store or read data; nothing was acknowledged, try again later",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        for header in &self.headers {
            response.insert_header(header.clone());
        }
        response.json(ErrorBody {
            error: self.message.clone(),
            server_time: Some(chrono::Utc::now().timestamp()),
            clock_skew_secs: self.clock_skew_secs,
            replayed: self.replayed,
            code: self.code.map(str::to_owned),
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownCase(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::InvalidToken => ApiError::new(StatusCode::FORBIDDEN, e.to_string())
                .with_code(error_code::INVITE_UNKNOWN),
            StoreError::TokenUsed => ApiError::new(StatusCode::FORBIDDEN, e.to_string())
                .with_code(error_code::INVITE_USED),
            StoreError::TokenExpired => ApiError::new(StatusCode::FORBIDDEN, e.to_string())
                .with_code(error_code::INVITE_EXPIRED),
            StoreError::AlreadyEnrolled(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::CaseKeyConflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                format!("{e}. Rotate to a new epoch with `fieldsync key rotate`, or, if this device's key is the wrong one, add the current code with `fieldsync key add`"),
            ),
            ref full if full.is_disk_full() => {
                tracing::error!(error = %full, "disk full");
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, DISK_FULL)
                    .with_code(error_code::DISK_FULL)
            }
            ref busy if busy.is_busy() => {
                tracing::warn!(error = %busy, "store busy");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is busy; nothing was acknowledged, sync again in a moment",
                )
                .with_code(error_code::BUSY)
            }
            other => ApiError::internal("store", &other),
        }
    }
}

/// What a client is told when the server's disk is full and a write of
/// the store failed (the transaction rolled back).
pub(crate) const DISK_FULL: &str = "the server is out of disk space; nothing was acknowledged, sync again once its operator has freed space";

impl From<BlobStoreError> for ApiError {
    fn from(e: BlobStoreError) -> Self {
        if e.is_disk_full() {
            tracing::error!(error = %e, "disk full");
            return ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the server is out of disk space; the bytes received so far are kept, resume the upload later",
            )
            .with_code(error_code::DISK_FULL);
        }
        if e.is_taken() {
            tracing::info!(error = %e, "a PATCH lost the race for its offset");
            return ApiError::new(
                StatusCode::CONFLICT,
                "another PATCH to this upload stored bytes at this offset first; HEAD the upload and resume from its offset",
            );
        }
        if e.is_bucket() {
            tracing::error!(error = %e, "blob storage failed");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server's blob storage failed; the bytes it confirmed are kept, try again later (HEAD an upload to resume from its offset)",
            );
        }
        ApiError::internal("blob store", &e)
    }
}

/// The status and message for a sync round the store refused.
pub(crate) fn sync_refusal(e: SyncStoreError) -> ApiError {
    match e {
        SyncStoreError::Sync(SyncError::Revoked) => {
            ApiError::new(StatusCode::FORBIDDEN, "this device was revoked")
                .with_code(error_code::REVOKED)
        }
        SyncStoreError::Sync(e @ SyncError::InvalidChange { .. }) => {
            ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
        }
        SyncStoreError::Sync(e @ SyncError::UnknownAuthor { .. }) => {
            ApiError::new(StatusCode::FORBIDDEN, e.to_string())
        }
        SyncStoreError::Sync(SyncError::Store(e)) | SyncStoreError::Store(e) => ApiError::from(e),
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Store(e) => ApiError::from(e),
            UploadError::ReportNotSynced(_)
            | UploadError::BlobNotReferenced { .. }
            | UploadError::LengthMismatch { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            UploadError::QuotaExceeded { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{e}; ask the server's operator to raise --device-quota-bytes"),
            ),
        }
    }
}

impl From<TusRefusal> for ApiError {
    fn from(e: TusRefusal) -> Self {
        let status = match &e {
            TusRefusal::MissingLength
            | TusRefusal::NotANumber { .. }
            | TusRefusal::Metadata(_)
            | TusRefusal::MissingOffset
            | TusRefusal::Cut { .. } => StatusCode::BAD_REQUEST,
            TusRefusal::OverMaxSize { .. } | TusRefusal::TooLong { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            TusRefusal::WrongContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TusRefusal::Locked => StatusCode::LOCKED,
            TusRefusal::OffsetConflict { .. } => StatusCode::CONFLICT,
            TusRefusal::Mismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            TusRefusal::NoSuchUpload => StatusCode::NOT_FOUND,
        };
        let offset = e.upload_offset();
        let error = ApiError::new(status, e.to_string());
        match offset {
            Some(offset) => error.with_header("Upload-Offset", offset),
            None => error,
        }
    }
}

impl From<TusError> for ApiError {
    fn from(e: TusError) -> Self {
        match e {
            TusError::Refused(e) => ApiError::from(e),
            TusError::Store(e) => ApiError::from(e),
            TusError::Files(e) => ApiError::from(e),
        }
    }
}

/// The status and words for a refused login link. The store says what
/// is wrong; the page is also told what to run.
pub(crate) fn login_refusal(why: &LoginRefusal) -> ApiError {
    let status = match why {
        LoginRefusal::Revoked | LoginRefusal::NotCoordinator => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    };
    let advice = match why {
        LoginRefusal::UnknownDevice => {
            "; run `fieldsync web-login` on an enrolled coordinator device"
        }
        LoginRefusal::Expired => "; run `fieldsync web-login` again",
        LoginRefusal::Used => "; run `fieldsync web-login` again for a new one",
        LoginRefusal::Revoked | LoginRefusal::NotCoordinator => "",
    };
    ApiError::new(status, format!("{why}{advice}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn each_invite_refusal_has_its_own_code_for_the_phone_to_put_in_words() {
        for (e, code) in [
            (StoreError::InvalidToken, error_code::INVITE_UNKNOWN),
            (StoreError::TokenUsed, error_code::INVITE_USED),
            (StoreError::TokenExpired, error_code::INVITE_EXPIRED),
        ] {
            let api = ApiError::from(e);
            assert_eq!(api.status(), StatusCode::FORBIDDEN);
            assert_eq!(api.code, Some(code));
        }
        let clock = ApiError::unauthorized(&AuthError::Clock {
            skew_secs: 900,
            window_secs: 300,
        });
        assert_eq!(
            (clock.code, clock.clock_skew_secs),
            (Some(error_code::CLOCK), Some(900))
        );
    }

    #[test]
    fn a_full_disk_is_507_with_a_message_that_says_so_and_busy_is_503() {
        let full = ApiError::from(sqlite(rusqlite::ffi::SQLITE_FULL));
        assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert!(full.message().contains("out of disk space"), "{full}");
        let io = ApiError::from(StoreError::Io {
            path: "data".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        assert_eq!(io.status(), StatusCode::INSUFFICIENT_STORAGE);
        let busy = ApiError::from(sqlite(rusqlite::ffi::SQLITE_BUSY));
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(full.code, Some(error_code::DISK_FULL));
        assert_eq!(busy.code, Some(error_code::BUSY));
        let other = ApiError::from(sqlite(rusqlite::ffi::SQLITE_CORRUPT));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!other.message().contains("corrupt"), "{other}");
    }
}
