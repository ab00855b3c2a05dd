//! The HTTP API. Handlers are thin: read the body (bounded), authenticate,
//! call the store off the async executor, map errors to statuses. Storage
//! errors are logged and never sent to the client.
//!
//! Routes (see `routes`): `GET /healthz`, `POST /v1/enroll`,
//! `POST /v1/sync`, `GET /v1/timeline`, `GET /v1/devices`, `GET /v1/case`
//! (coordinators: the case's import salt), the case keys and invites of
//! `keys_api.rs`, and the blob API of `uploads.rs`:
//! `OPTIONS`/`POST /v1/uploads`, `HEAD`/`PATCH /v1/uploads/{id}`,
//! `GET`/`HEAD /v1/blobs/{blob id}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use fieldsync_core::identity::PublicKey;
use fieldsync_core::protocol::{
    error_code, CaseInfo, EnrollRequest, EnrollResponse, ErrorBody, SyncRequest,
};
use fieldsync_core::request_auth::{AuthError, RequestAuth};
use fieldsync_core::sync::policy::DeviceRole;
use fieldsync_core::sync::server::{verify_request, ServerLimits, SyncError};
use futures_util::StreamExt;

use crate::blob_store::BlobStore;
use crate::refusal_log;
use crate::store::{DeviceRecord, Store, StoreError, SyncStoreError, TimelineQuery};
use crate::uploads;
use crate::Config;

/// Shared state of the running server.
pub struct AppState {
    pub store: Store,
    pub blobs: BlobStore,
    pub config: Config,
}

/// Every route of the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/v1/enroll", web::post().to(enroll))
        .route("/v1/sync", web::post().to(sync))
        .route("/v1/timeline", web::get().to(timeline))
        .route("/v1/devices", web::get().to(devices))
        .route("/v1/case", web::get().to(case));
    crate::keys_api::routes(cfg);
    uploads::routes(cfg);
}

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
            StoreError::AlreadyEnrolled(_) | StoreError::CaseKeyConflict(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            ref full if full.is_disk_full() => {
                tracing::error!(error = %full, "disk full");
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, DISK_FULL)
                    .with_code(error_code::DISK_FULL)
            }
            ref busy if is_busy(busy) => {
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

/// Lock contention or an exhausted connection pool: retryable, not a fault.
fn is_busy(e: &StoreError) -> bool {
    match e {
        StoreError::Pool(_) => true,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        ),
        _ => false,
    }
}

/// The signature headers of a request and the path (with query) it signs.
fn signed_parts(req: &HttpRequest) -> Result<(RequestAuth, String), ApiError> {
    let auth =
        RequestAuth::from_headers(|name| req.headers().get(name).and_then(|v| v.to_str().ok()))
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    Ok((auth, path))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Reads a request body, refusing it with 413 once it passes `limit`.
/// (actix's `PayloadConfig` does not apply to a raw `Payload`.)
pub(crate) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over the server's limit of {limit} bytes; sync in smaller rounds (fieldsync does this by itself when its --max-request-bytes is at most the server's)"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Authenticates a signed request: the device is enrolled, the signature
/// verifies, the clock is within the window, the nonce is new, and the
/// device is not revoked.
///
/// A refusal before all but the last of these held is unauthenticated:
/// anyone can send one, so it is logged at a bounded rate and never
/// written to the database (`refusal_log.rs`). A revoked device's fresh,
/// correctly signed request is audited: it is that device's key at work.
pub(crate) async fn authenticate(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    body: &[u8],
) -> Result<DeviceRecord, ApiError> {
    let route = req.path().to_owned();
    let (auth, path) =
        signed_parts(req).inspect_err(|e| refusal_log::refused(&route, None, e.message()))?;
    let method = req.method().as_str().to_owned();
    let body = body.to_vec();
    let window = state.config.auth_window_secs;
    let st = state.clone();
    web::block(move || -> Result<DeviceRecord, ApiError> {
        let store = &st.store;
        let unauthenticated = |error: ApiError| {
            refusal_log::refused(&route, Some(auth.device.as_str()), error.message());
            error
        };
        let Some(device) = store.device(&auth.device)? else {
            return Err(unauthenticated(ApiError::new(StatusCode::UNAUTHORIZED, format!("device {} is not enrolled on this server; enroll it with `fieldsync device enroll`", auth.device))));
        };
        let now = chrono::Utc::now().timestamp();
        if let Err(e) = auth.verify(&device.public_key, &method, &path, &body, now, window) {
            // The answer says how far off a clock is.
            return Err(unauthenticated(ApiError::unauthorized(&e)));
        }
        // The nonce before revocation: a replayed request of a revoked
        // device is no more authenticated than any other replay.
        if !store.use_nonce(&device.device_id, &auth.nonce, auth.timestamp, window)? {
            return Err(unauthenticated(ApiError::new(StatusCode::UNAUTHORIZED, "this request was already received (replayed nonce); a new request needs a new nonce").replayed()));
        }
        if device.revoked_at.is_some() {
            let why = format!("device {} was revoked; it can no longer sync. Its unsynced reports remain on the device", device.device_id);
            if let Err(e) = store.audit("request-refused", Some(&device.device_id), &why) {
                tracing::error!(error = %e, "audit");
            }
            return Err(ApiError::new(StatusCode::FORBIDDEN, why).with_code(error_code::REVOKED));
        }
        Ok(device)
    })
    .await
    .map_err(|e| ApiError::internal("blocking task", &e))?
}

async fn enroll(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, 64 * 1024).await?;
    // Nothing here is authenticated until the store took the token: a
    // refusal before that is only logged, at a bounded rate.
    let unauthenticated = |e: ApiError| {
        refusal_log::refused("/v1/enroll", None, e.message());
        e
    };
    let request: EnrollRequest = serde_json::from_slice(&body)
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the enrollment request is not valid JSON: {e}"),
            )
        })
        .map_err(unauthenticated)?;
    let key = hex::decode(&request.public_key)
        .ok()
        .and_then(|bytes| PublicKey::from_bytes(&bytes).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "public_key must be 64 hexadecimal characters (an Ed25519 public key)",
            )
        })
        .map_err(unauthenticated)?;
    // The request is signed by the key being enrolled: proof of possession.
    let (auth, path) = signed_parts(&req).map_err(unauthenticated)?;
    auth.verify(
        &key,
        "POST",
        &path,
        &body,
        chrono::Utc::now().timestamp(),
        state.config.auth_window_secs,
    )
    .map_err(|e| unauthenticated(ApiError::unauthorized(&e)))?;
    let st = state.clone();
    // The store audits a refusal of a token it issued (used, expired).
    let device = web::block(move || st.store.enroll(&request.token, &key))
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))?
        .map_err(|e| match e {
            StoreError::InvalidToken => unauthenticated(ApiError::from(e)),
            other => ApiError::from(other),
        })?;
    tracing::info!(device = %device.device_id, case = %device.case_id, role = device.role.as_str(), "device enrolled");
    let import_salt = match device.role {
        DeviceRole::Coordinator => {
            let (st, case) = (state.clone(), device.case_id.clone());
            Some(
                web::block(move || st.store.import_salt(&case))
                    .await
                    .map_err(|e| ApiError::internal("blocking task", &e))??,
            )
        }
        DeviceRole::Reporter => None,
    };
    let st = state.clone();
    let case = device.case_id.clone();
    let case_keys = web::block(move || st.store.case_public_keys(&case))
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))??;
    Ok(HttpResponse::Ok().json(EnrollResponse {
        device_id: device.device_id.to_string(),
        case_id: device.case_id.to_string(),
        case_name: device.case_name.clone(),
        role: device.role,
        import_salt,
        case_keys,
    }))
}

async fn sync(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.config.max_request_bytes).await?;
    let device = authenticate(&state, &req, &body).await?;
    let limits = ServerLimits {
        max_response_bytes: state.config.max_response_bytes,
        ..ServerLimits::default()
    };
    let st = state.clone();
    let dev = device.clone();
    // Decoding and verifying every change is the expensive part of a round
    // and the part a hostile device controls: it runs off the async
    // workers, and before the store's write transaction opens, so no other
    // device waits on it. The response is built only after the commit.
    let (response, offered) = web::block(move || {
        let request = SyncRequest::from_json(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let offered: usize = request.docs.iter().map(|d| d.changes.len()).sum();
        let verified = verify_request(request).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                SyncError::<StoreError>::from(e).to_string(),
            )
        })?;
        st.store
            .sync_verified(&dev, verified, limits, None)
            .map(|r| (r, offered))
            .map_err(sync_refusal)
    })
    .await
    .map_err(|e| ApiError::internal("blocking task", &e))??;
    let received: usize = response.docs.iter().map(|d| d.changes.len()).sum();
    let refused: usize = response.docs.iter().map(|d| d.refused.len()).sum();
    tracing::info!(device = %device.device_id, offered, refused, sent = received, cursor = response.cursor, "sync");
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(response.to_json()))
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

async fn timeline(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<TimelineQuery>,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    if device.role != DeviceRole::Coordinator {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "the case timeline is for coordinators; a reporter sees its own reports with `fieldsync timeline`"));
    }
    let st = state.clone();
    let page = web::block(move || st.store.timeline(&device.case_id, &query.into_inner()))
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))??;
    Ok(HttpResponse::Ok().json(page))
}

/// The case's devices, for a coordinator's device: it keeps them to check
/// offline that a bundle comes from an enrolled, unrevoked device.
async fn devices(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    if device.role != DeviceRole::Coordinator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the list of a case's devices is for coordinators",
        ));
    }
    let st = state.clone();
    let case = device.case_name.clone();
    let devices = web::block(move || st.store.devices(Some(&case)))
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))??;
    let roster: Vec<serde_json::Value> = devices
        .iter()
        .map(|d| {
            serde_json::json!({
                "device_id": d.device_id.to_string(),
                "public_key": d.public_key_hex,
                "role": d.role.as_str(),
                "revoked_at": d.revoked_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(roster))
}

/// The case, for a coordinator's device: with its import salt, which a
/// device enrolled before the salt existed gets on its next sync.
async fn case(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    if device.role != DeviceRole::Coordinator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the case's import salt is for coordinators' devices",
        ));
    }
    let (st, case) = (state.clone(), device.case_id.clone());
    let import_salt = web::block(move || st.store.import_salt(&case))
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))??;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(CaseInfo {
            case_id: device.case_id.to_string(),
            case_name: device.case_name.clone(),
            import_salt,
        }))
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
